//! Image warm-up (README, "Image warm-up"): a change of the image is pulled on every node of the
//! app's pool by the warm-up DaemonSet before the Deployment rolls to it, while the old pods keep
//! serving. KWOK plays a slow pull (hack/controlplane/stages/pull-20s.yaml: 20 s Pending for
//! `play.invalid/pull-20s:*`). The test prints the timeline it observed, every 200 ms, and holds
//! the order of events to what the README says.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use super::{apply, cond, kubectl_ok, pool_node, ready_now, shared};
use crate::support::{TestNamespace, client, list_all, pod_condition, pod_running_and_ready, wait_for};
use winapp_operator::api::WindowsApp;

const WARM_PODS: &str = "app.kubernetes.io/name=winapp-warm-up,app.kubernetes.io/instance=web";
const APP_PODS: &str = "app.kubernetes.io/name=web,app.kubernetes.io/instance=web";
const OLD: &str = "registry.example.com/web:1-ltsc2022";
const NEW: &str = "play.invalid/pull-20s:ltsc2022";
const LONG: Duration = Duration::from_secs(300);

/// One pod as the sampler sees it.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    node: String,
    image: String,
    ready: bool,
    terminating: bool,
}

/// The image a pod pulls: a warm-up pod's init container, an app pod's container.
fn image_of(p: &Pod) -> String {
    let spec = p.spec.as_ref();
    let init = spec.and_then(|s| s.init_containers.as_ref()).and_then(|c| c.first()).and_then(|c| c.image.clone());
    init.or_else(|| spec.and_then(|s| s.containers.first()).and_then(|c| c.image.clone())).unwrap_or_default()
}

fn seen(p: &Pod) -> Seen {
    Seen {
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_else(|| "-".into()),
        image: image_of(p),
        ready: pod_running_and_ready(p),
        terminating: p.metadata.deletion_timestamp.is_some(),
    }
}

/// What the sampler observed, in order, with the time since the image changed.
#[derive(Default)]
struct Timeline {
    lines: Vec<String>,
    /// When each warm-up pod of the new image was first seen ready.
    warm_ready: BTreeMap<String, f64>,
    /// When each app pod of the new image was first seen at all.
    new_app_pods: BTreeMap<String, f64>,
    /// When the Deployment's template was first seen with the new image.
    deployment_new: Option<f64>,
    /// Fewest ready app pods at any sample.
    fewest_serving: usize,
    /// The warm-up messages seen while the Deployment waited.
    warming: Vec<String>,
}

impl Timeline {
    fn note(&mut self, t: f64, line: String) {
        let line = format!("+{t:6.1}s {line}");
        println!("{line}");
        self.lines.push(line);
    }
}

