//! The manifest scan: kube-score over what a platform team installs (`kubectl kustomize
//! config/default`, `helm template` of the chart, by default and with its options on) and what
//! WindowsApps become (`winapp-operator render` of every file in examples/), with every kube-score
//! check on except those that `hack/kube-score/checks.yaml` skips, each with its reason. The scan
//! finds nothing; a deliberately bad Deployment is flagged under the same skips; and every skip
//! names a kube-score check that would still find something without it.
//!
//! The kube-score binary is `$KUBE_SCORE` (scripts/test exports it) or what
//! `hack/kube-score/build.sh` builds. No cluster is needed.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde::Deserialize;
use serde_json::Value;
use support::{kubectl, run};

const CONFIG: &str = "hack/kube-score/checks.yaml";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `hack/kube-score/checks.yaml`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    kubernetes_version: String,
    /// Checks that do not apply.
    ignore: Skips,
    /// Real findings not fixed yet.
    known: Skips,
}

/// Check -> reason: for every manifest, and for each scope.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Skips {
    #[serde(default)]
    all: BTreeMap<String, String>,
    #[serde(default)]
    operator: BTreeMap<String, String>,
    #[serde(default)]
    apps: BTreeMap<String, String>,
}

/// What is scanned: the operator's own install (a Linux Deployment), or what WindowsApps become
/// (Windows pods).
#[derive(Clone, Copy, Debug)]
enum Scope {
    Operator,
    Apps,
}

impl Skips {
    fn sections(&self) -> [(&'static str, &BTreeMap<String, String>); 3] {
        [("all", &self.all), ("operator", &self.operator), ("apps", &self.apps)]
    }

    fn in_scope(&self, scope: Scope) -> impl Iterator<Item = &str> {
        let scoped = match scope {
            Scope::Operator => &self.operator,
            Scope::Apps => &self.apps,
        };
        self.all.keys().chain(scoped.keys()).map(String::as_str)
    }
}

fn config() -> &'static Config {
    static CONFIG_FILE: OnceLock<Config> = OnceLock::new();
    CONFIG_FILE.get_or_init(|| {
        let text = std::fs::read_to_string(root().join(CONFIG)).unwrap_or_else(|e| panic!("{CONFIG}: {e}"));
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{CONFIG}: {e}"))
    })
}

/// The checks that a scope skips, ignored or known.
fn skipped(scope: Scope) -> BTreeSet<&'static str> {
    let config = config();
    config.ignore.in_scope(scope).chain(config.known.in_scope(scope)).collect()
}

/// `$KUBE_SCORE`, or the binary that hack/kube-score/build.sh builds (cached) and prints on its last line.
fn kube_score_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("KUBE_SCORE").filter(|b| !b.is_empty()) {
            return bin.to_string_lossy().into_owned();
        }
        let script = root().join("hack/kube-score/build.sh");
        let out = run(&script.to_string_lossy(), &[], None)
            .unwrap_or_else(|e| panic!("cannot build kube-score (set KUBE_SCORE to use another binary): {e}"));
        out.lines().last().expect("hack/kube-score/build.sh printed the binary path").trim().to_owned()
    })
}

/// kube-score's checks, from `kube-score list` (`id,target,description,default|optional`): id -> optional.
fn checks() -> &'static BTreeMap<String, bool> {
    static CHECKS: OnceLock<BTreeMap<String, bool>> = OnceLock::new();
    CHECKS.get_or_init(|| {
        let out = run(kube_score_bin(), &["list"], None).unwrap_or_else(|e| panic!("kube-score list: {e}"));
        let checks: BTreeMap<String, bool> = out
            .lines()
            .filter_map(|l| Some((l.split(',').next()?.to_owned(), l.rsplit(',').next()? == "optional")))
            .collect();
        assert!(checks.len() > 30 && checks.values().any(|&o| o), "unexpected kube-score list:\n{out}");
        checks
    })
}

/// One check that is not OK on one object.
struct Finding {
    check: String,
    object: String,
    file: String,
    summary: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({}): {}", self.check, self.object, self.file, self.summary)
    }
}

