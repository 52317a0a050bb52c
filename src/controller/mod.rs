//! The reconcile loop: admit (schema, then validation) -> build -> apply -> prune -> status, plus
//! the finalizer that removes cluster-scoped children, and the error policy.

pub mod admit;
pub mod apply;
pub mod claims;
pub mod diagnose;
pub mod error;
pub mod index;
pub mod lean;
pub mod observe;
pub mod secrets;
pub mod status;
pub mod strays;
pub mod watch;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use self::apply::{Applied, FIELD_MANAGER, Foreign};
use self::error::{Error, Result};
use self::index::Cache;
use self::lean::Lean;
use self::status::Observations;
use self::status::{GmsaCheck, Outcome};
use crate::api::{GROUP, VERSION, WindowsApp, WindowsAppStatus};
use crate::build::workload::Workload;
use crate::build::{self, Children, GmsaGrant, meta};
use crate::conditions::{self as c};
use crate::metrics::Metrics;
use crate::validate;

/// Finalizer that removes the cluster-scoped children when a WindowsApp is deleted.
pub const FINALIZER: &str = "winapp.dev/cleanup";

/// Watch caches of every kind the reconcile reads.
#[derive(Clone)]
pub struct Stores {
    pub deployments: Cache<Lean<Deployment>>,
    /// Node agents' workloads.
    pub daemon_sets: Cache<Lean<DaemonSet>>,
    pub services: Cache<Lean<Service>>,
    pub network_policies: Cache<Lean<NetworkPolicy>>,
    pub config_maps: Cache<Lean<ConfigMap>>,
    pub service_accounts: Cache<Lean<ServiceAccount>>,
    pub role_bindings: Cache<Lean<RoleBinding>>,
    pub claims: Cache<Lean<PersistentVolumeClaim>>,
    pub volumes: Cache<Lean<PersistentVolume>>,
    pub cluster_roles: Cache<Lean<ClusterRole>>,
    /// Present while the GMSACredentialSpec CRD is installed.
    pub credspecs: watch::CredSpecs,
    /// Namespaces, metadata only: which gMSA accounts their apps may generate credspecs for.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub nodes: Store<Node>,
    /// RuntimeClasses, for apps that name one: their scheduling is part of the pods' placement.
    pub runtime_classes: Store<RuntimeClass>,
    /// The operator's own writes of children whose watch event has not come back yet: those
    /// events trigger nothing (see [`apply::Echoes`]).
    pub echoes: Arc<apply::Echoes>,
    /// When a workload controller last reported progress on one of the operator's workloads.
    pub workload_activity: Arc<watch::WorkloadActivity>,
    /// Which Secrets exist (metadata only); None when the operator may not watch Secrets.
    pub secrets: Option<Arc<secrets::SecretIndex>>,
}

