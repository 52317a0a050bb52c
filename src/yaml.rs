//! Multi-document YAML in, JSON values out, with the line and column of every node kept aside so
//! that errors found later (schema, decoding) can point at the input. Limits are generous for real
//! streams (`kustomize build` of a large app set) and stop YAML bombs early.
//!
//! Scalars resolve as `kubectl` resolves them (YAML 1.1 booleans such as `yes`, legacy octal
//! numbers), a float with an integral value becomes an integer (as `kubectl` sends `1.0` as `1`),
//! and a key given twice keeps its last value, as with `kubectl`, but is reported as a warning.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;
use thiserror::Error;

pub use crate::schema::Step;

/// Limits on an input stream, stated in `render --help`.
pub mod limits {
    /// Whole input, in bytes (64 MiB).
    pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;
    /// One document, in bytes: the API server's own request limit (3 MiB).
    pub const MAX_DOCUMENT_BYTES: usize = 3 * 1024 * 1024;
    /// Documents in one stream.
    pub const MAX_DOCUMENTS: usize = 50_000;
    /// Nodes (mappings, sequences and scalars) in the whole stream.
    pub const MAX_NODES: usize = 5_000_000;
    /// Nesting of mappings and sequences.
    pub const MAX_DEPTH: usize = 100;
    /// Aliases (`*name`) in the whole stream.
    pub const MAX_ALIASES: usize = 10_000;
    /// Nodes that aliases may expand to, in the whole stream (what a "billion laughs" grows).
    pub const MAX_ALIAS_EXPANSION: usize = 100_000;
}

/// Line and column (both from 1) of a node in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Pos {
    fn of(l: &serde_saphyr::Location) -> Self {
        Pos { line: l.line(), column: l.column() }
    }
}

/// Where each node of a document is: the shape of the document, positions only.
#[derive(Debug, Clone, Default)]
pub struct Spans {
    pub pos: Pos,
    children: Children,
}

#[derive(Debug, Clone, Default)]
enum Children {
    #[default]
    None,
    Seq(Vec<Spans>),
    /// Key -> (position of the key, spans of the value).
    Map(BTreeMap<String, (Pos, Spans)>, Vec<(String, Pos)>),
}

impl Spans {
    /// The position of the node at `path`, or of its deepest ancestor that exists (a missing
    /// field is reported where its parent is). With `key` the position of the key itself (for
    /// unknown fields), not of its value.
    pub fn locate(&self, path: &[Step], key: bool) -> Pos {
        let mut here = self;
        for (i, step) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            match (&here.children, step) {
                (Children::Map(m, _), Step::Key(k)) => match m.get(k) {
                    Some((key_pos, spans)) => {
                        if last && key {
                            return *key_pos;
                        }
                        here = spans;
                    }
                    None => return here.pos,
                },
                (Children::Seq(items), Step::Index(n)) => match items.get(*n) {
                    Some(spans) => here = spans,
                    None => return here.pos,
                },
                _ => return here.pos,
            }
        }
        here.pos
    }

    /// Keys given twice (the last one wins), with their paths, in document order.
    pub fn duplicates(&self) -> Vec<(Vec<Step>, Pos)> {
        let mut out = Vec::new();
        self.collect_duplicates(&mut Vec::new(), &mut out);
        out.sort_by_key(|(_, p)| (p.line, p.column));
        out
    }

    fn collect_duplicates(&self, path: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, Pos)>) {
        match &self.children {
            Children::None => {}
            Children::Seq(items) => {
                for (i, s) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    s.collect_duplicates(path, out);
                    path.pop();
                }
            }
            Children::Map(m, dups) => {
                for (k, pos) in dups {
                    let mut p = path.clone();
                    p.push(Step::Key(k.clone()));
                    out.push((p, *pos));
                }
                for (k, (_, s)) in m {
                    path.push(Step::Key(k.clone()));
                    s.collect_duplicates(path, out);
                    path.pop();
                }
            }
        }
    }
}

/// One document of the stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// Position among the stream's non-empty documents, from 0.
    pub index: usize,
    pub value: Value,
    pub spans: Spans,
}