/// Runs `kube-score score` on `files` with every check on but `skip` (and no `kube-score/ignore`
/// annotations: the config is the only skip list), in `format`. Its stdout; exit code 1 means findings.
fn kube_score(files: &[PathBuf], skip: &BTreeSet<&str>, format: &str) -> String {
    let mut cmd = Command::new(kube_score_bin());
    cmd.args(["score", "--kubernetes-version", &config().kubernetes_version, "--disable-ignore-checks-annotations"])
        .args(["--output-format", format, "--color", "never"]);
    for (check, &optional) in checks() {
        if skip.contains(check.as_str()) {
            cmd.args(["--ignore-test", check]);
        } else if optional {
            cmd.args(["--enable-optional-test", check]);
        }
    }
    let out = cmd.args(files).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", kube_score_bin()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "kube-score failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What kube-score finds in `files` with `skip` skipped.
fn scan(files: &[PathBuf], skip: &BTreeSet<&str>) -> Vec<Finding> {
    let json = kube_score(files, skip, "json");
    let objects: Vec<Value> = serde_json::from_str(&json).unwrap_or_else(|e| panic!("kube-score JSON: {e}\n{json}"));
    let mut findings = Vec::new();
    for obj in &objects {
        let file = obj["file_name"].as_str().unwrap_or_default();
        let file = Path::new(file).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        for check in obj["checks"].as_array().into_iter().flatten() {
            // Grades: 1 critical, 5 warning, 7 almost OK, 10 OK.
            if check["skipped"] == true || check["grade"].as_i64().unwrap_or(0) >= 10 {
                continue;
            }
            let comments = check["comments"].as_array().cloned().unwrap_or_default();
            let summaries: Vec<String> = comments
                .iter()
                .map(|c| {
                    let path = c["path"].as_str().unwrap_or_default();
                    let summary = c["summary"].as_str().unwrap_or_default();
                    if path.is_empty() { summary.to_owned() } else { format!("{path}: {summary}") }
                })
                .collect();
            findings.push(Finding {
                check: check["check"]["id"].as_str().unwrap_or_default().to_owned(),
                object: obj["object_name"].as_str().unwrap_or_default().to_owned(),
                file: file.clone(),
                summary: summaries.join("; "),
            });
        }
    }
    findings
}

/// The manifests, written once per test process under the target directory.
struct Manifests {
    operator: Vec<PathBuf>,
    apps: Vec<PathBuf>,
}

impl Manifests {
    fn of(&self, scope: Scope) -> &[PathBuf] {
        match scope {
            Scope::Operator => &self.operator,
            Scope::Apps => &self.apps,
        }
    }
}

/// `$HELM`, or the binary that hack/helm/build.sh builds (cached) and prints on its last line.
fn helm_bin() -> String {
    if let Some(helm) = std::env::var_os("HELM").filter(|h| !h.is_empty()) {
        return helm.to_string_lossy().into_owned();
    }
    let out = run(&root().join("hack/helm/build.sh").to_string_lossy(), &[], None)
        .unwrap_or_else(|e| panic!("cannot build helm (set HELM to use another binary): {e}"));
    out.lines().last().expect("hack/helm/build.sh printed the helm path").trim().to_owned()
}

/// Every document of a YAML stream with a pod template, skipping the rest.
fn pod_templates(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap_or_else(|e| panic!("not a YAML stream: {e}\n{yaml}"))
        .into_iter()
        .filter(|d| !d["spec"]["template"]["spec"].is_null())
        .collect()
}

fn manifests() -> &'static Manifests {
    static MANIFESTS: OnceLock<Manifests> = OnceLock::new();
    MANIFESTS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("manifest-scan");
        std::fs::create_dir_all(&dir).expect("create the scan directory");
        let write = |name: &str, yaml: &str| {
            let path = dir.join(name);
            std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        };

        let chart = root().join("charts/winapp-operator").to_string_lossy().into_owned();
        let config_default = root().join("config/default").to_string_lossy().into_owned();
        let helm = helm_bin();
        let template = |extra: &[&str]| {
            let mut args = vec!["template", "winapp-operator", chart.as_str(), "--namespace", "winapp-system"];
            args.extend_from_slice(extra);
            run(&helm, &args, None).unwrap_or_else(|e| panic!("helm template failed: {e}"))
        };
        let options = "networkPolicy.enabled=true,secretCheck.enabled=true,serviceMonitor.enabled=true,\
                       prometheusRule.enabled=true,grafanaDashboard.enabled=true";
        let operator = vec![
            write(
                "config-default.yaml",
                &kubectl(&["kustomize", &config_default], None).unwrap_or_else(|e| panic!("kustomize: {e}")),
            ),
            write("chart.yaml", &template(&[])),
            write("chart-options.yaml", &template(&["--set", options])),
        ];
        for path in &operator {
            let yaml = std::fs::read_to_string(path).expect("written");
            assert!(!pod_templates(&yaml).is_empty(), "{}: no Deployment to scan", path.display());
        }

        let mut examples: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
            .expect("examples/")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        examples.sort();
        assert!(!examples.is_empty(), "no examples/*.yaml");
        let mut apps = Vec::new();
        for example in examples {
            let file = example.to_string_lossy();
            // With what scripts/demo grants its namespace (the examples' HostProcess agent, SMB share).
            let args = ["render", "-f", &file, "-n", "demo", "--allow", "host-process,node-agent,smb-volumes"];
            let yaml = run(env!("CARGO_BIN_EXE_winapp-operator"), &args, None)
                .unwrap_or_else(|e| panic!("render {file}: {e}"));
            // The `apps` skips are for Windows pods: everything a WindowsApp becomes must be one.
            let templates = pod_templates(&yaml);
            assert!(!templates.is_empty(), "render {file}: no Deployment");
            for t in templates {
                let os = &t["spec"]["template"]["spec"]["os"]["name"];
                assert_eq!(os, "windows", "render {file}: {} is not a Windows pod", t["metadata"]["name"]);
            }
            let name = example.file_name().expect("a file name").to_string_lossy();
            apps.push(write(&format!("example-{name}"), &yaml));
        }
        Manifests { operator, apps }
    })
}

