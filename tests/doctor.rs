//! `winapp-operator doctor` against the dev cluster: the real binary, `-o json`, in each state the
//! cluster is put in, asserting on the level of the finding that state concerns and on the exit code.
//!
//! The states change cluster-wide objects (the GMSACredentialSpec CRD, gMSA webhook configurations,
//! the SMB CSIDriver and a DaemonSet in kube-system, a node taint, the operator's admission fence),
//! so they run one after another in one test function, and a guard puts the cluster back as the
//! other tests expect it (both CRDs and the fence installed, nothing else of ours left), also when
//! an assertion fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::Value;
use support::{TEST_LABEL, TestNamespace, kubectl};

const GMSA_CRD: &str = "gmsacredentialspecs.windows.k8s.io";
const SMB_DRIVER: &str = "smb.csi.k8s.io";
const SMB_DAEMONSET: &str = "csi-smb-node-win";
/// A taint that the operator's default placement (os=windows:NoSchedule) does not tolerate.
const FOREIGN_TAINT: &str = "dedicated=windows-gpu:NoSchedule";
/// Name of the webhook configurations this test creates.
const WEBHOOK_CONFIG: &str = "winapp-doctor-test-gmsa";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    kubectl(args, stdin).unwrap_or_else(|e| panic!("{e}"))
}

/// One run of `winapp-operator doctor -o json`.
struct Run {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
}

impl Run {
    fn findings(&self, check: &str) -> Vec<&Value> {
        self.json["findings"].as_array().into_iter().flatten().filter(|f| f["check"] == check).collect()
    }

    /// The findings of a check whose title contains `title`, with their levels.
    fn find(&self, check: &str, title: &str) -> &Value {
        self.findings(check)
            .into_iter()
            .find(|f| f["title"].as_str().is_some_and(|t| t.contains(title)))
            .unwrap_or_else(|| panic!("no {check} finding titled like {title:?}:\n{}", self.stdout))
    }

    /// The level of the one finding of a check.
    fn level(&self, check: &str) -> &str {
        let found = self.findings(check);
        assert_eq!(found.len(), 1, "one {check} finding expected:\n{}", self.stdout);
        found[0]["level"].as_str().unwrap_or_default()
    }

    fn errors(&self) -> Vec<&Value> {
        self.json["findings"].as_array().into_iter().flatten().filter(|f| f["level"] == "error").collect()
    }
}

