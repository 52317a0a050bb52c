//! Wires the watches: the WindowsApps, their namespaced children (by owner reference), their
//! cluster-scoped children (by label), GMSACredentialSpecs and Nodes, each with a cache that
//! the reconcile reads.

use std::hash::{Hash, Hasher};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::PredicateConfig;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::Stores;
use super::Watched;
use crate::build::{identity, meta};

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

/// Children carry the managed-by label: watch only those, not every ConfigMap in the cluster.
fn children_config() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={}", meta::MANAGER)).any_semantic()
}

fn cached<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer).touched_objects();
    (store, stream)
}

/// The app a cluster-scoped child belongs to, from its labels.
fn owner_of<K: Resource>(obj: &K) -> Option<ObjectRef<Watched>> {
    let labels = obj.meta().labels.as_ref()?;
    if labels.get("app.kubernetes.io/managed-by").map(String::as_str) != Some(meta::MANAGER) {
        return None;
    }
    Some(ObjectRef::new(labels.get(meta::APP_LABEL)?).within(labels.get(meta::NAMESPACE_LABEL)?))
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

/// Builds the controller and the caches. `credspecs_installed` says whether the
/// GMSACredentialSpec CRD exists (without it that watch would fail forever).
pub fn controller(client: &Client, scope: &Scope, credspecs_installed: bool) -> (Controller<Watched>, Stores) {
    let mut app_config = watcher::Config::default().any_semantic();
    if let Some(sel) = &scope.selector {
        app_config = app_config.labels(sel);
    }
    let apps: Api<Watched> = api(client, scope);
    let (deployments, deployment_events) = cached::<Deployment>(api(client, scope), children_config());
    let (services, service_events) = cached::<Service>(api(client, scope), children_config());
    let (config_maps, config_map_events) = cached::<ConfigMap>(api(client, scope), children_config());
    let (service_accounts, sa_events) = cached::<ServiceAccount>(api(client, scope), children_config());
    let (role_bindings, rb_events) = cached::<RoleBinding>(api(client, scope), children_config());
    let (claims, claim_events) = cached::<PersistentVolumeClaim>(api(client, scope), children_config());
    let (volumes, volume_events) = cached::<PersistentVolume>(Api::all(client.clone()), children_config());
    let (cluster_roles, cr_events) = cached::<ClusterRole>(Api::all(client.clone()), children_config());
    let (nodes, node_events) = cached::<Node>(Api::all(client.clone()), watcher::Config::default().any_semantic());

    let mut controller = Controller::new(apps, app_config)
        .owns_stream(deployment_events)
        .owns_stream(service_events)
        .owns_stream(config_map_events)
        .owns_stream(sa_events)
        .owns_stream(rb_events)
        .owns_stream(claim_events)
        .watches_stream(volume_events, |pv| owner_of(&pv))
        .watches_stream(cr_events, |cr| owner_of(&cr))
        .reconcile_all_on(
            node_events.predicate_filter(node_signature, PredicateConfig::default()).filter_map(|_| async { Some(()) }),
        );

    let credspec_store = if credspecs_installed {
        let ar = identity::credspec_resource();
        let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
        let store = writer.as_reader();
        let events =
            watcher(Api::<DynamicObject>::all_with(client.clone(), &ar), watcher::Config::default().any_semantic())
                .default_backoff()
                .reflect(writer)
                .touched_objects();
        // An unlabelled credspec (one the platform team owns) may be the one an app references:
        // re-check the apps that name it, and the app that owns a generated one.
        let app_store = controller.store();
        controller = controller.watches_stream_with(
            events,
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
            ar,
        );
        Some(store)
    } else {
        None
    };

    let stores = Stores {
        deployments,
        services,
        config_maps,
        service_accounts,
        role_bindings,
        claims,
        volumes,
        cluster_roles,
        credspecs: credspec_store,
        nodes,
    };
    (controller, stores)
}
