//! `spec.monitoring`: where Prometheus scrapes the pods.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Monitoring settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// Prometheus scrape annotations on the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusScrape>,
}

/// Where Prometheus scrapes the pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusScrape {
    /// Port. Default 9182 (windows-exporter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Path. Default `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: Option<String>,
}