fn doctor_with(args: &[&str], env: &[(&str, &str)], env_remove: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_winapp-operator"));
    cmd.args(["doctor", "-o", "json"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in env_remove {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("run winapp-operator doctor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}):\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let code = out.status.code().unwrap_or_else(|| panic!("doctor was killed: {stderr}"));
    Run { code, json, stdout, stderr }
}

/// Against the dev cluster (`KUBECONFIG`).
fn doctor(args: &[&str]) -> Run {
    let run = doctor_with(args, &[], &[]);
    assert_ne!(run.code, 2, "doctor could not run: {}\n{}", run.stderr, run.stdout);
    assert_eq!(run.json["summary"]["exitCode"], run.code, "the JSON summary states the exit code");
    run
}

/// Puts the cluster back as the other tests expect it: runs on drop, also after a failed assertion.
struct Restore {
    tainted: Option<String>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let label = format!("{TEST_LABEL}=true");
        if let Some(node) = self.tainted.take() {
            let _ = kubectl(&["taint", "nodes", &node, &format!("{FOREIGN_TAINT}-")], None);
        }
        let _ = kubectl(&["delete", "daemonset", "-n", "kube-system", "-l", &label, "--ignore-not-found"], None);
        let _ = kubectl(&["delete", "csidriver", "-l", &label, "--ignore-not-found"], None);
        for kind in ["mutatingwebhookconfiguration", "validatingwebhookconfiguration"] {
            let _ = kubectl(&["delete", kind, "-l", &label, "--ignore-not-found"], None);
        }
        // As tests/operator_crds.rs leaves them: both CRDs installed.
        install_crds();
        // As the operator tests leave it: the fence of config/admission.
        let _ = kubectl(&["apply", "--server-side", "-k", &repo().join("config/admission").to_string_lossy()], None);
    }
}

fn install_crds() {
    let root = repo();
    let _ = kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &root.join("crds").to_string_lossy()], None);
    let fixture = root.join("tests/fixtures/gmsacredentialspecs.windows.k8s.io.yaml");
    let _ = kubectl(&["apply", "--server-side", "-f", &fixture.to_string_lossy()], None);
    let _ = kubectl(
        &["wait", "--for=condition=Established", &format!("crd/{GMSA_CRD}"), "crd/windowsapps.winapp.dev"],
        None,
    );
}

/// Fails unless the object is absent or was made by a test (labelled `winapp.dev/test=true`):
/// this test must not remove a real add-on.
fn assert_ours_or_absent(kind: &str, name: &str, extra: &[&str]) {
    let mut args = vec!["get", kind, name, "--ignore-not-found", "-o", "json"];
    args.extend_from_slice(extra);
    let out = kubectl_ok(&args, None);
    if out.trim().is_empty() {
        return;
    }
    let obj: Value = serde_json::from_str(&out).expect("JSON");
    let fixture = obj["metadata"]["labels"]["winapp.dev/test-fixture"] == "true";
    let ours = obj["metadata"]["labels"][TEST_LABEL] == "true";
    assert!(fixture || ours, "{kind} {name} exists and is not a test object: run this test on the dev cluster only");
}

async fn windows_nodes() -> Vec<Node> {
    let nodes: Api<Node> = Api::all(support::client().await);
    nodes.list(&ListParams::default().labels("kubernetes.io/os=windows")).await.expect("list nodes").items
}

/// (a) the GMSACredentialSpec CRD and the gMSA webhooks, missing then installed.
fn gmsa_missing_then_installed() {
    assert_ours_or_absent("crd", GMSA_CRD, &[]);
    kubectl_ok(&["delete", "crd", GMSA_CRD, "--ignore-not-found", "--wait=true"], None);
    let run = doctor(&[]);
    assert_eq!(run.level("gmsa-crd"), "warning", "{}", run.stdout);
    assert!(run.find("gmsa-crd", "not installed")["message"].as_str().unwrap_or_default().contains("windows-gmsa"));
    assert_eq!(run.level("gmsa-webhook"), "warning", "{}", run.stdout);

    let fixture = repo().join("tests/fixtures/gmsacredentialspecs.windows.k8s.io.yaml");
    kubectl_ok(&["apply", "--server-side", "-f", &fixture.to_string_lossy()], None);
    kubectl_ok(&["wait", "--for=condition=Established", &format!("crd/{GMSA_CRD}")], None);
    // Webhook configurations named as upstream's, on pods; the object selector matches no pod,
    // so the API server never calls the (absent) service.
    for kind in ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"] {
        let config = format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {WEBHOOK_CONFIG}\n  labels: {{{TEST_LABEL}: \"true\"}}\nwebhooks:\n  - name: admission-webhook.windows-gmsa.sigs.k8s.io\n    clientConfig: {{service: {{namespace: default, name: {WEBHOOK_CONFIG}, path: /pod}}}}\n    rules: [{{operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [pods]}}]\n    objectSelector: {{matchLabels: {{winapp.dev/doctor-test-never: \"true\"}}}}\n    failurePolicy: Ignore\n    sideEffects: None\n    admissionReviewVersions: [v1]\n"
        );
        kubectl_ok(&["apply", "-f", "-"], Some(&config));
    }
    let run = doctor(&[]);
    assert_eq!(run.level("gmsa-crd"), "ok", "{}", run.stdout);
    assert_eq!(run.level("gmsa-webhook"), "ok", "{}", run.stdout);
    assert!(run.find("gmsa-webhook", "found")["message"].as_str().unwrap_or_default().contains(WEBHOOK_CONFIG));
}

/// (b) the SMB CSI driver, missing then present with its Windows node DaemonSet ready.
async fn smb_missing_then_ready() {
    assert_ours_or_absent("csidriver", SMB_DRIVER, &[]);
    assert_ours_or_absent("daemonset", SMB_DAEMONSET, &["-n", "kube-system"]);
    let run = doctor(&[]);
    assert_eq!(run.level("smb-csi-driver"), "warning", "{}", run.stdout);
    assert_eq!(run.level("smb-node-daemonset"), "warning", "{}", run.stdout);

    let manifests = format!(
        r#"apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: {SMB_DRIVER}
  labels: {{{TEST_LABEL}: "true"}}
spec:
  attachRequired: false
  podInfoOnMount: true
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {SMB_DAEMONSET}
  namespace: kube-system
  labels: {{{TEST_LABEL}: "true"}}
spec:
  selector:
    matchLabels: {{app: {SMB_DAEMONSET}}}
  template:
    metadata:
      labels: {{app: {SMB_DAEMONSET}}}
    spec:
      nodeSelector: {{kubernetes.io/os: windows}}
      tolerations: [{{key: os, operator: Equal, value: windows, effect: NoSchedule}}]
      containers:
        - name: smb
          image: registry.k8s.io/sig-storage/smbplugin:v1.17.0
"#
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&manifests));
    let want = windows_nodes().await.len();
    let mut last = String::new();
    for _ in 0..120 {
        last = kubectl_ok(
            &[
                "get",
                "daemonset",
                SMB_DAEMONSET,
                "-n",
                "kube-system",
                "-o",
                "jsonpath={.status.desiredNumberScheduled}/{.status.numberReady}",
            ],
            None,
        );
        if last == format!("{want}/{want}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(last, format!("{want}/{want}"), "the DaemonSet's pods became Ready on every Windows node");
    let run = doctor(&[]);
    assert_eq!(run.level("smb-csi-driver"), "ok", "{}", run.stdout);
    assert_eq!(run.level("smb-node-daemonset"), "ok", "{}", run.stdout);
    assert!(
        run.find("smb-node-daemonset", &format!("{want}/{want}"))["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("kube-system/{SMB_DAEMONSET}"))
    );

    let label = format!("{TEST_LABEL}=true");
    kubectl_ok(&["delete", "daemonset", "-n", "kube-system", "-l", &label, "--wait=true"], None);
    kubectl_ok(&["delete", "csidriver", "-l", &label, "--wait=true"], None);
}

/// (c) `--windows-version`: ltsc2025 has no node in the dev cluster, ltsc2022 has two.
fn windows_versions(operator_namespace: &str) {
    let scope = ["--operator-namespace", operator_namespace];
    let run = doctor(&[&["--windows-version", "ltsc2025"][..], &scope].concat());
    assert_eq!(run.level("windows-version"), "error", "{}", run.stdout);
    assert!(run.find("windows-version", "ltsc2025")["message"].as_str().unwrap_or_default().contains("10.0.26100"));
    assert_eq!(run.code, 1, "an error finding exits 1:\n{}", run.stdout);

    let run = doctor(&[&["--windows-version", "ltsc2022"][..], &scope].concat());
    assert_eq!(run.level("windows-version"), "ok", "{}", run.stdout);
    assert!(run.errors().is_empty(), "no error on the dev cluster: {:#?}", run.errors());
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.json["summary"]["errors"], 0);

    // --strict: the warnings of the dev cluster (no operator Deployment, no gMSA webhook) count.
    let run = doctor(&[&["--windows-version", "ltsc2022", "--strict"][..], &scope].concat());
    assert!(run.json["summary"]["warnings"].as_u64().is_some_and(|w| w > 0), "{}", run.stdout);
    assert_eq!(run.code, 1, "--strict makes warnings fail:\n{}", run.stdout);
}

/// (d) a taint the default placement does not tolerate: a warning naming it and the field to set.
async fn untolerated_taint(restore: &mut Restore) {
    let run = doctor(&[]);
    assert_eq!(run.level("taints"), "ok", "{}", run.stdout);
    let node = windows_nodes().await.first().map(|n| n.name_any()).expect("a Windows node");
    restore.tainted = Some(node.clone());
    kubectl_ok(&["taint", "nodes", &node, FOREIGN_TAINT], None);
    let run = doctor(&[]);
    let taint = run.find("taints", FOREIGN_TAINT);
    assert_eq!(taint["level"], "warning", "{}", run.stdout);
    let message = taint["message"].as_str().unwrap_or_default();
    assert!(message.contains(&node) && message.contains("spec.windows.toleration"), "{message}");

    kubectl_ok(&["taint", "nodes", &node, &format!("{FOREIGN_TAINT}-")], None);
    restore.tainted = None;
    assert_eq!(doctor(&[]).level("taints"), "ok");
}

/// (e) a HostProcess WindowsApp in a namespace that enforces Pod Security `baseline`.
async fn host_process_in_a_baseline_namespace() {
    if kubectl(&["get", "crd", "windowsapps.winapp.dev"], None).is_err() {
        kubectl_ok(&["apply", "--server-side", "-f", &repo().join("crds").to_string_lossy()], None);
        kubectl_ok(&["wait", "--for=condition=Established", "crd/windowsapps.winapp.dev"], None);
    }
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "doctor-psa").await;
    kubectl_ok(&["label", "namespace", ns.name(), "pod-security.kubernetes.io/enforce=baseline"], None);
    let example = repo().join("examples/hostprocess-agent.yaml");
    kubectl_ok(&["apply", "-n", ns.name(), "-f", &example.to_string_lossy()], None);

    let run = doctor(&[]);
    let refused = run.find("pod-security", ns.name());
    assert_eq!(refused["level"], "error", "{}", run.stdout);
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("pod-security.kubernetes.io/enforce=privileged") && message.contains("log-agent"));
    assert_eq!(run.code, 1, "{}", run.stdout);

    kubectl_ok(
        &["label", "--overwrite", "namespace", ns.name(), "pod-security.kubernetes.io/enforce=privileged"],
        None,
    );
    let run = doctor(&[]);
    assert!(
        run.findings("pod-security").iter().all(|f| f["level"] != "error"),
        "a privileged namespace admits HostProcess pods:\n{}",
        run.stdout
    );
    ns.cleanup().await;
}

