//! Before building: what the build needs from the cluster. The versions of the Secrets that
//! config files come from (from the Secrets' index, never their data), the platform team's answer
//! on the app's gMSA, a move to another Windows build under way (from the live Deployment), and
//! the replica count to keep or to hand to an autoscaler.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tracing::info;

use super::applier::Keep;
use super::apply::FIELD_MANAGER;
use super::error::{Error, Result};
use super::kinds::{ChildKind, ClusterRoles, CredentialSpecs, DaemonSets, Deployments, RoleBindings};
use super::secrets::Known;
use super::status::GmsaCheck;
use super::{Context, migration, observe};
use crate::build::workload::Workload;
use crate::build::{Children, GmsaGrant, meta};
use crate::validate::ValidatedApp;

/// What the build needs from the cluster.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The app, with the versions of its config files' Secrets.
    pub app: ValidatedApp,
    /// Secrets that config files come from and that do not exist.
    pub missing_config_secrets: Vec<String>,
    /// The platform team's answer on the app's gMSA (None without `spec.gmsa`).
    pub gmsa: Option<GmsaCheck>,
    /// The app's Deployment as the cache holds it before this reconcile writes, decoded once for
    /// the steps that read it: the build migration, the replica count to keep, the image that a
    /// warm-up keeps.
    pub live: Option<Deployment>,
}

impl Resolved {
    /// Whether the gMSA children and the workload are built (see [`GmsaGrant`]).
    pub fn gmsa_grant(&self) -> GmsaGrant {
        match &self.gmsa {
            None | Some(GmsaCheck::Ready { .. }) => GmsaGrant::Allowed,
            Some(_) => GmsaGrant::Withheld,
        }
    }

    /// The children the operator keeps unbuilt: while it cannot tell whether the gMSA is allowed
    /// (the credspec or its CRD missing, or not cached yet), it neither creates nor removes the
    /// gMSA children and the workload that exist.
    pub fn held(&self) -> Keep {
        let mut keep = Keep::default();
        let Some(GmsaCheck::CredSpecMissing { .. } | GmsaCheck::CrdMissing) = &self.gmsa else { return keep };
        let (app, Some(gmsa)) = (&self.app, &self.app.gmsa) else { return keep };
        if gmsa.generated.is_some() {
            keep.insert(CredentialSpecs::KIND, gmsa.credential_spec_name.clone());
        }
        keep.insert(ClusterRoles::KIND, meta::gmsa_cluster_role_name(app));
        keep.insert(RoleBindings::KIND, meta::gmsa_role_binding_name(app));
        let kind = if app.node_agent { DaemonSets::KIND } else { Deployments::KIND };
        keep.insert(kind, meta::workload_name(app));
        keep
    }

    /// Whether a person must act before the pods can work: a config file's Secret is missing, or
    /// the gMSA is not usable (the pods' own troubles then follow from it).
    pub fn blocked(&self) -> bool {
        !self.missing_config_secrets.is_empty()
            || self.gmsa.as_ref().is_some_and(|g| !matches!(g, GmsaCheck::Ready { .. }))
    }
}

