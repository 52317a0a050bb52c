//! Moving an app to another Windows Server build (README: Moving an app to another Windows Server
//! build): a change of `spec.windows.version` and the image's tag runs the new build's pods next
//! to the old ones, and the old go only once new ones are Ready, whatever `spec.rollout` says; a
//! watcher of the Service's EndpointSlices checks that the ready endpoints never drop, and prints
//! a timeline of endpoints and status. A move to a build with no nodes stalls with
//! `BuildMigrationStalled` while the old pods keep serving, and going back recovers.
//!
//! Each test has a pool of its own (KWOK nodes labelled and tainted `winapp.dev/test-pool`): one
//! ltsc2019 node and, for the move that succeeds, two ltsc2022 nodes; so no other test's nodes
//! (the dev cluster's win2019-1, or a ltsc2025 node another test adds) decide the outcome.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};

use super::{SLOW, apply, cond, kubectl_ok, pool_node, ready_now, shared, stalled_with};
use crate::support::{TestNamespace, client, list_all, pod_running_and_ready, wait_for, wait_for_list};
use winapp_operator::api::WindowsApp;
use winapp_operator::build::workload::{MIGRATING_FROM_ANNOTATION, WINDOWS_BUILD_LABEL};

const PODS: &str = "app.kubernetes.io/instance=web";

/// A Windows node of build `build` in the test's own pool.
fn node_of_build(name: &str, pool: &str, build: &str) -> String {
    let server = if build == "10.0.17763" { "2019" } else { "2022" };
    pool_node(name, pool, &[])
        .replace("10.0.20348", build)
        .replace("Windows Server 2022", &format!("Windows Server {server}"))
}

/// The app: two replicas behind a Service, in the pool, with limits that would take an old pod
/// down before its replacement is Ready (the move overrides them). Its pods turn Ready 3 s after
/// they start (hack/controlplane/stages/pod-slow-ready.yaml), as Windows pods take their time:
/// long enough for the status to show the move.
fn web(pool: &str, version: &str, extra: &str) -> String {
    web_with(pool, version, &format!("registry.example.com/orders/web:4.8.1-{version}"), extra)
}

/// [`web`] with another image (one of KWOK's plays of hack/controlplane/stages/pod-failures.yaml
/// gets no delay: that stage alone must decide the pod's fate).
fn web_with(pool: &str, version: &str, image: &str, extra: &str) -> String {
    let delay = if image.starts_with("play.invalid/") { "" } else { "winapp.dev/play-ready-delay: 3s" };
    format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: web}}\nspec:\n  image: {image}\n  replicas: 2\n  ports: [{{name: http, containerPort: 80}}]\n  service: {{ports: [{{name: http, port: 80}}]}}\n  rollout: {{maxSurge: 0, maxUnavailable: 1{extra}}}\n  podTemplate: {{metadata: {{annotations: {{{delay}}}}}}}\n  windows:\n    version: {version}\n    nodeSelector: {{winapp.dev/test-pool: {pool}}}\n    tolerations: [{{key: winapp.dev/test-pool, operator: Exists}}]\n"
    )
}

