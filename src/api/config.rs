//! `spec.config`: configuration files mounted into the container, and the rule every Windows
//! mount path of the spec follows.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bounds;

/// Configuration files, each mounted by subPath at `mountPath\<file name>`. A change of any
/// content rolls the pods (subPath mounts never see ConfigMap updates).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigFiles {
    /// Windows directory, for example `C:\inetpub\wwwroot`.
    #[x_kube(validation = Rule::new(WINDOWS_PATH_RULE).message(WINDOWS_PATH_MESSAGE))]
    #[schemars(length(max = 240))]
    pub mount_path: String,
    /// The files, at most 32, together under 1 MiB (the ConfigMap limit).
    #[schemars(length(min = 1, max = bounds::CONFIG_FILES))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub files: Vec<ConfigFile>,
}

/// One configuration file: its content inline, or a key of a Secret (for files that hold
/// connection strings or keys).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.content) != has(self.secretRef)")
    .message("set exactly one of content (the file inline, kept in a ConfigMap) and secretRef (a key of a Secret in the app's namespace)"))]
pub struct ConfigFile {
    /// A plain file name such as `Web.config`: letters, digits, '.', '_', '-', no path separators.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9_][-._A-Za-z0-9]*$"))]
    pub name: String,
    /// The file's content, copied into the app's ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The file is this key of a Secret in the app's namespace, mounted from the Secret itself:
    /// the operator never reads its data. A change of the Secret rolls the pods when the operator
    /// may watch Secrets (config/components/secret-check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ConfigSecretRef>,
}

/// A key of a Secret in the app's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ConfigSecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// The key in the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// CEL rule for an absolute Windows path on a drive, without characters Windows forbids.
pub const WINDOWS_PATH_RULE: &str = r#"!self.matches('(^|\\\\)\\.\\.?(\\\\|$)') && self.matches('^[A-Za-z]:\\\\([^\\\\/:*?"<>|]+(\\\\[^\\\\/:*?"<>|]+)*)?$')"#;
/// Message of [`WINDOWS_PATH_RULE`].
pub const WINDOWS_PATH_MESSAGE: &str = r"must be an absolute Windows path such as C:\inetpub\wwwroot (a drive letter, backslashes, no trailing backslash, no . or .. segments, none of * ? : < > | / in names)";
