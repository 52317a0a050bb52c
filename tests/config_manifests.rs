//! `config/` as a platform team installs it: the whole kustomization passes server-side
//! dry-run, the manager's pod is admitted under Pod Security `restricted`, and the operator's
//! RBAC grants nothing beyond an explicit allow-list: what the child kinds need (derived from
//! their one list, `winapp_operator::controller::kinds`) and the reads listed here with a reason.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use support::{TestNamespace, kubectl};
use winapp_operator::controller::kinds;

const SA: &str = "system:serviceaccount:winapp-system:winapp-operator";

fn root() -> String {
    env!("CARGO_MANIFEST_DIR").to_owned()
}

fn ensure_operator_namespace() {
    let _ = kubectl(&["create", "namespace", "winapp-system"], None);
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn config_default_passes_server_side_dry_run() {
    support::client().await;
    ensure_operator_namespace();
    let out = kubectl(&["apply", "--dry-run=server", "-k", &format!("{}/config/default", root())], None)
        .unwrap_or_else(|e| panic!("config/default refused: {e}"));
    for kind in [
        "customresourcedefinition",
        "clusterrole",
        "deployment.apps/winapp-operator",
        "service/winapp-operator-metrics",
        "validatingadmissionpolicy.admissionregistration.k8s.io/winapp-operator-fence",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/winapp-operator-fence",
    ] {
        assert!(out.contains(kind), "{kind} missing from:\n{out}");
    }
    // A dry run persists nothing: the samples need the CRD for real.
    kubectl(&["apply", "--server-side", "-k", &format!("{}/config/crd", root())], None).expect("install the CRD");
    kubectl(&["wait", "--for=condition=Established", "crd/windowsapps.winapp.dev"], None).expect("CRD established");
    kubectl(&["apply", "--dry-run=server", "-k", &format!("{}/config/samples", root())], None)
        .unwrap_or_else(|e| panic!("config/samples refused: {e}"));
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn the_manager_pod_is_admitted_under_pod_security_restricted() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "psa").await;
    kubectl(&["label", "namespace", ns.name(), "pod-security.kubernetes.io/enforce=restricted"], None).expect("label");
    kubectl(&["create", "serviceaccount", "winapp-operator", "-n", ns.name()], None).expect("service account");
    let manifests = kubectl(&["kustomize", &format!("{}/config/manager", root())], None).expect("kustomize");
    let deployment =
        manifests.split("\n---\n").find(|d| d.contains("kind: Deployment")).expect("the manager Deployment");
    let deployment: serde_json::Value = serde_saphyr::from_str(deployment).expect("YAML");
    let template = &deployment["spec"]["template"];
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "manager", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    });
    let pod = serde_json::to_string(&pod).expect("json");
    kubectl(&["create", "-n", ns.name(), "--dry-run=server", "-f", "-"], Some(&pod))
        .unwrap_or_else(|e| panic!("the manager pod is refused under restricted: {e}"));
    // The namespace really enforces: the same pod allowed to escalate privileges is refused.
    let bad = pod.replace("\"allowPrivilegeEscalation\":false", "\"allowPrivilegeEscalation\":true");
    assert_ne!(bad, pod);
    let err = kubectl(&["create", "-n", ns.name(), "--dry-run=server", "-f", "-"], Some(&bad)).expect_err("admitted");
    assert!(err.contains("violates PodSecurity \"restricted"), "{err}");
    ns.cleanup().await;
}

