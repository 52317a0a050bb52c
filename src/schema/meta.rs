//! `metadata` as the API server checks it for a custom resource: the fields of ObjectMeta only
//! (strict decoding), their types, and the syntax of the name, namespace, labels, annotations and
//! finalizers (`ValidateObjectMeta`).

use serde_json::Value;

#[cfg(test)]
use super::Step;
use super::{FieldPath, Problem, SchemaError, closest};

/// Fields of ObjectMeta.
pub const FIELDS: &[&str] = &[
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

const OWNER_REFERENCE_FIELDS: &[&str] = &["apiVersion", "blockOwnerDeletion", "controller", "kind", "name", "uid"];

/// Total size of the annotations' keys and values (`TotalAnnotationSizeLimitB`).
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

pub fn check(value: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>) {
    let Some(meta) = value.as_object() else {
        if !value.is_null() {
            errors.push(SchemaError::new(path.clone(), Problem::wrong_type("an object", value)));
        }
        return;
    };
    for (key, v) in meta {
        let here = path.join(key);
        if !FIELDS.contains(&key.as_str()) {
            errors.push(SchemaError::new(
                here,
                Problem::UnknownField {
                    suggestion: closest(key, FIELDS.iter().copied()),
                    known: FIELDS.iter().map(|s| (*s).to_owned()).collect(),
                },
            ));
            continue;
        }
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "name" | "generateName" | "namespace" | "selfLink" | "uid" | "resourceVersion" | "creationTimestamp"
            | "deletionTimestamp" => {
                let Some(s) = v.as_str() else {
                    errors.push(SchemaError::new(here, Problem::wrong_type("a string", v)));
                    continue;
                };
                if key == "namespace" && !is_dns1123_label(s) {
                    errors.push(SchemaError::new(
                        here.clone(),
                        Problem::Metadata(format!(
                            "{s:?} is not a valid namespace name (a DNS label: at most 63 lower-case letters, digits and '-'); fix it"
                        )),
                    ));
                }
            }
            "generation" | "deletionGracePeriodSeconds" if v.as_i64().is_none() => {
                errors.push(SchemaError::new(here, Problem::wrong_type("an integer", v)));
            }
            "labels" => check_labels(v, &here, errors),
            "annotations" => check_annotations(v, &here, errors),
            "finalizers" => check_strings(v, &here, errors, |s| {
                (!is_qualified_name(s)).then(|| {
                    format!(
                        "{s:?} is not a valid finalizer name (a qualified name such as example.com/cleanup); fix it"
                    )
                })
            }),
            "ownerReferences" => check_owner_references(v, &here, errors),
            "managedFields" if !v.is_array() => {
                errors.push(SchemaError::new(here, Problem::wrong_type("a list", v)));
            }
            _ => {}
        }
    }
}

fn check_strings(v: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>, each: impl Fn(&str) -> Option<String>) {
    let Some(items) = v.as_array() else {
        errors.push(SchemaError::new(path.clone(), Problem::wrong_type("a list", v)));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let here = path.index(i);
        match item.as_str() {
            Some(s) => {
                if let Some(m) = each(s) {
                    errors.push(SchemaError::new(here, Problem::Metadata(m)));
                }
            }
            None => errors.push(SchemaError::new(here, Problem::wrong_type("a string", item))),
        }
    }
}

fn check_owner_references(v: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>) {
    let Some(items) = v.as_array() else {
        errors.push(SchemaError::new(path.clone(), Problem::wrong_type("a list", v)));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let here = path.index(i);
        let Some(o) = item.as_object() else {
            errors.push(SchemaError::new(here, Problem::wrong_type("an object", item)));
            continue;
        };
        for (k, fv) in o {
            if !OWNER_REFERENCE_FIELDS.contains(&k.as_str()) {
                errors.push(SchemaError::new(
                    here.join(k),
                    Problem::UnknownField {
                        suggestion: closest(k, OWNER_REFERENCE_FIELDS.iter().copied()),
                        known: OWNER_REFERENCE_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
                    },
                ));
            } else if fv.is_null() {
            } else if matches!(k.as_str(), "controller" | "blockOwnerDeletion") {
                if !fv.is_boolean() {
                    errors.push(SchemaError::new(here.join(k), Problem::wrong_type("a boolean (true or false)", fv)));
                }
            } else if !fv.is_string() {
                errors.push(SchemaError::new(here.join(k), Problem::wrong_type("a string", fv)));
            }
        }
        for required in ["apiVersion", "kind", "name", "uid"] {
            if o.get(required).and_then(Value::as_str).is_none_or(str::is_empty) {
                errors.push(SchemaError::new(here.join(required), Problem::Required));
            }
        }
    }
}

