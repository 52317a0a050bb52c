//! The cached form of a child: the metadata that the caches, the owner index, prune and the
//! echo check read all the time as a struct; everything else as compact JSON.
//!
//! A k8s-openapi object is much bigger in memory than its JSON: every optional field of a
//! `DeploymentSpec`, a `PodSpec` or a `ServiceSpec` takes its room whether it is set or not, and
//! a label or annotation map costs a B-tree node of about half a kilobyte even for one entry. The
//! caches hold one object per child, thousands of them. The operator reads a cached child's body
//! only to compare it with what it wants to apply (as JSON, see
//! [`super::apply::first_difference`]) and, for a workload or a claim, to read its status: both
//! are served from the JSON. Of the labels and annotations it reads only which app owns the
//! child, which is kept apart ([`Cached::owner`], [`Cached::owner_uid`]).
//!
//! Heaptrack over a restart at 1,000 apps put the caches at 21.9 MB of a 32.5 MB heap, most of
//! it the children's metadata maps and the inline size of their specs.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::DynamicObject;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::build::meta::{self, labelled_app};

/// Which app a child belongs to, by its labels, the owner-UID annotation of a cluster-scoped
/// child, and a hash of the UID its controller owner reference names (see [`uid_hash`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ownership {
    namespace: Box<str>,
    app: Box<str>,
    uid: Option<Box<str>>,
    controller_uid: Option<u64>,
}

/// A hash of a UID: what a cached child keeps of its controller's UID (8 bytes, not the 64 of a
/// string), enough to tell whether the controller is a given app.
pub fn uid_hash(uid: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut h);
    h.finish()
}

/// A cached `K`. `metadata` holds only what the caches, prune and the echo check read at every
/// turn (name, namespace, uid, resourceVersion, generation, deletion); the rest of the metadata
/// (labels, annotations, owner references, timestamps, finalizers) is in `body`, with every field
/// other than metadata, as one JSON object (`apiVersion` and `kind` are not kept: they are
/// `K`'s). managedFields and kubectl's last-applied copy are dropped.
pub struct Lean<K> {
    pub metadata: ObjectMeta,
    owner: Option<Box<Ownership>>,
    /// LZ4-compressed, with its length first: Kubernetes JSON repeats its keys, and a cached
    /// Deployment's 3.3 KB of it shrink to about a third.
    body: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Lean<K> {
    fn clone(&self) -> Self {
        Lean { metadata: self.metadata.clone(), owner: self.owner.clone(), body: self.body.clone(), kind: PhantomData }
    }
}

/// The metadata and the body's size: a ConfigMap's body is its files, which may hold what
/// does not belong in a log.
impl<K> fmt::Debug for Lean<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lean")
            .field("metadata", &self.metadata)
            .field("owner", &self.owner)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Lean<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    /// Without labels and annotations (see [`Lean`]).
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// kubectl's copy of the whole object, in an annotation: the operator never reads it.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether an object is a WindowsApp's: a controller owner reference to one, or (cluster-scoped
/// children, claims to retain) the owner-UID annotation. The managed-by label alone is not
/// enough: anyone who may create a ConfigMap may put it on one.
fn owned_by_an_app(metadata: &ObjectMeta, annotations: &std::collections::BTreeMap<String, String>) -> bool {
    let by_reference = metadata.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && r.kind == "WindowsApp"
            && r.api_version.split('/').next() == Some(crate::api::GROUP)
    });
    by_reference || annotations.contains_key(meta::OWNER_UID_ANNOTATION)
}

