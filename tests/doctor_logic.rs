//! The pure part of `winapp-operator doctor`: hand-built facts in, findings out. No cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;
use winapp_operator::api::WindowsVersion;
use winapp_operator::doctor::facts::{
    AppFacts, ClusterRoleFacts, DaemonSetFacts, DeploymentFacts, Facts, GmsaCrdFacts, Lookup, NodeFacts, TaintFacts,
    WebhookConfigFacts, WebhookFacts,
};
use winapp_operator::doctor::{self, Check, CheckOptions, Expected, Finding, Level, Summary};

fn expected() -> Expected {
    Expected::current().expect("the operator's own expectations")
}

fn taint(key: &str, value: &str, effect: &str) -> TaintFacts {
    TaintFacts { key: key.into(), value: (!value.is_empty()).then(|| value.into()), effect: effect.into() }
}

fn windows_node(name: &str, build: &str) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        os: Some("windows".into()),
        windows_build: Some(build.into()),
        ready: true,
        unschedulable: false,
        taints: vec![taint("os", "windows", "NoSchedule")],
        container_runtime: "containerd://1.7.20".into(),
        kubelet_version: "v1.37.2".into(),
        os_image: "Windows Server 2022 Datacenter".into(),
    }
}

fn linux_node(name: &str) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        os: Some("linux".into()),
        ready: true,
        container_runtime: "containerd://2.1.4".into(),
        ..NodeFacts::default()
    }
}

fn smb_daemonset(ready: i32, desired: i32) -> DaemonSetFacts {
    DaemonSetFacts {
        namespace: "kube-system".into(),
        name: "csi-smb-node-win".into(),
        node_selector: BTreeMap::from([("kubernetes.io/os".into(), "windows".into())]),
        images: vec!["registry.k8s.io/sig-storage/smbplugin:v1.17.0".into()],
        desired,
        ready,
    }
}

fn gmsa_webhooks() -> Vec<WebhookConfigFacts> {
    vec![WebhookConfigFacts {
        name: "gmsa-webhook".into(),
        webhooks: vec![WebhookFacts {
            name: "admission-webhook.windows-gmsa.sigs.k8s.io".into(),
            resources: vec!["pods".into()],
        }],
    }]
}

fn required_role() -> ClusterRoleFacts {
    ClusterRoleFacts { name: "winapp-operator".into(), rules: expected().rules }
}

/// A cluster with everything installed and healthy.
fn healthy() -> Facts {
    Facts {
        nodes: vec![
            linux_node("linux-1"),
            windows_node("win2022-1", "10.0.20348"),
            windows_node("win2022-2", "10.0.20348"),
        ],
        gmsa_crd: Lookup::Found(Some(GmsaCrdFacts { test_fixture: false })),
        mutating_webhooks: Lookup::Found(gmsa_webhooks()),
        validating_webhooks: Lookup::Found(gmsa_webhooks()),
        smb_csi_driver: Lookup::Found(true),
        daemon_sets: Lookup::Found(vec![smb_daemonset(2, 2)]),
        windowsapp_crd: Lookup::Found(Some(expected().crd)),
        apps: Lookup::Found(Some(vec![AppFacts {
            namespace: "agents".into(),
            name: "log-agent".into(),
            host_process: true,
            network_policy: false,
        }])),
        namespaces: Lookup::Found(BTreeMap::from([(
            "agents".into(),
            BTreeMap::from([("pod-security.kubernetes.io/enforce".into(), "privileged".into())]),
        )])),
        operator_deployments: Lookup::Found(vec![DeploymentFacts {
            namespace: "winapp-system".into(),
            name: "winapp-operator".into(),
            replicas: 2,
            available_replicas: 2,
            available: true,
            message: None,
        }]),
        operator_cluster_roles: Lookup::Found(vec![required_role()]),
    }
}

/// A cluster before the operator and any add-on is installed.
fn before_install() -> Facts {
    Facts {
        gmsa_crd: Lookup::Found(None),
        mutating_webhooks: Lookup::Found(vec![]),
        validating_webhooks: Lookup::Found(vec![]),
        smb_csi_driver: Lookup::Found(false),
        daemon_sets: Lookup::Found(vec![]),
        windowsapp_crd: Lookup::Found(None),
        apps: Lookup::Found(None),
        namespaces: Lookup::Found(BTreeMap::new()),
        operator_deployments: Lookup::Found(vec![]),
        operator_cluster_roles: Lookup::Found(vec![]),
        ..healthy()
    }
}

