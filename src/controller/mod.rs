//! The reconcile loop: validate -> build -> apply -> prune -> status, plus the finalizer that
//! removes cluster-scoped children, and the error policy.

pub mod apply;
pub mod error;
pub mod observe;
pub mod status;
pub mod watch;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use self::apply::{Applied, FIELD_MANAGER, Foreign};
use self::error::{Error, Result};
use self::status::Outcome;
use crate::api::{GROUP, VERSION, WindowsApp, WindowsAppStatus};
use crate::build::{self, Children, meta};
use crate::conditions::{self as c};
use crate::metrics::Metrics;
use crate::validate;

/// Finalizer that removes the cluster-scoped children when a WindowsApp is deleted.
pub const FINALIZER: &str = "winapp.dev/cleanup";

/// Watch caches of every kind the reconcile reads.
#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub config_maps: Store<ConfigMap>,
    pub service_accounts: Store<ServiceAccount>,
    pub role_bindings: Store<RoleBinding>,
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub cluster_roles: Store<ClusterRole>,
    /// None when the GMSACredentialSpec CRD is not installed.
    pub credspecs: Option<Store<DynamicObject>>,
    pub nodes: Store<Node>,
}

impl Stores {
    /// Waits until every cache has its first full list. Call it from one task only: a store's
    /// readiness wakes a single waiter; others should wait on [`Context::caches_ready`].
    pub async fn wait_until_ready(&self) {
        let _ = self.deployments.wait_until_ready().await;
        let _ = self.services.wait_until_ready().await;
        let _ = self.config_maps.wait_until_ready().await;
        let _ = self.service_accounts.wait_until_ready().await;
        let _ = self.role_bindings.wait_until_ready().await;
        let _ = self.claims.wait_until_ready().await;
        let _ = self.volumes.wait_until_ready().await;
        let _ = self.cluster_roles.wait_until_ready().await;
        let _ = self.nodes.wait_until_ready().await;
        if let Some(c) = &self.credspecs {
            let _ = c.wait_until_ready().await;
        }
    }
}

