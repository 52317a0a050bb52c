//! Server-side apply of the children, skipping those the cache shows as already matching, and
//! pruning children that the spec no longer asks for.

use std::collections::BTreeSet;
use std::fmt::Debug;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{Error, Result};
use crate::build::meta;

/// The field manager of every write this operator makes.
pub const FIELD_MANAGER: &str = "winapp.dev/operator";
/// Annotation with the hash of what was last applied, so that a removed field is noticed.
pub const APPLIED_HASH: &str = "winapp.dev/applied-hash";

/// What happened to one child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
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

/// Whether `obj` carries the labels of the app `namespace/name`.
pub fn is_ours(labels: &std::collections::BTreeMap<String, String>, namespace: &str, name: &str) -> bool {
    labels.get(meta::APP_LABEL).map(String::as_str) == Some(name)
        && labels.get(meta::NAMESPACE_LABEL).map(String::as_str) == Some(namespace)
        && labels.get("app.kubernetes.io/managed-by").map(String::as_str) == Some(meta::MANAGER)
}

/// Adds the applied-hash annotation to `desired` and returns its JSON.
fn with_hash<K: Resource + Serialize>(desired: &mut K, kind: &'static str) -> Result<Value> {
    desired.annotations_mut().remove(APPLIED_HASH);
    let bytes = serde_json::to_vec(desired).map_err(|e| Error::Serialize(kind, e))?;
    let hash: String = Sha256::digest(&bytes).iter().take(12).map(|b| format!("{b:02x}")).collect();
    desired.annotations_mut().insert(APPLIED_HASH.into(), hash);
    serde_json::to_value(&*desired).map_err(|e| Error::Serialize(kind, e))
}

/// The path of the first field of `want` that `have` lacks or holds with another value; None
/// when `want` is a subset of `have`. Lists match element by element and `have` may be longer
/// (admission may append to lists we do not own).
pub fn first_difference(want: &Value, have: &Value) -> Option<String> {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().find_map(|(k, v)| match h.get(k) {
            Some(hv) => first_difference(v, hv).map(|p| format!(".{k}{p}")),
            None => Some(format!(".{k}")),
        }),
        (Value::Array(w), Value::Array(h)) if w.len() <= h.len() => {
            w.iter().zip(h).enumerate().find_map(|(i, (a, b))| first_difference(a, b).map(|p| format!("[{i}]{p}")))
        }
        (w, h) if w == h => None,
        _ => Some(String::new()),
    }
}

/// Applies one child unless the cache already holds it as desired.
pub async fn apply<K>(
    api: &Api<K>,
    store: &Store<K>,
    dyntype: &K::DynamicType,
    kind: &'static str,
    mut desired: K,
    owner: (&str, &str),
) -> Result<std::result::Result<Applied, Foreign>>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    let name = desired.name_any();
    let mut key = ObjectRef::<K>::new_with(&name, dyntype.clone());
    if let Some(ns) = desired.namespace() {
        key = key.within(&ns);
    }
    let want = with_hash(&mut desired, kind)?;
    let cached = store.get(&key);
    if cached.is_none() {
        // The caches hold only labelled objects: an unlabelled one of the same name is someone
        // else's, and a forced apply would take it over. A cache miss is rare (creation), so
        // ask the API server.
        let existing =
            api.get_metadata_opt(&name).await.map_err(|source| Error::Apply { kind, name: name.clone(), source })?;
        if existing.is_some_and(|m| !is_ours(m.labels(), owner.0, owner.1)) {
            return Ok(Err(Foreign { kind, name }));
        }
    }
    if let Some(current) = &cached {
        if !is_ours(current.labels(), owner.0, owner.1) {
            return Ok(Err(Foreign { kind, name }));
        }
        let have = serde_json::to_value(current.as_ref()).map_err(|e| Error::Serialize(kind, e))?;
        match first_difference(&want, &have) {
            None => return Ok(Ok(Applied::Unchanged)),
            Some(path) => tracing::debug!(kind, name, path, "child differs from the desired state"),
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&desired)).await.map_err(|source| Error::Apply { kind, name, source })?;
    Ok(Ok(if cached.is_some() { Applied::Updated } else { Applied::Created }))
}

/// Deletes every object of the app in `store` whose name is not in `keep`. Returns the number
/// of deletions issued.
pub async fn prune<K>(
    api_for: impl Fn(Option<&str>) -> Api<K>,
    store: &Store<K>,
    kind: &'static str,
    owner: (&str, &str),
    keep: &BTreeSet<String>,
) -> Result<usize>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    let stale: Vec<_> = store
        .state()
        .into_iter()
        .filter(|o| is_ours(o.labels(), owner.0, owner.1) && !keep.contains(&o.name_any()))
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .collect();
    for o in &stale {
        let name = o.name_any();
        match api_for(o.namespace().as_deref()).delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(Error::Delete { kind, name, source }),
        }
    }
    Ok(stale.len())
}
