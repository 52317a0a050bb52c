//! Pure builders: [`ValidatedApp`] -> [`Children`], the objects the operator applies.
//! No client, no I/O: `render` prints exactly what the controller would apply.

pub mod config;
pub mod disruption;
pub mod identity;
pub mod meta;
pub mod network;
pub mod service;
pub mod shutdown;
pub mod storage;
pub mod warmup;
pub mod workload;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::DynamicObject;
use thiserror::Error;

use crate::validate::ValidatedApp;

/// Errors of the builders. Validation type-checks the inputs, so these point at a bug.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error("spec.podTemplate.spec could not be merged into the pod spec ({0}); fix the field it names")]
    PodTemplateMerge(#[source] serde_json::Error),
    #[error("could not serialize the {kind} {name}: {source}")]
    Serialize { kind: &'static str, name: String, source: serde_json::Error },
}

/// Every object a `WindowsApp` asks for. Destructured without `..` wherever children are
/// applied, pruned or reported, so adding a kind fails to compile until all three handle it.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    /// The pods' ServiceAccount, unless the app names an existing one.
    pub service_account: Option<ServiceAccount>,
    /// gMSA: the generated GMSACredentialSpec (cluster-scoped).
    pub credential_spec: Option<DynamicObject>,
    /// gMSA: a ClusterRole allowing `use` of the credspec (cluster-scoped).
    pub gmsa_cluster_role: Option<ClusterRole>,
    /// gMSA: binds that ClusterRole to the pods' ServiceAccount in the app's namespace.
    pub gmsa_role_binding: Option<RoleBinding>,
    pub config_map: Option<ConfigMap>,
    /// Static PersistentVolumes of SMB volumes (cluster-scoped).
    pub persistent_volumes: Vec<PersistentVolume>,
    pub persistent_volume_claims: Vec<PersistentVolumeClaim>,
    /// Ingress to the pods only from the sources the spec names.
    pub network_policy: Option<NetworkPolicy>,
    pub service: Option<Service>,
    /// How many pods a node drain may evict at once (see [`disruption`]).
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    /// The pods: a Deployment, or a DaemonSet for a node agent. None while the app's gMSA is
    /// withheld ([`GmsaGrant::Withheld`]): nothing runs as an account the platform has not allowed.
    pub workload: Option<workload::Workload>,
    /// The DaemonSet `<app>-warmup` that pulls the app's image on its nodes (`spec.warmUp`),
    /// with the workload when the workload is a Deployment.
    pub warm_up: Option<DaemonSet>,
}

/// Whether the platform team allows the app's gMSA in its namespace (see [`crate::gmsa_policy`]).
/// Only the operator can tell, from the cluster's annotations; `render` assumes it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GmsaGrant {
    /// The credspec, the RBAC that lets the pods use it, and the workload are built.
    Allowed,
    /// None of them: no generated credspec, no ClusterRole or RoleBinding, no workload. The other
    /// children (ServiceAccount, config, storage, Service, NetworkPolicy) are built as usual.
    Withheld,
}

/// Builds every child of a validated app, its gMSA allowed (what `render` prints).
pub fn build(app: &ValidatedApp) -> Result<Children, BuildError> {
    build_with(app, GmsaGrant::Allowed)
}

/// Builds every child of a validated app; with `gmsa` withheld, an app with `spec.gmsa` gets no
/// gMSA children and no workload (apps without gMSA are not affected).
pub fn build_with(app: &ValidatedApp, gmsa: GmsaGrant) -> Result<Children, BuildError> {
    let withheld = app.gmsa.is_some() && gmsa == GmsaGrant::Withheld;
    let workload = if withheld { None } else { Some(workload::Workload::of(app)?) };
    let warm_up =
        workload.as_ref().and_then(workload::Workload::as_deployment).and_then(|d| warmup::daemon_set(app, d));
    Ok(Children {
        service_account: identity::service_account(app),
        credential_spec: identity::credential_spec(app).filter(|_| !withheld),
        gmsa_cluster_role: identity::gmsa_cluster_role(app).filter(|_| !withheld),
        gmsa_role_binding: identity::gmsa_role_binding(app).filter(|_| !withheld),
        config_map: config::config_map(app),
        persistent_volumes: storage::persistent_volumes(app),
        persistent_volume_claims: storage::persistent_volume_claims(app),
        network_policy: network::network_policy(app),
        service: service::service(app),
        pod_disruption_budget: disruption::pod_disruption_budget(app, app.replicas),
        workload,
        warm_up,
    })
}

impl Children {
    /// Whether the app needs the operator when it is deleted: a child is cluster-scoped
    /// (garbage collection does not remove those) or a claim is to be retained (released, not
    /// left with the app's labels).
    pub fn needs_finalizer(&self) -> bool {
        let retained = |c: &PersistentVolumeClaim| {
            c.metadata.annotations.as_ref().and_then(|a| a.get(meta::RETENTION_ANNOTATION)).map(String::as_str)
                == Some("Retain")
        };
        self.credential_spec.is_some()
            || self.gmsa_cluster_role.is_some()
            || !self.persistent_volumes.is_empty()
            || self.persistent_volume_claims.iter().any(retained)
    }

