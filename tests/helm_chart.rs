//! `charts/winapp-operator` as a platform team installs it with Helm: the chart lints, its values
//! schema refuses bad values, it grants exactly the RBAC of `config/rbac` (and of the secret-check
//! component), and with `watchNamespace` exactly that of `config/namespaced`, its Deployment is
//! `config/manager`'s, its admission fence is `config/admission`'s, its CRD is the generated one,
//! the API server accepts what it renders, and a real `helm install` runs under Pod Security
//! `restricted` and `helm uninstall` leaves nothing behind.
//!
//! The helm binary is `$HELM` (scripts/test exports it) or what `hack/helm/build.sh` builds.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::OnceLock,
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Node, Pod},
};
use kube::api::Api;
use serde_json::{Value, json};
use support::{
    TestNamespace, deployment_available, documents, kubectl, kustomize, run, unique_name, wait_for, wait_for_list,
};

const CRD: &str = "crds/windowsapps.winapp.dev.yaml";
const CHART_CRD: &str = "charts/winapp-operator/crds/windowsapps.winapp.dev.yaml";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> String {
    root().join("charts/winapp-operator").to_string_lossy().into_owned()
}

/// `$HELM`, or the binary that hack/helm/build.sh builds (cached) and prints on its last line.
fn helm_bin() -> &'static str {
    static HELM: OnceLock<String> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(helm) = std::env::var_os("HELM").filter(|h| !h.is_empty()) {
            return helm.to_string_lossy().into_owned();
        }
        let script = root().join("hack/helm/build.sh");
        let out = run(&script.to_string_lossy(), &[], None)
            .unwrap_or_else(|e| panic!("cannot build helm (set HELM to use another binary): {e}"));
        out.lines().last().expect("hack/helm/build.sh printed the helm path").trim().to_owned()
    })
}

fn helm(args: &[&str]) -> Result<String, String> {
    run(helm_bin(), args, None)
}

/// `helm template RELEASE charts/winapp-operator -n NAMESPACE EXTRA...`, as YAML.
fn template(release: &str, namespace: &str, extra: &[&str]) -> Result<String, String> {
    let chart = chart();
    let mut args = vec!["template", release, chart.as_str(), "--namespace", namespace];
    args.extend_from_slice(extra);
    helm(&args)
}

/// The rendered objects, each exactly once, by (kind, name).
fn rendered(release: &str, namespace: &str, extra: &[&str]) -> BTreeMap<(String, String), Value> {
    let yaml = template(release, namespace, extra).unwrap_or_else(|e| panic!("helm template failed: {e}"));
    let mut objects = BTreeMap::new();
    for doc in documents(&yaml) {
        let key = (doc["kind"].as_str().unwrap_or_default().to_owned(), name(&doc).to_owned());
        assert!(objects.insert(key.clone(), doc).is_none(), "{key:?} rendered twice");
    }
    objects
}

fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

fn only<'a>(objects: &'a BTreeMap<(String, String), Value>, kind: &str) -> &'a Value {
    let mut of_kind = objects.iter().filter(|((k, _), _)| k == kind).map(|(_, v)| v);
    let first = of_kind.next().unwrap_or_else(|| panic!("no {kind} rendered"));
    assert!(of_kind.next().is_none(), "more than one {kind} rendered");
    first
}

#[test]
fn the_chart_crd_is_the_generated_crd_byte_for_byte() {
    let generated = std::fs::read(root().join(CRD)).expect("the generated CRD");
    let copy = std::fs::read(root().join(CHART_CRD)).unwrap_or_else(|e| panic!("{CHART_CRD}: {e}"));
    assert!(generated == copy, "{CHART_CRD} is stale: cp {CRD} {CHART_CRD} (tests/generated.rs keeps {CRD} current)");
    let names: Vec<_> = std::fs::read_dir(root().join("charts/winapp-operator/crds"))
        .expect("the chart's crds/")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["windowsapps.winapp.dev.yaml"], "the chart's crds/ holds the WindowsApp CRD only");
}

