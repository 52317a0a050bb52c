//! The pure part of `winapp-operator doctor`: hand-built facts in, findings out. No cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;
use winapp_operator::api::WindowsVersion;
use winapp_operator::doctor::facts::{
    AdmissionBindingFacts, AdmissionPolicyFacts, AppFacts, ClusterRoleFacts, DaemonSetFacts, DeploymentFacts, EnvFacts,
    Facts, GmsaCrdFacts, Lookup, NamespaceGrantFacts, NodeFacts, PodRequestFacts, RoleFacts, TaintFacts,
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
        allocatable_cpu_millis: Some(4000),
        allocatable_memory_bytes: Some(16 << 30),
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

/// The operator's Deployment as config/manager installs it, with extra arguments and environment.
fn operator_deployment(args: &[&str], env: &[(&str, Option<&str>)]) -> DeploymentFacts {
    let mut all = vec!["run", "--log-format=json", "--http-addr=0.0.0.0:8080"];
    all.extend_from_slice(args);
    DeploymentFacts {
        namespace: "winapp-system".into(),
        name: "winapp-operator".into(),
        replicas: 2,
        available_replicas: 2,
        available: true,
        message: None,
        service_account: "winapp-operator".into(),
        args: all.into_iter().map(str::to_owned).collect(),
        env: env.iter().map(|(n, v)| EnvFacts { name: (*n).into(), value: v.map(str::to_owned) }).collect(),
    }
}

/// config/admission's policy and binding.
fn fence_policy() -> (AdmissionPolicyFacts, AdmissionBindingFacts) {
    (
        AdmissionPolicyFacts {
            name: "winapp-operator-fence".into(),
            operator_labelled: true,
            match_conditions: vec![
                "request.userInfo.username == 'system:serviceaccount:winapp-system:winapp-operator'".into(),
            ],
            resources: ["clusterroles", "rolebindings", "persistentvolumes", "gmsacredentialspecs"]
                .map(str::to_owned)
                .to_vec(),
        },
        AdmissionBindingFacts {
            name: "winapp-operator-fence".into(),
            policy_name: "winapp-operator-fence".into(),
            actions: vec!["Deny".into()],
        },
    )
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
            windows_version: Some("ltsc2022".into()),
        }])),
        namespaces: Lookup::Found(BTreeMap::from([(
            "agents".into(),
            BTreeMap::from([("pod-security.kubernetes.io/enforce".into(), "privileged".into())]),
        )])),
        operator_deployments: Lookup::Found(vec![operator_deployment(&[], &[])]),
        operator_cluster_roles: Lookup::Found(vec![required_role()]),
        operator_roles: Lookup::Found(vec![]),
        admission_policies: Lookup::Found(Some(vec![fence_policy().0])),
        admission_bindings: Lookup::Found(Some(vec![fence_policy().1])),
        // The platform grants HostProcess node agents to one namespace.
        namespace_grants: Lookup::Found(vec![NamespaceGrantFacts {
            namespace: "agents".into(),
            allow: Some("host-process,node-agent".into()),
            allowed_taints: None,
        }]),
        pods: Lookup::Found(vec![]),
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
        operator_roles: Lookup::Found(vec![]),
        admission_policies: Lookup::Found(Some(vec![])),
        admission_bindings: Lookup::Found(Some(vec![])),
        namespace_grants: Lookup::Found(vec![]),
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
        Check::Capacity,
        Check::AppBuilds,
        Check::GmsaCrd,
        Check::GmsaWebhook,
        Check::SmbCsiDriver,
        Check::SmbNodeDaemonset,
        Check::PodSecurity,
        Check::OperatorCrd,
        Check::OperatorDeployment,
        Check::OperatorRbac,
        Check::OperatorFence,
        Check::OperatorPolicy,
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
        Check::OperatorFence,
    ] {
        assert_eq!(only(&findings, check).level, Level::Warning, "{check:?}");
    }
    assert_eq!(only(&findings, Check::OperatorPolicy).level, Level::Ok, "nothing to read yet: {findings:#?}");
    assert!(only(&findings, Check::OperatorFence).message.contains("config/admission"), "says how to install");
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
fn capacity_per_build_counts_pods_on_cordoned_nodes_against_usable_allocatable() {
    let pod = |node: &str, cpu_millis: u64, gib: u64| PodRequestFacts {
        node: node.into(),
        cpu_millis,
        memory_bytes: gib << 30,
    };
    let cordoned = NodeFacts { unschedulable: true, ..windows_node("win2022-3", "10.0.20348") };
    let mut facts = Facts {
        nodes: vec![
            linux_node("linux-1"),
            windows_node("win2022-1", "10.0.20348"),
            windows_node("win2022-2", "10.0.20348"),
            cordoned,
            windows_node("win2025-1", "10.0.26100"),
        ],
        // 2 usable ltsc2022 nodes: 8 cores, 32 GiB. The Linux node's pod does not count.
        pods: Lookup::Found(vec![
            pod("win2022-1", 2000, 12),
            pod("win2022-2", 2000, 12),
            pod("win2022-3", 1000, 6),
            pod("linux-1", 64000, 512),
            pod("win2025-1", 500, 1),
        ]),
        ..healthy()
    };
    let findings = run(&facts, &[]);
    let found = of(&findings, Check::Capacity);
    assert_eq!(found.len(), 2, "one per build: {found:#?}");
    let ltsc2022 = found.iter().find(|f| f.title.contains("10.0.20348")).expect("ltsc2022");
    assert_eq!(ltsc2022.level, Level::Warning, "30 of 32 GiB is above 90 %: {ltsc2022:#?}");
    assert!(ltsc2022.message.contains("memory 30.0 GiB of 32.0 GiB (93 %)"), "{}", ltsc2022.message);
    assert!(ltsc2022.message.contains("CPU 5.0 of 8.0 cores requested (62 %)"), "{}", ltsc2022.message);
    assert!(ltsc2022.message.contains("add nodes"), "says what to do: {}", ltsc2022.message);
    let ltsc2025 = found.iter().find(|f| f.title.contains("10.0.26100")).expect("ltsc2025");
    assert_eq!(ltsc2025.level, Level::Ok);

    facts.pods = Lookup::Forbidden("pods is forbidden".into());
    let forbidden = only(&run(&facts, &[]), Check::Capacity).clone();
    assert_eq!(forbidden.level, Level::Warning);
    assert!(forbidden.title.contains("cannot check"), "{forbidden:#?}");
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
        AppFacts {
            namespace: "agents".into(),
            name: "log-agent".into(),
            host_process: true,
            network_policy: false,
            windows_version: None,
        },
        AppFacts {
            namespace: "web".into(),
            name: "site".into(),
            host_process: false,
            network_policy: false,
            windows_version: None,
        },
        AppFacts {
            namespace: "open".into(),
            name: "probe".into(),
            host_process: true,
            network_policy: false,
            windows_version: None,
        },
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
    // No label: admitted, but nobody has said what the namespace admits.
    let unlabelled: Vec<&&Finding> = ps.iter().filter(|f| f.level == Level::Warning).collect();
    assert_eq!(unlabelled.len(), 1, "{ps:#?}");
    assert_eq!(unlabelled[0].title, "namespace open has WindowsApps but no Pod Security level");
    assert!(
        unlabelled[0].message.contains("kubectl label namespace open pod-security.kubernetes.io/enforce=privileged"),
        "a HostProcess namespace is told to say privileged: {}",
        unlabelled[0].message
    );
    assert!(ps.iter().any(|f| f.level == Level::Ok && f.message.contains("web (restricted")), "{ps:#?}");

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
        available_replicas: 0,
        available: false,
        message: Some("Deployment does not have minimum availability.".into()),
        ..operator_deployment(&[], &[])
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
        windows_version: None,
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

#[test]
fn apps_in_namespaces_without_a_pod_security_label_are_a_warning_naming_the_level_to_set() {
    let mut facts = healthy();
    facts.apps = Lookup::Found(Some(vec![
        AppFacts {
            namespace: "web".into(),
            name: "site".into(),
            host_process: false,
            network_policy: false,
            windows_version: None,
        },
        AppFacts {
            namespace: "web".into(),
            name: "api".into(),
            host_process: false,
            network_policy: false,
            windows_version: None,
        },
        AppFacts {
            namespace: "batch".into(),
            name: "worker".into(),
            host_process: false,
            network_policy: false,
            windows_version: None,
        },
    ]));
    facts.namespaces = Lookup::Found(BTreeMap::from([
        ("web".into(), BTreeMap::new()),
        ("batch".into(), BTreeMap::from([("pod-security.kubernetes.io/enforce".into(), "baseline".into())])),
    ]));
    let f = run(&facts, &[]);
    let ps = of(&f, Check::PodSecurity);
    let warning = ps.iter().find(|f| f.level == Level::Warning).unwrap_or_else(|| panic!("no warning: {ps:#?}"));
    assert_eq!(ps.iter().filter(|f| f.level == Level::Warning).count(), 1, "{ps:#?}");
    assert_eq!(warning.title, "namespace web has WindowsApps but no Pod Security level");
    assert!(
        warning.message.contains("kubectl label namespace web pod-security.kubernetes.io/enforce=baseline"),
        "{}",
        warning.message
    );
    assert!(ps.iter().any(|f| f.level == Level::Ok && f.message.contains("batch (baseline, 1 apps)")), "{ps:#?}");
    assert!(ps.iter().all(|f| f.level != Level::Error), "{ps:#?}");
    // Labelled, it is ok.
    facts.namespaces = Lookup::Found(BTreeMap::from([
        ("web".into(), BTreeMap::from([("pod-security.kubernetes.io/enforce".into(), "restricted".into())])),
        ("batch".into(), BTreeMap::from([("pod-security.kubernetes.io/enforce".into(), "baseline".into())])),
    ]));
    assert_eq!(only(&run(&facts, &[]), Check::PodSecurity).level, Level::Ok);
}

#[test]
fn the_fence_is_reported_installed_missing_unenforced_or_naming_another_account() {
    let f = run(&healthy(), &[]);
    let ok = only(&f, Check::OperatorFence);
    assert_eq!(ok.level, Level::Ok, "{ok:?}");
    assert!(ok.message.contains("system:serviceaccount:winapp-system:winapp-operator"), "{}", ok.message);

    let (policy, binding) = fence_policy();
    let fence_of = |policies: Vec<AdmissionPolicyFacts>, bindings: Vec<AdmissionBindingFacts>| {
        let facts = Facts {
            admission_policies: Lookup::Found(Some(policies)),
            admission_bindings: Lookup::Found(Some(bindings)),
            ..healthy()
        };
        of(&run(&facts, &[]), Check::OperatorFence).into_iter().cloned().collect::<Vec<Finding>>()
    };
    let warned = |findings: &[Finding], words: &[&str]| {
        assert!(
            findings.iter().any(
                |f| f.level == Level::Warning && words.iter().all(|w| f.message.contains(w) || f.title.contains(w))
            ),
            "a warning saying {words:?}: {findings:#?}"
        );
    };
    // Missing: a warning that says how to install it.
    warned(
        &fence_of(vec![], vec![]),
        &["not installed", "kubectl apply --server-side -k config/admission", "admissionPolicy.enabled"],
    );
    // Another team's policy is not the fence.
    let other = AdmissionPolicyFacts {
        name: "team-policy".into(),
        match_conditions: vec!["request.userInfo.username == 'alice'".into()],
        ..AdmissionPolicyFacts::default()
    };
    warned(&fence_of(vec![other], vec![]), &["not installed"]);
    // Installed but not bound, or bound without Deny.
    warned(&fence_of(vec![policy.clone()], vec![]), &["not enforced", "no ValidatingAdmissionPolicyBinding names it"]);
    let audit = AdmissionBindingFacts { actions: vec!["Warn".into(), "Audit".into()], ..binding.clone() };
    warned(&fence_of(vec![policy.clone()], vec![audit]), &["not enforced", "[Warn, Audit]"]);
    // Edited so that it leaves out a kind.
    let narrow =
        AdmissionPolicyFacts { resources: vec!["clusterroles".into(), "rolebindings".into()], ..policy.clone() };
    warned(&fence_of(vec![narrow], vec![binding.clone()]), &["leaves out persistentvolumes, gmsacredentialspecs"]);
    // An overlay moved the operator but did not patch the policy.
    let moved = Facts {
        operator_deployments: Lookup::Found(vec![DeploymentFacts {
            namespace: "platform".into(),
            service_account: "winapp".into(),
            ..operator_deployment(&[], &[])
        }]),
        ..healthy()
    };
    let f = run(&moved, &[]);
    warned(
        &of(&f, Check::OperatorFence).into_iter().cloned().collect::<Vec<_>>(),
        &[
            "does not match the operator's ServiceAccount system:serviceaccount:platform:winapp",
            "it names system:serviceaccount:winapp-system:winapp-operator",
            "/spec/matchConditions/0/expression",
        ],
    );
    // A Helm release of another name fences its own ServiceAccount, found by it.
    let release = Facts {
        operator_deployments: Lookup::Found(vec![DeploymentFacts {
            namespace: "ops".into(),
            name: "acme-winapp-operator".into(),
            service_account: "acme-winapp-operator".into(),
            ..operator_deployment(&[], &[])
        }]),
        admission_policies: Lookup::Found(Some(vec![AdmissionPolicyFacts {
            name: "acme-winapp-operator-fence".into(),
            operator_labelled: false,
            match_conditions: vec![
                "request.userInfo.username == 'system:serviceaccount:ops:acme-winapp-operator'".into(),
            ],
            ..policy.clone()
        }])),
        admission_bindings: Lookup::Found(Some(vec![AdmissionBindingFacts {
            policy_name: "acme-winapp-operator-fence".into(),
            ..binding.clone()
        }])),
        ..healthy()
    };
    assert_eq!(only(&run(&release, &[]), Check::OperatorFence).level, Level::Ok);
    // Not served (before Kubernetes 1.30), and not readable.
    let old = Facts { admission_policies: Lookup::Found(None), admission_bindings: Lookup::Found(None), ..healthy() };
    warned(&of(&run(&old, &[]), Check::OperatorFence).into_iter().cloned().collect::<Vec<_>>(), &["1.30"]);
    let forbidden = Facts { admission_policies: Lookup::Forbidden("forbidden".into()), ..healthy() };
    let f = run(&forbidden, &[]);
    assert!(only(&f, Check::OperatorFence).title.contains("cannot check ValidatingAdmissionPolicies: forbidden"));
}

#[test]
fn the_policy_finding_names_what_is_granted_to_every_app_and_per_namespace() {
    use winapp_operator::doctor::grants::{operator_grants, rule_names};
    let policy_of =
        |facts: &Facts| of(&run(facts, &[]), Check::OperatorPolicy).into_iter().cloned().collect::<Vec<_>>();
    let with = |args: &[&str], env: &[(&str, Option<&str>)]| Facts {
        operator_deployments: Lookup::Found(vec![operator_deployment(args, env)]),
        ..healthy()
    };
    // The defaults: nothing to every app; the namespace grant is named.
    let f = policy_of(&healthy());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].level, Level::Ok);
    assert!(f[0].message.contains("every app: nothing"), "{}", f[0].message);
    assert!(f[0].message.contains("agents (rules host-process, node-agent)"), "{}", f[0].message);
    // Node-level powers to every app: a warning naming them and how to grant per namespace.
    for args in [&["--allow=host-path,gmsa"][..], &["--allow", "gmsa,host-path"][..]] {
        let f = policy_of(&with(args, &[]));
        assert_eq!(f[0].level, Level::Warning, "{args:?}: {f:#?}");
        assert!(f[0].title.contains("grants node-level powers to every app: host-path"), "{}", f[0].title);
        assert!(f[0].message.contains("every app: rules gmsa, host-path"), "{}", f[0].message);
        assert!(f[0].message.contains("winapp.dev/allow"), "{}", f[0].message);
    }
    let f = policy_of(&with(&["--allow-pod-override", "privileged"], &[]));
    assert!(f[0].level == Level::Warning && f[0].title.contains("privileged"), "the former flag counts: {f:#?}");
    let f = policy_of(&with(&[], &[("WINAPP_ALLOW_POD_OVERRIDES", Some("tolerate-all"))]));
    assert!(f[0].level == Level::Warning && f[0].title.contains("tolerate-all"), "the former variable counts: {f:#?}");
    // Flags and variables add up; rules that stay off the node are ok.
    let f = policy_of(&with(
        &["--allow-taint=dedicated=gpu"],
        &[
            ("WINAPP_ALLOW", Some("gmsa")),
            ("WINAPP_ALLOW_POD_OVERRIDES", Some("run-as-user")),
            ("WINAPP_ALLOW_TAINTS", Some("spot")),
        ],
    ));
    assert_eq!(f[0].level, Level::Ok, "{f:#?}");
    assert!(
        f[0].message.contains("every app: rules gmsa, run-as-user; taints dedicated=gpu, spot"),
        "{}",
        f[0].message
    );
    // A variable from a ConfigMap: doctor cannot tell.
    let f = policy_of(&with(&[], &[("WINAPP_ALLOW", None)]));
    assert!(f[0].level == Level::Warning && f[0].message.contains("WINAPP_ALLOW set from a ConfigMap"), "{f:#?}");
    // An operator of one namespace: only that namespace's grants matter.
    let mut facts = with(&["--namespace=team-a"], &[]);
    facts.namespace_grants = Lookup::Found(vec![
        NamespaceGrantFacts { namespace: "agents".into(), allow: Some("host-process".into()), allowed_taints: None },
        NamespaceGrantFacts {
            namespace: "team-a".into(),
            allow: Some("gmsa".into()),
            allowed_taints: Some("spot".into()),
        },
    ]);
    let f = policy_of(&facts);
    assert!(
        f[0].message.contains("it watches the namespace team-a only): team-a (rules gmsa; taints spot)"),
        "{}",
        f[0].message
    );
    assert!(!f[0].message.contains("agents"), "{}", f[0].message);
    // Names this binary does not know: a warning of their own.
    let f = policy_of(&with(&["--allow=hostpath"], &[]));
    assert!(
        f.iter().any(|f| f.level == Level::Warning
            && f.title.contains("unknown policy rules")
            && f.title.contains("hostpath")),
        "{f:#?}"
    );
    // Forbidden reads.
    let f = policy_of(&Facts { operator_deployments: Lookup::Forbidden("no".into()), ..healthy() });
    assert!(f[0].title.contains("cannot check Deployments: forbidden"), "{f:#?}");

    // The parsing itself: --allow-taint is not --allow, and a flag's value may follow it.
    let args: Vec<String> =
        ["run", "--allow-taint", "a=b,c", "--allow", "gmsa", "--namespace", "x"].map(str::to_owned).to_vec();
    let g = operator_grants(&args, &[]);
    assert_eq!(g.rules.iter().map(String::as_str).collect::<Vec<_>>(), ["gmsa"]);
    assert_eq!(g.taints.iter().map(String::as_str).collect::<Vec<_>>(), ["a=b", "c"]);
    assert_eq!(g.watch_namespace.as_deref(), Some("x"));
    let names = rule_names();
    for rule in winapp_operator::policy::Rule::ALL {
        assert!(names.contains(&rule.name()), "{}", rule.name());
    }
    for rule in ["node-agent", "other-taints", "smb-volumes"] {
        assert_eq!(names.iter().filter(|n| **n == rule).count(), 1, "{rule} once");
    }
}