/// Replaces each value of a ConfigMap's `data` and `binaryData` by a digest of it: drift
/// detection compares digests (of what the operator would apply, made the same way, see
/// [`Cached::comparable`]), and the cache holds 70 bytes a file instead of the file.
fn digest_config_data(body: &mut Map<String, Value>) {
    use sha2::{Digest, Sha256};
    for field in ["data", "binaryData"] {
        if let Some(Value::Object(files)) = body.get_mut(field) {
            for value in files.values_mut() {
                if let Value::String(content) = value {
                    let hex: String = Sha256::digest(content.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
                    *value = Value::String(format!("sha256:{hex}"));
                }
            }
        }
    }
}

impl<K: Resource<DynamicType = ()>> Lean<K> {
    /// Splits an object's metadata and other fields into the cached form. An object that is not
    /// a WindowsApp's child keeps its metadata only: it costs the cache a few hundred bytes,
    /// whatever its size (a labelled ConfigMap of someone else's is never the operator's to
    /// compare or read).
    fn assemble(mut rest: ObjectMeta, mut body: Map<String, Value>) -> serde_json::Result<Self> {
        let metadata = take_kept(&mut rest);
        rest.managed_fields = None;
        let labels = rest.labels.take().unwrap_or_default();
        let mut annotations = rest.annotations.take().unwrap_or_default();
        annotations.remove(LAST_APPLIED);
        if !owned_by_an_app(&rest, &annotations) {
            return Ok(Lean { metadata, owner: None, body: Box::new([]), kind: PhantomData });
        }
        if K::kind(&()) == "ConfigMap" {
            digest_config_data(&mut body);
        }
        let controller_uid =
            rest.owner_references.iter().flatten().find(|r| r.controller == Some(true)).map(|r| uid_hash(&r.uid));
        let owner = labelled_app(&labels).map(|(namespace, app)| {
            Box::new(Ownership {
                namespace: namespace.into(),
                app: app.into(),
                uid: annotations.get(meta::OWNER_UID_ANNOTATION).map(|u| u.as_str().into()),
                controller_uid,
            })
        });
        rest.labels = (!labels.is_empty()).then_some(labels);
        rest.annotations = (!annotations.is_empty()).then_some(annotations);
        if rest != ObjectMeta::default() {
            body.insert("metadata".to_owned(), serde_json::to_value(&rest)?);
        }
        let body = lz4_flex::block::compress_prepend_size(&serde_json::to_vec(&body)?).into_boxed_slice();
        Ok(Lean { metadata, owner, body, kind: PhantomData })
    }
}

impl<K> Lean<K> {
    /// Bytes of the kept body (compressed; 0 for an object kept as metadata only).
    pub fn body_bytes(&self) -> usize {
        self.body.len()
    }

    /// The JSON of the fields other than metadata (`{}` for an object kept as metadata only).
    fn body_json(&self) -> serde_json::Result<Vec<u8>> {
        if self.body.is_empty() {
            return Ok(b"{}".to_vec());
        }
        lz4_flex::block::decompress_size_prepended(&self.body).map_err(serde::de::Error::custom)
    }
}

impl<K: Resource<DynamicType = ()>> Lean<K> {
    /// The object as the API server returned it (less managedFields and kubectl's
    /// last-applied annotation), in JSON, for comparing with what the operator applies.
    pub fn to_json(&self) -> serde_json::Result<Value> {
        let mut map: Map<String, Value> = serde_json::from_slice(&self.body_json()?)?;
        let mut metadata = serde_json::to_value(&self.metadata)?;
        if let (Some(Value::Object(maps)), Value::Object(m)) = (map.remove("metadata"), &mut metadata) {
            m.extend(maps);
        }
        map.insert("apiVersion".to_owned(), Value::String(K::api_version(&()).into_owned()));
        map.insert("kind".to_owned(), Value::String(K::kind(&()).into_owned()));
        map.insert("metadata".to_owned(), metadata);
        Ok(Value::Object(map))
    }
}

impl<K: Resource<DynamicType = ()> + DeserializeOwned> Lean<K> {
    /// The object as its k8s-openapi type, labels and annotations included, for reading its
    /// status.
    pub fn typed(&self) -> serde_json::Result<K> {
        let mut object: K = serde_json::from_slice(&self.body_json()?)?;
        put_kept(object.meta_mut(), &self.metadata);
        Ok(object)
    }
}

/// The metadata fields a cached object (a child, or a WindowsApp) keeps as a struct, taken out
/// of `m`; the rest lives in its compressed body. [`put_kept`] is its inverse: the two lists must
/// stay the same.
pub(super) fn take_kept(m: &mut ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: m.name.take(),
        namespace: m.namespace.take(),
        uid: m.uid.take(),
        resource_version: m.resource_version.take(),
        generation: m.generation.take(),
        deletion_timestamp: m.deletion_timestamp.take(),
        // Held inline: as JSON it would cost more.
        creation_timestamp: m.creation_timestamp.take(),
        ..ObjectMeta::default()
    }
}

