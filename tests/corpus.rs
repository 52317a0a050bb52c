//! The corpus of tests/corpus/: WindowsApps (mostly invalid) with, in their first lines, what the
//! API server does with them (`# server: accepts|refuses`) and what render does
//! (`# render: accepts|refuses`, `refuses (child)` when the API server would refuse a child render
//! builds, `refuses (operator)` for the operator's own rules). This test holds render to its
//! header without a cluster; tests/render_dry_run.rs holds the headers to the real API server.
//! Also: render's limits on large streams and YAML bombs.

mod corpus_support;

use std::time::{Duration, Instant};

use corpus_support::{Expect, corpus};
use serde_json::json;
use winapp_operator::api::WindowsApp;
use winapp_operator::render::{self, RenderError};
use winapp_operator::schema;

#[test]
fn render_refuses_and_accepts_what_each_corpus_input_says() {
    let cases = corpus();
    assert!(cases.len() >= 60, "the corpus has {} inputs", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let result = render::render_with(&case.yaml, "default", &corpus_support::render_options());
        let problem = match (&case.render, &result) {
            (Expect::Accepts, Ok(_)) => None,
            (Expect::Accepts, Err(e)) => Some(format!("refused: {e:#?}")),
            (_, Ok(_)) => Some("accepted".to_owned()),
            (expect, Err(errors)) => {
                let wrong_layer: Vec<&RenderError> = errors
                    .iter()
                    .filter(|e| match expect {
                        // Refused where the API server (or kubectl) refuses: by the schema, the kind, the YAML.
                        Expect::Refuses => !matches!(
                            e,
                            RenderError::Schema { .. } | RenderError::Document { .. } | RenderError::Yaml(_)
                        ),
                        Expect::RefusesChild => !matches!(e, RenderError::Child { .. }),
                        Expect::RefusesOperator => !matches!(e, RenderError::Invalid { .. }),
                        Expect::Accepts => false,
                    })
                    .collect();
                if !wrong_layer.is_empty() {
                    Some(format!("refused, but not as expected ({expect:?}): {wrong_layer:#?}"))
                } else if let Some(e) = errors.iter().find(|e| e.pos().is_none_or(|p| p.line <= 3)) {
                    Some(format!("an error without a line in the document: {e}"))
                } else {
                    errors
                        .iter()
                        // A YAML error is about the stream (it has a line, not yet a document).
                        .find(|e| !matches!(e, RenderError::Yaml(_)) && !e.to_string().starts_with("document 0"))
                        .map(|e| format!("an error that does not name the document: {e}"))
                }
            }
        };
        if let Some(p) = problem {
            failures.push(format!("{}: {p}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus inputs disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn unknown_fields_name_the_closest_field_and_their_line() {
    let case = corpus().into_iter().find(|c| c.name == "unknown-windows-versoin").expect("in the corpus");
    let errors = render::render(&case.yaml, "default").expect_err("refused");
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e.pos().map(|p| (p.line, p.column)), Some((11, 5)), "{e}");
    assert!(
        e.to_string().starts_with(
            "document 0 (WindowsApp default/web): spec.windows.versoin: unknown field; did you mean \"version\"?"
        ),
        "{e}"
    );
}

#[test]
fn decode_errors_are_schema_errors_with_a_path_and_line() {
    let case = corpus().into_iter().find(|c| c.name == "type-replicas-word").expect("in the corpus");
    let errors = render::render(&case.yaml, "default").expect_err("refused");
    let shown = errors[0].to_string();
    assert!(shown.contains("spec.replicas: must be an integer (32-bit), not a string (three)"), "{shown}");
    assert_eq!(errors[0].pos().map(|p| p.line), Some(10));
}

#[test]
fn a_key_given_twice_is_a_warning() {
    let case = corpus().into_iter().find(|c| c.name == "valid-duplicate-key").expect("in the corpus");
    let rendered = render::render(&case.yaml, "default").expect("accepted");
    assert_eq!(rendered.warnings.len(), 1, "{:?}", rendered.warnings);
    assert!(rendered.warnings[0].message.contains("spec.image is given twice"), "{:?}", rendered.warnings);
    assert!(rendered.yaml.contains("registry.example.com/web:2"));
}

const APP: &str = "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata:\n  name: web\nspec:\n  image: x\n";

#[test]
fn a_stream_of_ten_thousand_documents_renders() {
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n---\n";
    let input = format!("{}{APP}", other.repeat(10_000));
    // Speed is measured by benchmarks, not asserted here: this checks that such a stream passes.
    let rendered = render::render(&input, "default").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rendered.skipped.len(), 10_000);
    // And many WindowsApps.
    let apps: String = (0..1_100).map(|i| APP.replace("name: web", &format!("name: web{i}")) + "---\n").collect();
    render::render(&apps, "default").unwrap_or_else(|e| panic!("{e:?}"));
}

#[test]
fn yaml_bombs_and_oversized_input_are_refused_quickly() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    let deep = format!("{}x{}", "[".repeat(5_000), "]".repeat(5_000));
    let wide_doc = format!("{APP}  args: [{}]\n", vec!["\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\""; 120_000].join(", "));
    let many_docs = "---\na: 1\n".repeat(60_000);
    let huge = "#".repeat(65 * 1024 * 1024);
    // Amplification is stopped early: an unbounded expansion would run for hours or exhaust memory,
    // so a bound of minutes tells the two apart even on a loaded machine (a debug build refuses
    // each within seconds; the figures are printed).
    for (what, input, seconds) in [
        ("a billion laughs", bomb, 120),
        ("5,000 levels of nesting", deep, 120),
        ("a 4 MB document", wide_doc, 300),
        ("60,000 documents", many_docs, 300),
        ("65 MiB", huge, 120),
    ] {
        let started = Instant::now();
        let errors = render::render(&input, "default").expect_err(what);
        assert!(started.elapsed() < Duration::from_secs(seconds), "{what}: took {:?}", started.elapsed());
        assert!(matches!(errors[0], RenderError::Yaml(_)), "{what}: {errors:?}");
        eprintln!("{what}: refused in {:?}: {}", started.elapsed(), errors[0]);
    }
}

/// No input makes render panic: mutations (characters replaced, lines dropped or repeated,
/// indentation changed) of every example and corpus input, reproducible from a fixed seed.
#[test]
fn render_never_panics_on_mutated_inputs() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut seeds: Vec<String> = corpus().into_iter().map(|c| c.yaml).collect();
    for entry in std::fs::read_dir(root.join("examples")).expect("examples/") {
        seeds.push(std::fs::read_to_string(entry.expect("entry").path()).expect("example"));
    }
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    const REPLACEMENTS: &[&str] =
        &[":", "-", " ", "{", "}", "[", "]", "\"", "'", "1", "-1", "x", "\\", "&a", "*a", "!!", "null", "~", "\n"];
    // More with FUZZ_ROUNDS=200 (for example), in a release build.
    let rounds: usize = std::env::var("FUZZ_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(12);
    let mut runs = 0;
    for seed in &seeds {
        for _ in 0..rounds {
            let mut lines: Vec<String> = seed.lines().map(str::to_owned).collect();
            for _ in 0..1 + next(3) {
                let i = next(lines.len());
                match next(4) {
                    0 => {
                        let line = &mut lines[i];
                        let at = next(line.len() + 1);
                        let at = (0..=at).rev().find(|a| line.is_char_boundary(*a)).unwrap_or(0);
                        line.insert_str(at, REPLACEMENTS[next(REPLACEMENTS.len())]);
                    }
                    1 => {
                        lines.remove(i.min(lines.len().saturating_sub(1)));
                    }
                    2 => {
                        let l = lines[i].clone();
                        lines.insert(i, l);
                    }
                    _ => lines[i] = format!("{}{}", " ".repeat(next(5)), lines[i].trim_start()),
                }
                if lines.is_empty() {
                    lines.push(String::new());
                }
            }
            let input = lines.join("\n");
            let outcome = std::panic::catch_unwind(|| render::render(&input, "default").map(|_| ()));
            assert!(outcome.is_ok(), "render panicked on:\n{input}");
            runs += 1;
        }
    }
    assert!(runs > 1_000, "{runs} mutations");
}

/// A WindowsApp document as the operator reads it once the API server stored it: normalised (status
/// and `null`s dropped, defaults filled in), with the metadata the server sets and a status the
/// operator wrote, decoded into the operator's type. `None` when the operator cannot decode it.
fn as_stored(doc: &serde_json::Value) -> Option<WindowsApp> {
    let mut doc = doc.clone();
    schema::normalize(&mut doc);
    let obj = doc.as_object_mut()?;
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    let meta = meta.as_object_mut()?;
    meta.entry("namespace").or_insert_with(|| json!("default"));
    meta.insert("uid".into(), json!("0b9a3c52-5d0e-4c57-a1b8-6f8e2d1c4a90"));
    meta.insert("resourceVersion".into(), json!("48213"));
    meta.insert("generation".into(), json!(3));
    meta.insert("creationTimestamp".into(), json!("2026-11-29T14:28:05Z"));
    meta.insert("finalizers".into(), json!(["winapp.dev/cleanup"]));
    meta.insert(
        "managedFields".into(),
        json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "winapp.dev/v1alpha1",
                "time": "2026-11-29T14:28:05Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:image": {}}}}]),
    );
    obj.insert(
        "status".into(),
        json!({"observedGeneration": 3, "windowsBuild": "10.0.20348", "replicas": 1, "availableReplicas": 1,
               "conditions": [{"type": "Ready", "status": "True", "reason": "Available", "message": "ok",
                               "observedGeneration": 3, "lastTransitionTime": "2026-11-29T14:29:00Z"}]}),
    );
    serde_json::from_value(doc).ok()
}