#[test]
fn kube_score_finds_nothing_in_the_install_and_the_rendered_examples() {
    let mut failures = Vec::new();
    for scope in [Scope::Operator, Scope::Apps] {
        let files = manifests().of(scope);
        let skip = skipped(scope);
        let findings = scan(files, &skip);
        if !findings.is_empty() {
            let list: Vec<String> = findings.iter().map(|f| format!("  {f}")).collect();
            failures.push(format!(
                "{scope:?}: {} finding(s):\n{}\nkube-score's report:\n{}",
                findings.len(),
                list.join("\n"),
                kube_score(files, &skip, "human")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nFix the manifests; a check that does not apply goes into {CONFIG} with its reason.",
        failures.join("\n")
    );
    for (section, known) in config().known.sections() {
        for (check, what) in known {
            eprintln!("known, not fixed yet ({section}): {check}: {what}");
        }
    }
}

#[test]
fn every_skip_is_a_kube_score_check_with_a_reason_and_still_finds_something() {
    let config = config();
    let mut seen = BTreeMap::new();
    for (list, skips) in [("ignore", &config.ignore), ("known", &config.known)] {
        for (section, entries) in skips.sections() {
            for (check, reason) in entries {
                let at = format!("{list}.{section}.{check}");
                assert!(checks().contains_key(check), "{CONFIG}: {at}: kube-score has no such check");
                assert!(!reason.trim().is_empty(), "{CONFIG}: {at}: give the reason");
                if let Some(other) = seen.insert(check.clone(), (at.clone(), section)) {
                    // A check may be skipped in both scopes, for a different reason each.
                    assert!(
                        section != other.1 && section != "all" && other.1 != "all",
                        "{CONFIG}: {at} is also {}",
                        other.0
                    );
                }
            }
        }
    }

    // Without any skip, each skipped check finds something where it is skipped.
    let found = |scope: Scope| -> BTreeSet<String> {
        scan(manifests().of(scope), &BTreeSet::new()).into_iter().map(|f| f.check).collect()
    };
    let (operator, apps) = (found(Scope::Operator), found(Scope::Apps));
    let mut stale = Vec::new();
    for (list, skips) in [("ignore", &config.ignore), ("known", &config.known)] {
        for (section, entries) in skips.sections() {
            for check in entries.keys() {
                let fires = match section {
                    "operator" => operator.contains(check),
                    "apps" => apps.contains(check),
                    _ => operator.contains(check) || apps.contains(check),
                };
                if !fires {
                    stale.push(format!("{list}.{section}.{check}"));
                }
            }
        }
    }
    assert!(stale.is_empty(), "{CONFIG}: these no longer find anything, remove them: {stale:?}");
}

const BAD: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers:
        - name: app
          image: nginx:latest
          env: [{name: MODE, value: a}, {name: MODE, value: b}]
          securityContext: {privileged: true}
";

#[test]
fn a_deliberately_bad_deployment_is_flagged_under_the_same_skips() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("manifest-scan");
    std::fs::create_dir_all(&dir).expect("create the scan directory");
    let bad = dir.join("bad-deployment.yaml");
    std::fs::write(&bad, BAD).expect("write the bad Deployment");
    let flagged = |skip: &BTreeSet<&str>| -> BTreeSet<String> {
        scan(std::slice::from_ref(&bad), skip).into_iter().map(|f| f.check).collect()
    };

    // Every skip of both scopes at once still leaves the worst of it flagged.
    let every_skip: BTreeSet<&str> = skipped(Scope::Operator).into_iter().chain(skipped(Scope::Apps)).collect();
    let found = flagged(&every_skip);
    for check in
        ["container-security-context-privileged", "container-image-tag", "environment-variable-key-duplication"]
    {
        assert!(found.contains(check), "{check} not flagged with every skip of {CONFIG}: {found:?}");
    }
    // The Windows-only skips do not leak into the operator's scope.
    let found = flagged(&skipped(Scope::Operator));
    for check in [
        "container-resources",
        "container-security-context-user-group-id",
        "container-security-context-readonlyrootfilesystem",
        "container-seccomp-profile",
    ] {
        assert!(found.contains(check), "{check} not flagged with the operator's skips: {found:?}");
    }
}
