//! The middle layer: one reconcile at a time, in-process, against a fake API server
//! ([`fake_api`]) and caches fed by hand (`controller::detached`). No cluster, no watches, no
//! timing: each test says what the API server holds and what the caches show, runs the real
//! `controller::reconcile`, and reads what the operator sent. The cluster suites
//! (`tests/operator`) test the same paths against a real API server.

mod fake_api;

use std::sync::Arc;
use std::time::Duration;

use fake_api::{FakeApi, Sent};
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};
use winapp_operator::api::WindowsApp;
use winapp_operator::build::meta;
use winapp_operator::controller::detached::{self, Feeds};
use winapp_operator::controller::memory::AppMemory;
use winapp_operator::controller::pace::Pacer;
use winapp_operator::controller::{self, Context, Settings, Watched};
use winapp_operator::metrics::Metrics;
use winapp_operator::policy::Policy;

const NS: &str = "shop";

fn app_path(name: &str) -> String {
    format!("apis/winapp.dev/v1alpha1/namespaces/{NS}/windowsapps/{name}")
}

fn path_of(kind: &str, name: &str) -> String {
    match kind {
        "Deployment" => format!("apis/apps/v1/namespaces/{NS}/deployments/{name}"),
        "DaemonSet" => format!("apis/apps/v1/namespaces/{NS}/daemonsets/{name}"),
        "Service" => format!("api/v1/namespaces/{NS}/services/{name}"),
        "ServiceAccount" => format!("api/v1/namespaces/{NS}/serviceaccounts/{name}"),
        "PersistentVolumeClaim" => format!("api/v1/namespaces/{NS}/persistentvolumeclaims/{name}"),
        "PersistentVolume" => format!("api/v1/persistentvolumes/{name}"),
        other => panic!("no path for {other} in this test"),
    }
}