/// What the operator needs beyond its children (whose grants `kinds::grants` derives from the
/// list of child kinds): (API group, resource, resource names, verbs), and why.
const NOT_CHILDREN: &[(&str, &str, &str, &[&str])] = &[
    // The resource it reconciles: read, add/remove its finalizer, write status.
    ("winapp.dev", "windowsapps", "", &["get", "list", "patch", "watch"]),
    ("winapp.dev", "windowsapps/status", "", &["patch"]),
    // Owner references with blockOwnerDeletion need update on the owner's finalizers.
    ("winapp.dev", "windowsapps/finalizers", "", &["update"]),
    // Placement, and the platform's grants (namespace annotations, metadata only).
    ("", "nodes", "", &["get", "list", "watch"]),
    ("", "namespaces", "", &["get", "list", "watch"]),
    ("node.k8s.io", "runtimeclasses", "", &["get", "list", "watch"]),
    // Whether the gMSA CRD is installed.
    ("apiextensions.k8s.io", "customresourcedefinitions", "gmsacredentialspecs.windows.k8s.io", &["get"]),
    ("events.k8s.io", "events", "", &["create", "patch"]),
    // Why pods are not available: read while a rollout is stuck, never watched.
    ("", "pods", "", &["list"]),
    ("", "events", "", &["list"]),
    // Whether the SMB CSI driver is registered on a stuck pod's node: one GET per node.
    ("storage.k8s.io", "csinodes", "", &["get"]),
];

/// One grant: (group, resource, resource name or "", verb).
type Grant = (String, String, String, String);

/// Everything config/rbac/cluster_role.yaml must grant: the child kinds' grants and NOT_CHILDREN.
fn needed() -> BTreeSet<Grant> {
    let children =
        kinds::grants().into_iter().map(|(g, r, v, _)| (g.to_owned(), r.to_owned(), String::new(), v.to_owned()));
    let others = NOT_CHILDREN.iter().flat_map(|(g, r, n, verbs)| {
        verbs.iter().map(move |v| ((*g).to_owned(), (*r).to_owned(), (*n).to_owned(), (*v).to_owned()))
    });
    children.chain(others).collect()
}

