//! Reads what the status is computed from, in one place: nodes, claims and the workload from the
//! watch caches (nodes judged in [`placement`]), what resolving, applying and pruning found, and,
//! for a rollout stuck past `diagnose_after`, the pods ([`pods`]).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::Context;
use super::applier::ApplyReport;
use super::error::{Error, Result};
use super::kinds::{ChildKind, Claims, DaemonSets, Deployments, DisruptionBudgets};
use super::pace::Turn;
use super::prune::Pruned;
use super::resolve::Resolved;
use super::status::{BudgetCheck, ClaimCheck, GmsaCheck, Observations, WorkloadCheck, WorkloadKind, drain};
use super::{placement, pods};
use crate::build::meta;
use crate::gmsa_policy::{self, Decision};
use crate::validate::{ValidatedApp, VolumeSource};

/// What the reconcile did and knows, for [`observe`].
pub struct Seen<'a> {
    pub resolved: &'a Resolved,
    /// The pods' spec as the operator applies it (even while the workload is withheld).
    pub pod: Option<&'a PodSpec>,
    pub applied: ApplyReport,
    pub pruned: Pruned,
    /// When the app was last reported Stalled at this generation (it keeps a node agent Stalled
    /// across a restart of the operator).
    pub stalled_since: Option<Timestamp>,
    /// The workload's turn, when an operator's change to its pod template is paced.
    pub turn: Option<Turn>,
}

/// Gathers everything the status is computed from, in one place: the caches (nodes, claims, the
/// workload), what resolving, applying and pruning found, and, for a rollout stuck past
/// `diagnose_after`, the pods.
pub async fn observe(ctx: &Context, seen: Seen<'_>) -> Result<Observations> {
    let Seen { resolved, pod, applied, pruned, stalled_since, turn } = seen;
    let app = &resolved.app;
    // The cached workload may predate this reconcile's write of it.
    let (workload, stuck) = workload_check(ctx, app, !applied.workload_written, stalled_since)?;
    let nodes = placement::nodes(ctx, app, pod);
    let claims = claims(ctx, app)?;
    // An app blocked by what a person must fix first (a missing Secret or credspec, a gMSA not
    // allowed, a missing RuntimeClass) is Stalled for that: its pods' troubles follow from it, and
    // reading them would cost a pod list and event lists at every look.
    let blocked = resolved.blocked()
        || nodes.runtime_class_missing.is_some()
        || claims.iter().any(|c| c.missing_secret.is_some());
    let diagnosis = match (stuck, &workload) {
        // A move to another build keeps the old pods available: its new pods are read when it stalls.
        (Some(stuck), Some(check))
            if !blocked && check.up_to_date && (check.available < check.desired || app.migration.is_some()) =>
        {
            pods::diagnose(ctx, app, stuck, Timestamp::now()).await.unwrap_or_else(|e| {
                // The diagnosis is a help, not a step: without it the status says "rolling out".
                warn!("could not read the pods to tell why they are not available: {e}");
                None
            })
        }
        _ => None,
    };
    let budget = budget(ctx, app).await?;
    let migration = super::migration::observe(ctx, app).await;
    Ok(Observations {
        nodes,
        gmsa: resolved.gmsa.clone(),
        claims,
        workload,
        rewrites: applied.rewrites.iter().map(|(r, _)| format!("{} {}: {}", r.kind, r.name, r.path)).collect(),
        diagnosis,
        missing_config_secrets: resolved.missing_config_secrets.clone(),
        released_claims: pruned.released,
        adopted_claims: applied.adopted,
        turn,
        advice: crate::advice::resources(pod),
        budget,
        migration,
        // Set by the reconcile, which decided it before the apply (see `super::warmup`).
        warm_up: None,
    })
}

