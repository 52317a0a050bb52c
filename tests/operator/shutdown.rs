//! `spec.shutdown` on the cluster: the pods the API server and the Deployment controller make
//! carry the grace period and the IIS drain's preStop hook; `podTemplate`'s grace period alone
//! wins over the default; the same setting in both places is refused (by the CRD's CEL rule for
//! the grace period, by the operator for the preStop hook). Also: an app without a memory limit
//! is Ready and says `ResourcesAdvised`.

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use super::{SLOW, apply, cond, kubectl, ready_now, shared, stalled_with};
use crate::support::{TestNamespace, client, list_all, wait_for};
use winapp_operator::api::WindowsApp;

const APPS: &str = r#"apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {name: shop}
spec:
  image: registry.example.com/shop:1-ltsc2022
  windows: {version: ltsc2022}
  resources:
    requests: {cpu: 500m, memory: 1Gi}
    limits: {cpu: 500m, memory: 1Gi}
  shutdown:
    gracePeriodSeconds: 90
    preStop:
      iis: {site: Default Web Site, drainSeconds: 40}
---
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {name: legacy}
spec:
  image: registry.example.com/legacy:1-ltsc2022
  windows: {version: ltsc2022}
  podTemplate:
    spec: {terminationGracePeriodSeconds: 300}
"#;