/// Why a stream could not be read.
#[derive(Debug, Error)]
pub enum YamlError {
    #[error(
        "the input is {size} bytes, over the limit of {max} bytes (64 MiB); split it and render the parts separately"
    )]
    InputTooLarge { size: usize, max: usize },
    #[error(
        "document {index} (line {line}) is {size} bytes, over the limit of {max} bytes (3 MiB, the API server's request limit); the API server would refuse it too"
    )]
    DocumentTooLarge { index: usize, line: u64, size: usize, max: usize },
    #[error("the input is not valid YAML: {0}")]
    Syntax(Box<serde_saphyr::Error>),
    #[error(
        "the input is over a limit of render ({what}; `winapp-operator render --help` lists them): split it, or remove what repeats ({0})", what = .1
    )]
    Limit(Box<serde_saphyr::Error>, &'static str),
}

/// Parses a YAML stream into its non-empty documents.
pub fn parse_stream(input: &str) -> Result<Vec<Document>, YamlError> {
    if input.len() > limits::MAX_INPUT_BYTES {
        return Err(YamlError::InputTooLarge { size: input.len(), max: limits::MAX_INPUT_BYTES });
    }
    let raw: Vec<Spanned<Raw>> = serde_saphyr::from_multiple_with_options(input, options()).map_err(limit)?;
    let starts: Vec<(usize, u64)> =
        raw.iter().map(|d| (d.referenced.span().byte_offset().unwrap_or(0) as usize, d.referenced.line())).collect();
    let mut docs = Vec::with_capacity(raw.len());
    for (index, d) in raw.into_iter().enumerate() {
        let (start, line) = starts[index];
        let end = starts.get(index + 1).map_or(input.len(), |(s, _)| *s);
        let size = end.saturating_sub(start);
        if size > limits::MAX_DOCUMENT_BYTES {
            return Err(YamlError::DocumentTooLarge { index, line, size, max: limits::MAX_DOCUMENT_BYTES });
        }
        let Spanned { value: Raw { value, mut spans }, referenced, .. } = d;
        spans.pos = Pos::of(&referenced);
        docs.push(Document { index, value, spans });
    }
    Ok(docs)
}

/// Budget and alias errors say which limit was hit (the error may come wrapped with a snippet of
/// the input, so it is recognised by its text).
fn limit(e: serde_saphyr::Error) -> YamlError {
    let text = e.to_string();
    let what = if text.contains("budget breached: Documents") {
        "at most 50,000 documents"
    } else if text.contains("budget breached: Nodes") || text.contains("budget breached: Events") {
        "at most 5,000,000 YAML nodes"
    } else if text.contains("budget breached: Depth") || text.contains("recursion limit exceeded") {
        "at most 100 levels of nesting"
    } else if text.contains("budget breached: Aliases") || text.contains("budget breached: AliasAnchorRatio") {
        "at most 10,000 aliases"
    } else if text.contains("budget breached: RecordedAnchor") || text.to_ascii_lowercase().contains("alias") {
        "aliases expand to at most 100,000 nodes"
    } else if text.contains("budget breached") {
        "the size of the input"
    } else {
        return YamlError::Syntax(Box::new(e));
    };
    YamlError::Limit(Box::new(e), what)
}

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = limits::MAX_DOCUMENTS;
    budget.max_nodes = limits::MAX_NODES;
    budget.max_events = 3 * limits::MAX_NODES;
    budget.max_depth = limits::MAX_DEPTH;
    budget.flow_nesting_limit = limits::MAX_DEPTH;
    budget.max_aliases = limits::MAX_ALIASES;
    budget.max_total_scalar_bytes = limits::MAX_INPUT_BYTES;
    budget.max_reader_input_bytes = Some(limits::MAX_INPUT_BYTES);
    budget.max_recorded_anchor_events = limits::MAX_ALIAS_EXPANSION;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = limits::MAX_ALIAS_EXPANSION;
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::PassThrough;
    options.legacy_octal_numbers = true;
    options
}

/// A node as JSON, with the positions of its children.
struct Raw {
    value: Value,
    spans: Spans,
}

