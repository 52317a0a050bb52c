//! `spec.logging` on the cluster: LogMonitor's configuration lands in the app's ConfigMap, the
//! pods run the app's command through LogMonitor with the file mounted beside it, and a change of
//! the sources rolls the pods through the config checksum. The CRD refuses a logging with no source.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::Api;

use super::{SLOW, apply, kubectl, ready_now, shared};
use crate::support::{TestNamespace, client, list_all, wait_for};
use winapp_operator::api::WindowsApp;

const CHECKSUM: &str = "winapp.dev/config-checksum";

fn app(level: &str) -> String {
    format!(
        r#"apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {{name: logged}}
spec:
  image: registry.example.com/logged:1-ltsc2022
  windows: {{version: ltsc2022}}
  replicas: 2
  resources:
    requests: {{cpu: 250m, memory: 512Mi}}
    limits: {{cpu: 250m, memory: 512Mi}}
  logging:
    iis: true
    eventLog:
      - {{channel: Application, level: {level}}}
"#
    )
}

fn checksum_of(d: &Deployment) -> Option<String> {
    d.spec.template.metadata.as_ref()?.annotations.as_ref()?.get(CHECKSUM).cloned()
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn logging_reaches_the_pods_and_a_change_rolls_them() {
    let client = client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "logging").await;
    let apps: Api<WindowsApp> = ns.api();
    let deployments: Api<Deployment> = ns.api();
    let config_maps: Api<ConfigMap> = ns.api();
    let pods: Api<Pod> = ns.api();

    apply(ns.name(), &app("Error"));
    wait_for(&apps, "logged", "Ready", SLOW, ready_now).await;
    let cm = config_maps.get("logged-config").await.expect("the app's ConfigMap");
    let config = cm.data.unwrap_or_default().remove("LogMonitorConfig.json").expect("LogMonitor's configuration");
    let doc: serde_json::Value = serde_json::from_str(&config).expect("JSON");
    assert_eq!(doc["LogConfig"]["sources"][0]["channels"][0]["level"], "Error", "{config}");
    assert_eq!(doc["LogConfig"]["sources"][1]["directory"], r"C:\inetpub\logs\LogFiles", "{config}");

    let before = checksum_of(&deployments.get("logged").await.expect("Deployment")).expect("a config checksum");
    for pod in list_all(&pods, "app.kubernetes.io/instance=logged").await {
        let spec = pod.spec.expect("pod spec");
        let c = spec.containers.iter().find(|c| c.name == "app").expect("the app container");
        let command = c.command.clone().unwrap_or_default();
        assert_eq!(
            command,
            [
                r"C:\LogMonitor\LogMonitor.exe",
                "/Config",
                r"C:\LogMonitor\LogMonitorConfig.json",
                r"C:\ServiceMonitor.exe",
                "w3svc"
            ],
        );
        let mount = c.volume_mounts.iter().flatten().find(|m| m.mount_path == r"C:\LogMonitor\LogMonitorConfig.json");
        assert_eq!(mount.and_then(|m| m.sub_path.as_deref()), Some("LogMonitorConfig.json"), "{:?}", c.volume_mounts);
    }

    // Another level: a new ConfigMap content, a new checksum, new pods that carry it.
    apply(ns.name(), &app("Warning"));
    let rolled = wait_for(&deployments, "logged", "a new config checksum", SLOW, |d: Option<&Deployment>| {
        d.and_then(checksum_of).is_some_and(|c| c != before)
    })
    .await
    .expect("Deployment");
    let after = checksum_of(&rolled).expect("checksum");
    wait_for(&apps, "logged", "Ready after the change", SLOW, ready_now).await;
    let mut rolled_pods = 0;
    for _ in 0..120 {
        let current = list_all(&pods, "app.kubernetes.io/instance=logged").await;
        let annotated = |p: &Pod| p.metadata.annotations.as_ref().and_then(|a| a.get(CHECKSUM)).cloned();
        rolled_pods = current.iter().filter(|p| annotated(p).as_deref() == Some(after.as_str())).count();
        if rolled_pods == 2 && current.iter().all(|p| annotated(p).as_deref() == Some(after.as_str())) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(rolled_pods, 2, "both pods carry the new checksum");
    let cm = config_maps.get("logged-config").await.expect("ConfigMap");
    assert!(cm.data.unwrap_or_default()["LogMonitorConfig.json"].contains("\"Warning\""));

    // No source at all: the CRD's rule refuses it.
    let empty = app("Error").replace(
        "  logging:\n    iis: true\n    eventLog:\n      - {channel: Application, level: Error}\n",
        "  logging: {}\n",
    );
    let err = kubectl(&["apply", "-n", ns.name(), "--dry-run=server", "-f", "-"], Some(&empty))
        .expect_err("a logging with no source was accepted");
    assert!(err.contains("name at least one source"), "{err}");
    ns.cleanup().await;
}
