//! The ConfigMap holding the config files.

use k8s_openapi::api::core::v1::ConfigMap;

use super::meta;
use crate::validate::ValidatedApp;

/// The config files as a ConfigMap, one key per file.
pub fn config_map(app: &ValidatedApp) -> Option<ConfigMap> {
    let config = app.config.as_ref()?;
    Some(ConfigMap {
        metadata: meta::namespaced(app, meta::config_map_name(app)),
        data: Some(config.files.clone()),
        ..ConfigMap::default()
    })
}