    /// Whether no child is left (the registry of kinds takes every field: see
    /// `controller::kinds`). Destructured without `..`: a new field fails to compile here until
    /// it is counted.
    pub fn is_empty(&self) -> bool {
        let Children {
            service_account,
            credential_spec,
            gmsa_cluster_role,
            gmsa_role_binding,
            config_map,
            persistent_volumes,
            persistent_volume_claims,
            network_policy,
            service,
            pod_disruption_budget,
            workload,
            warm_up,
        } = self;
        service_account.is_none()
            && credential_spec.is_none()
            && gmsa_cluster_role.is_none()
            && gmsa_role_binding.is_none()
            && config_map.is_none()
            && persistent_volumes.is_empty()
            && persistent_volume_claims.is_empty()
            && network_policy.is_none()
            && service.is_none()
            && pod_disruption_budget.is_none()
            && workload.is_none()
            && warm_up.is_none()
    }

    /// Every child as JSON, in apply order: identity and RBAC first (the gMSA admission webhook
    /// checks them when pods are created), then config and storage, the Service, the
    /// PodDisruptionBudget (in place before the pods it protects), and the workload last so that
    /// its pods find everything they reference.
    pub fn to_ordered_json(&self) -> Result<Vec<serde_json::Value>, BuildError> {
        let Children {
            service_account,
            credential_spec,
            gmsa_cluster_role,
            gmsa_role_binding,
            config_map,
            persistent_volumes,
            persistent_volume_claims,
            network_policy,
            service,
            pod_disruption_budget,
            workload,
            warm_up,
        } = self;
        let mut out = Vec::new();
        push(&mut out, "ServiceAccount", service_account.iter())?;
        push(&mut out, "GMSACredentialSpec", credential_spec.iter())?;
        push(&mut out, "ClusterRole", gmsa_cluster_role.iter())?;
        push(&mut out, "RoleBinding", gmsa_role_binding.iter())?;
        push(&mut out, "ConfigMap", config_map.iter())?;
        push(&mut out, "PersistentVolume", persistent_volumes.iter())?;
        push(&mut out, "PersistentVolumeClaim", persistent_volume_claims.iter())?;
        push(&mut out, "NetworkPolicy", network_policy.iter())?;
        push(&mut out, "Service", service.iter())?;
        push(&mut out, "PodDisruptionBudget", pod_disruption_budget.iter())?;
        match workload {
            Some(workload::Workload::Deployment(d)) => push(&mut out, "Deployment", std::iter::once(d))?,
            Some(workload::Workload::DaemonSet(d)) => push(&mut out, "DaemonSet", std::iter::once(d))?,
            None => {}
        }
        push(&mut out, "DaemonSet", warm_up.iter())?;
        Ok(out)
    }
}

fn push<'a, T: serde::Serialize + kube::ResourceExt + 'a>(
    out: &mut Vec<serde_json::Value>,
    kind: &'static str,
    items: impl Iterator<Item = &'a T>,
) -> Result<(), BuildError> {
    for item in items {
        let value = serde_json::to_value(item).map_err(|source| BuildError::Serialize {
            kind,
            name: item.name_any(),
            source,
        })?;
        out.push(value);
    }
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::api::WindowsApp;
    use crate::policy::{Policy, Rule};

    /// The children of an app that asks for every kind of child (a node agent's with `agent`).
    pub fn every_kind(agent: bool) -> Children {
        let workload = if agent { "  nodeAgent: true\n" } else { "  replicas: 2\n  warmUp: {enabled: true}\n" };
        let yaml = format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: web, namespace: shop, uid: u-1}}\nspec:\n  image: registry.example.com/web:1\n{workload}  ports: [{{name: http, containerPort: 80}}]\n  service: {{}}\n  networkPolicy: {{}}\n  config: {{mountPath: 'C:\\app', files: [{{name: a.config, content: x}}]}}\n  gmsa: {{credentialSpec: {{account: Web, domain: {{dnsName: contoso.com, netBiosName: CONTOSO, sid: S-1-5-21-1-2-3, guid: 244818ae-87ac-4fcd-92ec-e79e5252348a}}}}}}\n  volumes:\n    - {{name: share, mountPath: 'D:\\s', smb: {{source: //fs/s, secretRef: {{name: creds}}}}}}\n    - {{name: cache, mountPath: 'D:\\c', claim: {{size: 1Gi}}}}\n"
        );
        let app: WindowsApp = serde_saphyr::from_str(&yaml).expect("a WindowsApp");
        let policy = Policy::allowing([Rule::NodeAgent, Rule::SmbVolumes]);
        let valid = crate::validate::validate_with(&app, None, &policy).expect("valid");
        build(&valid).expect("builds")
    }
}