#[test]
fn the_chart_app_version_is_the_crate_version() {
    let chart: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join("charts/winapp-operator/Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"), "Chart.yaml appVersion follows Cargo.toml");
    // The default image is the release's: repository:appVersion.
    let objects = rendered("winapp-operator", "winapp-system", &[]);
    let image = &only(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(image, &format!("ghcr.io/winapp-dev/winapp-operator:{}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn helm_lint_passes_strictly_and_fails_on_bad_values() {
    let chart = chart();
    for extra in [&[][..], &["--set", "secretCheck.enabled=true,serviceMonitor.enabled=true,replicas=1"][..]] {
        for strict in [false, true] {
            let mut args = vec!["lint", chart.as_str()];
            if strict {
                args.push("--strict");
            }
            args.extend_from_slice(extra);
            let out = helm(&args).unwrap_or_else(|e| panic!("helm lint failed: {e}"));
            assert!(out.contains("0 chart(s) failed"), "{out}");
        }
    }
    // Lint runs the schema too, so it can fail.
    let err = helm(&["lint", &chart, "--strict", "--set", "logFormat=xml"]).expect_err("lint accepted logFormat=xml");
    assert!(err.contains("logFormat"), "{err}");
}

#[test]
fn the_values_schema_refuses_bad_values() {
    // A valid variant of each value first: the refusals below are about the values, not the chart.
    let good = [
        "logFormat=text",
        "replicas=0",
        "image.pullPolicy=Always",
        "watchNamespace=apps",
        "serviceMonitor.interval=1m30s",
        "podOverrides.allow[0]=host-path",
        "policy.allow[0]=node-agent",
        "policy.allow[0]=smb-volumes",
        "policy.allowTaints[0]=dedicated=gpu",
        "policy.allowTaints[0]=example.com/spot",
        "admissionPolicy.enabled=false",
        "maxOperatorRollouts=0",
        "appPodAnnotations.logs\\.example\\.com/tier=gold",
    ];
    for set in good {
        template("t", "ns", &["--set", set]).unwrap_or_else(|e| panic!("--set {set} refused: {e}"));
    }
    let bad = [
        ("logFormat=xml", "/logFormat"),
        ("replicas=-1", "/replicas"),
        ("replicas=two", "/replicas"),
        ("replica=3", "replica"), // a typo: unknown keys are refused
        ("image.digest=latest", "/image/digest"),
        ("image.digest=sha256:abc", "/image/digest"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("image.registry=quay.io", "registry"),
        ("watchNamespace=Not_A_Namespace", "/watchNamespace"),
        ("secretCheck.enabled=maybe", "/secretCheck/enabled"),
        ("serviceMonitor.interval=often", "/serviceMonitor/interval"),
        ("extraArgs[0]=run", "/extraArgs/0"),
        ("tolerations[0].effect=Sometimes", "/tolerations/0/effect"),
        ("resources.request.cpu=1", "request"),
        ("service.port=0", "/service/port"),
        ("podOverrides.allow[0]=hostpath", "/podOverrides/allow/0"),
        ("podOverrides.allowed[0]=host-path", "allowed"),
        ("policy.allow[0]=hostpath", "/policy/allow/0"),
        ("policy.allowTaints[0]=a=b\\,c", "/policy/allowTaints/0"),
        ("policy.allowTaints[0]=a b", "/policy/allowTaints/0"),
        ("policy.allowed[0]=gmsa", "allowed"),
        ("admissionPolicy.enabled=maybe", "/admissionPolicy/enabled"),
        ("maxOperatorRollouts=-1", "/maxOperatorRollouts"),
        ("appPodAnnotations.winapp\\.dev/x=y", "winapp.dev/x"),
        ("appPodAnnotations.a=b\\,c", "/appPodAnnotations/a"),
    ];
    for (set, field) in bad {
        let err = template("t", "ns", &["--set", set]).expect_err(&format!("--set {set} was accepted"));
        assert!(err.contains("don't meet the specifications of the schema"), "--set {set}: {err}");
        assert!(err.contains(field), "--set {set}: the error does not name {field}: {err}");
    }
    // Refused by the templates: several replicas without leader election.
    let err = template("t", "ns", &["--set", "leaderElection.enabled=false"]).expect_err("accepted");
    assert!(err.contains("needs leaderElection.enabled=true"), "{err}");
    template("t", "ns", &["--set", "leaderElection.enabled=false,replicas=1"]).expect("one replica without election");
    let err = template("t", "ns", &["--set", "podLabels.app\\.kubernetes\\.io/instance=x"]).expect_err("accepted");
    assert!(err.contains("podLabels may not set app.kubernetes.io/instance"), "{err}");
}

#[test]
fn values_shape_the_deployment_and_a_digest_wins_over_the_tag() {
    let pod_spec = |extra: &[&str]| {
        let objects = rendered("t", "ns", extra);
        only(&objects, "Deployment")["spec"]["template"].clone()
    };
    let image = |t: &Value| t["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_owned();
    let args = |t: &Value| -> Vec<String> {
        t["spec"]["containers"][0]["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_owned())
            .collect()
    };

    let t = pod_spec(&["--set", "image.tag=9.9.9"]);
    assert_eq!(image(&t), "ghcr.io/winapp-dev/winapp-operator:9.9.9");
    let digest = format!("image.tag=9.9.9,image.digest={DIGEST},image.repository=registry.example/winapp");
    let t = pod_spec(&["--set", &digest]);
    assert_eq!(image(&t), format!("registry.example/winapp@{DIGEST}"));

    let t = pod_spec(&[]);
    let defaults = args(&t);
    assert_eq!(defaults[0], "run");
    assert!(defaults.contains(&"--log-format=json".to_owned()), "{defaults:?}");
    assert!(defaults.contains(&"--leader-elect=true".to_owned()), "{defaults:?}");
    assert!(!defaults.iter().any(|a| a.starts_with("--namespace") || a.starts_with("--selector")), "{defaults:?}");
    assert!(!defaults.iter().any(|a| a.starts_with("--allow")), "the default policy: {defaults:?}");
    let env_value = |t: &Value, name: &str| -> Option<String> {
        let env = t["spec"]["containers"][0]["env"].as_array().expect("env");
        env.iter().find(|e| e["name"] == name).map(|e| e["value"].as_str().expect("a value").to_owned())
    };
    assert_eq!(env_value(&t, "WINAPP_ALLOW"), None, "the default policy grants nothing");
    assert_eq!(env_value(&t, "WINAPP_ALLOW_TAINTS"), None);
    assert_eq!(t["spec"]["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert!(t["spec"]["tolerations"].is_null(), "no tolerations by default");
    // By default only a preferred anti-affinity that keeps the replicas on different nodes.
    let preferred = &t["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(preferred["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname", "{}", t["spec"]["affinity"]);
    let own = t["metadata"]["labels"].as_object().expect("pod labels");
    let wanted = preferred["podAffinityTerm"]["labelSelector"]["matchLabels"].as_object().expect("matchLabels");
    assert!(!wanted.is_empty() && wanted.iter().all(|(k, v)| own.get(k) == Some(v)), "it selects its own pods");
    assert_eq!(t["spec"]["affinity"].as_object().map(|a| a.len()), Some(1), "nothing else");

    let t = pod_spec(&[
        "--set",
        "watchNamespace=apps,selector=team=web,logFormat=text,logLevel=debug,replicas=1,leaderElection.enabled=false",
        "--set",
        "podLabels.team=web,podAnnotations.note=hi,priorityClassName=system-cluster-critical",
        "--set-json",
        r#"tolerations=[{"key":"os","operator":"Equal","value":"linux","effect":"NoSchedule"}]"#,
        "--set-json",
        r#"affinity={"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"pool","operator":"In","values":["system"]}]}]}}}"#,
        "--set-json",
        r#"resources={"requests":{"cpu":"10m"},"limits":null}"#,
        "--set-json",
        r#"extraArgs=["--concurrency=4"]"#,
        "--set-json",
        r#"podOverrides={"allow":["host-path","gmsa"]}"#,
        "--set-json",
        r#"policy={"allow":["gmsa","node-agent"],"allowTaints":["dedicated=gpu","spot"]}"#,
    ]);
    let a = args(&t);
    for want in
        ["--namespace=apps", "--selector=team=web", "--log-format=text", "--leader-elect=false", "--concurrency=4"]
    {
        assert!(a.contains(&want.to_owned()), "{want} missing from {a:?}");
    }
    assert_eq!(a.last().map(String::as_str), Some("--concurrency=4"), "extraArgs come last: {a:?}");
    // policy.allow and its former name podOverrides.allow, merged once each, in the environment.
    assert_eq!(env_value(&t, "WINAPP_ALLOW").as_deref(), Some("gmsa,node-agent,host-path"));
    assert_eq!(env_value(&t, "WINAPP_ALLOW_TAINTS").as_deref(), Some("dedicated=gpu,spot"));
    assert_eq!(env_value(&t, "WINAPP_MAX_OPERATOR_ROLLOUTS"), None, "the operator's default unless set");
    assert_eq!(env_value(&t, "WINAPP_WARM_UP"), None, "no warm-up unless the platform asks");
    assert_eq!(env_value(&t, "WINAPP_WARM_UP_PAUSE_IMAGE"), None);
    let warm = pod_spec(&[
        "--set",
        "warmUp.enabled=true",
        "--set",
        "warmUp.pauseImage=mcr.microsoft.com/oss/kubernetes/pause:3.10",
    ]);
    assert_eq!(env_value(&warm, "WINAPP_WARM_UP").as_deref(), Some("true"));
    assert_eq!(
        env_value(&warm, "WINAPP_WARM_UP_PAUSE_IMAGE").as_deref(),
        Some("mcr.microsoft.com/oss/kubernetes/pause:3.10")
    );
    let paced = pod_spec(&[
        "--set",
        "maxOperatorRollouts=3",
        "--set-string",
        "appPodAnnotations.b\\.example\\.com/x=2,appPodAnnotations.a\\.example\\.com/y=1",
    ]);
    assert_eq!(env_value(&paced, "WINAPP_MAX_OPERATOR_ROLLOUTS").as_deref(), Some("3"));
    assert_eq!(env_value(&paced, "WINAPP_POD_ANNOTATIONS").as_deref(), Some("a.example.com/y=1,b.example.com/x=2"));
    let former = pod_spec(&["--set", "podOverrides.allow[0]=host-path"]);
    assert_eq!(env_value(&former, "WINAPP_ALLOW").as_deref(), Some("host-path"), "the former name alone still works");
    assert_eq!(t["metadata"]["labels"]["team"], "web");
    assert_eq!(t["metadata"]["annotations"]["note"], "hi");
    assert_eq!(t["spec"]["priorityClassName"], "system-cluster-critical");
    assert_eq!(
        t["spec"]["tolerations"],
        json!([{"key": "os", "operator": "Equal", "value": "linux", "effect": "NoSchedule"}])
    );
    assert_eq!(
        t["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0]["key"],
        "pool"
    );
    assert!(t["spec"]["affinity"]["podAntiAffinity"].is_null(), "a set affinity replaces the default");
    // Helm merges maps into the defaults; null removes a default.
    assert_eq!(t["spec"]["containers"][0]["resources"], json!({"requests": {"cpu": "10m", "memory": "64Mi"}}));
    let env = &t["spec"]["containers"][0]["env"];
    let rust_log = env.as_array().expect("env").iter().find(|e| e["name"] == "RUST_LOG").expect("RUST_LOG");
    assert_eq!(rust_log["value"], "debug");
}

/// One grant: (API group, resource, resource name or "", verb).
type Grant = (String, String, String, String);

/// An object's identity: (kind, namespace or "", name).
type Key = (String, String, String);

/// Rules as the set of single grants they make.
fn grants(rules: &Value) -> BTreeSet<Grant> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().map(|s| s.as_str().expect("a string").to_owned()).collect()).unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules is a list") {
        assert!(rule.get("nonResourceURLs").is_none(), "unexpected nonResourceURLs: {rule}");
        let names = strings(&rule["resourceNames"]);
        let names = if names.is_empty() { vec![String::new()] } else { names };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for name in &names {
                    for verb in strings(&rule["verbs"]) {
                        out.insert((group.clone(), resource.clone(), name.clone(), verb));
                    }
                }
            }
        }
    }
    assert!(!out.is_empty(), "no grants in {rules}");
    out
}

/// What matters of the RBAC objects: Roles and ClusterRoles by their grants, bindings by their
/// roleRef and subjects; keyed by (kind, namespace, name).
#[derive(Debug, PartialEq)]
struct Rbac {
    roles: BTreeMap<Key, BTreeSet<Grant>>,
    bindings: BTreeMap<Key, Value>,
}

fn rbac<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Rbac {
    let mut rbac = Rbac { roles: BTreeMap::new(), bindings: BTreeMap::new() };
    for obj in objects {
        let kind = obj["kind"].as_str().unwrap_or_default();
        let key = (
            kind.to_owned(),
            obj["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
            name(obj).to_owned(),
        );
        match kind {
            "Role" | "ClusterRole" => {
                assert!(rbac.roles.insert(key, grants(&obj["rules"])).is_none(), "duplicate {kind} {}", name(obj));
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let binding = json!({"roleRef": obj["roleRef"], "subjects": obj["subjects"]});
                assert!(rbac.bindings.insert(key, binding).is_none(), "duplicate {kind} {}", name(obj));
            }
            _ => {}
        }
    }
    rbac
}

/// The objects of config/rbac (every file its kustomization lists), plus the secret-check component.
fn config_rbac(secret_check: bool) -> Rbac {
    let dir = root().join("config/rbac");
    let kustomization: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization"))
            .expect("YAML");
    let mut files: Vec<_> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|f| dir.join(f.as_str().expect("file name")))
        .collect();
    if secret_check {
        files.push(root().join("config/components/secret-check/rbac.yaml"));
    }
    let docs: Vec<Value> =
        files.iter().flat_map(|f| documents(&std::fs::read_to_string(f).expect("config/rbac file"))).collect();
    rbac(&docs)
}

/// Readable differences between the chart's RBAC and config/'s, one a line.
fn rbac_differences(chart: &Rbac, config: &Rbac) -> Vec<String> {
    let mut out = Vec::new();
    for key in chart.roles.keys().chain(config.roles.keys()).collect::<BTreeSet<_>>() {
        match (chart.roles.get(key), config.roles.get(key)) {
            (Some(c), Some(k)) => {
                out.extend(c.difference(k).map(|g| format!("{key:?}: only the chart grants {g:?}")));
                out.extend(k.difference(c).map(|g| format!("{key:?}: only config/ grants {g:?}")));
            }
            (Some(_), None) => out.push(format!("{key:?}: only in the chart")),
            (None, _) => out.push(format!("{key:?}: only in config/")),
        }
    }
    for key in chart.bindings.keys().chain(config.bindings.keys()).collect::<BTreeSet<_>>() {
        let (c, k) = (chart.bindings.get(key), config.bindings.get(key));
        if c != k {
            out.push(format!("{key:?}: the chart has {c:?}, config/ has {k:?}"));
        }
    }
    out
}

#[test]
fn the_chart_grants_exactly_the_rbac_of_config() {
    // Released as winapp-operator into winapp-system, the chart's names are config/'s: the objects,
    // their rules (as sets of single grants), role references and subjects must all be equal.
    for secret_check in [false, true] {
        let set = format!("secretCheck.enabled={secret_check}");
        let objects = rendered("winapp-operator", "winapp-system", &["--set", &set]);
        let chart = rbac(objects.values());
        let config = config_rbac(secret_check);
        let differences = rbac_differences(&chart, &config);
        assert!(
            differences.is_empty(),
            "with {set}, the chart's RBAC differs from config/'s:\n{}",
            differences.join("\n")
        );
        assert_eq!(chart, config);
        let secrets = ("".to_owned(), "secrets".to_owned(), String::new(), "watch".to_owned());
        assert_eq!(chart.roles.values().any(|g| g.contains(&secrets)), secret_check, "Secrets with {set}");
    }
    // Under another release name and namespace, every binding names this release's ServiceAccount.
    let objects = rendered("acme", "ops", &["--set", "secretCheck.enabled=true"]);
    let sa = only(&objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"].clone();
    assert_eq!(only(&objects, "ServiceAccount")["metadata"]["name"], sa);
    let chart = rbac(objects.values());
    assert_eq!(chart.bindings.len(), 3, "{chart:?}");
    every_binding_names(&chart, &sa, "ops");
    // Watching one namespace, the same for the namespaced grants, which are in that namespace.
    let objects = rendered("acme", "ops", &["--set", "secretCheck.enabled=true,watchNamespace=apps"]);
    let chart = rbac(objects.values());
    assert_eq!(chart.bindings.len(), 4, "{chart:?}");
    every_binding_names(&chart, &sa, "ops");
}

/// Every binding of `chart` binds the ServiceAccount `sa` of `namespace` to a role it renders.
fn every_binding_names(chart: &Rbac, sa: &Value, namespace: &str) {
    for ((kind, ns, binding), value) in &chart.bindings {
        assert_eq!(
            value["subjects"],
            json!([{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]),
            "{binding}"
        );
        let role_kind = kind.trim_end_matches("Binding");
        let role = (role_kind.to_owned(), ns.clone(), value["roleRef"]["name"].as_str().unwrap_or_default().to_owned());
        assert!(chart.roles.contains_key(&role), "{kind} {binding} refers to {role:?}, which is not rendered");
    }
}

/// The watched namespace of config/namespaced.
const WATCHED: &str = "apps";

#[test]
fn watching_one_namespace_the_chart_grants_exactly_the_rbac_of_config_namespaced() {
    for secret_check in [false, true] {
        let set = format!("secretCheck.enabled={secret_check},watchNamespace={WATCHED}");
        let objects = rendered("winapp-operator", "winapp-system", &["--set", &set]);
        let chart = rbac(objects.values());
        let components: &[&str] = if secret_check { &["namespaced/secret-check"] } else { &[] };
        let config = rbac(&kustomize(&["namespaced"], components));
        let differences = rbac_differences(&chart, &config);
        assert!(
            differences.is_empty(),
            "with {set}, the chart's RBAC differs from config/namespaced's:\n{}",
            differences.join("\n")
        );
        assert_eq!(chart, config);
        // The scope follows: nothing namespaced is granted cluster-wide, and everything the
        // operator needs is granted somewhere (cluster-wide or in the watched namespace).
        let cluster_role = ("ClusterRole".to_owned(), String::new(), "winapp-operator".to_owned());
        let role = ("Role".to_owned(), WATCHED.to_owned(), "winapp-operator".to_owned());
        let (cluster, namespaced) = (&chart.roles[&cluster_role], &chart.roles[&role]);
        let cluster_wide = [
            "persistentvolumes",
            "clusterroles",
            "gmsacredentialspecs",
            "namespaces",
            "nodes",
            "runtimeclasses",
            "csinodes",
            "customresourcedefinitions",
        ];
        for (_, resource, _, _) in cluster {
            assert!(cluster_wide.contains(&resource.as_str()), "{resource} is granted cluster-wide");
        }
        for (_, resource, _, _) in namespaced {
            assert!(!cluster_wide.contains(&resource.as_str()), "a Role cannot grant {resource}");
        }
        let all = config_rbac(false);
        let everything = &all.roles[&cluster_role];
        let both: BTreeSet<Grant> = cluster.union(namespaced).cloned().collect();
        assert_eq!(&both, everything, "the ClusterRole and the Role together grant config/rbac's rules");
        let secrets = ("".to_owned(), "secrets".to_owned(), String::new(), "list".to_owned());
        let secret_roles: Vec<&Key> =
            chart.roles.iter().filter(|(_, g)| g.contains(&secrets)).map(|(k, _)| k).collect();
        if secret_check {
            assert_eq!(secret_roles.len(), 1, "{secret_roles:?}");
            assert_eq!(
                (secret_roles[0].0.as_str(), secret_roles[0].1.as_str()),
                ("Role", WATCHED),
                "Secrets in {WATCHED} only"
            );
        } else {
            assert!(secret_roles.is_empty(), "{secret_roles:?}");
        }
    }
}

#[test]
fn the_chart_deployment_is_config_managers() {
    let objects = rendered("winapp-operator", "winapp-system", &[]);
    let chart = only(&objects, "Deployment");
    let config = documents(&std::fs::read_to_string(root().join("config/manager/manager.yaml")).expect("manager.yaml"));
    let config = config.iter().find(|d| d["kind"] == "Deployment").expect("the manager Deployment");
    let (cs, ks) = (&chart["spec"], &config["spec"]);
    assert_eq!(cs["replicas"], ks["replicas"]);
    for field in ["securityContext", "nodeSelector", "serviceAccountName", "terminationGracePeriodSeconds"] {
        assert_eq!(cs["template"]["spec"][field], ks["template"]["spec"][field], "pod {field}");
    }
    let (cc, kc) = (&cs["template"]["spec"]["containers"][0], &ks["template"]["spec"]["containers"][0]);
    for field in ["name", "image", "env", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext"] {
        assert_eq!(cc[field], kc[field], "container {field}");
    }
    // The same arguments, plus the binary's defaults spelled out.
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().expect("args").iter().map(|a| a.as_str().expect("string").to_owned()).collect()
    };
    let (chart_args, config_args) = (strings(&cc["args"]), strings(&kc["args"]));
    let extra: Vec<&String> = chart_args.iter().filter(|a| !config_args.contains(a)).collect();
    assert!(config_args.iter().all(|a| chart_args.contains(a)), "{chart_args:?} lacks some of {config_args:?}");
    assert_eq!(extra, ["--leader-elect=true", "--lease-name=winapp-operator"]);
    // Watching one namespace: the same as config/namespaced's.
    let objects = rendered("winapp-operator", "winapp-system", &["--set", &format!("watchNamespace={WATCHED}")]);
    let chart_args = strings(&only(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]);
    let overlay = kustomize(&["namespaced"], &[]);
    let deployment = overlay.iter().find(|d| d["kind"] == "Deployment").expect("the overlay's Deployment");
    let overlay_args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    let extra: Vec<&String> = chart_args.iter().filter(|a| !overlay_args.contains(a)).collect();
    assert!(overlay_args.iter().all(|a| chart_args.contains(a)), "{chart_args:?} lacks some of {overlay_args:?}");
    assert!(overlay_args.contains(&format!("--namespace={WATCHED}")), "{overlay_args:?}");
    assert_eq!(extra, ["--leader-elect=true", "--lease-name=winapp-operator"]);
    // The metrics Service selects these pods on the port the probes use.
    let service = only(&objects, "Service");
    let labels = cs["template"]["metadata"]["labels"].as_object().expect("pod labels");
    for (k, v) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(labels.get(k), Some(v), "the Service's selector {k}={v} does not match the pods");
    }
    assert_eq!(service["spec"]["ports"], json!([{"name": "http", "port": 8080, "targetPort": "http"}]));
    let selector = cs["selector"]["matchLabels"].as_object().expect("matchLabels");
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)), "the Deployment selects its own pods");
}

#[test]
fn the_admission_fence_is_config_admissions_and_names_the_releases_service_account() {
    let kinds = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"];
    // Released as winapp-operator into winapp-system: config/admission's objects, spec for spec.
    let objects = rendered("winapp-operator", "winapp-system", &[]);
    let config = kustomize(&["admission"], &[]);
    for kind in kinds {
        let chart = only(&objects, kind);
        let from_config =
            config.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in config/admission"));
        assert_eq!(chart["spec"], from_config["spec"], "the chart's {kind} differs from config/admission's");
        assert_eq!(name(chart), name(from_config));
    }
    let expression = |objects: &BTreeMap<(String, String), Value>| {
        only(objects, "ValidatingAdmissionPolicy")["spec"]["matchConditions"][0]["expression"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        expression(&objects),
        "request.userInfo.username == 'system:serviceaccount:winapp-system:winapp-operator'"
    );
    // Another release and namespace: the policy fences that release's ServiceAccount, and the
    // binding binds that policy.
    let objects = rendered("acme", "ops", &[]);
    let sa = only(&objects, "ServiceAccount")["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    assert_eq!(expression(&objects), format!("request.userInfo.username == 'system:serviceaccount:ops:{sa}'"));
    let policy = name(only(&objects, "ValidatingAdmissionPolicy")).to_owned();
    let binding = only(&objects, "ValidatingAdmissionPolicyBinding");
    assert_eq!(binding["spec"]["policyName"], policy.as_str());
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    // On by default; a value turns it off.
    let objects = rendered("t", "ns", &["--set", "admissionPolicy.enabled=false"]);
    for kind in kinds {
        assert!(!objects.keys().any(|(k, _)| k == kind), "{kind} rendered with admissionPolicy.enabled=false");
    }
}

#[test]
fn the_service_monitor_is_optional_and_scrapes_the_metrics_service() {
    let objects = rendered("t", "ns", &[]);
    assert!(!objects.keys().any(|(k, _)| k == "ServiceMonitor"), "no ServiceMonitor by default");
    let objects = rendered(
        "t",
        "ns",
        &["--set", "serviceMonitor.enabled=true,serviceMonitor.labels.release=prom,serviceMonitor.interval=15s"],
    );
    let monitor = only(&objects, "ServiceMonitor");
    let service = only(&objects, "Service");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"], json!(["ns"]));
    let labels = service["metadata"]["labels"].as_object().expect("service labels");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels") {
        assert_eq!(labels.get(k), Some(v), "the ServiceMonitor's selector {k}={v} does not match the metrics Service");
    }
    assert_eq!(monitor["spec"]["endpoints"], json!([{"port": "http", "path": "/metrics", "interval": "15s"}]));
}

#[test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
fn the_linux_pool_toleration_component_matches_the_chart_value() {
    // A throwaway overlay: config/default with the component. Kustomize wants relative paths.
    let dir = std::env::temp_dir().canonicalize().expect("temp dir").join(unique_name("linux-pool-overlay"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let up = "../".repeat(dir.components().count() - 1);
    let config = format!("{up}{}/config", root().display().to_string().trim_start_matches('/'));
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [{config}/default]\n\
         components: [{config}/components/linux-pool-toleration]\n"
    );
    std::fs::write(dir.join("kustomization.yaml"), kustomization).expect("write overlay");
    let out = kubectl(&["kustomize", &dir.to_string_lossy()], None);
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.unwrap_or_else(|e| panic!("kustomize with the component failed: {e}"));
    let docs = documents(&out);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("the manager Deployment");
    let toleration = json!([{"key": "os", "operator": "Equal", "value": "linux", "effect": "NoSchedule"}]);
    assert_eq!(deployment["spec"]["template"]["spec"]["tolerations"], toleration);
    assert_eq!(deployment["spec"]["template"]["spec"]["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    // The chart's tolerations value gives the same pod spec.
    let objects = rendered("t", "ns", &["--set-json", &format!("tolerations={toleration}")]);
    assert_eq!(only(&objects, "Deployment")["spec"]["template"]["spec"]["tolerations"], toleration);
}

#[test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
fn the_windows_exporter_is_optional_and_the_same_as_the_kustomize_component() {
    assert!(!rendered("t", "ns", &[]).keys().any(|(k, _)| k == "WindowsApp"), "none by default");
    // The component alone, through a throwaway overlay (kustomize wants relative paths).
    let dir = std::env::temp_dir().canonicalize().expect("temp dir").join(unique_name("exporter-overlay"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let up = "../".repeat(dir.components().count() - 1);
    let config = format!("{up}{}/config", root().display().to_string().trim_start_matches('/'));
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         components: [{config}/components/windows-exporter]\n"
    );
    std::fs::write(dir.join("kustomization.yaml"), kustomization).expect("write overlay");
    let out = kubectl(&["kustomize", &dir.to_string_lossy()], None);
    let _ = std::fs::remove_dir_all(&dir);
    let component = documents(&out.unwrap_or_else(|e| panic!("kustomize with the component failed: {e}")));
    let objects = rendered("t", "ns", &["--set", "windowsExporter.enabled=true"]);
    for kind in ["Namespace", "WindowsApp"] {
        let from_component = component.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!(only(&objects, kind), from_component, "the chart's {kind} differs from the component's");
    }
    let app = only(&objects, "WindowsApp");
    assert_eq!(app["spec"]["nodeAgent"], json!(true));
    // The platform grants this namespace's apps HostProcess node agents, visibly.
    assert_eq!(
        only(&objects, "Namespace")["metadata"]["annotations"],
        json!({"winapp.dev/allow": "host-process,node-agent"})
    );
    assert_eq!(app["metadata"]["namespace"], "windows-exporter");
    // A namespace of the user's own: no Namespace object, the app goes there.
    let objects = rendered(
        "t",
        "ns",
        &[
            "--set",
            "windowsExporter.enabled=true",
            "--set",
            "windowsExporter.createNamespace=false",
            "--set",
            "windowsExporter.namespace=monitoring",
        ],
    );
    assert!(!objects.keys().any(|(k, _)| k == "Namespace"));
    assert_eq!(only(&objects, "WindowsApp")["metadata"]["namespace"], "monitoring");
}

#[test]
fn the_network_policy_is_optional_and_the_same_as_the_kustomize_component() {
    assert!(!rendered("t", "ns", &[]).keys().any(|(k, _)| k == "NetworkPolicy"), "none by default");
    let objects = rendered("t", "ns", &["--set", "networkPolicy.enabled=true"]);
    let chart = only(&objects, "NetworkPolicy");
    let pod_labels = only(&objects, "Deployment")["spec"]["template"]["metadata"]["labels"].clone();
    for (k, v) in chart["spec"]["podSelector"]["matchLabels"].as_object().expect("matchLabels") {
        assert_eq!(pod_labels.get(k), Some(v), "the chart's policy selects the operator's pods ({k})");
    }
    // The same rules as config/components/networkpolicy, which selects config/manager's pods.
    let path = root().join("config/components/networkpolicy/networkpolicy.yaml");
    let docs = documents(&std::fs::read_to_string(&path).expect("read the component"));
    let component = &docs[0];
    for field in ["policyTypes", "ingress", "egress"] {
        assert_eq!(chart["spec"][field], component["spec"][field], "spec.{field} differs from the kustomize component");
    }
    let manager = documents(&std::fs::read_to_string(root().join("config/manager/manager.yaml")).expect("manager"));
    let deployment = manager.iter().find(|d| d["kind"] == "Deployment").expect("manager Deployment");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in component["spec"]["podSelector"]["matchLabels"].as_object().expect("matchLabels") {
        assert_eq!(labels.get(k), Some(v), "the component's policy selects config/manager's pods ({k})");
    }
    // Values shape it: other API server ports, and who may scrape.
    let objects = rendered(
        "t",
        "ns",
        &[
            "--set",
            "networkPolicy.enabled=true",
            "--set-json",
            "networkPolicy.apiServerPorts=[8443]",
            "--set-json",
            r#"networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"name":"monitoring"}}}]"#,
        ],
    );
    let np = only(&objects, "NetworkPolicy");
    assert_eq!(np["spec"]["egress"][0]["ports"], json!([{"protocol": "TCP", "port": 8443}]));
    assert_eq!(
        np["spec"]["ingress"][0]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}])
    );
    assert!(template("t", "ns", &["--set-json", "networkPolicy.apiServerPorts=[70000]"]).is_err(), "ports are checked");
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn the_rendered_chart_passes_server_side_dry_run() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "helm-dry-run").await;
    let release = unique_name("dry");
    let yaml = template(
        &release,
        ns.name(),
        &["--include-crds", "--set", "secretCheck.enabled=true,networkPolicy.enabled=true"],
    )
    .unwrap_or_else(|e| panic!("helm template: {e}"));
    let out = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&yaml))
        .unwrap_or_else(|e| panic!("the API server refused the rendered chart: {e}"));
    let applied = out.lines().filter(|l| l.contains("(server dry run)")).count();
    assert_eq!(applied, documents(&yaml).len(), "every rendered object is checked:\n{out}");
    // The kustomize component's NetworkPolicy too.
    let component = std::fs::read_to_string(root().join("config/components/networkpolicy/networkpolicy.yaml"))
        .expect("read the component")
        .replace("namespace: winapp-system", &format!("namespace: {}", ns.name()));
    kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&component))
        .unwrap_or_else(|e| panic!("the API server refused config/components/networkpolicy: {e}"));
    for kind in [
        "customresourcedefinition.apiextensions.k8s.io/windowsapps.winapp.dev",
        "serviceaccount/",
        "clusterrole.rbac.authorization.k8s.io/",
        "clusterrolebinding.rbac.authorization.k8s.io/",
        "role.rbac.authorization.k8s.io/",
        "rolebinding.rbac.authorization.k8s.io/",
        "service/",
        "deployment.apps/",
        "validatingadmissionpolicy.admissionregistration.k8s.io/",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/",
    ] {
        assert!(out.contains(kind), "{kind} missing from:\n{out}");
    }
    // Watching one namespace (this one): its Roles and RoleBindings too.
    let yaml =
        template(&release, ns.name(), &["--set", &format!("secretCheck.enabled=true,watchNamespace={}", ns.name())])
            .unwrap_or_else(|e| panic!("helm template: {e}"));
    let out = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&yaml))
        .unwrap_or_else(|e| panic!("the API server refused the chart with watchNamespace: {e}"));
    let roles = out.lines().filter(|l| l.starts_with("role.rbac.authorization.k8s.io/")).count();
    assert_eq!(roles, 3, "the leader election's, the operator's and the secret check's Role:\n{out}");
    ns.cleanup().await;
}