impl Stores {
    /// Objects and body bytes of each child cache (for `winapp_cache_objects` and
    /// `winapp_cache_body_bytes`).
    pub fn sizes(&self) -> Vec<crate::metrics::CacheSample> {
        fn size<K: Resource<DynamicType = ()> + Clone + 'static>(
            kind: &'static str,
            c: &Cache<Lean<K>>,
        ) -> crate::metrics::CacheSample {
            let all = c.store.state();
            (kind, all.len(), all.iter().map(|o| o.body_bytes()).sum())
        }
        vec![
            size("Deployment", &self.deployments),
            size("DaemonSet", &self.daemon_sets),
            size("Service", &self.services),
            size("NetworkPolicy", &self.network_policies),
            size("ConfigMap", &self.config_maps),
            size("ServiceAccount", &self.service_accounts),
            size("RoleBinding", &self.role_bindings),
            size("PersistentVolumeClaim", &self.claims),
            size("PersistentVolume", &self.volumes),
            size("ClusterRole", &self.cluster_roles),
        ]
    }

    /// Waits until every cache has its first full list. Call it from one task only: a store's
    /// readiness wakes a single waiter; others should wait on [`Context::caches_ready`].
    pub async fn wait_until_ready(&self) {
        let _ = self.deployments.wait_until_ready().await;
        let _ = self.daemon_sets.wait_until_ready().await;
        let _ = self.services.wait_until_ready().await;
        let _ = self.network_policies.wait_until_ready().await;
        let _ = self.config_maps.wait_until_ready().await;
        let _ = self.service_accounts.wait_until_ready().await;
        let _ = self.role_bindings.wait_until_ready().await;
        let _ = self.claims.wait_until_ready().await;
        let _ = self.volumes.wait_until_ready().await;
        let _ = self.cluster_roles.wait_until_ready().await;
        let _ = self.nodes.wait_until_ready().await;
        let _ = self.runtime_classes.wait_until_ready().await;
        let _ = self.namespaces.wait_until_ready().await;
        self.credspecs.settled().await;
        if let Some(secrets) = &self.secrets {
            while !secrets.listed() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Shared state of the reconciles.
pub struct Context {
    pub client: Client,
    pub stores: Stores,
    /// Publishes Warnings. kube's recorder keeps each event it published for a while, to count
    /// repeats as a series: worth it for Warnings, which repeat, not for Normal events.
    pub recorder: Recorder,
    /// Who publishes the events (a recorder made per Normal event keeps nothing).
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub credspec_resource: ApiResource,
    /// Becomes true once every cache has synced.
    pub caches_ready: tokio::sync::watch::Receiver<bool>,
    /// Consecutive failures per app, for exponential backoff.
    pub failures: Mutex<HashMap<ObjectRef<Watched>, u32>>,
    /// The operator's last write of each child (see [`apply`]).
    pub applied: apply::Memo,
    /// How long a rollout may make no progress before the pods are read to say why.
    pub diagnose_after: Duration,
    /// Node agents: when each DaemonSet last made progress (the Deployment controller keeps
    /// this for Deployments). One entry per node agent that is not Ready.
    pub progress: observe::ProgressTracker,
    /// What `spec.podTemplate` may override.
    pub pod_policy: crate::policy::Policy,
    /// The apps that passed the schema check, by the signature of what it read: an unchanged
    /// app is not checked again on every reconcile.
    pub schema_passed: Mutex<HashMap<(String, String), u64>>,
    /// Stalled apps: the generation and how many looks in a row found it Stalled (see
    /// [`stalled_wait`]).
    pub stalled: Mutex<HashMap<(String, String), StalledLooks>>,
}

impl Context {
    /// Notes a look that found the app `key` Stalled at `generation`; returns how many looks in
    /// a row did (1 after a change of generation).
    pub fn stalled_look(&self, key: &(String, String), generation: Option<i64>) -> u32 {
        let Ok(mut m) = self.stalled.lock() else { return 1 };
        let entry = m.entry(key.clone()).or_insert((generation, 0));
        if entry.0 != generation {
            *entry = (generation, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }

    /// The app `key` is no longer Stalled.
    pub fn unstalled(&self, key: &(String, String)) {
        if let Ok(mut m) = self.stalled.lock() {
            m.remove(key);
        }
    }

    /// Forgets what is kept per app (writes, progress, the Ready gauge) for the apps that are no
    /// longer in `apps`: apps without cluster-scoped children have no finalizer, so their
    /// deletion runs no reconcile.
    pub fn forget_deleted(&self, apps: &Store<Watched>) {
        let present = |ns: &str, name: &str| apps.get(&ObjectRef::new(name).within(ns)).is_some();
        if let Ok(mut m) = self.applied.lock() {
            m.retain(|(ns, name), _| present(ns, name));
        }
        self.progress.retain(|ns, name| present(ns, name));
        if let Ok(mut m) = self.schema_passed.lock() {
            m.retain(|(ns, name), _| present(ns, name));
        }
        if let Ok(mut m) = self.stalled.lock() {
            m.retain(|(ns, name), _| present(ns, name));
        }
        self.metrics.retain_apps(|r| present(r.namespace.as_deref().unwrap_or_default(), &r.name));
    }
}

/// A Stalled app's generation, and the looks in a row that found it Stalled at it.
pub type StalledLooks = (Option<i64>, u32);

/// Requeue interval of a Ready app (a safety net; watches trigger the real work).
const RESYNC: Duration = Duration::from_secs(300);
/// Requeue interval while waiting (rollout, claims, a missing Secret that has no watch).
const WAIT: Duration = Duration::from_secs(10);

/// The watched object: a WindowsApp, or one that could not be decoded (which then must not
/// stop the watch for every other app).
pub type Watched = DeserializeGuard<WindowsApp>;

/// Entry point of one reconcile.
#[instrument(skip_all, fields(namespace = guard.namespace().unwrap_or_default(), name = guard.name_any()))]
pub async fn reconcile(guard: Arc<Watched>, ctx: Arc<Context>) -> Result<Action> {
    // A reconcile against a cache that is still filling would re-apply every child.
    let _ = ctx.caches_ready.clone().wait_for(|r| *r).await;
    let app = match &guard.0 {
        Ok(app) => Arc::new(app.clone()),
        Err(invalid) => return undecodable(&ctx, invalid).await,
    };
    let started = Instant::now();
    app.namespace().ok_or(Error::MissingMetadata)?;
    let result = if app.metadata.deletion_timestamp.is_some() {
        if has_finalizer(&app.metadata) { cleanup(&app, &ctx).await } else { Ok(Action::await_change()) }
    } else {
        reconcile_apply(&app, &ctx).await
    };
    ctx.metrics.reconciled(started.elapsed());
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, next = ?result.as_ref().ok(), "reconciled");
    if result.is_ok()
        && let Ok(mut f) = ctx.failures.lock()
    {
        f.remove(&ObjectRef::from_obj(guard.as_ref()));
    }
    result
}

/// An object that does not decode as a WindowsApp (stored under an older or looser schema):
/// reported by an event and otherwise left alone, except that its deletion always completes:
/// its cluster-scoped children are removed and the finalizer with them.
async fn undecodable(ctx: &Context, invalid: &kube::core::error_boundary::InvalidObject) -> Result<Action> {
    let m = &invalid.metadata;
    if m.namespace.is_none() || m.name.is_none() {
        return Err(Error::MissingMetadata);
    }
    let finalizers = m.finalizers.clone().unwrap_or_default();
    if m.deletion_timestamp.is_some() {
        if finalizers.iter().any(|f| f == FINALIZER) {
            let deleted = release_deleted(ctx, m).await?;
            info!(deleted, "deleted an undecodable WindowsApp: removed its cluster-scoped children and the finalizer");
        }
        return Ok(Action::await_change());
    }
    warn!("cannot decode this WindowsApp, leaving it alone until it changes: {}", invalid.error);
    let reference = ObjectReference {
        api_version: Some(format!("{GROUP}/{VERSION}")),
        kind: Some("WindowsApp".into()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        ..ObjectReference::default()
    };
    let note = format!("the object does not match the WindowsApp schema: {}; fix or re-apply it", invalid.error);
    publish_to(ctx, &reference, EventType::Warning, "InvalidObject", note).await;
    Ok(Action::await_change())
}

/// The deletion of an app known by its metadata only (one that does not decode, or that has left
/// the operator's selector, see [`strays`]): its cluster-scoped children go, its claims to retain
/// are released, then the finalizer. Returns how many cluster-scoped children were deleted.
pub async fn release_deleted(ctx: &Context, m: &ObjectMeta) -> Result<usize> {
    let (Some(ns), Some(name)) = (m.namespace.as_deref(), m.name.as_deref()) else {
        return Err(Error::MissingMetadata);
    };
    let deleted = delete_cluster_children(ctx, ns, name).await?;
    claims::release_all(&ctx.client, ns, name, m.uid.as_deref()).await?;
    remove_finalizer(ctx, m).await?;
    apply::forget(&ctx.applied, ns, name);
    ctx.metrics.set_ready(ObjectRef::new(name).within(ns), None);
    Ok(deleted)
}

/// Whether the object carries the operator's finalizer.
fn has_finalizer(m: &ObjectMeta) -> bool {
    m.finalizers.iter().flatten().any(|f| f == FINALIZER)
}

/// Field manager of the finalizer (apart from the children's, so that the two never conflict).
const FINALIZER_MANAGER: &str = "winapp.dev/finalizer";

/// Adds the finalizer, before the first cluster-scoped child is created (garbage collection
/// removes namespaced children; only cluster-scoped ones need the operator at deletion). A
/// server-side apply of the finalizer alone: idempotent, keeps other finalizers, and cannot fail
/// on a stale cached copy the way a JSON patch of the list does.
async fn add_finalizer(ctx: &Context, m: &ObjectMeta) -> Result<()> {
    let (Some(ns), Some(name)) = (m.namespace.as_deref(), m.name.as_deref()) else {
        return Err(Error::MissingMetadata);
    };
    let patch = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"), "kind": "WindowsApp",
        "metadata": {"name": name, "namespace": ns, "uid": m.uid, "finalizers": [FINALIZER]},
    });
    Api::<WindowsApp>::namespaced(ctx.client.clone(), ns)
        .patch_metadata(name, &PatchParams::apply(FINALIZER_MANAGER), &Patch::Apply(&patch))
        .await
        .map_err(Error::AddFinalizer)?;
    info!("added the finalizer: the app has cluster-scoped children");
    Ok(())
}

/// Removes the finalizer once the cluster-scoped children are gone: a merge patch of the other
/// finalizers, guarded by the `resourceVersion` seen (a conflict is retried). An app that is gone
/// already is done.
async fn remove_finalizer(ctx: &Context, m: &ObjectMeta) -> Result<()> {
    let (Some(ns), Some(name)) = (m.namespace.as_deref(), m.name.as_deref()) else {
        return Err(Error::MissingMetadata);
    };
    if !has_finalizer(m) {
        return Ok(());
    }
    let rest: Vec<&String> = m.finalizers.iter().flatten().filter(|f| *f != FINALIZER).collect();
    let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": m.resource_version}});
    match Api::<WindowsApp>::namespaced(ctx.client.clone(), ns)
        .patch_metadata(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::RemoveFinalizer(source)),
    }
}

/// Pure: when to look again at a rollout that is in progress, `idle` since it last progressed.
/// Its progress triggers a reconcile by itself (the workload is watched); the requeue is for
/// what no watch reports: the moment the pods are due a diagnosis, and then ever more rarely
/// (as long again as the rollout has been idle), and for a DaemonSet the operator's deadline.
pub fn wait_interval(idle: Duration, diagnose_after: Duration, deadline: Option<Duration>) -> Duration {
    let mut next = if idle < diagnose_after { diagnose_after - idle } else { idle };
    if let Some(d) = deadline.filter(|d| idle < *d) {
        next = next.min(d - idle);
    }
    next.clamp(MIN_WAIT, RESYNC)
}

/// Where a rollout stands, for [`next_look`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    /// The workload's controller has observed the generation applied.
    pub observed: bool,
    /// How long the rollout has made no progress.
    pub idle: Duration,
    /// The operator's own deadline (node agents).
    pub deadline: Option<Duration>,
}

