//! The children's caches and their triggers, one per kind of the registry: a watch of the
//! objects with the operator's managed-by label, kept as [`Lean`] objects with an index of which
//! app each belongs to, and a stream of the changes that may need a reconcile of that app.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::Watched;
use super::echoes::Echoes;
use super::index::{Cache, OwnerIndex};
use super::lean::{Cached, Lean};
use super::lists::Lists;
use crate::build::meta;
use crate::metrics::Metrics;

/// Objects per page of a cache's first list, where it lists in pages (see [`super::lists`]: a
/// streaming list decodes an object at a time and needs no page). A list is decoded a page at a time, managedFields
/// and all, before the object is trimmed: small pages keep that transient small. (A list from
/// the API server's watch cache, `resourceVersion=0`, ignores the page size and returns a kind's
/// every object at once: at 1,000 apps that was the operator's peak of memory.) A restart over
/// 1,000 apps peaked 2-3 MiB lower with 25 per page than with 100, for 40 list requests per kind
/// instead of 10.
pub const LIST_PAGE: u32 = 25;

/// Children carry the managed-by label: watch only those, not every ConfigMap in the cluster; a
/// shard only those with its label.
fn children_config(lists: Lists, list_page: u32, shard: Option<&str>) -> watcher::Config {
    lists.config(list_page).labels(&super::shard::child_selector(meta::MANAGER, shard))
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

/// Counts each item of `stream` as a change from `source` that may queue reconciles.
pub fn counted<S: Stream>(
    stream: S,
    metrics: &Arc<Metrics>,
    source: &'static str,
) -> impl Stream<Item = S::Item> + use<S> {
    let metrics = metrics.clone();
    stream.inspect(move |_| metrics.triggered(source))
}

/// A hash of an object's namespace and name (the key of a kind's last signatures).
fn name_hash<K: Resource>(o: &K) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (o.meta().namespace.as_deref(), o.meta().name.as_deref()).hash(&mut h);
    h.finish()
}

/// The app a child belongs to, from its labels (an object no app owns has none: see [`Lean`]).
pub fn owner_of<K: Cached>(obj: &K) -> Option<ObjectRef<Watched>> {
    let (namespace, name) = obj.owner()?;
    Some(ObjectRef::new(name).within(namespace))
}

/// When a workload controller (kube-controller-manager's Deployment or DaemonSet controller)
/// last changed one of the operator's workloads in a way the status reads. While it is at work,
/// a new app whose workload it has not observed yet can wait for that observation (see
/// [`super::timing::next_look`]).
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

/// A kind of child, as its cache needs it.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// The registry's entry of the kind (its caches are looked up by it).
    pub id: TypeId,
    pub kind: &'static str,
    /// The resource, as the trigger metric names its watch.
    pub resource: &'static str,
    pub namespaced: bool,
    /// Objects per page of the cache's first list (see [`LIST_PAGE`]).
    pub list_page: u32,
}

/// The caches of the kinds kept as [`Lean`] objects, one per kind.
#[derive(Clone, Default)]
pub struct ChildCaches(Arc<HashMap<TypeId, Box<dyn Any + Send + Sync>>>);

impl ChildCaches {
    /// The cache of the kind whose registry entry is `id`.
    pub fn get<K>(&self, id: TypeId) -> Option<&Cache<Lean<K>>>
    where
        K: Resource<DynamicType = ()> + 'static,
    {
        self.0.get(&id)?.downcast_ref::<Cache<Lean<K>>>()
    }
}

/// Builds the children's caches, kind by kind, and adds their triggers to the controller.
pub struct Wiring<'a> {
    pub client: &'a Client,
    /// The one namespace watched, if any.
    pub namespace: Option<&'a str>,
    /// The shard's name: only its children are watched (see [`super::shard`]).
    pub shard: Option<&'a str>,
    /// How the caches make their first list.
    pub lists: Lists,
    pub echoes: &'a Arc<Echoes>,
    pub activity: &'a Arc<WorkloadActivity>,
    pub metrics: &'a Arc<Metrics>,
    pub controller: Option<Controller<Watched>>,
    caches: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    /// Set for a detached wiring: the caches are fed by hand (see [`super::detached`]), not by
    /// watches.
    feeds: Option<HashMap<&'static str, Feed>>,
}

/// Puts an object (as the API server serves it) into one cache, or takes it out (`deleted`), as
/// its watch would.
pub type Feed = Box<dyn FnMut(serde_json::Value, bool) -> Result<(), serde_json::Error> + Send>;

