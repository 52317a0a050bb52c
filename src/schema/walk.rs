//! The walk of a document through the compiled schema: types, objects (known, additional and
//! unknown fields, required ones, embedded resources), lists (counts, list-map keys, sets), the
//! CEL rules, and the normalization the API server applies before it stores a document.

use serde_json::Value;

use super::compile::{Additional, Node, Type};
use super::values::check_value;
use super::{FieldPath, Problem, SchemaError, cel, closest, meta};

/// Drops the `null`s the schema does not allow and fills in `default`s, below `node`.
pub(super) fn normalize_with(node: &Node, value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| {
                if !v.is_null() {
                    return true;
                }
                match (node.properties.get(k), &node.additional) {
                    (Some(p), _) => p.nullable,
                    (None, Additional::Schema(s)) => s.nullable,
                    _ => true,
                }
            });
            for (k, p) in &node.properties {
                if let Some(d) = &p.default
                    && !map.contains_key(k)
                {
                    map.insert(k.clone(), d.clone());
                }
            }
            for (k, v) in map.iter_mut() {
                match (node.properties.get(k), &node.additional) {
                    (Some(p), _) => normalize_with(p, v),
                    (None, Additional::Schema(s)) => normalize_with(s, v),
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &node.items {
                for v in items {
                    normalize_with(item, v);
                }
            }
        }
        _ => {}
    }
}

/// How much of a value to check.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Mode {
    Full,
    /// Only unknown fields (what the API server does to `status` on create: it drops status, but
    /// strict decoding has refused unknown fields in it before).
    UnknownOnly,
}

/// One value against its node: its type, then its keywords and what it contains.
pub(super) fn check_node(node: &Node, value: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>, mode: Mode) {
    if value.is_null() {
        let any = node.type_.is_none() && !node.int_or_string;
        if !node.nullable && !any && mode == Mode::Full {
            errors.push(SchemaError::new(path.clone(), Problem::wrong_type(&expected(node), value)));
        }
        return;
    }
    let type_ok = if node.int_or_string {
        value.is_string() || is_integer(value)
    } else {
        match node.type_ {
            None => true,
            Some(Type::Object) => value.is_object(),
            Some(Type::Array) => value.is_array(),
            Some(Type::String) => value.is_string(),
            Some(Type::Integer) => is_integer(value),
            Some(Type::Number) => value.is_number(),
            Some(Type::Boolean) => value.is_boolean(),
        }
    };
    if !type_ok {
        if mode == Mode::Full {
            errors.push(SchemaError::new(path.clone(), Problem::wrong_type(&expected(node), value)));
        }
        return;
    }
    if mode == Mode::Full {
        check_value(node, value, path, errors);
    }
    match value {
        Value::Array(items) => {
            if mode == Mode::Full {
                check_list(node, items, path, errors);
            }
            if let Some(item) = &node.items {
                for (i, v) in items.iter().enumerate() {
                    check_node(item, v, &path.index(i), errors, mode);
                }
            }
        }
        Value::Object(_) => check_object_like(node, value, path, errors, mode, false),
        _ => {}
    }
}

fn expected(node: &Node) -> String {
    let base = if node.int_or_string {
        "an integer or a string".to_owned()
    } else {
        node.type_.map_or("a value", Type::name).to_owned()
    };
    match node.format.as_deref() {
        Some("int32") => format!("{base} (32-bit)"),
        _ => base,
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn check_list(node: &Node, items: &[Value], path: &FieldPath, errors: &mut Vec<SchemaError>) {
    if let Some(max) = node.max_items
        && items.len() as u64 > max
    {
        errors.push(SchemaError::new(path.clone(), Problem::TooManyItems { count: items.len(), max }));
    }
    if let Some(min) = node.min_items
        && (items.len() as u64) < min
    {
        errors.push(SchemaError::new(path.clone(), Problem::TooFewItems { count: items.len(), min }));
    }
    match node.list_type.as_deref() {
        Some("map") => {
            let mut seen: Vec<Vec<Option<&Value>>> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let Some(o) = item.as_object() else { continue };
                let key: Vec<Option<&Value>> = node.list_map_keys.iter().map(|k| o.get(k)).collect();
                if seen.contains(&key) {
                    let shown: Vec<String> = node
                        .list_map_keys
                        .iter()
                        .zip(&key)
                        .map(|(k, v)| format!("{k}={}", v.map_or_else(|| "(unset)".to_owned(), |v| v.to_string())))
                        .collect();
                    errors.push(SchemaError::new(path.index(i), Problem::DuplicateEntry { key: shown.join(",") }));
                } else {
                    seen.push(key);
                }
            }
        }
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errors.push(SchemaError::new(path.index(i), Problem::DuplicateEntry { key: item.to_string() }));
                }
            }
        }
        _ if node.unique_items => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errors.push(SchemaError::new(path.index(i), Problem::DuplicateEntry { key: item.to_string() }));
                }
            }
        }
        _ => {}
    }
}

