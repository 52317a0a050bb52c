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
pub mod meta;
mod stored;

use std::fmt;
use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::Value;
use thiserror::Error;

use crate::api::WindowsApp;
use compile::{Additional, Node, Type};
pub use stored::{SchemaErrors, check_stored};

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A path into a document: `spec.volumes[0].name`.
#[derive(Debug, Clone, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Step>);

impl FieldPath {
    pub fn join(&self, key: &str) -> FieldPath {
        let mut p = self.0.clone();
        p.push(Step::Key(key.to_owned()));
        FieldPath(p)
    }

    pub fn index(&self, i: usize) -> FieldPath {
        let mut p = self.0.clone();
        p.push(Step::Index(i));
        FieldPath(p)
    }

    /// Parses a rule's `fieldPath` (`.a.b`, `.a['b.c']`, `.a[0]`) below this path.
    fn extend_with(&self, field_path: &str) -> FieldPath {
        let mut p = self.clone();
        let mut rest = field_path;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                p = p.join(&r[..end]);
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix("['") {
                let Some(end) = r.find("']") else { break };
                p = p.join(&r[..end]);
                rest = &r[end + 2..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let Some(end) = r.find(']') else { break };
                match r[..end].parse() {
                    Ok(i) => p = p.index(i),
                    Err(_) => break,
                }
                rest = &r[end + 1..];
            } else {
                break;
            }
        }
        p
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(the document)");
        }
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k)
                    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Step::Key(k) => write!(f, "[{k:?}]")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One way a document breaks the schema: where, and what to do.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{path}: {problem}")]
pub struct SchemaError {
    pub path: FieldPath,
    pub problem: Problem,
}

impl SchemaError {
    pub fn new(path: FieldPath, problem: Problem) -> Self {
        SchemaError { path, problem }
    }

    /// Whether the error is about a key itself (an unknown field), rather than its value.
    pub fn at_key(&self) -> bool {
        matches!(self.problem, Problem::UnknownField { .. } | Problem::MetadataKey(_))
    }
}

/// What is wrong, with what to do.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Problem {
    #[error("unknown field{}", unknown_hint(.suggestion, .known))]
    UnknownField { suggestion: Option<String>, known: Vec<String> },
    #[error("required; add it")]
    Required,
    #[error("must be {expected}, not {found}{}", type_hint(.expected, .found, .text))]
    WrongType { expected: String, found: String, text: Option<String> },
    #[error("{value} is not one of {}; use one of them{}", .allowed.join(", "), .suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    NotInEnum { value: String, allowed: Vec<String>, suggestion: Option<String> },
    #[error("{value} is {} {limit}; use a value of {} {limit}", if *.exclusive { "at or below" } else { "below the minimum" }, if *.exclusive { "more than" } else { "at least" })]
    BelowMinimum { value: String, limit: String, exclusive: bool },
    #[error("{value} is {} {limit}; use a value of {} {limit}", if *.exclusive { "at or above" } else { "above the maximum" }, if *.exclusive { "less than" } else { "at most" })]
    AboveMaximum { value: String, limit: String, exclusive: bool },
    #[error("{value} is not a multiple of {factor}; use a multiple of it")]
    NotMultiple { value: String, factor: String },
    #[error("{value} is out of range for {format} ({min} to {max}); use a smaller number")]
    OutOfRange { value: String, format: String, min: i64, max: i64 },
    #[error("is {length} characters long, at least {min} needed{}", if *.min == 1 { "; set a value (it may not be empty)" } else { "; lengthen it" })]
    TooShort { length: usize, min: u64 },
    #[error("is {length} characters long, at most {max} allowed; shorten it")]
    TooLong { length: usize, max: u64 },
    #[error("{value:?} {}", .explained.clone().unwrap_or_else(|| format!("does not match the pattern {pattern}; change it to match (see the field's description in `winapp-operator crd`)")))]
    Pattern {
        value: String,
        pattern: String,
        /// What is wrong and what to do, in words, for a pattern the operator can explain
        /// ([`explain_pattern`]): said instead of the pattern.
        explained: Option<String>,
    },
    #[error("{value:?} is not a valid {format}; fix it")]
    Format { value: String, format: String },
    #[error("has {count} entries, at most {max} allowed; remove {} of them", .count - *.max as usize)]
    TooManyItems { count: usize, max: u64 },
    #[error("has {count} entries, at least {min} needed; add more")]
    TooFewItems { count: usize, min: u64 },
    #[error("has {count} keys, at most {max} allowed; remove some")]
    TooManyProperties { count: usize, max: u64 },
    #[error("has {count} keys, at least {min} needed; add more")]
    TooFewProperties { count: usize, min: u64 },
    #[error(
        "duplicate entry {key} (entries of this list are identified by it); give each entry its own or remove the duplicate"
    )]
    DuplicateEntry { key: String },
    #[error("{message}")]
    Rule { message: String, rule: String },
    #[error("the rule {rule:?} could not be checked ({error}); fix the fields it reads")]
    RuleError { rule: String, error: String },
    #[error("{0}")]
    Metadata(String),
    /// About a key of labels or annotations (reported where the key is).
    #[error("{0}")]
    MetadataKey(String),
}

impl Problem {
    pub fn wrong_type(expected: &str, value: &Value) -> Problem {
        Problem::WrongType {
            expected: expected.to_owned(),
            found: kind_of(value).to_owned(),
            text: match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            },
        }
    }
}

