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
use prometheus_client::registry::Registry;

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
    /// Reads the caches' sizes when the metrics are scraped (set once the caches exist).
    cache_sampler: Mutex<Option<CacheSampler>>,
    ready_by_app: Mutex<HashMap<ObjectRef<WindowsApp>, String>>,
}

/// What one child cache holds: its kind, the objects, and the bytes of their bodies.
pub type CacheSample = (&'static str, usize, usize);
/// What the operator holds in memory at one scrape.
pub struct Sample {
    /// One entry per child cache.
    pub caches: Vec<CacheSample>,
    /// Apps with an entry in the controller's per-app memory (failures, signatures, progress).
    pub remembered_apps: usize,
}
/// Samples the caches and the per-app memory.
pub type CacheSampler = Box<dyn Fn() -> Sample + Send + Sync>;

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("winapp");
        let reconciles = Counter::default();
        let failures = Family::<CategoryLabel, Counter>::default();
        let duration = Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let child_writes = Family::<KindLabel, Counter>::default();
        let status_writes = Counter::default();
        let apps = Family::<ReadyLabel, Gauge>::default();
        let pod_problems = Family::<ReasonLabel, Counter>::default();
        let api_requests = Family::<RequestLabel, Counter>::default();
        let triggers = Family::<SourceLabel, Counter>::default();
        let fenced_writes = Family::<RequestLabel, Counter>::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register("reconcile_failures", "Failed reconciles by error category", failures.clone());
        registry.register("reconcile_duration_seconds", "Duration of one reconcile", duration.clone());
        registry.register("child_writes", "Writes (apply or delete) to child objects, by kind", child_writes.clone());
        registry.register("status_writes", "Status patches of WindowsApps", status_writes.clone());
        registry.register("apps", "WindowsApps by the status of their Ready condition", apps.clone());
        registry.register(
            "pod_problems",
            "Apps whose pods turned unavailable for a diagnosed reason (counted when the reason appears)",
            pod_problems.clone(),
        );
        registry.register(
            "api_requests",
            "Requests sent to the API server, by verb (watch, list, get, create, patch, update, delete) and resource",
            api_requests.clone(),
        );
        registry.register(
            "fenced_writes",
            "Writes refused before they were sent because this replica no longer led (or did not yet lead), by verb and resource",
            fenced_writes.clone(),
        );
        registry.register(
            "triggers",
            "Changes that may queue reconciles, by the watch they came from (changes that alter no status are filtered out before)",
            triggers.clone(),
        );
        let cache_objects = Family::<KindLabel, Gauge>::default();
        let cache_body_bytes = Family::<KindLabel, Gauge>::default();
        registry.register("cache_objects", "Objects in the operator's child caches, by kind", cache_objects.clone());
        registry.register(
            "cache_body_bytes",
            "Bytes of the bodies kept in the child caches (compressed), by kind: only the children of WindowsApps keep a body",
            cache_body_bytes.clone(),
        );
        let remembered_apps = Gauge::default();
        registry.register(
            "remembered_apps",
            "Apps the controller keeps an entry for between reconciles (retry counts, applied signatures, rollout progress); it follows the number of WindowsApps and drops when an app is deleted",
            remembered_apps.clone(),
        );
        for ready in ["True", "False", "Unknown"] {
            apps.get_or_create(&ReadyLabel { ready: ready.into() }).set(0);
        }
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            child_writes,
            status_writes,
            apps,
            pod_problems,
            api_requests,
            fenced_writes,
            triggers,
            cache_objects,
            cache_body_bytes,
            remembered_apps,
            cache_sampler: Mutex::new(None),
            ready_by_app: Mutex::new(HashMap::new()),
        }
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

    /// Records the Ready status of one app (None when the app is gone) and updates the gauge.
    pub fn set_ready(&self, app: ObjectRef<WindowsApp>, ready: Option<String>) {
        let Ok(mut by_app) = self.ready_by_app.lock() else { return };
        let before = match ready {
            Some(r) => {
                if by_app.get(&app) == Some(&r) {
                    return;
                }
                self.apps.get_or_create(&ReadyLabel { ready: r.clone() }).inc();
                by_app.insert(app, r)
            }
            None => by_app.remove(&app),
        };
        if let Some(b) = before {
            self.apps.get_or_create(&ReadyLabel { ready: b }).dec();
        }
    }

    /// Forgets the apps that `keep` says no longer exist (deleted without a finalizer).
    pub fn retain_apps(&self, keep: impl Fn(&ObjectRef<WindowsApp>) -> bool) {
        let Ok(by_app) = self.ready_by_app.lock() else { return };
        let gone: Vec<ObjectRef<WindowsApp>> = by_app.keys().filter(|k| !keep(k)).cloned().collect();
        drop(by_app);
        for app in gone {
            self.set_ready(app, None);
        }
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
