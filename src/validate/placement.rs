//! `spec.windows`: the nodes the pods may run on and the pool taints they tolerate.

use super::{Placement, ValidationError, defaults};
use crate::api::{PoolTaint, WindowsPlacement, WindowsVersion};

/// A move of the app's pods from one Windows Server build to another: `spec.windows.version`
/// says `to`, the running workload's pods are still of `from`. The operator fills it in before
/// it builds, from the live workload (see `controller::resolve::migration`); offline it is None.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildMigration {
    pub from: WindowsVersion,
    pub to: WindowsVersion,
}

/// The placement: the Windows pool taints of every convention unless a toleration or a
/// RuntimeClass (not both) says otherwise.
pub fn placement(windows: &WindowsPlacement, errors: &mut Vec<ValidationError>) -> Placement {
    Placement {
        version: windows.version,
        pool_taints: match (&windows.toleration, &windows.runtime_class_name) {
            (Some(_), Some(_)) => {
                errors.push(ValidationError::RuntimeClassWithToleration);
                Vec::new()
            }
            (None, Some(_)) => Vec::new(),
            (Some(t), None) => vec![t.clone()],
            (None, None) => defaults::POOL_TAINTS
                .iter()
                .map(|(key, value)| PoolTaint { key: (*key).into(), value: (*value).into() })
                .collect(),
        },
        node_selector: windows.node_selector.clone(),
        tolerations: windows.tolerations.clone(),
        runtime_class_name: windows.runtime_class_name.clone(),
    }
}
