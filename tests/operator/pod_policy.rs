//! The platform's pod template policy on the cluster: a hostPath override stalls the app with
//! reason OverrideNotAllowed and the field path, nothing is applied, and the same app turns Ready
//! once the operator runs with `--allow-pod-override host-path`.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

use super::{SLOW, apply, cond, ready_now, stalled_with};
use crate::harness::{GROUP_LABEL, Operator};
use crate::support::{TestNamespace, client, wait_for};
use winapp_operator::api::WindowsApp;

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_refused_override_stalls_until_the_platform_allows_its_rule() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "podpolicy").await;
    let group = format!("podpolicy-{}", ns.name());
    let lease = format!("winapp-test-{}", ns.name());
    let selector = format!("{GROUP_LABEL}={group}");

    // The default policy.
    let mut op = Operator::start("podpolicy", &lease, &selector);
    op.wait_leading().await;
    let yaml = format!(
        r#"apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {{name: logs, labels: {{{GROUP_LABEL}: {group}}}}}
spec:
  image: registry.example.com/web:1
  windows: {{version: ltsc2022}}
  podTemplate:
    spec:
      volumes: [{{name: host, hostPath: {{path: 'C:\'}}}}]
      containers: [{{name: app, volumeMounts: [{{name: host, mountPath: 'C:\host', readOnly: true}}]}}]
"#
    );
    apply(ns.name(), &yaml);
    let apps: Api<WindowsApp> = ns.api();
    let app = wait_for(&apps, "logs", "Stalled OverrideNotAllowed", SLOW, stalled_with("OverrideNotAllowed"))
        .await
        .expect("app exists");
    let msg = cond(&app, "Stalled").map(|c| c.message.clone()).unwrap_or_default();
    for words in ["spec.podTemplate.spec.volumes[name=host].hostPath", "rule host-path", "spec.volumes"] {
        assert!(msg.contains(words), "the message should mention {words:?}: {msg}");
    }
    assert!(cond(&app, "Ready").is_some_and(|c| c.status == "False" && c.reason == "OverrideNotAllowed"));
    // Nothing is applied for a refused app.
    let deployments: Api<Deployment> = ns.api();
    assert!(deployments.get_opt("logs").await.expect("get Deployment").is_none(), "a refused app got a Deployment");
    op.stop();

    // The platform team allows the rule: the same app rolls out.
    let mut op = Operator::start_with(
        "podpolicy-allowed",
        &lease,
        &selector,
        crate::harness::setup(),
        &["--allow-pod-override", "host-path"],
    );
    op.wait_leading().await;
    wait_for(&apps, "logs", "Ready once host-path is allowed", SLOW, ready_now).await;
    let d = deployments.get("logs").await.expect("the Deployment");
    let volumes = d.spec.template.spec.and_then(|p| p.volumes).unwrap_or_default();
    assert!(volumes.iter().any(|v| v.name == "host" && v.host_path.is_some()), "the override is applied: {volumes:?}");
    assert!(op.log_text().contains("host-path"), "the operator logs the allowed rules");

    ns.cleanup().await;
    op.stop();
}