/// An object: known properties, additional properties, unknown fields, required fields and the
/// implicit `apiVersion`, `kind` and `metadata` of the root and of embedded resources.
pub(super) fn check_object_like(
    node: &Node,
    value: &Value,
    path: &FieldPath,
    errors: &mut Vec<SchemaError>,
    mode: Mode,
    is_root: bool,
) {
    let Some(map) = value.as_object() else {
        if !value.is_null() && mode == Mode::Full {
            errors.push(SchemaError::new(path.clone(), Problem::wrong_type("an object", value)));
        }
        return;
    };
    let resource = is_root || node.embedded_resource;
    for (key, v) in map {
        let here = path.join(key);
        if resource && matches!(key.as_str(), "apiVersion" | "kind") && !node.properties.contains_key(key) {
            if !v.is_string() && !v.is_null() && mode == Mode::Full {
                errors.push(SchemaError::new(here, Problem::wrong_type("a string", v)));
            }
            continue;
        }
        if resource && key == "metadata" && !node.properties.contains_key(key) {
            meta::check(v, &here, errors);
            continue;
        }
        match (node.properties.get(key), &node.additional) {
            (Some(p), _) => {
                // The API server drops status on create; only its unknown fields are refused.
                let sub_mode = if is_root && key == "status" { Mode::UnknownOnly } else { mode };
                check_node(p, v, &here, errors, sub_mode);
            }
            (None, Additional::Schema(s)) => check_node(s, v, &here, errors, mode),
            (None, Additional::Preserve) => {}
            (None, Additional::None) => {
                let mut known: Vec<&str> = node.properties.keys().map(String::as_str).collect();
                if resource {
                    known.extend(["apiVersion", "kind", "metadata"]);
                }
                errors.push(SchemaError::new(
                    here,
                    Problem::UnknownField {
                        suggestion: closest(key, known.iter().copied()),
                        known: known.iter().map(|s| (*s).to_owned()).collect(),
                    },
                ));
            }
        }
    }
    if mode == Mode::Full {
        for r in &node.required {
            if map.get(r).is_none_or(Value::is_null) {
                errors.push(SchemaError::new(path.join(r), Problem::Required));
            }
        }
        let count = map.len();
        if let Some(max) = node.max_properties
            && count as u64 > max
        {
            errors.push(SchemaError::new(path.clone(), Problem::TooManyProperties { count, max }));
        }
        if let Some(min) = node.min_properties
            && (count as u64) < min
        {
            errors.push(SchemaError::new(path.clone(), Problem::TooFewProperties { count, min }));
        }
    }
}

/// The CEL rules of every node present (status excluded: the API server drops it on create).
pub(super) fn check_rules(node: &Node, value: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>, is_root: bool) {
    if value.is_null() {
        return;
    }
    // `self` as CEL sees it, converted once for all the node's rules (the spec has seven).
    let mut converted: Option<cel::CelValue> = None;
    for rule in node.rules.iter().filter(|r| !r.transition) {
        let at = match rule.field_path.as_deref() {
            Some(fp) => path.extend_with(fp),
            // The root's name rule is about metadata.name (the API server reports it at the root).
            None if is_root && rule.source.starts_with("self.metadata.name") => path.join("metadata").join("name"),
            None => path.clone(),
        };
        let this = converted.get_or_insert_with(|| cel::to_cel(value)).clone();
        match rule.evaluate_cel(this) {
            cel::Outcome::Passed => {}
            cel::Outcome::Failed => errors.push(SchemaError::new(
                at,
                Problem::Rule {
                    message: rule
                        .message
                        .clone()
                        .unwrap_or_else(|| format!("failed rule: {}; change the value so that it holds", rule.source)),
                    rule: rule.source.clone(),
                },
            )),
            cel::Outcome::Error(error) => {
                errors.push(SchemaError::new(at, Problem::RuleError { rule: rule.source.clone(), error }))
            }
        }
    }
    match value {
        Value::Array(items) => {
            if let Some(item) = &node.items {
                for (i, v) in items.iter().enumerate() {
                    check_rules(item, v, &path.index(i), errors, false);
                }
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                if is_root && k == "status" {
                    continue;
                }
                match (node.properties.get(k), &node.additional) {
                    (Some(p), _) => check_rules(p, v, &path.join(k), errors, false),
                    (None, Additional::Schema(s)) => check_rules(s, v, &path.join(k), errors, false),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}