fn run(facts: &Facts, versions: &[WindowsVersion]) -> Vec<Finding> {
    doctor::check(facts, &expected(), &CheckOptions { windows_versions: versions.to_vec(), operator_namespace: None })
}

fn of(findings: &[Finding], check: Check) -> Vec<&Finding> {
    findings.iter().filter(|f| f.check == check).collect()
}

/// The single finding of a check, with its level.
fn only(findings: &[Finding], check: Check) -> &Finding {
    let found = of(findings, check);
    assert_eq!(found.len(), 1, "one finding of {check:?} expected: {found:#?}");
    found[0]
}

#[test]
fn a_healthy_cluster_has_only_ok_findings() {
    let findings = run(&healthy(), &[WindowsVersion::Ltsc2022]);
    let not_ok: Vec<&Finding> = findings.iter().filter(|f| f.level != Level::Ok).collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    assert_eq!(Summary::of(&findings).exit_code(true), doctor::EXIT_OK);
    for check in [
        Check::WindowsNodes,
        Check::WindowsVersion,
        Check::Taints,
        Check::Runtime,
        Check::GmsaCrd,
        Check::GmsaWebhook,
        Check::SmbCsiDriver,
        Check::SmbNodeDaemonset,
        Check::PodSecurity,
        Check::OperatorCrd,
        Check::OperatorDeployment,
        Check::OperatorRbac,
    ] {
        assert!(!of(&findings, check).is_empty(), "a finding of {check:?}");
    }
}

#[test]
fn before_install_everything_missing_is_a_warning_not_an_error() {
    let findings = run(&before_install(), &[]);
    assert!(findings.iter().all(|f| f.level != Level::Error), "{findings:#?}");
    for check in [
        Check::GmsaCrd,
        Check::GmsaWebhook,
        Check::SmbCsiDriver,
        Check::SmbNodeDaemonset,
        Check::OperatorCrd,
        Check::OperatorDeployment,
        Check::OperatorRbac,
    ] {
        assert_eq!(only(&findings, check).level, Level::Warning, "{check:?}");
    }
    assert!(only(&findings, Check::OperatorCrd).title.contains("not installed yet"));
    assert!(only(&findings, Check::OperatorDeployment).title.contains("not installed yet"));
    assert!(only(&findings, Check::OperatorRbac).title.contains("not installed yet"));
    assert!(only(&findings, Check::GmsaCrd).message.contains("windows-gmsa"), "says how to install");
    assert!(only(&findings, Check::SmbCsiDriver).message.contains("csi-driver-smb"), "says how to install");
    assert_eq!(Summary::of(&findings).exit_code(false), doctor::EXIT_OK);
    assert_eq!(Summary::of(&findings).exit_code(true), doctor::EXIT_FINDINGS, "--strict");
}

#[test]
fn no_windows_node_is_an_error() {
    let facts = Facts { nodes: vec![linux_node("linux-1"), linux_node("linux-2")], ..healthy() };
    let findings = run(&facts, &[]);
    let f = only(&findings, Check::WindowsNodes);
    assert_eq!(f.level, Level::Error);
    assert!(f.message.contains("NoMatchingWindowsNodes"), "{f:?}");
    assert!(of(&findings, Check::Taints).is_empty() && of(&findings, Check::Runtime).is_empty());
}

#[test]
fn windows_nodes_are_counted_by_build_and_readiness() {
    let mut facts = healthy();
    facts.nodes.push(windows_node("win2019-1", "10.0.17763"));
    let findings = run(&facts, &[]);
    let f = only(&findings, Check::WindowsNodes);
    assert_eq!(f.level, Level::Ok);
    assert_eq!(f.title, "3 Windows nodes, 3 Ready and schedulable");
    assert!(f.message.contains("ltsc2019 (10.0.17763): 1 node"), "{}", f.message);
    assert!(f.message.contains("ltsc2022 (10.0.20348): 2 nodes"), "{}", f.message);
    assert!(f.message.contains("spec.windows.version"), "mixed builds: advice to pin the version");

    facts.nodes[1].ready = false;
    facts.nodes[2].unschedulable = true;
    let findings = run(&facts, &[]);
    let f = only(&findings, Check::WindowsNodes);
    assert_eq!(f.level, Level::Warning);
    assert!(f.message.contains("win2022-1 (NotReady)") && f.message.contains("win2022-2 (cordoned)"), "{}", f.message);

    facts.nodes[3].ready = false;
    assert_eq!(only(&run(&facts, &[]), Check::WindowsNodes).level, Level::Error, "no usable Windows node");
}