/// Pure: when to reconcile an app again if no watch triggers it first. The watches report every
/// change the status shows; this is for what they cannot:
/// - Ready: a safety net, [`RESYNC`];
/// - Stalled, or no workload to watch: [`WAIT`] (a missing Secret has no watch);
/// - a new app whose first status waits for its workload to be observed: while the workload
///   controllers are at work (`controllers_active`: one changed a workload of the operator
///   within `diagnose_after`), the watch brings that observation, and [`RESYNC`] is the safety
///   net; when none has been seen at work, `diagnose_after`, so that the app has a status by
///   then even if no controller acts. (A timer of `diagnose_after` for every new app cost a
///   reconcile per app while kube-controller-manager's queue was longer than that.)
/// - a rollout the controller has observed: when its pods are due a diagnosis (see
///   [`wait_interval`]);
/// - a generation the controller has not observed yet: nothing to diagnose before it does, and
///   its observation comes through the watch; only a node agent's deadline, else [`RESYNC`].
///   (Looking every `diagnose_after` instead cost a reconcile per app and half-minute while the
///   controllers' queue was long.)
pub fn next_look(
    ready: bool,
    stalled: bool,
    status_deferred: bool,
    controllers_active: bool,
    rollout: Option<Rollout>,
    diagnose_after: Duration,
) -> Duration {
    match rollout {
        _ if ready => RESYNC,
        _ if stalled => WAIT,
        // The workload just written is often not in the cache yet (None).
        _ if status_deferred && controllers_active && !rollout.is_some_and(|r| r.observed) => rollout
            .and_then(|r| r.deadline.filter(|d| r.idle < *d).map(|d| (d - r.idle).clamp(MIN_WAIT, RESYNC)))
            .unwrap_or(RESYNC),
        _ if status_deferred => diagnose_after.clamp(MIN_WAIT, RESYNC),
        Some(r) if r.observed => wait_interval(r.idle, diagnose_after, r.deadline),
        Some(r) => r.deadline.filter(|d| r.idle < *d).map_or(RESYNC, |d| (d - r.idle).clamp(MIN_WAIT, RESYNC)),
        None => WAIT,
    }
}

/// Longest wait of a Stalled app between two looks when nothing it waits for changes.
pub const MAX_STALLED_WAIT: Duration = Duration::from_secs(300);

/// Pure: how long a Stalled app waits before it is looked at again, its `looks`-th look in a
/// row that finds it Stalled at the same generation: [`WAIT`], doubling each look, at most
/// [`MAX_STALLED_WAIT`]. The watches wake it at once when what it waits for changes (its spec,
/// a Secret it references, a credspec, nodes, its Namespace's grants); the looks are for what no
/// watch reports (an object in the way, a quota), and cost nothing but a reconcile from the
/// caches. (Looked at every 10 s, a few hundred Stalled apps kept the queue busy.)
pub fn stalled_wait(looks: u32) -> Duration {
    let doublings = looks.clamp(1, 16) - 1;
    WAIT.saturating_mul(1 << doublings).min(MAX_STALLED_WAIT)
}

/// Shortest requeue of a rollout in progress.
const MIN_WAIT: Duration = Duration::from_secs(2);

/// Pure: the delay before retrying after the `n`th consecutive failure: 5 s doubling, at most
/// [`RESYNC`].
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << n.clamp(1, 7).saturating_sub(1))).min(RESYNC)
}

/// Transient errors requeue with per-object exponential backoff (see [`backoff`]).
pub fn error_policy(app: Arc<Watched>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(error.category());
    let n = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(ObjectRef::from_obj(app.as_ref())).or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let delay = backoff(n);
    warn!(
        namespace = app.namespace().unwrap_or_default(),
        name = app.name_any(),
        category = error.category(),
        retry_in_s = delay.as_secs(),
        "reconcile failed: {error}"
    );
    Action::requeue(delay)
}

