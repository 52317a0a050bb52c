//! Prints findings: one line each, grouped by section, for people; or one JSON document for tools.

use serde::Serialize;

use super::{DoctorError, EXIT_CANNOT_RUN, Finding, Level, Summary};

fn marker(level: Level) -> &'static str {
    match level {
        Level::Ok => "[ok]   ",
        Level::Warning => "[warn] ",
        Level::Error => "[error]",
    }
}

/// One line per finding under its section's heading, then a summary line.
pub fn text(findings: &[Finding], strict: bool) -> String {
    let mut out = String::new();
    let mut section = "";
    for f in findings {
        if f.check.section() != section {
            section = f.check.section();
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(section);
            out.push('\n');
        }
        out.push_str(&format!("  {} {}: {}\n", marker(f.level), f.title, f.message));
    }
    let s = Summary::of(findings);
    let code = s.exit_code(strict);
    let strictly = if strict { ", warnings count as errors (--strict)" } else { "" };
    let count = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    out.push_str(&format!(
        "\nSummary: {} ok, {}, {}{strictly}; exit code {code}\n",
        s.ok,
        count(s.warnings, "warning", "warnings"),
        count(s.errors, "error", "errors")
    ));
    out
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    check: &'static str,
    section: &'static str,
    level: Level,
    title: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSummary {
    ok: usize,
    warnings: usize,
    errors: usize,
    strict: bool,
    exit_code: u8,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    findings: Vec<JsonFinding<'a>>,
    summary: JsonSummary,
}

/// `{"findings": [{check, section, level, title, message}], "summary": {ok, warnings, errors, strict, exitCode}}`.
pub fn json(findings: &[Finding], strict: bool) -> String {
    let s = Summary::of(findings);
    let report = JsonReport {
        findings: findings
            .iter()
            .map(|f| JsonFinding {
                check: f.check.as_str(),
                section: f.check.section(),
                level: f.level,
                title: &f.title,
                message: &f.message,
            })
            .collect(),
        summary: JsonSummary {
            ok: s.ok,
            warnings: s.warnings,
            errors: s.errors,
            strict,
            exit_code: s.exit_code(strict),
        },
    };
    to_json(&report)
}

/// `{"error": "...", "summary": {"exitCode": 2}}`: doctor could not run.
pub fn json_error(error: &DoctorError) -> String {
    to_json(&serde_json::json!({
        "error": error.to_string(),
        "summary": {"exitCode": EXIT_CANNOT_RUN},
    }))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail; should it ever, say so in JSON rather than panic.
    serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", format!("cannot serialize the report: {e}")))
}
