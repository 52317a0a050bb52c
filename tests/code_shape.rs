//! The code stays easy to carry on: no source file over 600 lines and no function over 80, unit
//! tests aside (a file's `#[cfg(test)]` module), and no two modules of the operator that import
//! each other. The limits are those of the architecture issue; ARCHITECTURE.md says why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE: usize = 600;
const MAX_FN: usize = 80;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of a file up to its unit tests (a `#[cfg(test)]` at the start of a line).
fn code_lines(text: &str) -> Vec<&str> {
    text.lines().take_while(|l| !l.starts_with("#[cfg(test)]")).collect()
}

/// Functions of rustfmt-formatted code, `(name, first line, lines)`: from a line declaring a
/// `fn` to the line that closes it at the same indentation.
fn functions<'a>(lines: &[&'a str]) -> Vec<(&'a str, usize, usize)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let decl = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "const fn ",
            "pub const fn ",
        ]
        .iter()
        .find_map(|p| trimmed.strip_prefix(p));
        let Some(rest) = decl else { continue };
        let name = rest.split(['(', '<']).next().unwrap_or_default();
        if line.trim_end().ends_with(';') || line.trim_end().ends_with('}') {
            continue; // a declaration without a body, or a one-line function
        }
        let close = format!("{}}}", " ".repeat(indent));
        if let Some(end) = lines[i + 1..].iter().position(|l| l.trim_end() == close) {
            out.push((name, i + 1, end + 2));
        }
    }
    out
}

#[test]
fn no_file_over_600_lines_and_no_function_over_80() {
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source");
        let lines = code_lines(&text);
        let shown = file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(file).display();
        if lines.len() > MAX_FILE {
            problems.push(format!("{shown}: {} lines (at most {MAX_FILE}, unit tests aside)", lines.len()));
        }
        for (name, at, len) in functions(&lines) {
            if len > MAX_FN {
                problems.push(format!("{shown}:{at}: fn {name} has {len} lines (at most {MAX_FN})"));
            }
        }
    }
    assert!(problems.is_empty(), "split these:\n{}", problems.join("\n"));
}

#[test]
fn the_measure_finds_long_functions() {
    let long = format!("fn long() {{\n{}}}\n    fn short() {{\n        x();\n    }}\n", "    x();\n".repeat(90));
    let lines: Vec<&str> = long.lines().collect();
    let found = functions(&lines);
    assert_eq!(found.iter().map(|f| (f.0, f.2)).collect::<Vec<_>>(), [("long", 92), ("short", 3)]);
}

/// `use super::x` and `use crate::controller::x` of each module of `src/controller`.
#[test]
fn no_two_modules_of_the_controller_import_each_other() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/controller");
    let mut files = Vec::new();
    sources(&dir, &mut files);
    let module = |p: &Path| {
        let rel = p.strip_prefix(&dir).unwrap_or(p).with_extension("");
        rel.iter().next().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    };
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let me = module(file);
        let text = std::fs::read_to_string(file).expect("read a source");
        for line in code_lines(&text).into_iter().filter(|l| !l.trim_start().starts_with("//")) {
            for prefix in ["use super::", "use crate::controller::", "super::"] {
                for part in line.split(prefix).skip(1) {
                    let other: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    let is_module = files.iter().any(|f| module(f) == other);
                    if is_module && other != me && me != "mod" {
                        imports.entry(me.clone()).or_default().insert(other);
                    }
                }
            }
        }
    }
    let mut circles = Vec::new();
    for (a, theirs) in &imports {
        for b in theirs {
            if a < b && imports.get(b).is_some_and(|i| i.contains(a)) {
                circles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(circles.is_empty(), "modules that import each other: {circles:?}");
}
