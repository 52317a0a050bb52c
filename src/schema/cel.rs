//! `x-kubernetes-validations` rules, evaluated with the `cel` crate as the API server evaluates
//! them on create: `self` is the node's value, transition rules (those that read `oldSelf`) are
//! skipped since there is no old object, and a rule that is false gives its `message`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use cel::common::types::{CelBool, CelString};
use cel::{Context, Env, ExecutionError, Program};
use regex::Regex;
use serde_json::Value;

/// The standard functions and macros, built once: `Context::default()` builds them anew for each
/// context, which made up most of the time of a schema check (the operator checks every app on
/// every reconcile). `matches` is the operator's own (see [`matches`]); the crate's is not built
/// in (its `regex` feature is off).
static STDLIB: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(with_matches(Env::stdlib())));

/// `matches` as a function (`matches(s, re)`) and as a method (`s.matches(re)`), as the API
/// server's CEL has it.
fn with_matches(mut env: Env) -> Env {
    // Registration fails only for an overload declared twice: the stdlib has none of these ids.
    let registered = cel::add_overload!(env, fn matches: (CelString, CelString) -> Result<CelBool>, id = "matches")
        .and_then(|()| cel::add_member_overload!(env, fn matches: (CelString, CelString) -> Result<CelBool>));
    if let Err(e) = registered {
        tracing::error!("CEL matches() is not available to the schema check: {e}");
    }
    env
}

/// Compiled patterns, by their source. The rules' patterns are literals of the CRD, a few dozen;
/// past [`PATTERNS_KEPT`] a pattern is compiled for its call alone.
static PATTERNS: LazyLock<Mutex<HashMap<String, Arc<Regex>>>> = LazyLock::new(Mutex::default);
const PATTERNS_KEPT: usize = 256;

/// Whether `this` contains a match of the RE2 pattern `re`. The `cel` crate compiles the pattern
/// at every call: after a restart, when every app's schema is checked once, those compiles were
/// the largest part of the operator's CPU.
fn matches(this: &CelString<'_>, re: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let compiled = pattern(re.inner()).map_err(|err| ExecutionError::FunctionError {
        function: "matches".into(),
        message: format!("'{}' not a valid regex:\n{err}", re.inner()),
    })?;
    Ok(CelBool::from(compiled.is_match(this.inner())))
}

/// The compiled `re`, from [`PATTERNS`] when it was compiled before.
fn pattern(re: &str) -> Result<Arc<Regex>, regex::Error> {
    let mut kept = PATTERNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(compiled) = kept.get(re) {
        return Ok(compiled.clone());
    }
    let compiled = Arc::new(Regex::new(re)?);
    if kept.len() < PATTERNS_KEPT {
        kept.insert(re.to_owned(), compiled.clone());
    }
    Ok(compiled)
}

/// A value as CEL sees it.
pub type CelValue = cel::Value;

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub source: String,
    pub message: Option<String>,
    /// `fieldPath` of the rule (`.podTemplate.spec.hostNetwork`): where its error is reported.
    pub field_path: Option<String>,
    /// Reads `oldSelf`: only checked on update, never by render.
    pub transition: bool,
    program: Program,
}

/// How a rule turned out.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    Failed,
    /// The rule could not be evaluated (a missing field it reads without `has()`, a wrong type).
    Error(String),
}

impl Rule {
    /// From one entry of `x-kubernetes-validations`.
    pub fn compile(entry: &Value) -> Result<Rule, String> {
        let source = entry.get("rule").and_then(Value::as_str).ok_or("a validation without a rule")?.to_owned();
        for key in entry.as_object().map(|o| o.keys()).into_iter().flatten() {
            if !matches!(key.as_str(), "rule" | "message" | "fieldPath" | "reason") {
                return Err(format!("the validation keyword {key:?} is not implemented by the checker"));
            }
        }
        Rule::from_parts(
            source,
            entry.get("message").and_then(Value::as_str).map(str::to_owned),
            entry.get("fieldPath").and_then(Value::as_str).map(str::to_owned),
        )
    }

    fn from_parts(source: String, message: Option<String>, field_path: Option<String>) -> Result<Rule, String> {
        let program = Program::compile(&source).map_err(|e| format!("the rule {source:?} does not compile: {e}"))?;
        let transition = program.references().has_variable("oldSelf");
        Ok(Rule { source, message, field_path, transition, program })
    }

    /// Evaluates the rule with `self` bound to `value`.
    pub fn evaluate(&self, value: &Value) -> Outcome {
        self.evaluate_cel(to_cel(value))
    }

    /// Evaluates the rule with `self` bound to `value` as CEL sees it ([`to_cel`]): the rules of
    /// one node share one conversion (its lists, maps and strings are shared, not copied).
    pub fn evaluate_cel(&self, value: cel::Value) -> Outcome {
        let mut context = Context::with_env(Arc::clone(&STDLIB));
        context.add_variable_from_value("self", value);
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(true)) => Outcome::Passed,
            Ok(cel::Value::Bool(false)) => Outcome::Failed,
            Ok(other) => Outcome::Error(format!("the rule gave {other:?}, not a boolean")),
            Err(e) => Outcome::Error(e.to_string()),
        }
    }
}

/// JSON as CEL sees it. A field set to `null` counts as absent for `has()`, as in the API server.
pub fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                cel::Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                cel::Value::UInt(u)
            } else {
                cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let entries: HashMap<String, cel::Value> =
                map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(entries)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(source: &str) -> Rule {
        Rule::compile(&json!({"rule": source})).expect("compiles")
    }

    #[test]
    fn kubernetes_rule_functions() {
        assert_eq!(rule("has(self.a) != has(self.b)").evaluate(&json!({"a": 1})), Outcome::Passed);
        assert_eq!(rule("has(self.a) != has(self.b)").evaluate(&json!({"a": 1, "b": 2})), Outcome::Failed);
        assert_eq!(rule("has(self.a) != has(self.b)").evaluate(&json!({"a": null})), Outcome::Failed);
        assert_eq!(rule("!self.startsWith('winapp-')").evaluate(&json!("winapp-x")), Outcome::Failed);
        assert_eq!(rule("self.size() <= 3 && self.matches('^[a-z]+$')").evaluate(&json!("abc")), Outcome::Passed);
        assert_eq!(rule("self.matches('b')").evaluate(&json!("abc")), Outcome::Passed, "matches searches");
        assert_eq!(rule("matches(self, '^a')").evaluate(&json!("abc")), Outcome::Passed, "as a function too");
        assert_eq!(rule("self.matches('^b')").evaluate(&json!("abc")), Outcome::Failed);
        assert!(
            matches!(rule("self.matches('(')").evaluate(&json!("abc")), Outcome::Error(e) if e.contains("not a valid regex"))
        );
        assert_eq!(rule("self.type != 'ClusterIP'").evaluate(&json!({"type": "NodePort"})), Outcome::Passed);
        assert!(matches!(rule("self.missing == 1").evaluate(&json!({})), Outcome::Error(_)));
    }

    #[test]
    fn transition_rules_are_recognised() {
        assert!(rule("self.a == oldSelf.a").transition);
        assert!(!rule("self.a == 1").transition);
    }

    #[test]
    fn unknown_validation_keywords_are_refused() {
        assert!(Rule::compile(&json!({"rule": "true", "messageExpression": "'x'"})).is_err());
    }
}