/// The fake API server, the caches' feeds and the context of the reconciles.
struct Setup {
    api: FakeApi,
    feeds: Feeds,
    ctx: Arc<Context>,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_memory(AppMemory::default())
    }

    fn with_memory(memory: AppMemory) -> Setup {
        let api = FakeApi::default();
        let client = api.client();
        let metrics = Arc::new(Metrics::default());
        let (stores, mut feeds) = detached::stores(&client, &metrics);
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "win-1", "labels": {"kubernetes.io/os": "windows", "node.kubernetes.io/windows-build": "10.0.20348"}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        });
        feeds.apply("Node", node).expect("feed the node");
        let (_ready, caches_ready) = tokio::sync::watch::channel(true);
        let reporter = Reporter { controller: "winapp-operator".into(), instance: Some("test".into()) };
        let settings = Settings {
            diagnose_after: Duration::from_secs(60),
            policy: Policy::default(),
            pod_annotations: Default::default(),
            warm_up: Default::default(),
            shard: None,
        };
        let ctx = Arc::new(Context::new(client, stores, reporter, metrics, caches_ready, Arc::new(memory), settings));
        Setup { api, feeds, ctx }
    }

    /// The same caches and memory with the platform's pod annotations set to `annotations` (as
    /// an operator restarted with other `--pod-annotation` flags, or a new default, has).
    fn with_pod_annotations(&mut self, annotations: &[(&str, &str)]) {
        let c = &self.ctx;
        let mut settings = c.settings.clone();
        settings.pod_annotations = annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let ctx = Context::new(
            c.client.clone(),
            c.stores.clone(),
            c.reporter.clone(),
            c.metrics.clone(),
            c.caches_ready.clone(),
            c.memory.clone(),
            settings,
        );
        self.ctx = Arc::new(ctx);
    }

    /// An app reconciled until Ready, its children in the caches.
    async fn converged(&mut self, name: &str, spec: Value) {
        self.create_app(name, spec);
        self.reconcile(name).await.0.expect("first reconcile");
        self.sync_caches();
        self.deployment_available(name);
        self.reconcile(name).await.0.expect("second reconcile");
        assert_eq!(self.condition(name, "Ready").0, "True");
    }

    /// Stores a WindowsApp as `kubectl apply` would.
    fn create_app(&self, name: &str, spec: Value) {
        let app = json!({"apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp",
            "metadata": {"name": name, "namespace": NS}, "spec": spec});
        self.api.put(&app_path(name), app);
    }

    /// One reconcile of the app as the API server holds it now; the requests it sent.
    async fn reconcile(
        &self,
        name: &str,
    ) -> (Result<kube::runtime::controller::Action, controller::error::Error>, Vec<Sent>) {
        let stored = self.api.get(&app_path(name)).expect("the app is stored");
        let app: WindowsApp = serde_json::from_value(stored).expect("the stored app decodes");
        self.api.take_sent();
        let result =
            controller::reconcile(Arc::new(Watched::from_app(&app).expect("the app serializes")), self.ctx.clone())
                .await;
        (result, self.api.take_sent())
    }

    /// What the watches would deliver: every child the API server holds, into its cache.
    fn sync_caches(&mut self) {
        for (_, obj) in self.api.under("") {
            let ours = obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == json!(meta::MANAGER);
            let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
            if ours && kind != "WindowsApp" {
                self.feeds.apply(&kind, obj).unwrap_or_else(|e| panic!("feed {kind}: {e}"));
            }
        }
    }

    /// The Deployment `name` as kube-controller-manager reports it once its pods are available.
    fn deployment_available(&mut self, name: &str) {
        let path = path_of("Deployment", name);
        let mut d = self.api.get(&path).expect("the deployment");
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        d["status"] = json!({
            "observedGeneration": d["metadata"]["generation"], "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        });
        let d = self.api.put(&path, d);
        self.feeds.apply("Deployment", d).expect("feed the deployment");
    }

    fn condition(&self, app: &str, type_: &str) -> (String, String, String) {
        let stored = self.api.get(&app_path(app)).expect("the app");
        let c = stored["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
            .unwrap_or_else(|| panic!("no {type_} condition in {}", stored["status"]));
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
        (s("status"), s("reason"), s("message"))
    }
}

/// The writes among `sent`, as "VERB path" (status writes end in /status, events are POSTs).
fn writes(sent: &[Sent]) -> Vec<String> {
    sent.iter().filter(|s| s.is_write()).map(|s| format!("{} {}", s.method, s.path.trim_matches('/'))).collect()
}

/// Writes of children (not the app, its status or events).
fn child_writes(sent: &[Sent]) -> Vec<String> {
    writes(sent).into_iter().filter(|w| !w.contains("/windowsapps/") && !w.contains("/events")).collect()
}

fn web_spec() -> Value {
    json!({
        "image": "registry.example.com/shop/web:1.0",
        "windows": {"version": "ltsc2022"},
        "ports": [{"name": "http", "containerPort": 80}],
        "service": {"ports": [{"name": "http", "port": 80}]},
    })
}

#[tokio::test]
async fn a_new_app_gets_each_child_applied_once_and_its_status_waits_for_the_workload() {
    let s = Setup::new();
    s.create_app("web", web_spec());
    let (result, sent) = s.reconcile("web").await;
    let result_action = result.expect("the reconcile succeeds");

    let children = child_writes(&sent);
    for kind in ["ServiceAccount", "Service", "Deployment"] {
        let path = path_of(kind, "web");
        assert_eq!(
            children.iter().filter(|w| **w == format!("PATCH {path}")).count(),
            1,
            "{kind} applied once: {children:#?}"
        );
        let stored = s.api.get(&path).unwrap_or_else(|| panic!("{kind} stored"));
        assert_eq!(stored["metadata"]["labels"]["app.kubernetes.io/managed-by"], json!(meta::MANAGER));
        assert_eq!(stored["metadata"]["ownerReferences"][0]["kind"], json!("WindowsApp"), "{kind} owned by the app");
    }
    assert!(children.iter().all(|w| w.starts_with("PATCH ")), "applies only, no deletes: {children:#?}");
    let applies = sent.iter().filter(|s| s.content_type.starts_with("application/apply-patch")).count();
    assert!(applies >= 3, "children are written by server-side apply");

    let d = s.api.get(&path_of("Deployment", "web")).expect("deployment");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], json!("windows"));
    assert_eq!(pod["nodeSelector"]["node.kubernetes.io/windows-build"], json!("10.0.20348"));
    assert_eq!(pod["containers"][0]["image"], json!("registry.example.com/shop/web:1.0"));
    // A new app whose workload was created just now: its status waits for the Deployment
    // controller's first report (the next reconcile), and at the latest it is looked at again.
    assert!(!writes(&sent).iter().any(|w| w.ends_with("/status")), "no status yet: {:#?}", writes(&sent));
    assert!(s.api.get(&app_path("web")).expect("app")["status"].is_null());
    assert_ne!(result_action, Action::await_change(), "it is looked at again, not left waiting for a change");
}