async fn reconcile_apply(app: &WindowsApp, ctx: &Context) -> Result<Action> {
    let generation = app.metadata.generation;
    let previous = app.status.clone();

    // 1. Admit: a spec that breaks the CRD's schema (stored while the CRD was looser) or the
    // operator's rules waits for a change; nothing is applied or deleted meanwhile.
    let key = (app.namespace().unwrap_or_default(), app.name_any());
    let signature = admit::schema_signature(app);
    let schema = match ctx.schema_passed.lock() {
        Ok(m) if m.get(&key) == Some(&signature) => admit::SchemaCheck::PassedUnchanged,
        _ => admit::SchemaCheck::Run,
    };
    // The platform's policy for this app: the operator's grants plus its Namespace's.
    let policy = ctx.pod_policy.for_namespace(&namespace_annotations(ctx, &key.0));
    let valid = match admit::admit_with(app, &policy.policy, schema) {
        Ok(v) => {
            if let Ok(mut m) = ctx.schema_passed.lock() {
                m.insert(key.clone(), signature);
            }
            v
        }
        Err(refusal) => {
            // Nothing is applied or deleted for a refused spec (the running version keeps
            // running), except a workload that uses a power the platform no longer grants.
            let withdrawn = withdraw(app, ctx, &key, &policy.policy).await?;
            let outcome = refusal.noting_unreadable(&key.0, &policy.unreadable).noting(withdrawn).into();
            write_status(app, ctx, generation, None, &outcome, previous.as_ref()).await?;
            return Ok(Action::await_change());
        }
    };
    let build_label = valid.placement.version.map(|v| v.build().to_owned());

    // 2. Suspend: touch nothing, say so.
    if valid.suspend {
        write_status(app, ctx, generation, build_label, &Outcome::Suspended, previous.as_ref()).await?;
        return Ok(Action::await_change());
    }

    // 3-6. Build, apply, prune, observe. Any failure lands in the status before it is retried.
    match apply_and_observe(app, ctx, &valid).await {
        Ok(Step::Applied(observations, workload_written)) => {
            let wait = observations.workload.as_ref().map(|w| Rollout {
                observed: w.up_to_date,
                idle: w.idle,
                deadline: w.deadline,
            });
            let outcome = Outcome::Applied(observations);
            let first = previous.is_none();
            // A new app whose workload was created just now and is not observed yet: the
            // controller's first status update of the workload triggers the next reconcile,
            // which reports the rollout. Until then, and at most `diagnose_after`, the app has
            // no status, which every tool reads as in progress. (An update does write it at
            // once: the old status would say Ready.)
            let defer = |new: &WindowsAppStatus| {
                first
                    && workload_written
                    && c::find(&new.conditions, c::READY).is_some_and(|r| r.reason == c::reason::NEW_GENERATION)
            };
            let new =
                write_status_unless(app, ctx, generation, build_label, &outcome, previous.as_ref(), defer).await?;
            let ready = c::find(&new.conditions, c::READY).is_some_and(|r| r.status == "True");
            let stalled = c::find(&new.conditions, c::STALLED).is_some_and(|r| r.status == "True");
            if stalled {
                return Ok(Action::requeue(stalled_wait(ctx.stalled_look(&key, generation))));
            }
            ctx.unstalled(&key);
            let active = ctx.stores.workload_activity.within(ctx.diagnose_after);
            Ok(Action::requeue(next_look(ready, stalled, defer(&new), active, wait, ctx.diagnose_after)))
        }
        Ok(Step::Conflict(foreign)) => {
            let msg = format!(
                "{} {} already exists and is not managed by this WindowsApp; delete or rename it, or rename the app",
                foreign.kind, foreign.name
            );
            write_status(app, ctx, generation, build_label, &Outcome::Conflict(msg), previous.as_ref()).await?;
            // The object in the way is someone else's, usually not watched: looked at again,
            // ever more rarely.
            Ok(Action::requeue(stalled_wait(ctx.stalled_look(&key, generation))))
        }
        Err(error) => {
            let outcome = Outcome::Failed {
                reason: error.category(),
                message: error.to_string(),
                permanent: error.is_permanent(),
            };
            if let Err(status_error) =
                write_status(app, ctx, generation, build_label, &outcome, previous.as_ref()).await
            {
                warn!("could not report the failure in the status: {status_error}");
            }
            Err(error)
        }
    }
}

/// Removes the app's workload when it uses what `policy` no longer grants (see
/// [`crate::policy::live`]); returns what the status says of it.
async fn withdraw(
    app: &WindowsApp,
    ctx: &Context,
    key: &(String, String),
    policy: &crate::policy::Policy,
) -> Result<Option<String>> {
    let (ns, name) = (key.0.as_str(), key.1.as_str());
    let s = &ctx.stores;
    let smb = !s.volumes.children(ns, name).is_empty();
    let owner = apply::Owner { namespace: ns, name, uid: app.metadata.uid.as_deref() };
    let mut removed = Vec::new();
    let mut rules = std::collections::BTreeSet::new();
    for d in s.deployments.children(ns, name) {
        let typed = d.typed().map_err(|e| Error::Cached("Deployment", e))?;
        let pod = serde_json::to_value(typed.spec.template.spec.unwrap_or_default())
            .map_err(|e| Error::Serialize("Deployment", e))?;
        let refused = crate::policy::live::refused(&pod, false, smb, policy);
        if !refused.is_empty() {
            rules.extend(refused);
            removed.extend(
                apply::prune(namespaced_api(&ctx.client), vec![d], "Deployment", owner, true, &BTreeSet::new())
                    .await?
                    .into_iter()
                    .map(|n| format!("Deployment {n}")),
            );
        }
    }
    for d in s.daemon_sets.children(ns, name) {
        let typed = d.typed().map_err(|e| Error::Cached("DaemonSet", e))?;
        let pod = serde_json::to_value(typed.spec.template.spec.unwrap_or_default())
            .map_err(|e| Error::Serialize("DaemonSet", e))?;
        let refused = crate::policy::live::refused(&pod, true, smb, policy);
        if !refused.is_empty() {
            rules.extend(refused);
            removed.extend(
                apply::prune(namespaced_api(&ctx.client), vec![d], "DaemonSet", owner, true, &BTreeSet::new())
                    .await?
                    .into_iter()
                    .map(|n| format!("DaemonSet {n}")),
            );
        }
    }
    if removed.is_empty() {
        return Ok(None);
    }
    for _ in &removed {
        ctx.metrics.child_written("Deleted");
    }
    let rules: Vec<&str> = rules.iter().map(|r| r.name()).collect();
    let note = format!(
        "the running pods used what the platform no longer grants (rule {}): removed {}; nothing else was deleted, and the pods run again once the rules are granted or the spec asks for none of them",
        rules.join(", "),
        removed.join(", ")
    );
    publish(ctx, app, EventType::Warning, "GrantWithdrawn", note.clone()).await;
    Ok(Some(note))
}

/// The annotations of the Namespace `name`, as cached (none while it is not cached yet).
fn namespace_annotations(ctx: &Context, name: &str) -> std::collections::BTreeMap<String, String> {
    ctx.stores.namespaces.get(&ObjectRef::new(name)).map(|n| n.annotations().clone()).unwrap_or_default()
}

/// How applying went, short of an error.
#[allow(clippy::large_enum_variant, reason = "one short-lived value per reconcile")]
enum Step {
    /// Every child is applied; what was observed afterwards, and whether the workload was
    /// written.
    Applied(Observations, bool),
    /// A child's name is taken by an object that is not ours.
    Conflict(Foreign),
}