/// A Helm release that is uninstalled when dropped, should the test fail before it does so itself
/// (namespace deletion would not remove its ClusterRoles).
struct Release {
    name: String,
    namespace: String,
    uninstalled: bool,
}

impl Drop for Release {
    fn drop(&mut self) {
        if !self.uninstalled {
            let _ = helm(&["uninstall", &self.name, "--namespace", &self.namespace, "--ignore-not-found"]);
        }
    }
}

/// Everything of a release that `kubectl get` finds by the release's label.
fn leftovers(release: &str) -> String {
    let selector = format!("app.kubernetes.io/instance={release}");
    kubectl(
        &[
            "get",
            "deployments,replicasets,serviceaccounts,services,roles,rolebindings,clusterroles,clusterrolebindings,\
             validatingadmissionpolicies,validatingadmissionpolicybindings",
            "--all-namespaces",
            "-l",
            &selector,
            "-o",
            "name",
        ],
        None,
    )
    .unwrap_or_else(|e| panic!("kubectl get: {e}"))
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn helm_install_runs_under_restricted_and_uninstall_leaves_nothing() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "helm-install").await;
    kubectl(
        &[
            "label",
            "namespace",
            ns.name(),
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        ],
        None,
    )
    .expect("label the namespace");
    let mut release = Release { name: unique_name("wo"), namespace: ns.name().to_owned(), uninstalled: false };
    let chart = chart();
    helm(&[
        "install",
        &release.name,
        &chart,
        "--namespace",
        ns.name(),
        "--set",
        "secretCheck.enabled=true",
        "--set",
        &format!("image.digest={DIGEST}"),
    ])
    .unwrap_or_else(|e| panic!("helm install: {e}"));
    let status: Value = serde_json::from_str(
        &helm(&["status", &release.name, "--namespace", ns.name(), "-o", "json"]).expect("helm status"),
    )
    .expect("helm status JSON");
    assert_eq!(status["info"]["status"], "deployed");

    // The two replicas are admitted under `restricted`, scheduled on Linux nodes, and Available.
    let fullname = format!("{}-winapp-operator", release.name);
    let deployments: Api<Deployment> = ns.api();
    let deployment = wait_for(&deployments, &fullname, "Available", Duration::from_secs(180), deployment_available())
        .await
        .expect("the operator Deployment");
    assert_eq!(deployment.spec.replicas, Some(2));
    let selector = format!("app.kubernetes.io/instance={}", release.name);
    let pods: Api<Pod> = ns.api();
    let running = wait_for_list(&pods, &selector, "two pods", Duration::from_secs(60), |p| p.len() == 2).await;
    let nodes: Api<Node> = Api::all(client.clone());
    for pod in &running {
        let spec = pod.spec.as_ref().expect("pod spec");
        let container = &spec.containers[0];
        assert_eq!(container.image.as_deref(), Some(format!("ghcr.io/winapp-dev/winapp-operator@{DIGEST}").as_str()));
        let node = nodes.get(spec.node_name.as_deref().expect("scheduled")).await.expect("the pod's node");
        let os = node.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/os")).cloned();
        assert_eq!(os.as_deref(), Some("linux"), "an operator pod runs on a non-Linux node");
    }
    let installed = leftovers(&release.name);
    for kind in [
        "deployment.apps/",
        "serviceaccount/",
        "service/",
        "role.",
        "rolebinding.",
        "clusterrole.",
        "clusterrolebinding.",
        "validatingadmissionpolicy.",
        "validatingadmissionpolicybinding.",
    ] {
        assert!(installed.contains(kind), "{kind} not installed:\n{installed}");
    }
    assert_eq!(installed.matches("clusterrole.rbac").count(), 2, "the operator's and the secret-check ClusterRole");

    helm(&["uninstall", &release.name, "--namespace", ns.name(), "--wait", "--timeout", "2m"])
        .unwrap_or_else(|e| panic!("helm uninstall: {e}"));
    release.uninstalled = true;
    wait_for_list(&pods, &selector, "gone", Duration::from_secs(120), |p| p.is_empty()).await;
    let left = leftovers(&release.name);
    assert!(left.trim().is_empty(), "helm uninstall left objects of the release behind:\n{left}");
    let history = kubectl(
        &["get", "secrets", "-n", ns.name(), "-l", &format!("owner=helm,name={}", release.name), "-o", "name"],
        None,
    )
    .expect("helm's release Secrets");
    assert!(history.trim().is_empty(), "helm's release record is left behind: {history}");
    // The CRD is not the release's to delete: other installs and tests use it.
    kubectl(&["get", "crd", "windowsapps.winapp.dev"], None).expect("the WindowsApp CRD survives helm uninstall");
    ns.cleanup().await;
}

/// The schema's enum of policy rules is the operator's list of rules, and both policy.allow and
/// its former name podOverrides.allow take it.
#[test]
fn the_values_schema_lists_every_policy_rule() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("charts/winapp-operator/values.schema.json")).expect("schema"),
    )
    .expect("schema JSON");
    let listed: Vec<&str> =
        schema["definitions"]["rule"]["enum"].as_array().expect("enum").iter().filter_map(Value::as_str).collect();
    assert_eq!(listed, winapp_operator::doctor::grants::rule_names());
    for value in ["policy", "podOverrides"] {
        assert_eq!(schema["properties"][value]["properties"]["allow"]["items"], json!({"$ref": "#/definitions/rule"}));
    }
}
