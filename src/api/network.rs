//! `spec.networkPolicy`: who may connect to the app's ports.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bounds;

/// Who may connect to the app's ports.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppNetworkPolicy {
    /// Allow every pod of the app's own namespace. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_same_namespace: Option<bool>,
    /// Further sources, at most 16: pods by label (in the app's namespace, or in the namespaces
    /// that `namespaceSelector` selects), or whole namespaces by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::NETWORK_SOURCES))]
    pub from: Vec<NetworkSource>,
}

/// One source of traffic: `namespaceSelector`, `podSelector`, or both (those pods in those
/// namespaces).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.namespaceSelector) || has(self.podSelector)")
    .message("set namespaceSelector, podSelector or both"))]
pub struct NetworkSource {
    /// Namespaces by label, for example `kubernetes.io/metadata.name: ingress-nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounds::label_selector)]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounds::label_selector)]
    pub pod_selector: Option<LabelSelector>,
}