fn unknown_hint(suggestion: &Option<String>, known: &[String]) -> String {
    let mut known: Vec<&str> = known.iter().map(String::as_str).collect();
    known.sort_unstable();
    let listed = if known.is_empty() {
        String::new()
    } else if known.len() <= 24 {
        format!(" (known fields here: {})", known.join(", "))
    } else {
        format!(" ({} known fields here, see `winapp-operator crd`)", known.len())
    };
    match suggestion {
        Some(s) => format!("; did you mean {s:?}? Rename it, or remove it{listed}"),
        None => format!("; remove it, or move it where it belongs{listed}"),
    }
}

fn type_hint(expected: &str, found: &str, text: &Option<String>) -> String {
    match (expected, found, text) {
        (e, "a number" | "an integer" | "a boolean", Some(t)) if e.contains("string") && !e.contains("integer") => {
            format!(" ({t}); quote it: \"{t}\"")
        }
        (e, "a string", Some(t))
            if (e.contains("integer") || e.contains("number")) && t.trim().parse::<f64>().is_ok() =>
        {
            format!(" ({t:?}); write the number without quotes")
        }
        (e, "a string", Some(t)) if e.contains("boolean") && matches!(t.as_str(), "true" | "false") => {
            format!(" ({t:?}); write {t} without quotes")
        }
        (_, "null", _) => "; give a value or remove the entry".to_owned(),
        (_, _, Some(t)) => format!(" ({t}); change it"),
        _ => "; change it".to_owned(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The closest of `candidates` to a mistyped `word`, if one is close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if c.to_ascii_lowercase() == lower {
            0
        } else {
            strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase())
        };
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let allowed = (word.chars().count().max(c.chars().count()) / 3).max(1);
    // A plural or singular of a field, or a field that starts the same, is likely too.
    let related =
        c.len() >= 4 && (lower.starts_with(&c.to_ascii_lowercase()) || c.to_ascii_lowercase().starts_with(&lower));
    (d <= allowed || related).then(|| c.to_owned())
}

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

fn normalize_with(node: &Node, value: &mut Value) {
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

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Full,
    /// Only unknown fields (what the API server does to `status` on create: it drops status, but
    /// strict decoding has refused unknown fields in it before).
    UnknownOnly,
}

fn check_node(node: &Node, value: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>, mode: Mode) {
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

/// enum, numbers, strings.
fn check_value(node: &Node, value: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>) {
    let mut push = |p: Problem| errors.push(SchemaError::new(path.clone(), p));
    if !node.enum_.is_empty() && !node.enum_.contains(value) {
        let allowed: Vec<String> = node.enum_.iter().map(show).collect();
        let suggestion = value.as_str().and_then(|s| closest(s, node.enum_.iter().filter_map(Value::as_str)));
        push(Problem::NotInEnum { value: show(value), allowed, suggestion });
    }
    if let Value::Number(n) = value {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if let Some((min, exclusive)) = node.minimum
            && (f < min || (exclusive && f == min))
        {
            push(Problem::BelowMinimum { value: n.to_string(), limit: show_f(min), exclusive });
        }
        if let Some((max, exclusive)) = node.maximum
            && (f > max || (exclusive && f == max))
        {
            push(Problem::AboveMaximum { value: n.to_string(), limit: show_f(max), exclusive });
        }
        if let Some(m) = node.multiple_of
            && m != 0.0
            && (f / m).fract() != 0.0
        {
            push(Problem::NotMultiple { value: n.to_string(), factor: show_f(m) });
        }
        let range = match node.format.as_deref() {
            Some("int32") => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
            Some("int64") => Some((i64::MIN, i64::MAX)),
            _ => None,
        };
        if let Some((min, max)) = range
            && n.as_i64().is_none_or(|i| i < min || i > max)
        {
            push(Problem::OutOfRange {
                value: n.to_string(),
                format: node.format.clone().unwrap_or_default(),
                min,
                max,
            });
        }
    }
    if let Value::String(s) = value {
        let length = s.chars().count();
        let too_short = node.min_length.is_some_and(|min| (length as u64) < min);
        if let Some(min) = node.min_length
            && too_short
        {
            push(Problem::TooShort { length, min });
        }
        if let Some(max) = node.max_length
            && (length as u64) > max
        {
            push(Problem::TooLong { length, max });
        }
        // A value too short for its field (an empty one) gets that error alone: it is the one
        // to fix, and the pattern's would say the same again.
        if let Some((pattern, re)) = &node.pattern
            && !too_short
            && !re.is_match(s)
        {
            push(Problem::Pattern {
                value: s.clone(),
                pattern: pattern.clone(),
                explained: explain_pattern(pattern, s),
            });
        }
        if node.format.as_deref() == Some("date-time") && !is_date_time(s) {
            push(Problem::Format {
                value: s.clone(),
                format: "date-time (RFC 3339, such as 2024-01-31T12:00:00Z)".into(),
            });
        }
    }
}

/// What is wrong with `value`, in words, for a pattern too long to read: the image reference's.
fn explain_pattern(pattern: &str, value: &str) -> Option<String> {
    use crate::validate::image;
    if pattern != crate::api::IMAGE_PATTERN {
        return None;
    }
    image::grammar(value).err().map(|p| image::describe(&p))
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show_f(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { f.to_string() }
}

fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't' | b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (s.ends_with('Z') || s.ends_with('z') || s[19..].contains(['+', '-']))
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
fn check_object_like(
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
fn check_rules(node: &Node, value: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>, is_root: bool) {
    if value.is_null() {
        return;
    }
    for rule in node.rules.iter().filter(|r| !r.transition) {
        let at = match rule.field_path.as_deref() {
            Some(fp) => path.extend_with(fp),
            // The root's name rule is about metadata.name (the API server reports it at the root).
            None if is_root && rule.source.starts_with("self.metadata.name") => path.join("metadata").join("name"),
            None => path.clone(),
        };
        match rule.evaluate(value) {
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

#[cfg(test)]
mod tests;
