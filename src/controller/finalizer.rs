//! The finalizer `winapp.dev/cleanup`: an app with children that garbage collection does not
//! remove (cluster-scoped ones: SMB PersistentVolumes, a generated GMSACredentialSpec, the gMSA
//! ClusterRole) or claims to release (not delete) carries it; on its deletion the operator deletes
//! the first, releases the second, then removes the finalizer. Namespaced children go with the app
//! by garbage collection (owner references).

use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::info;

use super::Context;
use super::claims;
use super::error::{Error, Result};
use super::events;
use super::kinds::{self, ChildKind, Visitor};
use crate::api::{GROUP, VERSION, WindowsApp};
use crate::build::{Children, meta};

/// Finalizer that removes the cluster-scoped children when a WindowsApp is deleted.
pub const FINALIZER: &str = "winapp.dev/cleanup";

/// Field manager of the finalizer (apart from the children's, so that the two never conflict).
const FINALIZER_MANAGER: &str = "winapp.dev/finalizer";

/// Whether the object carries the operator's finalizer.
pub fn has_finalizer(m: &ObjectMeta) -> bool {
    m.finalizers.iter().flatten().any(|f| f == FINALIZER)
}

/// Adds the finalizer when the app's `children` need it and it has none yet, before the first
/// such child is created. A server-side apply of the finalizer alone: idempotent, keeps other
/// finalizers, and cannot fail on a stale cached copy the way a JSON patch of the list does.
pub async fn ensure(ctx: &Context, m: &ObjectMeta, children: &Children) -> Result<()> {
    if !children.needs_finalizer() || has_finalizer(m) {
        return Ok(());
    }
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
    info!("added the finalizer: the app has cluster-scoped children or claims to retain");
    Ok(())
}

/// Removes the finalizer once the children are taken care of: a merge patch of the other
/// finalizers, guarded by the `resourceVersion` seen (a conflict is retried). An app that is gone
/// already is done.
async fn remove(ctx: &Context, m: &ObjectMeta) -> Result<()> {
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

/// The deletion of an app: its cluster-scoped children go, its claims to retain are released,
/// then the finalizer, and the operator forgets the app. Works from the metadata alone (an app
/// that does not decode, or that left the operator's selector, see [`super::strays`]). Returns
/// how many cluster-scoped children were deleted.
pub async fn release_deleted(ctx: &Context, m: &ObjectMeta) -> Result<usize> {
    let (Some(ns), Some(name)) = (m.namespace.as_deref(), m.name.as_deref()) else {
        return Err(Error::MissingMetadata);
    };
    let deleted = delete_cluster_children(&ctx.client, ns, name).await?;
    claims::release_all(&ctx.client, ns, name, m.uid.as_deref()).await?;
    remove(ctx, m).await?;
    ctx.forget(&(ns.to_owned(), name.to_owned()));
    Ok(deleted)
}

/// The deletion of an app the operator reconciles: [`release_deleted`], with events.
pub async fn cleanup(app: &WindowsApp, ctx: &Context) -> Result<Action> {
    let ns = app.namespace().ok_or(Error::MissingMetadata)?;
    let name = app.name_any();
    let deleted = delete_cluster_children(&ctx.client, &ns, &name).await?;
    if deleted > 0 {
        let note = format!("deleted {deleted} cluster-scoped child object(s)");
        events::publish(ctx, app, EventType::Normal, "CleanedUp", note).await;
    }
    let released = claims::release_all(&ctx.client, &ns, &name, app.uid().as_deref()).await?;
    if !released.is_empty() {
        events::publish(ctx, app, EventType::Normal, "Released", events::released_note(&released)).await;
    }
    remove(ctx, &app.metadata).await?;
    ctx.forget(&(ns, name));
    info!(deleted, "cleaned up cluster-scoped children");
    Ok(Action::await_change())
}

/// Deletes the cluster-scoped children of the app `ns/name`, every cluster-scoped kind, found by
/// label from the API server (not the cache, which may lag: a restart, a cache not synced yet);
/// returns how many. A kind whose API does not exist (the credspec CRD) has none.
async fn delete_cluster_children(client: &Client, ns: &str, name: &str) -> Result<usize> {
    struct Cluster<'a> {
        client: &'a Client,
        lp: ListParams,
        deletes: Vec<BoxFuture<'a, Result<usize>>>,
    }
    impl<'a> Visitor for Cluster<'a> {
        fn visit<C: ChildKind>(&mut self) {
            if !C::NAMESPACED {
                self.deletes.push(Box::pin(delete_labelled::<C>(self.client, self.lp.clone())));
            }
        }
    }
    let lp = ListParams::default().labels(&meta::children_selector(ns, name));
    let mut cluster = Cluster { client, lp, deletes: Vec::new() };
    kinds::each(&mut cluster);
    let mut deleted = 0;
    for delete in cluster.deletes {
        deleted += delete.await?;
    }
    Ok(deleted)
}

/// Deletes every object of kind `C` that `lp` selects; returns how many were listed.
async fn delete_labelled<C: ChildKind>(client: &Client, lp: ListParams) -> Result<usize> {
    let api = C::api(client, None);
    let list = match api.list_metadata(&lp).await {
        Ok(list) => list,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(0),
        Err(source) => return Err(Error::List { kind: C::KIND, source }),
    };
    for o in &list.items {
        let name = o.name_any();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(Error::Delete { kind: C::KIND, name, source }),
        }
    }
    Ok(list.items.len())
}
