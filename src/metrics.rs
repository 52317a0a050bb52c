//! Prometheus metrics (prefix `winapp`): reconciles, failures by category, reconcile duration,
//! writes to children and status, apps by Ready state, and diagnosed pod problems by reason.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::api::WindowsApp;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabel {
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    verb: &'static str,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabel {
    ready: String,
}

/// The operator's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<CategoryLabel, Counter>,
    duration: Histogram,
    child_writes: Family<KindLabel, Counter>,
    status_writes: Counter,
    apps: Family<ReadyLabel, Gauge>,
    pod_problems: Family<ReasonLabel, Counter>,
    api_requests: Family<RequestLabel, Counter>,
    fenced_writes: Family<RequestLabel, Counter>,
    triggers: Family<SourceLabel, Counter>,
    cache_objects: Family<KindLabel, Gauge>,
    cache_body_bytes: Family<KindLabel, Gauge>,
    remembered_apps: Gauge,
    stalled: Family<ReasonLabel, Gauge>,
    drain_blocked: Gauge,
    leader: Gauge,
    rollouts: Family<StateLabel, Gauge>,
    /// Reads the caches' sizes when the metrics are scraped (set once the caches exist).
    cache_sampler: Mutex<Option<CacheSampler>>,
    by_app: Mutex<HashMap<ObjectRef<WindowsApp>, AppGauges>>,
}

/// What the app gauges count of one app: its Ready status, its Stalled reason if Stalled, and
/// whether a drain waits on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppGauges {
    pub ready: String,
    pub stalled: Option<String>,
    /// A node drain waits on the app's PodDisruptionBudget (its NodeDrainAllowed condition).
    pub drain_blocked: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// What one child cache holds: its kind, the objects, and the bytes of their bodies.
pub type CacheSample = (&'static str, usize, usize);
/// What the operator holds in memory at one scrape.
pub struct Sample {
    /// One entry per child cache.
    pub caches: Vec<CacheSample>,
    /// Apps with an entry in the controller's per-app memory (failures, signatures, progress).
    pub remembered_apps: usize,
    /// Paced rollouts of the operator's changes: (rolling now, waiting for a turn).
    pub rollouts: (usize, usize),
}
/// Samples the caches and the per-app memory.
pub type CacheSampler = Box<dyn Fn() -> Sample + Send + Sync>;

/// The help text of the metric `name`.
fn help(name: &str) -> &'static str {
    match name {
        "reconciles" => "Reconciles run",
        "reconcile_failures" => "Failed reconciles by error category",
        "reconcile_duration_seconds" => "Duration of one reconcile",
        "child_writes" => "Writes (apply or delete) to child objects, by kind",
        "status_writes" => "Status patches of WindowsApps",
        "apps" => "WindowsApps by the status of their Ready condition",
        "pod_problems" => "Apps whose pods turned unavailable for a diagnosed reason (counted when the reason appears)",
        "api_requests" => {
            "Requests sent to the API server, by verb (watch, list, get, create, patch, update, delete) and resource"
        }
        "fenced_writes" => {
            "Writes refused before they were sent because this replica no longer led (or did not yet lead), by verb and resource"
        }
        "triggers" => {
            "Changes that may queue reconciles, by the watch they came from (changes that alter no status are filtered out before)"
        }
        "cache_objects" => "Objects in the operator's child caches, by kind",
        "cache_body_bytes" => {
            "Bytes of the bodies kept in the child caches (compressed), by kind: only the children of WindowsApps keep a body"
        }
        "remembered_apps" => {
            "Apps the controller keeps an entry for between reconciles (retry counts, applied signatures, rollout progress); it follows the number of WindowsApps and drops when an app is deleted"
        }
        "apps_stalled" => "WindowsApps whose Stalled condition is True, by its reason",
        "apps_drain_blocked" => {
            "WindowsApps whose PodDisruptionBudget holds up a node drain now: it allows no eviction and pods of the app run on a cordoned node (condition NodeDrainAllowed=False)"
        }
        "leader" => "1 when this replica leads and its caches are synced (it reconciles), 0 otherwise",
        "operator_rollouts" => {
            "Apps rolling out a change of their pods that came from the operator (state=rolling), and apps waiting for a turn to (state=waiting); see --max-operator-rollouts"
        }
        _ => "",
    }
}