impl Raw {
    fn leaf(value: Value) -> Self {
        Raw { value, spans: Spans::default() }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::leaf(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::leaf(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::leaf(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::leaf(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::leaf(Value::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        match i64::try_from(v) {
            Ok(n) => Ok(Raw::leaf(Value::from(n))),
            Err(_) => u64::try_from(v)
                .map(|n| Raw::leaf(Value::from(n)))
                .map_err(|_| E::custom(format!("the integer {v} is too large for JSON"))),
        }
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        u64::try_from(v)
            .map(|n| Raw::leaf(Value::from(n)))
            .map_err(|_| E::custom(format!("the integer {v} is too large for JSON")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        // kubectl sends an integral float as an integer (1.0 -> 1).
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            return Ok(Raw::leaf(Value::from(v as i64)));
        }
        Number::from_f64(v)
            .map(|n| Raw::leaf(Value::Number(n)))
            .ok_or_else(|| E::custom(format!("{v} is not a number JSON can hold; quote it if it is meant as text")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::leaf(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::leaf(Value::String(v)))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Raw, E> {
        // `!!binary` that is not UTF-8 text: kubectl sends the decoded bytes as text too.
        Ok(Raw::leaf(Value::String(String::from_utf8_lossy(v).into_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut values = Vec::new();
        let mut spans = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            let Spanned { value: Raw { value, spans: mut s }, referenced, .. } = item;
            s.pos = Pos::of(&referenced);
            values.push(value);
            spans.push(s);
        }
        Ok(Raw { value: Value::Array(values), spans: Spans { pos: Pos::default(), children: Children::Seq(spans) } })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut values = Map::new();
        let mut spans = BTreeMap::new();
        let mut duplicates = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let item = map.next_value::<Spanned<Raw>>()?;
            let key_pos = Pos::of(&key.referenced);
            let Spanned { value: Raw { value, spans: mut s }, referenced, .. } = item;
            s.pos = Pos::of(&referenced);
            let k = key.value.0;
            if values.insert(k.clone(), value).is_some() {
                duplicates.push((k.clone(), key_pos));
            }
            spans.insert(k, (key_pos, s));
        }
        Ok(Raw {
            value: Value::Object(values),
            spans: Spans { pos: Pos::default(), children: Children::Map(spans, duplicates) },
        })
    }
}

/// A mapping key as JSON sees it: scalars become their text, as `kubectl` converts them.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_unit<E>(self) -> Result<Key, E> {
                Ok(Key("null".into()))
            }
            fn visit_none<E>(self) -> Result<Key, E> {
                Ok(Key("null".into()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Key, E> {
                Ok(Key(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Key, A::Error> {
                Err(de::Error::custom("a sequence cannot be a mapping key in Kubernetes YAML; use a plain key"))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Key, A::Error> {
                Err(de::Error::custom("a mapping cannot be a mapping key in Kubernetes YAML; use a plain key"))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_positions() {
        let docs =
            parse_stream("a: 1\nb:\n  - x\n  - {c: 2.0, d: yes}\n---\n# only a comment\n---\ne: f\n").expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value, serde_json::json!({"a": 1, "b": ["x", {"c": 2, "d": true}]}));
        let path = [Step::Key("b".into()), Step::Index(1), Step::Key("d".into())];
        assert_eq!(docs[0].spans.locate(&path, false), Pos { line: 4, column: 17 });
        assert_eq!(docs[0].spans.locate(&path, true), Pos { line: 4, column: 14 });
        // A missing node is reported at its parent.
        let missing = [Step::Key("b".into()), Step::Index(1), Step::Key("zz".into())];
        assert_eq!(docs[0].spans.locate(&missing, false), Pos { line: 4, column: 5 });
        assert_eq!(docs[1].spans.locate(&[Step::Key("e".into())], true), Pos { line: 8, column: 1 });
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_and_are_reported() {
        let docs = parse_stream("a: 1\nb: {c: 1, c: 2}\na: 3\n").expect("parses");
        assert_eq!(docs[0].value, serde_json::json!({"a": 3, "b": {"c": 2}}));
        let dups = docs[0].spans.duplicates();
        assert_eq!(dups.len(), 2);
        assert_eq!(dups[0].0, vec![Step::Key("b".into()), Step::Key("c".into())]);
        assert_eq!(dups[1], (vec![Step::Key("a".into())], Pos { line: 3, column: 1 }));
    }

    #[test]
    fn keys_become_text() {
        let docs = parse_stream("1: a\ntrue: b\n").expect("parses");
        assert_eq!(docs[0].value, serde_json::json!({"1": "a", "true": "b"}));
    }

    #[test]
    fn binary_becomes_its_text() {
        let docs = parse_stream("a: !!binary aGVsbG8=\n").expect("parses");
        assert_eq!(docs[0].value, serde_json::json!({"a": "hello"}));
    }
}