/// The pods of app `name`, once the Deployment made them.
async fn pods_of(api: &Api<Pod>, name: &str) -> Vec<Pod> {
    for _ in 0..60 {
        let pods = list_all(api, &format!("app.kubernetes.io/instance={name}")).await;
        if !pods.is_empty() {
            return pods;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!("no pod of {name} within a minute");
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn shutdown_reaches_the_pods_and_a_setting_given_twice_is_refused() {
    let client = client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "shutdown").await;
    apply(ns.name(), APPS);
    let apps: Api<WindowsApp> = ns.api();
    let pods: Api<Pod> = ns.api();

    // The IIS drain, on pods the API server accepted.
    wait_for(&apps, "shop", "Ready", SLOW, ready_now).await;
    for pod in pods_of(&pods, "shop").await {
        let spec = pod.spec.expect("pod spec");
        assert_eq!(spec.termination_grace_period_seconds, Some(90));
        let app = spec.containers.iter().find(|c| c.name == "app").expect("the app container");
        let command = app
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.exec.as_ref())
            .and_then(|e| e.command.clone())
            .expect("an exec preStop hook");
        assert_eq!(command.first().map(String::as_str), Some("powershell.exe"), "{command:?}");
        let script = command.last().cloned().unwrap_or_default();
        for step in ["Start-Sleep -Seconds 5", "stop site 'Default Web Site'", "AddSeconds(40)"] {
            assert!(script.contains(step), "{step:?} in the hook: {script}");
        }
    }
    let shop = apps.get("shop").await.expect("shop");
    assert!(cond(&shop, "ResourcesAdvised").is_none(), "requests equal limits: no advice");

    // podTemplate's grace period, alone, wins over the default; no memory limit is advised on.
    let legacy = wait_for(&apps, "legacy", "Ready", SLOW, ready_now).await.expect("legacy");
    for pod in pods_of(&pods, "legacy").await {
        assert_eq!(pod.spec.and_then(|s| s.termination_grace_period_seconds), Some(300));
    }
    let advised = cond(&legacy, "ResourcesAdvised").expect("ResourcesAdvised on an app without a memory limit");
    assert_eq!((advised.status.as_str(), advised.reason.as_str()), ("True", "NoMemoryLimit"), "{advised:?}");

    // The grace period in both places: the CRD refuses it.
    let twice = APPS
        .split("---\n")
        .nth(1)
        .unwrap_or_default()
        .replace("  podTemplate:", "  shutdown: {gracePeriodSeconds: 120}\n  podTemplate:");
    let err = kubectl(&["apply", "-n", ns.name(), "--dry-run=server", "-f", "-"], Some(&twice))
        .expect_err("the grace period given twice was accepted");
    assert!(err.contains("the grace period is set twice"), "{err}");

    // The preStop hook in both places: the operator refuses it and keeps what runs.
    let hook_twice = r#"apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {name: legacy}
spec:
  image: registry.example.com/legacy:1-ltsc2022
  windows: {version: ltsc2022}
  shutdown:
    preStop: {command: [cmd, /c, exit]}
  podTemplate:
    spec:
      terminationGracePeriodSeconds: 300
      containers: [{name: app, lifecycle: {preStop: {exec: {command: [cmd, /c, echo]}}}}]
"#;
    apply(ns.name(), hook_twice);
    let refused =
        wait_for(&apps, "legacy", "Stalled InvalidSpec", SLOW, stalled_with("InvalidSpec")).await.expect("legacy");
    let msg = cond(&refused, "Stalled").map(|c| c.message.clone()).unwrap_or_default();
    assert!(
        msg.contains("spec.podTemplate.spec.containers[app].lifecycle.preStop: set twice")
            && msg.contains("keep spec.shutdown.preStop"),
        "{msg}"
    );
    ns.cleanup().await;
}

/// A drain moves an app's pods after its rollout completed: the Deployment keeps no progress
/// deadline for the replacements, the operator does. Here the pod's node is drained and the only
/// other node of the pool has too little memory: the app ends Stalled with the pods' reason.
#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn pods_rescheduled_by_a_drain_that_cannot_start_stall_with_their_reason() {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::DeleteParams;

    let client = client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "drained").await;
    super::kubectl_ok(&["annotate", "namespace", ns.name(), "winapp.dev/allowed-taints=winapp.dev/test-pool"], None);
    let pool = format!("drain-{}", ns.name());
    let (roomy, small) = (format!("{pool}-a"), format!("{pool}-b"));
    super::kubectl_ok(&["create", "-f", "-"], Some(&super::pool_node(&roomy, &pool, &[])));
    let tiny = super::pool_node(&small, &pool, &[]).replace("\"15Gi\"", "\"1Gi\"").replace("\"16Gi\"", "\"1Gi\"");
    super::kubectl_ok(&["create", "-f", "-"], Some(&tiny));
    let nodes: Api<Node> = Api::all(client.clone());
    let cleanup = || async {
        for name in [&roomy, &small] {
            let _ = nodes.delete(name, &DeleteParams::default()).await;
        }
    };
    apply(
        ns.name(),
        &format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: web}}\nspec:\n  image: registry.example.com/web:1\n  resources: {{requests: {{memory: 2Gi}}, limits: {{memory: 2Gi}}}}\n  rollout: {{progressDeadlineSeconds: 10}}\n  windows:\n    version: ltsc2022\n    nodeSelector: {{winapp.dev/test-pool: {pool}}}\n    tolerations: [{{key: winapp.dev/test-pool, operator: Exists}}]\n"
        ),
    );
    let apps: Api<WindowsApp> = ns.api();
    if wait_for(&apps, "web", "Ready", SLOW, ready_now).await.is_none() {
        cleanup().await;
        panic!("web gone");
    }
    let drained = kubectl(
        &[
            "drain",
            &roomy,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--force",
            "--grace-period=1",
            "--timeout=60s",
        ],
        None,
    );
    let stalled = wait_for(&apps, "web", "Stalled Unschedulable", SLOW, stalled_with("Unschedulable")).await;
    cleanup().await;
    drained.expect("kubectl drain");
    let stalled = stalled.expect("web");
    let msg = cond(&stalled, "Stalled").map(|c| c.message.clone()).unwrap_or_default();
    assert!(
        msg.contains("progressDeadlineSeconds") && msg.contains("Insufficient memory"),
        "the deadline and the scheduler's words: {msg}"
    );
    ns.cleanup().await;
}