#[test]
fn a_missing_windows_version_is_an_error() {
    let findings = run(&healthy(), &[WindowsVersion::Ltsc2025, WindowsVersion::Ltsc2022, WindowsVersion::Ltsc2025]);
    let versions = of(&findings, Check::WindowsVersion);
    assert_eq!(versions.len(), 2, "one per release, duplicates dropped: {versions:#?}");
    let ltsc2025 = versions.iter().find(|f| f.title.contains("ltsc2025")).expect("ltsc2025");
    assert_eq!(ltsc2025.level, Level::Error);
    assert!(ltsc2025.message.contains("10.0.26100") && ltsc2025.message.contains("Windows Server 2025"));
    let ltsc2022 = versions.iter().find(|f| f.title.contains("ltsc2022")).expect("ltsc2022");
    assert_eq!(ltsc2022.level, Level::Ok);
    assert_eq!(Summary::of(&findings).exit_code(false), doctor::EXIT_FINDINGS);

    let mut facts = healthy();
    for n in &mut facts.nodes {
        n.ready = false;
    }
    let f = run(&facts, &[WindowsVersion::Ltsc2022]);
    assert_eq!(only(&f, Check::WindowsVersion).level, Level::Error, "nodes of the build, none Ready");
}

#[test]
fn the_default_pool_taint_is_tolerated_and_others_are_named() {
    let findings = run(&healthy(), &[]);
    let f = only(&findings, Check::Taints);
    assert_eq!(f.level, Level::Ok);
    assert!(f.message.contains("os=windows:NoSchedule"), "{}", f.message);

    let mut facts = healthy();
    facts.nodes[1].taints.push(taint("dedicated", "windows-gpu", "NoSchedule"));
    facts.nodes[2].taints.push(taint("node.kubernetes.io/not-ready", "", "NoExecute"));
    let findings = run(&facts, &[]);
    let f = only(&findings, Check::Taints);
    assert_eq!(f.level, Level::Warning);
    assert!(f.title.contains("dedicated=windows-gpu:NoSchedule"), "{}", f.title);
    assert!(f.message.contains("win2022-1") && !f.message.contains("win2022-2"), "{}", f.message);
    assert!(f.message.contains("spec.windows.toleration"), "names the field: {}", f.message);

    let mut facts = healthy();
    facts.nodes[1].taints = vec![taint("os", "windows", "NoExecute")];
    let f = run(&facts, &[]);
    let taints = of(&f, Check::Taints);
    let no_execute = taints.iter().find(|f| f.title.contains("os=windows:NoExecute")).expect("NoExecute named");
    assert_eq!(no_execute.level, Level::Warning);
    assert!(no_execute.message.contains("spec.windows.tolerations") && no_execute.message.contains("evicted"));
}

#[test]
fn runtimes_are_reported_and_docker_is_a_warning() {
    let f = run(&healthy(), &[]);
    let runtime = only(&f, Check::Runtime);
    assert_eq!(runtime.level, Level::Ok);
    assert!(runtime.message.contains("containerd://1.7.20") && runtime.message.contains("Windows Server 2022"));

    let mut facts = healthy();
    facts.nodes[2].container_runtime = "docker://20.10.9".into();
    facts.nodes[0].container_runtime = "docker://24.0.0".into(); // a Linux node: not judged
    let f = run(&facts, &[]);
    let warnings: Vec<&Finding> = of(&f, Check::Runtime).into_iter().filter(|f| f.level == Level::Warning).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].title.contains("win2022-2") && warnings[0].title.contains("docker://20.10.9"));
    assert!(warnings[0].message.contains("containerd"));
}

