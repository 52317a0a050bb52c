//! `spec.volumes`: SMB shares and claims mounted into the container, and what becomes of a claim
//! the app no longer asks for.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::config::{WINDOWS_PATH_MESSAGE, WINDOWS_PATH_RULE};
use super::{bounds, reference};

/// A volume mounted into the container: exactly one of `smb` and `claim`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.smb) != has(self.claim)")
    .message("a volume needs exactly one of smb and claim"))]
// Transition rules (checked on update, against the volume of the same name): what backs a volume
// is immutable in Kubernetes (a PersistentVolume's source, a claim's class and access modes), so
// the API server refuses such a change here with what to do, instead of the operator failing on it.
#[x_kube(validation = Rule::new("has(self.smb) == has(oldSelf.smb)")
    .message("a volume cannot switch between smb and claim; give it a new name to replace it"))]
#[x_kube(validation = Rule::new("!has(self.smb) || !has(oldSelf.smb) || (self.smb.source == oldSelf.smb.source && self.smb.secretRef == oldSelf.smb.secretRef)")
    .message("smb.source and smb.secretRef cannot change (a PersistentVolume's source is immutable); give the volume a new name to replace it"))]
#[x_kube(validation = Rule::new("!has(self.claim) || !has(oldSelf.claim) || (has(self.claim.storageClassName) == has(oldSelf.claim.storageClassName) && (!has(self.claim.storageClassName) || self.claim.storageClassName == oldSelf.claim.storageClassName) && has(self.claim.accessModes) == has(oldSelf.claim.accessModes) && (!has(self.claim.accessModes) || self.claim.accessModes == oldSelf.claim.accessModes))")
    .message("claim.storageClassName and claim.accessModes cannot change (a claim's spec is immutable); give the volume a new name to replace it"))]
pub struct AppVolume {
    /// Volume name, a DNS label of at most 40 characters not starting with `winapp-`; names the
    /// claim `<app>.<name>`.
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("!self.startsWith('winapp-')").message("volume names starting with 'winapp-' are reserved for the operator"))]
    pub name: String,
    /// Windows directory to mount at, for example `C:\data`.
    #[x_kube(validation = Rule::new(WINDOWS_PATH_RULE).message(WINDOWS_PATH_MESSAGE))]
    #[schemars(length(max = 240))]
    pub mount_path: String,
    /// Mount read-only. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// An SMB share through the smb.csi.k8s.io CSI driver (a static PersistentVolume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smb: Option<SmbVolume>,
    /// A claim provisioned by a StorageClass (for example Azure Files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimVolume>,
}

/// An SMB share.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SmbVolume {
    /// The share, `//server/share[/path]`.
    #[schemars(regex(pattern = r"^//[^/\s]+/[^\s]+$"))]
    pub source: String,
    /// Secret in the app's namespace with `username` and `password`, read by the CSI driver
    /// when it mounts the share. The operator never reads it.
    #[schemars(transform = reference::smb_secret_ref)]
    pub secret_ref: LocalObjectReference,
    /// Size recorded on the PersistentVolume. Default 100Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// Size the claim requests, at most `capacity`. Default: `capacity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_size: Option<Quantity>,
    /// Mount options, for example `dir_mode=0777`; at most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::MOUNT_OPTIONS))]
    pub mount_options: Vec<String>,
}

/// A dynamically provisioned claim.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimVolume {
    /// StorageClass. Default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Requested size, for example `10Gi`.
    pub size: Quantity,
    /// Access modes. Default `[ReadWriteMany]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::ACCESS_MODES))]
    pub access_modes: Vec<AccessMode>,
    /// What happens to the claim, and so to its data where the StorageClass's reclaim policy is
    /// Delete, when the volume is renamed or removed from the spec, or the app is deleted.
    /// `Retain` (default): the claim is released (the operator's labels and ownership removed,
    /// annotated with the app and volume it came from) and kept with its data; adding the volume
    /// back adopts it again. `Delete`: the claim is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicy>,
}

/// What happens to a claim the app no longer asks for.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RetentionPolicy {
    /// Keep the claim (and its data), released from the app.
    #[default]
    Retain,
    /// Delete the claim.
    Delete,
}

impl RetentionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionPolicy::Retain => "Retain",
            RetentionPolicy::Delete => "Delete",
        }
    }
}

/// PersistentVolume access mode.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadOnlyMany,
    ReadWriteMany,
    ReadWriteOncePod,
}
