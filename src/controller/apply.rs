//! Server-side apply of the children, skipping those that already match, and pruning children
//! that the spec no longer asks for.
//!
//! "Already matches" is decided in the API server's terms, in two ways:
//! - [`first_difference`] compares the wanted object with the cached one the way the server
//!   stores objects: quantities by value (`0.5` = `500m`, `1024Mi` = `1Gi`), and empty values
//!   (`""`, `[]`, `{}`, `false`, `0`, `null`) equal to an absent field (Go's `omitempty` drops
//!   them); fields the server adds (defaults) are ignored.
//! - [`Written`] remembers, per child, the hash of what was last applied and the
//!   `resourceVersion`s before and after that write. A cache that shows either version with the
//!   same wanted hash means nothing changed since, whatever the server normalised or an
//!   admission plugin rewrote, so the child is not applied again. A write that the server
//!   answers with the same `resourceVersion` changed nothing and is not counted as a write.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{Error, Result};
use super::lean::{Cached, Lean};
use crate::build::meta;

/// The field manager of every write this operator makes.
pub const FIELD_MANAGER: &str = "winapp.dev/operator";
/// Annotation with the hash of what was last applied, so that a removed field is noticed.
pub const APPLIED_HASH: &str = "winapp.dev/applied-hash";

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

/// Which app: namespace and name.
pub type AppKey = (String, String);
/// Which child of an app: kind and name.
pub type ChildKey = (&'static str, String);

/// The operator's last write of a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub hash: String,
    /// The resourceVersion the cache showed before the write (None: created).
    pub before: Option<String>,
    /// The resourceVersion the server returned.
    pub after: Option<String>,
    pub rewrite: Option<String>,
}

/// What the operator remembers of its writes, per app and child (a few hundred bytes per app;
/// forgotten when the app is deleted).
pub type Memo = Mutex<HashMap<AppKey, HashMap<ChildKey, Written>>>;

/// Which object: kind, namespace (empty for cluster-scoped objects) and name.
type EchoKey = (String, String, String);

/// The `resourceVersion`s that the operator's own writes of children produced, until the watch
/// brings each back. That event shows the child exactly as the reconcile that wrote it left it:
/// reconciling the app again for it would find nothing to do, so [`Echoes::is_echo`] lets the
/// watch drop it. Any other change of the child (a status update, someone's edit, a deletion)
/// has another `resourceVersion` and triggers as before.
///
/// At most one entry per child, and only between a write and its watch event (a write that the
/// watch has already delivered is not recorded; see [`Echoes::expect`]).
#[derive(Debug, Default)]
pub struct Echoes(Mutex<HashMap<EchoKey, String>>);

impl Echoes {
    /// Records that the operator's write left `kind` `namespace/name` at `resource_version`,
    /// unless `cached_rv` (what the watch has delivered so far) shows that version already: its
    /// event has then been seen, and an entry would wait for an event that never comes.
    pub fn expect(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        resource_version: &str,
        cached_rv: Option<&str>,
    ) {
        if cached_rv == Some(resource_version) {
            return;
        }
        if let Ok(mut m) = self.0.lock() {
            m.insert(
                (kind.to_owned(), namespace.unwrap_or_default().to_owned(), name.to_owned()),
                resource_version.to_owned(),
            );
        }
    }

    /// Whether a watch event of `kind` `namespace/name` at `resource_version` is the echo of
    /// the operator's own write. The entry is forgotten either way: the next event is news.
    pub fn is_echo(&self, kind: &str, namespace: Option<&str>, name: &str, resource_version: Option<&str>) -> bool {
        let Ok(mut m) = self.0.lock() else { return false };
        if m.is_empty() {
            return false;
        }
        let key = (kind.to_owned(), namespace.unwrap_or_default().to_owned(), name.to_owned());
        m.remove(&key).is_some_and(|rv| Some(rv.as_str()) == resource_version)
    }

    /// Forgets the entry of a deleted object.
    pub fn forget(&self, kind: &str, namespace: Option<&str>, name: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&(kind.to_owned(), namespace.unwrap_or_default().to_owned(), name.to_owned()));
        }
    }

    /// How many writes await their watch event.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or_default()
    }

    /// Whether no write awaits its watch event.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Pure: whether the cached resourceVersion `cached_rv` of a child whose wanted hash is `hash`
