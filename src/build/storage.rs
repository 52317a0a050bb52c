//! SMB PersistentVolumes (smb.csi.k8s.io) and the claims of every volume.
//!
//! A claim from a StorageClass holds the app's data (with the usual reclaim policy Delete, its
//! volume and files go with it), so it is deleted only when its volume says `retentionPolicy:
//! Delete`: a claim to retain carries no owner reference (garbage collection would delete it
//! with the app) but the owner-UID annotation, as cluster-scoped children do.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeSpec, SecretReference, VolumeResourceRequirements,
};

use super::meta;
use crate::api::AccessMode;
use crate::validate::{ValidatedApp, VolumeSettings, VolumeSource};

/// CSI driver of SMB shares.
pub const SMB_DRIVER: &str = "smb.csi.k8s.io";

fn access_mode(m: AccessMode) -> String {
    match m {
        AccessMode::ReadWriteOnce => "ReadWriteOnce",
        AccessMode::ReadOnlyMany => "ReadOnlyMany",
        AccessMode::ReadWriteMany => "ReadWriteMany",
        AccessMode::ReadWriteOncePod => "ReadWriteOncePod",
    }
    .into()
}

/// A static PersistentVolume per SMB volume, pre-bound to the app's claim. Reclaim policy
/// Retain: deleting the app never deletes data on the share.
pub fn persistent_volumes(app: &ValidatedApp) -> Vec<PersistentVolume> {
    app.volumes
        .iter()
        .filter_map(|v| match &v.source {
            VolumeSource::Smb { source, secret_name, capacity, mount_options, .. } => Some(PersistentVolume {
                metadata: meta::cluster(app, meta::persistent_volume_name(app, &v.name)),
                spec: Some(PersistentVolumeSpec {
                    capacity: Some(BTreeMap::from([("storage".to_owned(), capacity.clone())])),
                    access_modes: Some(vec![access_mode(AccessMode::ReadWriteMany)]),
                    persistent_volume_reclaim_policy: Some("Retain".into()),
                    mount_options: (!mount_options.is_empty()).then(|| mount_options.clone()),
                    claim_ref: Some(ObjectReference {
                        namespace: Some(app.namespace.clone()),
                        name: Some(meta::claim_name(app, &v.name)),
                        ..ObjectReference::default()
                    }),
                    csi: Some(CSIPersistentVolumeSource {
                        driver: SMB_DRIVER.into(),
                        volume_handle: meta::smb_volume_handle(app, &v.name),
                        read_only: v.read_only.then_some(true),
                        volume_attributes: Some(BTreeMap::from([("source".to_owned(), source.clone())])),
                        node_stage_secret_ref: Some(SecretReference {
                            name: Some(secret_name.clone()),
                            namespace: Some(app.namespace.clone()),
                        }),
                        ..CSIPersistentVolumeSource::default()
                    }),
                    ..PersistentVolumeSpec::default()
                }),
                ..PersistentVolume::default()
            }),
            VolumeSource::Claim { .. } => None,
        })
        .collect()
}

/// One claim per volume: bound by name to the SMB PersistentVolume, or provisioned by a
/// StorageClass.
pub fn persistent_volume_claims(app: &ValidatedApp) -> Vec<PersistentVolumeClaim> {
    app.volumes.iter().map(|v| claim(app, v)).collect()
}

fn claim(app: &ValidatedApp, v: &VolumeSettings) -> PersistentVolumeClaim {
    let name = meta::claim_name(app, &v.name);
    let metadata = match &v.source {
        // The claim of an SMB share is plumbing (the share's data stays on the server, its
        // PersistentVolume is Retain): it goes with the app, by garbage collection.
        VolumeSource::Smb { .. } => meta::namespaced(app, name),
        VolumeSource::Claim { retention, .. } => meta::claim(app, name, *retention),
    };
    let spec = match &v.source {
        VolumeSource::Smb { claim_size, .. } => PersistentVolumeClaimSpec {
            access_modes: Some(vec![access_mode(AccessMode::ReadWriteMany)]),
            storage_class_name: Some(String::new()),
            volume_name: Some(meta::persistent_volume_name(app, &v.name)),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), claim_size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        },
        VolumeSource::Claim { storage_class_name, size, access_modes, .. } => PersistentVolumeClaimSpec {
            access_modes: Some(access_modes.iter().copied().map(access_mode).collect()),
            storage_class_name: storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        },
    };
    PersistentVolumeClaim { metadata, spec: Some(spec), ..PersistentVolumeClaim::default() }
}
