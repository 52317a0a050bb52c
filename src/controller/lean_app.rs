//! The cached form of a WindowsApp ([`Watched`]), as the children's are ([`super::lean`]): the
//! few metadata fields that the caches and the queue read as a struct, what the triggers ask of
//! every app (a signature of what may change what is applied, the credspec and the Secrets it
//! names), and the object itself as compressed JSON, decoded when the app is reconciled.
//!
//! A decoded WindowsApp costs about 6.7 KB of heap (every optional field of its spec, its
//! conditions, its metadata maps); this form about a third of that (tests/memory_per_app.rs).
//! An app that does not decode is kept too, with why, so that one malformed object neither
//! stops the watch nor strands its deletion (as kube's `DeserializeGuard` did).

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::error_boundary::InvalidObject;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::api::WindowsApp;

/// What the app's triggers read: the credspec it names, the Secrets it references (config files
/// and SMB volumes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Refs {
    credential_spec: Option<Box<str>>,
    secrets: Box<[Box<str>]>,
}

/// A cached WindowsApp (see the module docs).
#[derive(Clone)]
pub struct Watched {
    /// Name, namespace, uid, resourceVersion, generation and deletion only.
    metadata: ObjectMeta,
    signature: u64,
    refs: Option<Box<Refs>>,
    /// Why the object does not decode as a WindowsApp, when it does not.
    invalid: Option<Box<str>>,
    /// The object's JSON (less managedFields and kubectl's last-applied copy), LZ4-compressed.
    body: Box<[u8]>,
}

impl fmt::Debug for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("metadata", &self.metadata)
            .field("invalid", &self.invalid)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Resource for Watched {
    type DynamicType = ();
    type Scope = <WindowsApp as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        WindowsApp::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        WindowsApp::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        WindowsApp::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        WindowsApp::plural(dt)
    }

    /// Name, namespace, uid, resourceVersion, generation and deletion only (see [`Watched`]).
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Pure: hash of what may change what the operator applies: generation (the spec), labels and
/// annotations (propagated to the children), finalizers and deletion. A status write changes
/// none of these and triggers nothing.
pub fn meta_signature(m: &ObjectMeta) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (m.generation, &m.labels, &m.annotations, &m.finalizers, m.deletion_timestamp.is_some(), &m.uid).hash(&mut h);
    h.finish()
}

/// The credspec and the Secrets an app names.
fn refs(app: &WindowsApp) -> Option<Box<Refs>> {
    let spec = &app.spec;
    let config = spec.config.iter().flat_map(|c| &c.files).filter_map(|f| f.secret_ref.as_ref()).map(|r| &r.name);
    let smb = spec.volumes.iter().filter_map(|v| v.smb.as_ref()).map(|s| &s.secret_ref.name);
    let mut secrets: Vec<Box<str>> = config.chain(smb).map(|n| n.as_str().into()).collect();
    secrets.sort();
    secrets.dedup();
    let credential_spec = spec.gmsa.as_ref().and_then(|g| g.credential_spec_name.as_deref()).map(Into::into);
    let refs = Refs { credential_spec, secrets: secrets.into_boxed_slice() };
    (refs != Refs::default()).then(|| Box::new(refs))
}