/// needs no write because of the remembered write `w`.
pub fn unchanged_since_write(w: &Written, hash: &str, cached_rv: Option<&str>) -> bool {
    w.hash == hash && cached_rv.is_some() && (cached_rv == w.after.as_deref() || cached_rv == w.before.as_deref())
}

/// Whether `obj` carries the labels of the app `namespace/name`.
pub fn is_ours(labels: &std::collections::BTreeMap<String, String>, namespace: &str, name: &str) -> bool {
    labelled_app(labels) == Some((namespace, name))
}

/// Pure: the app (namespace, name) that labels with the operator's managed-by label name.
pub fn labelled_app(labels: &std::collections::BTreeMap<String, String>) -> Option<(&str, &str)> {
    if labels.get("app.kubernetes.io/managed-by").map(String::as_str) != Some(meta::MANAGER) {
        return None;
    }
    Some((labels.get(meta::NAMESPACE_LABEL)?, labels.get(meta::APP_LABEL)?))
}

/// Adds the applied-hash annotation to `desired` and returns its JSON and the hash.
fn with_hash<K: Resource + Serialize>(desired: &mut K, kind: &'static str) -> Result<(Value, String)> {
    desired.annotations_mut().remove(APPLIED_HASH);
    let bytes = serde_json::to_vec(desired).map_err(|e| Error::Serialize(kind, e))?;
    let hash: String = Sha256::digest(&bytes).iter().take(12).map(|b| format!("{b:02x}")).collect();
    desired.annotations_mut().insert(APPLIED_HASH.into(), hash.clone());
    Ok((serde_json::to_value(&*desired).map_err(|e| Error::Serialize(kind, e))?, hash))
}

/// Objects whose values are resource quantities (`requests.cpu`, `capacity.storage`...).
const QUANTITY_MAPS: &[&str] = &["limits", "requests", "capacity", "overhead"];
/// Fields that are quantities themselves.
const QUANTITY_FIELDS: &[&str] = &["sizeLimit"];

/// Whether two strings are the same quantity (`0.5` and `500m`, `1024Mi` and `1Gi`).
pub fn same_quantity(a: &str, b: &str) -> bool {
    a == b || matches!((crate::quantity::parse(a), crate::quantity::parse(b)), (Some(x), Some(y)) if x == y)
}

/// A value Go's `omitempty` drops, so the server stores it as an absent field.
fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty_value),
    }
}

/// The path of the first field of `want` that `have` holds with another value, in the API
/// server's terms (see the module docs); None when `want` is contained in `have`. Lists match
/// element by element and `have` may be longer (admission may append to lists we do not own).
pub fn first_difference(want: &Value, have: &Value) -> Option<String> {
    diff(want, have, false)
}

/// `quantity`: `want` and `have` are resource quantities.
fn diff(want: &Value, have: &Value, quantity: bool) -> Option<String> {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().find_map(|(k, v)| {
            let Some(hv) = h.get(k) else { return (!is_empty_value(v)).then(|| format!(".{k}")) };
            let sub = if QUANTITY_MAPS.contains(&k.as_str()) && v.is_object() {
                diff_quantity_map(v, hv)
            } else {
                diff(v, hv, QUANTITY_FIELDS.contains(&k.as_str()))
            };
            sub.map(|p| format!(".{k}{p}"))
        }),
        (Value::Array(w), Value::Array(h)) if w.len() <= h.len() => {
            w.iter().zip(h).enumerate().find_map(|(i, (a, b))| diff(a, b, false).map(|p| format!("[{i}]{p}")))
        }
        (w, h) if w == h => None,
        (w, Value::Null) if is_empty_value(w) => None,
        (Value::String(a), Value::String(b)) if quantity => (!same_quantity(a, b)).then(String::new),
        (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a)) if quantity => {
            (!same_quantity(&a.to_string(), b)).then(String::new)
        }
        _ => Some(String::new()),
    }
}

/// Compares two `{resource: quantity}` maps.
fn diff_quantity_map(want: &Value, have: &Value) -> Option<String> {
    let (Value::Object(w), Value::Object(h)) = (want, have) else { return diff(want, have, false) };
    w.iter().find_map(|(k, v)| match h.get(k) {
        Some(hv) => diff(v, hv, true).map(|p| format!(".{k}{p}")),
        None => (!is_empty_value(v)).then(|| format!(".{k}")),
    })
}

