//! Reads what the status is computed from: nodes, credspecs, namespaces, claims and the workload
//! from the watch caches; SMB Secrets by metadata only (their content is never fetched).

use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Event, Node, Pod, PodSpec, Taint, Toleration};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::Context;
use super::diagnose::{self, ContainerFacts, EventFacts, PodFacts, WorkloadFacts};
use super::error::{Error, Result};
use super::status::{ClaimCheck, GmsaCheck, NodeCheck, Observations, WorkloadCheck, WorkloadKind};
use crate::build::{meta, workload};
use crate::gmsa_policy::{self, Decision};
use crate::validate::{ValidatedApp, VolumeSource};

/// Gathers the observations for `app`, whose pods have the spec `pod` (as applied).
/// `workload_current` is false when this reconcile just wrote the workload, so the cached
/// copy may predate the write. `stalled_since`: when the app was last reported stalled at this
/// generation (it keeps a node agent stalled across a restart of the operator).
pub async fn observe(
    ctx: &Context,
    app: &ValidatedApp,
    pod: Option<&PodSpec>,
    workload_current: bool,
    stalled_since: Option<Timestamp>,
    blocked: bool,
) -> Result<Observations> {
    let name = meta::workload_name(app);
    let now = Timestamp::now();
    let (workload, stuck) = if app.node_agent {
        match ctx.stores.daemon_sets.get(&ObjectRef::new(&name).within(&app.namespace)).map(|d| d.typed()) {
            Some(Ok(d)) => {
                let check = daemon_set(&d, workload_current, app, &ctx.progress, stalled_since, now);
                let stuck = Stuck { uid: d.metadata.uid.clone(), replica_failure: None, idle: check.idle };
                (Some(check), Some(stuck))
            }
            Some(Err(e)) => return Err(Error::Cached("DaemonSet", e)),
            None => (None, None),
        }
    } else {
        match ctx.stores.deployments.get(&ObjectRef::new(&name).within(&app.namespace)).map(|d| d.typed()) {
            Some(Ok(d)) => {
                let stuck = Stuck::of_deployment(&d, now);
                let mut check = deployment(&d, workload_current);
                check.idle = stuck.idle;
                (Some(check), Some(stuck))
            }
            Some(Err(e)) => return Err(Error::Cached("Deployment", e)),
            None => (None, None),
        }
    };
    let nodes = nodes(ctx, app, pod);
    let claims = claims(ctx, app).await?;
    // An app blocked by what a person must fix first (a missing Secret or credspec, a gMSA not
    // allowed, a missing RuntimeClass) is Stalled for that: its pods' troubles follow from it, and
    // reading them would cost a pod list and event lists at every look.
    let blocked = blocked || nodes.runtime_class_missing.is_some() || claims.iter().any(|c| c.missing_secret.is_some());
    let diagnosis = match (stuck, &workload) {
        (Some(stuck), Some(check)) if !blocked && check.up_to_date && check.available < check.desired => {
            diagnose(ctx, app, stuck, now).await.unwrap_or_else(|e| {
                // The diagnosis is a help, not a step: without it the status says "rolling out".
                warn!("could not read the pods to tell why they are not available: {e}");
                None
            })
        }
        _ => None,
    };
    Ok(Observations {
        nodes,
        // Decided before the build (see [`gmsa`]); the reconcile fills it in.
        gmsa: None,
        claims,
        workload,
        rewrites: Vec::new(),
        diagnosis,
        missing_config_secrets: Vec::new(),
        released_claims: Vec::new(),
        adopted_claims: Vec::new(),
    })
}

/// Pods read per diagnosis, at most (each costs one event list).
const PODS_SAMPLED: usize = 3;

/// What the workload says about a rollout that is short of available pods.
struct Stuck {
    /// The workload's UID (its events name it).
    uid: Option<String>,
    /// A Deployment's `ReplicaFailure` message: the API server refused to create pods.
    replica_failure: Option<String>,
    /// How long the rollout has made no progress.
    idle: Duration,
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
            .map_or(Duration::ZERO, |t| since(now, &t.0));
        Stuck { uid: d.metadata.uid.clone(), replica_failure, idle }
    }
}

/// When each node agent's DaemonSet last made progress: a change of generation, updated or
/// available pods. Entries exist only for node agents that are not Ready.
#[derive(Debug, Default)]
pub struct ProgressTracker(Mutex<HashMap<(String, String), Progress>>);

#[derive(Debug, Clone, Copy, PartialEq)]
struct Progress {
    counts: (i64, i32, i32),
    since: Timestamp,
}

impl ProgressTracker {
    /// Records the DaemonSet's counts of `ns/name`; returns how long they have not changed.
    /// An app seen for the first time counts from `seed`, else from `now`.
    fn record(
        &self,
        ns: &str,
        name: &str,
        counts: (i64, i32, i32),
        seed: Option<Timestamp>,
        now: Timestamp,
    ) -> Duration {
        let Ok(mut map) = self.0.lock() else { return Duration::ZERO };
        let entry =
            map.entry((ns.to_owned(), name.to_owned())).or_insert(Progress { counts, since: seed.unwrap_or(now) });
        if entry.counts != counts {
            *entry = Progress { counts, since: now };
        }
        since(now, &entry.since)
    }