/// Samples pods, the Deployment, the DaemonSet and the app every 200 ms until `done` holds.
async fn sample(ns: &TestNamespace, start: Instant, until: impl Fn(&WindowsApp, &Deployment) -> bool) -> Timeline {
    let (pods, deployments, daemon_sets, apps): (Api<Pod>, Api<Deployment>, Api<DaemonSet>, Api<WindowsApp>) =
        (ns.api(), ns.api(), ns.api(), ns.api());
    let mut t = Timeline { fewest_serving: usize::MAX, ..Timeline::default() };
    let mut last: BTreeMap<String, Seen> = BTreeMap::new();
    let (mut last_image, mut last_status, mut last_ds) = (String::new(), String::new(), String::new());
    let deadline = start + LONG;
    let mut first = true;
    loop {
        let now = start.elapsed().as_secs_f64();
        let mut current = BTreeMap::new();
        for (kind, selector) in [("warm-up", WARM_PODS), ("app", APP_PODS)] {
            for p in list_all(&pods, selector).await {
                current.insert(format!("{kind} pod {}", p.name_any()), seen(&p));
            }
        }
        let serving = current.iter().filter(|(k, s)| k.starts_with("app") && s.ready && !s.terminating).count();
        t.fewest_serving = t.fewest_serving.min(serving);
        for (key, s) in &current {
            let was = last.get(key);
            let what = match was {
                None if first => {
                    Some(format!("running on {} ({}{})", s.node, s.image, if s.ready { ", ready" } else { "" }))
                }
                None => Some(format!("created on {} ({})", s.node, s.image)),
                Some(w) if s.ready && !w.ready => Some(format!("ready on {} ({})", s.node, s.image)),
                Some(w) if s.terminating && !w.terminating => Some("terminating".to_owned()),
                _ => None,
            };
            if let Some(what) = what {
                t.note(now, format!("{key} {what}; app pods serving: {serving}"));
            }
            if s.image == NEW && key.starts_with("warm-up") && s.ready {
                t.warm_ready.entry(key.clone()).or_insert(now);
            }
            if s.image == NEW && key.starts_with("app") {
                t.new_app_pods.entry(key.clone()).or_insert(now);
            }
        }
        for gone in last.keys().filter(|k| !current.contains_key(*k)) {
            t.note(now, format!("{gone} gone; app pods serving: {serving}"));
        }
        last = current;
        first = false;
        let deployment = deployments.get("web").await.expect("the Deployment");
        let image = winapp_operator::build::warmup::app_image(&deployment).unwrap_or_default().to_owned();
        if image != last_image {
            t.note(now, format!("Deployment web: template image {image}"));
            if image == NEW {
                t.deployment_new.get_or_insert(now);
            }
            last_image = image;
        }
        if let Some(ds) = daemon_sets.get_opt("web-warmup").await.expect("the DaemonSet").and_then(|d| d.status) {
            let line = format!(
                "DaemonSet web-warmup: desired {}, updated {}, ready {}",
                ds.desired_number_scheduled,
                ds.updated_number_scheduled.unwrap_or(0),
                ds.number_ready
            );
            if line != last_ds {
                t.note(now, line.clone());
                last_ds = line;
            }
        }
        let app = apps.get("web").await.expect("the app");
        let status = ["Ready", "ImageWarm"]
            .iter()
            .filter_map(|c| cond(&app, c).map(|x| format!("{c}={} {}: {}", x.status, x.reason, x.message)))
            .collect::<Vec<_>>()
            .join(" | ");
        if status != last_status {
            t.note(now, format!("status: {status}"));
            if let Some(w) = cond(&app, "ImageWarm").filter(|c| c.reason == "WarmingImage") {
                t.warming.push(w.message.clone());
            }
            last_status = status;
        }
        if until(&app, &deployment) {
            return t;
        }
        assert!(Instant::now() < deadline, "the rollout did not finish in {LONG:?}:\n{}", t.lines.join("\n"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn image_warm_up_holds_the_deployment_on_its_image_until_every_node_has_pulled_the_new_one() {
    let client = client().await;
    let _op = shared().await;
    let ns = TestNamespace::new(&client, "warmup").await;
    kubectl_ok(&["annotate", "namespace", ns.name(), "winapp.dev/allowed-taints=winapp.dev/test-pool"], None);
    let id = ns.name().to_owned();
    // Three ltsc2022 nodes of a pool of the test's own: the warm-up runs on them and no other.
    let pool = format!("warm-{id}");
    for n in ["a", "b", "c"] {
        kubectl_ok(&["create", "-f", "-"], Some(&pool_node(&format!("warm-{n}-{id}"), &pool, &[])));
    }
    let spec = |image: &str| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: web}}\nspec:\n  image: {image}\n  replicas: 2\n  warmUp: {{enabled: true}}\n  windows:\n    version: ltsc2022\n    nodeSelector: {{winapp.dev/test-pool: {pool}}}\n    tolerations: [{{key: winapp.dev/test-pool, operator: Exists}}]\n"
        )
    };
    apply(ns.name(), &spec(OLD));
    let apps: Api<WindowsApp> = ns.api();
    // The first creation does not wait for the warm-up: it is Ready once the pods and the
    // DaemonSet's pods run, with the image pulled on the pool's 3 nodes.
    let warm = |a: Option<&WindowsApp>| {
        ready_now(a)
            && a.and_then(|a| cond(a, "ImageWarm")).is_some_and(|c| c.status == "True" && c.reason == "ImagePulled")
    };
    let app = wait_for(&apps, "web", "Ready with ImageWarm=True", LONG, warm).await.expect("the app");
    let msg = cond(&app, "ImageWarm").map(|c| c.message.clone()).unwrap_or_default();
    assert_eq!(msg, format!("image {OLD} pulled on 3 of 3 node(s)"));

    // The change of image, timed from here.
    let start = Instant::now();
    println!("+   0.0s spec.image {OLD} -> {NEW}");
    let patch = serde_json::json!({"spec": {"image": NEW}});
    apps.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("change the image");
    let done = |a: &WindowsApp, d: &Deployment| {
        ready_now(Some(a))
            && winapp_operator::build::warmup::app_image(d) == Some(NEW)
            && d.status.as_ref().is_some_and(|s| {
                s.updated_replicas == Some(2) && s.available_replicas == Some(2) && s.replicas == Some(2)
            })
    };
    let t = sample(&ns, start, done).await;

    // 1. Every node pulled the new image before the Deployment asked for it, and before any app
    //    pod of the new image existed.
    assert_eq!(t.warm_ready.len(), 3, "a warm-up pod of the new image on each of the 3 nodes: {:?}", t.warm_ready);
    let all_warm = t.warm_ready.values().copied().fold(0.0, f64::max);
    let deployment_new = t.deployment_new.expect("the Deployment got the new image");
    let first_new_pod = t.new_app_pods.values().copied().fold(f64::MAX, f64::min);
    println!(
        "last warm-up pod ready at +{all_warm:.1}s; Deployment template on the new image at +{deployment_new:.1}s; first app pod of the new image at +{first_new_pod:.1}s; fewest app pods serving: {}",
        t.fewest_serving
    );
    assert!(all_warm >= 19.0, "the slow pull takes 20 s: the warm-up pods were ready after {all_warm:.1} s");
    assert!(
        deployment_new >= all_warm,
        "the Deployment got the new image at {deployment_new:.1} s, before the warm-up ended at {all_warm:.1} s"
    );
    assert!(
        first_new_pod >= all_warm,
        "an app pod of the new image appeared at {first_new_pod:.1} s, before the warm-up ended at {all_warm:.1} s"
    );
    // The same order in the API server's own timestamps (to the second).
    let pods: Api<Pod> = ns.api();
    let warm_ready_at = list_all(&pods, WARM_PODS)
        .await
        .iter()
        .filter(|p| image_of(p) == NEW)
        .filter_map(|p| pod_condition(p, "Ready").and_then(|c| c.last_transition_time.as_ref().map(|t| t.0)))
        .max()
        .expect("warm-up pods");
    for p in list_all(&pods, APP_PODS).await.iter().filter(|p| image_of(p) == NEW) {
        let created = p.metadata.creation_timestamp.as_ref().expect("created").0;
        assert!(
            created >= warm_ready_at,
            "pod {} created at {created}, before the warm-up was ready at {warm_ready_at}",
            p.name_any()
        );
    }
    // 2. The old pods kept serving: never fewer than the 2 replicas ready.
    assert!(t.fewest_serving >= 2, "app pods serving fell to {}", t.fewest_serving);
    // 3. The status said what it waited for.
    assert!(
        t.warming.iter().any(|m| m.starts_with(&format!("image {NEW} pulled on "))
            && m.contains("of 3 node(s); the Deployment keeps running registry.example.com/web:1-ltsc2022")),
        "{:?}",
        t.warming
    );
    let app = wait_for(&apps, "web", "ImageWarm=True", LONG, warm).await.expect("the app");
    assert_eq!(
        cond(&app, "ImageWarm").map(|c| c.message.clone()).unwrap_or_default(),
        format!("image {NEW} pulled on 3 of 3 node(s)")
    );
    for n in ["a", "b", "c"] {
        kubectl_ok(&["delete", "node", &format!("warm-{n}-{id}"), "--wait=false"], None);
    }
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_warm_up_past_its_deadline_stalls_naming_the_node_and_the_old_pods_keep_serving() {
    let client = client().await;
    let _op = shared().await;
    let ns = TestNamespace::new(&client, "warmdl").await;
    kubectl_ok(&["annotate", "namespace", ns.name(), "winapp.dev/allowed-taints=winapp.dev/test-pool"], None);
    let id = ns.name().to_owned();
    let pool = format!("warmdl-{id}");
    let names: Vec<String> = ["a", "b", "full"].iter().map(|n| format!("warmdl-{n}-{id}")).collect();
    for name in &names[..2] {
        kubectl_ok(&["create", "-f", "-"], Some(&pool_node(name, &pool, &[])));
    }
    // A node of the pool with no room for another pod: its warm-up pod never starts.
    let mut full: serde_json::Value = serde_json::from_str(&pool_node(&names[2], &pool, &[])).expect("a node");
    full["status"]["allocatable"]["pods"] = "0".into();
    full["status"]["capacity"]["pods"] = "0".into();
    kubectl_ok(&["create", "-f", "-"], Some(&full.to_string()));
    let spec = |image: &str| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: web}}\nspec:\n  image: {image}\n  replicas: 2\n  warmUp: {{enabled: true, deadlineSeconds: 60}}\n  windows:\n    version: ltsc2022\n    nodeSelector: {{winapp.dev/test-pool: {pool}}}\n    tolerations: [{{key: winapp.dev/test-pool, operator: Exists}}]\n"
        )
    };
    apply(ns.name(), &spec(OLD));
    let apps: Api<WindowsApp> = ns.api();
    // Created without waiting: Ready on the two nodes with room, the image pulled on 2 of 3.
    let app = wait_for(&apps, "web", "Ready", LONG, ready_now).await.expect("the app");
    let warm = cond(&app, "ImageWarm").expect("ImageWarm");
    println!("created: ImageWarm={} {}: {}", warm.status, warm.reason, warm.message);
    assert_eq!((warm.status.as_str(), warm.reason.as_str()), ("False", "WarmingImage"));
    assert!(warm.message.starts_with(&format!("image {OLD} pulled on 2 of 3 node(s)")), "{}", warm.message);

    let new = "registry.example.com/web:2-ltsc2022";
    let start = Instant::now();
    let patch = serde_json::json!({"spec": {"image": new}});
    apps.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("change the image");
    let stalled = |a: Option<&WindowsApp>| {
        a.and_then(|a| cond(a, "Stalled")).is_some_and(|c| c.status == "True" && c.reason == "WarmUpDeadlineExceeded")
    };
    let app =
        wait_for(&apps, "web", "Stalled WarmUpDeadlineExceeded", Duration::from_secs(180), stalled).await.expect("app");
    let after = start.elapsed().as_secs_f64();
    let msg = cond(&app, "Stalled").map(|c| c.message.clone()).unwrap_or_default();
    println!("+{after:.1}s Stalled=True WarmUpDeadlineExceeded: {msg}");
    assert!(after >= 59.0, "Stalled after {after:.1} s, before the 60 s deadline");
    let expected = format!("image {new} pulled on 2 of 3 node(s) (not on {} (its pod is not scheduled))", names[2]);
    assert!(msg.starts_with(&expected), "{msg}");
    assert!(msg.contains(&format!("the Deployment keeps running {OLD}")), "{msg}");
    let deployments: Api<Deployment> = ns.api();
    let d = deployments.get("web").await.expect("the Deployment");
    assert_eq!(winapp_operator::build::warmup::app_image(&d), Some(OLD), "the old image runs on");
    let pods: Api<Pod> = ns.api();
    let serving =
        list_all(&pods, APP_PODS).await.iter().filter(|p| pod_running_and_ready(p) && image_of(p) == OLD).count();
    assert_eq!(serving, 2, "the old pods keep serving");

    // The node without room leaves the pool: every remaining node has the image, the rollout goes.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let _ = nodes.delete(&names[2], &Default::default()).await;
    let rolled = |a: Option<&WindowsApp>| {
        ready_now(a) && a.and_then(|a| cond(a, "ImageWarm")).is_some_and(|c| c.status == "True")
    };
    let app = wait_for(&apps, "web", "Ready on the new image", LONG, rolled).await.expect("the app");
    let warm = cond(&app, "ImageWarm").map(|c| c.message.clone()).unwrap_or_default();
    println!("+{:.1}s node {} deleted; Ready, ImageWarm=True: {warm}", start.elapsed().as_secs_f64(), names[2]);
    assert_eq!(warm, format!("image {new} pulled on 2 of 2 node(s)"));
    let d = deployments.get("web").await.expect("the Deployment");
    assert_eq!(winapp_operator::build::warmup::app_image(&d), Some(new));
    for name in &names[..2] {
        let _ = nodes.delete(name, &Default::default()).await;
    }
    ns.cleanup().await;
}
