//! `spec.podTemplate`: the escape hatch, type-checked and judged by the platform's pod policy.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;

use super::ValidationError;
use crate::api::PodTemplateOverrides;
use crate::build::meta;
use crate::policy::{self, Policy};

/// Pod spec fields the escape hatch may not touch.
const FORBIDDEN_OVERRIDES: &[&str] = &["os"];

/// The pod template's labels, annotations and pod spec fragment.
pub type PodTemplateParts =
    (BTreeMap<String, String>, BTreeMap<String, String>, Option<serde_json::Map<String, serde_json::Value>>);

/// The pod template overrides, checked: no selector labels, only pod spec fields the operator
/// leaves to the app, and only what `policy` allows.
pub fn pod_template(
    overrides: Option<&PodTemplateOverrides>,
    host_process: bool,
    policy: &Policy,
    errors: &mut Vec<ValidationError>,
) -> PodTemplateParts {
    let pod_labels = overrides.and_then(|t| t.metadata.as_ref()).map(|m| m.labels.clone()).unwrap_or_default();
    for key in pod_labels.keys() {
        if meta::SELECTOR_KEYS.contains(&key.as_str()) {
            errors.push(ValidationError::SelectorLabelOverride(key.clone()));
        }
    }
    let pod_annotations =
        overrides.and_then(|t| t.metadata.as_ref()).map(|m| m.annotations.clone()).unwrap_or_default();
    let pod_spec_overrides = overrides.and_then(|t| t.spec.clone());
    if let Some(o) = &pod_spec_overrides {
        check_overrides(o, host_process, errors);
        // A forbidden field is reported as such, not also as a policy refusal.
        let forbidden: Vec<String> = FORBIDDEN_OVERRIDES.iter().map(|k| format!("{}.{k}", policy::ROOT)).collect();
        let refusals = policy::check(o, host_process, policy);
        errors.extend(refusals.into_iter().filter(|r| !forbidden.contains(&r.path)).map(ValidationError::from));
    }
    (pod_labels, pod_annotations, pod_spec_overrides)
}

fn check_overrides(
    o: &serde_json::Map<String, serde_json::Value>,
    host_process: bool,
    errors: &mut Vec<ValidationError>,
) {
    for key in FORBIDDEN_OVERRIDES {
        if o.contains_key(*key) {
            errors.push(ValidationError::ForbiddenOverride((*key).to_owned()));
        }
    }
    if host_process && o.get("hostNetwork").is_some_and(|v| v != &serde_json::Value::Bool(true)) {
        errors.push(ValidationError::HostProcessWithoutHostNetwork);
    }
    // Entries of lists merged by name must name what they merge into or add.
    for list in ["containers", "initContainers", "volumes"] {
        if let Some(serde_json::Value::Array(items)) = o.get(list)
            && items.iter().any(|i| i.get("name").and_then(|n| n.as_str()).is_none_or(str::is_empty))
        {
            errors.push(ValidationError::UnnamedOverrideEntry(list));
        }
    }
    // Type-check the fragment as a pod spec: `containers` is required there, so lend it one.
    let mut fragment = o.clone();
    fragment.entry("containers").or_insert_with(|| serde_json::json!([]));
    if let Err(e) = serde_json::from_value::<PodSpec>(serde_json::Value::Object(fragment)) {
        errors.push(ValidationError::InvalidPodSpecOverride(e.to_string()));
    }
}
