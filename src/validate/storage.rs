//! `spec.config` and `spec.volumes`: files and volumes mounted into the container, and mount
//! paths that must not clash (compared case-insensitively, as Windows paths are).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::{BTreeMap, BTreeSet};

use super::{
    ConfigSettings, ValidationError, VolumeSettings, VolumeSource, checksum, defaults, is_config_key, is_windows_path,
};
use crate::api::{AccessMode, AppVolume, ConfigFiles};
use crate::build::meta;

/// Mount paths taken so far, each by the field that took it.
#[derive(Default)]
pub struct Mounts(BTreeMap<String, String>);

impl Mounts {
    pub(super) fn claim(&mut self, field: String, path: &str, errors: &mut Vec<ValidationError>) {
        if self.0.insert(path.to_ascii_lowercase(), field.clone()).is_some() {
            errors.push(ValidationError::DuplicateMountPath(field, path.to_owned()));
        }
    }
}

/// The config files: inline content or a Secret's key each, with the checksum that rolls the pods.
pub fn config(c: &ConfigFiles, mounts: &mut Mounts, errors: &mut Vec<ValidationError>) -> ConfigSettings {
    if !is_windows_path(&c.mount_path) {
        errors.push(ValidationError::InvalidWindowsPath {
            field: "spec.config.mountPath".into(),
            path: c.mount_path.clone(),
        });
    }
    if c.files.is_empty() {
        errors.push(ValidationError::NoConfigFiles);
    }
    let mut files = BTreeMap::new();
    let mut secret_files = BTreeMap::new();
    for f in &c.files {
        let taken = files.contains_key(&f.name) || secret_files.contains_key(&f.name);
        if !is_config_key(&f.name) {
            errors.push(ValidationError::InvalidConfigKey(f.name.clone()));
        } else if taken {
            errors.push(ValidationError::DuplicateConfigFile(f.name.clone()));
        } else {
            match (&f.content, &f.secret_ref) {
                (Some(content), None) => {
                    files.insert(f.name.clone(), content.clone());
                }
                (None, Some(r)) => {
                    secret_files.insert(f.name.clone(), (r.name.clone(), r.key.clone()));
                }
                _ => errors.push(ValidationError::ConfigFileSource(f.name.clone())),
            }
            mounts.claim(
                format!("spec.config.files[{}]", f.name),
                &meta::config_file_path(&c.mount_path, &f.name),
                errors,
            );
        }
    }
    let mut summed = files.clone();
    for (file, (secret, key)) in &secret_files {
        // A reference, not data: a change of which Secret or key backs a file rolls the pods.
        summed.insert(format!("{file}\u{0}secret"), format!("{secret}/{key}"));
    }
    ConfigSettings {
        mount_path: c.mount_path.clone(),
        checksum: checksum(&summed),
        files,
        secret_files,
        generated: BTreeMap::new(),
        secret_versions: BTreeMap::new(),
    }
}

/// The volumes: an SMB share or a claim each, with their mount paths.
pub fn volumes(given: &[AppVolume], mounts: &mut Mounts, errors: &mut Vec<ValidationError>) -> Vec<VolumeSettings> {
    let mut volume_names = BTreeSet::new();
    let mut volumes = Vec::new();
    for v in given {
        if v.name.starts_with(meta::RESERVED_VOLUME_PREFIX) {
            errors.push(ValidationError::ReservedVolumeName(v.name.clone()));
        }
        if !volume_names.insert(v.name.clone()) {
            errors.push(ValidationError::DuplicateVolume(v.name.clone()));
        }
        if is_windows_path(&v.mount_path) {
            mounts.claim(format!("spec.volumes[{}].mountPath", v.name), &v.mount_path, errors);
        } else {
            errors.push(ValidationError::InvalidWindowsPath {
                field: format!("spec.volumes[{}].mountPath", v.name),
                path: v.mount_path.clone(),
            });
        }
        let source = match (&v.smb, &v.claim) {
            (Some(smb), None) => {
                let capacity = smb.capacity.clone().unwrap_or_else(|| Quantity(defaults::SMB_CAPACITY.into()));
                let claim_size = smb.claim_size.clone().unwrap_or_else(|| capacity.clone());
                if crate::quantity::compare(&claim_size.0, &capacity.0) == Some(std::cmp::Ordering::Greater) {
                    errors.push(ValidationError::ClaimLargerThanVolume {
                        volume: v.name.clone(),
                        claim: claim_size.0.clone(),
                        capacity: capacity.0.clone(),
                    });
                }
                VolumeSource::Smb {
                    source: smb.source.clone(),
                    secret_name: smb.secret_ref.name.clone(),
                    capacity,
                    claim_size,
                    mount_options: smb.mount_options.clone(),
                }
            }
            (None, Some(claim)) => VolumeSource::Claim {
                storage_class_name: claim.storage_class_name.clone(),
                size: claim.size.clone(),
                access_modes: if claim.access_modes.is_empty() {
                    vec![AccessMode::ReadWriteMany]
                } else {
                    claim.access_modes.clone()
                },
                retention: claim.retention_policy.unwrap_or_default(),
            },
            _ => {
                errors.push(ValidationError::VolumeOneOf(v.name.clone()));
                continue;
            }
        };
        volumes.push(VolumeSettings {
            name: v.name.clone(),
            mount_path: v.mount_path.clone(),
            read_only: v.read_only.unwrap_or(false),
            source,
        });
    }
    volumes
}
