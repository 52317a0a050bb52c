//! Server-side apply of one child, skipped when it already matches, and the delete of children
//! the app no longer asks for.
//!
//! "Already matches" is decided in the API server's terms, in two ways:
//! - [`first_difference`] compares the wanted object with the cached one the way the server
//!   stores objects (see [`super::diff`]).
//! - The app's memory keeps, per child, the hash of what was last applied and the
//!   `resourceVersion`s before and after that write ([`Written`]). A cache that shows either
//!   version with the same wanted hash means nothing changed since, whatever the server
//!   normalised or an admission plugin rewrote, so the child is not applied again. A write that
//!   the server answers with the same `resourceVersion` changed nothing and is not counted.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Stores;
use super::diff::first_difference;
use super::error::{Error, Result};
use super::kinds::ChildKind;
use super::lean::Cached;
use super::memory::{AppMemory, ChildKey, Written};
use crate::build::meta::{AppKey, is_ours};

/// The field manager of every write this operator makes.
pub const FIELD_MANAGER: &str = "winapp.dev/operator";
pub use crate::build::meta::APPLIED_HASH;

/// What happened to one child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Applied {
    #[default]
    Unchanged,
    Created,
    Updated,
}

/// A child with our name exists but belongs to someone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    pub kind: &'static str,
    pub name: String,
}

/// A field the API server stores with another value than the operator applied (a mutating
/// admission webhook or policy rewrote it). The operator keeps the server's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub kind: &'static str,
    pub name: String,
    /// JSON path of the first such field, for example `.spec.template.spec.containers[0].image`.
    pub path: String,
}

/// The outcome of applying one child.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChildApplied {
    pub applied: Applied,
    pub rewrite: Option<Rewrite>,
    /// True when this call found the rewrite (it was not known before).
    pub new_rewrite: bool,
    /// True when the child was a claim released from this app, adopted again by this call.
    pub adopted: bool,
}

/// How applying one child went, short of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildOutcome {
    Applied {
        kind: &'static str,
        name: String,
        done: ChildApplied,
    },
    /// The name is taken by an object that is not this app's.
    Foreign(Foreign),
}

/// Pure: whether the cached resourceVersion `cached_rv` of a child whose wanted hash is `hash`
/// needs no write because of the remembered write `w`.
pub fn unchanged_since_write(w: &Written, hash: &str, cached_rv: Option<&str>) -> bool {
    &*w.hash == hash && cached_rv.is_some() && (cached_rv == w.after.as_deref() || cached_rv == w.before.as_deref())
}

/// Adds the applied-hash annotation to `desired` and returns its JSON and the hash.
fn with_hash<K: Resource + Serialize>(desired: &mut K, kind: &'static str) -> Result<(Value, String)> {
    desired.annotations_mut().remove(APPLIED_HASH);
    let bytes = serde_json::to_vec(desired).map_err(|e| Error::Serialize(kind, e))?;
    let hash: String = Sha256::digest(&bytes).iter().take(12).map(|b| format!("{b:02x}")).collect();
    desired.annotations_mut().insert(APPLIED_HASH.into(), hash.clone());
    Ok((serde_json::to_value(&*desired).map_err(|e| Error::Serialize(kind, e))?, hash))
}

/// What the API server said of a child missing from the cache, when it was asked before the
/// apply (see [`look_up`]): its metadata, or None when it does not exist.
pub type LookedUp = Option<ObjectMeta>;

/// Where children are applied: the client, the caches and the memory, for one app.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub client: &'a Client,
    pub stores: &'a Stores,
    pub memory: &'a AppMemory,
    pub echoes: &'a super::echoes::Echoes,
    /// The app: namespace and name.
    pub app: &'a AppKey,
    /// The shard's name, put on every child applied (see [`super::shard`]).
    pub shard: Option<&'a str>,
}

impl Target<'_> {
    /// The cache key of the child `name` of kind `C`.
    fn key<C: ChildKind>(&self, name: &str) -> ObjectRef<C::Cached> {
        let key = ObjectRef::<C::Cached>::new_with(name, C::dyntype());
        if C::NAMESPACED { key.within(&self.app.0) } else { key }
    }

    fn api<C: ChildKind>(&self) -> Api<C::Object> {
        C::api(self.client, C::NAMESPACED.then_some(self.app.0.as_str()))
    }

    /// The cached child `name` of kind `C`.
    fn cached<C: ChildKind>(&self, name: &str) -> Option<Arc<C::Cached>> {
        C::store(self.stores)?.get(&self.key::<C>(name))
    }
}

