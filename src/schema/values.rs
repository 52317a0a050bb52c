//! The keywords of one value: `enum`, the bounds of a number, the length, pattern and format of a
//! string.

use serde_json::Value;

use super::compile::Node;
use super::{FieldPath, Problem, SchemaError, closest};

/// enum, numbers, strings.
pub(super) fn check_value(node: &Node, value: &Value, path: &FieldPath, errors: &mut Vec<SchemaError>) {
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