/// (f) WindowsApps in a namespace without a Pod Security level: a warning with the level to set.
async fn apps_in_an_unlabelled_namespace() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "doctor-nolevel").await;
    let example = repo().join("examples/worker-servercore.yaml");
    kubectl_ok(&["apply", "-n", ns.name(), "-f", &example.to_string_lossy()], None);
    let run = doctor(&[]);
    let warning =
        run.find("pod-security", &format!("namespace {} has WindowsApps but no Pod Security level", ns.name()));
    assert_eq!(warning["level"], "warning", "{}", run.stdout);
    let label = format!("kubectl label namespace {} pod-security.kubernetes.io/enforce=baseline", ns.name());
    assert!(warning["message"].as_str().unwrap_or_default().contains(&label), "{warning}");
    kubectl_ok(&["label", "namespace", ns.name(), "pod-security.kubernetes.io/enforce=baseline"], None);
    let run = doctor(&[]);
    assert!(
        run.findings("pod-security").iter().all(|f| !f["title"].as_str().unwrap_or_default().contains(ns.name())),
        "labelled, the namespace is no longer a warning:\n{}",
        run.stdout
    );
    ns.cleanup().await;
}

/// (f') A WindowsApp pinned to ltsc2019 is listed under its build; with the build's only node
/// cordoned (the pool being retired), a warning that names the app to move.
async fn apps_on_a_build_being_retired() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "doctor-builds").await;
    kubectl_ok(
        &["apply", "-n", ns.name(), "-f", "-"],
        Some(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {name: legacy}\nspec:\n  image: registry.example.com/legacy/web:2.3-ltsc2019\n  windows: {version: ltsc2019}\n",
        ),
    );
    let app = format!("{}/legacy", ns.name());
    let run = doctor(&[]);
    let listed = run.find("app-builds", "ltsc2019 (10.0.17763)");
    assert_eq!(listed["level"], "ok", "{}", run.stdout);
    assert!(listed["message"].as_str().unwrap_or_default().contains(&app), "{listed}");
    // Cordoned for as long as this step lasts, also if it fails.
    struct Uncordon;
    impl Drop for Uncordon {
        fn drop(&mut self) {
            let _ = kubectl(&["uncordon", "win2019-1"], None);
        }
    }
    let _uncordon = Uncordon;
    kubectl_ok(&["cordon", "win2019-1"], None);
    let run = doctor(&[]);
    let leaving = run.find("app-builds", "ltsc2019 (10.0.17763)");
    assert_eq!(leaving["level"], "warning", "{}", run.stdout);
    let title = leaving["title"].as_str().unwrap_or_default();
    let message = leaving["message"].as_str().unwrap_or_default();
    assert!(title.ends_with("on a build the cluster is leaving"), "{leaving}");
    assert!(message.contains("cordoned (win2019-1)") && message.contains(&app), "{leaving}");
    drop(_uncordon);
    ns.cleanup().await;
}

