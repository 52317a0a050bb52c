//! Wires the watches: the WindowsApps, their namespaced children (by owner reference), their
//! cluster-scoped children (by label), GMSACredentialSpecs, Namespaces (metadata) and Nodes,
//! each with a cache that the reconcile reads.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::PredicateConfig;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::Stores;
use super::Watched;
use super::apply::Echoes;
use super::index::{Cache, OwnerIndex};
use super::lean::Lean;
use super::secrets::SecretIndex;
use crate::build::{identity, meta};
use crate::gmsa_policy;
use crate::metrics::Metrics;

/// Where the operator looks.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this namespace (WindowsApps and their namespaced children); all when None.
    pub namespace: Option<String>,
    /// Only WindowsApps matching this label selector.
    pub selector: Option<String>,
}

fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Objects per page of a cache's first list. A list is decoded a page at a time, managedFields
/// and all, before [`slim`] trims each object: small pages keep that transient small. (A list
/// from the API server's watch cache, `resourceVersion=0`, ignores the page size and returns a
/// kind's every object at once: at 1,000 apps that was the operator's peak of memory.) A
/// restart over 1,000 apps peaked 2-3 MiB lower with 25 per page than with 100, for 40 list
/// requests per kind instead of 10.
const LIST_PAGE: u32 = 25;

/// The caches that grow with the number of apps list a page at a time (see [`LIST_PAGE`]).
fn paged() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE)
}

/// Children carry the managed-by label: watch only those, not every ConfigMap in the cluster.
fn children_config() -> watcher::Config {
    paged().labels(&format!("app.kubernetes.io/managed-by={}", meta::MANAGER))
}

fn cached<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().modify(slim).reflect(writer).touched_objects();
    (store, stream)
}

/// A workload kind's signature (see [`child_cache`]), and where its controller's activity is noted.
type Workload<'a, K> = (fn(&K) -> u64, &'a Arc<WorkloadActivity>);

