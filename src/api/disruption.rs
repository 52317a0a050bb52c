//! `spec.disruption`: the app's PodDisruptionBudget, which keeps node drains (Windows patching,
//! pool upgrades) from evicting more of its pods at once than it can spare.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// How many of the app's pods a node drain may evict at once. Default: `maxUnavailable: 1` for
/// an app with more than one replica (or `autoscaled`), no budget for one replica (a budget
/// there either protects nothing or blocks every drain) and none for a `nodeAgent` (`kubectl
/// drain --ignore-daemonsets` never evicts DaemonSet pods). Set one of `maxUnavailable` and
/// `minAvailable`, or `enabled: false` for no budget.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.maxUnavailable) || !has(self.minAvailable)")
    .message("set one of maxUnavailable and minAvailable, not both")
    .field_path(".minAvailable"))]
#[x_kube(validation = Rule::new("!has(self.enabled) || self.enabled || (!has(self.maxUnavailable) && !has(self.minAvailable))")
    .message("enabled: false means no PodDisruptionBudget: remove maxUnavailable and minAvailable, or remove enabled")
    .field_path(".enabled"))]
#[x_kube(validation = Rule::new("!has(self.maxUnavailable) || (!(string(self.maxUnavailable) in ['0', '0%']) && !string(self.maxUnavailable).startsWith('-'))")
    .message("maxUnavailable must be at least 1 or above 0%: a budget that allows no eviction makes every drain of a node that runs one of the pods wait forever (enabled: false turns the budget off)")
    .field_path(".maxUnavailable"))]
#[x_kube(validation = Rule::new("!has(self.minAvailable) || (string(self.minAvailable) != '100%' && !string(self.minAvailable).startsWith('-'))")
    .message("minAvailable must be below 100% and not negative: 100% allows no eviction, and every drain of a node that runs one of the pods would wait forever")
    .field_path(".minAvailable"))]
pub struct Disruption {
    /// false: no PodDisruptionBudget at all (a drain may evict every pod of the app at once).
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Pods a drain may evict while the others serve: a number of at least 1, or a percentage
    /// of the replicas (rounded up) such as `25%`. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Pods that must stay available during a drain: a number below `replicas`, or a percentage
    /// below 100% (rounded up). Instead of `maxUnavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
}