/// Shared state of the reconciles.
pub struct Context {
    pub client: Client,
    pub stores: Stores,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub credspec_resource: ApiResource,
    /// Becomes true once every cache has synced.
    pub caches_ready: tokio::sync::watch::Receiver<bool>,
    /// Consecutive failures per app, for exponential backoff.
    pub failures: Mutex<HashMap<ObjectRef<Watched>, u32>>,
}

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
        Err(invalid) => {
            warn!("cannot decode this WindowsApp, leaving it alone until it changes: {}", invalid.error);
            let reference = ObjectReference {
                api_version: Some(format!("{GROUP}/{VERSION}")),
                kind: Some("WindowsApp".into()),
                name: invalid.metadata.name.clone(),
                namespace: invalid.metadata.namespace.clone(),
                uid: invalid.metadata.uid.clone(),
                ..ObjectReference::default()
            };
            let note =
                format!("the object does not match the WindowsApp schema: {}; fix or re-apply it", invalid.error);
            publish_to(ctx.as_ref(), &reference, EventType::Warning, "InvalidObject", note).await;
            return Ok(Action::await_change());
        }
    };
    let started = Instant::now();
    let ns = app.namespace().ok_or(Error::MissingMetadata)?;
    let api: Api<WindowsApp> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, app.clone(), |event| async {
        match event {
            FinalizerEvent::Apply(app) => reconcile_apply(&app, &ctx).await,
            FinalizerEvent::Cleanup(app) => cleanup(&app, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconciled(started.elapsed());
    if result.is_ok()
        && let Ok(mut f) = ctx.failures.lock()
    {
        f.remove(&ObjectRef::from_obj(guard.as_ref()));
    }
    result
}

/// Transient errors requeue with per-object exponential backoff (5 s doubling to 5 min).
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
    let delay = Duration::from_secs(5u64.saturating_mul(1 << n.min(6).saturating_sub(1))).min(RESYNC);
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

    // 1. Validate: a spec the schema let through but that cannot work waits for a change.
    let valid = match validate::validate(app, None) {
        Ok(v) => v,
        Err(errors) => {
            write_status(app, ctx, generation, None, &Outcome::Invalid(errors.to_string()), previous.as_ref()).await?;
            return Ok(Action::await_change());
        }
    };
    let build_label = valid.placement.version.map(|v| v.build().to_owned());

    // 2. Suspend: touch nothing, say so.
    if valid.suspend {
        write_status(app, ctx, generation, build_label, &Outcome::Suspended, previous.as_ref()).await?;
        return Ok(Action::await_change());
    }

    // 3. Build the desired children (pure).
    let children = build::build(&valid)?;
    let keep = Keep::of(&children);

    // 4. Apply in order; a child owned by someone else stops here.
    let report = match apply_all(ctx, &valid, children).await? {
        Ok(report) => report,
        Err(foreign) => {
            let msg = format!(
                "{} {} already exists and is not managed by this WindowsApp; delete or rename it, or rename the app",
                foreign.kind, foreign.name
            );
            write_status(app, ctx, generation, build_label, &Outcome::Conflict(msg), previous.as_ref()).await?;
            return Ok(Action::requeue(WAIT));
        }
    };
    if !report.created.is_empty() {
        publish(ctx, app, EventType::Normal, "Created", format!("created {}", report.created.join(", "))).await;
    }

    // 5. Prune what the spec no longer asks for.
    let pruned = prune_all(ctx, &valid.namespace, &valid.name, &keep).await?;
    if pruned > 0 {
        publish(
            ctx,
            app,
            EventType::Normal,
            "Pruned",
            format!("deleted {pruned} child object(s) the spec no longer asks for"),
        )
        .await;
    }

    // 6. Observe and report.
    let observations = observe::observe(ctx, &valid, !report.deployment_written).await?;
    let new =
        write_status(app, ctx, generation, build_label, &Outcome::Applied(observations), previous.as_ref()).await?;
    let ready = c::find(&new.conditions, c::READY).is_some_and(|r| r.status == "True");
    Ok(if ready { Action::requeue(RESYNC) } else { Action::requeue(WAIT) })
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
    services: BTreeSet<String>,
    deployments: BTreeSet<String>,
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
            service,
            deployment,
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
            services: names(service),
            deployments: names(std::iter::once(deployment)),
        }
    }
}

#[derive(Default)]
struct ApplyReport {
    created: Vec<String>,
    deployment_written: bool,
}

/// Applies the children in order: identity and RBAC (the gMSA webhook checks them when pods are
/// created), config and storage, the Service, and the Deployment last.
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
        service,
        deployment,
    } = children;
    let client = &ctx.client;
    let ns = app.namespace.as_str();
    let owner = (ns, app.name.as_str());
    let s = &ctx.stores;
    let mut report = ApplyReport::default();
    let note = |kind: &str, name: String, applied: Applied, report: &mut ApplyReport| {
        if applied != Applied::Unchanged {
            ctx.metrics.child_written(kind);
        }
        if applied == Applied::Created {
            report.created.push(format!("{kind} {name}"));
        }
    };

    macro_rules! step {
        ($api:expr, $store:expr, $dt:expr, $kind:literal, $obj:expr) => {{
            let obj = $obj;
            let name = obj.name_any();
            match apply::apply(&$api, $store, $dt, $kind, obj, owner).await? {
                Ok(applied) => {
                    note($kind, name, applied, &mut report);
                    applied
                }
                Err(foreign) => return Ok(Err(foreign)),
            }
        }};
    }

    if let Some(sa) = service_account {
        step!(Api::<ServiceAccount>::namespaced(client.clone(), ns), &s.service_accounts, &(), "ServiceAccount", sa);
    }
    if let (Some(cs), Some(store)) = (credential_spec, &s.credspecs) {
        let api = Api::<DynamicObject>::all_with(client.clone(), &ctx.credspec_resource);
        step!(api, store, &ctx.credspec_resource, "GMSACredentialSpec", cs);
    }
    if let Some(cr) = gmsa_cluster_role {
        step!(Api::<ClusterRole>::all(client.clone()), &s.cluster_roles, &(), "ClusterRole", cr);
    }
    if let Some(rb) = gmsa_role_binding {
        step!(Api::<RoleBinding>::namespaced(client.clone(), ns), &s.role_bindings, &(), "RoleBinding", rb);
    }
    if let Some(cm) = config_map {
        step!(Api::<ConfigMap>::namespaced(client.clone(), ns), &s.config_maps, &(), "ConfigMap", cm);
    }
    for pv in persistent_volumes {
        step!(Api::<PersistentVolume>::all(client.clone()), &s.volumes, &(), "PersistentVolume", pv);
    }
    for pvc in persistent_volume_claims {
        step!(
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
            &s.claims,
            &(),
            "PersistentVolumeClaim",
            pvc
        );
    }
    if let Some(svc) = service {
        step!(Api::<Service>::namespaced(client.clone(), ns), &s.services, &(), "Service", svc);
    }
    let applied =
        step!(Api::<Deployment>::namespaced(client.clone(), ns), &s.deployments, &(), "Deployment", deployment);
    report.deployment_written = applied != Applied::Unchanged;
    Ok(Ok(report))
}

