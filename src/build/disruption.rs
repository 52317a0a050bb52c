//! The app's PodDisruptionBudget: how many of its pods a node drain (the eviction API) may take
//! at once, so that Windows patching and pool upgrades never take the app down.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta;
use crate::validate::{DisruptionPolicy, ValidatedApp};

/// `unhealthyPodEvictionPolicy`: pods that are running but not Ready may always be evicted, so
/// that an app whose pods crash-loop (or never pass their probes) never blocks a drain: evicting
/// them takes nothing away that serves.
pub const UNHEALTHY_POD_EVICTION_POLICY: &str = "AlwaysAllow";

/// What the default budget allows: one pod at a time, the others serving.
pub const DEFAULT_MAX_UNAVAILABLE: i32 = 1;

/// The app's PodDisruptionBudget, with `replicas` the count its Deployment runs (None:
/// autoscaled, the HorizontalPodAutoscaler decides). By default an app gets `maxUnavailable: 1`
/// when more than one pod may run (more than one replica, or autoscaled: the operator does not
/// read the autoscaler's `minReplicas`, and at one pod a `maxUnavailable: 1` budget still allows
/// its eviction, so it never blocks a drain). One replica gets none: a budget there would either
/// protect nothing (`maxUnavailable: 1`) or block every drain for good (`minAvailable: 1`). Node
/// agents get none: `kubectl drain --ignore-daemonsets` does not evict DaemonSet pods.
pub fn pod_disruption_budget(app: &ValidatedApp, replicas: Option<i32>) -> Option<PodDisruptionBudget> {
    let (max_unavailable, min_available) = match &app.disruption {
        _ if app.node_agent => return None,
        DisruptionPolicy::Off => return None,
        DisruptionPolicy::Default if replicas.is_some_and(|r| r <= 1) => return None,
        DisruptionPolicy::Default => (Some(IntOrString::Int(DEFAULT_MAX_UNAVAILABLE)), None),
        DisruptionPolicy::MaxUnavailable(v) => (Some(v.clone()), None),
        DisruptionPolicy::MinAvailable(v) => (None, Some(v.clone())),
    };
    Some(PodDisruptionBudget {
        metadata: meta::namespaced(app, meta::workload_name(app)),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some(meta::selector_labels(app)),
                ..LabelSelector::default()
            }),
            max_unavailable,
            min_available,
            unhealthy_pod_eviction_policy: Some(UNHEALTHY_POD_EVICTION_POLICY.to_owned()),
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WindowsApp;

    fn app(extra: &str) -> ValidatedApp {
        let yaml = format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: web, namespace: shop, uid: u-1}}\nspec:\n  image: registry.example.com/web:1\n{extra}"
        );
        let app: WindowsApp = serde_saphyr::from_str(&yaml).expect("a WindowsApp");
        let policy = crate::policy::Policy::allowing([crate::policy::Rule::NodeAgent]);
        crate::validate::validate_with(&app, None, &policy).expect("valid")
    }

    fn budget(extra: &str) -> Option<PodDisruptionBudgetSpec> {
        let a = app(extra);
        pod_disruption_budget(&a, a.replicas).map(|p| p.spec.expect("a spec"))
    }

    #[test]
    fn more_than_one_pod_gets_max_unavailable_one_and_one_pod_none() {
        let two = budget("  replicas: 2\n").expect("a budget for 2 replicas");
        assert_eq!(two.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(two.min_available, None);
        assert_eq!(two.unhealthy_pod_eviction_policy.as_deref(), Some("AlwaysAllow"));
        let labels = two.selector.and_then(|s| s.match_labels).expect("match labels");
        assert_eq!(labels, meta::selector_labels(&app("")));
        assert!(budget("").is_none(), "one replica (the default) gets no budget");
        assert!(budget("  replicas: 1\n").is_none());
        assert!(budget("  replicas: 0\n").is_none());
        assert!(budget("  autoscaled: true\n").is_some(), "an autoscaled app may run more than one pod");
        assert!(budget("  nodeAgent: true\n").is_none(), "kubectl drain skips DaemonSet pods");
        assert!(budget("  replicas: 3\n  disruption: {enabled: false}\n").is_none());
    }

    #[test]
    fn the_spec_says_how_many_and_the_running_count_decides_the_default() {
        let min = budget("  replicas: 3\n  disruption: {minAvailable: 2}\n").expect("a budget");
        assert_eq!((min.min_available, min.max_unavailable), (Some(IntOrString::Int(2)), None));
        let pct = budget("  replicas: 1\n  disruption: {maxUnavailable: 25%}\n").expect("asked for, even at 1");
        assert_eq!(pct.max_unavailable, Some(IntOrString::String("25%".into())));
        // No spec.replicas: the operator keeps the running count; scaled to 3, the app gets one.
        let a = app("");
        assert!(pod_disruption_budget(&a, Some(3)).is_some());
        let named = pod_disruption_budget(&a, Some(3)).expect("a budget").metadata;
        assert_eq!((named.name.as_deref(), named.namespace.as_deref()), (Some("web"), Some("shop")));
        assert!(named.owner_references.is_some_and(|o| o[0].kind == "WindowsApp"));
    }
}