/// `metric`, registered in `registry` as `name` (prefixed `winapp_`) with its [`help`].
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, metric: M) -> M {
    registry.register(name, help(name), metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("winapp");
        let buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let m = Metrics {
            reconciles: registered(&mut r, "reconciles", Counter::default()),
            failures: registered(&mut r, "reconcile_failures", Family::default()),
            duration: registered(&mut r, "reconcile_duration_seconds", Histogram::new(buckets)),
            child_writes: registered(&mut r, "child_writes", Family::default()),
            status_writes: registered(&mut r, "status_writes", Counter::default()),
            apps: registered(&mut r, "apps", Family::default()),
            pod_problems: registered(&mut r, "pod_problems", Family::default()),
            api_requests: registered(&mut r, "api_requests", Family::default()),
            fenced_writes: registered(&mut r, "fenced_writes", Family::default()),
            triggers: registered(&mut r, "triggers", Family::default()),
            cache_objects: registered(&mut r, "cache_objects", Family::default()),
            cache_body_bytes: registered(&mut r, "cache_body_bytes", Family::default()),
            remembered_apps: registered(&mut r, "remembered_apps", Gauge::default()),
            stalled: registered(&mut r, "apps_stalled", Family::default()),
            drain_blocked: registered(&mut r, "apps_drain_blocked", Gauge::default()),
            leader: registered(&mut r, "leader", Gauge::default()),
            rollouts: registered(&mut r, "operator_rollouts", Family::default()),
            cache_sampler: Mutex::new(None),
            by_app: Mutex::new(HashMap::new()),
            registry: Registry::default(),
        };
        for state in ["rolling", "waiting"] {
            m.rollouts.get_or_create(&StateLabel { state }).set(0);
        }
        for ready in ["True", "False", "Unknown"] {
            m.apps.get_or_create(&ReadyLabel { ready: ready.into() }).set(0);
        }
        Metrics { registry: r, ..m }
    }
}

impl Metrics {
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn failed(&self, category: &'static str) {
        self.failures.get_or_create(&CategoryLabel { category: category.to_owned() }).inc();
    }

    pub fn child_written(&self, kind: &str) {
        self.child_writes.get_or_create(&KindLabel { kind: kind.to_owned() }).inc();
    }

    pub fn pod_problem(&self, reason: &str) {
        self.pod_problems.get_or_create(&ReasonLabel { reason: reason.to_owned() }).inc();
    }

    /// Counts one request to the API server (see [`request_labels`]).
    pub fn api_request(&self, method: &http::Method, uri: &http::Uri) {
        let (verb, resource) = request_labels(method, uri.path(), uri.query());
        self.api_requests.get_or_create(&RequestLabel { verb, resource }).inc();
    }

    /// Counts one write that the fence refused (see [`crate::fence`]).
    pub fn fenced_write(&self, method: &http::Method, uri: &http::Uri) {
        let (verb, resource) = request_labels(method, uri.path(), uri.query());
        self.fenced_writes.get_or_create(&RequestLabel { verb, resource }).inc();
    }

    /// Counts one change from the watch `source` that may queue reconciles.
    pub fn triggered(&self, source: &'static str) {
        self.triggers.get_or_create(&SourceLabel { source }).inc();
    }

    pub fn status_written(&self) {
        self.status_writes.inc();
    }

    /// Records what the app gauges count of one app (None when the app is gone).
    pub fn set_app(&self, app: ObjectRef<WindowsApp>, now: Option<AppGauges>) {
        let Ok(mut by_app) = self.by_app.lock() else { return };
        if by_app.get(&app) == now.as_ref() {
            return;
        }
        let before = match now {
            Some(n) => {
                self.apps.get_or_create(&ReadyLabel { ready: n.ready.clone() }).inc();
                if let Some(reason) = &n.stalled {
                    self.stalled.get_or_create(&ReasonLabel { reason: reason.clone() }).inc();
                }
                if n.drain_blocked {
                    self.drain_blocked.inc();
                }
                by_app.insert(app, n)
            }
            None => by_app.remove(&app),
        };
        if let Some(b) = before {
            self.apps.get_or_create(&ReadyLabel { ready: b.ready }).dec();
            if let Some(reason) = b.stalled {
                self.stalled.get_or_create(&ReasonLabel { reason }).dec();
            }
            if b.drain_blocked {
                self.drain_blocked.dec();
            }
        }
    }

    /// Forgets the apps that `keep` says no longer exist (deleted without a finalizer).
    pub fn retain_apps(&self, keep: impl Fn(&ObjectRef<WindowsApp>) -> bool) {
        let Ok(by_app) = self.by_app.lock() else { return };
        let gone: Vec<ObjectRef<WindowsApp>> = by_app.keys().filter(|k| !keep(k)).cloned().collect();
        drop(by_app);
        for app in gone {
            self.set_app(app, None);
        }
    }