#[test]
fn gmsa_crd_and_webhooks() {
    let mut facts = healthy();
    facts.gmsa_crd = Lookup::Found(Some(GmsaCrdFacts { test_fixture: true }));
    let f = run(&facts, &[]);
    assert_eq!(only(&f, Check::GmsaCrd).level, Level::Ok);
    assert!(only(&f, Check::GmsaCrd).message.contains("test fixture"));

    facts.gmsa_crd = Lookup::Forbidden("customresourcedefinitions is forbidden".into());
    let f = run(&facts, &[]);
    assert_eq!(only(&f, Check::GmsaCrd).level, Level::Warning);
    assert!(only(&f, Check::GmsaCrd).title.contains("forbidden"));

    // Only a validating webhook: the mutating one is missing.
    facts.mutating_webhooks = Lookup::Found(vec![]);
    let f = run(&facts, &[]);
    let hooks = of(&f, Check::GmsaWebhook);
    assert!(hooks.iter().any(|h| h.level == Level::Warning && h.title.contains("mutating")), "{hooks:#?}");

    // A gMSA-named webhook that does not look at pods does not count.
    let mut other = gmsa_webhooks();
    other[0].webhooks[0].resources = vec!["configmaps".into()];
    facts.mutating_webhooks = Lookup::Found(other.clone());
    facts.validating_webhooks = Lookup::Found(other);
    let f = run(&facts, &[]);
    let hook = only(&f, Check::GmsaWebhook);
    assert_eq!(hook.level, Level::Warning);
    assert!(hook.title.contains("not installed"), "{hook:?}");

    // Forbidden to list webhook configurations: a warning per kind, not a failure.
    facts.mutating_webhooks = Lookup::Forbidden("forbidden".into());
    facts.validating_webhooks = Lookup::Forbidden("forbidden".into());
    let f = run(&facts, &[]);
    let hooks = of(&f, Check::GmsaWebhook);
    assert_eq!(hooks.len(), 2);
    assert!(hooks.iter().all(|h| h.level == Level::Warning && h.title.contains("cannot check")), "{hooks:#?}");
}

#[test]
fn smb_driver_and_its_windows_node_plugin() {
    let mut facts = healthy();
    let f = run(&facts, &[]);
    assert_eq!(only(&f, Check::SmbNodeDaemonset).level, Level::Ok);
    assert!(only(&f, Check::SmbNodeDaemonset).title.contains("2/2"));

    facts.daemon_sets = Lookup::Found(vec![smb_daemonset(1, 2)]);
    assert_eq!(only(&run(&facts, &[]), Check::SmbNodeDaemonset).level, Level::Warning, "1 of 2 ready");

    facts.daemon_sets = Lookup::Found(vec![smb_daemonset(1, 1)]);
    let f = run(&facts, &[]);
    assert_eq!(only(&f, Check::SmbNodeDaemonset).level, Level::Warning, "on 1 of 2 Windows nodes");

    // Found by its image and Windows node selector under another name; the Linux plugin does not count.
    let mut renamed = smb_daemonset(2, 2);
    renamed.name = "smb-windows".into();
    let mut linux = smb_daemonset(2, 2);
    linux.name = "csi-smb-node".into();
    linux.node_selector = BTreeMap::from([("kubernetes.io/os".into(), "linux".into())]);
    facts.daemon_sets = Lookup::Found(vec![linux.clone(), renamed]);
    let f = run(&facts, &[]);
    assert_eq!(only(&f, Check::SmbNodeDaemonset).level, Level::Ok);
    assert!(only(&f, Check::SmbNodeDaemonset).message.contains("kube-system/smb-windows"));

    facts.daemon_sets = Lookup::Found(vec![linux]);
    facts.smb_csi_driver = Lookup::Found(false);
    let f = run(&facts, &[]);
    assert_eq!(only(&f, Check::SmbNodeDaemonset).level, Level::Warning);
    assert_eq!(only(&f, Check::SmbCsiDriver).level, Level::Warning);
}

