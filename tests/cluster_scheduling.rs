//! Scheduling, garbage collection and RBAC on the local dev cluster (`scripts/dev-cluster up`): the
//! behaviour of a hybrid Linux + Windows cluster that the operator relies on. Fake nodes (KWOK):
//! linux-1, linux-2, win2022-1, win2022-2 (10.0.20348), win2019-1 (10.0.17763); Windows nodes carry the
//! taint `os=windows:NoSchedule`.

mod support;

use std::collections::BTreeSet;

use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    authentication::v1::{SelfSubjectReview, TokenRequest},
    core::v1::{Node, Pod, ServiceAccount},
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    config::AuthInfo,
    runtime::wait::conditions,
};
use serde_json::{Value, json};
use support::{TIMEOUT, TestNamespace};

const WINDOWS_IMAGE: &str = "mcr.microsoft.com/windows/servercore:ltsc2022";

fn windows_toleration() -> Value {
    json!({ "key": "os", "operator": "Equal", "value": "windows", "effect": "NoSchedule" })
}

/// A pod spec for Windows: `os.name: windows`, nodeSelector `kubernetes.io/os=windows` plus `extra_selector`,
/// and the toleration for the Windows taint when `tolerate` is set.
fn windows_pod_spec(tolerate: bool, extra_selector: &[(&str, &str)]) -> Value {
    let mut selector = serde_json::Map::new();
    selector.insert("kubernetes.io/os".into(), "windows".into());
    for (k, v) in extra_selector {
        selector.insert((*k).into(), (*v).into());
    }
    let mut spec = json!({
        "os": { "name": "windows" },
        "nodeSelector": selector,
        "containers": [{
            "name": "app",
            "image": WINDOWS_IMAGE,
            "command": ["cmd", "/c", "ping -t localhost"],
            "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } }
        }]
    });
    if tolerate {
        spec["tolerations"] = json!([windows_toleration()]);
    }
    spec
}

fn deployment(name: &str, replicas: i32, pod_spec: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": pod_spec
            }
        }
    }))
    .expect("invalid deployment")
}

async fn create_deployment(ns: &TestNamespace, deploy: &Deployment) -> Deployment {
    ns.api::<Deployment>()
        .create(&PostParams::default(), deploy)
        .await
        .unwrap_or_else(|e| panic!("cannot create deployment {}: {e}", deploy.name_any()))
}

async fn node_os(client: &Client, node: &str) -> String {
    let node = Api::<Node>::all(client.clone()).get(node).await.expect("cannot get node");
    node.labels().get("kubernetes.io/os").cloned().unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn windows_deployment_with_toleration_runs_only_on_windows_nodes() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "sched-win").await;
    let created = create_deployment(&ns, &deployment("web", 2, windows_pod_spec(true, &[]))).await;

    support::wait_for(
        &ns.api::<Deployment>(),
        "web",
        "available with 2 ready replicas",
        TIMEOUT,
        support::deployment_available(),
    )
    .await;
    let pods = support::wait_for_deployment_pods(&client, &created, "2 pods running and ready", TIMEOUT, |pods| {
        pods.len() == 2 && pods.iter().all(support::pod_running_and_ready)
    })
    .await;

    for pod in &pods {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).expect("a running pod has a node");
        assert_eq!(
            node_os(&client, &node).await,
            "windows",
            "pod {} landed on non-Windows node {node}",
            pod.name_any()
        );
        assert!(node.starts_with("win"), "pod {} landed on {node}", pod.name_any());
        let status = pod.status.as_ref().unwrap();
        assert!(status.pod_ip.is_some(), "pod {} has no pod IP: {}", pod.name_any(), support::show(status));
    }
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn windows_deployment_without_toleration_stays_pending() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "sched-notol").await;
    let created = create_deployment(&ns, &deployment("web", 1, windows_pod_spec(false, &[]))).await;

    let pods = support::wait_for_deployment_pods(&client, &created, "marked unschedulable", TIMEOUT, |pods| {
        pods.len() == 1 && support::pod_condition(&pods[0], "PodScheduled").is_some_and(|c| c.status == "False")
    })
    .await;

    let pod = &pods[0];
    let scheduled = support::pod_condition(pod, "PodScheduled").unwrap();
    assert_eq!(scheduled.reason.as_deref(), Some("Unschedulable"), "{}", support::show(scheduled));
    let message = scheduled.message.as_deref().unwrap_or_default();
    assert!(
        // Kubernetes 1.37 says e.g. "0/5 nodes are available: 2 node(s) didn't match Pod's node
        // affinity/selector, 3 node(s) had untolerated taint(s). ..." (the taint itself is not named).
        message.contains("node(s) had untolerated taint")
            && message.contains("node(s) didn't match Pod's node affinity/selector"),
        "the Unschedulable message should blame the Windows nodes' taint and the Linux nodes' OS: {message}"
    );
    assert_eq!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending"));
    assert!(pod.spec.as_ref().unwrap().node_name.is_none(), "an unschedulable pod got a node: {}", support::show(pod));
    let deploy = ns.api::<Deployment>().get("web").await.unwrap();
    assert_eq!(deploy.status.and_then(|s| s.available_replicas).unwrap_or(0), 0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn pod_selecting_windows_build_lands_on_matching_node() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "sched-build").await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "ltsc2019" },
        "spec": windows_pod_spec(true, &[("node.kubernetes.io/windows-build", "10.0.17763")])
    }))
    .unwrap();
    let pods = ns.api::<Pod>();
    pods.create(&PostParams::default(), &pod).await.expect("cannot create pod");

    let pod = support::wait_for(&pods, "ltsc2019", "running and ready", TIMEOUT, |p: Option<&Pod>| {
        p.is_some_and(support::pod_running_and_ready)
    })
    .await
    .unwrap();
    assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("win2019-1"));
    ns.cleanup().await;
}