/// Steps 3 to 6 of the reconcile: build, apply, prune, observe.
async fn apply_and_observe(app: &WindowsApp, ctx: &Context, valid: &validate::ValidatedApp) -> Result<Step> {
    // 3. Build the desired children (pure), with the versions of the Secrets config files come
    // from, and the platform team's answer on the app's gMSA: not allowed, the gMSA RBAC, the
    // generated credspec and the workload are left out of the build and so pruned. When the
    // operator cannot tell (the credspec or its CRD missing, or not cached yet), it creates none
    // of them and leaves those that exist as they are.
    let (versioned, missing_config_secrets) = config_secret_versions(ctx, valid);
    let valid = versioned.as_ref().unwrap_or(valid);
    let gmsa = observe::gmsa(ctx, valid);
    let grant = match &gmsa {
        None | Some(GmsaCheck::Ready { .. }) => GmsaGrant::Allowed,
        Some(GmsaCheck::NotAllowed { .. } | GmsaCheck::CredSpecMissing { .. } | GmsaCheck::CrdMissing) => {
            GmsaGrant::Withheld
        }
    };
    let mut children = build::build_with(valid, grant)?;
    let mut keep = Keep::of(&children);
    if matches!(gmsa, Some(GmsaCheck::CredSpecMissing { .. } | GmsaCheck::CrdMissing)) {
        keep.hold_gmsa(valid);
    }
    // The pods as they would run: the nodes are judged by them even while the workload is withheld.
    let pod = match &children.workload {
        Some(w) => w.template().spec.clone(),
        None => build::workload::Workload::of(valid)?.template().spec.clone(),
    };

    // 4. Apply in order; a child owned by someone else stops here. Cluster-scoped children need
    //    the finalizer first: nothing else removes them when the app goes.
    if children.needs_finalizer() && !has_finalizer(&app.metadata) {
        add_finalizer(ctx, &app.metadata).await?;
    }
    if let Some(build::workload::Workload::Deployment(deployment)) = &mut children.workload {
        if valid.replicas.is_none() {
            hand_over_replicas(ctx, valid).await?;
        } else if let Some(running) = replicas_to_keep(ctx, valid)? {
            deployment.spec.replicas = Some(running);
        }
    }
    let report = match apply_all(ctx, valid, children).await? {
        Ok(report) => report,
        Err(foreign) => return Ok(Step::Conflict(foreign)),
    };
    if !report.created.is_empty() {
        publish(ctx, app, EventType::Normal, "Created", format!("created {}", report.created.join(", "))).await;
    }
    if !report.adopted.is_empty() {
        let note = format!(
            "adopted PersistentVolumeClaim(s) {} again: released earlier from this app's volume(s) of the same name, with their data",
            report.adopted.join(", ")
        );
        publish(ctx, app, EventType::Normal, "Adopted", note).await;
    }
    for r in report.rewrites.iter().filter(|(_, new)| *new).map(|(r, _)| r) {
        let note = format!(
            "{} {}: {} is stored with another value than the operator applied (a mutating admission webhook or policy rewrote it); the operator keeps it and does not re-apply",
            r.kind, r.name, r.path
        );
        publish(ctx, app, EventType::Warning, c::reason::REWRITTEN_BY_ADMISSION, note).await;
    }

    // 5. Prune what the spec no longer asks for.
    let pruned = prune_all(ctx, valid, &keep).await?;
    if !pruned.deleted.is_empty() {
        publish(ctx, app, EventType::Normal, "Pruned", format!("deleted {}", pruned.deleted.join(", "))).await;
    }
    if !pruned.released.is_empty() {
        publish(ctx, app, EventType::Normal, "Released", released_note(&pruned.released)).await;
    }

    // 6. Observe.
    let stalled_since = app.status.as_ref().and_then(|s| {
        let stalled = c::find(&s.conditions, c::STALLED).is_some_and(|c| c.status == "True");
        let ready = c::find(&s.conditions, c::READY)?;
        (stalled && ready.status == "False" && s.observed_generation == app.metadata.generation)
            .then_some(ready.last_transition_time.0)
    });
    let blocked =
        !missing_config_secrets.is_empty() || gmsa.as_ref().is_some_and(|g| !matches!(g, GmsaCheck::Ready { .. }));
    let mut observations =
        observe::observe(ctx, valid, pod.as_ref(), !report.workload_written, stalled_since, blocked).await?;
    observations.missing_config_secrets = missing_config_secrets;
    observations.gmsa = gmsa;
    observations.rewrites = report.rewrites.iter().map(|(r, _)| format!("{} {}: {}", r.kind, r.name, r.path)).collect();
    observations.released_claims = pruned.released;
    observations.adopted_claims = report.adopted;
    Ok(Step::Applied(observations, report.workload_written))
}

/// The app with the `resourceVersion` of each Secret its config files come from (metadata only,
/// from the Secrets' index: the data is never read), and the Secrets that do not exist. None when
/// no file comes from a Secret. Without the index (the operator may not watch Secrets:
/// config/components/secret-check) the versions stay unknown: the files are still mounted, but a
/// change of a Secret does not roll the pods.
fn config_secret_versions(
    ctx: &Context,
    valid: &validate::ValidatedApp,
) -> (Option<validate::ValidatedApp>, Vec<String>) {
    let Some(config) = valid.config.as_ref().filter(|c| !c.secret_files.is_empty()) else {
        return (None, Vec::new());
    };
    let Some(index) = &ctx.stores.secrets else { return (None, Vec::new()) };
    let mut versions = std::collections::BTreeMap::new();
    let mut missing = Vec::new();
    for name in config.secret_names() {
        match index.get(&valid.namespace, name) {
            secrets::Known::Exists(rv) => {
                versions.insert(name.to_owned(), rv);
            }
            secrets::Known::Missing => missing.push(name.to_owned()),
            secrets::Known::Unknown => {}
        }
    }
    let mut versioned = valid.clone();
    if let Some(c) = versioned.config.as_mut() {
        c.secret_versions = versions;
    }
    (Some(versioned), missing)
}

/// Manager that holds `spec.replicas` for a moment when the operator hands it to an autoscaler.
pub const HANDOVER_MANAGER: &str = "winapp.dev/replicas-handover";

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
async fn hand_over_replicas(ctx: &Context, valid: &validate::ValidatedApp) -> Result<()> {
    let key = ObjectRef::new(&meta::workload_name(valid)).within(&valid.namespace);
    if ctx.stores.deployments.get(&key).is_none() {
        return Ok(());
    }
    // The cache holds no managedFields (see watch::slim): ask the API server who owns replicas.
    let api = Api::<Deployment>::namespaced(ctx.client.clone(), &valid.namespace);
    let name = meta::workload_name(valid);
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
        "metadata": {"name": name, "namespace": valid.namespace},
        "spec": {"replicas": running},
    });
    api.patch(&name, &PatchParams::apply(HANDOVER_MANAGER), &Patch::Apply(&patch))
        .await
        .map_err(|source| Error::Apply { kind: "Deployment", name: name.clone(), source })?;
    info!(replicas = running, "handed spec.replicas over to the autoscaler");
    Ok(())
}