#[test]
fn host_process_apps_need_a_privileged_namespace() {
    let mut facts = healthy();
    let labels = |level: Option<&str>| {
        level
            .map(|l| BTreeMap::from([("pod-security.kubernetes.io/enforce".to_owned(), l.to_owned())]))
            .unwrap_or_default()
    };
    facts.apps = Lookup::Found(Some(vec![
        AppFacts { namespace: "agents".into(), name: "log-agent".into(), host_process: true, network_policy: false },
        AppFacts { namespace: "web".into(), name: "site".into(), host_process: false, network_policy: false },
        AppFacts { namespace: "open".into(), name: "probe".into(), host_process: true, network_policy: false },
    ]));
    facts.namespaces = Lookup::Found(BTreeMap::from([
        ("agents".into(), labels(Some("baseline"))),
        ("web".into(), labels(Some("restricted"))),
        ("open".into(), labels(None)),
    ]));
    let f = run(&facts, &[]);
    let ps = of(&f, Check::PodSecurity);
    let errors: Vec<&&Finding> = ps.iter().filter(|f| f.level == Level::Error).collect();
    assert_eq!(errors.len(), 1, "only the namespace with a hostProcess app: {ps:#?}");
    assert!(errors[0].title.contains("agents"));
    assert!(errors[0].message.contains("log-agent"));
    assert!(errors[0].message.contains("pod-security.kubernetes.io/enforce=privileged"), "{}", errors[0].message);
    assert!(ps.iter().any(|f| f.level == Level::Ok && f.message.contains("open")), "no label: admitted");

    facts.apps = Lookup::Found(None);
    assert_eq!(only(&run(&facts, &[]), Check::PodSecurity).level, Level::Ok, "CRD not installed");
    facts.apps = Lookup::Forbidden("forbidden".into());
    assert_eq!(only(&run(&facts, &[]), Check::PodSecurity).level, Level::Warning);
}

#[test]
fn a_stale_crd_is_a_warning_that_names_the_difference() {
    let mut facts = healthy();
    let Lookup::Found(Some(crd)) = &mut facts.windowsapp_crd else { unreachable!() };
    let schema = crd.versions[0].schema.as_mut().expect("schema");
    schema["properties"]["spec"]["properties"].as_object_mut().expect("spec properties").remove("hostProcess");
    let f = run(&facts, &[]);
    let stale = only(&f, Check::OperatorCrd);
    assert_eq!(stale.level, Level::Warning);
    assert!(stale.message.contains(".properties.spec.properties.hostProcess"), "{}", stale.message);
    assert!(stale.message.contains("crds/"), "says to re-apply crds/");

    let mut facts = healthy();
    let Lookup::Found(Some(crd)) = &mut facts.windowsapp_crd else { unreachable!() };
    crd.versions[0].served = false;
    let f = run(&facts, &[]);
    assert!(only(&f, Check::OperatorCrd).message.contains("served=false"));
}

#[test]
fn the_operator_deployment_must_be_available() {
    let mut facts = healthy();
    facts.operator_deployments = Lookup::Found(vec![DeploymentFacts {
        namespace: "winapp-system".into(),
        name: "winapp-operator".into(),
        replicas: 2,
        available_replicas: 0,
        available: false,
        message: Some("Deployment does not have minimum availability.".into()),
    }]);
    let f = run(&facts, &[]);
    let d = only(&f, Check::OperatorDeployment);
    assert_eq!(d.level, Level::Error);
    assert!(d.message.contains("minimum availability") && d.message.contains("kubectl -n winapp-system"));
}

#[test]
fn the_cluster_role_must_cover_the_shipped_rules() {
    let required = expected().rules;
    let mut facts = healthy();
    // Drop `delete` on Deployments.
    let mut rules = required.clone();
    for r in &mut rules {
        if r.resources.iter().flatten().any(|x| x == "deployments") {
            r.verbs.retain(|v| v != "delete");
        }
    }
    facts.operator_cluster_roles = Lookup::Found(vec![ClusterRoleFacts { name: "winapp-operator".into(), rules }]);
    let f = run(&facts, &[]);
    let rbac = only(&f, Check::OperatorRbac);
    assert_eq!(rbac.level, Level::Error);
    assert!(rbac.message.contains("delete on deployments.apps"), "{}", rbac.message);

    // Wildcards cover everything; a rule limited to other names does not.
    let star = PolicyRule {
        api_groups: Some(vec!["*".into()]),
        resources: Some(vec!["*".into()]),
        verbs: vec!["*".into()],
        ..PolicyRule::default()
    };
    facts.operator_cluster_roles =
        Lookup::Found(vec![ClusterRoleFacts { name: "admin-like".into(), rules: vec![star] }]);
    assert_eq!(only(&run(&facts, &[]), Check::OperatorRbac).level, Level::Ok);

    let mut rules = required.clone();
    for r in &mut rules {
        if r.resources.iter().flatten().any(|x| x == "customresourcedefinitions") {
            r.resource_names = Some(vec!["something-else".into()]);
        }
    }
    facts.operator_cluster_roles = Lookup::Found(vec![ClusterRoleFacts { name: "winapp-operator".into(), rules }]);
    let rbac = run(&facts, &[]);
    let rbac = only(&rbac, Check::OperatorRbac);
    assert_eq!(rbac.level, Level::Error);
    assert!(rbac.message.contains("named gmsacredentialspecs.windows.k8s.io"), "{}", rbac.message);

    // Split over two roles (the Helm chart's and an extra one) still covers.
    let (a, b) = required.split_at(required.len() / 2);
    facts.operator_cluster_roles = Lookup::Found(vec![
        ClusterRoleFacts { name: "winapp-operator".into(), rules: a.to_vec() },
        ClusterRoleFacts { name: "winapp-operator-extra".into(), rules: b.to_vec() },
    ]);
    assert_eq!(only(&run(&facts, &[]), Check::OperatorRbac).level, Level::Ok);
}

