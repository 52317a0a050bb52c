//! The WindowsApp CRD's structural schema, applied offline as the API server applies it on create,
//! so that `render` refuses what `kubectl apply` would be refused: types, required fields, enums,
//! ranges, lengths, patterns, item and property counts, formats, list-map keys, unknown fields
//! (strict field validation; `x-kubernetes-preserve-unknown-fields` and embedded resources
//! respected), `metadata` as ObjectMeta, and the CEL `x-kubernetes-validations` rules (transition
//! rules skipped: there is no old object).
//!
//! The schema is the one `winapp-operator crd` prints, produced from the code ([`WindowsApp::crd`]),
//! never read from the YAML file. Like the API server, fields set to `null` whose schema is not
//! nullable count as absent ([`normalize`]), and CEL rules are checked only when the rest passed.

pub mod cel;
mod compile;
mod error;
pub mod meta;
mod stored;
mod values;
mod walk;

use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::api::WindowsApp;
use compile::Node;
pub use error::{FieldPath, Problem, SchemaError, Step, closest};
pub use stored::{SchemaErrors, check_stored};
#[cfg(test)]
use walk::check_node;
use walk::{Mode, check_object_like, check_rules, normalize_with};

/// The compiled schema of `WindowsApp` (from the code, once).
fn root() -> Result<&'static Node, &'static str> {
    static ROOT: OnceLock<Result<Node, String>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let crd = serde_json::to_value(WindowsApp::crd()).map_err(|e| e.to_string())?;
        let versions = crd.pointer("/spec/versions").and_then(Value::as_array).ok_or("the CRD has no versions")?;
        let version = versions
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(crate::api::VERSION))
            .ok_or("the CRD does not serve this version")?;
        let schema = version.pointer("/schema/openAPIV3Schema").ok_or("the CRD version has no schema")?;
        compile::compile(schema, "")
    })
    .as_ref()
    .map_err(String::as_str)
}

/// Compiles the schema now: a test calls it so that a schema feature the checker lacks fails the
/// build's tests rather than a user's render.
pub fn self_check() -> Result<(), String> {
    root().map(|_| ()).map_err(str::to_owned)
}

/// Checks one WindowsApp document (as JSON) against the CRD: every error found, in document
/// order of the fields.
pub fn check(doc: &Value) -> Result<(), Vec<SchemaError>> {
    let root = match root() {
        Ok(r) => r,
        Err(e) => {
            return Err(vec![SchemaError::new(
                FieldPath::default(),
                Problem::Metadata(format!("the CRD schema cannot be checked ({e}); report this bug")),
            )]);
        }
    };
    let mut doc = doc.clone();
    normalize_with(root, &mut doc);
    let mut errors = Vec::new();
    check_object_like(root, &doc, &FieldPath::default(), &mut errors, Mode::Full, true);
    if errors.is_empty() {
        let mut root_view = doc.clone();
        if let Some(o) = root_view.as_object_mut() {
            o.insert("metadata".into(), meta::cel_view(doc.get("metadata")));
        }
        check_rules(root, &root_view, &FieldPath::default(), &mut errors, true);
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// What the API server stores of a document it accepts on create: `status` is dropped (it has its
/// own subresource), fields set to `null` whose schema is not nullable are dropped, and `default`s
/// of absent fields are filled in.
pub fn normalize(doc: &mut Value) {
    if let Some(o) = doc.as_object_mut() {
        o.remove("status");
    }
    if let Ok(root) = root() {
        normalize_with(root, doc);
    }
}

#[cfg(test)]
mod tests;
