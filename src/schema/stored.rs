//! The schema check of a WindowsApp the operator read from the API server: the same [`check`] that
//! `render` runs on a document, on what a user would submit to create the object as it is stored.
//!
//! The API server checks an object against the CRD only when it is written; one stored while the CRD
//! was looser (an older version of the operator's CRD, a hand-edited one) reaches the operator
//! unchecked. The operator checks it again before it applies anything, so that render and the
//! operator refuse the same apps.
//!
//! What is checked is the decoded app serialised again: `apiVersion`, `kind`, `spec`, and the
//! metadata a user writes (name, generateName, namespace, labels, annotations). The rest of the
//! metadata is the API server's own (uid, resourceVersion, timestamps, managedFields, owner
//! references, finalizers), checked by it whatever the CRD says; `status` is the operator's, and the
//! API server drops it on create. Fields unknown to the operator's types are lost in decoding, as
//! the API server prunes them under a CRD that does not declare them. Transition rules stay
//! skipped, as [`check`] skips them.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};
use thiserror::Error;

use super::{FieldPath, Problem, SchemaError, check};
use crate::api::{GROUP, VERSION, WindowsApp};

/// Every way a stored WindowsApp breaks the CRD's schema, each naming its field and what to do.
#[derive(Debug, Clone, PartialEq, Error)]
pub struct SchemaErrors(pub Vec<SchemaError>);

impl fmt::Display for SchemaErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

/// Checks a WindowsApp as read from the API server against the CRD's schema and CEL rules, as
/// `render` checks a document (see the module's documentation for what is left out).
pub fn check_stored(app: &WindowsApp) -> Result<(), SchemaErrors> {
    check(&as_submitted(app)?).map_err(SchemaErrors)
}

/// The app as a user would submit it to create it as it is stored.
fn as_submitted(app: &WindowsApp) -> Result<Value, SchemaErrors> {
    let m = &app.metadata;
    let metadata = ObjectMeta {
        name: m.name.clone(),
        generate_name: m.generate_name.clone(),
        namespace: m.namespace.clone(),
        labels: m.labels.clone(),
        annotations: m.annotations.clone(),
        ..ObjectMeta::default()
    };
    let json = |part: &str, value: Result<Value, serde_json::Error>| {
        value.map_err(|e| {
            SchemaErrors(vec![SchemaError::new(
                FieldPath::default().join(part),
                Problem::Metadata(format!("cannot be written as JSON to be checked ({e}); report this bug")),
            )])
        })
    };
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), Value::String(format!("{GROUP}/{VERSION}")));
    doc.insert("kind".into(), Value::String("WindowsApp".into()));
    doc.insert("metadata".into(), json("metadata", serde_json::to_value(metadata))?);
    doc.insert("spec".into(), json("spec", serde_json::to_value(&app.spec))?);
    Ok(Value::Object(doc))
}