/// (g) The admission fence of config/admission: installed and enforced; unbound; gone.
fn admission_fence(operator_namespace: &str) {
    let admission = repo().join("config/admission").to_string_lossy().into_owned();
    let scope = ["--operator-namespace", operator_namespace];
    kubectl_ok(&["apply", "--server-side", "-k", &admission], None);
    let run = doctor(&scope);
    assert_eq!(run.find("operator-fence", "admission fence installed")["level"], "ok", "{}", run.stdout);
    kubectl_ok(&["delete", "validatingadmissionpolicybinding", "winapp-operator-fence"], None);
    let run = doctor(&scope);
    let unbound = run.find("operator-fence", "winapp-operator-fence not enforced");
    assert_eq!(unbound["level"], "warning", "{}", run.stdout);
    kubectl_ok(&["delete", "validatingadmissionpolicy", "winapp-operator-fence"], None);
    let run = doctor(&scope);
    let missing = run.find("operator-fence", "admission fence not installed");
    assert_eq!(missing["level"], "warning", "{}", run.stdout);
    assert!(missing["message"].as_str().unwrap_or_default().contains("config/admission"), "says how: {missing}");
    kubectl_ok(&["apply", "--server-side", "-k", &admission], None);
    assert_eq!(doctor(&scope).find("operator-fence", "admission fence installed")["level"], "ok");
}

