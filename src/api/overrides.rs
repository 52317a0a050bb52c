//! `spec.podTemplate`: the escape hatch, labels, annotations and pod spec fields merged over the
//! generated pod template.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bounds;

/// Additions to the generated pod template, applied last.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Labels and annotations added to the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodMetadata>,
    /// Pod spec fields merged over the generated spec (see `podTemplate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_spec_overrides_schema")]
    pub spec: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Labels and annotations of the pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct PodMetadata {
    /// Labels added to the pods, at most 64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = bounds::max_properties::<{ bounds::POD_LABELS }>)]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the pods, at most 128.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = bounds::max_properties::<{ bounds::POD_ANNOTATIONS }>)]
    pub annotations: BTreeMap<String, String>,
}

/// An open object whose `hostNetwork` and `terminationGracePeriodSeconds` are typed, so that CEL
/// rules can read them.
fn pod_spec_overrides_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "Pod spec fields merged over the generated spec.",
        "properties": {
            "hostNetwork": {"type": "boolean"},
            "terminationGracePeriodSeconds": {"type": "integer", "format": "int64"}
        },
        "x-kubernetes-preserve-unknown-fields": true
    })
}