/// The grants of an RBAC rules list, one per group, resource, name and verb.
fn granted(rules: &serde_json::Value) -> BTreeSet<Grant> {
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules is a list") {
        let names = list(&rule["resourceNames"]);
        let names = if names.is_empty() { vec![String::new()] } else { names };
        for g in list(&rule["apiGroups"]) {
            for r in list(&rule["resources"]) {
                for n in &names {
                    for v in list(&rule["verbs"]) {
                        out.insert((g.clone(), r.clone(), n.clone(), v));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn the_cluster_role_grants_what_the_child_kinds_and_the_listed_reads_need_and_nothing_more() {
    let text = std::fs::read_to_string(format!("{}/config/rbac/cluster_role.yaml", root())).expect("cluster_role.yaml");
    let role: serde_json::Value = serde_saphyr::from_str(&text).expect("cluster_role.yaml is YAML");
    let granted = granted(&role["rules"]);
    let needed = needed();
    let missing: Vec<_> = needed.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "config/rbac/cluster_role.yaml must grant exactly what the child kinds (src/controller/kinds.rs) and NOT_CHILDREN need;\nmissing: {missing:?}\nbeyond: {extra:?}"
    );
}

/// What the operator may do, as `kubectl auth can-i --list` names it: resource -> (resource
/// names, verbs). Anything else is a finding.
fn allow_list() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut allowed: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    let extra: &[(&str, &str, &str, &[&str])] = &[
        ("coordination.k8s.io", "leases", "", &["create", "get", "update"]),
        // Granted to every authenticated user by Kubernetes' defaults.
        ("authentication.k8s.io", "selfsubjectreviews", "", &["create"]),
        ("authorization.k8s.io", "selfsubjectaccessreviews", "", &["create"]),
        ("authorization.k8s.io", "selfsubjectrulesreviews", "", &["create"]),
        ("certificates.k8s.io", "clustertrustbundles", "", &["get", "list", "watch"]),
    ];
    let extra = extra.iter().flat_map(|(g, r, n, verbs)| {
        verbs.iter().map(move |v| ((*g).to_owned(), (*r).to_owned(), (*n).to_owned(), (*v).to_owned()))
    });
    for (group, resource, name, verb) in needed().into_iter().chain(extra) {
        // kubectl names a subresource after the group: windowsapps.winapp.dev/status.
        let (base, sub) =
            resource.split_once('/').map_or((resource.as_str(), String::new()), |(b, s)| (b, format!("/{s}")));
        let key = if group.is_empty() { resource.clone() } else { format!("{base}.{group}{sub}") };
        let names = if name.is_empty() { String::new() } else { format!("[{name}]") };
        allowed.entry(key).or_insert_with(|| (names, BTreeSet::new())).1.insert(verb);
    }
    allowed
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn the_operator_rbac_grants_nothing_beyond_the_allow_list() {
    support::client().await;
    ensure_operator_namespace();
    kubectl(&["apply", "--server-side", "-k", &format!("{}/config/rbac", root())], None).expect("apply config/rbac");
    // The operator tests add the optional secret-check component; take it away for this check.
    let _ = kubectl(&["delete", "clusterrolebinding", "winapp-operator-secret-check", "--ignore-not-found"], None);
    let out = kubectl(&["auth", "can-i", "--list", "--as", SA, "-n", "winapp-system"], None).expect("can-i --list");
    let allowed = allow_list();
    let mut seen = BTreeSet::new();
    for line in out.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.is_empty() || cols[0].starts_with('[') {
            continue; // non-resource URLs (discovery, health), granted to everyone
        }
        // Resources, Non-Resource URLs ([]), Resource Names ([...]), Verbs ([...]).
        let resource = cols[0];
        let rest = line[line.find(resource).unwrap_or(0) + resource.len()..].trim();
        let groups: Vec<&str> = rest.split(']').map(|s| s.trim().trim_start_matches('[')).collect();
        let names = groups.get(1).copied().unwrap_or("");
        let verbs: BTreeSet<&str> = groups.get(2).copied().unwrap_or("").split_whitespace().collect();
        assert!(!resource.contains('*') && !verbs.contains("*"), "wildcard grant: {line}");
        let (allowed_names, allowed_verbs) =
            allowed.get(resource).unwrap_or_else(|| panic!("not on the allow-list: {line}"));
        let names = if names.is_empty() { String::new() } else { format!("[{names}]") };
        assert_eq!(&names, allowed_names, "resource names of {resource}: {line}");
        for v in &verbs {
            assert!(allowed_verbs.contains(*v), "verb {v} on {resource} is not on the allow-list: {line}");
        }
        seen.insert(resource.to_owned());
    }
    // And the allow-list is what the operator actually gets (a test that can fail both ways).
    for must in
        ["deployments.apps", "persistentvolumes", "gmsacredentialspecs.windows.k8s.io", "leases.coordination.k8s.io"]
    {
        assert!(seen.contains(must), "{must} missing from the grants:\n{out}");
    }
    assert!(seen.contains("pods") && seen.contains("events"), "list on pods and events (diagnosis):\n{out}");
    assert!(!seen.contains("secrets"), "config/rbac grants no access to Secrets");
}

/// The Argo CD health check passes its health_test.yaml in gopher-lua (Argo CD's Lua 5.1), and the
/// argocd-cm snippet inlines exactly that script.
#[test]
fn the_argocd_configmap_snippet_inlines_the_tested_health_check() {
    // ARGOCD_HEALTH is set by scripts/test; otherwise build (or find) the cached harness.
    let bin = std::env::var("ARGOCD_HEALTH").unwrap_or_else(|_| {
        let out = std::process::Command::new(format!("{}/hack/argocd/build.sh", root()))
            .output()
            .expect("run hack/argocd/build.sh");
        assert!(out.status.success(), "argocd-health build failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().last().expect("binary path").trim().to_owned()
    });
    let dir = format!("{}/config/argocd/resource_customizations", root());
    let script = format!("{dir}/winapp.dev/WindowsApp/health.lua");
    let cm = format!("{}/config/argocd/argocd-cm-patch.yaml", root());
    for args in [vec!["test", dir.as_str()], vec!["check-cm", script.as_str(), cm.as_str()]] {
        let out = std::process::Command::new(&bin)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("run {bin}: {e} (hack/argocd/build.sh builds it)"));
        assert!(
            out.status.success(),
            "argocd-health {}:\n{}{}",
            args[0],
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
