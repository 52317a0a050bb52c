//! Wires the watches: the WindowsApps, their children (one cache per kind, see
//! [`super::wiring`]), GMSACredentialSpecs, Namespaces' grants (metadata), Nodes, RuntimeClasses
//! and Secrets' versions (metadata), each with what it triggers.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::PredicateConfig;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::credspecs::{CredSpecs, follow_credspec_crd};
use super::echoes::Echoes;
use super::kinds::{self, ChildKind, Visitor};
use super::memory::AppMemory;
use super::secrets::SecretIndex;
use super::signatures::{app_signature, grants_signature, node_signature};
use super::wiring::{Wiring, WorkloadActivity, counted, owner_of, slim};
use super::{Stores, Watched};
use crate::build::identity;
use crate::metrics::Metrics;

/// Where the operator looks.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this namespace (WindowsApps and their namespaced children); all when None.
    pub namespace: Option<String>,
    /// Only WindowsApps matching this label selector.
    pub selector: Option<String>,
    /// The shard's name (`--shard`): only children with its label are cached (see
    /// [`super::shard`]).
    pub shard: Option<String>,
    /// How the caches that grow with the apps make their first list.
    pub lists: super::lists::Lists,
}

/// A cache of a kind outside the apps and their children (Nodes, RuntimeClasses).
fn cached<K>(api: Api<K>) -> (Store<K>, impl futures::Stream<Item = Result<K, watcher::Error>> + Send)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let config = watcher::Config::default().any_semantic();
    let stream = watcher(api, config).default_backoff().modify(slim).reflect(writer).touched_objects();
    (store, stream)
}

/// The apps of `store` for which `wanted` is true.
fn apps_where(store: &Store<Watched>, wanted: impl Fn(&Watched) -> bool) -> Vec<ObjectRef<Watched>> {
    store.state().iter().filter(|a| wanted(a)).map(|a| ObjectRef::from_obj(a.as_ref())).collect()
}

/// Builds the controller and the caches, and starts following the GMSACredentialSpec CRD. An
/// app's deletion forgets what `memory` and `metrics` keep of it.
pub fn controller(
    client: &Client,
    scope: &Scope,
    watch_secrets: bool,
    metrics: &Arc<Metrics>,
    memory: &Arc<AppMemory>,
) -> (Controller<Watched>, Stores) {
    let controller = app_controller(client, scope, metrics, memory);

    // The children, kind by kind.
    let (echoes, workload_activity) = (Arc::new(Echoes::default()), Arc::new(WorkloadActivity::default()));
    struct Wire<'a>(Wiring<'a>);
    impl Visitor for Wire<'_> {
        fn visit<C: ChildKind>(&mut self) {
            C::wire(&mut self.0);
        }
    }
    let mut wire =
        Wire(Wiring::new(client, scope.namespace.as_deref(), &echoes, &workload_activity, metrics, controller));
    wire.0.shard = scope.shard.as_deref();
    wire.0.lists = scope.lists;
    kinds::each(&mut wire);
    let (controller, children, _) = wire.0.finish();
    let Some(controller) = controller else { unreachable!("the wiring keeps the controller") };

    // Nodes (labels, taints, readiness), RuntimeClasses and the credspec CRD coming or going
    // may change any app's placement or gMSA: every app is checked again.
    let (nodes, node_events) = cached::<Node>(Api::all(client.clone()));
    let (runtime_classes, runtime_class_events) = cached::<RuntimeClass>(Api::all(client.clone()));
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
    let controller = controller.reconcile_all_on(counted(
        futures::stream::select(futures::stream::select(node_changes, crd_changed), runtime_class_changes),
        metrics,
        "all (nodes, runtime classes, the credspec CRD)",
    ));

    let controller = credspec_triggers(controller, credspec_events, metrics);
    let (controller, namespaces) = namespaces(controller, client, scope, metrics);
    let (controller, secrets) = secrets(controller, client, scope, watch_secrets, metrics);
    let stores = Stores { children, credspecs, namespaces, nodes, runtime_classes, echoes, workload_activity, secrets };
    (controller, stores)
}