#[tokio::test]
async fn an_app_whose_children_match_is_left_alone() {
    let mut s = Setup::new();
    s.create_app("web", web_spec());
    s.reconcile("web").await.0.expect("first reconcile");
    s.sync_caches();
    s.deployment_available("web");

    let (result, sent) = s.reconcile("web").await;
    result.expect("second reconcile");
    assert_eq!(child_writes(&sent), Vec::<String>::new(), "no child written when all match");
    assert_eq!(s.condition("web", "Ready").0, "True", "the available deployment makes the app Ready");

    let (result, sent) = s.reconcile("web").await;
    result.expect("third reconcile");
    assert_eq!(writes(&sent), Vec::<String>::new(), "nothing written at all: no child, no status, no event");
}

#[tokio::test]
async fn a_child_changed_by_hand_is_put_back_and_only_that_child_is_written() {
    let mut s = Setup::new();
    s.create_app("web", web_spec());
    s.reconcile("web").await.0.expect("first reconcile");
    s.sync_caches();
    s.deployment_available("web");
    s.reconcile("web").await.0.expect("second reconcile");

    // Someone edits the image by hand.
    let path = path_of("Deployment", "web");
    let mut d = s.api.get(&path).expect("deployment");
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example.com/evil:9");
    let d = s.api.put(&path, d);
    s.feeds.apply("Deployment", d).expect("feed");

    let (result, sent) = s.reconcile("web").await;
    result.expect("the reconcile after drift");
    assert_eq!(child_writes(&sent), vec![format!("PATCH {path}")], "only the drifted child is written");
    let d = s.api.get(&path).expect("deployment");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], json!("registry.example.com/shop/web:1.0"));
}

#[tokio::test]
async fn a_child_name_taken_by_someone_else_stalls_the_app_and_is_not_touched() {
    let s = Setup::new();
    let theirs = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
        "spec": {"ports": [{"port": 8080}], "selector": {"app": "legacy"}}});
    let path = path_of("Service", "web");
    let before = s.api.put(&path, theirs);
    s.create_app("web", web_spec());

    let (result, sent) = s.reconcile("web").await;
    result.expect("a conflict is reported, not an error");
    assert!(
        !writes(&sent).iter().any(|w| w.ends_with(&path)),
        "the other Service is not written: {:#?}",
        writes(&sent)
    );
    assert_eq!(s.api.get(&path), Some(before), "unchanged");
    assert!(s.api.get(&path_of("Deployment", "web")).is_none(), "no workload while a child is in the way");
    let (stalled, reason, message) = s.condition("web", "Stalled");
    assert_eq!((stalled.as_str(), reason.as_str()), ("True", "ChildConflict"));
    assert!(message.contains("Service web"), "{message}");
}