/// Deletes the app's children that are not in `keep`, every kind.
async fn prune_all(ctx: &Context, ns: &str, name: &str, keep: &Keep) -> Result<usize> {
    let client = ctx.client.clone();
    let s = &ctx.stores;
    let owner = (ns, name);
    let mut n = 0;
    n += apply::prune(namespaced_api(&client), &s.deployments, "Deployment", owner, &keep.deployments).await?;
    n += apply::prune(namespaced_api(&client), &s.services, "Service", owner, &keep.services).await?;
    n += apply::prune(namespaced_api(&client), &s.claims, "PersistentVolumeClaim", owner, &keep.claims).await?;
    n += apply::prune(|_| Api::all(client.clone()), &s.volumes, "PersistentVolume", owner, &keep.volumes).await?;
    n += apply::prune(namespaced_api(&client), &s.config_maps, "ConfigMap", owner, &keep.config_maps).await?;
    n += apply::prune(namespaced_api(&client), &s.role_bindings, "RoleBinding", owner, &keep.role_bindings).await?;
    n +=
        apply::prune(|_| Api::all(client.clone()), &s.cluster_roles, "ClusterRole", owner, &keep.cluster_roles).await?;
    if let Some(store) = &s.credspecs {
        let ar = ctx.credspec_resource.clone();
        n += apply::prune(|_| Api::all_with(client.clone(), &ar), store, "GMSACredentialSpec", owner, &keep.credspecs)
            .await?;
    }
    n += apply::prune(namespaced_api(&client), &s.service_accounts, "ServiceAccount", owner, &keep.service_accounts)
        .await?;
    for _ in 0..n {
        ctx.metrics.child_written("Deleted");
    }
    Ok(n)
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
    let lp = ListParams::default().labels(&meta::children_selector(&ns, &name));
    let mut deleted = 0;
    deleted += delete_labelled(Api::<PersistentVolume>::all(ctx.client.clone()), &lp, "PersistentVolume").await?;
    deleted += delete_labelled(Api::<ClusterRole>::all(ctx.client.clone()), &lp, "ClusterRole").await?;
    if ctx.stores.credspecs.is_some() {
        let api = Api::<DynamicObject>::all_with(ctx.client.clone(), &ctx.credspec_resource);
        deleted += delete_labelled(api, &lp, "GMSACredentialSpec").await?;
    }
    if deleted > 0 {
        publish(ctx, app, EventType::Normal, "CleanedUp", format!("deleted {deleted} cluster-scoped child object(s)"))
            .await;
    }
    ctx.metrics.set_ready(ObjectRef::from_obj(app), None);
    info!(deleted, "cleaned up cluster-scoped children");
    Ok(Action::await_change())
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
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new = status::compute(generation, windows_build, outcome, previous, &now);
    ctx.metrics.set_ready(ObjectRef::from_obj(app), c::find(&new.conditions, c::READY).map(|r| r.status.clone()));
    if previous.is_some_and(|p| status::same_ignoring_time(p, &new)) {
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
    if let Err(e) = ctx.recorder.publish(&ev, reference).await {
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