#[test]
fn an_operator_of_one_namespace_is_granted_by_its_role_there() {
    let cluster_scoped = [
        "persistentvolumes",
        "clusterroles",
        "gmsacredentialspecs",
        "namespaces",
        "nodes",
        "runtimeclasses",
        "csinodes",
        "customresourcedefinitions",
    ];
    let is_cluster = |r: &PolicyRule| r.resources.iter().flatten().all(|x| cluster_scoped.contains(&x.as_str()));
    let all = expected().rules;
    let cluster: Vec<PolicyRule> = all.iter().filter(|r| is_cluster(r)).cloned().collect();
    let namespaced: Vec<PolicyRule> = all.iter().filter(|r| !is_cluster(r)).cloned().collect();
    assert!(!cluster.is_empty() && !namespaced.is_empty());
    let facts = |args: &[&str], role_namespace: &str| Facts {
        operator_deployments: Lookup::Found(vec![operator_deployment(args, &[])]),
        operator_cluster_roles: Lookup::Found(vec![ClusterRoleFacts {
            name: "winapp-operator".into(),
            rules: cluster.clone(),
        }]),
        operator_roles: Lookup::Found(vec![RoleFacts {
            namespace: role_namespace.into(),
            name: "winapp-operator".into(),
            rules: namespaced.clone(),
        }]),
        ..healthy()
    };
    let f = run(&facts(&["--namespace=apps"], "apps"), &[]);
    let ok = only(&f, Check::OperatorRbac);
    assert_eq!(ok.level, Level::Ok, "{ok:?}");
    assert!(ok.message.contains("Role apps/winapp-operator"), "{}", ok.message);
    // The Role in another namespace than the one watched, or an operator that watches them all.
    let f = run(&facts(&["--namespace=apps"], "other"), &[]);
    let e = only(&f, Check::OperatorRbac);
    assert!(
        e.level == Level::Error
            && e.message.contains("for the namespace apps")
            && e.message.contains("deployments.apps"),
        "{e:?}"
    );
    let f = run(&facts(&[], "apps"), &[]);
    assert_eq!(only(&f, Check::OperatorRbac).level, Level::Error, "a Role cannot serve an operator of every namespace");
    // A Role cannot grant cluster-scoped kinds.
    let mut wrong = facts(&["--namespace=apps"], "apps");
    wrong.operator_cluster_roles =
        Lookup::Found(vec![ClusterRoleFacts { name: "winapp-operator".into(), rules: vec![] }]);
    wrong.operator_roles =
        Lookup::Found(vec![RoleFacts { namespace: "apps".into(), name: "winapp-operator".into(), rules: all.clone() }]);
    let e = only(&run(&wrong, &[]), Check::OperatorRbac).clone();
    assert!(e.level == Level::Error && e.message.contains("persistentvolumes"), "{e:?}");
}