/// Asks the API server for the child `name` unless the cache has it (None then: [`apply`] reads
/// the cache). A new app's workload is looked up this way while its other children are applied,
/// so that its own apply is one round trip, not two.
pub async fn look_up<C: ChildKind>(t: Target<'_>, name: &str) -> Result<Option<LookedUp>> {
    if t.cached::<C>(name).is_some() {
        return Ok(None);
    }
    let found = t.api::<C>().get_metadata_opt(name).await.map_err(|source| Error::Apply {
        kind: C::KIND,
        name: name.to_owned(),
        source,
    })?;
    Ok(Some(found.map(|m| m.metadata)))
}

/// Applies one child unless it already matches (see the module docs). `looked_up`: the API
/// server's answer for a child missing from the cache, when [`look_up`] asked already.
pub async fn apply<C: ChildKind>(
    t: Target<'_>,
    mut desired: C::Object,
    looked_up: Option<LookedUp>,
) -> Result<ChildOutcome> {
    let (kind, name) = (C::KIND, desired.name_any());
    let owner = (t.app.0.as_str(), t.app.1.as_str());
    super::shard::label(&mut desired, t.shard);
    let (want, hash) = with_hash(&mut desired, kind)?;
    let remembered = t.memory.read(t.app, |s| s.written.get(kind, &name).cloned()).flatten();
    let known_rewrite = remembered.as_ref().and_then(|w| w.rewrite.as_deref().map(str::to_owned));
    let unchanged = |rv: Option<&str>| remembered.as_ref().is_some_and(|w| unchanged_since_write(w, &hash, rv));
    let done = |done: ChildApplied| Ok(ChildOutcome::Applied { kind, name: name.clone(), done });
    let known = || ChildApplied {
        rewrite: known_rewrite.clone().map(|path| Rewrite { kind, name: name.clone(), path }),
        ..ChildApplied::default()
    };
    let cached = t.cached::<C>(&name);
    let mut adopted = false;
    // The resourceVersion the child has now, as far as we know (cache, or API server on a miss).
    let mut cached_rv = cached.as_ref().and_then(|c| c.resource_version());
    match &cached {
        None => match existing::<C>(t, &name, looked_up).await? {
            Existing::None => {}
            Existing::Ours(rv) => {
                cached_rv = rv;
                if unchanged(cached_rv.as_deref()) {
                    return done(known());
                }
            }
            Existing::Adopted(rv) => (cached_rv, adopted) = (rv, true),
            Existing::Foreign => return Ok(ChildOutcome::Foreign(Foreign { kind, name })),
        },
        Some(current) => {
            if current.owner() != Some(owner) {
                return Ok(ChildOutcome::Foreign(Foreign { kind, name }));
            }
            if unchanged(cached_rv.as_deref()) {
                return done(known());
            }
            let have = current.to_json().map_err(|e| Error::Cached(kind, e))?;
            match first_difference(&C::Cached::comparable(want.clone()), &have) {
                None => {
                    remember(t, (kind, name.clone()), Written::of(&hash, None, cached_rv, None));
                    return done(ChildApplied::default());
                }
                Some(path) => tracing::debug!(kind, name, path, "child differs from the desired state"),
            }
        }
    }
    let stored = t.api::<C>().patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&desired)).await;
    let stored = stored.map_err(|source| Error::Apply { kind, name: name.clone(), source })?;
    let after = stored.resource_version();
    let stored = serde_json::to_value(&stored).map_err(|e| Error::Serialize(kind, e))?;
    let rewrite = first_difference(&want, &stored);
    let applied = match (&cached_rv, &after) {
        (None, _) => Applied::Created,
        // The server found nothing to change: not a write.
        (Some(before), Some(after)) if before == after => Applied::Unchanged,
        _ => Applied::Updated,
    };
    if let Some(path) = &rewrite {
        tracing::info!(kind, name, path, "the API server stores another value than the operator applied; keeping it");
    }
    if applied != Applied::Unchanged
        && let Some(rv) = after.as_deref()
    {
        // What the watch has delivered of this child by now (it may have overtaken this reply).
        let seen = t.cached::<C>(&name).and_then(|c| c.resource_version());
        let namespace = C::NAMESPACED.then_some(t.app.0.as_str());
        t.echoes.expect(kind, namespace, &name, rv, seen.as_deref());
    }
    remember(t, (kind, name.clone()), Written::of(&hash, cached_rv, after, rewrite.as_deref()));
    done(ChildApplied {
        applied,
        new_rewrite: rewrite.is_some() && known_rewrite != rewrite,
        rewrite: rewrite.map(|path| Rewrite { kind, name: name.clone(), path }),
        adopted,
    })
}