/// The cache of one kind of child, and its triggers: every change of a child except the echo
/// of the operator's own write (see [`Echoes`]), and with a `signature` only a change of the
/// signature, or a deletion (the filter of kube's `predicate_filter` cannot tell a deletion from
/// an unchanged object).
fn child_cache<K>(
    api: Api<K>,
    echoes: &Arc<Echoes>,
    signature: Option<Workload<K>>,
) -> (Cache<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + use<K>)
where
    K: super::lean::Cached<DynamicType = ()> + DeserializeOwned,
    K::Scope: ScopeKind,
{
    let (store, writer) = reflector::store();
    let owned = Arc::new(OwnerIndex::new(K::Scope::NAMESPACED));
    let index = owned.clone();
    let echoes = echoes.clone();
    let signature = signature.map(|(f, activity)| (f, activity.clone()));
    let kind = K::kind(&()).into_owned();
    let mut seen: std::collections::HashMap<ObjectRef<K>, u64> = std::collections::HashMap::new();
    // No `slim`: the cached form drops managedFields and last-applied as it decodes.
    let stream = watcher(api, children_config()).default_backoff().reflect(writer).filter_map(move |ev| {
        if let Ok(ev) = &ev {
            index.observe(ev);
        }
        // `listed`: from a (re)list, not a change seen by the watch.
        let mut trigger = |o: K, listed: bool| {
            let m = o.meta();
            let echo = echoes.is_echo(&kind, m.namespace.as_deref(), &o.name_any(), m.resource_version.as_deref());
            let changed = match &signature {
                Some((signature, activity)) => {
                    let sig = signature(&o);
                    let changed = seen.insert(ObjectRef::from_obj(&o), sig) != Some(sig);
                    if changed && !echo && !listed {
                        // Not the operator's write: the workload's controller at work.
                        activity.saw();
                    }
                    changed
                }
                None => true,
            };
            (changed && !echo).then_some(Ok(o))
        };
        let out = match ev {
            Ok(watcher::Event::Apply(o)) => trigger(o, false),
            Ok(watcher::Event::InitApply(o)) => trigger(o, true),
            Ok(watcher::Event::Delete(o)) => {
                echoes.forget(&kind, o.meta().namespace.as_deref(), &o.name_any());
                if signature.is_some() {
                    seen.remove(&ObjectRef::from_obj(&o));
                }
                Some(Ok(o))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        };
        std::future::ready(out)
    });
    (Cache { store, owned }, stream)
}

/// When a workload controller (kube-controller-manager's Deployment or DaemonSet controller)
/// last changed one of the operator's workloads in a way the status reads. While it is at work,
/// a new app whose workload it has not observed yet can wait for that observation (see
/// [`super::next_look`]).
#[derive(Debug)]
pub struct WorkloadActivity {
    start: std::time::Instant,
    /// Milliseconds after `start`; 0 until the first change.
    last_ms: std::sync::atomic::AtomicU64,
}

impl Default for WorkloadActivity {
    fn default() -> Self {
        WorkloadActivity { start: std::time::Instant::now(), last_ms: Default::default() }
    }
}

impl WorkloadActivity {
    /// Notes a change made by a workload controller now.
    pub fn saw(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a workload controller changed a workload within the last `window`.
    pub fn within(&self, window: Duration) -> bool {
        let last = self.last_ms.load(std::sync::atomic::Ordering::Relaxed);
        last > 0 && self.start.elapsed().saturating_sub(Duration::from_millis(last)) <= window
    }
}

/// Whether the app references the Secret `name` (of its namespace) in a way the operator checks:
/// a config file's or an SMB volume's.
fn references_secret(spec: &crate::api::WindowsAppSpec, name: &str) -> bool {
    let config =
        spec.config.iter().flat_map(|c| &c.files).any(|f| f.secret_ref.as_ref().is_some_and(|r| r.name == name));
    let smb = spec.volumes.iter().filter_map(|v| v.smb.as_ref()).any(|s| s.secret_ref.name == name);
    config || smb
}

/// Whether a kind is namespaced, from its k8s-openapi scope.
pub trait ScopeKind {
    const NAMESPACED: bool;
}
impl ScopeKind for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl ScopeKind for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// Drops what the operator never reads from a cached object: `managedFields` (often larger
/// than the object itself) and kubectl's last-applied copy of the whole object.
pub fn slim<K: Resource + 'static>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    let any = obj as &mut dyn std::any::Any;
    // Nodes list every image they hold (hundreds on a busy node): placement needs none of it.
    if let Some(node) = any.downcast_mut::<Node>()
        && let Some(status) = node.status.as_mut()
    {
        status.images = None;
        status.volumes_in_use = None;
        status.volumes_attached = None;
    }
}

/// Hash of what may change what the operator applies: generation (the spec), labels and
/// annotations (propagated to the children), finalizers and deletion. A status write, the
/// operator's own or anyone's, changes none of these and triggers nothing.
fn app_signature(app: &Watched) -> Option<u64> {
    let m = app.meta();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (m.generation, &m.labels, &m.annotations, &m.finalizers, m.deletion_timestamp.is_some(), &m.uid).hash(&mut h);
    Some(h.finish())
}

/// Annotations that the workload controllers write on the workloads they run (the Deployment's
/// revision, the DaemonSet's template generation): never the operator's, and not drift.
fn controller_annotation(key: &str) -> bool {
    key.starts_with("deployment.kubernetes.io/") || key == "deprecated.daemonset.template.generation"
}

/// Hashes what drift detection needs of a workload's metadata: generation, labels, annotations
/// other than its controller's own, deletion. (kube-controller-manager's first sync of a new
/// Deployment writes its revision annotation before its status: hashed, that was a reconcile
/// of every new app with nothing to do or to report.)
fn hash_workload_meta(m: &ObjectMeta, h: &mut impl Hasher) {
    (m.generation, &m.labels, m.deletion_timestamp.is_some()).hash(h);
    for entry in m.annotations.iter().flatten().filter(|(k, _)| !controller_annotation(k)) {
        entry.hash(h);
    }
}

/// Hash of what the status reads from a Deployment, plus what drift detection needs (see
/// [`hash_workload_meta`]). Status writes that only move timestamps, counts the status does not
/// show (ready but not yet available, for example) or a condition's reason as a rollout goes
/// along trigger nothing.
fn deployment_signature(d: &Deployment) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_workload_meta(&d.metadata, &mut h);
    // No status and an empty one are the same (a new Deployment may come either way).
    let s = d.status.as_ref();
    let count = |f: fn(&k8s_openapi::api::apps::v1::DeploymentStatus) -> Option<i64>| s.and_then(f);
    (
        count(|s| s.observed_generation),
        count(|s| s.replicas.map(i64::from)),
        count(|s| s.updated_replicas.map(i64::from)),
        count(|s| s.available_replicas.map(i64::from)),
    )
        .hash(&mut h);
    // Until the controller has observed the generation, the status reads none of its
    // conditions (kube-controller-manager's first sync of a new Deployment adds Progressing
    // before it records the observation: that write alone would be a reconcile of every new
    // app with nothing to report but "not observed yet").
    let observed = count(|s| s.observed_generation).unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    for c in s.and_then(|s| s.conditions.as_ref()).into_iter().flatten().filter(|_| observed) {
        (&c.type_, &c.status).hash(&mut h);
        // Of the reasons, the status reads only these two; the others (NewReplicaSetCreated,
        // ReplicaSetUpdated, NewReplicaSetAvailable...) narrate a rollout it reports by counts.
        if c.reason.as_deref() == Some("ProgressDeadlineExceeded") || c.type_.as_deref() == Some("ReplicaFailure") {
            (&c.reason, &c.message).hash(&mut h);
        }
    }
    h.finish()
}

