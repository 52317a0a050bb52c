//! `spec.gmsa` and `spec.hostProcess`: the identity the pods run as (a gMSA credential spec or a
//! host account).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// gMSA identity: exactly one of `credentialSpecName` and `credentialSpec`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.credentialSpecName) != has(self.credentialSpec)")
    .message("set exactly one of gmsa.credentialSpecName (an existing GMSACredentialSpec) and gmsa.credentialSpec (one the operator creates)"))]
pub struct Gmsa {
    /// Name of an existing, cluster-scoped GMSACredentialSpec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credential_spec_name: Option<String>,
    /// The fields of a GMSACredentialSpec that the operator creates and owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<CredentialSpec>,
}

/// What a generated GMSACredentialSpec contains.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSpec {
    /// The gMSA account name (sAMAccountName without the trailing $), for example `WebApp1`.
    #[schemars(length(min = 1, max = 15))]
    pub account: String,
    pub domain: GmsaDomain,
    /// Portable CCG plugin settings for nodes that are not domain-joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_account: Option<HostAccount>,
}

/// The Active Directory domain of the gMSA.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GmsaDomain {
    /// DNS name, for example `contoso.com`.
    #[schemars(length(min = 1, max = 253))]
    pub dns_name: String,
    /// Forest root DNS name. Default: `dnsName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_tree_name: Option<String>,
    /// NetBIOS name, for example `CONTOSO`.
    #[schemars(length(min = 1, max = 15))]
    pub net_bios_name: String,
    /// Domain SID, `S-1-5-21-...`.
    #[schemars(regex(pattern = r"^S-1-5-21(-[0-9]+){3}$"))]
    pub sid: String,
    /// Domain GUID.
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"))]
    pub guid: String,
}

/// Portable CCG (container credential guard) plugin fields.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostAccount {
    /// GUID of the CCG plugin, in braces.
    #[schemars(regex(pattern = r"^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$"))]
    pub plugin_guid: String,
    /// Plugin input, for example the Key Vault secret URI the plugin reads the account from.
    #[schemars(length(min = 1))]
    pub plugin_input: String,
    /// Portable CCG version. Default "1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portable_ccg_version: Option<String>,
}

/// HostProcess settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostProcess {
    /// Host account the containers run as. Default `NT AUTHORITY\SYSTEM`; also
    /// `NT AUTHORITY\LOCAL SERVICE`, `NT AUTHORITY\NETWORK SERVICE` or a local group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub run_as_user_name: Option<String>,
}
