//! The ConfigMap holding the config files.

use k8s_openapi::api::core::v1::ConfigMap;

use super::meta;
use crate::validate::ValidatedApp;

/// The inline config files as a ConfigMap, one key per file (none when every file comes from a
/// Secret: those are mounted from the Secret, never copied).
pub fn config_map(app: &ValidatedApp) -> Option<ConfigMap> {
    let config = app.config.as_ref().filter(|c| !c.files.is_empty())?;
    Some(ConfigMap {
        metadata: meta::namespaced(app, meta::config_map_name(app)),
        data: Some(config.files.clone()),
        ..ConfigMap::default()
    })
}
