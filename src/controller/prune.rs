//! Deletes the children an app no longer asks for, kind by kind in the reverse of apply order
//! (the workload before what its pods use). Only the app's own: its cached children (by the
//! owner index), each checked once more (labels, namespace, owner UID) and deleted with a UID
//! precondition. A claim to retain is released instead (see [`super::claims`]).

use futures::future::BoxFuture;

use super::Context;
use super::applier::Keep;
use super::apply::{self, Owner};
use super::claims;
use super::error::Result;
use super::kinds::{self, ChildKind, Visitor};
use crate::api::ReleasedClaim;
use crate::validate::ValidatedApp;

/// What pruning did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// `Kind name` of each child deleted.
    pub deleted: Vec<String>,
    /// The claims released instead of deleted.
    pub released: Vec<ReleasedClaim>,
}

/// The prune of one kind, not started yet.
type KindPrune<'a> = BoxFuture<'a, Result<Pruned>>;

/// Prunes the children of kind `C` of the app that are not in `keep`.
async fn prune_kind<C: ChildKind>(ctx: &Context, app: &ValidatedApp, keep: &Keep) -> Result<Pruned> {
    let owner = Owner { namespace: &app.namespace, name: &app.name, uid: app.uid.as_deref() };
    let mut stale = Vec::new();
    let mut release = Vec::new();
    for c in C::children(&ctx.stores, &app.namespace, &app.name) {
        if !apply::prunable(c.as_ref(), owner, C::NAMESPACED)
            || keep.contains(C::KIND, &kube::ResourceExt::name_any(c.as_ref()))
        {
            continue;
        }
        match C::released(&c)? {
            Some(meta) => release.push(meta),
            None => stale.push(c),
        }
    }
    let mut pruned = Pruned::default();
    for name in apply::delete::<C>(&ctx.client, &stale).await? {
        ctx.metrics.child_written("Deleted");
        pruned.deleted.push(format!("{} {name}", C::KIND));
    }
    for meta in release {
        let api = C::api(&ctx.client, Some(&app.namespace));
        pruned.released.extend(claims::release(&api, &meta, &app.namespace, &app.name, app.uid.as_deref()).await?);
    }
    Ok(pruned)
}

/// Deletes (or releases) the app's children that are not in `keep`, every kind.
pub async fn prune(ctx: &Context, app: &ValidatedApp, keep: &Keep) -> Result<Pruned> {
    struct Kinds<'a> {
        ctx: &'a Context,
        app: &'a ValidatedApp,
        keep: &'a Keep,
        prunes: Vec<KindPrune<'a>>,
    }
    impl<'a> Visitor for Kinds<'a> {
        fn visit<C: ChildKind>(&mut self) {
            self.prunes.push(Box::pin(prune_kind::<C>(self.ctx, self.app, self.keep)));
        }
    }
    let mut kinds = Kinds { ctx, app, keep, prunes: Vec::new() };
    kinds::each(&mut kinds);
    let mut all = Pruned::default();
    for prune in kinds.prunes.into_iter().rev() {
        let Pruned { deleted, released } = prune.await?;
        all.deleted.extend(deleted);
        all.released.extend(released);
    }
    Ok(all)
}