/// No `spec.replicas` (and not autoscaled): 1 when the Deployment is created, then the running
/// count is kept, so that turning `autoscaled` off, or a `kubectl scale`, does not drop the
/// app back to one pod. An explicit `spec.replicas` always wins. A cached Deployment that does
/// not decode is an error: read as "no count" it would scale the app down to one pod.
fn replicas_to_keep(ctx: &Context, valid: &validate::ValidatedApp) -> Result<Option<i32>> {
    if valid.replicas_explicit {
        return Ok(None);
    }
    let key = ObjectRef::new(&meta::workload_name(valid)).within(&valid.namespace);
    match ctx.stores.deployments.get(&key) {
        Some(d) => Ok(d.typed().map_err(|e| Error::Cached("Deployment", e))?.spec.replicas),
        None => Ok(None),
    }
}

/// Names of the children to keep, per kind, for pruning.
struct Keep {
    service_accounts: BTreeSet<String>,
    credspecs: BTreeSet<String>,
    cluster_roles: BTreeSet<String>,
    role_bindings: BTreeSet<String>,
    config_maps: BTreeSet<String>,
    volumes: BTreeSet<String>,
    claims: BTreeSet<String>,
    network_policies: BTreeSet<String>,
    services: BTreeSet<String>,
    deployments: BTreeSet<String>,
    daemon_sets: BTreeSet<String>,
}

impl Keep {
    fn of(children: &Children) -> Self {
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
            workload,
        } = children;
        fn names<'a, K: ResourceExt + 'a>(items: impl IntoIterator<Item = &'a K>) -> BTreeSet<String> {
            items.into_iter().map(ResourceExt::name_any).collect()
        }
        Keep {
            service_accounts: names(service_account),
            credspecs: names(credential_spec),
            cluster_roles: names(gmsa_cluster_role),
            role_bindings: names(gmsa_role_binding),
            config_maps: names(config_map),
            volumes: names(persistent_volumes),
            claims: names(persistent_volume_claims),
            network_policies: names(network_policy),
            services: names(service),
            deployments: names(workload.iter().filter_map(build::workload::Workload::as_deployment)),
            daemon_sets: names(workload.iter().filter_map(build::workload::Workload::as_daemon_set)),
        }
    }

    /// Keeps the app's gMSA children and workload that exist, unbuilt: while the operator cannot
    /// tell whether the gMSA is allowed, it neither creates nor removes them.
    fn hold_gmsa(&mut self, app: &validate::ValidatedApp) {
        let Some(gmsa) = &app.gmsa else { return };
        if gmsa.generated.is_some() {
            self.credspecs.insert(gmsa.credential_spec_name.clone());
        }
        self.cluster_roles.insert(meta::gmsa_cluster_role_name(app));
        self.role_bindings.insert(meta::gmsa_role_binding_name(app));
        let workload = meta::workload_name(app);
        if app.node_agent {
            self.daemon_sets.insert(workload);
        } else {
            self.deployments.insert(workload);
        }
    }
}

#[derive(Default)]
struct ApplyReport {
    created: Vec<String>,
    /// Claims adopted again (released earlier from a volume of the same name).
    adopted: Vec<String>,
    workload_written: bool,
    /// Fields stored with other values than applied, and whether each was found just now.
    rewrites: Vec<(apply::Rewrite, bool)>,
}

/// Applies the children in three rounds: every child the others do not need first, then the gMSA
/// RoleBinding (after its ClusterRole), then the workload (its pods need the ServiceAccount, the
/// RBAC the gMSA webhook checks, and the config in place).
async fn apply_all(
    ctx: &Context,
    app: &validate::ValidatedApp,
    children: Children,
) -> Result<std::result::Result<ApplyReport, Foreign>> {
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
        workload,
    } = children;
    let client = &ctx.client;
    let ns = app.namespace.as_str();
    let owner = (ns, app.name.as_str());
    let s = &ctx.stores;
    let mut report = ApplyReport::default();
    let note = |kind: &str, name: String, done: apply::ChildApplied, report: &mut ApplyReport| {
        if done.applied != Applied::Unchanged {
            ctx.metrics.child_written(kind);
        }
        if done.applied == Applied::Created {
            report.created.push(format!("{kind} {name}"));
        }
        if done.adopted {
            report.adopted.push(name.clone());
        }
        if let Some(r) = done.rewrite {
            report.rewrites.push((r, done.new_rewrite));
        }
        done.applied
    };

    // Three rounds, each child of a round at once: a new app's first reconcile then waits for the
    // slowest child of each round instead of the sum of them all.
    // 1. Everything but the RoleBinding and the workload: none of these needs another to exist
    //    first (the API server takes a claim before its volume, a ClusterRole before the credspec
    //    it names).
    // 2. The gMSA RoleBinding: the API server lets the operator bind its ClusterRole only once
    //    it can read that role's rules and finds that the operator holds them (it has no `bind`).
    // 3. The workload, so that its pods find their ServiceAccount, RBAC and config in place.

    // A namespaced child (the app's namespace) or a cluster-scoped one, with its cache.
    // A workload's apply may come with its existence check done already (`looked_up`).
    macro_rules! child {
        (namespaced $store:ident, $kind:literal, $obj:expr) => {
            child!(namespaced $store, $kind, $obj, None)
        };
        (namespaced $store:ident, $kind:literal, $obj:expr, $looked_up:expr) => {
            apply_child(ctx, Api::namespaced(client.clone(), ns), s.$store.store.clone(), (), $kind, $obj, owner, $looked_up)
        };
        (cluster $store:ident, $kind:literal, $obj:expr) => {
            apply_child(ctx, Api::all(client.clone()), s.$store.store.clone(), (), $kind, $obj, owner, None)
        };
    }
    let mut first: Vec<ChildFuture<'_>> = Vec::new();
    if let Some(sa) = service_account {
        first.push(child!(namespaced service_accounts, "ServiceAccount", sa));
    }
    if let (Some(cs), Some(store)) = (credential_spec, s.credspecs.get()) {
        let api = Api::<DynamicObject>::all_with(client.clone(), &ctx.credspec_resource);
        first.push(apply_child(ctx, api, store, ctx.credspec_resource.clone(), "GMSACredentialSpec", cs, owner, None));
    }
    if let Some(cr) = gmsa_cluster_role {
        first.push(child!(cluster cluster_roles, "ClusterRole", cr));
    }
    if let Some(cm) = config_map {
        first.push(child!(namespaced config_maps, "ConfigMap", cm));
    }
    first.extend(persistent_volumes.into_iter().map(|pv| child!(cluster volumes, "PersistentVolume", pv)));
    first.extend(
        persistent_volume_claims.into_iter().map(|pvc| child!(namespaced claims, "PersistentVolumeClaim", pvc)),
    );
    if let Some(np) = network_policy {
        first.push(child!(namespaced network_policies, "NetworkPolicy", np));
    }
    if let Some(svc) = service {
        first.push(child!(namespaced services, "Service", svc));
    }
    let second: Vec<ChildFuture<'_>> =
        gmsa_role_binding.into_iter().map(|rb| child!(namespaced role_bindings, "RoleBinding", rb)).collect();
    // The workload's existence check (a GET when it is not cached yet, as for a new app) goes
    // with the first round, so that the third round is one round trip, not two.
    let look = async {
        match &workload {
            Some(Workload::Deployment(d)) => {
                apply::look_up(&Api::namespaced(client.clone(), ns), &s.deployments, "Deployment", &d.name_any()).await
            }
            Some(Workload::DaemonSet(d)) => {
                apply::look_up(&Api::namespaced(client.clone(), ns), &s.daemon_sets, "DaemonSet", &d.name_any()).await
            }
            None => Ok(None),
        }
    };
    let (first, looked_up) = futures::join!(futures::future::join_all(first), look);
    // Every result is looked at in the order above: the first error or foreign object wins.
    macro_rules! take {
        ($results:expr, $workload:expr) => {
            for result in $results {
                let (kind, name, done) = result?;
                match done {
                    Ok(done) => {
                        let applied = note(kind, name, done, &mut report);
                        if $workload {
                            report.workload_written = applied != Applied::Unchanged;
                        }
                    }
                    Err(foreign) => return Ok(Err(foreign)),
                }
            }
        };
    }
    take!(first, false);
    let looked_up = looked_up?;
    take!(futures::future::join_all(second).await, false);
    let third: Option<ChildFuture<'_>> = match workload {
        Some(Workload::Deployment(d)) => Some(child!(namespaced deployments, "Deployment", d, looked_up)),
        Some(Workload::DaemonSet(d)) => Some(child!(namespaced daemon_sets, "DaemonSet", d, looked_up)),
        None => None,
    };
    take!(futures::future::join_all(third).await, true);
    Ok(Ok(report))
}