#[tokio::test]
async fn deleting_an_app_releases_its_retained_claim_and_deletes_its_cluster_scoped_children() {
    let mut s = Setup::new();
    let mut spec = web_spec();
    spec["volumes"] = json!([{"name": "cache", "mountPath": "C:\\cache",
        "claim": {"storageClassName": "azurefile-csi", "size": "10Gi", "retentionPolicy": "Retain"}}]);
    s.create_app("web", spec);
    s.reconcile("web").await.0.expect("first reconcile");
    let app = s.api.get(&app_path("web")).expect("app");
    assert_eq!(app["metadata"]["finalizers"], json!([controller::FINALIZER]), "a claim to retain needs the finalizer");
    let claims = s.api.under(&format!("api/v1/namespaces/{NS}/persistentvolumeclaims/"));
    assert_eq!(claims.len(), 1, "one claim");
    let (claim_path, _) = claims[0].clone();
    s.sync_caches();

    // A cluster-scoped child of the app (as an SMB volume makes), and one of another app.
    let labels = |app: &str| -> Value {
        meta::children_selector(NS, app)
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect()
    };
    let pv = |name: &str, app: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels(app)}, "spec": {"capacity": {"storage": "1Gi"}}})
    };
    s.api.put(&path_of("PersistentVolume", "winapp-shop-web-data"), pv("winapp-shop-web-data", "web"));
    s.api.put(&path_of("PersistentVolume", "winapp-shop-api-data"), pv("winapp-shop-api-data", "api"));

    let mut app = s.api.get(&app_path("web")).expect("app");
    app["metadata"]["deletionTimestamp"] = json!("2026-12-06T01:00:00Z");
    s.api.put(&app_path("web"), app);
    let (result, sent) = s.reconcile("web").await;
    result.expect("the deletion's reconcile");

    let w = writes(&sent);
    assert!(w.contains(&format!("DELETE {}", path_of("PersistentVolume", "winapp-shop-web-data"))), "{w:#?}");
    assert!(s.api.get(&path_of("PersistentVolume", "winapp-shop-api-data")).is_some(), "another app's volume stays");
    assert!(
        !w.iter().any(|x| x.starts_with("DELETE") && x.contains("persistentvolumeclaims")),
        "the claim is not deleted: {w:#?}"
    );
    let claim = s.api.get(&claim_path).expect("the retained claim is still there");
    assert!(
        claim["metadata"]["ownerReferences"].as_array().is_none_or(|o| o.is_empty()),
        "released from the app: {claim}"
    );
    assert_eq!(claim["metadata"]["annotations"]["winapp.dev/released-from"], json!("shop/web/cache"), "{claim}");
    let app = s.api.get(&app_path("web")).expect("app");
    assert!(app["metadata"]["finalizers"].as_array().is_none_or(|f| f.is_empty()), "the finalizer is removed: {app}");
}

