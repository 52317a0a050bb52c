//! Shards that split memory: two operators with `--shard` each label the children of their own
//! apps and cache only those, and an app relabelled from one shard's selector to the other's is
//! adopted by the new shard (its children carry the new label, the old shard lets go of them).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::harness::{GROUP_LABEL, Operator, setup};
use crate::support::{self, TestNamespace, wait_for};
use crate::{SLOW, ready_now};
use winapp_operator::api::WindowsApp;
use winapp_operator::controller::shard::SHARD_LABEL;

/// A WindowsApp without pods (`replicas: 0`) in the shard `group`.
fn app(name: &str, group: &str) -> serde_json::Value {
    json!({
        "apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp",
        "metadata": {"name": name, "labels": {GROUP_LABEL: group}},
        "spec": {"image": "registry.example.com/shop/web:1.0-ltsc2022", "replicas": 0, "windows": {"version": "ltsc2022"}}
    })
}

fn shard_of(d: &Deployment) -> Option<&str> {
    d.metadata.labels.as_ref()?.get(SHARD_LABEL).map(String::as_str)
}

/// Waits until `op`'s cache of Deployments holds `n` objects.
async fn wait_cached(op: &Operator, n: f64, what: &str) {
    for _ in 0..240 {
        if op.metric_of("winapp_cache_objects", "kind=\"Deployment\"").await == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let have = op.metric_of("winapp_cache_objects", "kind=\"Deployment\"").await;
    panic!("{what}: {have:?} Deployments cached, {n} expected; log:\n{}", op.log_text());
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it"]
async fn shards_cache_only_their_apps_children_and_adopt_an_app_that_moves() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "shards").await;
    let (a, b) = (format!("sa-{}", ns.name()), format!("sb-{}", ns.name()));
    let shard = |group: &str| {
        let selector = format!("{GROUP_LABEL}={group}");
        Operator::start_with(group, &format!("winapp-test-{group}"), &selector, setup(), &["--shard", group])
    };
    let (mut op_a, mut op_b) = (shard(&a), shard(&b));
    op_a.wait_leading().await;
    op_b.wait_leading().await;

    let apps: Api<WindowsApp> = ns.api();
    let deployments: Api<Deployment> = ns.api();
    let pp = PatchParams::apply("winapp-test").force();
    for (name, group) in [("web-a", &a), ("web-b", &b)] {
        let object: WindowsApp = serde_json::from_value(app(name, group)).expect("a WindowsApp");
        apps.patch(name, &pp, &Patch::Apply(&object)).await.expect("create the app");
    }
    for name in ["web-a", "web-b"] {
        wait_for(&apps, name, "Ready", SLOW, ready_now).await.expect("Ready under its shard");
    }
    // Each shard labels its apps' children, and caches those alone (the shared operator's and
    // other tests' children carry no shard label).
    let d = deployments.get("web-a").await.expect("web-a's Deployment");
    assert_eq!(shard_of(&d), Some(a.as_str()));
    let d = deployments.get("web-b").await.expect("web-b's Deployment");
    assert_eq!(shard_of(&d), Some(b.as_str()));
    wait_cached(&op_a, 1.0, "shard a over its one app").await;
    wait_cached(&op_b, 1.0, "shard b over its one app").await;

    // web-a moves to shard b: b adopts its children, a lets go of them.
    let relabel = json!({"metadata": {"labels": {GROUP_LABEL: b}}});
    apps.patch("web-a", &PatchParams::default(), &Patch::Merge(&relabel)).await.expect("relabel web-a");
    let moved = |d: Option<&Deployment>| d.and_then(shard_of) == Some(b.as_str());
    wait_for(&deployments, "web-a", "relabelled by shard b", SLOW, moved).await.expect("adopted by shard b");
    wait_cached(&op_b, 2.0, "shard b after the move").await;
    wait_cached(&op_a, 0.0, "shard a after the move").await;
    wait_for(&apps, "web-a", "Ready", SLOW, ready_now).await.expect("still Ready under shard b");
    // Every child of web-a went with it, not only the Deployment.
    let sa = ns.api::<k8s_openapi::api::core::v1::ServiceAccount>().get("web-a").await.expect("its ServiceAccount");
    assert_eq!(sa.metadata.labels.as_ref().and_then(|l| l.get(SHARD_LABEL)).map(String::as_str), Some(b.as_str()));

    ns.cleanup().await;
    op_a.stop();
    op_b.stop();
}
