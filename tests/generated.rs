//! Generated files are produced by the code: the committed CRD and the golden renders of every
//! example must equal what the code produces now. `UPDATE_GOLDEN=1 cargo test --test generated`
//! rewrites them (review the diff before committing).

use std::path::{Path, PathBuf};

use winapp_operator::{crd, render};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("{} is missing ({e}); run UPDATE_GOLDEN=1 cargo test --test generated", path.display())
    });
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(a, b)| a != b);
        panic!(
            "{} is stale (first difference at line {}); run UPDATE_GOLDEN=1 cargo test --test generated and review the diff",
            path.display(),
            first.map_or_else(|| "end".to_string(), |l| (l + 1).to_string())
        );
    }
}

#[test]
fn committed_crd_is_current() {
    let yaml = crd::crd_yaml().expect("CRD serializes");
    check(&root().join(crd::CRD_PATH), &yaml);
    check(&root().join("config/crd/windowsapps.winapp.dev.yaml"), &yaml);
    check(&root().join("charts/winapp-operator/crds/windowsapps.winapp.dev.yaml"), &yaml);
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// What scripts/demo grants the namespace it applies the examples into (the platform team's
/// say, visible in the demo): render judges the examples by the same grants.
const DEMO_GRANTS: &str = "winapp.dev/allow=host-process,node-agent,smb-volumes";

#[test]
fn the_demo_grants_the_examples_what_the_golden_renders_assume() {
    let demo = std::fs::read_to_string(root().join("scripts/demo")).expect("read scripts/demo");
    assert!(demo.contains(DEMO_GRANTS), "scripts/demo should annotate its namespace with {DEMO_GRANTS}");
}

#[test]
fn every_example_renders_as_its_golden_snapshot() {
    let files = examples();
    assert!(files.len() >= 11, "expected one example per scenario, found {}", files.len());
    let rules = DEMO_GRANTS.split_once('=').map(|(_, r)| r).unwrap_or_default();
    let policy = winapp_operator::policy::Policy::allowing(
        rules.split(',').map(|r| r.parse::<winapp_operator::policy::Rule>().expect("a rule")),
    );
    let options = render::Options { policy, ..render::Options::default() };
    for file in files {
        let input = std::fs::read_to_string(&file).expect("read example");
        let rendered = render::render_with(&input, "default", &options)
            .unwrap_or_else(|e| panic!("{} does not render: {e:?}", file.display()));
        let name = file.file_name().expect("file name");
        check(&root().join("tests/golden").join(name), &rendered.yaml);
    }
}

#[test]
fn every_golden_snapshot_has_an_example() {
    let examples: Vec<_> = examples().iter().map(|p| p.file_name().map(ToOwned::to_owned)).collect();
    for entry in std::fs::read_dir(root().join("tests/golden")).expect("tests/golden exists") {
        let name = entry.expect("dir entry").file_name();
        assert!(examples.contains(&Some(name.clone())), "tests/golden/{name:?} has no example; delete it");
    }
}
