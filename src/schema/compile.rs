//! The CRD's structural schema (an OpenAPI v3 subset) compiled once: regexes and CEL programs
//! ready, keywords checked so that a schema feature this checker does not know fails a test
//! instead of passing input in silence.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use super::cel::Rule;

/// JSON types of the structural schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::Object => "an object",
            Type::Array => "a list",
            Type::String => "a string",
            Type::Integer => "an integer",
            Type::Number => "a number",
            Type::Boolean => "a boolean (true or false)",
        }
    }
}

/// What an object allows beside its `properties`.
#[derive(Debug)]
pub enum Additional {
    /// Unknown fields are refused.
    None,
    /// `additionalProperties: <schema>`: a map whose values follow the schema.
    Schema(Box<Node>),
    /// `x-kubernetes-preserve-unknown-fields: true` (or `additionalProperties: true`): kept as
    /// they are, unchecked.
    Preserve,
}

/// One schema node.
#[derive(Debug)]
pub struct Node {
    pub type_: Option<Type>,
    pub nullable: bool,
    pub int_or_string: bool,
    pub embedded_resource: bool,
    pub properties: BTreeMap<String, Node>,
    pub additional: Additional,
    pub required: Vec<String>,
    pub items: Option<Box<Node>>,
    pub enum_: Vec<Value>,
    pub default: Option<Value>,
    pub minimum: Option<(f64, bool)>,
    pub maximum: Option<(f64, bool)>,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<(String, Regex)>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub format: Option<String>,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub rules: Vec<Rule>,
}

/// Keywords that carry no validation (documentation, or handled elsewhere by the API server).
const IGNORED: &[&str] = &["description", "title", "example", "externalDocs", "x-kubernetes-map-type"];