impl<'a> Wiring<'a> {
    pub fn new(
        client: &'a Client,
        namespace: Option<&'a str>,
        echoes: &'a Arc<Echoes>,
        activity: &'a Arc<WorkloadActivity>,
        metrics: &'a Arc<Metrics>,
        controller: Controller<Watched>,
    ) -> Self {
        Wiring {
            client,
            namespace,
            shard: None,
            lists: Lists::Paged,
            echoes,
            activity,
            metrics,
            controller: Some(controller),
            caches: HashMap::new(),
            feeds: None,
        }
    }

    /// A wiring without watches or a controller: each cache is fed by hand, by kind.
    pub fn detached(
        client: &'a Client,
        echoes: &'a Arc<Echoes>,
        activity: &'a Arc<WorkloadActivity>,
        metrics: &'a Arc<Metrics>,
    ) -> Self {
        Wiring {
            client,
            namespace: None,
            shard: None,
            lists: Lists::Paged,
            echoes,
            activity,
            metrics,
            controller: None,
            caches: HashMap::new(),
            feeds: Some(HashMap::new()),
        }
    }

    /// The caches built, the controller with their triggers (None when detached) and the feeds of
    /// a detached wiring (by kind).
    pub fn finish(self) -> (Option<Controller<Watched>>, ChildCaches, HashMap<&'static str, Feed>) {
        (self.controller, ChildCaches(Arc::new(self.caches)), self.feeds.unwrap_or_default())
    }

    /// The cache of the kind `kind` (objects `K`, from `api`) and its triggers: every change of a
    /// child except the echo of the operator's own write (see [`Echoes`]), and with a `signature`
    /// only a change of the signature, or a deletion (the filter of kube's `predicate_filter`
    /// cannot tell a deletion from an unchanged object). A change triggers the app whose labels
    /// the child carries (an object no app owns triggers nothing).
    pub fn lean<K>(&mut self, kind: Kind, api: Api<Lean<K>>, signature: Option<fn(&Lean<K>) -> u64>)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let (store, mut writer) = reflector::store();
        let owned = Arc::new(OwnerIndex::new(kind.namespaced));
        let index = owned.clone();
        if let Some(feeds) = self.feeds.as_mut() {
            writer.apply_watcher_event(&watcher::Event::InitDone);
            let feed: Feed = Box::new(move |object, deleted| {
                let object: Lean<K> = serde_json::from_value(object)?;
                let event = if deleted { watcher::Event::Delete(object) } else { watcher::Event::Apply(object) };
                index.observe(&event);
                writer.apply_watcher_event(&event);
                Ok(())
            });
            feeds.insert(kind.kind, feed);
            self.caches.insert(kind.id, Box::new(Cache { store, owned }));
            return;
        }
        let echoes = self.echoes.clone();
        let activity = self.activity.clone();
        // The last signature of each child, by a hash of its namespace and name: an ObjectRef
        // key would copy its name, namespace, uid and resourceVersion (about 300 bytes a child).
        let mut seen: HashMap<u64, u64> = HashMap::new();
        // The cached form drops managedFields and last-applied as it decodes.
        let stream = watcher(api, children_config(self.lists, kind.list_page, self.shard))
            .default_backoff()
            .reflect(writer)
            .filter_map(move |ev| {
                if let Ok(ev) = &ev {
                    index.observe(ev);
                }
                // `listed`: from a (re)list, not a change seen by the watch.
                let mut trigger = |o: Lean<K>, listed: bool| {
                    let m = o.meta();
                    let echo =
                        echoes.is_echo(kind.kind, m.namespace.as_deref(), &o.name_any(), m.resource_version.as_deref());
                    let changed = match signature {
                        Some(signature) => {
                            let sig = signature(&o);
                            let changed = seen.insert(name_hash(&o), sig) != Some(sig);
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
                        echoes.forget(kind.kind, o.meta().namespace.as_deref(), &o.name_any());
                        seen.remove(&name_hash(&o));
                        Some(Ok(o))
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                    Err(e) => Some(Err(e)),
                };
                std::future::ready(out)
            });
        self.caches.insert(kind.id, Box::new(Cache { store, owned }));
        let stream = counted(stream, self.metrics, kind.resource);
        self.controller = self.controller.take().map(|c| c.watches_stream(stream, |o| owner_of(&o)));
    }
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
}
