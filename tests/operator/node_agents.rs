//! Node agents: one pod on every matching Windows node (a DaemonSet), with the status contract of
//! the Deployment apps: Ready when every node the DaemonSet schedules on runs an available pod,
//! changes rolled node by node, a stuck rollout diagnosed and Stalled after the operator's own
//! deadline, and a switch to a Deployment that prunes the DaemonSet.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::Api;

use super::{SLOW, apply, cond, ready_now, stalled_with};
use crate::harness::{GROUP_LABEL, Operator, argocd_health, kstatus};
use crate::support::{TestNamespace, client, list_all, pod_running_and_ready, wait_for, wait_for_list};
use winapp_operator::api::WindowsApp;

fn agent(group: &str, spec: &str) -> String {
    format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: agent, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n  windows: {{version: ltsc2022}}\n  hostProcess: {{}}\n  ports: [{{name: metrics, containerPort: 9182}}]\n{spec}"
    )
}

fn image_of(pod: &Pod) -> String {
    pod.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default()
}

/// The Running and Ready pods of the agent, each on its own node: returns the nodes.
async fn nodes_running(client: &kube::Client, ns: &TestNamespace, image: &str) -> BTreeSet<String> {
    let pods = list_all(&ns.api::<Pod>(), "app.kubernetes.io/instance=agent").await;
    let running: Vec<&Pod> =
        pods.iter().filter(|p| pod_running_and_ready(p) && p.metadata.deletion_timestamp.is_none()).collect();
    let mut nodes = BTreeSet::new();
    for pod in running {
        assert_eq!(image_of(pod), image, "{} runs the current image", pod.name_any());
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).expect("scheduled");
        assert!(nodes.insert(node.clone()), "two agent pods on {node}");
        let node: Node = Api::all(client.clone()).get(&node).await.expect("node");
        assert_eq!(node.labels().get("node.kubernetes.io/windows-build").map(String::as_str), Some("10.0.20348"));
    }
    nodes
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn node_agents_run_one_pod_per_matching_node_and_roll_node_by_node() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "agents").await;
    // HostProcess on every node: the platform team grants it to this namespace.
    crate::harness::kubectl_ok(&["annotate", "namespace", ns.name(), "winapp.dev/allow=host-process,node-agent"], None);
    let group = format!("agents-{}", ns.name());
    let mut op = Operator::start_with(
        "agents",
        &format!("winapp-test-{}", ns.name()),
        &format!("{GROUP_LABEL}={group}"),
        crate::harness::setup(),
        &["--diagnose-after-seconds", "2"],
    );
    op.wait_leading().await;
    let apps: Api<WindowsApp> = ns.api();
    let daemon_sets: Api<DaemonSet> = ns.api();
    let deployments: Api<Deployment> = ns.api();

    // 1. Ready with an available pod on every ltsc2022 node, and nothing else: no Deployment,
    //    no Service.
    apply(ns.name(), &agent(&group, "  image: registry.example.com/agent:1\n  nodeAgent: true\n"));
    let app = wait_for(&apps, "agent", "Ready", SLOW, ready_now).await.expect("app");
    let ds = daemon_sets.get("agent").await.expect("the DaemonSet");
    let desired = ds.status.as_ref().map_or(0, |s| s.desired_number_scheduled);
    assert!(desired >= 2, "the dev cluster has at least two ltsc2022 nodes, the DaemonSet schedules on {desired}");
    let nodes = nodes_running(&client, &ns, "registry.example.com/agent:1").await;
    assert_eq!(nodes.len(), desired as usize, "one Running pod per scheduled node: {nodes:?}");
    let ready = cond(&app, "Ready").expect("Ready");
    assert!(ready.message.contains(&format!("each of the {desired} Windows node(s)")), "{}", ready.message);
    assert_eq!(app.status.as_ref().and_then(|s| s.available_replicas), Some(desired));
    assert_eq!((kstatus(&app).as_str(), argocd_health(&app).as_str()), ("Current", "Healthy"));
    assert!(deployments.get_opt("agent").await.expect("get").is_none(), "a node agent has no Deployment");
    assert!(ns.api::<k8s_openapi::api::core::v1::Service>().get_opt("agent").await.expect("get").is_none());
    let pod = list_all(&ns.api::<Pod>(), "app.kubernetes.io/instance=agent").await.into_iter().next().expect("pod");
    let spec = pod.spec.expect("pod spec");
    assert_eq!(spec.host_network, Some(true));
    assert_eq!(
        spec.security_context.and_then(|s| s.windows_options).and_then(|w| w.host_process),
        Some(true),
        "HostProcess agent"
    );

    // 2. A new image rolls node by node (maxUnavailable 1) and ends Ready on every node again.
    apply(ns.name(), &agent(&group, "  image: registry.example.com/agent:2\n  nodeAgent: true\n"));
    wait_for(&apps, "agent", "Ready at the new generation", SLOW, ready_now).await;
    wait_for_list(&ns.api::<Pod>(), "app.kubernetes.io/instance=agent", "all on the new image", SLOW, |pods| {
        pods.len() == desired as usize && pods.iter().all(|p| image_of(p) == "registry.example.com/agent:2")
    })
    .await;
    assert_eq!(nodes_running(&client, &ns, "registry.example.com/agent:2").await, nodes);

    // 3. A crash loop: diagnosed from the pods, Stalled once the operator's deadline for the
    //    DaemonSet passes (DaemonSets have no progress deadline of their own).
    apply(
        ns.name(),
        &agent(
            &group,
            "  image: play.invalid/crash:ltsc2022\n  nodeAgent: true\n  rollout: {progressDeadlineSeconds: 5}\n",
        ),
    );
    let stuck = wait_for(&apps, "agent", "Stalled CrashLoopBackOff", SLOW, stalled_with("CrashLoopBackOff"))
        .await
        .expect("app");
    let msg = cond(&stuck, "Stalled").map(|c| c.message.clone()).unwrap_or_default();
    for word in ["progressDeadlineSeconds", "nodes available", "kubectl logs"] {
        assert!(msg.contains(word), "the Stalled message should mention {word:?}: {msg}");
    }
    assert_eq!(kstatus(&stuck), "Failed");

    // 4. The same app as a Deployment: the DaemonSet is pruned, the Deployment takes over.
    apply(ns.name(), &agent(&group, "  image: registry.example.com/agent:2\n  replicas: 1\n"));
    wait_for(&apps, "agent", "Ready as a Deployment", SLOW, ready_now).await;
    assert!(deployments.get_opt("agent").await.expect("get").is_some(), "the Deployment");
    wait_for_list(&daemon_sets, "app.kubernetes.io/instance=agent", "pruned", SLOW, |d| d.is_empty()).await;

    // 5. Refused at the API server: a node agent has no replica count.
    let refused = crate::harness::kubectl(
        &["apply", "-n", ns.name(), "-f", "-"],
        Some(&agent(&group, "  image: registry.example.com/agent:2\n  nodeAgent: true\n  replicas: 2\n")),
    );
    let err = refused.expect_err("nodeAgent with replicas is refused");
    assert!(err.contains("nodeAgent runs one pod on every matching Windows node: remove replicas"), "{err}");

    ns.cleanup().await;
    op.stop();
}