impl Node {
    /// A node without keywords: any value passes.
    fn empty() -> Node {
        Node {
            type_: None,
            nullable: false,
            int_or_string: false,
            embedded_resource: false,
            properties: BTreeMap::new(),
            additional: Additional::None,
            required: Vec::new(),
            items: None,
            enum_: Vec::new(),
            default: None,
            minimum: None,
            maximum: None,
            multiple_of: None,
            min_length: None,
            max_length: None,
            pattern: None,
            min_items: None,
            max_items: None,
            unique_items: false,
            min_properties: None,
            max_properties: None,
            format: None,
            list_type: None,
            list_map_keys: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// Keywords that change what others set, applied once the whole schema object is read.
#[derive(Default)]
struct Deferred {
    preserve: bool,
    exclusive_min: bool,
    exclusive_max: bool,
}

/// Compiles an `openAPIV3Schema` (as JSON). Refuses keywords it does not implement.
pub fn compile(schema: &Value, path: &str) -> Result<Node, String> {
    let obj = schema.as_object().ok_or_else(|| format!("{path}: a schema must be an object"))?;
    let mut node = Node::empty();
    let mut deferred = Deferred::default();
    for (key, v) in obj {
        keyword(&mut node, &mut deferred, key, v, path)?;
    }
    if let Some(m) = node.minimum.as_mut() {
        m.1 = deferred.exclusive_min;
    }
    if let Some(m) = node.maximum.as_mut() {
        m.1 = deferred.exclusive_max;
    }
    if deferred.preserve {
        node.additional = Additional::Preserve;
    }
    Ok(node)
}

/// Reads one keyword of the schema object at `path` into `node` (or `deferred`); refuses a value
/// of the wrong kind and a keyword the checker does not implement.
fn keyword(node: &mut Node, deferred: &mut Deferred, key: &str, v: &Value, path: &str) -> Result<(), String> {
    let bad = || format!("{path}: unexpected value of {key}: {v}");
    match key {
        "type" => node.type_ = Some(type_of(v).ok_or_else(bad)?),
        "nullable" => node.nullable = v.as_bool().ok_or_else(bad)?,
        "x-kubernetes-int-or-string" => node.int_or_string = v.as_bool().ok_or_else(bad)?,
        "x-kubernetes-preserve-unknown-fields" => deferred.preserve = v.as_bool().ok_or_else(bad)?,
        "x-kubernetes-embedded-resource" => node.embedded_resource = v.as_bool().ok_or_else(bad)?,
        "properties" => {
            for (name, sub) in v.as_object().ok_or_else(bad)? {
                node.properties.insert(name.clone(), compile(sub, &format!("{path}.{name}"))?);
            }
        }
        "additionalProperties" => match v {
            Value::Bool(true) => node.additional = Additional::Preserve,
            Value::Bool(false) => {}
            Value::Object(_) => node.additional = Additional::Schema(Box::new(compile(v, &format!("{path}.*"))?)),
            _ => return Err(bad()),
        },
        "required" => node.required = strings(v).ok_or_else(bad)?,
        "items" => node.items = Some(Box::new(compile(v, &format!("{path}[]"))?)),
        "enum" => node.enum_ = v.as_array().ok_or_else(bad)?.clone(),
        "default" => node.default = Some(v.clone()),
        "minimum" => node.minimum = Some((v.as_f64().ok_or_else(bad)?, false)),
        "maximum" => node.maximum = Some((v.as_f64().ok_or_else(bad)?, false)),
        "exclusiveMinimum" => deferred.exclusive_min = v.as_bool().ok_or_else(bad)?,
        "exclusiveMaximum" => deferred.exclusive_max = v.as_bool().ok_or_else(bad)?,
        "multipleOf" => node.multiple_of = Some(v.as_f64().ok_or_else(bad)?),
        "minLength" => node.min_length = Some(v.as_u64().ok_or_else(bad)?),
        "maxLength" => node.max_length = Some(v.as_u64().ok_or_else(bad)?),
        "pattern" => node.pattern = Some(pattern(v.as_str().ok_or_else(bad)?, path)?),
        "minItems" => node.min_items = Some(v.as_u64().ok_or_else(bad)?),
        "maxItems" => node.max_items = Some(v.as_u64().ok_or_else(bad)?),
        "uniqueItems" => node.unique_items = v.as_bool().ok_or_else(bad)?,
        "minProperties" => node.min_properties = Some(v.as_u64().ok_or_else(bad)?),
        "maxProperties" => node.max_properties = Some(v.as_u64().ok_or_else(bad)?),
        "format" => node.format = Some(v.as_str().ok_or_else(bad)?.to_owned()),
        "x-kubernetes-list-type" => node.list_type = Some(v.as_str().ok_or_else(bad)?.to_owned()),
        "x-kubernetes-list-map-keys" => node.list_map_keys = strings(v).ok_or_else(bad)?,
        "x-kubernetes-validations" => {
            for r in v.as_array().ok_or_else(bad)? {
                node.rules.push(Rule::compile(r).map_err(|e| format!("{path}: {e}"))?);
            }
        }
        k if IGNORED.contains(&k) => {}
        other => return Err(format!("{path}: the schema keyword {other:?} is not implemented by the checker")),
    }
    Ok(())
}

/// The value of `type`, when it is one of the structural schema's.
fn type_of(v: &Value) -> Option<Type> {
    match v.as_str() {
        Some("object") => Some(Type::Object),
        Some("array") => Some(Type::Array),
        Some("string") => Some(Type::String),
        Some("integer") => Some(Type::Integer),
        Some("number") => Some(Type::Number),
        Some("boolean") => Some(Type::Boolean),
        _ => None,
    }
}

/// The strings of a list (other entries skipped), when `v` is a list.
fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
}

/// A `pattern`, compiled.
fn pattern(p: &str, path: &str) -> Result<(String, Regex), String> {
    let re = Regex::new(p).map_err(|e| format!("{path}: pattern {p:?} does not compile: {e}"))?;
    Ok((p.to_owned(), re))
}