#[test]
fn json_output_has_the_findings_and_a_summary() {
    let findings = run(&before_install(), &[WindowsVersion::Ltsc2025]);
    let doc: Value = serde_json::from_str(&doctor::output::json(&findings, false)).expect("JSON");
    let list = doc["findings"].as_array().expect("findings");
    assert_eq!(list.len(), findings.len());
    for f in list {
        for key in ["check", "level", "title", "message"] {
            assert!(f[key].is_string(), "{key} in {f}");
        }
    }
    assert!(list.iter().any(|f| f["check"] == "windows-version" && f["level"] == "error"));
    assert_eq!(doc["summary"]["errors"], 1);
    assert_eq!(doc["summary"]["exitCode"], 1);
    assert!(doc["summary"]["warnings"].as_u64().is_some_and(|w| w > 0));
}

#[test]
fn text_output_groups_by_section_with_one_line_per_finding() {
    let findings = run(&before_install(), &[]);
    let text = doctor::output::text(&findings, false);
    for section in ["Windows nodes", "gMSA", "SMB storage", "Pod Security", "Operator"] {
        assert!(text.lines().any(|l| l == section), "heading {section}:\n{text}");
    }
    let finding_lines = text.lines().filter(|l| l.starts_with("  [")).count();
    assert_eq!(finding_lines, findings.len(), "{text}");
    assert!(text.contains("  [warn]  GMSACredentialSpec CRD not installed: "), "{text}");
    assert!(text.lines().last().is_some_and(|l| l.starts_with("Summary: ") && l.ends_with("exit code 0")), "{text}");
}

#[test]
fn windows_versions_parse_by_name_or_build() {
    assert_eq!(doctor::parse_windows_version("ltsc2025"), Ok(WindowsVersion::Ltsc2025));
    assert_eq!(doctor::parse_windows_version("10.0.17763"), Ok(WindowsVersion::Ltsc2019));
    assert!(doctor::parse_windows_version("2022").is_err_and(|e| e.contains("ltsc2022")));
}

#[test]
fn network_policy_on_windows_needs_a_dataplane_that_enforces_it() {
    let mut facts = healthy();
    // No dataplane, no app asks: fine, said as information.
    let f = run(&facts, &[]);
    assert_eq!(only(&f, Check::NetworkPolicy).level, Level::Ok);
    assert!(only(&f, Check::NetworkPolicy).message.contains("Calico for Windows"));

    // An app asks for a policy that nothing enforces: a warning naming it.
    facts.apps = Lookup::Found(Some(vec![AppFacts {
        namespace: "shop".into(),
        name: "catalog".into(),
        host_process: false,
        network_policy: true,
    }]));
    let f = run(&facts, &[]);
    assert_eq!(only(&f, Check::NetworkPolicy).level, Level::Warning);
    assert!(only(&f, Check::NetworkPolicy).message.contains("shop/catalog"));

    // Calico for Windows runs: enforced.
    let mut calico = smb_daemonset(2, 2);
    calico.namespace = "calico-system".into();
    calico.name = "calico-node-windows".into();
    facts.daemon_sets = Lookup::Found(vec![smb_daemonset(2, 2), calico]);
    let f = run(&facts, &[]);
    assert_eq!(only(&f, Check::NetworkPolicy).level, Level::Ok);
    assert!(only(&f, Check::NetworkPolicy).message.contains("Calico for Windows (calico-system/calico-node-windows)"));
}