    /// Whether this replica reconciles (leads, caches synced).
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Sets what reads the caches' sizes at each scrape.
    pub fn sample_caches_with(&self, sampler: CacheSampler) {
        if let Ok(mut s) = self.cache_sampler.lock() {
            *s = Some(sampler);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        if let Ok(sampler) = self.cache_sampler.lock()
            && let Some(sample) = sampler.as_ref()
        {
            let sample = sample();
            self.remembered_apps.set(i64::try_from(sample.remembered_apps).unwrap_or(i64::MAX));
            let (rolling, waiting) = sample.rollouts;
            self.rollouts
                .get_or_create(&StateLabel { state: "rolling" })
                .set(i64::try_from(rolling).unwrap_or(i64::MAX));
            self.rollouts
                .get_or_create(&StateLabel { state: "waiting" })
                .set(i64::try_from(waiting).unwrap_or(i64::MAX));
            for (kind, objects, bytes) in sample.caches {
                let label = KindLabel { kind: kind.to_owned() };
                self.cache_objects.get_or_create(&label).set(i64::try_from(objects).unwrap_or(i64::MAX));
                self.cache_body_bytes.get_or_create(&label).set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Pure: the verb and resource of a request to the API server, as the API server's own
/// `apiserver_request_total` names them: `/apis/apps/v1/namespaces/ns/deployments/web` with GET is
/// (`get`, `deployments`), the same path's `/status` with PATCH is (`patch`, `deployments/status`),
/// a GET with `watch=true` is `watch`, one without a name is `list`. Paths outside the resource API
/// (discovery, `/version`) are (`get`, `discovery`).
pub fn request_labels(method: &http::Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[][..],
    };
    // `namespaces/NS/...` scopes what follows; `namespaces` and `namespaces/NS` are the resource itself.
    let rest = match rest {
        ["namespaces", _ns, inner @ ..] if !inner.is_empty() => inner,
        other => other,
    };
    let Some(resource) = rest.first() else { return ("get", "discovery".to_owned()) };
    let named = rest.len() > 1;
    let resource = match rest.get(2) {
        Some(sub) => format!("{resource}/{sub}"),
        None => (*resource).to_owned(),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if named => "delete",
        http::Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn every_metric_has_its_help_and_the_app_gauges_follow_each_app() {
        let m = Metrics::default();
        let app = |n: &str| ObjectRef::new(n).within("shop");
        let stalled =
            |r: &str| Some(AppGauges { ready: "False".into(), stalled: Some(r.into()), drain_blocked: false });
        m.set_app(app("a"), stalled("SecretMissing"));
        m.set_app(app("b"), stalled("SecretMissing"));
        m.set_app(app("b"), Some(AppGauges { ready: "True".into(), stalled: None, drain_blocked: true }));
        m.set_app(app("c"), Some(AppGauges { ready: "True".into(), stalled: None, drain_blocked: true }));
        m.set_leader(true);
        let text = m.encode().expect("encode");
        for line in text.lines().filter(|l| l.starts_with("# HELP ")) {
            let words = line.split_whitespace().count();
            assert!(words > 3, "a metric without help: {line}");
        }
        assert!(text.contains("winapp_apps_stalled{reason=\"SecretMissing\"} 1"), "{text}");
        assert!(text.contains("winapp_apps{ready=\"True\"} 2") && text.contains("winapp_apps{ready=\"False\"} 1"));
        assert!(text.contains("winapp_leader 1"), "{text}");
        assert!(text.contains("winapp_apps_drain_blocked 2"), "{text}");
        m.set_app(app("c"), Some(AppGauges { ready: "True".into(), stalled: None, drain_blocked: false }));
        m.set_app(app("a"), None);
        let text = m.encode().expect("encode");
        assert!(text.contains("winapp_apps_stalled{reason=\"SecretMissing\"} 0"), "{text}");
        assert!(text.contains("winapp_apps_drain_blocked 1"), "{text}");
    }

    #[test]
    fn requests_are_named_like_the_api_server_names_them() {
        let cases: &[(Method, &str, Option<&str>, &str, &str)] = &[
            (
                Method::GET,
                "/apis/apps/v1/deployments",
                Some("labelSelector=a%3Db&watch=true&timeoutSeconds=290"),
                "watch",
                "deployments",
            ),
            (Method::GET, "/apis/apps/v1/deployments", Some("limit=500"), "list", "deployments"),
            (Method::GET, "/apis/apps/v1/namespaces/ns/deployments/web", None, "get", "deployments"),
            (
                Method::PATCH,
                "/apis/winapp.dev/v1alpha1/namespaces/ns/windowsapps/web/status",
                Some("fieldManager=x"),
                "patch",
                "windowsapps/status",
            ),
            (
                Method::PATCH,
                "/api/v1/namespaces/ns/services/web",
                Some("fieldManager=x&force=true"),
                "patch",
                "services",
            ),
            (Method::DELETE, "/api/v1/persistentvolumes/pv-1", None, "delete", "persistentvolumes"),
            (Method::POST, "/apis/events.k8s.io/v1/namespaces/ns/events", None, "create", "events"),
            (Method::GET, "/api/v1/namespaces", Some("watch=1"), "watch", "namespaces"),
            (Method::GET, "/api/v1/namespaces/ns", None, "get", "namespaces"),
            (Method::PUT, "/apis/coordination.k8s.io/v1/namespaces/s/leases/l", None, "update", "leases"),
            (Method::GET, "/apis", None, "get", "discovery"),
            (Method::GET, "/version", None, "get", "discovery"),
        ];
        for (method, path, query, verb, resource) in cases {
            assert_eq!(request_labels(method, path, *query), (*verb, resource.to_string()), "{method} {path}");
        }
    }
}