/// Puts the fields of [`take_kept`] back into metadata decoded from the body.
fn put_kept(m: &mut ObjectMeta, kept: &ObjectMeta) {
    m.name.clone_from(&kept.name);
    m.namespace.clone_from(&kept.namespace);
    m.uid.clone_from(&kept.uid);
    m.resource_version.clone_from(&kept.resource_version);
    m.generation = kept.generation;
    m.deletion_timestamp.clone_from(&kept.deletion_timestamp);
    m.creation_timestamp.clone_from(&kept.creation_timestamp);
}

impl<K: Resource<DynamicType = ()> + Serialize> Lean<K> {
    /// The cached form of `object` (tests, and anything that starts from a typed object).
    pub fn from_typed(object: &K) -> serde_json::Result<Self> {
        let Value::Object(mut map) = serde_json::to_value(object)? else {
            return Err(serde::de::Error::custom("a Kubernetes object serializes as a JSON object"));
        };
        let metadata = match map.remove("metadata") {
            Some(m) => serde_json::from_value(m)?,
            None => ObjectMeta::default(),
        };
        map.remove("apiVersion");
        map.remove("kind");
        Lean::assemble(metadata, map)
    }
}

impl<'de, K: Resource<DynamicType = ()>> Deserialize<'de> for Lean<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<K>(PhantomData<fn() -> K>);

        impl<'de, K: Resource<DynamicType = ()>> Visitor<'de> for Fields<K> {
            type Value = Lean<K>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kubernetes object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<Lean<K>, A::Error> {
                let mut metadata = None;
                let mut body = Map::new();
                while let Some(key) = fields.next_key::<String>()? {
                    match key.as_str() {
                        "metadata" => metadata = Some(fields.next_value::<ObjectMeta>()?),
                        "apiVersion" | "kind" => {
                            fields.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            let value = fields.next_value::<Value>()?;
                            body.insert(key, value);
                        }
                    }
                }
                Lean::assemble(metadata.unwrap_or_default(), body).map_err(serde::de::Error::custom)
            }
        }

        deserializer.deserialize_map(Fields(PhantomData))
    }
}

/// A cached child, as apply, prune and the owner index read it.
pub trait Cached: Resource + Clone + fmt::Debug + Send + Sync + 'static {
    /// The object in JSON, for comparing with what the operator applies.
    fn to_json(&self) -> serde_json::Result<Value>;
    /// The app (namespace, name) whose labels the object carries, with the operator's
    /// managed-by label (see [`meta::labelled_app`]).
    fn owner(&self) -> Option<(&str, &str)>;
    /// The owner-UID annotation that ties a cluster-scoped child (or a claim to retain) to its
    /// app.
    fn owner_uid(&self) -> Option<&str>;
    /// Whether its controller owner reference names the UID `uid`.
    fn controlled_by(&self, uid: &str) -> bool;
    /// What the operator would apply, in the form the cache keeps (see [`Lean`]'s ConfigMap
    /// digests), so that [`super::apply::first_difference`] compares like with like.
    fn comparable(want: Value) -> Value {
        want
    }
    /// Bytes of the body kept (for the cache metrics).
    fn body_bytes(&self) -> usize {
        0
    }
}

impl<K: Resource<DynamicType = ()> + Send + Sync + 'static> Cached for Lean<K> {
    fn to_json(&self) -> serde_json::Result<Value> {
        Lean::to_json(self)
    }

    fn body_bytes(&self) -> usize {
        self.body.len()
    }

    fn comparable(mut want: Value) -> Value {
        if K::kind(&()) == "ConfigMap"
            && let Value::Object(body) = &mut want
        {
            digest_config_data(body);
        }
        want
    }

    fn owner(&self) -> Option<(&str, &str)> {
        self.owner.as_ref().map(|o| (&*o.namespace, &*o.app))
    }

    fn owner_uid(&self) -> Option<&str> {
        self.owner.as_ref()?.uid.as_deref()
    }

    fn controlled_by(&self, uid: &str) -> bool {
        self.owner.as_ref().and_then(|o| o.controller_uid) == Some(uid_hash(uid))
    }
}