/// One child's apply, boxed so that children of different kinds can be applied together.
type ChildFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(&'static str, String, ChildOutcome)>> + Send + 'a>>;
type ChildOutcome = std::result::Result<apply::ChildApplied, Foreign>;

/// Applies one child (see [`apply::apply`]), returning its kind and name with the outcome.
#[allow(clippy::too_many_arguments)]
fn apply_child<'a, K, C>(
    ctx: &'a Context,
    api: Api<K>,
    store: Store<C>,
    dyntype: C::DynamicType,
    kind: &'static str,
    obj: K,
    owner: (&'a str, &'a str),
    looked_up: Option<apply::LookedUp>,
) -> ChildFuture<'a>
where
    K: Resource + serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Send + Sync,
    C: lean::Cached,
    C::DynamicType: Clone + Eq + std::hash::Hash + Send + Sync,
{
    Box::pin(async move {
        let name = obj.name_any();
        let done =
            apply::apply(&ctx.applied, &ctx.stores.echoes, &api, &store, &dyntype, kind, obj, owner, looked_up).await?;
        Ok((kind, name, done))
    })
}

/// What pruning did.
struct Pruned {
    /// `Kind name` of each child deleted.
    deleted: Vec<String>,
    /// The claims released instead of deleted (see [`claims`]).
    released: Vec<crate::api::ReleasedClaim>,
}

/// The event note of claims released.
fn released_note(released: &[crate::api::ReleasedClaim]) -> String {
    let list: Vec<String> = released.iter().map(|r| format!("{} (volume {})", r.claim, r.volume)).collect();
    format!(
        "kept PersistentVolumeClaim(s) {} with their data (retentionPolicy Retain), released from the app: delete them when they are no longer needed, or add the volume back to adopt them",
        list.join(", ")
    )
}

/// Deletes the app's children that are not in `keep`, every kind; claims to retain are
/// released instead.
async fn prune_all(ctx: &Context, app: &validate::ValidatedApp, keep: &Keep) -> Result<Pruned> {
    let client = ctx.client.clone();
    let s = &ctx.stores;
    let owner = apply::Owner { namespace: &app.namespace, name: &app.name, uid: app.uid.as_deref() };
    let mut deleted = Vec::new();
    let mut note = |kind: &str, names: Vec<String>| {
        for n in names {
            ctx.metrics.child_written("Deleted");
            deleted.push(format!("{kind} {n}"));
        }
    };
    // One kind: its cached children of this app (by the owner index), less those to keep.
    macro_rules! prune {
        ($api:expr, $namespaced:literal, $field:ident, $kind:literal) => {
            note(
                $kind,
                apply::prune(
                    $api,
                    s.$field.children(&app.namespace, &app.name),
                    $kind,
                    owner,
                    $namespaced,
                    &keep.$field,
                )
                .await?,
            )
        };
    }
    prune!(namespaced_api(&client), true, deployments, "Deployment");
    prune!(namespaced_api(&client), true, daemon_sets, "DaemonSet");
    prune!(namespaced_api(&client), true, services, "Service");
    prune!(namespaced_api(&client), true, network_policies, "NetworkPolicy");
    // Claims: those to retain are released, the others deleted.
    let mut to_release = Vec::new();
    let mut to_delete = Vec::new();
    for c in s.claims.children(&app.namespace, &app.name) {
        if !apply::prunable(c.as_ref(), owner, true) || keep.claims.contains(&c.name_any()) {
            continue;
        }
        let typed = c.typed().map_err(|e| Error::Cached("PersistentVolumeClaim", e))?;
        if claims::retained(&typed) { to_release.push(typed) } else { to_delete.push(c) }
    }
    note(
        "PersistentVolumeClaim",
        apply::prune(namespaced_api(&client), to_delete, "PersistentVolumeClaim", owner, true, &keep.claims).await?,
    );
    let mut released = Vec::new();
    let claims_api = Api::namespaced(client.clone(), &app.namespace);
    for claim in &to_release {
        released.extend(claims::release(&claims_api, claim, &app.namespace, &app.name, app.uid.as_deref()).await?);
    }
    prune!(all(&client), false, volumes, "PersistentVolume");
    prune!(namespaced_api(&client), true, config_maps, "ConfigMap");
    prune!(namespaced_api(&client), true, role_bindings, "RoleBinding");
    prune!(all(&client), false, cluster_roles, "ClusterRole");
    if let Some(store) = s.credspecs.get() {
        let ar = ctx.credspec_resource.clone();
        let c = client.clone();
        let api = move |_: Option<&str>| Api::all_with(c.clone(), &ar);
        note(
            "GMSACredentialSpec",
            apply::prune(api, store.state(), "GMSACredentialSpec", owner, false, &keep.credspecs).await?,
        );
    }
    prune!(namespaced_api(&client), true, service_accounts, "ServiceAccount");
    Ok(Pruned { deleted, released })
}