/// The app's PodDisruptionBudget from the cache and, only while it allows no eviction and a
/// Windows node is cordoned, which of those nodes run pods of the app (one pod list).
async fn budget(ctx: &Context, app: &ValidatedApp) -> Result<Option<BudgetCheck>> {
    let key = ObjectRef::new(&meta::workload_name(app)).within(&app.namespace);
    let Some(cached) = DisruptionBudgets::store(&ctx.stores).and_then(|s| s.get(&key)) else { return Ok(None) };
    let b = cached.typed().map_err(|e| Error::Cached(DisruptionBudgets::KIND, e))?;
    let s = b.status.unwrap_or_default();
    let observed = s.observed_generation.unwrap_or(0) >= b.metadata.generation.unwrap_or(0);
    let mut check = BudgetCheck {
        name: b.metadata.name.unwrap_or_default(),
        allowed: s.disruptions_allowed.filter(|_| observed),
        current_healthy: s.current_healthy.unwrap_or(0),
        desired_healthy: s.desired_healthy.unwrap_or(0),
        expected_pods: s.expected_pods.unwrap_or(0),
        cordoned: Vec::new(),
    };
    let cordoned = placement::cordoned_windows_nodes(ctx);
    if drain::pods_worth_reading(check.allowed, cordoned.len()) {
        check.cordoned = pods::on_nodes(ctx, app, &cordoned).await.unwrap_or_else(|e| {
            // Where the pods run is a help, not a step: without it the status names no drain.
            warn!("could not read the pods to tell whether a drain waits on the app: {e}");
            Vec::new()
        });
    }
    Ok(Some(check))
}

/// The app's workload as cached, and what a diagnosis needs of it when its rollout is stuck.
fn workload_check(
    ctx: &Context,
    app: &ValidatedApp,
    current: bool,
    stalled_since: Option<Timestamp>,
) -> Result<(Option<WorkloadCheck>, Option<Stuck>)> {
    let name = meta::workload_name(app);
    let now = Timestamp::now();
    if app.node_agent {
        let key = ObjectRef::new(&name).within(&app.namespace);
        let Some(cached) = DaemonSets::store(&ctx.stores).and_then(|s| s.get(&key)) else { return Ok((None, None)) };
        let d = cached.typed().map_err(|e| Error::Cached(DaemonSets::KIND, e))?;
        let app_key = (app.namespace.clone(), app.name.clone());
        let record = |counts| ctx.memory.progress(&app_key, counts, stalled_since, now);
        let check = daemon_set(&d, current, app, record, || {
            ctx.memory.with(&app_key, |s| s.progress = None);
        });
        let stuck = Stuck { uid: d.metadata.uid.clone(), replica_failure: None, idle: check.idle };
        Ok((Some(check), Some(stuck)))
    } else {
        let key = ObjectRef::new(&name).within(&app.namespace);
        let Some(cached) = Deployments::store(&ctx.stores).and_then(|s| s.get(&key)) else { return Ok((None, None)) };
        let d = cached.typed().map_err(|e| Error::Cached(Deployments::KIND, e))?;
        let mut stuck = Stuck::of_deployment(&d, now);
        let mut check = deployment(&d, current);
        check.idle = stuck.idle;
        if rolled_out(&d) {
            // Pods lost after the rollout (a drain, a node gone): the Deployment keeps no deadline
            // for them, so the operator does, as for a DaemonSet.
            let app_key = (app.namespace.clone(), app.name.clone());
            let generation = d.meta().generation.unwrap_or(0);
            let deadline = Duration::from_secs(u64::try_from(app.progress_deadline_seconds).unwrap_or(0));
            let idle = (check.available < check.desired).then(|| {
                ctx.memory.progress(&app_key, (generation, check.updated, check.available), stalled_since, now)
            });
            if idle.is_none() {
                ctx.memory.with(&app_key, |s| s.progress = None);
            }
            check = rescheduled(check, idle, deadline);
            stuck.idle = check.idle;
        }
        Ok((Some(check), Some(stuck)))
    }
}

/// What the workload says about a rollout that is short of available pods.
pub struct Stuck {
    /// The workload's UID (its events name it).
    pub uid: Option<String>,
    /// A Deployment's `ReplicaFailure` message: the API server refused to create pods.
    pub replica_failure: Option<String>,
    /// How long the rollout has made no progress.
    pub idle: Duration,
}