/// Resolves what the build of `valid` needs, from the caches. A cached Deployment that does not
/// decode is an error: read as "none" it would reset the replica count and the running image.
pub fn resolve(ctx: &Context, valid: &ValidatedApp) -> Result<Resolved> {
    let (mut app, missing_config_secrets) = config_secret_versions(ctx, valid);
    // The platform team's annotations on every app's pods win over the app's own.
    app.pod_annotations.extend(ctx.settings.pod_annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
    let gmsa = observe::gmsa(ctx, &app);
    // A change of Windows build keeps the old build's pods until the new one's are Ready.
    let live = live_deployment(ctx, &app)?;
    app.migration = live.as_ref().and_then(|d| migration::of_live(d, &app));
    Ok(Resolved { app, missing_config_secrets, gmsa, live })
}

/// The app's cached Deployment, decoded.
fn live_deployment(ctx: &Context, app: &ValidatedApp) -> Result<Option<Deployment>> {
    let key = ObjectRef::new(&meta::workload_name(app)).within(&app.namespace);
    let Some(cached) = Deployments::store(&ctx.stores).and_then(|s| s.get(&key)) else { return Ok(None) };
    cached.typed().map(Some).map_err(|e| Error::Cached(Deployments::KIND, e))
}

/// The app with the `resourceVersion` of each Secret its config files come from (from the
/// Secrets' index: the data is never read), and the Secrets that do not exist. Without the index
/// (the operator may not watch Secrets: config/components/secret-check) the versions stay
/// unknown: the files are still mounted, but a change of a Secret does not roll the pods.
fn config_secret_versions(ctx: &Context, valid: &ValidatedApp) -> (ValidatedApp, Vec<String>) {
    let mut app = valid.clone();
    let (Some(config), Some(index)) = (app.config.as_mut(), &ctx.stores.secrets) else { return (app, Vec::new()) };
    let mut missing = Vec::new();
    let names: Vec<String> = config.secret_names().into_iter().map(str::to_owned).collect();
    for name in names {
        match index.get(&valid.namespace, &name) {
            Known::Exists(rv) => {
                config.secret_versions.insert(name, rv);
            }
            Known::Missing => missing.push(name),
            Known::Unknown => {}
        }
    }
    (app, missing)
}

/// Manager that holds `spec.replicas` for a moment when the operator hands it to an autoscaler.
pub const HANDOVER_MANAGER: &str = "winapp.dev/replicas-handover";

/// Sets the replica count of the Deployment in `children`: with no `spec.replicas` (and not
/// autoscaled), 1 when it is created, then the running count is kept, so that turning
/// `autoscaled` off, or a `kubectl scale`, does not drop the app back to one pod; an explicit
/// `spec.replicas` always wins. Autoscaled, `replicas` is handed to another field manager first
/// (see [`hand_over_replicas`]). The PodDisruptionBudget is decided by the count kept.
pub async fn replicas(ctx: &Context, resolved: &Resolved, children: &mut Children) -> Result<()> {
    let Some(Workload::Deployment(deployment)) = &mut children.workload else { return Ok(()) };
    let (app, Some(live)) = (&resolved.app, &resolved.live) else { return Ok(()) };
    if app.replicas.is_none() {
        return hand_over_replicas(ctx, app).await;
    }
    if let (false, Some(running)) = (app.replicas_explicit, live.spec.replicas) {
        deployment.spec.replicas = Some(running);
        // The default PodDisruptionBudget follows the count that runs (scaled to 3 by hand, the
        // app gets one; back at 1, it goes).
        children.pod_disruption_budget = crate::build::disruption::pod_disruption_budget(app, Some(running));
    }
    Ok(())
}

/// Whether `manager` owns `.spec.replicas` of `d` through server-side apply.
fn owns_replicas(d: &Deployment, manager: &str) -> bool {
    d.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(manager)
            && m.operation.as_deref() == Some("Apply")
            && m.fields_v1.as_ref().is_some_and(|f| f.0.get("f:spec").and_then(|s| s.get("f:replicas")).is_some())
    })
}

/// `autoscaled: true`: the operator leaves `replicas` out of its apply. Were it the field's only
/// owner, the server would reset it to 1. So first another manager applies the running count
/// (sharing ownership at the same value), then the operator's apply lets go of the field and
/// the autoscaler takes it from there.
async fn hand_over_replicas(ctx: &Context, app: &ValidatedApp) -> Result<()> {
    // The cache holds no managedFields: ask the API server who owns replicas.
    let api = Api::<Deployment>::namespaced(ctx.client.clone(), &app.namespace);
    let name = meta::workload_name(app);
    let Some(d) = api.get_opt(&name).await.map_err(|source| Error::Apply { kind: "Deployment", name, source })? else {
        return Ok(());
    };
    if !owns_replicas(&d, FIELD_MANAGER) {
        return Ok(());
    }
    let running = d.spec.replicas.unwrap_or(1);
    let name = d.name_any();
    let patch = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": app.namespace},
        "spec": {"replicas": running},
    });
    api.patch(&name, &PatchParams::apply(HANDOVER_MANAGER), &Patch::Apply(&patch))
        .await
        .map_err(|source| Error::Apply { kind: "Deployment", name: name.clone(), source })?;
    info!(replicas = running, "handed spec.replicas over to the autoscaler");
    Ok(())
}