/// What the API server holds under a child's name missing from the cache.
enum Existing {
    None,
    /// The app's own, at this resourceVersion.
    Ours(Option<String>),
    /// A claim released from this app's volume of the same name, adopted again: at this
    /// resourceVersion.
    Adopted(Option<String>),
    /// Someone else's.
    Foreign,
}

/// Asks the API server (unless [`look_up`] did) for the child `name`, missing from the cache. The
/// caches hold only labelled objects: an unlabelled one of the same name is someone else's, and
/// a forced apply would take it over. A cache miss is rare (creation, or a cache that has not
/// caught up with our own write yet).
async fn existing<C: ChildKind>(t: Target<'_>, name: &str, looked_up: Option<LookedUp>) -> Result<Existing> {
    let found = match looked_up {
        Some(found) => found,
        None => look_up::<C>(t, name).await?.flatten(),
    };
    let Some(m) = found else { return Ok(Existing::None) };
    if m.labels.as_ref().is_some_and(|l| is_ours(l, &t.app.0, &t.app.1)) {
        Ok(Existing::Ours(m.resource_version))
    } else if C::KIND == "PersistentVolumeClaim" && super::claims::adoptable(&m, &t.app.0, &t.app.1) {
        Ok(Existing::Adopted(super::claims::adopt(&t.api::<C>(), &m).await?))
    } else {
        Ok(Existing::Foreign)
    }
}

fn remember(t: Target<'_>, child: ChildKey, w: Written) {
    t.memory.with(t.app, |s| s.written.insert(child.0, &child.1, w));
}

/// The owner of children being pruned: the app's namespace, name and UID.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: Option<&'a str>,
}

/// Pure: whether `o` is a child of `owner` that prune may delete: our labels, in the owner's
/// namespace (namespaced kinds), and, when the owner's UID is known, tied to that UID (its
/// controller owner reference, or the owner-UID annotation of cluster-scoped children and claims
/// to retain).
pub fn prunable<C: Cached>(o: &C, owner: Owner<'_>, namespaced: bool) -> bool {
    if o.owner() != Some((owner.namespace, owner.name)) || o.meta().deletion_timestamp.is_some() {
        return false;
    }
    if namespaced && o.meta().namespace.as_deref() != Some(owner.namespace) {
        return false;
    }
    let Some(uid) = owner.uid else { return true };
    let annotated = o.owner_uid() == Some(uid);
    if namespaced { annotated || o.controlled_by(uid) } else { annotated }
}

/// Deletes the children `stale` of kind `C`, each with a UID precondition (never a same-named
/// successor). Returns the names deleted.
pub async fn delete<C: ChildKind>(client: &Client, stale: &[Arc<C::Cached>]) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    for o in stale {
        let name = o.name_any();
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: o.uid(), resource_version: None }),
            ..DeleteParams::background()
        };
        match C::api(client, o.meta().namespace.as_deref()).delete(&name, &dp).await {
            Ok(_) => deleted.push(name),
            // Gone already, or replaced by an object with another UID: not ours to delete.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(source) => return Err(Error::Delete { kind: C::KIND, name, source }),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_write_covers_the_versions_before_and_after_it() {
        let w = Written { hash: "h".into(), before: Some("1".into()), after: Some("2".into()), rewrite: None };
        assert!(unchanged_since_write(&w, "h", Some("1")), "the cache may lag behind our write");
        assert!(unchanged_since_write(&w, "h", Some("2")));
        assert!(!unchanged_since_write(&w, "h", Some("3")), "someone else wrote since");
        assert!(!unchanged_since_write(&w, "other", Some("2")), "the spec changed");
        assert!(!unchanged_since_write(&w, "h", None));
    }
}