/// [`deployment_signature`] of a cached Deployment. One that does not decode (it cannot: the
/// API server sent it) has its resourceVersion as its signature: every change triggers.
fn cached_deployment_signature(d: &Lean<Deployment>) -> u64 {
    d.typed().map_or_else(|_| version_signature(d), |d| deployment_signature(&d))
}

/// [`daemon_set_signature`] of a cached DaemonSet (see [`cached_deployment_signature`]).
fn cached_daemon_set_signature(d: &Lean<DaemonSet>) -> u64 {
    d.typed().map_or_else(|_| version_signature(d), |d| daemon_set_signature(&d))
}

fn version_signature<K: Resource>(o: &K) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    o.meta().resource_version.hash(&mut h);
    h.finish()
}

/// The same for a node agent's DaemonSet.
fn daemon_set_signature(d: &DaemonSet) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_workload_meta(&d.metadata, &mut h);
    if let Some(s) = &d.status {
        (
            s.observed_generation,
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.updated_number_scheduled,
            s.number_available,
            s.number_misscheduled,
        )
            .hash(&mut h);
    }
    h.finish()
}

/// The app a cluster-scoped child belongs to, from its labels.
fn owner_of<K: super::lean::Cached>(obj: &K) -> Option<ObjectRef<Watched>> {
    let (namespace, name) = super::index::labelled_owner(obj)?;
    Some(ObjectRef::new(&name).within(&namespace))
}

/// Hash of what matters about a node for placement: labels, taints, readiness. Heartbeats
/// change none of these, so they do not trigger reconciles.
fn node_signature(node: &Node) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node.labels().hash(&mut h);
    if let Some(spec) = &node.spec {
        spec.unschedulable.hash(&mut h);
        for t in spec.taints.iter().flatten() {
            (&t.key, &t.value, &t.effect).hash(&mut h);
        }
    }
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    ready.hash(&mut h);
    Some(h.finish())
}

/// The Namespace annotations by which the platform team grants its apps powers (see
/// [`crate::policy`] and [`crate::gmsa_policy`]).
const GRANT_ANNOTATIONS: &[&str] = &[
    crate::policy::ALLOW_ANNOTATION,
    crate::policy::ALLOWED_TAINTS_ANNOTATION,
    gmsa_policy::GMSA_ACCOUNTS,
    gmsa_policy::GMSA_CCG_PLUGINS,
];

/// Hash of a namespace's grant annotations: other changes of a namespace trigger nothing.
fn grants_signature(namespace: &PartialObjectMeta<Namespace>) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for key in GRANT_ANNOTATIONS {
        namespace.annotations().get(*key).hash(&mut h);
    }
    Some(h.finish())
}

/// The GMSACredentialSpec cache: present while the CRD is installed. The CRD may be installed
/// or removed while the operator runs; [`follow_credspec_crd`] notices either within
/// [`CRD_POLL`] and swaps the cache in or out.
#[derive(Clone)]
pub struct CredSpecs {
    slot: Arc<RwLock<Option<Store<DynamicObject>>>>,
    settled: tokio::sync::watch::Receiver<bool>,
}

impl CredSpecs {
    /// The cache, when the CRD is installed and the cache has synced.
    pub fn get(&self) -> Option<Store<DynamicObject>> {
        self.slot.read().ok().and_then(|s| s.clone())
    }

