//! Where a document breaks the schema and what to do about it: [`FieldPath`]s into the document,
//! [`SchemaError`]s and their [`Problem`]s in words, and the typo suggestions they make.

use std::fmt;

use serde_json::Value;
use thiserror::Error;

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
    pub(super) fn extend_with(&self, field_path: &str) -> FieldPath {
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
        /// (`values::explain_pattern`): said instead of the pattern.
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