impl Stuck {
    fn of_deployment(d: &Deployment, now: Timestamp) -> Self {
        let conditions = d.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
        let replica_failure = conditions
            .iter()
            .find(|c| c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True"))
            .map(|c| c.message.clone().unwrap_or_else(|| c.reason.clone().unwrap_or_default()));
        // A Deployment the controller has not got to yet has no Progressing condition: it has
        // been idle since it was created. (Counting it as idle for no time at all requeued it
        // every `diagnose_after` for as long as the controller's queue was long.)
        let idle = conditions
            .iter()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
            .and_then(|c| c.last_update_time.as_ref())
            .or(d.metadata.creation_timestamp.as_ref())
            .map_or(Duration::ZERO, |t| pods::since(now, &t.0));
        Stuck { uid: d.metadata.uid.clone(), replica_failure, idle }
    }
}

/// Whether the app may use its gMSA, decided before anything is built (see
/// [`crate::gmsa_policy`]): for an existing credspec from its annotations in the credspec cache,
/// for a generated one from the Namespace's annotations in the namespace cache. None without
/// `spec.gmsa`.
pub fn gmsa(ctx: &Context, app: &ValidatedApp) -> Option<GmsaCheck> {
    let g = app.gmsa.as_ref()?;
    let Some(store) = ctx.stores.credspecs.get() else { return Some(GmsaCheck::CrdMissing) };
    let decision = match &g.generated {
        Some(spec) => {
            // A namespace not cached (yet) has, as far as the operator knows, no annotations.
            let namespace = ctx.stores.namespaces.get(&ObjectRef::new(&app.namespace));
            let annotations = namespace.map(|n| n.annotations().clone()).unwrap_or_default();
            gmsa_policy::generated_credspec(spec, &app.namespace, &annotations)
        }
        None => {
            let key = ObjectRef::new_with(&g.credential_spec_name, crate::build::identity::credspec_resource());
            let Some(credspec) = store.get(&key) else {
                return Some(GmsaCheck::CredSpecMissing { credspec: g.credential_spec_name.clone() });
            };
            gmsa_policy::existing_credspec(&g.credential_spec_name, credspec.annotations(), &app.namespace)
        }
    };
    Some(match decision {
        Decision::Allowed => GmsaCheck::Ready { credspec: g.credential_spec_name.clone(), warning: None },
        Decision::AllowedWithWarning(w) => {
            GmsaCheck::Ready { credspec: g.credential_spec_name.clone(), warning: Some(w) }
        }
        Decision::NotAllowed(message) => GmsaCheck::NotAllowed { message },
    })
}

/// The app's claims: bound or not, and a missing SMB credentials Secret.
fn claims(ctx: &Context, app: &ValidatedApp) -> Result<Vec<ClaimCheck>> {
    let mut out = Vec::new();
    for v in &app.volumes {
        let claim = meta::claim_name(app, &v.name);
        let cached = Claims::store(&ctx.stores).and_then(|s| s.get(&ObjectRef::new(&claim).within(&app.namespace)));
        let bound = match cached {
            Some(c) => c.typed().map_err(|e| Error::Cached(Claims::KIND, e))?.status,
            None => None,
        }
        .and_then(|s| s.phase)
        .is_some_and(|p| p == "Bound");
        let missing_secret = match (&v.source, &ctx.stores.secrets) {
            // From the Secrets' index; without it (no right to watch Secrets) the operator cannot
            // tell, so it does not claim one is missing.
            (VolumeSource::Smb { secret_name, .. }, Some(index)) => {
                (index.get(&app.namespace, secret_name) == super::secrets::Known::Missing).then(|| secret_name.clone())
            }
            _ => None,
        };
        out.push(ClaimCheck { claim, bound, missing_secret });
    }
    Ok(out)
}

/// A node agent's DaemonSet: `record` notes its counts and says how long they have not changed
/// (the operator keeps a DaemonSet's deadline), `done` forgets them once it is rolled out.
fn daemon_set(
    d: &DaemonSet,
    current: bool,
    app: &ValidatedApp,
    record: impl FnOnce((i64, i32, i32)) -> Duration,
    done: impl FnOnce(),
) -> WorkloadCheck {
    let status = d.status.clone().unwrap_or_default();
    let generation = d.meta().generation.unwrap_or(0);
    let up_to_date = current && status.observed_generation.unwrap_or(0) >= generation;
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    let rolled_out = up_to_date && updated >= desired && available >= desired;
    let idle = if rolled_out {
        done();
        Duration::ZERO
    } else {
        record((generation, updated, available))
    };
    let deadline = Duration::from_secs(u64::try_from(app.progress_deadline_seconds).unwrap_or(0));
    WorkloadCheck {
        kind: WorkloadKind::DaemonSet,
        up_to_date,
        desired,
        updated,
        available,
        replicas: status.current_number_scheduled + status.number_misscheduled,
        progress_deadline_exceeded: !rolled_out && idle >= deadline,
        idle,
        deadline: Some(deadline),
    }
}

/// Whether the Deployment's last rollout completed (Progressing with NewReplicaSetAvailable): its
/// controller then checks no progress deadline, whatever becomes of the pods.
fn rolled_out(d: &Deployment) -> bool {
    d.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_.as_deref() == Some("Progressing") && c.reason.as_deref() == Some("NewReplicaSetAvailable"))
    })
}

