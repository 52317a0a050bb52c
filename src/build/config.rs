//! The ConfigMap holding the config files.

use k8s_openapi::api::core::v1::ConfigMap;

use super::meta;
use crate::validate::ValidatedApp;

/// The inline config files and the files the operator writes (LogMonitor's configuration) as a
/// ConfigMap, one key per file (none when every file comes from a Secret: those are mounted from
/// the Secret, never copied).
pub fn config_map(app: &ValidatedApp) -> Option<ConfigMap> {
    let config = app.config.as_ref().filter(|c| !c.files.is_empty() || !c.generated.is_empty())?;
    let mut data = config.files.clone();
    data.extend(config.generated.iter().map(|(key, (_, content))| (key.clone(), content.clone())));
    Some(ConfigMap {
        metadata: meta::namespaced(app, meta::config_map_name(app)),
        data: Some(data),
        ..ConfigMap::default()
    })
}
