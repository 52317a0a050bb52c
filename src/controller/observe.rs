//! Reads what the status is computed from: nodes, credspecs, claims and the Deployment from the
//! watch caches; SMB Secrets by metadata only (their content is never fetched).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Secret, Toleration};
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::Context;
use super::error::{Error, Result};
use super::status::{ClaimCheck, DeploymentCheck, GmsaCheck, NodeCheck, Observations};
use crate::build::{meta, workload};
use crate::validate::{ValidatedApp, VolumeSource};

/// Gathers the observations for `app`. `deployment_current` is false when this reconcile just
/// wrote the Deployment, so the cached copy may predate the write.
pub async fn observe(ctx: &Context, app: &ValidatedApp, deployment_current: bool) -> Result<Observations> {
    Ok(Observations {
        nodes: nodes(ctx, app),
        gmsa: gmsa(ctx, app),
        claims: claims(ctx, app).await?,
        deployment: deployment(ctx, app, deployment_current),
        rewrites: Vec::new(),
    })
}

fn nodes(ctx: &Context, app: &ValidatedApp) -> NodeCheck {
    let p = &app.placement;
    let build = p.version.map(|v| v.build().to_owned());
    let mut tolerations = p.tolerations.clone();
    tolerations.push(Toleration {
        key: Some(p.pool_taint.key.clone()),
        value: Some(p.pool_taint.value.clone()),
        operator: Some("Equal".into()),
        effect: Some("NoSchedule".into()),
        ..Toleration::default()
    });
    let ready_matching = ctx
        .stores
        .nodes
        .state()
        .iter()
        .filter(|n| {
            let labels = n.labels();
            labels.get(workload::OS_LABEL).map(String::as_str) == Some("windows")
                && build.as_ref().is_none_or(|b| labels.get(workload::WINDOWS_BUILD_LABEL) == Some(b))
                && p.node_selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                && node_ready(n)
                && tolerated(n, &tolerations)
        })
        .count();
    NodeCheck {
        wanted: p.version.map_or_else(|| "any build".to_owned(), |v| format!("{} ({})", v.as_str(), v.build())),
        build,
        ready_matching,
    }
}

fn node_ready(n: &Node) -> bool {
    let schedulable = !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    schedulable && ready
}

/// Every NoSchedule/NoExecute taint of the node is tolerated.
fn tolerated(n: &Node, tolerations: &[Toleration]) -> bool {
    let taints = n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    taints.iter().filter(|t| t.effect != "PreferNoSchedule").all(|t| {
        tolerations.iter().any(|tol| {
            let key_ok = tol.key.as_deref().is_none_or(|k| k.is_empty() || k == t.key);
            let effect_ok = tol.effect.as_deref().is_none_or(|e| e.is_empty() || e == t.effect);
            let value_ok = tol.operator.as_deref() == Some("Exists")
                || tol.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("");
            key_ok && effect_ok && value_ok
        })
    })
}

fn gmsa(ctx: &Context, app: &ValidatedApp) -> Option<GmsaCheck> {
    let g = app.gmsa.as_ref()?;
    let Some(store) = ctx.stores.credspecs.get() else { return Some(GmsaCheck::CrdMissing) };
    let key = ObjectRef::new_with(&g.credential_spec_name, ctx.credspec_resource.clone());
    // A generated credspec was just applied; the cache may not hold it yet.
    Some(if g.generated.is_some() || store.get(&key).is_some() {
        GmsaCheck::Ready { credspec: g.credential_spec_name.clone() }
    } else {
        GmsaCheck::CredSpecMissing { credspec: g.credential_spec_name.clone() }
    })
}

async fn claims(ctx: &Context, app: &ValidatedApp) -> Result<Vec<ClaimCheck>> {
    let mut out = Vec::new();
    for v in &app.volumes {
        let claim = meta::claim_name(app, &v.name);
        let bound = ctx
            .stores
            .claims
            .get(&ObjectRef::new(&claim).within(&app.namespace))
            .and_then(|c| c.status.as_ref().and_then(|s| s.phase.clone()))
            .is_some_and(|p| p == "Bound");
        let missing_secret = match &v.source {
            VolumeSource::Smb { secret_name, .. } => {
                let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &app.namespace);
                match secrets.get_metadata_opt(secret_name).await {
                    Ok(Some(_)) => None,
                    Ok(None) => Some(secret_name.clone()),
                    // Not allowed to look: cannot tell, so do not claim it is missing.
                    Err(kube::Error::Api(s)) if s.code == 403 => None,
                    Err(source) => return Err(Error::SecretCheck { name: secret_name.clone(), source }),
                }
            }
            VolumeSource::Claim { .. } => None,
        };
        out.push(ClaimCheck { claim, bound, missing_secret });
    }
    Ok(out)
}

fn deployment(ctx: &Context, app: &ValidatedApp, current: bool) -> Option<DeploymentCheck> {
    let d: std::sync::Arc<Deployment> =
        ctx.stores.deployments.get(&ObjectRef::new(&meta::workload_name(app)).within(&app.namespace))?;
    let status = d.status.clone().unwrap_or_default();
    let generation = d.meta().generation.unwrap_or(0);
    let desired = d.spec.replicas.unwrap_or(1);
    let progress_deadline_exceeded = status.conditions.as_ref().is_some_and(|cs| {
        cs.iter().any(|c| {
            c.type_.as_deref() == Some("Progressing")
                && c.status.as_deref() == Some("False")
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    });
    Some(DeploymentCheck {
        up_to_date: current && status.observed_generation.unwrap_or(0) >= generation,
        desired,
        updated: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        replicas: status.replicas.unwrap_or(0),
        progress_deadline_exceeded,
    })
}