/// What happened, as `+12.3s what`, in order.
#[derive(Clone)]
struct Timeline {
    start: Instant,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Timeline {
    fn new() -> Self {
        Timeline { start: Instant::now(), lines: Arc::new(Mutex::new(Vec::new())) }
    }

    fn note(&self, what: String) {
        let line = format!("+{:6.2}s {what}", self.start.elapsed().as_secs_f64());
        println!("{line}");
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// The ready endpoints of the Service's slices, as `pod@node`, sorted.
fn ready_endpoints(slices: &[Arc<EndpointSlice>]) -> Vec<String> {
    let mut out: Vec<String> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .map(|e| {
            let pod = e.target_ref.as_ref().and_then(|t| t.name.clone()).unwrap_or_default();
            format!("{pod}@{}", e.node_name.clone().unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

/// The ready endpoints now, and the fewest seen since [`Endpoints::arm`].
#[derive(Default)]
struct Counts {
    now: usize,
    fewest: Option<usize>,
}

/// What the watcher of the Service's EndpointSlices saw.
#[derive(Clone, Default)]
struct Endpoints(Arc<Mutex<Counts>>);

impl Endpoints {
    fn now(&self) -> usize {
        self.0.lock().map(|c| c.now).unwrap_or(0)
    }

    /// From now on, keep the fewest ready endpoints seen.
    fn arm(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.fewest = Some(c.now);
        }
    }

    fn fewest(&self) -> Option<usize> {
        self.0.lock().ok().and_then(|c| c.fewest)
    }

    fn saw(&self, ready: usize) {
        if let Ok(mut c) = self.0.lock() {
            c.now = ready;
            c.fewest = c.fewest.map(|f| f.min(ready));
        }
    }

    /// Waits until the Service has `n` ready endpoints.
    async fn wait(&self, n: usize) {
        let started = Instant::now();
        while self.now() != n {
            assert!(started.elapsed() < SLOW, "the Service never had {n} ready endpoints");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Watches the Service's EndpointSlices, noting each change of the ready endpoints.
fn watch_endpoints(client: &Client, ns: &str, timeline: Timeline) -> (tokio::task::JoinHandle<()>, Endpoints) {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let endpoints = Endpoints::default();
    let seen = endpoints.clone();
    let handle = tokio::spawn(async move {
        let (reader, writer) = reflector::store();
        let cfg = watcher::Config::default().labels("kubernetes.io/service-name=web");
        // Every event, not only applied objects: the store takes the initial list at InitDone.
        let stream = reflector(writer, watcher(api, cfg)).default_backoff();
        futures::pin_mut!(stream);
        let mut last: Option<Vec<String>> = None;
        while let Some(event) = stream.next().await {
            if event.is_err() {
                continue;
            }
            let ready = ready_endpoints(&reader.state());
            if last.as_ref() != Some(&ready) {
                timeline.note(format!("endpoints: {} ready [{}]", ready.len(), ready.join(", ")));
                seen.saw(ready.len());
                last = Some(ready);
            }
        }
    });
    (handle, endpoints)
}

/// Watches the app: notes each change of Ready's status, reason and message.
fn watch_status(apps: Api<WindowsApp>, timeline: Timeline) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let stream = watcher(apps, watcher::Config::default().fields("metadata.name=web")).applied_objects();
        futures::pin_mut!(stream);
        let mut last = None;
        while let Some(Ok(app)) = stream.next().await {
            let ready = cond(&app, "Ready").map(|c| format!("Ready={} {}: {}", c.status, c.reason, c.message));
            if ready.is_some() && ready != last {
                timeline.note(format!("status: {}", ready.clone().unwrap_or_default()));
                last = ready;
            }
        }
    })
}

/// The app's live pods and the build their nodes run.
async fn pods_by_build(client: &Client, pods: &Api<Pod>) -> Vec<(String, String)> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut out = Vec::new();
    for p in list_all(pods, PODS).await.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        let build = match nodes.get_opt(&node).await.ok().flatten() {
            Some(n) => n.labels().get(WINDOWS_BUILD_LABEL).cloned().unwrap_or_default(),
            None => "-".into(),
        };
        out.push((p.name_any(), build));
    }
    out
}

/// The test's pool nodes, deleted when it ends, also when it fails (a node left behind would
/// change other tests' scheduling messages).
struct PoolNodes(Vec<String>);

impl PoolNodes {
    fn create(&mut self, name: String, pool: &str, build: &str) {
        kubectl_ok(&["create", "-f", "-"], Some(&node_of_build(&name, pool, build)));
        self.0.push(name);
    }
}

impl Drop for PoolNodes {
    fn drop(&mut self) {
        let mut args = vec!["delete", "node", "--ignore-not-found", "--wait=false"];
        args.extend(self.0.iter().map(String::as_str));
        if let Err(e) = crate::support::kubectl(&args, None) {
            eprintln!("could not delete the test's nodes {:?}: {e}", self.0);
        }
    }
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_move_to_another_windows_build_never_leaves_the_service_without_ready_endpoints() {
    let client = client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "migrate").await;
    kubectl_ok(&["annotate", "namespace", ns.name(), "winapp.dev/allowed-taints=winapp.dev/test-pool"], None);
    let id = ns.name().to_owned();
    let pool = format!("migrate-{id}");
    let mut nodes = PoolNodes(Vec::new());
    nodes.create(format!("m2019-{id}"), &pool, "10.0.17763");
    nodes.create(format!("m2022a-{id}"), &pool, "10.0.20348");
    nodes.create(format!("m2022b-{id}"), &pool, "10.0.20348");

    apply(ns.name(), &web(&pool, "ltsc2019", ""));
    let apps: Api<WindowsApp> = ns.api();
    let pods: Api<Pod> = ns.api();
    wait_for(&apps, "web", "Ready on ltsc2019", SLOW, ready_now).await.expect("app");
    let before = pods_by_build(&client, &pods).await;
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(before.iter().all(|(_, b)| b == "10.0.17763"), "both pods on the ltsc2019 node: {before:?}");

    let timeline = Timeline::new();
    let (watch, endpoints) = watch_endpoints(&client, ns.name(), timeline.clone());
    let status = watch_status(apps.clone(), timeline.clone());
    // Both pods Ready behind the Service before the move; from then on the fewest is kept.
    endpoints.wait(2).await;
    endpoints.arm();

    timeline
        .note("apply: spec.windows.version ltsc2019 -> ltsc2022, image tag 4.8.1-ltsc2019 -> 4.8.1-ltsc2022".into());
    apply(ns.name(), &web(&pool, "ltsc2022", ""));
    let deployments: Api<Deployment> = ns.api();
    let moved = |a: Option<&WindowsApp>| ready_now(a) && a.is_some_and(|a| a.metadata.generation == Some(2));
    wait_for(&apps, "web", "Ready on ltsc2022", SLOW, moved).await.expect("app");
    let after = wait_for_list(&pods, PODS, "two pods, none terminating", SLOW, |p: &[Pod]| {
        p.len() == 2 && p.iter().all(|p| p.metadata.deletion_timestamp.is_none() && pod_running_and_ready(p))
    })
    .await;
    // The Deployment is back at the app's own limits, and says no move any more.
    let settled = wait_for(&deployments, "web", "back at the app's limits", SLOW, |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            let rolling = d.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
            rolling.is_some_and(|r| r.max_unavailable == Some(IntOrString::Int(1)))
                && !d.annotations().contains_key(MIGRATING_FROM_ANNOTATION)
        })
    })
    .await
    .expect("deployment");
    timeline.note(format!(
        "done: {} (the Deployment's limits back at maxSurge 0, maxUnavailable 1; no {MIGRATING_FROM_ANNOTATION})",
        after.iter().map(|p| p.name_any()).collect::<Vec<_>>().join(", ")
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    watch.abort();
    status.abort();

    let now = pods_by_build(&client, &pods).await;
    assert!(now.iter().all(|(_, b)| b == "10.0.20348"), "both pods on ltsc2022 nodes: {now:?}");
    let lines = timeline.lines();
    let fewest = endpoints.fewest();
    println!("fewest ready endpoints during the move: {fewest:?}");
    assert_eq!(
        fewest,
        Some(2),
        "never fewer than 2 ready endpoints (maxUnavailable 0 during the move):\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| l.contains("status: Ready=False") && l.contains("migrating from ltsc2019 to ltsc2022")),
        "the status said it was migrating:\n{}",
        lines.join("\n")
    );
    let selector = settled.spec.template.spec.and_then(|s| s.node_selector).unwrap_or_default();
    assert_eq!(selector.get(WINDOWS_BUILD_LABEL).map(String::as_str), Some("10.0.20348"));

    ns.cleanup().await;
    drop(nodes);
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_move_to_a_build_without_nodes_stalls_and_the_old_pods_keep_serving() {
    let client = client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "migrate-stall").await;
    kubectl_ok(&["annotate", "namespace", ns.name(), "winapp.dev/allowed-taints=winapp.dev/test-pool"], None);
    let id = ns.name().to_owned();
    let pool = format!("stall-{id}");
    let mut nodes = PoolNodes(Vec::new());
    nodes.create(format!("s2019-{id}"), &pool, "10.0.17763");

    let deadline = ", progressDeadlineSeconds: 10";
    apply(ns.name(), &web(&pool, "ltsc2019", deadline));
    let apps: Api<WindowsApp> = ns.api();
    let pods: Api<Pod> = ns.api();
    wait_for(&apps, "web", "Ready on ltsc2019", SLOW, ready_now).await.expect("app");
    let timeline = Timeline::new();
    let (watch, endpoints) = watch_endpoints(&client, ns.name(), timeline.clone());
    let status = watch_status(apps.clone(), timeline.clone());
    endpoints.wait(2).await;
    endpoints.arm();

    // The pool has no ltsc2022 node: the new pod waits Pending, the old pods serve, and past the
    // deadline the app is Stalled with the move's reason.
    timeline.note("apply: spec.windows.version ltsc2019 -> ltsc2022 (no ltsc2022 node in the pool)".into());
    apply(ns.name(), &web(&pool, "ltsc2022", deadline));
    let app = wait_for(&apps, "web", "Stalled BuildMigrationStalled", SLOW, stalled_with("BuildMigrationStalled"))
        .await
        .expect("app");
    let msg = cond(&app, "Stalled").map(|c| c.message.clone()).unwrap_or_default();
    let line = kubectl_ok(&["get", "windowsapp", "web", "-n", ns.name()], None);
    timeline.note(format!("kubectl get windowsapp web:\n{line}"));
    assert!(
        msg.starts_with("migrating from ltsc2019 to ltsc2022 stalled: no Ready Windows nodes of ltsc2022 (10.0.20348)"),
        "{msg}"
    );
    assert!(msg.contains("the 2 ltsc2019 pod(s) keep serving"), "{msg}");
    assert!(msg.contains("set spec.windows.version back to ltsc2019"), "{msg}");
    assert!(line.contains("BuildMigrationStalled") && line.contains("ltsc2022"), "{line}");
    assert_eq!(app.status.as_ref().and_then(|s| s.available_replicas), Some(2), "both old pods available");
    let serving: Vec<(String, String)> = pods_by_build(&client, &pods).await;
    let old = serving.iter().filter(|(_, b)| b == "10.0.17763").count();
    assert_eq!(old, 2, "the two ltsc2019 pods run on: {serving:?}");

    // Back to ltsc2019: the pending pod goes, and the app is Ready again on the same pods.
    timeline.note("apply: spec.windows.version back to ltsc2019".into());
    apply(ns.name(), &web(&pool, "ltsc2019", deadline));
    let back = |a: Option<&WindowsApp>| ready_now(a) && a.is_some_and(|a| a.metadata.generation == Some(3));
    wait_for(&apps, "web", "Ready on ltsc2019 again", SLOW, back).await.expect("app");
    wait_for_list(&pods, PODS, "the two ltsc2019 pods alone", SLOW, |p: &[Pod]| {
        p.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count() == 2
    })
    .await;

    // A ltsc2022 node joins the pool, and the app moves there with an image that does not run on
    // it (its tag names no build, so validation cannot tell; KWOK plays the node's refusal): the
    // new pod fails, the old pods serve, and the app stalls with what the pod reports.
    nodes.create(format!("s2022-{id}"), &pool, "10.0.20348");
    timeline.note("apply: ltsc2022 with image play.invalid/os-mismatch:built-for-2019 (a ltsc2022 node joined)".into());
    apply(ns.name(), &web_with(&pool, "ltsc2022", "play.invalid/os-mismatch:built-for-2019", deadline));
    let mismatch = |a: Option<&WindowsApp>| {
        stalled_with("BuildMigrationStalled")(a)
            && a.and_then(|a| cond(a, "Stalled")).is_some_and(|c| c.message.contains("ImageOSMismatch"))
    };
    let app = wait_for(&apps, "web", "Stalled with the pods' ImageOSMismatch", SLOW, mismatch).await.expect("app");
    let msg = cond(&app, "Stalled").map(|c| c.message.clone()).unwrap_or_default();
    let line = kubectl_ok(&["get", "windowsapp", "web", "-n", ns.name()], None);
    timeline.note(format!("kubectl get windowsapp web:\n{line}"));
    assert!(msg.starts_with("migrating from ltsc2019 to ltsc2022 stalled: 0 of 2 new pod(s) Ready"), "{msg}");
    assert!(msg.contains("the 2 ltsc2019 pod(s) keep serving") && msg.contains("fix the new pods"), "{msg}");
    assert_eq!(endpoints.now(), 2, "the old pods serve");

    tokio::time::sleep(Duration::from_secs(1)).await;
    watch.abort();
    status.abort();
    let fewest = endpoints.fewest();
    println!("fewest ready endpoints during the stalled moves and back: {fewest:?}");
    assert_eq!(fewest, Some(2), "the old pods served throughout:\n{}", timeline.lines().join("\n"));

    ns.cleanup().await;
    drop(nodes);
}
