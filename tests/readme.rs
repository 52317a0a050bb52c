//! The README's API reference cannot go stale: every field of the CRD schema (down to where a
//! core Kubernetes type begins) must be named in it.

use kube::CustomResourceExt;
use serde_json::Value;
use winapp_operator::api::WindowsApp;

/// Fields whose schema is a core Kubernetes type, documented upstream: not descended into.
const CORE: &[&str] = &[
    "spec.env",
    "spec.envFrom",
    "spec.resources",
    "spec.imagePullSecrets",
    "spec.probes.liveness",
    "spec.probes.readiness",
    "spec.probes.startup",
    "spec.windows.tolerations",
    "spec.podTemplate.spec",
    "spec.volumes.smb.secretRef",
    "spec.networkPolicy.from.namespaceSelector",
    "spec.networkPolicy.from.podSelector",
    "status.conditions",
];

fn fields(schema: &Value, path: &str, out: &mut Vec<String>) {
    let schema = schema.get("items").unwrap_or(schema);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return };
    for (name, sub) in props {
        let p = format!("{path}.{name}");
        out.push(p.clone());
        if !CORE.contains(&p.as_str()) {
            fields(sub, &p, out);
        }
    }
}

#[test]
fn every_crd_field_is_in_the_readme_api_reference() {
    let crd = serde_json::to_value(WindowsApp::crd()).expect("CRD as JSON");
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let mut all = Vec::new();
    fields(&root["spec"], "spec", &mut all);
    fields(&root["status"], "status", &mut all);
    assert!(all.len() > 40, "expected the whole schema, found {} fields", all.len());
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let missing: Vec<&String> = all
        .iter()
        .filter(|p| {
            let depth = p.matches('.').count();
            let last = p.rsplit('.').next().unwrap_or_default();
            // Top-level fields by their full path; nested ones by name.
            if depth == 1 { !readme.contains(&format!("`{p}`")) } else { !readme.contains(&format!("`{last}`")) }
        })
        .collect();
    assert!(missing.is_empty(), "README.md's API reference does not mention: {missing:?}");
}

#[test]
fn every_condition_reason_is_explained_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let missing: Vec<&&str> =
        winapp_operator::conditions::reason::ALL.iter().filter(|r| !readme.contains(&format!("`{r}`"))).collect();
    assert!(missing.is_empty(), "reasons the README's status table does not name: {missing:?}");
}

#[test]
fn every_policy_rule_is_in_the_readme_policy_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let missing: Vec<&str> = winapp_operator::policy::Rule::ALL
        .iter()
        .map(|r| r.name())
        .filter(|name| !readme.contains(&format!("| `{name}` |")))
        .collect();
    assert!(missing.is_empty(), "policy rules the README's policy table does not list: {missing:?}");
}

/// The rows of the README's "Security model" tables (what an app may ask for, what the operator
/// itself may do), each with the tests named in its last column.
fn security_rows(readme: &str) -> Vec<(String, Vec<String>)> {
    let section = readme.split("## Security model").nth(1).unwrap_or_default();
    let section = section.split("\n## ").next().unwrap_or_default();
    let lines: Vec<&str> = section.lines().collect();
    // Rows of its tables: not the header (the line before `| ---`), not the separator.
    let header = |i: usize| lines.get(i + 1).is_some_and(|next| next.starts_with("| ---"));
    lines
        .iter()
        .enumerate()
        .filter(|(i, l)| l.starts_with("| ") && !l.starts_with("| ---") && !header(*i))
        .map(|(_, l)| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").collect();
            let tests = cells.last().copied().unwrap_or_default();
            let names = tests.split(',').map(|t| t.trim().trim_matches('`').to_owned()).filter(|t| !t.is_empty());
            (cells.first().copied().unwrap_or_default().to_owned(), names.collect())
        })
        .collect()
}

/// Every Rust source of the crate and its tests.
fn sources(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).expect("read source"));
        }
    }
}

#[test]
fn every_row_of_the_security_model_names_tests_that_exist() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let rows = security_rows(&readme);
    assert!(rows.len() >= 12, "the Security model table has {} rows", rows.len());
    let mut code = String::new();
    for dir in ["src", "tests"] {
        sources(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &mut code);
    }
    for (power, tests) in rows {
        assert!(!tests.is_empty(), "the row {power:?} names no test");
        for t in tests {
            assert!(code.contains(&format!("fn {t}(")), "the row {power:?} names the test {t}, which does not exist");
        }
    }
}

/// The README's API section states the bound of every list and map of the spec as "`field` ≤ N",
/// as `render --help` and the CRD have it.
#[test]
fn every_bound_is_in_the_readme_api_reference() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let start = readme.find("## The WindowsApp API").expect("the API section");
    let end = readme[start..].find("### Pod template policy").map_or(readme.len(), |e| start + e);
    let api = &readme[start..end];
    let missing: Vec<String> = winapp_operator::api::bounds::ALL
        .iter()
        .map(|(path, max)| {
            let last = path.rsplit('.').next().unwrap_or(path).trim_end_matches("[]");
            format!("`{last}` ≤ {max}")
        })
        .filter(|stated| !api.contains(stated.as_str()))
        .collect();
    assert!(missing.is_empty(), "README.md's API section does not state: {missing:?}");
}
