//! ServiceAccount and gMSA: the GMSACredentialSpec, and the RBAC that lets the pods `use` it.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding, RoleRef, Subject};
use kube::api::{ApiResource, DynamicObject};
use serde_json::json;

use super::meta;
use crate::validate::{ServiceAccountChoice, ValidatedApp, defaults};

/// API group of GMSACredentialSpec.
pub const CREDSPEC_GROUP: &str = "windows.k8s.io";

/// The GMSACredentialSpec kind (windows.k8s.io/v1, cluster-scoped).
pub fn credspec_resource() -> ApiResource {
    ApiResource {
        group: CREDSPEC_GROUP.into(),
        version: "v1".into(),
        api_version: format!("{CREDSPEC_GROUP}/v1"),
        kind: "GMSACredentialSpec".into(),
        plural: "gmsacredentialspecs".into(),
    }
}

/// The pods' ServiceAccount, when the operator manages it. It mounts no API token by default;
/// the pod template asks for one when the app sets `apiAccess`.
pub fn service_account(app: &ValidatedApp) -> Option<ServiceAccount> {
    match &app.service_account {
        ServiceAccountChoice::Managed(name) => Some(ServiceAccount {
            metadata: meta::namespaced(app, name.clone()),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        }),
        ServiceAccountChoice::Existing(_) => None,
    }
}

/// The generated credspec, in the layout the gMSA webhook and Windows' CCG expect.
pub fn credential_spec(app: &ValidatedApp) -> Option<DynamicObject> {
    let gmsa = app.gmsa.as_ref()?;
    let spec = gmsa.generated.as_ref()?;
    let d = &spec.domain;
    let mut ad = json!({
        "GroupManagedServiceAccounts": [
            {"Name": spec.account, "Scope": d.dns_name},
            {"Name": spec.account, "Scope": d.net_bios_name},
        ],
    });
    if let Some(h) = &spec.host_account {
        ad["HostAccountConfig"] = json!({
            "PortableCcgVersion": h.portable_ccg_version.clone().unwrap_or_else(|| defaults::PORTABLE_CCG_VERSION.into()),
            "PluginGUID": h.plugin_guid,
            "PluginInput": h.plugin_input,
        });
    }
    let mut obj = DynamicObject::new(&gmsa.credential_spec_name, &credspec_resource());
    obj.metadata = meta::cluster(app, gmsa.credential_spec_name.clone());
    obj.data = json!({
        "credspec": {
            "CmsPlugins": ["ActiveDirectory"],
            "DomainJoinConfig": {
                "Sid": d.sid,
                "MachineAccountName": spec.account,
                "Guid": d.guid,
                "DnsTreeName": d.dns_tree_name.clone().unwrap_or_else(|| d.dns_name.clone()),
                "DnsName": d.dns_name,
                "NetBiosName": d.net_bios_name,
            },
            "ActiveDirectoryConfig": ad,
        }
    });
    Some(obj)
}

/// A ClusterRole allowing `use` of exactly the app's credspec.
pub fn gmsa_cluster_role(app: &ValidatedApp) -> Option<ClusterRole> {
    let gmsa = app.gmsa.as_ref()?;
    Some(ClusterRole {
        metadata: meta::cluster(app, meta::gmsa_cluster_role_name(app)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![CREDSPEC_GROUP.into()]),
            resources: Some(vec!["gmsacredentialspecs".into()]),
            resource_names: Some(vec![gmsa.credential_spec_name.clone()]),
            verbs: vec!["use".into()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    })
}

/// Binds the ClusterRole to the pods' ServiceAccount, in the app's namespace only.
pub fn gmsa_role_binding(app: &ValidatedApp) -> Option<RoleBinding> {
    app.gmsa.as_ref()?;
    Some(RoleBinding {
        metadata: meta::namespaced(app, meta::gmsa_role_binding_name(app)),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: meta::gmsa_cluster_role_name(app),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: app.service_account.name().to_owned(),
            namespace: Some(app.namespace.clone()),
            ..Subject::default()
        }]),
    })
}