    /// Waits for the first answer on whether the CRD is installed (and its cache, if it is).
    pub async fn settled(&self) {
        let _ = self.settled.clone().wait_for(|s| *s).await;
    }
}

/// How often the operator asks discovery whether the GMSACredentialSpec CRD is installed.
pub const CRD_POLL: Duration = Duration::from_secs(30);
/// How soon it asks again after discovery failed.
const CRD_RETRY: Duration = Duration::from_secs(5);
/// How long the first check waits for the credspec cache before reconciles start anyway.
const CRD_SETTLE: Duration = Duration::from_secs(30);

type Events = futures::channel::mpsc::UnboundedSender<Result<DynamicObject, watcher::Error>>;

/// Follows the GMSACredentialSpec CRD through discovery (which any authenticated client may
/// read): starts the credspec watch when the CRD appears, stops it when the CRD goes, and sends
/// on `changed` each time so that the apps are checked again.
async fn follow_credspec_crd(
    client: Client,
    slot: Arc<RwLock<Option<Store<DynamicObject>>>>,
    settled: tokio::sync::watch::Sender<bool>,
    events: Events,
    changed: futures::channel::mpsc::UnboundedSender<()>,
) {
    let ar = identity::credspec_resource();
    let group_version = format!("{}/{}", ar.group, ar.version);
    let mut running: Option<(tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>)> = None;
    loop {
        let installed = match client.list_api_group_resources(&group_version).await {
            Ok(list) => Some(list.resources.iter().any(|r| r.name == ar.plural)),
            Err(kube::Error::Api(s)) if s.code == 404 => Some(false),
            Err(e) => {
                warn!("cannot tell whether the GMSACredentialSpec CRD is installed ({e}); asking again");
                None
            }
        };
        match (installed, running.is_some()) {
            (Some(true), false) => {
                let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
                let store = writer.as_reader();
                let stream = watcher(
                    Api::<DynamicObject>::all_with(client.clone(), &ar),
                    watcher::Config::default().any_semantic(),
                )
                .default_backoff()
                .modify(slim)
                .reflect(writer)
                .touched_objects();
                let tx = events.clone();
                let watch = tokio::spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while let Some(ev) = stream.next().await {
                        if tx.unbounded_send(ev).is_err() {
                            return;
                        }
                    }
                });
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let (s, c) = (slot.clone(), changed.clone());
                let ready = tokio::spawn(async move {
                    let _ = store.wait_until_ready().await;
                    if let Ok(mut slot) = s.write() {
                        *slot = Some(store);
                    }
                    info!("the GMSACredentialSpec CRD is installed; credspecs are watched");
                    let _ = c.unbounded_send(());
                    let _ = ready_tx.send(());
                });
                running = Some((watch, ready));
                if !*settled.borrow() {
                    let _ = tokio::time::timeout(CRD_SETTLE, ready_rx).await;
                }
            }
            (Some(false), true) => {
                if let Some((watch, ready)) = running.take() {
                    watch.abort();
                    ready.abort();
                }
                if let Ok(mut slot) = slot.write() {
                    *slot = None;
                }
                warn!("the GMSACredentialSpec CRD was removed; gMSA apps report it");
                let _ = changed.unbounded_send(());
            }
            (Some(false), false) if !*settled.borrow() => {
                warn!("the GMSACredentialSpec CRD is not installed: gMSA apps report GMSAReady=False until it is");
            }
            _ => {}
        }
        let _ = settled.send(true);
        tokio::time::sleep(if installed.is_some() { CRD_POLL } else { CRD_RETRY }).await;
    }
}

/// Counts each item of `stream` as a change from `source` that may queue reconciles.
fn counted<S: Stream>(stream: S, metrics: &Arc<Metrics>, source: &'static str) -> impl Stream<Item = S::Item> + use<S> {
    let metrics = metrics.clone();
    stream.inspect(move |_| metrics.triggered(source))
}

