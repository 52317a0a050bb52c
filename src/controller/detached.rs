//! Caches without watches, fed by hand: what the reconcile reads, for driving it in-process
//! against a fake API server (`tests/reconcile`). The same kinds, caches and owner indexes as the
//! watched ones ([`super::wiring`]); only where their objects come from differs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use thiserror::Error;

use super::Stores;
use super::credspecs::CredSpecs;
use super::echoes::Echoes;
use super::kinds::{self, ChildKind, Visitor};
use super::wiring::{Feed, Wiring, WorkloadActivity};
use crate::metrics::Metrics;

#[derive(Debug, Error)]
pub enum FeedError {
    #[error("no cache of kind {0}: feed one of the child kinds of controller::kinds, Node, Namespace or RuntimeClass")]
    UnknownKind(String),
    #[error("the {kind} does not decode as the cache keeps it: {source}")]
    Decode { kind: String, source: serde_json::Error },
}

/// Feeds the caches of [`stores`]: by kind, as the API server would serve the objects.
pub struct Feeds {
    children: HashMap<&'static str, Feed>,
    nodes: Writer<Node>,
    namespaces: Writer<PartialObjectMeta<Namespace>>,
    runtime_classes: Writer<RuntimeClass>,
}

fn put<K>(writer: &mut Writer<K>, kind: &str, object: serde_json::Value, deleted: bool) -> Result<(), FeedError>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + 'static,
{
    let object: K =
        serde_json::from_value(object).map_err(|source| FeedError::Decode { kind: kind.to_owned(), source })?;
    writer.apply_watcher_event(&if deleted { watcher::Event::Delete(object) } else { watcher::Event::Apply(object) });
    Ok(())
}

impl Feeds {
    /// Puts `object` of `kind` (a child kind's name, or Node, Namespace, RuntimeClass) into its
    /// cache, replacing the one of the same name.
    pub fn apply(&mut self, kind: &str, object: serde_json::Value) -> Result<(), FeedError> {
        self.feed(kind, object, false)
    }

    /// Takes `object` of `kind` out of its cache.
    pub fn delete(&mut self, kind: &str, object: serde_json::Value) -> Result<(), FeedError> {
        self.feed(kind, object, true)
    }

    fn feed(&mut self, kind: &str, object: serde_json::Value, deleted: bool) -> Result<(), FeedError> {
        match kind {
            "Node" => put(&mut self.nodes, kind, object, deleted),
            "Namespace" => put(&mut self.namespaces, kind, object, deleted),
            "RuntimeClass" => put(&mut self.runtime_classes, kind, object, deleted),
            _ => {
                let feed = self.children.get_mut(kind).ok_or_else(|| FeedError::UnknownKind(kind.to_owned()))?;
                feed(object, deleted).map_err(|source| FeedError::Decode { kind: kind.to_owned(), source })
            }
        }
    }
}

/// A writer whose store counts as synced (empty until fed).
fn synced<K>() -> (reflector::Store<K>, Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (store, writer)
}

/// Stores of every kind the reconcile reads, empty and synced, and their feeds. The credspec
/// CRD counts as not installed, and Secrets as not watched.
pub fn stores(client: &Client, metrics: &Arc<Metrics>) -> (Stores, Feeds) {
    let (echoes, workload_activity) = (Arc::new(Echoes::default()), Arc::new(WorkloadActivity::default()));
    struct Wire<'a>(Wiring<'a>);
    impl Visitor for Wire<'_> {
        fn visit<C: ChildKind>(&mut self) {
            C::wire(&mut self.0);
        }
    }
    let mut wire = Wire(Wiring::detached(client, &echoes, &workload_activity, metrics));
    kinds::each(&mut wire);
    let (_, children, child_feeds) = wire.0.finish();
    let (nodes, nodes_writer) = synced();
    let (namespaces, namespaces_writer) = synced();
    let (runtime_classes, runtime_classes_writer) = synced();
    let (_settled_tx, settled) = tokio::sync::watch::channel(true);
    let credspecs = CredSpecs { slot: Arc::new(RwLock::new(None)), settled };
    let stores =
        Stores { children, credspecs, namespaces, nodes, runtime_classes, echoes, workload_activity, secrets: None };
    let feeds = Feeds {
        children: child_feeds,
        nodes: nodes_writer,
        namespaces: namespaces_writer,
        runtime_classes: runtime_classes_writer,
    };
    (stores, feeds)
}
