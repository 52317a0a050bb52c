//! The app's pods, read only when the status needs them (a Ready app costs no such reads), never
//! watched or cached: why the pods of a stuck rollout are not available (one list of the app's
//! pods, the events of a few of them and, for an app with SMB volumes, their nodes' CSINodes),
//! which cordoned nodes run pods of an app whose PodDisruptionBudget allows no eviction (one
//! list), and how many pods of each Windows build are Ready while the app moves from one build to
//! another (one list).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod, PodSpec};
use k8s_openapi::api::storage::v1::CSINode;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;
use tracing::debug;

use super::Context;
use super::diagnose::{self, ContainerFacts, EventFacts, PodFacts, WorkloadFacts};
use super::observe::Stuck;
use crate::build::{meta, workload};
use crate::validate::{ValidatedApp, VolumeSource};

/// Pods read per diagnosis, at most (each costs one event list).
const PODS_SAMPLED: usize = 3;

/// Why the pods of a workload whose rollout is short of available are not: from the cached
/// Deployment alone when it reports refused pod creations; otherwise, once the rollout has made
/// no progress for [`Context::diagnose_after`], from one list of the app's pods and the events of
/// a few of them (and, when a DaemonSet has no pods, of the DaemonSet: its refused creations).
/// Nothing is cached: this costs requests only while an app is stuck.
pub async fn diagnose(
    ctx: &Context,
    app: &ValidatedApp,
    stuck: Stuck,
    now: Timestamp,
) -> std::result::Result<Option<diagnose::Diagnosis>, kube::Error> {
    if stuck.replica_failure.is_some() {
        let facts = WorkloadFacts { replica_failure: stuck.replica_failure, ..WorkloadFacts::default() };
        return Ok(diagnose::diagnose(&facts, &app.namespace));
    }
    if stuck.idle < ctx.settings.diagnose_after {
        return Ok(None);
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &app.namespace);
    let list = pods.list(&ListParams::default().labels(&selector(app))).await?;
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
    let smb = app.volumes.iter().any(|v| matches!(v.source, VolumeSource::Smb { .. }));
    let mut csi_nodes: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    let mut sampled = Vec::new();
    for pod in not_ready.iter().take(PODS_SAMPLED) {
        let mut facts = pod_facts(ctx, pod);
        let started = facts.containers.iter().any(|c| c.running || c.last_exit.is_some());
        if let Some(node) = facts.node.as_ref().filter(|_| smb && !started) {
            if let Entry::Vacant(e) = csi_nodes.entry(node.clone()) {
                e.insert(csi_drivers(ctx, node).await);
            }
            facts.csi_drivers = csi_nodes.get(node).cloned().flatten();
        }
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

/// How many of the app's pods (not terminating) run on each of `nodes`, by node: one list of the
/// app's pods, read only while its budget allows no eviction and a node is cordoned.
pub async fn on_nodes(
    ctx: &Context,
    app: &ValidatedApp,
    nodes: &BTreeSet<String>,
) -> std::result::Result<Vec<(String, usize)>, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &app.namespace);
    let list = pods.list(&ListParams::default().labels(&selector(app))).await?;
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for p in list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).filter(|n| nodes.contains(*n)) {
            *count.entry(node.clone()).or_default() += 1;
        }
    }
    Ok(count.into_iter().collect())
}

/// The app's pods (one list), read only while it moves to another Windows build (see
/// [`super::migration::observe`]).
pub async fn all(ctx: &Context, app: &ValidatedApp) -> std::result::Result<Vec<Pod>, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &app.namespace);
    Ok(pods.list(&ListParams::default().labels(&selector(app))).await?.items)
}

/// The CSI drivers registered on a node, from its CSINode (one GET; none: no driver has
/// registered), or None when it cannot be read (the operator's RBAC, a passing error): then the
/// diagnosis goes by the kubelet's events alone.
async fn csi_drivers(ctx: &Context, node: &str) -> Option<Vec<String>> {
    let api: Api<CSINode> = Api::all(ctx.client.clone());
    match api.get_opt(node).await {
        Ok(Some(n)) => Some(n.spec.drivers.into_iter().map(|d| d.name).collect()),
        Ok(None) => Some(Vec::new()),
        Err(e) => {
            debug!("could not read the CSINode of node {node}: {e}");
            None
        }
    }
}

/// The gMSA credential spec a pod's spec names, for the pod or any of its containers.
fn gmsa_of(spec: &PodSpec) -> Option<String> {
    let pod = spec.security_context.as_ref().and_then(|s| s.windows_options.as_ref());
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    pod.into_iter()
        .chain(containers.filter_map(|c| c.security_context.as_ref().and_then(|s| s.windows_options.as_ref())))
        .find_map(|w| {
            w.gmsa_credential_spec_name
                .clone()
                .or_else(|| w.gmsa_credential_spec.as_ref().map(|_| "(inline in the pod)".to_owned()))
        })
}

/// The label selector of the app's pods, as a list request takes it.
fn selector(app: &ValidatedApp) -> String {
    meta::selector_labels(app).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

pub fn since(now: Timestamp, then: &Timestamp) -> Duration {
    now.duration_since(*then).try_into().unwrap_or(Duration::ZERO)
}

pub fn pod_ready(p: &Pod) -> bool {
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
                last_message: c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.message.clone()),
                restarts: c.restart_count,
            }
        })
        .collect();
    PodFacts {
        name: p.name_any(),
        node,
        node_build,
        unschedulable,
        containers,
        events: Vec::new(),
        gmsa: p.spec.as_ref().and_then(gmsa_of),
        csi_drivers: None,
    }
}
