//! The status that the operator writes back on a `WindowsApp`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state, in the shape Kubernetes API conventions, kstatus and Argo CD read.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WindowsAppStatus {
    /// The `metadata.generation` that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Windows build the pods are pinned to (`node.kubernetes.io/windows-build`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_build: Option<String>,
    /// Pods of the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Available pods of the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Ready, Reconciling, Stalled and the domain conditions (WindowsNodesAvailable,
    /// GMSAReady, StorageReady).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Claims of volumes that were renamed or removed from the spec and that the operator kept
    /// (`retentionPolicy: Retain`): released from the app with their data. Delete one by hand
    /// when it is no longer needed, or add the volume back to adopt it. The newest 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["claim"]))]
    pub released_claims: Vec<ReleasedClaim>,
    /// The app's PodDisruptionBudget as its controller reports it, while the app has one: what a
    /// node drain may evict now, and the drains it holds up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<DisruptionStatus>,
}

/// What the app's PodDisruptionBudget allows now.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionStatus {
    /// The PodDisruptionBudget, in the app's namespace.
    pub budget: String,
    /// Pods that may be evicted now (its `disruptionsAllowed`).
    pub allowed: i32,
    /// Cordoned nodes (a drain under way) that run pods of the app which the budget does not let
    /// go now: the drain of each waits until another pod of the app is available. At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub blocking_drain_of: Vec<String>,
}

/// A claim the operator released instead of deleting it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReleasedClaim {
    /// The PersistentVolumeClaim, in the app's namespace.
    pub claim: String,
    /// The volume of `spec.volumes` it belonged to.
    pub volume: String,
    /// When it was released.
    pub released_at: Time,
}