/// Deletes a Deployment with the given propagation and checks that its ReplicaSets and pods go too.
async fn assert_deletion_collects_children(client: &Client, ns: &TestNamespace, name: &str, dp: DeleteParams) {
    let created = create_deployment(ns, &deployment(name, 2, windows_pod_spec(true, &[]))).await;
    let deployments = ns.api::<Deployment>();
    support::wait_for(&deployments, name, "available", TIMEOUT, support::deployment_available()).await;
    let (replica_sets, pods) = support::deployment_children(client, &created).await;
    assert_eq!(replica_sets.len(), 1, "replicasets of {name}: {}", support::show(&replica_sets));
    assert_eq!(pods.len(), 2, "pods of {name}: {}", support::show(&pods));
    let child_uids: BTreeSet<String> =
        replica_sets.iter().filter_map(|r| r.uid()).chain(pods.iter().filter_map(|p| p.uid())).collect();

    deployments.delete(name, &dp).await.expect("cannot delete deployment");
    let uid = created.uid().unwrap();
    support::wait_for(&deployments, name, "deleted", TIMEOUT, conditions::is_deleted(&uid)).await;

    let selector = support::deployment_selector(&created);
    support::wait_for_list(&ns.api::<ReplicaSet>(), &selector, "all deleted", TIMEOUT, |rs| rs.is_empty()).await;
    support::wait_for_list(&ns.api::<Pod>(), &selector, "all deleted", TIMEOUT, |p| p.is_empty()).await;
    // Nothing that belonged to the deployment is left anywhere in the namespace, whatever its labels.
    let left_rs = ns.api::<ReplicaSet>().list(&ListParams::default()).await.unwrap().items;
    let left_pods = ns.api::<Pod>().list(&ListParams::default()).await.unwrap().items;
    let left: Vec<String> = left_rs
        .iter()
        .filter_map(|r| r.uid())
        .chain(left_pods.iter().filter_map(|p| p.uid()))
        .filter(|u| child_uids.contains(u))
        .collect();
    assert!(left.is_empty(), "children of {name} survived its deletion: {left:?}");
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn deleting_a_deployment_garbage_collects_replicasets_and_pods() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "gc").await;
    assert_deletion_collects_children(&client, &ns, "fg", DeleteParams::foreground()).await;
    assert_deletion_collects_children(&client, &ns, "bg", DeleteParams::background()).await;
    ns.cleanup().await;
}

fn assert_forbidden<T: std::fmt::Debug>(result: kube::Result<T>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{what}: expected 403 Forbidden, got {status:?}");
            assert_eq!(status.reason, "Forbidden", "{what}: {status:?}");
        }
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

async fn whoami(client: &Client) -> String {
    let review: SelfSubjectReview = serde_json::from_value(json!({})).unwrap();
    Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectReview is allowed to every authenticated user")
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn rbac_denies_a_serviceaccount_without_roles() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "rbac").await;
    let sa: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": "nobody" } })).unwrap();
    ns.api::<ServiceAccount>().create(&PostParams::default(), &sa).await.expect("cannot create serviceaccount");
    let username = format!("system:serviceaccount:{}:nobody", ns.name());

    // The admin may list them: a 403 below is RBAC's doing, not a broken API.
    ns.api::<Deployment>().list(&ListParams::default()).await.expect("the admin cannot list deployments");

    // 1. Impersonation, through the admin's credentials.
    let mut config = support::config().await;
    config.auth_info.impersonate = Some(username.clone());
    let impersonated = Client::try_from(config).unwrap();
    assert_eq!(whoami(&impersonated).await, username);
    assert_forbidden(
        Api::<Deployment>::namespaced(impersonated.clone(), ns.name()).list(&ListParams::default()).await,
        "impersonated list deployments",
    );

    // 2. A real token of the ServiceAccount from the TokenRequest API, as a pod would have it.
    let request: TokenRequest =
        serde_json::from_value(json!({ "spec": { "audiences": [], "expirationSeconds": 600 } })).unwrap();
    let token = ns
        .api::<ServiceAccount>()
        .create_token_request("nobody", &PostParams::default(), &request)
        .await
        .expect("cannot request a token")
        .status
        .and_then(|s| s.token)
        .expect("token request without a token");
    let admin = support::config().await;
    let mut config = Config::new(admin.cluster_url.clone());
    config.root_cert = admin.root_cert.clone();
    config.auth_info = AuthInfo { token: Some(token.into()), ..AuthInfo::default() };
    let sa_client = Client::try_from(config).unwrap();
    assert_eq!(whoami(&sa_client).await, username);
    assert_forbidden(
        Api::<Deployment>::namespaced(sa_client.clone(), ns.name()).list(&ListParams::default()).await,
        "list deployments with the serviceaccount's token",
    );
    assert_forbidden(
        Api::<Deployment>::all(sa_client).list(&ListParams::default()).await,
        "list deployments in all namespaces with the serviceaccount's token",
    );
    ns.cleanup().await;
}
