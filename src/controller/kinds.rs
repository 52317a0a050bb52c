//! The child kinds: one [`ChildKind`] per kind of object a WindowsApp becomes, and [`each`], the
//! one list of them that cache readiness, the watches, apply, prune, cleanup on deletion, the
//! cache metrics, `render`'s order and the RBAC test iterate.
//!
//! Adding a kind: its builder (`src/build/`) and a field of [`Children`], an entry here (a
//! `lean_kind!` line and a line in [`each`]), its RBAC in `config/rbac` and the chart (a test
//! derives the rules from this list), and tests. ARCHITECTURE.md walks through it.

use std::any::TypeId;
use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::Store;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Stores;
use super::error::{Error, Result};
use super::lean::{Cached, Lean};
use super::signatures;
use super::wiring::{Kind, Wiring};
use crate::build::workload::Workload;
use crate::build::{Children, identity};

/// When a kind is applied: its round (see [`super::applier`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Round {
    /// Everything no other child needs first.
    First,
    /// The gMSA RoleBinding: the API server lets the operator bind a ClusterRole only once it
    /// can read the role's rules and finds that the operator holds them.
    Second,
    /// The workload, last: its pods find their ServiceAccount, RBAC, config and claims in place.
    Workload,
}

/// One kind of child.
pub trait ChildKind: 'static {
    /// What the builders make and the operator applies.
    type Object: Resource + Clone + Serialize + DeserializeOwned + Debug + Send + Sync + 'static;
    /// What the operator's cache keeps of it.
    type Cached: Cached<DynamicType: Clone + Eq + std::hash::Hash + Send + Sync>;
    /// The kind, as events, metrics and messages name it.
    const KIND: &'static str;
    /// Namespaced (in the app's namespace) or cluster-scoped.
    const NAMESPACED: bool;
    const ROUND: Round;
    /// The API group and resource, as RBAC names them.
    const RBAC: (&'static str, &'static str);
    /// Verbs the operator needs on the kind beyond [`CHILD_VERBS`].
    const EXTRA_VERBS: &'static [&'static str] = &[];
    /// Objects per page of its cache's first list: a page is decoded whole before its objects
    /// are trimmed, so a kind whose objects may be large (a ConfigMap holds up to 1 MiB, and
    /// anyone may label one as the operator's) lists fewer at a time.
    const LIST_PAGE: u32 = super::wiring::LIST_PAGE;

    /// The API of the kind, in `namespace` (namespaced kinds) or cluster-wide.
    fn api(client: &Client, namespace: Option<&str>) -> Api<Self::Object>;
    /// The cache, while it is available (the credspec cache needs its CRD).
    fn store(stores: &Stores) -> Option<Store<Self::Cached>>;
    /// The cache's dynamic type (`()` but for the credspecs).
    fn dyntype() -> <Self::Cached as Resource>::DynamicType;
    /// The cached children of the app `namespace/app`.
    fn children(stores: &Stores, namespace: &str, app: &str) -> Vec<Arc<Self::Cached>>;
    /// Takes the objects of this kind out of `children`.
    fn take(children: &mut Children) -> Vec<Self::Object>;
    /// Builds the kind's cache and adds its triggers to the controller (see [`Wiring`]).
    fn wire(w: &mut Wiring<'_>);
    /// The full metadata of a child the app no longer asks for, when it is to be released
    /// rather than deleted (claims to retain); None to delete it.
    fn released(_cached: &Self::Cached) -> Result<Option<ObjectMeta>> {
        Ok(None)
    }
}

/// What a kind's cache needs to know of it.
fn kind<C: ChildKind>() -> Kind {
    Kind {
        id: TypeId::of::<C>(),
        kind: C::KIND,
        resource: C::RBAC.1,
        namespaced: C::NAMESPACED,
        list_page: C::LIST_PAGE,
    }
}

/// What the operator does with every kind of child: reads and follows it (its cache), and
/// creates, patches (server-side apply) and deletes it.
pub const CHILD_VERBS: [&str; 6] = ["get", "list", "watch", "create", "patch", "delete"];