/// What the API server said of a child missing from the cache, when it was asked before the
/// apply (see [`look_up`]): its metadata, or None when it does not exist.
pub type LookedUp = Option<ObjectMeta>;

/// Asks the API server for `name` unless the cache has it (None then: [`apply`] reads the
/// cache). A new app's workload is looked up this way while its other children are applied,
/// so that its own apply is one round trip, not two.
pub async fn look_up<K>(
    api: &Api<K>,
    store: &Store<Lean<K>>,
    kind: &'static str,
    name: &str,
) -> Result<Option<LookedUp>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + 'static,
{
    let mut key = ObjectRef::<Lean<K>>::new(name);
    if let Some(ns) = api.namespace() {
        key = key.within(ns);
    }
    if store.get(&key).is_some() {
        return Ok(None);
    }
    let found =
        api.get_metadata_opt(name).await.map_err(|source| Error::Apply { kind, name: name.to_owned(), source })?;
    Ok(Some(found.map(|m| m.metadata)))
}

/// Applies one child unless it already matches (see the module docs). `looked_up`: the API
/// server's answer for a child missing from the cache, when [`look_up`] asked already.
#[allow(clippy::too_many_arguments)]
pub async fn apply<K, C>(
    memo: &Memo,
    echoes: &Echoes,
    api: &Api<K>,
    store: &Store<C>,
    dyntype: &C::DynamicType,
    kind: &'static str,
    mut desired: K,
    owner: (&str, &str),
    looked_up: Option<LookedUp>,
) -> Result<std::result::Result<ChildApplied, Foreign>>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
    C: Cached,
    C::DynamicType: Clone + Eq + std::hash::Hash,
{
    let name = desired.name_any();
    let mut key = ObjectRef::<C>::new_with(&name, dyntype.clone());
    if let Some(ns) = desired.namespace() {
        key = key.within(&ns);
    }
    let app_key: AppKey = (owner.0.to_owned(), owner.1.to_owned());
    let memo_key: ChildKey = (kind, name.clone());
    let (want, hash) = with_hash(&mut desired, kind)?;
    let remembered = memo.lock().ok().and_then(|m| m.get(&app_key)?.get(&memo_key).cloned());
    let known_rewrite = |w: &Option<Written>| {
        w.as_ref().and_then(|w| w.rewrite.clone()).map(|path| Rewrite { kind, name: name.clone(), path })
    };
    let cached = store.get(&key);
    let mut adopted = false;
    // The resourceVersion the child has now, as far as we know (cache, or API server on a miss).
    let mut cached_rv = cached.as_ref().and_then(|c| c.resource_version());
    if cached.is_none() {
        // The caches hold only labelled objects: an unlabelled one of the same name is someone
        // else's, and a forced apply would take it over. A cache miss is rare (creation, or a
        // cache that has not caught up with our own write yet), so ask the API server.
        let existing = match looked_up {
            Some(found) => found,
            None => api
                .get_metadata_opt(&name)
                .await
                .map_err(|source| Error::Apply { kind, name: name.clone(), source })?
                .map(|m| m.metadata),
        };
        if let Some(m) = existing {
            if m.labels.as_ref().is_some_and(|l| is_ours(l, owner.0, owner.1)) {
                cached_rv = m.resource_version;
                if remembered.as_ref().is_some_and(|w| unchanged_since_write(w, &hash, cached_rv.as_deref())) {
                    return Ok(Ok(ChildApplied {
                        applied: Applied::Unchanged,
                        rewrite: known_rewrite(&remembered),
                        ..ChildApplied::default()
                    }));
                }
            } else if kind == "PersistentVolumeClaim" && super::claims::adoptable(&m, owner.0, owner.1) {
                // A claim released from this app's volume of the same name: take it back.
                cached_rv = super::claims::adopt(api, &m).await?;
                adopted = true;
            } else {
                return Ok(Err(Foreign { kind, name }));
            }
        }
    }
    if let Some(current) = &cached {
        if current.owner() != Some(owner) {
            return Ok(Err(Foreign { kind, name }));
        }
        if remembered.as_ref().is_some_and(|w| unchanged_since_write(w, &hash, cached_rv.as_deref())) {
            return Ok(Ok(ChildApplied {
                applied: Applied::Unchanged,
                rewrite: known_rewrite(&remembered),
                ..ChildApplied::default()
            }));
        }
        let have = current.to_json().map_err(|e| Error::Cached(kind, e))?;
        match first_difference(&C::comparable(want.clone()), &have) {
            None => {
                remember(memo, app_key, memo_key, Written { hash, before: None, after: cached_rv, rewrite: None });
                return Ok(Ok(ChildApplied::default()));
            }
            Some(path) => tracing::debug!(kind, name, path, "child differs from the desired state"),
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let stored = api.patch(&name, &params, &Patch::Apply(&desired)).await.map_err(|source| Error::Apply {
        kind,
        name: name.clone(),
        source,
    })?;
    let after = stored.resource_version();
    let namespace = stored.namespace();
    let stored = serde_json::to_value(&stored).map_err(|e| Error::Serialize(kind, e))?;
    let rewrite_path = first_difference(&want, &stored);
    let applied = match (&cached_rv, &after) {
        (None, _) => Applied::Created,
        // The server found nothing to change: not a write.
        (Some(before), Some(after)) if before == after => Applied::Unchanged,
        _ => Applied::Updated,
    };
    let new_rewrite = rewrite_path.is_some() && known_rewrite(&remembered).map(|r| r.path) != rewrite_path;
    if let Some(path) = &rewrite_path {
        tracing::info!(kind, name, path, "the API server stores another value than the operator applied; keeping it");
    }
    if applied != Applied::Unchanged
        && let Some(rv) = after.as_deref()
    {
        // What the watch has delivered of this child by now (it may have overtaken this reply).
        let seen = store.get(&key).and_then(|c| c.resource_version());
        echoes.expect(kind, namespace.as_deref(), &name, rv, seen.as_deref());
    }
    remember(memo, app_key, memo_key, Written { hash, before: cached_rv, after, rewrite: rewrite_path.clone() });
    Ok(Ok(ChildApplied {
        applied,
        rewrite: rewrite_path.map(|path| Rewrite { kind, name: name.clone(), path }),
        new_rewrite,
        adopted,
    }))
}

fn remember(memo: &Memo, app: AppKey, child: ChildKey, w: Written) {
    if let Ok(mut m) = memo.lock() {
        m.entry(app).or_default().insert(child, w);
    }
}

/// Forgets what was remembered of an app's writes (it is being deleted).
pub fn forget(memo: &Memo, namespace: &str, name: &str) {
    if let Ok(mut m) = memo.lock() {
        m.remove(&(namespace.to_owned(), name.to_owned()));
    }
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
/// controller owner reference, or for cluster-scoped children the owner-UID annotation).
pub fn prunable<C: Cached>(o: &C, owner: Owner<'_>, namespaced: bool) -> bool {
    if o.owner() != Some((owner.namespace, owner.name)) || o.meta().deletion_timestamp.is_some() {
        return false;
    }
    if namespaced && o.meta().namespace.as_deref() != Some(owner.namespace) {
        return false;
    }
    let Some(uid) = owner.uid else { return true };
    // Claims to retain are tied to the app by the owner-UID annotation, as cluster-scoped
    // children are (garbage collection would delete them with an owner reference).
    let annotated = o.owner_uid() == Some(uid);
    if namespaced {
        annotated || o.owner_references().iter().any(|r| r.controller == Some(true) && r.uid == uid)
    } else {
        annotated
    }
}

/// Deletes every object of the app among `cached` (its cached children of the kind, or any
/// superset) whose name is not in `keep`, each with a UID precondition (never a same-named
/// successor). Returns the names deleted.
pub async fn prune<K>(
    api_for: impl Fn(Option<&str>) -> Api<K>,
    cached: Vec<std::sync::Arc<K>>,
    kind: &'static str,
    owner: Owner<'_>,
    namespaced: bool,
    keep: &BTreeSet<String>,
) -> Result<Vec<String>>
where
    K: Cached + DeserializeOwned,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    let stale: Vec<_> = cached
        .into_iter()
        .filter(|o| prunable(o.as_ref(), owner, namespaced) && !keep.contains(&o.name_any()))
        .collect();
    let mut deleted = Vec::new();
    for o in &stale {
        let name = o.name_any();
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: o.uid(), resource_version: None }),
            ..DeleteParams::background()
        };
        match api_for(o.namespace().as_deref()).delete(&name, &dp).await {
            Ok(_) => deleted.push(name),
            // Gone already, or replaced by an object with another UID: not ours to delete.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(source) => return Err(Error::Delete { kind, name, source }),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_event_of_the_written_version_is_an_echo() {
        let e = Echoes::default();
        e.expect("Service", Some("shop"), "web", "7", Some("3"));
        // Another object, or the same name of another kind or namespace: not an echo.
        assert!(!e.is_echo("Service", Some("shop"), "api", Some("7")));
        assert!(!e.is_echo("ConfigMap", Some("shop"), "web", Some("7")));
        assert!(!e.is_echo("Service", Some("bank"), "web", Some("7")));
        assert!(e.is_echo("Service", Some("shop"), "web", Some("7")));
        // Once: the same version again (a relist) and any later one are news.
        assert!(!e.is_echo("Service", Some("shop"), "web", Some("7")));
        e.expect("Service", Some("shop"), "web", "9", None);
        assert!(!e.is_echo("Service", Some("shop"), "web", Some("8")), "someone else's change came first");
        assert!(!e.is_echo("Service", Some("shop"), "web", Some("9")), "the entry went with the first event");
        assert!(e.is_empty());
    }

    #[test]
    fn a_write_the_watch_has_delivered_already_is_not_awaited() {
        let e = Echoes::default();
        e.expect("Deployment", Some("shop"), "web", "7", Some("7"));
        assert!(e.is_empty());
        e.expect("ClusterRole", None, "winapp-shop-web", "5", None);
        assert_eq!(e.len(), 1);
        e.forget("ClusterRole", None, "winapp-shop-web");
        assert!(e.is_empty());
    }

    #[test]
    fn quantities_compare_by_value() {
        for (a, b) in [
            ("0.5", "500m"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1.5Gi"),
            ("1000", "1k"),
            ("1e3", "1k"),
            ("2", "2000m"),
            ("0", "0m"),
            ("100Gi", "100Gi"),
        ] {
            assert!(same_quantity(a, b), "{a} = {b}");
        }
        for (a, b) in [("1Gi", "1G"), ("500m", "0.4"), ("1", "1m"), ("ten gigs", "10Gi"), ("1Ki", "1k")] {
            assert!(!same_quantity(a, b), "{a} != {b}");
        }
    }

    #[test]
    fn the_server_normalised_form_is_no_difference() {
        let want = json!({"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": ""}],
            "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}}}],
            "tolerations": [{"key": "os", "value": "", "operator": "Equal"}]}});
        let have = json!({"spec": {"containers": [{"name": "app", "env": [{"name": "A"}],
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}, "imagePullPolicy": "IfNotPresent"}],
            "tolerations": [{"key": "os", "operator": "Equal"}], "dnsPolicy": "ClusterFirst"}});
        assert_eq!(first_difference(&want, &have), None);
    }

    #[test]
    fn real_differences_are_found_with_their_path() {
        let want = json!({"spec": {"containers": [{"name": "app", "image": "a:1",
            "resources": {"limits": {"cpu": "1"}}}]}});
        let cases = [
            (
                json!({"spec": {"containers": [{"name": "app", "image": "a:2", "resources": {"limits": {"cpu": "1"}}}]}}),
                ".spec.containers[0].image",
            ),
            (
                json!({"spec": {"containers": [{"name": "app", "image": "a:1", "resources": {"limits": {"cpu": "900m"}}}]}}),
                ".spec.containers[0].resources.limits.cpu",
            ),
            (
                json!({"spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": "1"}}}]}}),
                ".spec.containers[0].image",
            ),
            (json!({"spec": {"containers": []}}), ".spec.containers"),
        ];
        for (have, path) in cases {
            assert_eq!(first_difference(&want, &have).as_deref(), Some(path), "{have}");
        }
        // Quantity semantics only where quantities live: an env value "1k" is not "1000".
        let want = json!({"env": [{"name": "N", "value": "1000"}]});
        let have = json!({"env": [{"name": "N", "value": "1k"}]});
        assert_eq!(first_difference(&want, &have).as_deref(), Some(".env[0].value"));
        // A non-empty value the server lacks is a difference.
        assert_eq!(first_difference(&json!({"a": "x"}), &json!({})).as_deref(), Some(".a"));
    }

    #[test]
    fn a_remembered_write_covers_the_versions_before_and_after_it() {
        let w = Written { hash: "h".into(), before: Some("1".into()), after: Some("2".into()), rewrite: None };
        assert!(unchanged_since_write(&w, "h", Some("1")), "the cache may lag behind our write");
        assert!(unchanged_since_write(&w, "h", Some("2")));
        assert!(!unchanged_since_write(&w, "h", Some("3")), "someone else wrote since");
        assert!(!unchanged_since_write(&w, "other", Some("2")), "the spec changed");
        assert!(!unchanged_since_write(&w, "h", None));
    }

    /// A small deterministic generator (xorshift), so that the properties below run on many
    /// generated cases without a dependency and fail reproducibly.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Spellings of `n` milli-units that the API server treats as the same quantity.
    fn spellings(milli: u64) -> Vec<String> {
        let mut out = vec![format!("{milli}m")];
        if milli.is_multiple_of(1000) {
            let units = milli / 1000;
            out.push(units.to_string());
            out.push(format!("{units}.0"));
            if units.is_multiple_of(1000) {
                out.push(format!("{}k", units / 1000));
                out.push(format!("{}e3", units / 1000));
            }
            for (suffix, pow) in [("Ki", 10), ("Mi", 20), ("Gi", 30)] {
                if units.is_multiple_of(1 << pow) {
                    out.push(format!("{}{suffix}", units >> pow));
                }
            }
        } else {
            let units = milli / 1000;
            let frac = format!("{:03}", milli % 1000);
            out.push(format!("{units}.{}", frac.trim_end_matches('0')));
        }
        out
    }

    #[test]
    fn property_every_spelling_of_a_quantity_is_the_same_and_another_value_differs() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5000 {
            let milli = match g.below(3) {
                0 => g.below(100_000),
                1 => (g.below(4096) + 1) * 1000 * (1 << (10 * g.below(4))),
                _ => (g.below(999) + 1) * 1_000_000,
            };
            let forms = spellings(milli);
            for a in &forms {
                for b in &forms {
                    assert!(same_quantity(a, b), "{a} = {b} ({milli}m)");
                }
            }
            let other = milli + g.below(999) + 1;
            assert!(!same_quantity(&forms[0], &format!("{other}m")), "{milli}m != {other}m");
        }
    }

    /// A random object tree with empty values sprinkled in.
    fn tree(g: &mut Gen, depth: u32) -> Value {
        let n = g.below(4) + 1;
        let mut m = serde_json::Map::new();
        for i in 0..n {
            let key = format!("k{i}");
            let v = match (g.below(7), depth) {
                (0, _) => json!(""),
                (1, _) => json!([]),
                (2, _) => json!(null),
                (3, _) => json!(false),
                (4, d) if d > 0 => tree(g, d - 1),
                (5, d) if d > 0 => json!([tree(g, d - 1), tree(g, d - 1)]),
                _ => json!(format!("v{}", g.below(1000))),
            };
            m.insert(key, v);
        }
        Value::Object(m)
    }

    /// What the API server stores for `v`: empty values dropped (Go's omitempty), plus a
    /// defaulted field of its own in every object.
    fn stored(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut out: serde_json::Map<String, Value> =
                    m.iter().filter(|(_, x)| !is_empty_value(x)).map(|(k, x)| (k.clone(), stored(x))).collect();
                out.insert("zDefaulted".into(), json!("by the server"));
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(stored).collect()),
            other => other.clone(),
        }
    }

    /// Changes one non-empty string leaf; returns false when there is none.
    fn mutate(v: &mut Value, g: &mut Gen) -> bool {
        match v {
            Value::String(s) if !s.is_empty() => {
                s.push('!');
                true
            }
            Value::Object(m) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let start = g.below(keys.len().max(1) as u64) as usize;
                (0..keys.len()).any(|i| m.get_mut(&keys[(start + i) % keys.len()]).is_some_and(|x| mutate(x, g)))
            }
            Value::Array(a) => a.iter_mut().any(|x| mutate(x, g)),
            _ => false,
        }
    }

    #[test]
    fn property_the_stored_form_of_any_object_is_no_difference_and_a_real_change_is() {
        let mut g = Gen(0x2545_f491_4f6c_dd1d);
        for _ in 0..3000 {
            let want = tree(&mut g, 3);
            let have = stored(&want);
            assert_eq!(first_difference(&want, &have), None, "{want} vs {have}");
            let mut changed = want.clone();
            if mutate(&mut changed, &mut g) {
                assert!(first_difference(&changed, &have).is_some(), "{changed} vs {have}");
            }
        }
    }
}