/// An unlabelled credspec (one the platform team owns) may be the one an app references:
/// re-check the apps that name it, and the app that owns a generated one. Any change counts, its
/// annotation winapp.dev/allowed-namespaces included: that allows or withdraws apps.
fn credspec_triggers(
    controller: Controller<Watched>,
    events: futures::channel::mpsc::UnboundedReceiver<Result<DynamicObject, watcher::Error>>,
    metrics: &Arc<Metrics>,
) -> Controller<Watched> {
    let app_store = controller.store();
    controller.watches_stream_with(
        counted(events, metrics, "gmsacredentialspecs"),
        move |cs: DynamicObject| {
            let name = cs.name_any();
            let named = |a: &Watched| a.credential_spec() == Some(name.as_str());
            apps_where(&app_store, named).into_iter().chain(owner_of(&cs)).collect::<Vec<_>>()
        },
        identity::credspec_resource(),
    )
}

/// Namespaces, metadata only: the platform team's annotations on a namespace grant its apps
/// powers (policy rules, taints, gMSA accounts and CCG plugins). A change re-checks its apps at
/// once, so that a grant takes effect and a withdrawn one stops the app.
fn namespaces(
    controller: Controller<Watched>,
    client: &Client,
    scope: &Scope,
    metrics: &Arc<Metrics>,
) -> (Controller<Watched>, Store<PartialObjectMeta<Namespace>>) {
    let config = match &scope.namespace {
        Some(ns) => watcher::Config::default().fields(&format!("metadata.name={ns}")),
        None => watcher::Config::default(),
    }
    .any_semantic();
    let (store, writer) = reflector::store();
    let events = watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), config)
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .touched_objects()
        .predicate_filter(grants_signature, PredicateConfig::default());
    let app_store = controller.store();
    let controller = controller.watches_stream(counted(events, metrics, "namespaces"), move |namespace| {
        let name = namespace.name_any();
        apps_where(&app_store, |a| a.namespace().as_deref() == Some(name.as_str()))
    });
    (controller, store)
}

/// The WindowsApps' watch: a change of what may change what the operator applies triggers (not a
/// status write), and a deletion forgets the app.
fn app_controller(
    client: &Client,
    scope: &Scope,
    metrics: &Arc<Metrics>,
    memory: &Arc<AppMemory>,
) -> Controller<Watched> {
    let mut config = scope.lists.config(super::wiring::LIST_PAGE);
    if let Some(sel) = &scope.selector {
        config = config.labels(sel);
    }
    let api: Api<Watched> = match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let (memory, gauge) = (memory.clone(), metrics.clone());
    // Decoded into the cached form, managedFields and last-applied dropped (see [`Watched`]).
    let events = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |e| {
            if let watcher::Event::Delete(app) = e {
                let key = (app.namespace().unwrap_or_default(), app.name_any());
                memory.forget(&key);
                gauge.set_app(ObjectRef::new(&key.1).within(&key.0), None);
            }
        })
        .applied_objects()
        .predicate_filter(app_signature, PredicateConfig::default());
    Controller::for_stream(counted(events, metrics, "windowsapps"), store)
}

/// Secrets that apps reference (config files, SMB credentials), when the operator may watch
/// them: their metadata, kept as an index of versions (see [`SecretIndex`]; never their data, no
/// other field), and a change reconciles the apps that reference them: a config file's Secret
/// rolls the pods, a missing one created unblocks its app at once.
fn secrets(
    controller: Controller<Watched>,
    client: &Client,
    scope: &Scope,
    watch_secrets: bool,
    metrics: &Arc<Metrics>,
) -> (Controller<Watched>, Option<Arc<SecretIndex>>) {
    if !watch_secrets {
        return (controller, None);
    }
    let app_store = controller.store();
    let index = Arc::new(SecretIndex::default());
    let observed = index.clone();
    let api: Api<PartialObjectMeta<Secret>> = match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let events = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .inspect_ok(move |e| observed.observe(e))
        .touched_objects()
        .predicate_filter(kube::runtime::predicates::resource_version, PredicateConfig::default());
    let controller = controller.watches_stream(counted(events, metrics, "secrets"), move |secret| {
        let (ns, name) = (secret.namespace(), secret.name_any());
        apps_where(&app_store, |a| a.namespace() == ns && a.references_secret(&name))
    });
    (controller, Some(index))
}