/// One grant the operator needs on a child kind: (API group, resource, verb, namespaced). The
/// operator's ClusterRole, its Role under `--namespace` and the chart's must grant these; a test
/// compares them with `config/rbac`.
pub type Grant = (&'static str, &'static str, &'static str, bool);

/// The grants every child kind needs, derived from [`each`].
pub fn grants() -> Vec<Grant> {
    struct Collect(Vec<Grant>);
    impl Visitor for Collect {
        fn visit<C: ChildKind>(&mut self) {
            let (group, resource) = C::RBAC;
            for verb in CHILD_VERBS.iter().chain(C::EXTRA_VERBS) {
                self.0.push((group, resource, verb, C::NAMESPACED));
            }
        }
    }
    let mut all = Collect(Vec::new());
    each(&mut all);
    all.0
}

/// Something done for every kind (see [`each`]).
pub trait Visitor {
    fn visit<C: ChildKind>(&mut self);
}

/// Every child kind, in apply order (prune goes the other way).
pub fn each(v: &mut impl Visitor) {
    v.visit::<ServiceAccounts>();
    v.visit::<CredentialSpecs>();
    v.visit::<ClusterRoles>();
    v.visit::<RoleBindings>();
    v.visit::<ConfigMaps>();
    v.visit::<PersistentVolumes>();
    v.visit::<Claims>();
    v.visit::<NetworkPolicies>();
    v.visit::<Services>();
    v.visit::<DisruptionBudgets>();
    v.visit::<Deployments>();
    v.visit::<DaemonSets>();
}

/// A kind cached as [`Lean`] objects: name, API type, RBAC resource, round, and where its
/// objects are in [`Children`].
macro_rules! lean_kind {
    ($name:ident, $k:ty, $scope:ident, $round:ident, $group:literal, $resource:literal, |$c:ident| $take:expr) => {
        lean_kind!($name, $k, $scope, $round, $group, $resource, None, |$c| $take);
    };
    ($name:ident, $k:ty, $scope:ident, $round:ident, $group:literal, $resource:literal, $signature:expr $(; page $page:literal)?, |$c:ident| $take:expr) => {
        pub struct $name;

        impl ChildKind for $name {
            type Object = $k;
            type Cached = Lean<$k>;
            const KIND: &'static str = stringify!($k);
            const NAMESPACED: bool = lean_kind!(@namespaced $scope);
            const ROUND: Round = Round::$round;
            const RBAC: (&'static str, &'static str) = ($group, $resource);
            $(const LIST_PAGE: u32 = $page;)?

            fn api(client: &Client, namespace: Option<&str>) -> Api<$k> {
                lean_kind!(@api $scope, client, namespace)
            }

            fn store(stores: &Stores) -> Option<Store<Lean<$k>>> {
                stores.children.get::<$k>(TypeId::of::<Self>()).map(|c| c.store.clone())
            }

            fn dyntype() {}

            fn children(stores: &Stores, namespace: &str, app: &str) -> Vec<Arc<Lean<$k>>> {
                stores.children.get::<$k>(TypeId::of::<Self>()).map(|c| c.children(namespace, app)).unwrap_or_default()
            }

            fn take($c: &mut Children) -> Vec<$k> {
                $take
            }

            fn wire(w: &mut Wiring<'_>) {
                let (client, namespace) = (w.client, w.namespace);
                let api: Api<Lean<$k>> = lean_kind!(@api $scope, client, namespace);
                w.lean::<$k>(kind::<Self>(), api, $signature);
            }
        }
    };
    (@namespaced namespaced) => { true };
    (@namespaced cluster) => { false };
    (@api namespaced, $client:ident, $ns:ident) => {
        match $ns {
            Some(ns) => Api::namespaced($client.clone(), ns),
            None => Api::all($client.clone()),
        }
    };
    (@api cluster, $client:ident, $ns:ident) => {{
        let _ = $ns;
        Api::all($client.clone())
    }};
}

lean_kind!(ServiceAccounts, ServiceAccount, namespaced, First, "", "serviceaccounts", |c| c
    .service_account
    .take()
    .into_iter()
    .collect());
lean_kind!(ClusterRoles, ClusterRole, cluster, First, "rbac.authorization.k8s.io", "clusterroles", |c| c
    .gmsa_cluster_role
    .take()
    .into_iter()
    .collect());
lean_kind!(RoleBindings, RoleBinding, namespaced, Second, "rbac.authorization.k8s.io", "rolebindings", |c| c
    .gmsa_role_binding
    .take()
    .into_iter()
    .collect());
// A ConfigMap holds up to 1 MiB, and a tenant may label any as the operator's: its first list
// decodes 4 a page (about 4 MiB at most) instead of 25.
lean_kind!(ConfigMaps, ConfigMap, namespaced, First, "", "configmaps", None; page 4, |c| c.config_map.take().into_iter().collect());
lean_kind!(PersistentVolumes, PersistentVolume, cluster, First, "", "persistentvolumes", |c| std::mem::take(
    &mut c.persistent_volumes
));
lean_kind!(NetworkPolicies, NetworkPolicy, namespaced, First, "networking.k8s.io", "networkpolicies", |c| c
    .network_policy
    .take()
    .into_iter()
    .collect());
lean_kind!(Services, Service, namespaced, First, "", "services", |c| c.service.take().into_iter().collect());
lean_kind!(
    DisruptionBudgets,
    PodDisruptionBudget,
    namespaced,
    First,
    "policy",
    "poddisruptionbudgets",
    Some(signatures::cached_disruption_budget as fn(&_) -> u64),
    |c| c.pod_disruption_budget.take().into_iter().collect()
);
lean_kind!(
    Deployments,
    Deployment,
    namespaced,
    Workload,
    "apps",
    "deployments",
    Some(signatures::cached_deployment as fn(&_) -> u64),
    |c| match c.workload.take() {
        Some(Workload::Deployment(d)) => vec![d],
        other => {
            c.workload = other;
            Vec::new()
        }
    }
);
lean_kind!(
    DaemonSets,
    DaemonSet,
    namespaced,
    Workload,
    "apps",
    "daemonsets",
    Some(signatures::cached_daemon_set as fn(&_) -> u64),
    // A node agent's DaemonSet, or a Deployment's image warm-up DaemonSet (never both): one
    // kind, one cache, so that prune sees both and deletes neither while it is asked for.
    |c| {
        let mut all: Vec<DaemonSet> = match c.workload.take() {
            Some(Workload::DaemonSet(d)) => vec![d],
            other => {
                c.workload = other;
                Vec::new()
            }
        };
        all.extend(c.warm_up.take());
        all
    }
);

/// PersistentVolumeClaims: those of volumes to retain are released, not deleted (see
/// [`super::claims`]).
pub struct Claims;

impl ChildKind for Claims {
    type Object = PersistentVolumeClaim;
    type Cached = Lean<PersistentVolumeClaim>;
    const KIND: &'static str = "PersistentVolumeClaim";
    const NAMESPACED: bool = true;
    const ROUND: Round = Round::First;
    const RBAC: (&'static str, &'static str) = ("", "persistentvolumeclaims");

    fn api(client: &Client, namespace: Option<&str>) -> Api<PersistentVolumeClaim> {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }

    fn store(stores: &Stores) -> Option<Store<Self::Cached>> {
        stores.children.get::<PersistentVolumeClaim>(TypeId::of::<Self>()).map(|c| c.store.clone())
    }

    fn dyntype() {}

    fn children(stores: &Stores, namespace: &str, app: &str) -> Vec<Arc<Self::Cached>> {
        stores
            .children
            .get::<PersistentVolumeClaim>(TypeId::of::<Self>())
            .map(|c| c.children(namespace, app))
            .unwrap_or_default()
    }

    fn take(children: &mut Children) -> Vec<PersistentVolumeClaim> {
        std::mem::take(&mut children.persistent_volume_claims)
    }

    fn wire(w: &mut Wiring<'_>) {
        let api = match w.namespace {
            Some(ns) => Api::namespaced(w.client.clone(), ns),
            None => Api::all(w.client.clone()),
        };
        w.lean::<PersistentVolumeClaim>(kind::<Self>(), api, None);
    }

    fn released(cached: &Self::Cached) -> Result<Option<ObjectMeta>> {
        let claim = cached.typed().map_err(|e| Error::Cached(Self::KIND, e))?;
        Ok(super::claims::retained(&claim).then_some(claim.metadata))
    }
}

/// GMSACredentialSpecs: a CRD of the gMSA webhook's, which may come and go while the operator
/// runs. Its cache holds every credspec (the gMSA policy reads the annotations of the platform
/// team's own), as they come; it is wired apart from the others (`watch::follow_credspec_crd`).
pub struct CredentialSpecs;

impl ChildKind for CredentialSpecs {
    type Object = DynamicObject;
    type Cached = DynamicObject;
    const KIND: &'static str = "GMSACredentialSpec";
    const NAMESPACED: bool = false;
    const ROUND: Round = Round::First;
    const RBAC: (&'static str, &'static str) = (identity::CREDSPEC_GROUP, "gmsacredentialspecs");
    /// Kubernetes lets a subject grant (in the per-app ClusterRole) only what it holds itself.
    const EXTRA_VERBS: &'static [&'static str] = &["use"];

    fn api(client: &Client, _namespace: Option<&str>) -> Api<DynamicObject> {
        Api::all_with(client.clone(), &identity::credspec_resource())
    }

    fn store(stores: &Stores) -> Option<Store<DynamicObject>> {
        stores.credspecs.get()
    }

    fn dyntype() -> kube::api::ApiResource {
        identity::credspec_resource()
    }

    fn children(stores: &Stores, namespace: &str, app: &str) -> Vec<Arc<DynamicObject>> {
        let Some(store) = stores.credspecs.get() else { return Vec::new() };
        store.state().into_iter().filter(|c| c.owner() == Some((namespace, app))).collect()
    }

    fn take(children: &mut Children) -> Vec<DynamicObject> {
        children.credential_spec.take().into_iter().collect()
    }

    /// Wired apart: the CRD may come and go (see [`super::credspecs`]).
    fn wire(_: &mut Wiring<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A first list decodes a page whole: kinds whose objects may be a megabyte (ConfigMaps) list
    /// a few at a time, the others the default page.
    #[test]
    fn large_objects_are_listed_a_few_a_page() {
        struct Pages(Vec<(&'static str, u32)>);
        impl Visitor for Pages {
            fn visit<C: ChildKind>(&mut self) {
                self.0.push((C::KIND, kind::<C>().list_page));
            }
        }
        let mut pages = Pages(Vec::new());
        each(&mut pages);
        for (kind, page) in pages.0 {
            if kind == "ConfigMap" {
                assert!(page <= 5, "ConfigMaps list {page} a page: up to {page} MiB decoded at once");
            } else {
                assert_eq!(page, super::super::wiring::LIST_PAGE, "{kind}");
            }
        }
    }

    /// Every field of [`Children`] is taken by a kind: a child built but taken by none would never
    /// be applied or pruned.
    #[test]
    fn every_child_built_is_taken_by_a_kind() {
        struct TakeAll(Children);
        impl Visitor for TakeAll {
            fn visit<C: ChildKind>(&mut self) {
                let _ = C::take(&mut self.0);
            }
        }
        for agent in [false, true] {
            let children = crate::build::tests::every_kind(agent);
            assert!(!children.is_empty());
            let mut all = TakeAll(children);
            each(&mut all);
            assert!(all.0.is_empty(), "left untaken: {:?}", all.0);
        }
    }

    /// `render` prints the children in the order of `Children::to_ordered_json`: the order in
    /// which the operator applies them, kind by kind.
    #[test]
    fn render_prints_in_the_order_of_the_list() {
        struct Order(Children, Vec<String>);
        impl Visitor for Order {
            fn visit<C: ChildKind>(&mut self) {
                for o in C::take(&mut self.0) {
                    self.1.push(format!("{} {}", C::KIND, o.meta().name.clone().unwrap_or_default()));
                }
            }
        }
        for agent in [false, true] {
            let children = crate::build::tests::every_kind(agent);
            let printed: Vec<String> = children
                .to_ordered_json()
                .expect("serializes")
                .iter()
                .map(|o| {
                    format!(
                        "{} {}",
                        o["kind"].as_str().unwrap_or_default(),
                        o["metadata"]["name"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            let mut order = Order(children, Vec::new());
            each(&mut order);
            assert_eq!(printed, order.1);
        }
    }

    #[test]
    fn the_kinds_are_distinct_and_in_rounds() {
        struct Names(Vec<(&'static str, Round, bool)>);
        impl Visitor for Names {
            fn visit<C: ChildKind>(&mut self) {
                self.0.push((C::KIND, C::ROUND, C::NAMESPACED));
            }
        }
        let mut names = Names(Vec::new());
        each(&mut names);
        let kinds: std::collections::BTreeSet<&str> = names.0.iter().map(|n| n.0).collect();
        assert_eq!(kinds.len(), names.0.len(), "a kind listed twice: {:?}", names.0);
        let workloads: Vec<&str> = names.0.iter().rev().take_while(|n| n.1 == Round::Workload).map(|n| n.0).collect();
        assert_eq!(workloads.len(), 2, "the workloads come last: {:?}", names.0);
        assert!(names.0.contains(&("PersistentVolume", Round::First, false)));
        assert!(names.0.contains(&("Deployment", Round::Workload, true)));
    }
}