/// (h) What an operator's policy grants, read from its Deployment (a stand-in with no replicas)
/// and from a namespace's annotation; and a fence that names another ServiceAccount than its own.
async fn policy_grants_of_an_operator() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "doctor-policy").await;
    let granted = TestNamespace::new(&client, "doctor-granted").await;
    kubectl_ok(&["annotate", "namespace", granted.name(), "winapp.dev/allow=host-process,node-agent"], None);
    let deployment = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: winapp-operator, labels: {app.kubernetes.io/name: winapp-operator}}
spec:
  replicas: 0
  selector: {matchLabels: {app: doctor-stand-in}}
  template:
    metadata: {labels: {app: doctor-stand-in}}
    spec:
      serviceAccountName: winapp-operator
      containers:
        - name: operator
          image: registry.example.com/winapp-operator:0.1.0
          args: [run, --allow=host-path, --allow-taint, dedicated=gpu]
          env: [{name: WINAPP_ALLOW, value: gmsa}]
"#;
    kubectl_ok(&["apply", "-n", ns.name(), "-f", "-"], Some(deployment));
    let run = doctor(&["--operator-namespace", ns.name()]);
    let policy = run.find("operator-policy", "grants node-level powers to every app: host-path");
    assert_eq!(policy["level"], "warning", "{}", run.stdout);
    let message = policy["message"].as_str().unwrap_or_default();
    assert!(message.contains("every app: rules gmsa, host-path; taints dedicated=gpu"), "{message}");
    assert!(message.contains(&format!("{} (rules host-process, node-agent)", granted.name())), "{message}");
    // config/admission fences winapp-system/winapp-operator, not this stand-in's account.
    let user = format!("system:serviceaccount:{}:winapp-operator", ns.name());
    let fence = run.find("operator-fence", &format!("does not match the operator's ServiceAccount {user}"));
    assert_eq!(fence["level"], "warning", "{}", run.stdout);
    granted.cleanup().await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn doctor_reports_each_state_of_the_cluster() {
    let mut restore = Restore { tainted: None };
    let client = support::client().await;
    let scope = TestNamespace::new(&client, "doctor-scope").await;

    gmsa_missing_then_installed();
    smb_missing_then_ready().await;
    windows_versions(scope.name());
    untolerated_taint(&mut restore).await;
    host_process_in_a_baseline_namespace().await;
    apps_in_an_unlabelled_namespace().await;
    apps_on_a_build_being_retired().await;
    admission_fence(scope.name());
    policy_grants_of_an_operator().await;

    drop(restore);
    scope.cleanup().await;
}