/// Builds the controller and the caches, and starts following the GMSACredentialSpec CRD.
pub fn controller(
    client: &Client,
    scope: &Scope,
    watch_secrets: bool,
    metrics: &Arc<Metrics>,
) -> (Controller<Watched>, Stores) {
    let mut app_config = paged();
    if let Some(sel) = &scope.selector {
        app_config = app_config.labels(sel);
    }
    let (app_store, app_writer) = reflector::store();
    let app_events = watcher(api::<Watched>(client, scope), app_config)
        .default_backoff()
        .modify(slim)
        .reflect(app_writer)
        .applied_objects()
        .predicate_filter(app_signature, PredicateConfig::default());
    let app_events = counted(app_events, metrics, "windowsapps");
    let echoes = Arc::new(Echoes::default());
    let workload_activity = Arc::new(WorkloadActivity::default());
    let (deployments, deployment_events) = child_cache::<Lean<Deployment>>(
        api(client, scope),
        &echoes,
        Some((cached_deployment_signature, &workload_activity)),
    );
    let (daemon_sets, daemon_set_events) = child_cache::<Lean<DaemonSet>>(
        api(client, scope),
        &echoes,
        Some((cached_daemon_set_signature, &workload_activity)),
    );
    let (services, service_events) = child_cache::<Lean<Service>>(api(client, scope), &echoes, None);
    let (network_policies, np_events) = child_cache::<Lean<NetworkPolicy>>(api(client, scope), &echoes, None);
    let (config_maps, config_map_events) = child_cache::<Lean<ConfigMap>>(api(client, scope), &echoes, None);
    let (service_accounts, sa_events) = child_cache::<Lean<ServiceAccount>>(api(client, scope), &echoes, None);
    let (role_bindings, rb_events) = child_cache::<Lean<RoleBinding>>(api(client, scope), &echoes, None);
    let (claims, claim_events) = child_cache::<Lean<PersistentVolumeClaim>>(api(client, scope), &echoes, None);
    let (volumes, volume_events) = child_cache::<Lean<PersistentVolume>>(Api::all(client.clone()), &echoes, None);
    let (cluster_roles, cr_events) = child_cache::<Lean<ClusterRole>>(Api::all(client.clone()), &echoes, None);
    let (nodes, node_events) = cached::<Node>(Api::all(client.clone()), watcher::Config::default().any_semantic());
    let (runtime_classes, runtime_class_events) =
        cached::<RuntimeClass>(Api::all(client.clone()), watcher::Config::default().any_semantic());
    let runtime_class_changes = runtime_class_events
        // Not generation: RuntimeClasses have none, and a deletion must re-check the apps too.
        .predicate_filter(kube::runtime::predicates::resource_version, PredicateConfig::default())
        .filter_map(|_| async { Some(()) });

    let (credspec_tx, credspec_events) = futures::channel::mpsc::unbounded();
    let (crd_tx, crd_changed) = futures::channel::mpsc::unbounded::<()>();
    let (settled_tx, settled) = tokio::sync::watch::channel(false);
    let credspecs = CredSpecs { slot: Arc::default(), settled };
    tokio::spawn(follow_credspec_crd(client.clone(), credspecs.slot.clone(), settled_tx, credspec_tx, crd_tx));

    let node_changes =
        node_events.predicate_filter(node_signature, PredicateConfig::default()).filter_map(|_| async { Some(()) });
    let controller = Controller::for_stream(app_events, app_store)
        .owns_stream(counted(deployment_events, metrics, "deployments"))
        .owns_stream(counted(daemon_set_events, metrics, "daemonsets"))
        .owns_stream(counted(service_events, metrics, "services"))
        .owns_stream(counted(np_events, metrics, "networkpolicies"))
        .owns_stream(counted(config_map_events, metrics, "configmaps"))
        .owns_stream(counted(sa_events, metrics, "serviceaccounts"))
        .owns_stream(counted(rb_events, metrics, "rolebindings"))
        .owns_stream(counted(claim_events, metrics, "persistentvolumeclaims"))
        .watches_stream(counted(volume_events, metrics, "persistentvolumes"), |pv| owner_of(&pv))
        .watches_stream(counted(cr_events, metrics, "clusterroles"), |cr| owner_of(&cr))
        .reconcile_all_on(counted(
            futures::stream::select(futures::stream::select(node_changes, crd_changed), runtime_class_changes),
            metrics,
            "all (nodes, runtime classes, the credspec CRD)",
        ));

    // An unlabelled credspec (one the platform team owns) may be the one an app references:
    // re-check the apps that name it, and the app that owns a generated one. Any change counts,
    // its annotation winapp.dev/allowed-namespaces included: that allows or withdraws apps.
    let app_store = controller.store();
    let controller = controller.watches_stream_with(
        counted(credspec_events, metrics, "gmsacredentialspecs"),
        move |cs: DynamicObject| {
            let name = cs.name_any();
            app_store
                .state()
                .iter()
                .filter(|a| {
                    a.0.as_ref().ok().and_then(|a| a.spec.gmsa.as_ref()?.credential_spec_name.as_deref())
                        == Some(name.as_str())
                })
                .map(|a| ObjectRef::from_obj(a.as_ref()))
                .chain(owner_of(&cs))
                .collect::<Vec<_>>()
        },
        identity::credspec_resource(),
    );

    // Namespaces, metadata only: the platform team's annotations on a namespace grant its apps
    // powers (policy rules, taints, gMSA accounts and CCG plugins). A change re-checks those apps
    // at once, so that a grant takes effect and a withdrawn one stops the app without waiting
    // for a resync.
    let namespace_api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let namespace_config = match &scope.namespace {
        Some(ns) => watcher::Config::default().fields(&format!("metadata.name={ns}")),
        None => watcher::Config::default(),
    }
    .any_semantic();
    let (namespaces, namespace_writer) = reflector::store();
    let namespace_events = watcher(namespace_api, namespace_config)
        .default_backoff()
        .modify(slim)
        .reflect(namespace_writer)
        .touched_objects()
        .predicate_filter(grants_signature, PredicateConfig::default());
    let namespace_events = counted(namespace_events, metrics, "namespaces");
    let app_store = controller.store();
    let controller = controller.watches_stream(namespace_events, move |namespace| {
        // What the Namespace grants may allow or withdraw any of its apps.
        let name = namespace.name_any();
        app_store
            .state()
            .iter()
            .filter(|a| a.namespace().as_deref() == Some(name.as_str()))
            .map(|a| ObjectRef::from_obj(a.as_ref()))
            .collect::<Vec<_>>()
    });

    // Secrets that apps reference (config files, SMB credentials): their metadata, kept as an
    // index of versions (see [`SecretIndex`]; never their data, no other field), and a change
    // reconciles the apps that reference them: a config file's Secret rolls the pods, a missing
    // one created unblocks its app at once.
    let (controller, secrets) = if watch_secrets {
        let app_store = controller.store();
        let index = Arc::new(SecretIndex::default());
        let observed = index.clone();
        let api: Api<PartialObjectMeta<Secret>> = match &scope.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let secret_events = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .inspect_ok(move |e| observed.observe(e))
            .touched_objects()
            .predicate_filter(kube::runtime::predicates::resource_version, PredicateConfig::default());
        let controller = controller.watches_stream(counted(secret_events, metrics, "secrets"), move |secret| {
            let (ns, name) = (secret.namespace(), secret.name_any());
            app_store
                .state()
                .iter()
                .filter(|a| {
                    let Ok(app) = &a.0 else { return false };
                    app.namespace() == ns && references_secret(&app.spec, &name)
                })
                .map(|a| ObjectRef::from_obj(a.as_ref()))
                .collect::<Vec<_>>()
        });
        (controller, Some(index))
    } else {
        (controller, None)
    };

    let stores = Stores {
        deployments,
        daemon_sets,
        services,
        network_policies,
        config_maps,
        service_accounts,
        role_bindings,
        claims,
        volumes,
        cluster_roles,
        credspecs,
        namespaces,
        nodes,
        runtime_classes,
        echoes,
        workload_activity,
        secrets,
    };
    (controller, stores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_controllers_count_as_active_only_within_the_window_after_a_change() {
        let activity = WorkloadActivity::default();
        assert!(!activity.within(Duration::from_secs(30)), "nothing seen yet");
        activity.saw();
        assert!(activity.within(Duration::from_secs(30)));
        // A clock that started 100 s ago (if this machine has been up that long).
        let Some(start) = std::time::Instant::now().checked_sub(Duration::from_secs(100)) else { return };
        let earlier = WorkloadActivity { start, last_ms: std::sync::atomic::AtomicU64::new(1) };
        assert!(!earlier.within(Duration::from_secs(30)), "seen 100 s ago");
        assert!(earlier.within(Duration::from_secs(120)));
    }

    fn deployment() -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "shop", "annotations": {"winapp.dev/applied-hash": "abc"},
                "ownerReferences": [{"apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp", "name": "web", "uid": "u-1", "controller": true}],
                "managedFields": [{"manager": "winapp-operator", "operation": "Apply"}]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "web:1", "env": [{"name": "A", "value": "1"}]}],
                             "nodeSelector": {"kubernetes.io/os": "windows"}}
                }
            },
            "status": {"replicas": 2, "availableReplicas": 1}
        }))
        .expect("a valid Deployment")
    }

    #[test]
    fn a_cached_workload_compares_as_the_object_the_api_server_returned() {
        let original = deployment();
        let cached: Lean<Deployment> =
            serde_json::from_value(serde_json::to_value(&original).expect("serializable")).expect("decodes");
        assert!(cached.metadata.managed_fields.is_none());
        // The JSON the comparison reads is the original's, managedFields aside, and the
        // signature is the typed object's.
        let mut want = serde_json::to_value(&original).expect("serializable");
        want["metadata"].as_object_mut().expect("metadata").remove("managedFields");
        assert_eq!(cached.to_json().expect("encodes"), want);
        assert_eq!(cached_deployment_signature(&cached), deployment_signature(&original));
    }

    fn with_progressing(reason: &str, status: &str) -> Deployment {
        let mut d = deployment();
        let s = d.status.get_or_insert_with(Default::default);
        s.conditions = Some(vec![k8s_openapi::api::apps::v1::DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            ..Default::default()
        }]);
        d
    }

    #[test]
    fn a_deployment_triggers_on_what_the_status_reads_not_on_narration() {
        let created = with_progressing("NewReplicaSetCreated", "True");
        let updated = with_progressing("ReplicaSetUpdated", "True");
        assert_eq!(deployment_signature(&created), deployment_signature(&updated));
        let stuck = with_progressing("ProgressDeadlineExceeded", "False");
        assert_ne!(deployment_signature(&updated), deployment_signature(&stuck));
        let mut available = updated.clone();
        available.status.as_mut().expect("status").available_replicas = Some(2);
        assert_ne!(deployment_signature(&updated), deployment_signature(&available));
        let mut observed = updated.clone();
        observed.status.as_mut().expect("status").observed_generation = Some(4);
        assert_ne!(deployment_signature(&updated), deployment_signature(&observed));
    }

    #[test]
    fn conditions_of_a_generation_not_observed_yet_trigger_nothing() {
        let mut created = deployment();
        created.metadata.generation = Some(1);
        created.status = None;
        let mut first_sync = with_progressing("NewReplicaSetCreated", "True");
        first_sync.metadata.generation = Some(1);
        let st = first_sync.status.as_mut().expect("status");
        (st.observed_generation, st.replicas, st.available_replicas) = (None, None, None);
        assert_eq!(deployment_signature(&created), deployment_signature(&first_sync));
        let mut observed = first_sync.clone();
        observed.status.as_mut().expect("status").observed_generation = Some(1);
        assert_ne!(deployment_signature(&first_sync), deployment_signature(&observed));
        // Once observed, a condition's change counts.
        let mut stuck = observed.clone();
        stuck.status.as_mut().expect("status").conditions =
            with_progressing("ProgressDeadlineExceeded", "False").status.and_then(|s| s.conditions);
        assert_ne!(deployment_signature(&observed), deployment_signature(&stuck));
    }

    #[test]
    fn a_workload_controllers_own_annotations_trigger_nothing_and_others_do() {
        let d = deployment();
        let mut revised = d.clone();
        let a = revised.metadata.annotations.get_or_insert_with(Default::default);
        a.insert("deployment.kubernetes.io/revision".into(), "1".into());
        assert_eq!(deployment_signature(&d), deployment_signature(&revised));
        let mut edited = revised.clone();
        edited.metadata.annotations.get_or_insert_with(Default::default).insert("team".into(), "x".into());
        assert_ne!(deployment_signature(&revised), deployment_signature(&edited));
        let mut hash_changed = d.clone();
        hash_changed
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(super::super::apply::APPLIED_HASH.into(), "another".into());
        assert_ne!(deployment_signature(&d), deployment_signature(&hash_changed));
        let ds = |annotations: &[(&str, &str)]| {
            let mut ds = DaemonSet::default();
            ds.metadata.annotations =
                Some(annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
            daemon_set_signature(&ds)
        };
        assert_eq!(ds(&[]), ds(&[("deprecated.daemonset.template.generation", "2")]));
        assert_ne!(ds(&[]), ds(&[("team", "x")]));
    }
}