    /// Keeps the entries of the apps for which `keep` is true.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|(ns, name), _| keep(ns, name));
        }
    }

    /// Drops the entry of `ns/name` (rolled out, or deleted).
    pub fn forget(&self, ns: &str, name: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&(ns.to_owned(), name.to_owned()));
        }
    }
}

/// Why the pods of a workload whose rollout is short of available are not: from the cached
/// Deployment alone when it reports refused pod creations; otherwise, once the rollout has made
/// no progress for [`Context::diagnose_after`], from one list of the app's pods and the events of
/// a few of them (and, when a DaemonSet has no pods, of the DaemonSet: its refused creations).
/// Nothing is cached: this costs requests only while an app is stuck.
async fn diagnose(
    ctx: &Context,
    app: &ValidatedApp,
    stuck: Stuck,
    now: Timestamp,
) -> std::result::Result<Option<diagnose::Diagnosis>, kube::Error> {
    if stuck.replica_failure.is_some() {
        let facts = WorkloadFacts { replica_failure: stuck.replica_failure, ..WorkloadFacts::default() };
        return Ok(diagnose::diagnose(&facts, &app.namespace));
    }
    if stuck.idle < ctx.diagnose_after {
        return Ok(None);
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &app.namespace);
    let selector = meta::selector_labels(app).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    let not_ready: Vec<&Pod> =
        list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && !pod_ready(p)).collect();
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &app.namespace);
    if app.node_agent
        && not_ready.is_empty()
        && let Some(uid) = stuck.uid.as_deref()
    {
        // No pods: the DaemonSet controller reports refused creations as events on the DaemonSet.
        let list = events.list(&ListParams::default().fields(&format!("involvedObject.uid={uid}"))).await?;
        let refused = list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
            .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0))
            .and_then(|e| e.message.clone());
        let facts = WorkloadFacts { replica_failure: refused, ..WorkloadFacts::default() };
        return Ok(diagnose::diagnose(&facts, &app.namespace));
    }
    let mut sampled = Vec::new();
    for pod in not_ready.iter().take(PODS_SAMPLED) {
        let mut facts = pod_facts(ctx, pod);
        if let Some(uid) = pod.metadata.uid.as_deref() {
            let list = events.list(&ListParams::default().fields(&format!("involvedObject.uid={uid}"))).await?;
            let mut evs: Vec<(Duration, EventFacts)> = list
                .items
                .iter()
                .map(|e| {
                    let age = e
                        .last_timestamp
                        .as_ref()
                        .map(|t| since(now, &t.0))
                        .or_else(|| e.event_time.as_ref().map(|t| since(now, &t.0)))
                        .unwrap_or(Duration::ZERO);
                    let facts = EventFacts {
                        reason: e.reason.clone().unwrap_or_default(),
                        message: e.message.clone().unwrap_or_default(),
                        age,
                    };
                    (age, facts)
                })
                .collect();
            // Oldest first.
            evs.sort_by_key(|e| std::cmp::Reverse(e.0));
            facts.events = evs.into_iter().map(|(_, e)| e).collect();
        }
        sampled.push(facts);
    }
    let facts = WorkloadFacts { replica_failure: None, not_ready: not_ready.len(), pods: sampled };
    Ok(diagnose::diagnose(&facts, &app.namespace))
}

fn since(now: Timestamp, then: &Timestamp) -> Duration {
    now.duration_since(*then).try_into().unwrap_or(Duration::ZERO)
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_facts(ctx: &Context, p: &Pod) -> PodFacts {
    let status = p.status.clone().unwrap_or_default();
    let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
    let node_build = node
        .as_ref()
        .and_then(|n| ctx.stores.nodes.get(&ObjectRef::new(n)))
        .and_then(|n| n.labels().get(workload::WINDOWS_BUILD_LABEL).cloned());
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
        .map(|c| c.message.clone().unwrap_or_default());
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .map(|c| {
            let state = c.state.clone().unwrap_or_default();
            ContainerFacts {
                name: c.name.clone(),
                image: c.image.clone(),
                ready: c.ready,
                running: state.running.is_some(),
                waiting: state.waiting.map(|w| (w.reason.unwrap_or_default(), w.message.unwrap_or_default())),
                last_exit: c
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| (t.exit_code, t.reason.clone().unwrap_or_default())),
                restarts: c.restart_count,
            }
        })
        .collect();
    PodFacts { name: p.name_any(), node, node_build, unschedulable, containers, events: Vec::new() }
}