#[tokio::test]
async fn an_operator_change_to_the_pod_template_rolls_one_app_at_a_time_and_the_apps_own_changes_do_not_wait() {
    let (wake, mut woken) = futures::channel::mpsc::unbounded();
    let mut s = Setup::with_memory(AppMemory::with_pacer(Pacer::new(1, Some(wake))));
    for name in ["one", "two", "three"] {
        s.converged(name, web_spec()).await;
    }
    let deployment = |name: &str| path_of("Deployment", name);
    let pod_annotation = |s: &Setup, name: &str| {
        s.api.get(&deployment(name)).expect("deployment")["spec"]["template"]["metadata"]["annotations"]
            ["platform.example.com/log-tier"]
            .clone()
    };

    // The platform team adds an annotation to every app's pods: the operator's change, not the apps'.
    s.with_pod_annotations(&[("platform.example.com/log-tier", "gold")]);
    let (_, sent) = s.reconcile("one").await;
    assert_eq!(child_writes(&sent), vec![format!("PATCH {}", deployment("one"))], "the first app takes the turn");
    assert_eq!(pod_annotation(&s, "one"), json!("gold"));
    for name in ["two", "three"] {
        let (result, sent) = s.reconcile(name).await;
        result.expect("a waiting app reconciles fine");
        assert_eq!(child_writes(&sent), Vec::<String>::new(), "{name} keeps its pods while one rolls");
        assert_eq!(s.condition(name, "Ready").0, "True", "{name} is still Ready: its own spec is in force");
        assert_eq!(s.condition(name, "Reconciling").0, "False", "GitOps tools are not held up");
        let (status, reason, message) = s.condition(name, "PodTemplateCurrent");
        assert_eq!((status.as_str(), reason.as_str()), ("False", "WaitingForRolloutTurn"), "{message}");
    }
    assert_eq!(s.ctx.memory.pacer.counts(), (1, 2));

    // An app's own change does not wait for a turn.
    let mut three = s.api.get(&app_path("three")).expect("app");
    three["spec"]["image"] = json!("registry.example.com/shop/web:2.0");
    s.api.put(&app_path("three"), three);
    let (_, sent) = s.reconcile("three").await;
    assert_eq!(child_writes(&sent), vec![format!("PATCH {}", deployment("three"))], "its own change goes at once");
    assert_eq!(pod_annotation(&s, "three"), json!("gold"), "and carries the operator's change with it");

    // The first app's rollout completes: the turn goes to the next one waiting, which is woken.
    s.deployment_available("one");
    s.reconcile("one").await.0.expect("the first app settles");
    assert_eq!(woken.try_recv().ok(), Some(("shop".to_owned(), "two".to_owned())), "the next app is woken");
    let (_, sent) = s.reconcile("two").await;
    assert_eq!(child_writes(&sent), vec![format!("PATCH {}", deployment("two"))], "its turn came");
    assert_eq!(s.condition("two", "PodTemplateCurrent").1, "RollingOut");
    s.sync_caches();
    s.deployment_available("two");
    s.reconcile("two").await.0.expect("settles");
    let status = s.api.get(&app_path("two")).expect("app")["status"]["conditions"].clone();
    assert!(!status.to_string().contains("PodTemplateCurrent"), "the condition goes once it is done: {status}");
    assert_eq!(s.ctx.memory.pacer.counts(), (0, 0));
}

#[tokio::test]
async fn the_new_default_grace_period_is_the_operators_change_and_is_paced() {
    let mut s = Setup::with_memory(AppMemory::with_pacer(Pacer::new(1, None)));
    for name in ["one", "two"] {
        s.converged(name, web_spec()).await;
    }
    let deployment = |name: &str| path_of("Deployment", name);
    // The Deployments as the previous version of the operator left them: no grace period in the
    // pod template (Kubernetes' 30 s), marked with that template's hash and the same inputs.
    for name in ["one", "two"] {
        let mut d = s.api.get(&deployment(name)).expect("deployment");
        assert_eq!(d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], json!(60), "the default: {d}");
        d["spec"]["template"]["spec"].as_object_mut().expect("pod spec").remove("terminationGracePeriodSeconds");
        let old = winapp_operator::controller::pace::hash(&d["spec"]["template"]);
        d["metadata"]["annotations"][winapp_operator::controller::pace::TEMPLATE_HASH] = json!(old);
        s.api.put(&deployment(name), d);
    }
    s.sync_caches();
    s.deployment_available("one");
    s.deployment_available("two");

    let (_, sent) = s.reconcile("one").await;
    assert_eq!(child_writes(&sent), vec![format!("PATCH {}", deployment("one"))], "the first app takes the turn");
    let one = s.api.get(&deployment("one")).expect("deployment");
    assert_eq!(one["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], json!(60));
    let (result, sent) = s.reconcile("two").await;
    result.expect("a waiting app reconciles fine");
    assert_eq!(child_writes(&sent), Vec::<String>::new(), "the second keeps its pods while the first rolls");
    let (status, reason, message) = s.condition("two", "PodTemplateCurrent");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "WaitingForRolloutTurn"), "{message}");
    assert_eq!(s.condition("two", "Ready").0, "True", "still Ready");
}