/// An `Api` for a cluster-scoped kind.
fn all<K>(client: &Client) -> impl Fn(Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>,
{
    let c = client.clone();
    move |_: Option<&str>| Api::all(c.clone())
}

/// An `Api` for a namespaced kind in the namespace of the object being pruned.
fn namespaced_api<K>(client: &Client) -> impl Fn(Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    let c = client.clone();
    move |ns: Option<&str>| ns.map_or_else(|| Api::all(c.clone()), |ns| Api::namespaced(c.clone(), ns))
}

/// On deletion: remove the cluster-scoped children, found by label from the API server (not
/// the cache, which may lag). Namespaced children go with the app by garbage collection.
async fn cleanup(app: &WindowsApp, ctx: &Context) -> Result<Action> {
    let ns = app.namespace().ok_or(Error::MissingMetadata)?;
    let name = app.name_any();
    let deleted = delete_cluster_children(ctx, &ns, &name).await?;
    if deleted > 0 {
        publish(ctx, app, EventType::Normal, "CleanedUp", format!("deleted {deleted} cluster-scoped child object(s)"))
            .await;
    }
    let released = claims::release_all(&ctx.client, &ns, &name, app.uid().as_deref()).await?;
    if !released.is_empty() {
        publish(ctx, app, EventType::Normal, "Released", released_note(&released)).await;
    }
    remove_finalizer(ctx, &app.metadata).await?;
    apply::forget(&ctx.applied, &ns, &name);
    ctx.progress.forget(&ns, &name);
    ctx.metrics.set_ready(ObjectRef::from_obj(app), None);
    info!(deleted, "cleaned up cluster-scoped children");
    Ok(Action::await_change())
}

/// Deletes the cluster-scoped children of the app `ns/name`; returns how many.
async fn delete_cluster_children(ctx: &Context, ns: &str, name: &str) -> Result<usize> {
    let lp = ListParams::default().labels(&meta::children_selector(ns, name));
    let mut deleted = 0;
    deleted += delete_labelled(Api::<PersistentVolume>::all(ctx.client.clone()), &lp, "PersistentVolume").await?;
    deleted += delete_labelled(Api::<ClusterRole>::all(ctx.client.clone()), &lp, "ClusterRole").await?;
    // Asked of the API server whatever the credspec cache says: the cache is absent not only when
    // the CRD is not installed but also while discovery has not answered or the cache has not
    // synced (a restart), and removing the finalizer then would leave the credspec behind. Without
    // the CRD the list is a 404: nothing to delete.
    let api = Api::<DynamicObject>::all_with(ctx.client.clone(), &ctx.credspec_resource);
    deleted += match delete_labelled(api, &lp, "GMSACredentialSpec").await {
        Err(Error::List { source: kube::Error::Api(s), .. }) if s.code == 404 => 0,
        other => other?,
    };
    Ok(deleted)
}

async fn delete_labelled<K>(api: Api<K>, lp: &ListParams, kind: &'static str) -> Result<usize>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list_metadata(lp).await.map_err(|source| Error::List { kind, source })?;
    for o in &list.items {
        let name = o.name_any();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(Error::Delete { kind, name, source }),
        }
    }
    Ok(list.items.len())
}

/// Computes and writes the status unless only timestamps would change; publishes events on
/// meaningful transitions. Returns the status now in force.
async fn write_status(
    app: &WindowsApp,
    ctx: &Context,
    generation: Option<i64>,
    windows_build: Option<String>,
    outcome: &Outcome,
    previous: Option<&WindowsAppStatus>,
) -> Result<WindowsAppStatus> {
    write_status_unless(app, ctx, generation, windows_build, outcome, previous, |_| false).await
}

/// [`write_status`], except when `skip` says the new status is not worth a write.
async fn write_status_unless(
    app: &WindowsApp,
    ctx: &Context,
    generation: Option<i64>,
    windows_build: Option<String>,
    outcome: &Outcome,
    previous: Option<&WindowsAppStatus>,
    skip: impl Fn(&WindowsAppStatus) -> bool,
) -> Result<WindowsAppStatus> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new = status::compute(generation, windows_build, outcome, previous, &now);
    ctx.metrics.set_ready(ObjectRef::from_obj(app), c::find(&new.conditions, c::READY).map(|r| r.status.clone()));
    if previous.is_some_and(|p| status::same_ignoring_time(p, &new)) || skip(&new) {
        return Ok(new);
    }
    transition_events(ctx, app, previous, &new).await;
    let ns = app.namespace().ok_or(Error::MissingMetadata)?;
    let api: Api<WindowsApp> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": "WindowsApp", "status": new});
    api.patch_status(&app.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(Error::Status)?;
    ctx.metrics.status_written();
    Ok(new)
}

async fn transition_events(
    ctx: &Context,
    app: &WindowsApp,
    previous: Option<&WindowsAppStatus>,
    new: &WindowsAppStatus,
) {
    let was = |t: &str| previous.and_then(|p| c::find(&p.conditions, t)).map(|x| (x.status.clone(), x.reason.clone()));
    for cond in &new.conditions {
        let before = was(&cond.type_);
        let changed = before.as_ref() != Some(&(cond.status.clone(), cond.reason.clone()));
        if !changed {
            continue;
        }
        match (cond.type_.as_str(), cond.status.as_str()) {
            (c::READY, "True") => {
                publish(ctx, app, EventType::Normal, "RolloutComplete", cond.message.clone()).await;
            }
            (c::STALLED, "True") => {
                publish(ctx, app, EventType::Warning, &cond.reason, cond.message.clone()).await;
            }
            // A problem of the pods: progress until the rollout's deadline, but worth a Warning.
            (c::RECONCILING, "True") if diagnose::is_problem(&cond.reason) => {
                ctx.metrics.pod_problem(&cond.reason);
                publish(ctx, app, EventType::Warning, &cond.reason, cond.message.clone()).await;
            }
            // A transient failure: retried, but a person may want to know.
            (c::RECONCILING, "True") if cond.reason.ends_with("Failed") => {
                publish(ctx, app, EventType::Warning, &cond.reason, cond.message.clone()).await;
            }
            _ => {}
        }
    }
}

/// Publishes an event on the app; a failure is logged, never fails the reconcile.
async fn publish(ctx: &Context, app: &WindowsApp, type_: EventType, reason: &str, note: String) {
    publish_to(ctx, &app.object_ref(&()), type_, reason, note).await;
}

async fn publish_to(ctx: &Context, reference: &ObjectReference, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    // Normal events (Created, RolloutComplete) happen once per change: a throwaway recorder sends
    // them without keeping a copy (2 per app, about 10 MB at 1,000 apps converging at once).
    let published = match type_ {
        EventType::Normal => Recorder::new(ctx.client.clone(), ctx.reporter.clone()).publish(&ev, reference).await,
        EventType::Warning => ctx.recorder.publish(&ev, reference).await,
    };
    if let Err(e) = published {
        warn!("could not publish event {reason}: {e}");
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