/// GMSACredentialSpecs (a CRD the operator has no type for) are cached as they come.
impl Cached for DynamicObject {
    fn to_json(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }

    fn owner(&self) -> Option<(&str, &str)> {
        labelled_app(self.metadata.labels.as_ref()?)
    }

    fn owner_uid(&self) -> Option<&str> {
        self.metadata.annotations.as_ref()?.get(meta::OWNER_UID_ANNOTATION).map(String::as_str)
    }

    fn controlled_by(&self, uid: &str) -> bool {
        self.metadata.owner_references.iter().flatten().any(|r| r.controller == Some(true) && r.uid == uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "shop", "resourceVersion": "7",
                "labels": {
                    "app": "web",
                    "app.kubernetes.io/managed-by": "winapp-operator",
                    "winapp.dev/app": "web",
                    "winapp.dev/namespace": "shop"
                },
                "annotations": {"winapp.dev/applied-hash": "abc", "winapp.dev/owner-uid": "u-1"}
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "iis:ltsc2022", "resources": {"requests": {"cpu": "500m"}}}]}
                }
            },
            "status": {"observedGeneration": 3, "availableReplicas": 1}
        })
    }

    #[test]
    fn the_cached_form_gives_back_the_object_it_was_made_from() {
        let lean: Lean<Deployment> = serde_json::from_value(deployment()).expect("decodes");
        assert_eq!(lean.metadata.name.as_deref(), Some("web"));
        // The maps went into the JSON; the ownership is read from the labels.
        assert!(lean.metadata.labels.is_none() && lean.metadata.annotations.is_none());
        assert_eq!(lean.owner(), Some(("shop", "web")));
        assert_eq!(lean.owner_uid(), Some("u-1"));
        assert_eq!(lean.to_json().expect("encodes"), deployment());
        let typed = lean.typed().expect("typed");
        assert_eq!(typed.spec.replicas, Some(2));
        assert_eq!(typed.status.as_ref().and_then(|s| s.available_replicas), Some(1));
        assert_eq!(typed.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(typed.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("web"));
        assert_eq!(typed.metadata.annotations.as_ref().map(|a| a.len()), Some(2));
        // And from the typed object, the same again.
        let again = Lean::from_typed(&typed).expect("from typed");
        assert_eq!(again.to_json().expect("encodes"), deployment());
        assert_eq!(Lean::<Deployment>::kind(&()), "Deployment");
        assert_eq!(Lean::<Deployment>::url_path(&(), Some("shop")), Deployment::url_path(&(), Some("shop")));
    }

    #[test]
    fn what_the_operator_never_reads_is_dropped_and_foreign_objects_have_no_owner() {
        let mut d = deployment();
        d["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Apply"}]);
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json!("{...}");
        let lean: Lean<Deployment> = serde_json::from_value(d).expect("decodes");
        assert_eq!(lean.to_json().expect("encodes"), deployment());
        // Another manager's object, or one without the app labels: nobody's.
        for labels in [
            json!({"app.kubernetes.io/managed-by": "helm", "winapp.dev/app": "web", "winapp.dev/namespace": "shop"}),
            json!({"app.kubernetes.io/managed-by": "winapp-operator", "winapp.dev/app": "web"}),
            json!(null),
        ] {
            let mut d = deployment();
            d["metadata"]["labels"] = labels;
            let lean: Lean<Deployment> = serde_json::from_value(d).expect("decodes");
            assert_eq!((lean.owner(), lean.owner_uid()), (None, None));
        }
        // Owned by an app through its owner reference, without labels or annotations: it
        // round-trips too.
        let mut bare = deployment();
        let m = bare["metadata"].as_object_mut().expect("metadata");
        m.remove("labels");
        m.remove("annotations");
        m.insert(
            "ownerReferences".into(),
            json!([{"apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp", "name": "web", "uid": "u-1", "controller": true}]),
        );
        let lean: Lean<Deployment> = serde_json::from_value(bare.clone()).expect("decodes");
        assert_eq!(lean.to_json().expect("encodes"), bare);
    }

    #[test]
    fn an_object_no_app_owns_is_kept_as_metadata_only_whatever_its_labels_say() {
        // Labelled as the operator's, but neither an owner reference to a WindowsApp nor the
        // owner-UID annotation: anyone may create such a ConfigMap, of any size.
        let big = "x".repeat(900 * 1024);
        let planted = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": "shop", "resourceVersion": "3",
                "labels": {"app.kubernetes.io/managed-by": "winapp-operator", "winapp.dev/app": "web", "winapp.dev/namespace": "shop"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-1", "controller": true}]},
            "data": {"Web.config": big}
        });
        let lean: Lean<ConfigMap> = serde_json::from_value(planted).expect("decodes");
        assert!(lean.body.is_empty(), "{} bytes of body kept", lean.body.len());
        assert_eq!((lean.owner(), lean.owner_uid()), (None, None), "nobody's child: never pruned, never applied over");
        assert_eq!(lean.metadata.resource_version.as_deref(), Some("3"));
        assert_eq!(lean.to_json().expect("encodes")["data"], Value::Null);
    }

    #[test]
    fn a_config_map_of_an_app_keeps_digests_of_its_files_and_compares_as_applied() {
        let file = "<configuration>".repeat(1000);
        let cm = |content: &str| {
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "web-config", "namespace": "shop",
                    "labels": {"app.kubernetes.io/managed-by": "winapp-operator", "winapp.dev/app": "web", "winapp.dev/namespace": "shop"},
                    "ownerReferences": [{"apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp", "name": "web", "uid": "u-1", "controller": true}]},
                "data": {"Web.config": content}
            })
        };
        let lean: Lean<ConfigMap> = serde_json::from_value(cm(&file)).expect("decodes");
        assert!(lean.body.len() < 400, "{} bytes kept for a {} byte file", lean.body.len(), file.len());
        let have = lean.to_json().expect("encodes");
        let want = <Lean<ConfigMap> as Cached>::comparable(cm(&file));
        assert_eq!(crate::controller::diff::first_difference(&want, &have), None);
        let edited = <Lean<ConfigMap> as Cached>::comparable(cm(&format!("{file} ")));
        assert_eq!(crate::controller::diff::first_difference(&edited, &have).as_deref(), Some(".data.Web.config"));
        // Other kinds compare as they are.
        assert_eq!(<Lean<Deployment> as Cached>::comparable(cm("a")), cm("a"));
    }

    #[test]
    fn the_body_is_kept_compressed_and_a_damaged_one_is_an_error() {
        let lean: Lean<Deployment> = serde_json::from_value(deployment()).expect("decodes");
        let json = lean.body_json().expect("decompresses").len();
        assert!(lean.body.len() < json, "{} compressed bytes for {json} of JSON", lean.body.len());
        let damaged = Lean::<Deployment> { body: vec![200, 0, 0, 0, 1, 2].into_boxed_slice(), ..lean };
        assert!(damaged.to_json().is_err() && damaged.typed().is_err());
    }

    #[test]
    fn a_watch_event_and_a_list_decode_into_the_cached_form() {
        let event = json!({"type": "MODIFIED", "object": deployment()}).to_string();
        let event: kube::core::WatchEvent<Lean<Deployment>> = serde_json::from_str(&event).expect("watch event");
        let kube::core::WatchEvent::Modified(lean) = event else { panic!("a MODIFIED event") };
        assert_eq!(lean.to_json().expect("encodes"), deployment());
        let list = json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "9"}, "items": [deployment()]});
        let list: kube::core::ObjectList<Lean<Deployment>> = serde_json::from_value(list).expect("list");
        assert_eq!(list.items.len(), 1);
        // Not an object at all: an error, not a panic.
        assert!(serde_json::from_value::<Lean<Deployment>>(json!("web")).is_err());
    }
}