/// The WindowsApp documents of a YAML stream.
fn apps_in(yaml: &str) -> Vec<serde_json::Value> {
    winapp_operator::yaml::parse_stream(yaml)
        .map(|docs| docs.into_iter().map(|d| d.value).filter(|v| v["kind"] == "WindowsApp").collect())
        .unwrap_or_default()
}

#[test]
fn the_operator_admits_every_app_the_api_server_stores_and_every_example() {
    let mut inputs: Vec<(String, String)> = corpus()
        .into_iter()
        .filter(|c| c.server == Expect::Accepts)
        .map(|c| (format!("tests/corpus/{}.yaml", c.name), c.yaml))
        .collect();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(&examples).expect("examples/") {
        let path = entry.expect("entry").path();
        let yaml = std::fs::read_to_string(&path).expect("read example");
        inputs.push((path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&path).display().to_string(), yaml));
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, yaml) in &inputs {
        for doc in apps_in(yaml) {
            checked += 1;
            match as_stored(&doc) {
                None => failures.push(format!("{name}: the operator cannot decode it")),
                Some(app) => {
                    if let Err(e) = schema::check_stored(&app) {
                        failures.push(format!("{name}: {e}"));
                    }
                }
            }
        }
    }
    assert!(checked >= 50, "only {checked} apps checked");
    assert!(failures.is_empty(), "the operator would refuse what the API server stores:\n{}", failures.join("\n"));
}

