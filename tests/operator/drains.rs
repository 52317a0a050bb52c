//! Node drains against an app's PodDisruptionBudget: the eviction API (what `kubectl drain`
//! calls) refuses, with 429, an eviction that would take the app below its budget and lets the
//! others through; while a drain waits, the app says so; once there is room, the drain ends and
//! the app is Ready again on the other nodes. Every eviction is printed with its time and answer.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, EvictParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

use super::{SLOW, apply, cond, kubectl_ok, pool_node, ready_now, shared};
use crate::support::{TestNamespace, client, config, list_all, pod_running_and_ready, wait_for, wait_for_list};
use winapp_operator::api::WindowsApp;

const PODS: &str = "app.kubernetes.io/instance=web";

async fn cordon(nodes: &Api<Node>, name: &str, unschedulable: bool) {
    let patch = serde_json::json!({"spec": {"unschedulable": unschedulable}});
    nodes.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("cordon or uncordon a node");
}

/// The app's pods (not terminating) on `node`.
async fn pods_on(pods: &Api<Pod>, node: &str) -> Vec<String> {
    list_all(pods, PODS)
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .map(|p| p.name_any())
        .collect()
}

/// One eviction, as `kubectl drain` asks for it: true when allowed, false when refused with 429
/// (the budget). Printed with its time.
async fn evict(pods: &Api<Pod>, pod: &str, log: &mut Vec<String>) -> bool {
    let (allowed, answer) = match pods.evict(pod, &EvictParams::default()).await {
        Ok(_) => (true, "allowed (201)".to_owned()),
        Err(kube::Error::Api(e)) if e.code == 429 => (false, format!("REFUSED (429): {}", e.message)),
        Err(e) => panic!("evicting {pod}: {e}"),
    };
    let line = format!("{} evict {pod}: {answer}", Timestamp::now());
    println!("{line}");
    log.push(line);
    allowed
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_drain_never_evicts_an_app_below_its_budget_and_the_app_ends_ready_elsewhere() {
    let client: Client = client().await;
    let op = shared().await;
    let ns = TestNamespace::new(&client, "drain").await;
    kubectl_ok(&["annotate", "namespace", ns.name(), "winapp.dev/allowed-taints=winapp.dev/test-pool"], None);
    let id = ns.name().to_owned();
    // Three ltsc2022 nodes of a pool of the test's own: draining them disturbs no other test.
    let pool = format!("drain-{id}");
    let names: Vec<String> = ["a", "b", "c"].iter().map(|n| format!("drain-{n}-{id}")).collect();
    let (a, others) = (&names[0], &names[1..]);
    let nodes: Api<Node> = Api::all(client.clone());
    for name in &names {
        kubectl_ok(&["create", "-f", "-"], Some(&pool_node(name, &pool, &[])));
    }
    // The app starts on node a alone: the others are cordoned until the drain has waited.
    for other in others {
        cordon(&nodes, other, true).await;
    }
    apply(
        ns.name(),
        &format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: web}}\nspec:\n  image: registry.example.com/web:1\n  replicas: 3\n  windows:\n    version: ltsc2022\n    nodeSelector: {{winapp.dev/test-pool: {pool}}}\n    tolerations: [{{key: winapp.dev/test-pool, operator: Exists}}]\n"
        ),
    );
    let apps: Api<WindowsApp> = ns.api();
    let pods: Api<Pod> = ns.api();
    // Evictions go through a client that does not retry a 429 (kube's default does, for minutes):
    // each refusal is seen and printed, as kubectl drain sees it.
    let mut raw = config().await;
    raw.default_retry = false;
    let evictions: Api<Pod> = Api::namespaced(Client::try_from(raw).expect("a client"), ns.name());
    let budgets: Api<PodDisruptionBudget> = ns.api();
    wait_for(&apps, "web", "Ready", SLOW, ready_now).await.expect("app");
    let budget =
        wait_for(&budgets, "web", "the budget allows one eviction", SLOW, |b: Option<&PodDisruptionBudget>| {
            b.and_then(|b| b.status.as_ref()).is_some_and(|s| s.disruptions_allowed == Some(1))
        })
        .await
        .expect("the PodDisruptionBudget");
    let spec = budget.spec.expect("spec");
    assert_eq!(spec.max_unavailable, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1)));
    assert_eq!(spec.unhealthy_pod_eviction_policy.as_deref(), Some("AlwaysAllow"));
    let on_a = pods_on(&pods, a).await;
    assert_eq!(on_a.len(), 3, "all three pods on {a}");

    // 1. The drain starts: node a cordoned, its pods evicted. The first goes (the budget allows
    //    one), its replacement has no node to go to, so the others are refused for as long as
    //    that lasts, and the app says which drain waits on it.
    // How few pods served at any moment of the drain, sampled every 100 ms.
    let fewest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let sampler = {
        let (pods, fewest) = (pods.clone(), fewest.clone());
        tokio::spawn(async move {
            loop {
                let serving = list_all(&pods, PODS)
                    .await
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_running_and_ready(p))
                    .count();
                fewest.fetch_min(serving, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    println!(
        "{} cordon {a} (the drain starts); {} stay cordoned: no room elsewhere",
        Timestamp::now(),
        others.join(", ")
    );
    cordon(&nodes, a, true).await;
    let mut log = Vec::new();
    assert!(evict(&evictions, &on_a[0], &mut log).await, "the first eviction is within the budget");
    for _ in 0..3 {
        for pod in &on_a[1..] {
            assert!(!evict(&evictions, pod, &mut log).await, "an eviction below the budget must be refused");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let blocked = |app: Option<&WindowsApp>| {
        app.is_some_and(|a| {
            cond(a, "NodeDrainAllowed").is_some_and(|c| c.status == "False" && c.reason == "DrainBlocked")
        })
    };
    let app = wait_for(&apps, "web", "NodeDrainAllowed=False DrainBlocked", SLOW, blocked).await.expect("app");
    let msg = cond(&app, "NodeDrainAllowed").map(|c| c.message.clone()).unwrap_or_default();
    println!("{} status: NodeDrainAllowed=False DrainBlocked: {msg}", Timestamp::now());
    assert!(msg.contains(a.as_str()) && msg.contains("2 of its pods run there"), "{msg}");
    let disruption = app.status.as_ref().and_then(|s| s.disruption.clone()).expect("status.disruption");
    assert_eq!((disruption.budget.as_str(), disruption.allowed), ("web", 0));
    assert_eq!(disruption.blocking_drain_of, vec![a.clone()]);
    let blocked_gauge = op.metric("winapp_apps_drain_blocked").await.unwrap_or(0.0);
    println!("{} winapp_apps_drain_blocked {blocked_gauge}", Timestamp::now());
    assert!(blocked_gauge >= 1.0, "the gauge counts the app: {blocked_gauge}");
    let events =
        kubectl_ok(&["get", "events", "-n", ns.name(), "--field-selector", "reason=DrainBlocked", "-o", "name"], None);
    assert!(!events.trim().is_empty(), "a DrainBlocked event on the app");

    // 2. Room appears: the replacement runs on another node, and the drain goes on one pod at a
    //    time, as kubectl drain does (retry every second) until node a is empty.
    println!("{} uncordon {}: room for the replacements", Timestamp::now(), others.join(", "));
    for other in others {
        cordon(&nodes, other, false).await;
    }
    let started = Instant::now();
    loop {
        let left = pods_on(&pods, a).await;
        if left.is_empty() {
            break;
        }
        assert!(started.elapsed() < SLOW, "node {a} still runs {left:?}");
        for pod in &left {
            evict(&evictions, pod, &mut log).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!("{} node {a} drained in {:?}", Timestamp::now(), started.elapsed());
    let refused = log.iter().filter(|l| l.contains("REFUSED")).count();
    let allowed = log.iter().filter(|l| l.contains("allowed")).count();
    sampler.abort();
    let fewest = fewest.load(std::sync::atomic::Ordering::Relaxed);
    println!("evictions: {allowed} allowed, {refused} refused (429); fewest pods serving during the drain: {fewest}");
    assert_eq!(fewest, 2, "maxUnavailable 1 of 3: never fewer than 2 pods serving");
    assert_eq!(allowed, 3, "each of the three pods evicted once: {log:#?}");
    assert!(refused >= 6, "refused while the budget was spent: {log:#?}");

    // 3. The app is Ready again, three pods on the other nodes, and no drain waits on it.
    let done = |app: Option<&WindowsApp>| ready_now(app) && app.is_some_and(|a| cond(a, "NodeDrainAllowed").is_none());
    let app = wait_for(&apps, "web", "Ready elsewhere, no drain waiting", SLOW, done).await.expect("app");
    println!(
        "{} status: Ready {}",
        Timestamp::now(),
        cond(&app, "Ready").map(|c| c.message.clone()).unwrap_or_default()
    );
    let running = wait_for_list(&pods, PODS, "three pods on the other nodes", SLOW, |p: &[Pod]| {
        let live: Vec<&Pod> = p.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        live.len() == 3
            && live
                .iter()
                .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| others.contains(n)))
    })
    .await;
    assert_eq!(running.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count(), 3);
    assert!(app.status.as_ref().and_then(|s| s.disruption.as_ref()).is_some_and(|d| d.blocking_drain_of.is_empty()));

    // 4. `disruption: {enabled: false}`: the budget is pruned, and status.disruption goes.
    let spec = |disruption: &str| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: web}}\nspec:\n  image: registry.example.com/web:1\n  replicas: 3\n{disruption}  windows:\n    version: ltsc2022\n    nodeSelector: {{winapp.dev/test-pool: {pool}}}\n    tolerations: [{{key: winapp.dev/test-pool, operator: Exists}}]\n"
        )
    };
    apply(ns.name(), &spec("  disruption: {enabled: false}\n"));
    wait_for(&budgets, "web", "pruned", SLOW, |b: Option<&PodDisruptionBudget>| b.is_none()).await;
    let no_budget = |app: Option<&WindowsApp>| {
        ready_now(app) && app.is_some_and(|a| a.status.as_ref().is_some_and(|s| s.disruption.is_none()))
    };
    wait_for(&apps, "web", "no status.disruption", SLOW, no_budget).await.expect("app");

    for name in &names {
        let _ = nodes.delete(name, &DeleteParams::default()).await;
    }
    ns.cleanup().await;
}