impl Watched {
    /// The cached form of the object `value` (as the API server serves it).
    pub fn from_value(mut value: Value) -> serde_json::Result<Watched> {
        if !value.is_object() {
            return Err(serde::de::Error::custom("a WindowsApp is a JSON object"));
        }
        if let Some(Value::Object(m)) = value.get_mut("metadata") {
            m.remove("managedFields");
            if let Some(Value::Object(a)) = m.get_mut("annotations") {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        }
        let mut metadata: ObjectMeta = match value.get("metadata") {
            Some(m) => ObjectMeta::deserialize(m)?,
            None => ObjectMeta::default(),
        };
        let (refs, invalid) = match WindowsApp::deserialize(&value) {
            Ok(app) => (refs(&app), None),
            Err(e) => (None, Some(e.to_string().into_boxed_str())),
        };
        let body = lz4_flex::block::compress_prepend_size(&serde_json::to_vec(&value)?).into_boxed_slice();
        let signature = meta_signature(&metadata);
        Ok(Watched { signature, metadata: super::lean::take_kept(&mut metadata), refs, invalid, body })
    }

    /// The cached form of `app` (tests, and anything that starts from a typed app).
    pub fn from_app(app: &WindowsApp) -> serde_json::Result<Watched> {
        Watched::from_value(serde_json::to_value(app)?)
    }

    /// The app, decoded; or, for an object that does not decode as one, why, with its metadata.
    pub fn app(&self) -> Result<WindowsApp, Box<InvalidObject>> {
        let invalid = |error: String| {
            let metadata = self.json().ok().and_then(|v| ObjectMeta::deserialize(v.get("metadata")?).ok());
            Box::new(InvalidObject { error, metadata: metadata.unwrap_or_else(|| self.metadata.clone()) })
        };
        if let Some(error) = &self.invalid {
            return Err(invalid(error.to_string()));
        }
        let json = lz4_flex::block::decompress_size_prepended(&self.body).map_err(|e| invalid(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| invalid(e.to_string()))
    }

    fn json(&self) -> serde_json::Result<Value> {
        let json = lz4_flex::block::decompress_size_prepended(&self.body).map_err(serde::de::Error::custom)?;
        serde_json::from_slice(&json)
    }

    /// The signature of what may change what is applied (see [`meta_signature`]).
    pub fn signature(&self) -> u64 {
        self.signature
    }

    /// Whether it decodes as a WindowsApp.
    pub fn is_valid(&self) -> bool {
        self.invalid.is_none()
    }

    /// The GMSACredentialSpec the app names, if any.
    pub fn credential_spec(&self) -> Option<&str> {
        self.refs.as_ref()?.credential_spec.as_deref()
    }

    /// Whether the app references the Secret `name` of its namespace (a config file's or an SMB
    /// volume's).
    pub fn references_secret(&self, name: &str) -> bool {
        self.refs.as_ref().is_some_and(|r| r.secrets.iter().any(|s| &**s == name))
    }

    /// Bytes of the compressed body.
    pub fn body_bytes(&self) -> usize {
        self.body.len()
    }
}

impl<'de> Deserialize<'de> for Watched {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Watched::from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app() -> Value {
        json!({
            "apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "7", "generation": 2,
                "labels": {"team": "web"}, "finalizers": ["winapp.dev/cleanup"],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "note": "x"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {
                "image": "registry.example.com/web:1-ltsc2022", "windows": {"version": "ltsc2022"},
                "gmsa": {"credentialSpecName": "webapp"},
                "config": {"mountPath": "C:\\app", "files": [{"name": "a.json", "secretRef": {"name": "db", "key": "a"}}]},
                "volumes": [{"name": "share", "mountPath": "D:\\", "smb": {"source": "\\\\fs\\share", "secretRef": {"name": "smb-creds"}}}]
            },
            "status": {"observedGeneration": 2, "conditions": []}
        })
    }

    #[test]
    fn the_cached_form_gives_back_the_app_and_what_its_triggers_read() {
        let w: Watched = serde_json::from_value(app()).expect("decodes");
        assert!(w.is_valid(), "{:?}", w.invalid);
        let decoded = w.app().expect("the app");
        let expected: WindowsApp = serde_json::from_value(app()).expect("typed");
        assert_eq!(decoded.spec, expected.spec);
        assert_eq!(decoded.status, expected.status);
        assert_eq!(decoded.metadata.labels, expected.metadata.labels);
        assert_eq!(decoded.metadata.finalizers, expected.metadata.finalizers);
        // What the operator never reads is dropped.
        assert_eq!(decoded.metadata.managed_fields, None);
        assert_eq!(decoded.metadata.annotations.map(|a| a.len()), Some(1));
        // The struct keeps what the queue and the caches read.
        assert_eq!((w.meta().name.as_deref(), w.meta().namespace.as_deref()), (Some("web"), Some("shop")));
        assert_eq!((w.meta().generation, w.meta().labels.as_ref()), (Some(2), None));
        assert_eq!(w.credential_spec(), Some("webapp"));
        assert!(w.references_secret("db") && w.references_secret("smb-creds") && !w.references_secret("web"));
        assert_eq!(Watched::from_app(&expected).expect("from typed").signature(), w.signature());
    }

    #[test]
    fn the_signature_moves_with_what_is_applied_not_with_the_status() {
        let sig = |v: Value| serde_json::from_value::<Watched>(v).expect("decodes").signature();
        let base = sig(app());
        let mut status = app();
        status["status"]["observedGeneration"] = json!(1);
        status["metadata"]["resourceVersion"] = json!("8");
        assert_eq!(sig(status), base, "a status write");
        for (field, value) in [("generation", json!(3)), ("labels", json!({"team": "api"})), ("finalizers", json!([]))]
        {
            let mut changed = app();
            changed["metadata"][field] = value;
            assert_ne!(sig(changed), base, "{field}");
        }
    }

    #[test]
    fn an_app_that_does_not_decode_is_kept_with_why_and_its_metadata() {
        let mut broken = app();
        broken["spec"]["replicas"] = json!("many");
        let w: Watched = serde_json::from_value(broken).expect("kept");
        assert!(!w.is_valid());
        let invalid = w.app().expect_err("not a WindowsApp");
        assert!(invalid.error.contains("many") || invalid.error.contains("invalid type"), "{}", invalid.error);
        assert_eq!(invalid.metadata.name.as_deref(), Some("web"));
        assert_eq!(invalid.metadata.finalizers, Some(vec!["winapp.dev/cleanup".to_owned()]));
        // Not even an object: an error of the watch, not a panic.
        assert!(serde_json::from_value::<Watched>(json!("web")).is_err());
    }
}