/// The Windows nodes the pods can run on, judged by the pod spec the operator applies (its node
/// selector and tolerations, `podTemplate` overrides included), and the taints that make other
/// nodes with the right labels unusable.
fn nodes(ctx: &Context, app: &ValidatedApp, pod: Option<&PodSpec>) -> NodeCheck {
    let p = &app.placement;
    let build = p.version.map(|v| v.build().to_owned());
    let mut selector = pod.and_then(|s| s.node_selector.clone()).unwrap_or_default();
    let mut tolerations = pod.and_then(|s| s.tolerations.clone()).unwrap_or_default();
    // A RuntimeClass adds its scheduling at admission: judge the nodes as the scheduler will.
    let mut runtime_class_missing = None;
    if let Some(rc) = pod.and_then(|s| s.runtime_class_name.as_deref()) {
        match ctx.stores.runtime_classes.get(&ObjectRef::new(rc)) {
            Some(class) => {
                if let Some(scheduling) = &class.scheduling {
                    selector.extend(scheduling.node_selector.clone().unwrap_or_default());
                    tolerations.extend(scheduling.tolerations.clone().unwrap_or_default());
                }
            }
            None => runtime_class_missing = Some(rc.to_owned()),
        }
    }
    let mut ready_matching = Vec::new();
    let mut tolerated_taints = std::collections::BTreeSet::new();
    let mut untolerated = std::collections::BTreeSet::new();
    for n in ctx.stores.nodes.state().iter() {
        let labels = n.labels();
        let selected = labels.get(workload::OS_LABEL).map(String::as_str) == Some("windows")
            && selector.iter().all(|(k, v)| labels.get(k) == Some(v));
        if !selected || !node_ready(n) {
            continue;
        }
        let blocking = blocking_taints(n);
        let refused: Vec<String> =
            blocking.iter().filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t))).map(taint_text).collect();
        if refused.is_empty() {
            ready_matching.push(n.name_any());
            tolerated_taints.extend(blocking.iter().map(taint_text));
        } else {
            untolerated.extend(refused.into_iter().map(|t| format!("{t} ({})", n.name_any())));
        }
    }
    ready_matching.sort();
    NodeCheck {
        wanted: p.version.map_or_else(|| "any build".to_owned(), |v| format!("{} ({})", v.as_str(), v.build())),
        build,
        ready_matching: ready_matching.len(),
        names: ready_matching.into_iter().take(5).collect(),
        tolerated_taints: tolerated_taints.into_iter().collect(),
        untolerated: untolerated.into_iter().take(5).collect(),
        runtime_class_missing,
    }
}

/// NoSchedule and NoExecute taints: the ones that keep pods off a node.
fn blocking_taints(n: &Node) -> Vec<Taint> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect != "PreferNoSchedule")
        .collect()
}

fn taint_text(t: &Taint) -> String {
    format!("{}={}:{}", t.key, t.value.as_deref().unwrap_or(""), t.effect)
}

/// Kubernetes' matching of a toleration against a taint.
fn tolerates(tol: &Toleration, t: &Taint) -> bool {
    let key_ok = tol.key.as_deref().is_none_or(|k| k.is_empty() || k == t.key);
    let effect_ok = tol.effect.as_deref().is_none_or(|e| e.is_empty() || e == t.effect);
    let value_ok = tol.operator.as_deref() == Some("Exists")
        || tol.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("");
    key_ok && effect_ok && value_ok
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
            let key = ObjectRef::new_with(&g.credential_spec_name, ctx.credspec_resource.clone());
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

async fn claims(ctx: &Context, app: &ValidatedApp) -> Result<Vec<ClaimCheck>> {
    let mut out = Vec::new();
    for v in &app.volumes {
        let claim = meta::claim_name(app, &v.name);
        let bound = match ctx.stores.claims.get(&ObjectRef::new(&claim).within(&app.namespace)) {
            Some(c) => c.typed().map_err(|e| Error::Cached("PersistentVolumeClaim", e))?.status,
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

fn daemon_set(
    d: &DaemonSet,
    current: bool,
    app: &ValidatedApp,
    progress: &ProgressTracker,
    stalled_since: Option<Timestamp>,
    now: Timestamp,
) -> WorkloadCheck {
    let status = d.status.clone().unwrap_or_default();
    let generation = d.meta().generation.unwrap_or(0);
    let up_to_date = current && status.observed_generation.unwrap_or(0) >= generation;
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    let done = up_to_date && updated >= desired && available >= desired;
    let idle = if done {
        progress.forget(&app.namespace, &app.name);
        Duration::ZERO
    } else {
        progress.record(&app.namespace, &app.name, (generation, updated, available), stalled_since, now)
    };
    let deadline = Duration::from_secs(u64::try_from(app.progress_deadline_seconds).unwrap_or(0));
    WorkloadCheck {
        kind: WorkloadKind::DaemonSet,
        up_to_date,
        desired,
        updated,
        available,
        replicas: status.current_number_scheduled + status.number_misscheduled,
        progress_deadline_exceeded: !done && idle >= deadline,
        idle,
        deadline: Some(deadline),
    }
}

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
