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
    ready_by_app: Mutex<HashMap<ObjectRef<WindowsApp>, String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("winapp");
        let reconciles = Counter::default();
        let failures = Family::<CategoryLabel, Counter>::default();
        let duration = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let child_writes = Family::<KindLabel, Counter>::default();
        let status_writes = Counter::default();
        let apps = Family::<ReadyLabel, Gauge>::default();
        let pod_problems = Family::<ReasonLabel, Counter>::default();
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

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