/// A kubeconfig for `user` (a token) on the dev cluster.
fn kubeconfig_with_token(dir: &Path, name: &str, token: &str) -> PathBuf {
    let admin: Value =
        serde_json::from_str(&kubectl_ok(&["config", "view", "--raw", "--minify", "-o", "json"], None)).expect("JSON");
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "dev", "cluster": admin["clusters"][0]["cluster"].clone()}],
        "users": [{"name": name, "user": {"token": token.trim()}}],
        "contexts": [{"name": name, "context": {"cluster": "dev", "user": name}}],
        "current-context": name,
    });
    let path = dir.join(format!("kubeconfig-{name}"));
    std::fs::write(&path, kubeconfig.to_string()).expect("write kubeconfig");
    path
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = repo().join("target/test-doctor").join(support::unique_name(name));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// (i) no kubeconfig, an unreachable server: exit 2, with the reason.
#[test]
fn doctor_exits_2_when_it_cannot_run() {
    let dir = scratch_dir("no-cluster");
    let home = dir.to_string_lossy().into_owned();
    let missing = dir.join("missing-kubeconfig").to_string_lossy().into_owned();
    let run = doctor_with(
        &[],
        &[("KUBECONFIG", &missing), ("HOME", &home)],
        &["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"],
    );
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.json["error"].as_str().is_some_and(|e| e.contains("KUBECONFIG")), "{}", run.stdout);
    assert!(run.stderr.contains("no cluster to check"), "{}", run.stderr);

    // Nothing listens on port 1.
    let unreachable = dir.join("unreachable");
    std::fs::write(
        &unreachable,
        r#"{"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": true}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "current-context": "c"}"#,
    )
    .expect("write kubeconfig");
    let run = doctor_with(&["--kubeconfig", &unreachable.to_string_lossy()], &[], &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.json["error"].as_str().is_some_and(|e| e.contains("unreachable")), "{}", run.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A user who may list nodes but nothing else: each refused read is a warning, not a failure;
/// a user who may not list nodes: exit 2.
#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn forbidden_reads_are_warnings_and_forbidden_nodes_exit_2() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "doctor-rbac").await;
    let dir = scratch_dir("rbac");
    kubectl_ok(&["create", "serviceaccount", "reader", "-n", ns.name()], None);
    let token = kubectl_ok(&["create", "token", "reader", "-n", ns.name(), "--duration=10m"], None);
    let kubeconfig = kubeconfig_with_token(&dir, "reader", &token);
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();

    let run = doctor_with(&["--kubeconfig", &kubeconfig], &[], &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.json["error"].as_str().is_some_and(|e| e.contains("nodes")), "{}", run.stdout);

    // Allowed to list nodes, and nothing else.
    let role = format!("{}-nodes", ns.name());
    let rbac = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {role}, labels: {{{TEST_LABEL}: \"true\"}}}}\nrules: [{{apiGroups: [\"\"], resources: [nodes], verbs: [get, list]}}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {role}, labels: {{{TEST_LABEL}: \"true\"}}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\nsubjects: [{{kind: ServiceAccount, name: reader, namespace: {}}}]\n",
        ns.name()
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&rbac));
    struct DeleteRbac(String);
    impl Drop for DeleteRbac {
        fn drop(&mut self) {
            let _ = kubectl(&["delete", "clusterrolebinding,clusterrole", &self.0, "--ignore-not-found"], None);
        }
    }
    let _rbac = DeleteRbac(role);
    let mut run = doctor_with(&["--kubeconfig", &kubeconfig], &[], &[]);
    for _ in 0..20 {
        if run.code != 2 {
            break; // the binding takes a moment to be in force
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        run = doctor_with(&["--kubeconfig", &kubeconfig], &[], &[]);
    }
    assert_ne!(run.code, 2, "with nodes readable, doctor runs: {}{}", run.stdout, run.stderr);
    assert_eq!(run.level("windows-nodes"), "ok", "{}", run.stdout);
    for check in [
        "gmsa-crd",
        "smb-csi-driver",
        "smb-node-daemonset",
        "pod-security",
        "operator-crd",
        "operator-deployment",
        "operator-rbac",
        "operator-fence",
        "operator-policy",
    ] {
        let found = run.findings(check);
        assert!(
            !found.is_empty()
                && found.iter().all(|f| f["level"] == "warning"
                    && f["title"].as_str().is_some_and(|t| t.contains("cannot check") && t.contains("forbidden"))),
            "{check}: a 'cannot check ...: forbidden' warning:\n{}",
            run.stdout
        );
    }
    assert_eq!(run.findings("gmsa-webhook").len(), 2, "one per webhook kind:\n{}", run.stdout);
    assert_eq!(run.code, 0, "forbidden reads are warnings, not errors:\n{}", run.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup().await;
}