/// Pure: a rolled-out Deployment short of available pods since `idle` (None: not short), as the
/// status judges it: the operator keeps the deadline, so that pods rescheduled after a drain that
/// cannot start (no room, a pull that never ends) end Stalled with their reason, as a rollout does.
pub fn rescheduled(mut check: WorkloadCheck, idle: Option<Duration>, deadline: Duration) -> WorkloadCheck {
    if let Some(idle) = idle {
        check.idle = idle;
        check.deadline = Some(deadline);
        check.progress_deadline_exceeded = check.progress_deadline_exceeded || idle >= deadline;
    }
    check
}

/// A Deployment, as its controller reports it.
fn deployment(d: &Deployment, current: bool) -> WorkloadCheck {
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
    WorkloadCheck {
        kind: WorkloadKind::Deployment,
        up_to_date: current && status.observed_generation.unwrap_or(0) >= generation,
        desired,
        updated: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        replicas: status.replicas.unwrap_or(0),
        progress_deadline_exceeded,
        idle: Duration::ZERO,
        deadline: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    #[test]
    fn pods_lost_after_a_rollout_get_the_operators_deadline() {
        let check = WorkloadCheck {
            up_to_date: true,
            desired: 2,
            updated: 2,
            available: 0,
            replicas: 2,
            ..WorkloadCheck::default()
        };
        let deadline = Duration::from_secs(900);
        let waiting = rescheduled(check.clone(), Some(Duration::from_secs(60)), deadline);
        assert!(!waiting.progress_deadline_exceeded);
        assert_eq!((waiting.idle, waiting.deadline), (Duration::from_secs(60), Some(deadline)));
        assert!(rescheduled(check.clone(), Some(deadline), deadline).progress_deadline_exceeded);
        assert_eq!(rescheduled(check.clone(), None, deadline), check, "not short of pods: as the Deployment says");
        let mut d = Deployment::default();
        assert!(!rolled_out(&d));
        d.status = Some(DeploymentStatus {
            conditions: Some(vec![DeploymentCondition {
                type_: Some("Progressing".into()),
                status: Some("True".into()),
                reason: Some("NewReplicaSetAvailable".into()),
                ..DeploymentCondition::default()
            }]),
            ..DeploymentStatus::default()
        });
        assert!(rolled_out(&d));
    }

    #[test]
    fn a_deployment_not_yet_progressing_is_idle_since_it_was_created() {
        let now = at("2026-01-01T00:02:00Z");
        let mut d = Deployment::default();
        d.metadata.creation_timestamp = Some(Time(at("2026-01-01T00:00:00Z")));
        assert_eq!(Stuck::of_deployment(&d, now).idle, Duration::from_secs(120));
        // Once the controller reports progress, the idle time counts from its last update.
        d.status = Some(DeploymentStatus {
            conditions: Some(vec![DeploymentCondition {
                type_: Some("Progressing".into()),
                status: Some("True".into()),
                last_update_time: Some(Time(at("2026-01-01T00:01:50Z"))),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(Stuck::of_deployment(&d, now).idle, Duration::from_secs(10));
    }
}