fn check_labels(v: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>) {
    let Some(map) = v.as_object() else {
        errors.push(SchemaError::new(path.clone(), Problem::wrong_type("a map of strings", v)));
        return;
    };
    for (k, val) in map {
        let here = path.join(k);
        if !is_qualified_name(k) {
            errors.push(SchemaError::new(
                here.clone(),
                Problem::MetadataKey(format!(
                    "{k:?} is not a valid label key (an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit); rename it"
                )),
            ));
        }
        match val {
            Value::String(s) => {
                if !is_label_value(s) {
                    errors.push(SchemaError::new(
                        here,
                        Problem::Metadata(format!(
                            "{s:?} is not a valid label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit); change it, or use an annotation for free text"
                        )),
                    ));
                }
            }
            Value::Null => {}
            other => errors.push(SchemaError::new(here, Problem::wrong_type("a string", other))),
        }
    }
}

fn check_annotations(v: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>) {
    let Some(map) = v.as_object() else {
        errors.push(SchemaError::new(path.clone(), Problem::wrong_type("a map of strings", v)));
        return;
    };
    let mut total = 0;
    for (k, val) in map {
        let here = path.join(k);
        total += k.len();
        if !is_qualified_name(&k.to_ascii_lowercase()) {
            errors.push(SchemaError::new(
                here.clone(),
                Problem::MetadataKey(format!(
                    "{k:?} is not a valid annotation key (an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'); rename it"
                )),
            ));
        }
        match val {
            Value::String(s) => total += s.len(),
            Value::Null => {}
            other => errors.push(SchemaError::new(here, Problem::wrong_type("a string", other))),
        }
    }
    if total > MAX_ANNOTATIONS_BYTES {
        errors.push(SchemaError::new(
            path.clone(),
            Problem::Metadata(format!(
                "the annotations take {total} bytes, more than the {MAX_ANNOTATIONS_BYTES} bytes allowed; move large data into a ConfigMap"
            )),
        ));
    }
}

/// `IsQualifiedName`: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if prefix.is_some_and(|p| !is_dns1123_subdomain(p)) || name.contains('/') {
        return false;
    }
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsValidLabelValue`: empty, or a qualified name's name part.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || (!s.contains('/') && is_qualified_name(s))
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| !l.is_empty() && is_dns1123_label(l))
}

pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// The part of `metadata` that CEL rules at the root see: `name` and `generateName` only.
/// Like the API server, a `generateName` without a `name` gets a name (five random characters
/// after it) before the rules run.
pub fn cel_view(meta: Option<&Value>) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["name", "generateName"] {
        if let Some(v) = meta.and_then(|m| m.get(key)).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if !out.contains_key("name")
        && let Some(prefix) = out.get("generateName").and_then(Value::as_str)
    {
        let generated = format!("{prefix}x7k2q");
        out.insert("name".into(), Value::String(generated));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        for ok in ["a", "app.kubernetes.io/name", "A_b.c-D", "example.com/x"] {
            assert!(is_qualified_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "Example.com/x", "a/b/c", "/x", &"a".repeat(64)] {
            assert!(!is_qualified_name(bad), "{bad}");
        }
        assert!(is_label_value(""));
        assert!(!is_label_value("a/b"));
    }

    #[test]
    fn unknown_and_mistyped_metadata() {
        let mut errors = Vec::new();
        let path = FieldPath(vec![Step::Key("metadata".into())]);
        check(
            &serde_json::json!({"name": "a", "lables": {}, "labels": {"a b": "c", "d": 1}, "generation": "x"}),
            &path,
            &mut errors,
        );
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{shown:#?}");
        assert!(shown.iter().any(|e| e.starts_with("metadata.lables: unknown field") && e.contains("\"labels\"")));
    }
}
