//! What every reconcile shares: the client, the caches ([`Stores`]), the per-app memory, the
//! settings and the platform's policy.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

use super::credspecs::CredSpecs;
use super::echoes::Echoes;
use super::kinds::{self, ChildKind, Visitor};
use super::memory::AppMemory;
use super::secrets::SecretIndex;
use super::wiring::ChildCaches;
use super::wiring::WorkloadActivity;
use crate::build::meta::AppKey;
use crate::metrics::{CacheSample, Metrics};

pub use super::lean_app::Watched;

/// The watch caches the reconcile reads.
#[derive(Clone)]
pub struct Stores {
    /// The children's caches, one per kind of [`kinds::each`] (the credspecs' is `credspecs`).
    pub children: ChildCaches,
    /// Present while the GMSACredentialSpec CRD is installed: every credspec, the operator's
    /// generated ones and the platform team's.
    pub credspecs: CredSpecs,
    /// Namespaces, metadata only: what the platform team grants their apps.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub nodes: Store<Node>,
    /// RuntimeClasses, for apps that name one: their scheduling is part of the pods' placement.
    pub runtime_classes: Store<RuntimeClass>,
    /// The operator's own writes of children whose watch event has not come back yet: those
    /// events trigger nothing.
    pub echoes: Arc<Echoes>,
    /// When a workload controller last reported progress on one of the operator's workloads.
    pub workload_activity: Arc<WorkloadActivity>,
    /// Which Secrets exist (metadata only); None when the operator may not watch Secrets.
    pub secrets: Option<Arc<SecretIndex>>,
}

impl Stores {
    /// Objects and body bytes of each child cache (for `winapp_cache_objects` and
    /// `winapp_cache_body_bytes`).
    pub fn sizes(&self) -> Vec<CacheSample> {
        struct Sizes<'a>(&'a Stores, Vec<CacheSample>);
        impl Visitor for Sizes<'_> {
            fn visit<C: ChildKind>(&mut self) {
                if let Some(store) = C::store(self.0) {
                    let all = store.state();
                    self.1.push((
                        C::KIND,
                        all.len(),
                        all.iter().map(|o| super::lean::Cached::body_bytes(o.as_ref())).sum::<usize>(),
                    ));
                }
            }
        }
        let mut sizes = Sizes(self, Vec::new());
        kinds::each(&mut sizes);
        sizes.1
    }

    /// Waits until every cache has its first full list. Call it from one task only: a store's
    /// readiness wakes a single waiter; others should wait on [`Context::caches_ready`].
    pub async fn wait_until_ready(&self) {
        struct Children<'a>(&'a Stores, Vec<futures::future::BoxFuture<'a, ()>>);
        impl Visitor for Children<'_> {
            fn visit<C: ChildKind>(&mut self) {
                if let Some(store) = C::store(self.0) {
                    self.1.push(Box::pin(async move {
                        let _ = store.wait_until_ready().await;
                    }));
                }
            }
        }
        let mut children = Children(self, Vec::new());
        kinds::each(&mut children);
        futures::future::join_all(children.1).await;
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

/// Settings of the reconciles.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a rollout may make no progress before the pods are read to say why.
    pub diagnose_after: Duration,
    /// What the platform team grants every app (Namespaces may grant more).
    pub policy: crate::policy::Policy,
    /// Annotations the platform team puts on every app's pods (`--pod-annotation`).
    pub pod_annotations: std::collections::BTreeMap<String, String>,
    /// The platform's image warm-up default (`--warm-up`, `--warm-up-pause-image`).
    pub warm_up: crate::validate::WarmUpDefault,
    /// The shard's name (`--shard`), put on every child as [`super::shard::SHARD_LABEL`].
    pub shard: Option<String>,
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
    /// Becomes true once every cache has synced.
    pub caches_ready: tokio::sync::watch::Receiver<bool>,
    /// What is remembered of each app between reconciles (the app watch forgets a deleted app).
    pub memory: Arc<AppMemory>,
    pub settings: Settings,
}

impl Context {
    pub fn new(
        client: Client,
        stores: Stores,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        caches_ready: tokio::sync::watch::Receiver<bool>,
        memory: Arc<AppMemory>,
        settings: Settings,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            client,
            stores,
            reporter,
            metrics,
            caches_ready,
            memory,
            settings,
        }
    }

    /// Forgets everything kept of the app: its memory and its Ready gauge.
    pub fn forget(&self, app: &AppKey) {
        self.memory.forget(app);
        self.metrics.set_app(ObjectRef::new(&app.1).within(&app.0), None);
    }

    /// Forgets what is kept of the apps no longer in `apps` (a safety net: an app's deletion
    /// forgets it at once, see [`super::watch`]).
    pub fn forget_deleted(&self, apps: &Store<Watched>) {
        let present = |ns: &str, name: &str| apps.get(&ObjectRef::new(name).within(ns)).is_some();
        self.memory.retain(|(ns, name)| present(ns, name));
        self.metrics.retain_apps(|r| present(r.namespace.as_deref().unwrap_or_default(), &r.name));
    }
}