/// The schema errors that cannot survive decoding into the operator's type: unknown fields (pruned,
/// as the API server prunes them under a CRD that does not declare them), values of another type
/// that the type reads anyway (a quantity written as a number), and metadata that only the API
/// server writes or checks (finalizers).
fn lost_in_decoding(e: &schema::SchemaError) -> bool {
    matches!(e.problem, schema::Problem::UnknownField { .. } | schema::Problem::WrongType { .. })
        || e.path.0.starts_with(&[schema::Step::Key("metadata".into()), schema::Step::Key("finalizers".into())])
}

#[test]
fn the_operator_finds_the_schema_errors_that_render_finds() {
    let mut compared = 0;
    let mut failures = Vec::new();
    for case in corpus().into_iter().filter(|c| c.server == Expect::Refuses) {
        for doc in apps_in(&case.yaml) {
            let render_errors = schema::check(&doc).err().unwrap_or_default();
            if render_errors.iter().any(lost_in_decoding) {
                continue;
            }
            let Some(app) = as_stored(&doc) else { continue };
            compared += 1;
            let operator_errors = schema::check_stored(&app).err().map(|e| e.0).unwrap_or_default();
            if operator_errors != render_errors {
                failures
                    .push(format!("{}:\n  render:   {render_errors:?}\n  operator: {operator_errors:?}", case.name));
            }
        }
    }
    assert!(compared >= 40, "only {compared} corpus inputs compared");
    assert!(failures.is_empty(), "the operator and render disagree:\n{}", failures.join("\n"));
}