/// The warm-up DaemonSet `name-warmup` as its controller reports it once every one of its `nodes`
/// runs a ready pod of its current spec.
fn warm_up_pulled(s: &mut Setup, name: &str, nodes: i64) {
    let path = path_of("DaemonSet", &format!("{name}-warmup"));
    let mut d = s.api.get(&path).expect("the warm-up DaemonSet");
    d["status"] = json!({
        "observedGeneration": d["metadata"]["generation"], "desiredNumberScheduled": nodes,
        "currentNumberScheduled": nodes, "updatedNumberScheduled": nodes, "numberReady": nodes,
        "numberAvailable": nodes, "numberMisscheduled": 0,
    });
    let d = s.api.put(&path, d);
    s.feeds.apply("DaemonSet", d).expect("feed the DaemonSet");
}

#[tokio::test]
async fn a_new_image_waits_for_the_warm_up_and_its_release_is_the_apps_change_not_paced() {
    // A pacer of one: a change taken for the operator's own would show PodTemplateCurrent.
    let mut s = Setup::with_memory(AppMemory::with_pacer(Pacer::new(1, None)));
    let mut spec = web_spec();
    spec["warmUp"] = json!({"enabled": true});
    s.converged("web", spec).await;
    s.sync_caches();
    warm_up_pulled(&mut s, "web", 2);
    s.reconcile("web").await.0.expect("settles");
    assert_eq!(s.condition("web", "ImageWarm").0, "True");
    let image = |s: &Setup, kind: &str, name: &str, list: &str| {
        s.api.get(&path_of(kind, name)).expect("stored")["spec"]["template"]["spec"][list][0]["image"].clone()
    };

    // The image changes: the DaemonSet pulls it, the Deployment keeps the running one.
    let mut app = s.api.get(&app_path("web")).expect("app");
    app["spec"]["image"] = json!("registry.example.com/shop/web:2.0");
    s.api.put(&app_path("web"), app);
    s.reconcile("web").await.0.expect("the change");
    assert_eq!(image(&s, "DaemonSet", "web-warmup", "initContainers"), json!("registry.example.com/shop/web:2.0"));
    assert_eq!(image(&s, "Deployment", "web", "containers"), json!("registry.example.com/shop/web:1.0"));
    let (status, reason, message) = s.condition("web", "Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "WarmingImage"), "{message}");
    assert_eq!(
        message,
        "image registry.example.com/shop/web:2.0 pulled on 0 of 2 node(s); the Deployment keeps running registry.example.com/shop/web:1.0 until every node has it"
    );
    s.sync_caches();
    s.reconcile("web").await.0.expect("still warming");
    assert_eq!(image(&s, "Deployment", "web", "containers"), json!("registry.example.com/shop/web:1.0"));

    // Pulled on every node: the Deployment gets the image, as the app's change (not paced).
    warm_up_pulled(&mut s, "web", 2);
    let (result, sent) = s.reconcile("web").await;
    result.expect("the release");
    assert!(child_writes(&sent).contains(&format!("PATCH {}", path_of("Deployment", "web"))), "{sent:#?}");
    assert_eq!(image(&s, "Deployment", "web", "containers"), json!("registry.example.com/shop/web:2.0"));
    let conditions = s.api.get(&app_path("web")).expect("app")["status"]["conditions"].clone();
    assert!(!conditions.to_string().contains("PodTemplateCurrent"), "not paced as the operator's: {conditions}");
    assert_eq!(s.condition("web", "Ready").1, "NewGeneration", "the rollout of the new image is reported");
    assert_eq!(s.condition("web", "ImageWarm").0, "True");
    assert_eq!(s.ctx.memory.pacer.counts(), (0, 0));
}
