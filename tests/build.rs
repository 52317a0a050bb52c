//! Unit tests of the pure builders in `build`: every child object and every branch that shapes it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Toleration, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use winapp_operator::api::{WindowsApp, WindowsAppSpec};
use winapp_operator::build::workload::Workload;
use winapp_operator::build::{self, Children, GmsaGrant, identity, meta, storage, workload};
use winapp_operator::validate::{self, ValidatedApp};

const NAME: &str = "web";
const NS: &str = "shop";

fn windows_app(namespace: &str, name: &str, yaml_spec: &str) -> WindowsApp {
    let spec: WindowsAppSpec = serde_saphyr::from_str(yaml_spec).expect("spec YAML parses");
    let mut app = WindowsApp::new(name, spec);
    app.metadata.namespace = Some(namespace.into());
    app
}

/// The builders' tests build what the platform's policy may refuse (HostProcess, node agents,
/// other pools' taints, RuntimeClasses, SMB shares): they validate under a policy that grants
/// the spec's own powers. The pod template's rules stay as by default (tests/validate.rs and
/// src/policy test the policy itself).
fn validate_app(app: &WindowsApp) -> ValidatedApp {
    use winapp_operator::policy::{Policy, Rule};
    let policy = Policy::allowing([
        Rule::HostProcess,
        Rule::NodeAgent,
        Rule::TolerateAll,
        Rule::OtherTaints,
        Rule::RuntimeClass,
        Rule::SmbVolumes,
    ]);
    validate::validate_with(app, None, &policy).unwrap_or_else(|e| panic!("expected a valid app, got: {e}"))
}

fn validated_in(namespace: &str, name: &str, yaml_spec: &str) -> ValidatedApp {
    validate_app(&windows_app(namespace, name, yaml_spec))
}

fn validated(yaml_spec: &str) -> ValidatedApp {
    validated_in(NS, NAME, yaml_spec)
}

fn children(yaml_spec: &str) -> Children {
    build::build(&validated(yaml_spec)).expect("builds")
}

fn deployment(yaml_spec: &str) -> Deployment {
    match children(yaml_spec).workload {
        Some(Workload::Deployment(d)) => d,
        other => panic!("expected a Deployment, got {other:?}"),
    }
}

fn pod_spec(yaml_spec: &str) -> PodSpec {
    deployment(yaml_spec).spec.template.spec.expect("pod spec")
}

fn container<'a>(spec: &'a PodSpec, name: &str) -> &'a Container {
    spec.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name} in {:?}", spec.containers))
}

fn app_container(spec: &PodSpec) -> &Container {
    container(spec, meta::CONTAINER_NAME)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn pool_toleration(key: &str, value: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Equal".into()),
        value: Some(value.into()),
        effect: Some("NoSchedule".into()),
        ..Toleration::default()
    }
}

const CREDSPEC: &str = r#"
    account: WebSvc
    domain:
      dnsName: contoso.com
      netBiosName: CONTOSO
      sid: S-1-5-21-1-2-3
      guid: 244818ae-87ac-4fcd-92ec-e79e5252348a
"#;

fn gmsa_generated(extra_credspec_yaml: &str) -> String {
    format!("image: x\ngmsa:\n  credentialSpec:{CREDSPEC}{extra_credspec_yaml}")
}

/// An app that asks for every kind of child.
const FULL: &str = r#"
image: registry.example.com/web:1.0-ltsc2022
ports: [{name: http, containerPort: 80}]
service: {}
config:
  mountPath: 'C:\inetpub\wwwroot'
  files: [{name: Web.config, content: "<configuration/>"}]
gmsa:
  credentialSpec:
    account: WebSvc
    domain:
      dnsName: contoso.com
      netBiosName: CONTOSO
      sid: S-1-5-21-1-2-3
      guid: 244818ae-87ac-4fcd-92ec-e79e5252348a
volumes:
  - name: share
    mountPath: 'D:\share'
    smb: {source: //server/share, secretRef: {name: creds}}
  - name: files
    mountPath: 'D:\files'
    claim: {size: 5Gi}
"#;

// ---------------------------------------------------------------------------------------------
// Deployment: placement.
// ---------------------------------------------------------------------------------------------

#[test]
fn pods_are_pinned_to_windows_nodes() {
    let spec = pod_spec("image: x");
    assert_eq!(spec.os.as_ref().map(|o| o.name.as_str()), Some("windows"));
    assert_eq!(spec.node_selector, Some(map(&[("kubernetes.io/os", "windows")])));
    assert_eq!(workload::OS_LABEL, "kubernetes.io/os");
    // One toleration per provider's Windows pool convention: kubeadm/EKS, OpenShift, GKE.
    assert_eq!(
        spec.tolerations,
        Some(vec![
            pool_toleration("os", "windows"),
            pool_toleration("os", "Windows"),
            pool_toleration("node.kubernetes.io/os", "windows"),
        ])
    );
}

#[test]
fn windows_build_label_per_version() {
    for (version, build) in [("ltsc2019", "10.0.17763"), ("ltsc2022", "10.0.20348"), ("ltsc2025", "10.0.26100")] {
        let spec = pod_spec(&format!("image: x\nwindows: {{version: {version}}}\n"));
        assert_eq!(
            spec.node_selector,
            Some(map(&[("kubernetes.io/os", "windows"), ("node.kubernetes.io/windows-build", build)])),
            "{version}"
        );
    }
    let spec = pod_spec("image: x\nwindows: {}\n");
    let selector = spec.node_selector.expect("node selector");
    assert!(!selector.contains_key(workload::WINDOWS_BUILD_LABEL), "{selector:?}");
}

#[test]
fn custom_pool_taint_extra_tolerations_and_node_selectors() {
    let spec = pod_spec(
        r#"
image: x
windows:
  version: ltsc2022
  toleration: {key: node-pool, value: win}
  nodeSelector: {pool: gold, kubernetes.io/os: linux}
  tolerations:
    - {key: dedicated, operator: Exists, effect: NoExecute}
"#,
    );
    assert_eq!(
        spec.node_selector,
        Some(map(&[
            ("kubernetes.io/os", "windows"),
            ("node.kubernetes.io/windows-build", "10.0.20348"),
            ("pool", "gold"),
        ]))
    );
    assert_eq!(
        spec.tolerations,
        Some(vec![
            pool_toleration("node-pool", "win"),
            Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                ..Toleration::default()
            },
        ])
    );
    // A taint with an empty value.
    let spec = pod_spec("image: x\nwindows: {toleration: {key: windows}}\n");
    assert_eq!(spec.tolerations, Some(vec![pool_toleration("windows", "")]));
}

// ---------------------------------------------------------------------------------------------
// Deployment: spec.
// ---------------------------------------------------------------------------------------------

#[test]
fn deployment_metadata_and_selector() {
    let d = deployment("image: x");
    assert_eq!(d.metadata.name.as_deref(), Some(NAME));
    assert_eq!(d.metadata.namespace.as_deref(), Some(NS));
    let spec = d.spec;
    let selector = map(&[("app.kubernetes.io/instance", NAME), ("app.kubernetes.io/name", NAME)]);
    assert_eq!(spec.selector.match_labels, Some(selector.clone()));
    let pod_labels = spec.template.metadata.expect("pod metadata").labels.expect("pod labels");
    for (k, v) in &selector {
        assert_eq!(pod_labels.get(k), Some(v), "pod label {k}");
    }
}

#[test]
fn replicas_default_given_and_autoscaled() {
    let replicas = |yaml: &str| deployment(yaml).spec.replicas;
    assert_eq!(replicas("image: x"), Some(1));
    assert_eq!(replicas("image: x\nreplicas: 3\n"), Some(3));
    assert_eq!(replicas("image: x\nreplicas: 3\nautoscaled: true\n"), None);
    // Omitted from what is applied, so the HPA keeps ownership of the field.
    let json = serde_json::to_value(deployment("image: x\nautoscaled: true\n")).expect("serializes");
    assert_eq!(json.pointer("/spec/replicas"), None, "{json}");
    let json = serde_json::to_value(deployment("image: x\n")).expect("serializes");
    assert_eq!(json.pointer("/spec/replicas"), Some(&json!(1)));
}

#[test]
fn node_agent_is_a_daemon_set_with_the_same_pods() {
    let agent = "image: x\nnodeAgent: true\nhostProcess: {}\nports: [{name: metrics, containerPort: 9182}]\n";
    let c = children(agent);
    let w = c.workload.as_ref().expect("a workload");
    assert!(w.as_deployment().is_none(), "a node agent has no Deployment");
    let ds = w.as_daemon_set().expect("a DaemonSet").clone();
    assert_eq!(w.kind(), "DaemonSet");
    assert_eq!(ds.metadata.name.as_deref(), Some(NAME));
    assert_eq!(ds.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(ds.spec.selector.match_labels, Some(meta::selector_labels(&validated(agent))));
    // One node at a time by default, the spec's limits otherwise.
    let ru = ds.spec.update_strategy.clone().expect("strategy").rolling_update.expect("rolling update");
    assert_eq!((ru.max_surge, ru.max_unavailable), (Some(IntOrString::Int(0)), Some(IntOrString::Int(1))));
    let ds2 = children(&format!("{agent}rollout: {{maxUnavailable: '10%'}}\n")).workload.expect("a workload");
    let ru = ds2.as_daemon_set().and_then(|d| d.spec.update_strategy.clone()).and_then(|s| s.rolling_update);
    assert_eq!(ru.and_then(|r| r.max_unavailable), Some(IntOrString::String("10%".into())));
    // The pods are exactly those a Deployment of the same app would run: pinned, tolerating,
    // host process, and no replica count anywhere.
    let as_deployment = deployment("image: x\nhostProcess: {}\nports: [{name: metrics, containerPort: 9182}]\n");
    assert_eq!(ds.spec.template, as_deployment.spec.template);
    let json = serde_json::to_value(&ds).expect("serializes");
    assert_eq!(json.pointer("/spec/replicas"), None, "{json}");
    // Applied last, as the Deployment would be.
    let ordered = c.to_ordered_json().expect("serializes");
    assert_eq!(ordered.last().and_then(|o| o.get("kind")), Some(&json!("DaemonSet")));
    assert!(ordered.iter().all(|o| o.get("kind") != Some(&json!("Deployment"))));
    // No Service unless asked.
    assert!(c.service.is_none());
}

#[test]
fn rolling_update_values() {
    let spec = deployment("image: x").spec;
    let strategy = spec.strategy.expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let ru = strategy.rolling_update.expect("rolling update");
    assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
    assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(spec.progress_deadline_seconds, Some(900));

    let spec =
        deployment("image: x\nrollout: {maxSurge: 2, maxUnavailable: '50%', progressDeadlineSeconds: 60}\n").spec;

    let ru = spec.strategy.expect("strategy").rolling_update.expect("rolling update");
    assert_eq!(ru.max_surge, Some(IntOrString::Int(2)));
    assert_eq!(ru.max_unavailable, Some(IntOrString::String("50%".into())));
    assert_eq!(spec.progress_deadline_seconds, Some(60));
}

#[test]
fn container_fields() {
    let spec = pod_spec(
        r#"
image: registry.example.com/svc:2
imagePullPolicy: Always
imagePullSecrets: [{name: regcred}]
command: [powershell, -Command]
args: [C:\start.ps1]
env: [{name: ASPNETCORE_ENVIRONMENT, value: Production}]
envFrom: [{secretRef: {name: db}}]
resources: {limits: {cpu: "2", memory: 4Gi}}
ports:
  - {name: web, containerPort: 8080}
  - {name: syslog, containerPort: 514, protocol: UDP}
"#,
    );
    assert_eq!(spec.containers.len(), 1);
    let c = app_container(&spec);
    assert_eq!(c.name, "app");
    assert_eq!(c.image.as_deref(), Some("registry.example.com/svc:2"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(c.command, Some(vec!["powershell".to_owned(), "-Command".to_owned()]));
    assert_eq!(c.args, Some(vec![r"C:\start.ps1".to_owned()]));
    let env = c.env.as_ref().expect("env");
    assert_eq!((env[0].name.as_str(), env[0].value.as_deref()), ("ASPNETCORE_ENVIRONMENT", Some("Production")));
    assert_eq!(c.env_from.as_ref().expect("envFrom")[0].secret_ref.as_ref().map(|s| s.name.as_str()), Some("db"));
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref()).expect("limits");
    assert_eq!(limits.get("memory"), Some(&Quantity("4Gi".into())));
    let ports: Vec<_> = c
        .ports
        .as_ref()
        .expect("ports")
        .iter()
        .map(|p| (p.name.as_deref(), p.container_port, p.protocol.as_deref()))
        .collect();
    assert_eq!(ports, vec![(Some("web"), 8080, None), (Some("syslog"), 514, Some("UDP"))]);
    assert_eq!(spec.image_pull_secrets.as_ref().map(|s| s[0].name.as_str()), Some("regcred"));

    // Unset lists stay unset.
    let spec = pod_spec("image: x");
    let c = app_container(&spec);
    assert_eq!((c.command.as_ref(), c.args.as_ref(), c.env.as_ref(), c.ports.as_ref()), (None, None, None, None));
    assert_eq!(c.image_pull_policy, None);
    assert_eq!(spec.image_pull_secrets, None);
    assert_eq!(spec.volumes, None);
    assert_eq!(c.volume_mounts, None);
}

#[test]
fn image_pull_policies() {
    for policy in ["Always", "IfNotPresent", "Never"] {
        let spec = pod_spec(&format!("image: x\nimagePullPolicy: {policy}\n"));
        assert_eq!(app_container(&spec).image_pull_policy.as_deref(), Some(policy));
    }
}

#[test]
fn service_account_name_managed_or_existing() {
    assert_eq!(pod_spec("image: x").service_account_name.as_deref(), Some(NAME));
    assert_eq!(pod_spec("image: x\nserviceAccountName: runner\n").service_account_name.as_deref(), Some("runner"));
}

#[test]
fn probes_are_set_on_the_container() {
    let spec = pod_spec("image: x\nports: [{name: http, containerPort: 80}]\n");
    let c = app_container(&spec);
    let port = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref().and_then(|p| p.tcp_socket.as_ref()).map(|t| t.port.clone())
    };
    assert_eq!(port(&c.liveness_probe), Some(IntOrString::String("http".into())));
    assert_eq!(port(&c.readiness_probe), Some(IntOrString::String("http".into())));
    assert_eq!(c.startup_probe.as_ref().and_then(|p| p.failure_threshold), Some(60));

    let spec = pod_spec(
        "image: x\nports: [{name: http, containerPort: 80}]\nprobes:\n  defaults: false\n  liveness: {httpGet: {path: /ping, port: 80}}\n",
    );
    let c = app_container(&spec);
    assert_eq!(
        c.liveness_probe.as_ref().and_then(|p| p.http_get.as_ref()).and_then(|h| h.path.as_deref()),
        Some("/ping")
    );
    assert_eq!((c.readiness_probe.as_ref(), c.startup_probe.as_ref()), (None, None));

    let c = app_container(&pod_spec("image: x\nports: [{name: web, containerPort: 80}]\n")).clone();
    assert_eq!((c.liveness_probe, c.readiness_probe, c.startup_probe), (None, None, None));
}

// ---------------------------------------------------------------------------------------------
// Deployment: volumes, identity, annotations.
// ---------------------------------------------------------------------------------------------

#[test]
fn config_files_are_mounted_one_by_one() {
    let yaml = r#"
image: x
config:
  mountPath: 'C:\inetpub\wwwroot'
  files:
    - {name: Web.config, content: "<configuration/>"}
    - {name: appsettings.json, content: "{}"}
"#;
    let v = validated(yaml);
    let d =
        build::build(&v).expect("builds").workload.expect("a workload").as_deployment().expect("a Deployment").clone();
    let template = d.spec.template;
    let spec = template.spec.expect("pod spec");
    let volumes = spec.volumes.as_ref().expect("volumes");
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].name, "winapp-config");
    assert_eq!(volumes[0].config_map.as_ref().map(|c| c.name.as_str()), Some("web-config"));
    let mount = |path: &str, file: &str| VolumeMount {
        name: "winapp-config".into(),
        mount_path: path.into(),
        sub_path: Some(file.into()),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    assert_eq!(
        app_container(&spec).volume_mounts,
        Some(vec![
            mount(r"C:\inetpub\wwwroot\Web.config", "Web.config"),
            mount(r"C:\inetpub\wwwroot\appsettings.json", "appsettings.json"),
        ])
    );
    let annotations = template.metadata.expect("pod metadata").annotations.expect("annotations");
    let checksum = &v.config.as_ref().expect("config").checksum;
    assert_eq!(checksum.len(), 64);
    assert_eq!(annotations.get("winapp.dev/config-checksum"), Some(checksum));

    // A drive root does not double the backslash.
    let spec = pod_spec("image: x\nconfig:\n  mountPath: 'C:\\'\n  files: [{name: Web.config, content: x}]\n");
    assert_eq!(app_container(&spec).volume_mounts.as_ref().expect("mounts")[0].mount_path, r"C:\Web.config");
}

#[test]
fn config_files_from_secrets_are_mounted_from_the_secret_never_copied() {
    let yaml = r#"
image: x
config:
  mountPath: 'C:\inetpub\wwwroot'
  files:
    - {name: Web.config, content: "<configuration/>"}
    - {name: connectionStrings.config, secretRef: {name: orders-db, key: connectionStrings}}
    - {name: machineKey.config, secretRef: {name: orders-keys, key: machineKey}}
    - {name: smtp.config, secretRef: {name: orders-db, key: smtp}}
"#;
    let mut v = validated(yaml);
    let c = build::build(&v).expect("builds");
    // The ConfigMap holds the inline file only.
    let cm = c.config_map.expect("a ConfigMap for the inline file");
    assert_eq!(cm.data.expect("data").keys().collect::<Vec<_>>(), vec!["Web.config"]);
    let spec = c.workload.as_ref().expect("a workload").template().spec.clone().expect("pod spec");
    let volumes = spec.volumes.clone().expect("volumes");
    let projected = volumes.iter().find(|v| v.name == "winapp-config-secrets").expect("the Secrets' volume");
    let sources = projected.projected.as_ref().and_then(|p| p.sources.clone()).expect("sources");
    let by_secret: Vec<(String, Vec<(String, String)>)> = sources
        .iter()
        .map(|s| {
            let s = s.secret.as_ref().expect("a secret source");
            let items = s.items.iter().flatten().map(|i| (i.key.clone(), i.path.clone())).collect();
            (s.name.clone(), items)
        })
        .collect();
    assert_eq!(
        by_secret,
        vec![
            (
                "orders-db".to_owned(),
                vec![
                    ("connectionStrings".to_owned(), "connectionStrings.config".to_owned()),
                    ("smtp".to_owned(), "smtp.config".to_owned())
                ]
            ),
            ("orders-keys".to_owned(), vec![("machineKey".to_owned(), "machineKey.config".to_owned())]),
        ]
    );
    let mounts: Vec<(String, String, String)> = app_container(&spec)
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.clone(), m.mount_path.clone(), m.sub_path.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        mounts,
        vec![
            ("winapp-config".into(), r"C:\inetpub\wwwroot\Web.config".into(), "Web.config".into()),
            (
                "winapp-config-secrets".into(),
                r"C:\inetpub\wwwroot\connectionStrings.config".into(),
                "connectionStrings.config".into()
            ),
            (
                "winapp-config-secrets".into(),
                r"C:\inetpub\wwwroot\machineKey.config".into(),
                "machineKey.config".into()
            ),
            ("winapp-config-secrets".into(), r"C:\inetpub\wwwroot\smtp.config".into(), "smtp.config".into()),
        ]
    );
    // Offline (render) no versions are known: no version annotation. With versions, a change of
    // one Secret's resourceVersion changes the pod template.
    let annotation = |v: &winapp_operator::validate::ValidatedApp| {
        build::build(v)
            .expect("builds")
            .workload
            .expect("a workload")
            .template()
            .metadata
            .clone()
            .and_then(|m| m.annotations)
            .and_then(|a| a.get("winapp.dev/config-secrets-version").cloned())
    };
    assert_eq!(annotation(&v), None);
    let config = v.config.as_mut().expect("config");
    config.secret_versions =
        [("orders-db".to_owned(), "100".to_owned()), ("orders-keys".to_owned(), "7".to_owned())].into();
    let first = annotation(&v).expect("annotation with versions");
    v.config.as_mut().expect("config").secret_versions.insert("orders-db".into(), "101".into());
    assert_ne!(annotation(&v).expect("annotation"), first, "a new Secret version rolls the pods");

    // Only Secret files: no ConfigMap, no ConfigMap volume.
    let only = build::build(&validated(
        "image: x\nconfig:\n  mountPath: 'C:\\app'\n  files: [{name: a.config, secretRef: {name: s, key: k}}]\n",
    ))
    .expect("builds");
    assert!(only.config_map.is_none());
    let names: Vec<String> = only
        .workload
        .as_ref()
        .expect("a workload")
        .template()
        .spec
        .clone()
        .and_then(|s| s.volumes)
        .into_iter()
        .flatten()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, vec!["winapp-config-secrets"]);
}

#[test]
fn config_change_changes_the_pod_template() {
    let annotation = |content: &str| {
        deployment(&format!(
            "image: x\nconfig:\n  mountPath: 'C:\\app'\n  files: [{{name: Web.config, content: '{content}'}}]\n"
        ))
        .spec
        .template
        .metadata
        .and_then(|m| m.annotations)
        .and_then(|a| a.get(meta::CONFIG_CHECKSUM).cloned())
        .expect("checksum annotation")
    };
    assert_eq!(annotation("a"), annotation("a"));
    assert_ne!(annotation("a"), annotation("b"));
}

#[test]
fn no_annotations_without_config_or_monitoring() {
    let d = deployment("image: x");
    assert_eq!(d.spec.template.metadata.expect("pod metadata").annotations, None);
}

#[test]
fn claim_volumes_are_mounted() {
    let spec = pod_spec(
        r#"
image: x
volumes:
  - {name: share, mountPath: 'D:\share', readOnly: true, smb: {source: //server/share, secretRef: {name: creds}}}
  - {name: files, mountPath: 'D:\files', claim: {size: 5Gi}}
"#,
    );
    let volumes: Vec<_> = spec
        .volumes
        .as_ref()
        .expect("volumes")
        .iter()
        .map(|v| {
            let pvc = v.persistent_volume_claim.as_ref().expect("a claim volume");
            (v.name.as_str(), pvc.claim_name.as_str(), pvc.read_only)
        })
        .collect();
    assert_eq!(volumes, vec![("share", "web.share", Some(true)), ("files", "web.files", None)]);
    assert_eq!(
        app_container(&spec).volume_mounts,
        Some(vec![
            VolumeMount {
                name: "share".into(),
                mount_path: r"D:\share".into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount { name: "files".into(), mount_path: r"D:\files".into(), ..VolumeMount::default() },
        ])
    );
}

#[test]
fn config_and_volumes_together() {
    let spec = pod_spec(FULL);
    let names: Vec<_> = spec.volumes.as_ref().expect("volumes").iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec!["winapp-config", "share", "files"]);
    let paths: Vec<_> =
        app_container(&spec).volume_mounts.as_ref().expect("mounts").iter().map(|m| m.mount_path.as_str()).collect();
    assert_eq!(paths, vec![r"C:\inetpub\wwwroot\Web.config", r"D:\share", r"D:\files"]);
}

#[test]
fn gmsa_sets_the_credential_spec_name() {
    let windows_options = |yaml: &str| {
        let spec = pod_spec(yaml);
        assert_eq!(spec.host_network, None);
        spec.security_context.and_then(|s| s.windows_options).expect("windowsOptions")
    };
    let w = windows_options(&gmsa_generated(""));
    assert_eq!(w.gmsa_credential_spec_name.as_deref(), Some("winapp.shop.web"));
    assert_eq!((w.host_process, w.run_as_user_name), (None, None));

    let w = windows_options("image: x\ngmsa: {credentialSpecName: webapp1}\n");
    assert_eq!(w.gmsa_credential_spec_name.as_deref(), Some("webapp1"));
}

#[test]
fn host_process_runs_on_the_host_network() {
    let spec = pod_spec("image: agent:1\nhostProcess: {}\n");
    assert_eq!(spec.host_network, Some(true));
    let w = spec.security_context.and_then(|s| s.windows_options).expect("windowsOptions");
    assert_eq!(w.host_process, Some(true));
    assert_eq!(w.run_as_user_name.as_deref(), Some(r"NT AUTHORITY\SYSTEM"));
    assert_eq!(w.gmsa_credential_spec_name, None);

    let spec = pod_spec("image: agent:1\nhostProcess: {runAsUserName: 'NT AUTHORITY\\NETWORK SERVICE'}\n");
    let w = spec.security_context.and_then(|s| s.windows_options).expect("windowsOptions");
    assert_eq!(w.run_as_user_name.as_deref(), Some(r"NT AUTHORITY\NETWORK SERVICE"));
}

#[test]
fn no_security_context_without_gmsa_or_host_process() {
    let spec = pod_spec("image: x");
    assert_eq!(spec.security_context, None);
    assert_eq!(spec.host_network, None);
}

#[test]
fn prometheus_annotations() {
    let annotations =
        |yaml: &str| deployment(yaml).spec.template.metadata.and_then(|m| m.annotations).expect("annotations");
    assert_eq!(
        annotations("image: x\nmonitoring: {prometheus: {}}\n"),
        map(&[("prometheus.io/path", "/metrics"), ("prometheus.io/port", "9182"), ("prometheus.io/scrape", "true")])
    );
    assert_eq!(
        annotations("image: x\nmonitoring: {prometheus: {port: 8080, path: /stats}}\n"),
        map(&[("prometheus.io/path", "/stats"), ("prometheus.io/port", "8080"), ("prometheus.io/scrape", "true")])
    );
    // monitoring without prometheus adds nothing.
    let d = deployment("image: x\nmonitoring: {}\n");
    assert_eq!(d.spec.template.metadata.expect("metadata").annotations, None);
}

#[test]
fn pod_labels_and_annotations_from_the_pod_template() {
    let d = deployment(
        r#"
image: x
podTemplate:
  metadata:
    labels: {team: payments, tier: backend}
    annotations: {cluster-autoscaler.kubernetes.io/safe-to-evict: "false"}
"#,
    );
    let spec = d.spec;
    let m = spec.template.metadata.expect("pod metadata");
    let labels = m.labels.expect("labels");
    assert_eq!(labels.get("team").map(String::as_str), Some("payments"));
    assert_eq!(labels.get("tier").map(String::as_str), Some("backend"));
    assert_eq!(labels.get("app.kubernetes.io/name").map(String::as_str), Some(NAME));
    assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("winapp-operator"));
    assert_eq!(m.annotations, Some(map(&[("cluster-autoscaler.kubernetes.io/safe-to-evict", "false")])));
    // Pod labels do not leak into the selector or the Deployment's own labels.
    assert!(!spec.selector.match_labels.expect("selector").contains_key("team"));
    assert!(!d.metadata.labels.expect("labels").contains_key("team"));
}

// ---------------------------------------------------------------------------------------------
// The podTemplate.spec escape hatch.
// ---------------------------------------------------------------------------------------------

fn merged(mut base: Value, over: Value) -> Value {
    workload::merge(&mut base, &over);
    base
}

#[test]
fn merge_maps_recursively() {
    assert_eq!(
        merged(json!({"a": {"x": 1, "y": 2}, "b": 1}), json!({"a": {"y": 3, "z": 4}, "c": true})),
        json!({"a": {"x": 1, "y": 3, "z": 4}, "b": 1, "c": true})
    );
}

#[test]
fn merge_null_deletes() {
    assert_eq!(
        merged(json!({"a": {"x": 1, "y": 2}, "b": 1, "c": [1]}), json!({"a": {"x": null}, "b": null, "missing": null})),
        json!({"a": {"y": 2}, "c": [1]})
    );
}

#[test]
fn merge_scalars_and_plain_lists_replace() {
    assert_eq!(merged(json!({"a": 1}), json!({"a": "x"})), json!({"a": "x"}));
    assert_eq!(merged(json!({"a": {"x": 1}}), json!({"a": 5})), json!({"a": 5}));
    assert_eq!(merged(json!({"a": 5}), json!({"a": {"x": 1}})), json!({"a": {"x": 1}}));
    assert_eq!(merged(json!({"args": ["a", "b"]}), json!({"args": ["c"]})), json!({"args": ["c"]}));
    assert_eq!(
        merged(json!({"hostAliases": [{"ip": "1.1.1.1"}]}), json!({"hostAliases": [{"ip": "2.2.2.2"}]})),
        json!({"hostAliases": [{"ip": "2.2.2.2"}]})
    );
    assert_eq!(merged(json!({"a": 1}), json!([1, 2])), json!([1, 2]));
}

#[test]
fn merge_containers_by_name() {
    let base = json!({"containers": [
        {"name": "app", "image": "web:1", "env": [{"name": "A", "value": "1"}], "args": ["x"]}
    ]});
    let over = json!({"containers": [
        {"name": "sidecar", "image": "logmonitor:1"},
        {"name": "app", "workingDir": "C:\\app", "args": ["y"], "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}]}
    ]});
    assert_eq!(
        merged(base, over),
        json!({"containers": [
            {"name": "app", "image": "web:1", "workingDir": "C:\\app", "args": ["y"],
             "env": [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "logmonitor:1"}
        ]})
    );
}

#[test]
fn merge_other_keyed_lists() {
    // Tolerations by key.
    assert_eq!(
        merged(
            json!({"tolerations": [{"key": "os", "operator": "Equal", "value": "windows", "effect": "NoSchedule"}]}),
            json!({"tolerations": [{"key": "os", "value": "win"}, {"key": "gpu", "operator": "Exists"}]})
        ),
        json!({"tolerations": [
            {"key": "os", "operator": "Equal", "value": "win", "effect": "NoSchedule"},
            {"key": "gpu", "operator": "Exists"}
        ]})
    );
    // Volumes and image pull secrets by name, volume mounts by mountPath, ports by number.
    assert_eq!(
        merged(
            json!({"volumes": [{"name": "a", "emptyDir": {}}], "imagePullSecrets": [{"name": "r1"}]}),
            json!({"volumes": [{"name": "b", "emptyDir": {}}], "imagePullSecrets": [{"name": "r1"}, {"name": "r2"}]})
        ),
        json!({"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}],
               "imagePullSecrets": [{"name": "r1"}, {"name": "r2"}]})
    );
    assert_eq!(
        merged(
            json!({"volumeMounts": [{"name": "a", "mountPath": "C:\\a"}], "ports": [{"containerPort": 80, "name": "http"}]}),
            json!({"volumeMounts": [{"name": "b", "mountPath": "C:\\a"}], "ports": [{"containerPort": 80, "protocol": "TCP"}]})
        ),
        json!({"volumeMounts": [{"name": "b", "mountPath": "C:\\a"}],
               "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}]})
    );
    // An entry without its key is appended; a keyed list missing from the base is inserted.
    assert_eq!(
        merged(json!({"tolerations": [{"key": "os"}]}), json!({"tolerations": [{"operator": "Exists"}]})),
        json!({"tolerations": [{"key": "os"}, {"operator": "Exists"}]})
    );
    assert_eq!(
        merged(json!({}), json!({"initContainers": [{"name": "init"}]})),
        json!({"initContainers": [{"name": "init"}]})
    );
}

#[test]
fn escape_hatch_is_merged_into_the_pod_spec() {
    let spec = pod_spec(
        r#"
image: web:1
ports: [{name: http, containerPort: 80}]
windows:
  nodeSelector: {pool: gold}
podTemplate:
  spec:
    terminationGracePeriodSeconds: 120
    priorityClassName: high
    nodeSelector: {zone: a, pool: silver}
    tolerations:
      - {key: os, value: win}
      - {key: gpu, operator: Exists}
    containers:
      - name: logmonitor
        image: mcr.microsoft.com/windows/logmonitor:1
      - name: app
        workingDir: 'C:\app'
        env: [{name: A, value: '1'}]
"#,
    );
    assert_eq!(spec.termination_grace_period_seconds, Some(120));
    assert_eq!(spec.priority_class_name.as_deref(), Some("high"));
    assert_eq!(spec.os.as_ref().map(|o| o.name.as_str()), Some("windows"));
    assert_eq!(spec.node_selector, Some(map(&[("kubernetes.io/os", "windows"), ("pool", "silver"), ("zone", "a")])));
    assert_eq!(
        spec.tolerations,
        Some(vec![
            // Merged by key: the first `os` toleration takes the override's value.
            pool_toleration("os", "win"),
            pool_toleration("os", "Windows"),
            pool_toleration("node.kubernetes.io/os", "windows"),
            Toleration { key: Some("gpu".into()), operator: Some("Exists".into()), ..Toleration::default() },
        ])
    );
    let names: Vec<_> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["app", "logmonitor"]);
    let app = app_container(&spec);
    assert_eq!(app.image.as_deref(), Some("web:1"));
    assert_eq!(app.working_dir.as_deref(), Some(r"C:\app"));
    assert_eq!(app.env.as_ref().map(|e| e[0].name.as_str()), Some("A"));
    assert!(app.liveness_probe.is_some(), "generated fields of the app container survive the merge");
    assert_eq!(container(&spec, "logmonitor").image.as_deref(), Some("mcr.microsoft.com/windows/logmonitor:1"));
}

#[test]
fn escape_hatch_null_removes_a_generated_field() {
    // A null is refused by the default pod policy (rule remove-generated); allowed, it deletes.
    let app = windows_app(
        NS,
        NAME,
        "image: x\nports: [{name: http, containerPort: 80}]\npodTemplate:\n  spec:\n    containers: [{name: app, startupProbe: null}]\n",
    );
    assert!(validate::validate(&app, None).is_err());
    let policy = winapp_operator::policy::Policy::allowing([winapp_operator::policy::Rule::RemoveGenerated]);
    let valid = validate::validate_with(&app, None, &policy).unwrap_or_else(|e| panic!("allowed: {e}"));
    let d = build::build(&valid).expect("builds");
    let spec = d.workload.as_ref().expect("a workload").template().spec.clone().expect("pod spec");
    let app = app_container(&spec);
    assert_eq!(app.startup_probe, None);
    assert!(app.readiness_probe.is_some());
}

#[test]
fn host_process_refuses_an_override_that_deletes_host_networking() {
    // The API promises the escape hatch may not turn host networking off for hostProcess apps.
    let app = windows_app(NS, NAME, "image: agent:1\nhostProcess: {}\npodTemplate:\n  spec:\n    hostNetwork: null\n");
    let errors = validate::validate(&app, None).expect_err("hostNetwork: null must be refused");
    assert!(errors.0.contains(&validate::ValidationError::HostProcessWithoutHostNetwork), "{errors}");
}

#[test]
fn an_override_container_without_a_name_is_refused() {
    // Containers merge by name; one without a name cannot be merged, and the API server
    // refuses a container without a name.
    let app = windows_app(NS, NAME, "image: x\npodTemplate:\n  spec:\n    containers: [{image: sidecar:1}]\n");
    let errors = validate::validate(&app, None).expect_err("an unnamed container must be refused");
    assert!(errors.0.contains(&validate::ValidationError::UnnamedOverrideEntry("containers")), "{errors}");
}

#[test]
fn a_volume_may_not_take_the_config_volume_name() {
    let app = windows_app(
        NS,
        NAME,
        r#"
image: x
config:
  mountPath: 'C:\app'
  files: [{name: Web.config, content: x}]
volumes:
  - {name: winapp-config, mountPath: 'D:\data', claim: {size: 1Gi}}
"#,
    );
    let errors = validate::validate(&app, None).expect_err("a reserved volume name must be refused");
    assert!(errors.0.contains(&validate::ValidationError::ReservedVolumeName("winapp-config".into())), "{errors}");
}

// ---------------------------------------------------------------------------------------------
// Service.
// ---------------------------------------------------------------------------------------------

#[test]
fn no_service_without_spec_service() {
    assert_eq!(children("image: x\nports: [{name: http, containerPort: 80}]\n").service, None);
}

#[test]
fn service_defaults_to_container_ports() {
    let s = children(
        "image: x\nports:\n  - {name: http, containerPort: 80}\n  - {name: syslog, containerPort: 514, protocol: UDP}\nservice: {}\n",
    )
    .service
    .expect("service");
    assert_eq!(s.metadata.name.as_deref(), Some(NAME));
    assert_eq!(s.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(s.metadata.annotations, None);
    let spec = s.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.selector, Some(map(&[("app.kubernetes.io/instance", NAME), ("app.kubernetes.io/name", NAME)])));
    assert_eq!(spec.external_traffic_policy, None);
    let ports: Vec<_> = spec
        .ports
        .expect("ports")
        .into_iter()
        .map(|p| (p.name, p.port, p.target_port, p.node_port, p.protocol))
        .collect();
    assert_eq!(
        ports,
        vec![
            (Some("http".into()), 80, Some(IntOrString::String("http".into())), None, Some("TCP".into())),
            (Some("syslog".into()), 514, Some(IntOrString::String("syslog".into())), None, Some("UDP".into())),
        ]
    );
}

#[test]
fn service_types() {
    for t in ["ClusterIP", "NodePort", "LoadBalancer"] {
        let s = children(&format!("image: x\nports: [{{name: http, containerPort: 80}}]\nservice: {{type: {t}}}\n"))
            .service
            .expect("service");
        assert_eq!(s.spec.expect("spec").type_.as_deref(), Some(t));
    }
}

#[test]
fn service_ports_target_ports_node_ports_and_policy() {
    let s = children(
        r#"
image: x
ports: [{name: http, containerPort: 8080}]
service:
  type: LoadBalancer
  externalTrafficPolicy: Local
  annotations: {service.beta.kubernetes.io/azure-load-balancer-internal: "true"}
  ports:
    - {name: http, port: 80, nodePort: 30080}
    - {name: admin, port: 9000}
    - {name: alt, port: 81, targetPort: 8081, protocol: UDP}
    - {name: named, port: 82, targetPort: http}
"#,
    )
    .service
    .expect("service");
    assert_eq!(
        s.metadata.annotations,
        Some(map(&[("service.beta.kubernetes.io/azure-load-balancer-internal", "true")]))
    );
    let spec = s.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
    let ports: Vec<_> =
        spec.ports.expect("ports").into_iter().map(|p| (p.port, p.target_port, p.node_port, p.protocol)).collect();
    assert_eq!(
        ports,
        vec![
            (80, Some(IntOrString::String("http".into())), Some(30080), Some("TCP".into())),
            (9000, Some(IntOrString::Int(9000)), None, Some("TCP".into())),
            (81, Some(IntOrString::Int(8081)), None, Some("UDP".into())),
            (82, Some(IntOrString::String("http".into())), None, Some("TCP".into())),
        ]
    );

    let s = children("image: x\nports: [{name: http, containerPort: 80}]\nservice: {type: NodePort, externalTrafficPolicy: Cluster}\n")
        .service
        .expect("service");
    assert_eq!(s.spec.expect("spec").external_traffic_policy.as_deref(), Some("Cluster"));
}

// ---------------------------------------------------------------------------------------------
// ConfigMap and ServiceAccount.
// ---------------------------------------------------------------------------------------------

#[test]
fn config_map_holds_the_files() {
    let cm = children("image: x\nconfig:\n  mountPath: 'C:\\app'\n  files: [{name: Web.config, content: '<c/>'}, {name: app.json, content: '{}'}]\n")
        .config_map
        .expect("config map");
    assert_eq!(cm.metadata.name.as_deref(), Some("web-config"));
    assert_eq!(cm.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(cm.data, Some(map(&[("Web.config", "<c/>"), ("app.json", "{}")])));
    assert_eq!(cm.binary_data, None);
    assert_eq!(children("image: x").config_map, None);
}

#[test]
fn service_account_only_when_managed() {
    let sa = children("image: x").service_account.expect("managed service account");
    assert_eq!(sa.metadata.name.as_deref(), Some(NAME));
    assert_eq!(sa.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(children("image: x\nserviceAccountName: runner\n").service_account, None);
}

#[test]
fn no_api_token_in_the_pods_unless_the_app_asks_for_one() {
    let sa = children("image: x").service_account.expect("managed service account");
    assert_eq!(sa.automount_service_account_token, Some(false), "the generated ServiceAccount mounts none");
    assert_eq!(pod_spec("image: x").automount_service_account_token, Some(false));
    // An existing ServiceAccount may mount tokens; the pod still says no.
    assert_eq!(pod_spec("image: x\nserviceAccountName: runner\n").automount_service_account_token, Some(false));
    assert_eq!(pod_spec("image: x\napiAccess: true\n").automount_service_account_token, Some(true));
    assert_eq!(pod_spec("image: x\napiAccess: false\n").automount_service_account_token, Some(false));
}

// ---------------------------------------------------------------------------------------------
// gMSA.
// ---------------------------------------------------------------------------------------------

#[test]
fn generated_credential_spec() {
    let c = children(&gmsa_generated(""));
    let cs = c.credential_spec.expect("credspec");
    let types = cs.types.as_ref().expect("type meta");
    assert_eq!((types.api_version.as_str(), types.kind.as_str()), ("windows.k8s.io/v1", "GMSACredentialSpec"));
    assert_eq!(cs.metadata.name.as_deref(), Some("winapp.shop.web"));
    assert_eq!(cs.metadata.namespace, None);
    assert_eq!(cs.metadata.owner_references, None);
    assert_eq!(
        cs.data,
        json!({"credspec": {
            "CmsPlugins": ["ActiveDirectory"],
            "DomainJoinConfig": {
                "Sid": "S-1-5-21-1-2-3",
                "MachineAccountName": "WebSvc",
                "Guid": "244818ae-87ac-4fcd-92ec-e79e5252348a",
                "DnsTreeName": "contoso.com",
                "DnsName": "contoso.com",
                "NetBiosName": "CONTOSO",
            },
            "ActiveDirectoryConfig": {
                "GroupManagedServiceAccounts": [
                    {"Name": "WebSvc", "Scope": "contoso.com"},
                    {"Name": "WebSvc", "Scope": "CONTOSO"},
                ],
            },
        }})
    );
    let json = serde_json::to_value(&cs).expect("serializes");
    assert_eq!(json["apiVersion"], "windows.k8s.io/v1");
    assert_eq!(json["kind"], "GMSACredentialSpec");
    assert_eq!(json.pointer("/credspec/DomainJoinConfig/DnsName"), Some(&json!("contoso.com")));
}

#[test]
fn credential_spec_with_host_account_and_tree_name() {
    let yaml = r#"
image: x
gmsa:
  credentialSpec:
    account: WebSvc
    domain:
      dnsName: eu.contoso.com
      dnsTreeName: contoso.com
      netBiosName: EU
      sid: S-1-5-21-1-2-3
      guid: 244818ae-87ac-4fcd-92ec-e79e5252348a
    hostAccount:
      pluginGuid: '{CCC2A336-D7F3-4818-A213-272B7924213E}'
      pluginInput: 'SecretUri=https://kv/secrets/gmsa'
"#;
    let cs = children(yaml).credential_spec.expect("credspec");
    assert_eq!(cs.data.pointer("/credspec/DomainJoinConfig/DnsTreeName"), Some(&json!("contoso.com")));
    assert_eq!(cs.data.pointer("/credspec/DomainJoinConfig/DnsName"), Some(&json!("eu.contoso.com")));
    assert_eq!(
        cs.data.pointer("/credspec/ActiveDirectoryConfig/HostAccountConfig"),
        Some(&json!({
            "PortableCcgVersion": "1",
            "PluginGUID": "{CCC2A336-D7F3-4818-A213-272B7924213E}",
            "PluginInput": "SecretUri=https://kv/secrets/gmsa",
        }))
    );
    let cs = children(&format!("{yaml}      portableCcgVersion: '2'\n")).credential_spec.expect("credspec");
    assert_eq!(
        cs.data.pointer("/credspec/ActiveDirectoryConfig/HostAccountConfig/PortableCcgVersion"),
        Some(&json!("2"))
    );
    // Without hostAccount there is no HostAccountConfig.
    let cs = children(&gmsa_generated("")).credential_spec.expect("credspec");
    assert_eq!(cs.data.pointer("/credspec/ActiveDirectoryConfig/HostAccountConfig"), None);
}

#[test]
fn gmsa_rbac_for_a_generated_credential_spec() {
    let c = children(&gmsa_generated(""));
    let role = c.gmsa_cluster_role.expect("cluster role");
    assert_eq!(role.metadata.name.as_deref(), Some("winapp.shop.web.gmsa"));
    assert_eq!(role.metadata.namespace, None);
    let rules = role.rules.expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].api_groups, Some(vec![identity::CREDSPEC_GROUP.to_owned()]));
    assert_eq!(identity::CREDSPEC_GROUP, "windows.k8s.io");
    assert_eq!(rules[0].resources, Some(vec!["gmsacredentialspecs".to_owned()]));
    assert_eq!(rules[0].resource_names, Some(vec!["winapp.shop.web".to_owned()]));
    assert_eq!(rules[0].verbs, vec!["use".to_owned()]);

    let binding = c.gmsa_role_binding.expect("role binding");
    assert_eq!(binding.metadata.name.as_deref(), Some("web-gmsa"));
    assert_eq!(binding.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.api_group.as_deref(), Some("rbac.authorization.k8s.io"));
    assert_eq!(binding.role_ref.name, "winapp.shop.web.gmsa");
    let subjects = binding.subjects.expect("subjects");
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
        ("ServiceAccount", NAME, Some(NS))
    );

    // The binding follows an existing ServiceAccount.
    let c = children(&format!("serviceAccountName: runner\n{}", gmsa_generated("")));
    let subjects = c.gmsa_role_binding.expect("role binding").subjects.expect("subjects");
    assert_eq!(subjects[0].name, "runner");
}

#[test]
fn existing_credential_spec_gets_only_rbac() {
    let c = children("image: x\ngmsa: {credentialSpecName: webapp1}\n");
    assert_eq!(c.credential_spec, None);
    let role = c.gmsa_cluster_role.expect("cluster role");
    assert_eq!(role.rules.expect("rules")[0].resource_names, Some(vec!["webapp1".to_owned()]));
    let binding = c.gmsa_role_binding.expect("role binding");
    assert_eq!(binding.role_ref.name, "winapp.shop.web.gmsa");
}

#[test]
fn no_gmsa_objects_without_gmsa() {
    let c = children("image: x");
    assert_eq!((c.credential_spec, c.gmsa_cluster_role, c.gmsa_role_binding), (None, None, None));
}

#[test]
fn a_withheld_gmsa_builds_no_gmsa_children_and_no_workload_but_the_rest() {
    let with_volume = "service: {ports: [{name: http, port: 80}]}\nports: [{name: http, containerPort: 80}]\nconfig: {mountPath: 'C:\\app', files: [{name: a.config, content: x}]}\nvolumes: [{name: data, mountPath: 'D:\\data', claim: {size: 1Gi}}]\n";
    for spec in [
        format!("{}\n{with_volume}", gmsa_generated("")),
        format!("image: x\ngmsa: {{credentialSpecName: webapp1}}\n{with_volume}"),
    ] {
        let v = validated(&spec);
        let allowed = build::build_with(&v, GmsaGrant::Allowed).expect("builds");
        assert_eq!(allowed, build::build(&v).expect("builds"), "render builds as if allowed");
        let withheld = build::build_with(&v, GmsaGrant::Withheld).expect("builds");
        assert_eq!(
            (&withheld.credential_spec, &withheld.gmsa_cluster_role, &withheld.gmsa_role_binding),
            (&None, &None, &None),
            "{spec}"
        );
        assert!(withheld.workload.is_none(), "nothing runs as an account not allowed: {spec}");
        assert_eq!(withheld.service_account, allowed.service_account);
        assert_eq!(withheld.config_map, allowed.config_map);
        assert_eq!(withheld.persistent_volume_claims, allowed.persistent_volume_claims);
        assert_eq!(withheld.service, allowed.service);
        let kinds: Vec<String> = withheld
            .to_ordered_json()
            .expect("json")
            .iter()
            .map(|o| o["kind"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(kinds, ["ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "Service"], "{spec}");
    }
    // An app without gMSA is not affected by the grant.
    let plain = validated("image: x");
    assert_eq!(build::build_with(&plain, GmsaGrant::Withheld).expect("builds"), build::build(&plain).expect("builds"));
}

// ---------------------------------------------------------------------------------------------
// Storage.
// ---------------------------------------------------------------------------------------------

#[test]
fn smb_volume_gets_a_static_persistent_volume() {
    let c = children(
        r#"
image: x
volumes:
  - name: share
    mountPath: 'D:\share'
    readOnly: true
    smb:
      source: //fileserver.contoso.com/imports
      secretRef: {name: smb-creds}
      capacity: 500Gi
      mountOptions: [dir_mode=0777, vers=3.0]
"#,
    );
    assert_eq!(c.persistent_volumes.len(), 1);
    let pv = &c.persistent_volumes[0];
    assert_eq!(pv.metadata.name.as_deref(), Some("winapp.shop.web.share"));
    assert_eq!(pv.metadata.namespace, None);
    assert_eq!(pv.metadata.owner_references, None);
    let spec = pv.spec.as_ref().expect("pv spec");
    assert_eq!(spec.capacity, Some(BTreeMap::from([("storage".to_owned(), Quantity("500Gi".into()))])));
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteMany".to_owned()]));
    assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Retain"));
    assert_eq!(spec.storage_class_name, None, "a static PV has no class; the claim binds it by volumeName");
    assert_eq!(spec.mount_options, Some(vec!["dir_mode=0777".to_owned(), "vers=3.0".to_owned()]));
    let claim_ref = spec.claim_ref.as_ref().expect("claimRef");
    assert_eq!((claim_ref.namespace.as_deref(), claim_ref.name.as_deref()), (Some(NS), Some("web.share")));
    let csi = spec.csi.as_ref().expect("csi");
    assert_eq!(csi.driver, "smb.csi.k8s.io");
    assert_eq!(storage::SMB_DRIVER, "smb.csi.k8s.io");
    assert_eq!(csi.volume_handle, "winapp/shop/web/share");
    assert_eq!(csi.read_only, Some(true));
    assert_eq!(csi.volume_attributes, Some(map(&[("source", "//fileserver.contoso.com/imports")])));
    let secret = csi.node_stage_secret_ref.as_ref().expect("nodeStageSecretRef");
    assert_eq!((secret.name.as_deref(), secret.namespace.as_deref()), (Some("smb-creds"), Some(NS)));

    assert_eq!(c.persistent_volume_claims.len(), 1);
    let pvc = &c.persistent_volume_claims[0];
    assert_eq!(pvc.metadata.name.as_deref(), Some("web.share"));
    assert_eq!(pvc.metadata.namespace.as_deref(), Some(NS));
    let spec = pvc.spec.as_ref().expect("pvc spec");
    assert_eq!(spec.volume_name.as_deref(), Some("winapp.shop.web.share"));
    assert_eq!(spec.storage_class_name.as_deref(), Some(""));
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteMany".to_owned()]));
    assert_eq!(
        spec.resources.as_ref().and_then(|r| r.requests.clone()),
        Some(BTreeMap::from([("storage".to_owned(), Quantity("500Gi".into()))]))
    );
}

#[test]
fn smb_defaults_on_the_persistent_volume() {
    let c = children(
        "image: x\nvolumes:\n  - {name: share, mountPath: 'D:\\s', smb: {source: //srv/share, secretRef: {name: c}}}\n",
    );
    let spec = c.persistent_volumes[0].spec.as_ref().expect("pv spec");
    assert_eq!(spec.capacity, Some(BTreeMap::from([("storage".to_owned(), Quantity("100Gi".into()))])));
    assert_eq!(spec.mount_options, None);
    assert_eq!(spec.csi.as_ref().expect("csi").read_only, None);
}

#[test]
fn smb_volume_handles_are_unique() {
    let handle = |ns: &str, name: &str, volume: &str| {
        let c = build::build(&validated_in(
            ns,
            name,
            &format!("image: x\nvolumes:\n  - {{name: {volume}, mountPath: 'D:\\s', smb: {{source: //srv/s, secretRef: {{name: c}}}}}}\n"),
        ))
        .expect("builds");
        c.persistent_volumes[0].spec.as_ref().and_then(|s| s.csi.as_ref()).expect("csi").volume_handle.clone()
    };
    let handles = [
        handle("a", "b", "c"),
        handle("x", "b", "c"),
        handle("a", "x", "c"),
        handle("a", "b", "x"),
        handle("a-b", "c", "d"),
        handle("a", "b-c", "d"),
    ];
    for (i, h) in handles.iter().enumerate() {
        for other in &handles[i + 1..] {
            assert_ne!(h, other);
        }
    }
    assert_eq!(handles[0], "winapp/a/b/c");
}

#[test]
fn claim_volume_is_provisioned_by_its_class() {
    let c = children(
        r#"
image: x
volumes:
  - name: files
    mountPath: 'D:\files'
    claim: {storageClassName: azurefile-csi, size: 20Gi, accessModes: [ReadWriteOnce, ReadOnlyMany]}
  - name: scratch
    mountPath: 'D:\scratch'
    claim: {size: 1Gi}
"#,
    );
    assert!(c.persistent_volumes.is_empty());
    let pvcs = &c.persistent_volume_claims;
    assert_eq!(pvcs.len(), 2);
    assert_eq!(pvcs[0].metadata.name.as_deref(), Some("web.files"));
    let spec = pvcs[0].spec.as_ref().expect("pvc spec");
    assert_eq!(spec.storage_class_name.as_deref(), Some("azurefile-csi"));
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_owned(), "ReadOnlyMany".to_owned()]));
    assert_eq!(
        spec.resources.as_ref().and_then(|r| r.requests.clone()),
        Some(BTreeMap::from([("storage".to_owned(), Quantity("20Gi".into()))]))
    );
    assert_eq!(spec.volume_name, None);

    let spec = pvcs[1].spec.as_ref().expect("pvc spec");
    assert_eq!(pvcs[1].metadata.name.as_deref(), Some("web.scratch"));
    assert_eq!(spec.storage_class_name, None, "unset class means the cluster default");
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteMany".to_owned()]));
}

#[test]
fn access_mode_spellings() {
    let c = children(
        "image: x\nvolumes:\n  - {name: v, mountPath: 'D:\\v', claim: {size: 1Gi, accessModes: [ReadWriteOncePod, ReadWriteMany]}}\n",
    );
    let spec = c.persistent_volume_claims[0].spec.as_ref().expect("pvc spec");
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteOncePod".to_owned(), "ReadWriteMany".to_owned()]));
}

// ---------------------------------------------------------------------------------------------
// Names, labels, owner references.
// ---------------------------------------------------------------------------------------------

#[test]
fn names_from_meta() {
    let v = validated("image: x");
    assert_eq!(meta::workload_name(&v), "web");
    assert_eq!(meta::config_map_name(&v), "web-config");
    assert_eq!(meta::gmsa_role_binding_name(&v), "web-gmsa");
    assert_eq!(meta::claim_name(&v, "data"), "web.data");
    assert_eq!(meta::generated_credspec_name("shop", "web"), "winapp.shop.web");
    assert_eq!(meta::gmsa_cluster_role_name(&v), "winapp.shop.web.gmsa");
    assert_eq!(meta::persistent_volume_name(&v, "data"), "winapp.shop.web.data");
    assert_eq!(meta::smb_volume_handle(&v, "data"), "winapp/shop/web/data");
    assert_eq!(meta::config_file_path(r"C:\app", "Web.config"), r"C:\app\Web.config");
    assert_eq!(meta::config_file_path(r"C:\", "Web.config"), r"C:\Web.config");
    assert_eq!(
        meta::children_selector("shop", "web"),
        "app.kubernetes.io/managed-by=winapp-operator,winapp.dev/app=web,winapp.dev/namespace=shop"
    );
}

#[test]
fn cluster_scoped_names_contain_namespace_and_name() {
    let c = children(FULL);
    let cluster_names = [
        c.credential_spec.as_ref().and_then(|o| o.metadata.name.clone()).expect("credspec name"),
        c.gmsa_cluster_role.as_ref().and_then(|o| o.metadata.name.clone()).expect("cluster role name"),
        c.persistent_volumes[0].metadata.name.clone().expect("pv name"),
    ];
    for name in &cluster_names {
        let parts: Vec<_> = name.split('.').collect();
        assert!(parts.len() >= 3 && parts[1] == NS && parts[2] == NAME, "{name}");
    }
}

#[test]
fn cluster_scoped_names_of_different_apps_differ() {
    // `a-b/c` and `a/b-c` would collide with a `-` join.
    let one = validated_in("a-b", "c", "image: x");
    let two = validated_in("a", "b-c", "image: x");
    assert_ne!(meta::generated_credspec_name("a-b", "c"), meta::generated_credspec_name("a", "b-c"));
    assert_ne!(meta::gmsa_cluster_role_name(&one), meta::gmsa_cluster_role_name(&two));
    assert_ne!(meta::persistent_volume_name(&one, "d"), meta::persistent_volume_name(&two, "d"));
    assert_ne!(meta::smb_volume_handle(&one, "d"), meta::smb_volume_handle(&two, "d"));

    let one = build::build(&validated_in("a-b", "c", FULL)).expect("builds");
    let two = build::build(&validated_in("a", "b-c", FULL)).expect("builds");
    assert_ne!(one.credential_spec.and_then(|o| o.metadata.name), two.credential_spec.and_then(|o| o.metadata.name));
    assert_ne!(
        one.gmsa_cluster_role.and_then(|o| o.metadata.name),
        two.gmsa_cluster_role.and_then(|o| o.metadata.name)
    );
    assert_ne!(one.persistent_volumes[0].metadata.name, two.persistent_volumes[0].metadata.name);
}

#[test]
fn claim_names_of_two_apps_in_one_namespace_differ() {
    let one = validated_in(NS, "a", "image: x");
    let two = validated_in(NS, "a-b", "image: x");
    assert_ne!(meta::claim_name(&one, "b-c"), meta::claim_name(&two, "c"));
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(object.pointer("/metadata/labels").cloned().unwrap_or(Value::Null))
        .unwrap_or_else(|e| panic!("no labels on {object}: {e}"))
}

#[test]
fn every_child_carries_the_labels() {
    let objects = children(FULL).to_ordered_json().expect("serializes");
    assert_eq!(objects.len(), 10);
    for o in &objects {
        let labels = labels_of(o);
        let kind = &o["kind"];
        assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("winapp-operator"), "{kind}");
        assert_eq!(labels.get("winapp.dev/app").map(String::as_str), Some(NAME), "{kind}");
        assert_eq!(labels.get("winapp.dev/namespace").map(String::as_str), Some(NS), "{kind}");
        assert_eq!(labels.get("app.kubernetes.io/name").map(String::as_str), Some(NAME), "{kind}");
    }
}

#[test]
fn owner_references_only_with_a_uid() {
    let objects = children(FULL).to_ordered_json().expect("serializes");
    for o in &objects {
        assert_eq!(o.pointer("/metadata/ownerReferences"), None, "{}", o["kind"]);
    }

    let mut app = windows_app(NS, NAME, FULL);
    app.metadata.uid = Some("6f1c9f4e-1111-2222-3333-444455556666".into());
    let objects = build::build(&validate_app(&app)).expect("builds").to_ordered_json().expect("serializes");
    let expected = json!([{
        "apiVersion": "winapp.dev/v1alpha1",
        "kind": "WindowsApp",
        "name": NAME,
        "uid": "6f1c9f4e-1111-2222-3333-444455556666",
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    for o in &objects {
        let kind = o["kind"].as_str().expect("kind");
        let cluster_scoped = matches!(kind, "GMSACredentialSpec" | "ClusterRole" | "PersistentVolume");
        let retained = o.pointer("/metadata/annotations/winapp.dev~1retention-policy") == Some(&json!("Retain"));
        if retained {
            // A claim to retain: never garbage-collected with the app, tied to it by annotation.
            assert_eq!(kind, "PersistentVolumeClaim");
            assert_eq!(o.pointer("/metadata/ownerReferences"), None, "{kind} is retained");
            assert_eq!(
                o.pointer("/metadata/annotations/winapp.dev~1owner-uid"),
                Some(&json!("6f1c9f4e-1111-2222-3333-444455556666"))
            );
        } else if cluster_scoped {
            assert_eq!(o.pointer("/metadata/ownerReferences"), None, "{kind} is cluster-scoped");
            assert_eq!(o.pointer("/metadata/namespace"), None, "{kind} is cluster-scoped");
        } else {
            assert_eq!(o.pointer("/metadata/ownerReferences"), Some(&expected), "{kind}");
            assert_eq!(o.pointer("/metadata/namespace"), Some(&json!(NS)), "{kind}");
        }
    }
}

#[test]
fn claims_are_retained_unless_their_volume_says_delete() {
    let spec = "image: x\nvolumes:\n  - {name: keep, mountPath: 'C:\\keep', claim: {size: 1Gi}}\n  - {name: scratch, mountPath: 'C:\\scratch', claim: {size: 1Gi, retentionPolicy: Delete}}\n  - {name: share, mountPath: 'C:\\share', smb: {source: //fs/share, secretRef: {name: creds}}}\n";
    let mut app = windows_app(NS, NAME, spec);
    app.metadata.uid = Some("u-1".into());
    let c = build::build(&validate_app(&app)).expect("builds");
    let by_name = |n: &str| c.persistent_volume_claims.iter().find(|p| p.metadata.name.as_deref() == Some(n)).expect(n);
    let annotation = |p: &k8s_openapi::api::core::v1::PersistentVolumeClaim, k: &str| {
        p.metadata.annotations.as_ref().and_then(|a| a.get(k)).cloned()
    };
    let keep = by_name("web.keep");
    assert!(keep.metadata.owner_references.is_none(), "garbage collection would delete it with the app");
    assert_eq!(annotation(keep, "winapp.dev/retention-policy").as_deref(), Some("Retain"));
    assert_eq!(annotation(keep, "winapp.dev/owner-uid").as_deref(), Some("u-1"));
    let scratch = by_name("web.scratch");
    assert_eq!(scratch.metadata.owner_references.as_ref().map(Vec::len), Some(1), "deleted with the app");
    assert_eq!(annotation(scratch, "winapp.dev/retention-policy").as_deref(), Some("Delete"));
    // An SMB share's claim is plumbing: the data is on the share (its PersistentVolume is Retain).
    let share = by_name("web.share");
    assert_eq!(share.metadata.owner_references.as_ref().map(Vec::len), Some(1));
    assert_eq!(annotation(share, "winapp.dev/retention-policy"), None);
    assert!(
        c.persistent_volumes.iter().all(|pv| pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            == Some("Retain"))
    );
    assert!(c.needs_finalizer(), "released on the app's deletion, by the operator");
    let deleted_only =
        "image: x\nvolumes: [{name: scratch, mountPath: 'C:\\scratch', claim: {size: 1Gi, retentionPolicy: Delete}}]\n";
    assert!(!build::build(&validated(deleted_only)).expect("builds").needs_finalizer());
}

// ---------------------------------------------------------------------------------------------
// Apply order.
// ---------------------------------------------------------------------------------------------

fn kinds(objects: &[Value]) -> Vec<(String, String)> {
    objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().expect("kind").to_owned(),
                o.pointer("/metadata/name").and_then(Value::as_str).expect("name").to_owned(),
            )
        })
        .collect()
}

#[test]
fn ordered_json_puts_identity_first_and_the_deployment_last() {
    let objects = children(FULL).to_ordered_json().expect("serializes");
    let expected: Vec<(String, String)> = [
        ("ServiceAccount", "web"),
        ("GMSACredentialSpec", "winapp.shop.web"),
        ("ClusterRole", "winapp.shop.web.gmsa"),
        ("RoleBinding", "web-gmsa"),
        ("ConfigMap", "web-config"),
        ("PersistentVolume", "winapp.shop.web.share"),
        ("PersistentVolumeClaim", "web.share"),
        ("PersistentVolumeClaim", "web.files"),
        ("Service", "web"),
        ("Deployment", "web"),
    ]
    .iter()
    .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
    .collect();
    assert_eq!(kinds(&objects), expected);
    let api_versions: Vec<_> = objects.iter().map(|o| o["apiVersion"].as_str().expect("apiVersion")).collect();
    assert_eq!(
        api_versions,
        vec![
            "v1",
            "windows.k8s.io/v1",
            "rbac.authorization.k8s.io/v1",
            "rbac.authorization.k8s.io/v1",
            "v1",
            "v1",
            "v1",
            "v1",
            "v1",
            "apps/v1",
        ]
    );
}

#[test]
fn ordered_json_of_a_minimal_app() {
    let objects = children("image: x").to_ordered_json().expect("serializes");
    assert_eq!(kinds(&objects), vec![("ServiceAccount".into(), "web".into()), ("Deployment".into(), "web".into())]);
    let objects = children("image: x\nserviceAccountName: runner\n").to_ordered_json().expect("serializes");
    assert_eq!(kinds(&objects), vec![("Deployment".to_owned(), "web".to_owned())]);
}

#[test]
fn the_network_policy_admits_the_named_sources_to_the_app_ports_only() {
    let children = |spec: &str| build::build(&validated(spec)).expect("builds");
    assert!(children("image: x\n").network_policy.is_none(), "no policy unless asked");

    let np = children(
        "image: x\nports: [{name: http, containerPort: 80}, {name: dns, containerPort: 53, protocol: UDP}]\nnetworkPolicy:\n  from:\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress}}\n    - {namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchLabels: {app: front}}}\n",
    )
    .network_policy
    .expect("policy");
    let spec = np.spec.expect("spec");
    assert_eq!(
        spec.pod_selector.and_then(|s| s.match_labels),
        Some(map(&[("app.kubernetes.io/instance", "web"), ("app.kubernetes.io/name", "web")]))
    );
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_owned()]));
    assert!(spec.egress.is_none(), "egress is left alone");
    let rules = spec.ingress.expect("one rule");
    assert_eq!(rules.len(), 1);
    let ports: Vec<(String, String)> = rules[0]
        .ports
        .iter()
        .flatten()
        .map(|p| (format!("{:?}", p.port), p.protocol.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        ports,
        vec![("Some(Int(80))".to_owned(), "TCP".to_owned()), ("Some(Int(53))".to_owned(), "UDP".to_owned())]
    );
    let from = rules[0].from.clone().expect("sources");
    assert_eq!(from.len(), 3, "own namespace + two sources: {from:?}");
    assert_eq!(from[0].pod_selector, Some(Default::default()), "every pod of the app's namespace");
    assert!(from[0].namespace_selector.is_none());
    assert!(
        from[2].namespace_selector.is_some() && from[2].pod_selector.is_some(),
        "both: those pods in those namespaces"
    );

    // Not the own namespace, or no ports: nothing is admitted unless named.
    let np =
        children("image: x\nports: [{name: http, containerPort: 80}]\nnetworkPolicy: {allowSameNamespace: false}\n")
            .network_policy
            .expect("policy");
    assert!(np.spec.and_then(|s| s.ingress).is_none(), "deny all ingress");
    let np = children("image: x\nnetworkPolicy: {}\n").network_policy.expect("policy");
    assert!(np.spec.and_then(|s| s.ingress).is_none(), "no ports: deny all ingress");
}

#[test]
fn the_service_may_have_a_name_of_its_own() {
    let svc = |spec: &str| build::build(&validated(spec)).expect("builds").service.expect("service");
    let ports = "image: x\nports: [{name: http, containerPort: 80}]\n";
    assert_eq!(svc(&format!("{ports}service: {{}}\n")).metadata.name.as_deref(), Some("web"));
    let named = svc(&format!("{ports}service: {{name: iis-service}}\n"));
    assert_eq!(named.metadata.name.as_deref(), Some("iis-service"));
    // It still selects the app's pods.
    assert_eq!(
        named.spec.and_then(|s| s.selector),
        Some(map(&[("app.kubernetes.io/instance", "web"), ("app.kubernetes.io/name", "web")]))
    );
}

#[test]
fn an_smb_claim_may_ask_for_less_than_the_volume() {
    let c = build::build(&validated(
        "image: x\nvolumes:\n  - {name: data, mountPath: 'D:\\data', smb: {source: //fs/share, secretRef: {name: c}, capacity: 1Ti, claimSize: 200Gi}}\n",
    ))
    .expect("builds");
    let pv = &c.persistent_volumes[0];
    let pvc = &c.persistent_volume_claims[0];
    let pv_size =
        pv.spec.as_ref().and_then(|s| s.capacity.as_ref()).and_then(|c| c.get("storage")).map(|q| q.0.clone());
    let pvc_size = pvc
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone());
    assert_eq!((pv_size.as_deref(), pvc_size.as_deref()), (Some("1Ti"), Some("200Gi")));
}

#[test]
fn the_apps_labels_and_listed_annotations_reach_every_child_and_the_pods() {
    let app: WindowsApp = serde_saphyr::from_str(
        r#"
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata:
  name: web
  namespace: shop
  uid: 9f0c0c5e-1111-2222-3333-444455556666
  labels:
    cost-center: cc-42
    team: payments
    app.kubernetes.io/instance: argo-app-name
    argocd.argoproj.io/instance: shop
    kustomize.toolkit.fluxcd.io/name: apps
    winapp.dev/group: a
  annotations:
    winapp.dev/propagate-annotations: "owner, policy.example.com/tier"
    owner: alice@example.com
    policy.example.com/tier: gold
    not-listed: x
spec:
  image: x
  ports: [{name: http, containerPort: 80}]
  service: {annotations: {service.beta.kubernetes.io/azure-load-balancer-internal: "true"}}
  config: {mountPath: 'C:\app', files: [{name: a.config, content: x}]}
  podTemplate:
    metadata: {labels: {team: pods-own}}
"#,
    )
    .expect("app");
    let v = validate::validate(&app, None).expect("valid");
    let c = build::build(&v).expect("builds");
    let metas = [
        ("ServiceAccount", c.service_account.as_ref().map(|o| o.metadata.clone())),
        ("ConfigMap", c.config_map.as_ref().map(|o| o.metadata.clone())),
        ("Service", c.service.as_ref().map(|o| o.metadata.clone())),
        ("Deployment", c.workload.as_ref().and_then(|w| w.as_deployment()).map(|d| d.metadata.clone())),
    ];
    for (kind, m) in metas {
        let m = m.unwrap_or_else(|| panic!("{kind} built"));
        let labels = m.labels.unwrap_or_default();
        assert_eq!(labels.get("cost-center").map(String::as_str), Some("cc-42"), "{kind}");
        assert_eq!(labels.get("team").map(String::as_str), Some("payments"), "{kind}");
        // Tools' labels stay theirs; the selector stays the operator's.
        assert_eq!(labels.get("app.kubernetes.io/instance").map(String::as_str), Some("web"), "{kind}");
        for key in ["argocd.argoproj.io/instance", "kustomize.toolkit.fluxcd.io/name", "winapp.dev/group"] {
            assert!(!labels.contains_key(key), "{kind}: {key} must not propagate");
        }
        let annotations = m.annotations.unwrap_or_default();
        assert_eq!(annotations.get("owner").map(String::as_str), Some("alice@example.com"), "{kind}");
        assert_eq!(annotations.get("policy.example.com/tier").map(String::as_str), Some("gold"), "{kind}");
        assert!(
            !annotations.contains_key("not-listed") && !annotations.contains_key("winapp.dev/propagate-annotations")
        );
    }
    let svc = c.service.expect("service").metadata.annotations.unwrap_or_default();
    assert_eq!(svc.get("service.beta.kubernetes.io/azure-load-balancer-internal").map(String::as_str), Some("true"));
    let template = c.workload.as_ref().expect("a workload").template().metadata.clone().expect("pod metadata");
    let pod_labels = template.labels.unwrap_or_default();
    assert_eq!(pod_labels.get("cost-center").map(String::as_str), Some("cc-42"));
    assert_eq!(pod_labels.get("team").map(String::as_str), Some("pods-own"), "the pod template's own label wins");
    assert_eq!(template.annotations.unwrap_or_default().get("owner").map(String::as_str), Some("alice@example.com"));
    assert_eq!(
        c.workload.as_ref().and_then(|w| w.as_deployment()).expect("a Deployment").spec.selector.match_labels,
        Some(map(&[("app.kubernetes.io/instance", "web"), ("app.kubernetes.io/name", "web")])),
        "the selector is untouched"
    );
}

#[test]
fn a_runtime_class_places_the_pods_instead_of_the_pool_tolerations() {
    let spec = pod_spec(
        "image: x\nwindows: {version: ltsc2022, runtimeClassName: windows-2022, tolerations: [{key: gpu, operator: Exists}]}\n",
    );
    assert_eq!(spec.runtime_class_name.as_deref(), Some("windows-2022"));
    assert_eq!(
        spec.tolerations,
        Some(vec![Toleration { key: Some("gpu".into()), operator: Some("Exists".into()), ..Toleration::default() }]),
        "no pool tolerations: the RuntimeClass brings them"
    );
    assert_eq!(
        spec.node_selector,
        Some(map(&[("kubernetes.io/os", "windows"), ("node.kubernetes.io/windows-build", "10.0.20348")]))
    );
    let plain = pod_spec("image: x\nwindows: {runtimeClassName: windows-2022}\n");
    assert_eq!(plain.tolerations, None);
}

#[test]
fn shutdown_renders_the_grace_period_and_the_pre_stop_hook() {
    let pod = pod_spec("image: x\n");
    assert_eq!(pod.termination_grace_period_seconds, Some(60), "Windows' default, not Kubernetes' 30");
    assert_eq!(app_container(&pod).lifecycle, None, "no preStop unless asked");

    let pod = pod_spec(
        "image: x\nshutdown:\n  gracePeriodSeconds: 90\n  preStop: {iis: {site: Default Web Site, drainSeconds: 40}}\n",
    );
    assert_eq!(pod.termination_grace_period_seconds, Some(90));
    let hook = app_container(&pod).lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()).expect("a preStop hook");
    let command = hook.exec.as_ref().and_then(|e| e.command.clone()).expect("an exec hook");
    assert_eq!(command[0], "powershell.exe");
    assert!(command.last().is_some_and(|s| s.contains("stop site 'Default Web Site'")), "{command:?}");

    // podTemplate's grace period, with no shutdown.gracePeriodSeconds, wins over the default.
    let pod = pod_spec("image: x\npodTemplate: {spec: {terminationGracePeriodSeconds: 300}}\n");
    assert_eq!(pod.termination_grace_period_seconds, Some(300));
    // ...and its preStop for the app container, with no shutdown.preStop.
    let pod = pod_spec(
        "image: x\npodTemplate: {spec: {containers: [{name: app, lifecycle: {preStop: {exec: {command: [b]}}}}]}}\n",
    );
    let hook = app_container(&pod).lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()).expect("podTemplate's hook");
    assert_eq!(hook.exec.as_ref().and_then(|e| e.command.clone()), Some(vec!["b".to_owned()]));
}

/// While the pods move to another Windows build, no old pod goes before a new one is Ready, and
/// the Deployment says where they come from; otherwise the app's own limits, and no note.
#[test]
fn a_build_migration_keeps_every_old_pod_until_a_new_one_is_ready() {
    use winapp_operator::api::WindowsVersion;
    use winapp_operator::build::workload::{MIGRATING_FROM_ANNOTATION, rollout_limits};
    use winapp_operator::validate::BuildMigration;
    let moving = Some(BuildMigration { from: WindowsVersion::Ltsc2019, to: WindowsVersion::Ltsc2022 });
    let limits = |yaml: &str, migration| {
        let mut app = validated(yaml);
        app.migration = migration;
        rollout_limits(&app)
    };
    let v2022 = "image: web:2\nwindows: {version: ltsc2022}\n";
    let (int, pct) = (IntOrString::Int, |s: &str| IntOrString::String(s.into()));
    assert_eq!(limits(v2022, None), (pct("25%"), int(0)));
    assert_eq!(limits(v2022, moving), (pct("25%"), int(0)));
    let recreate = format!("{v2022}rollout: {{maxSurge: 0, maxUnavailable: 1}}\n");
    assert_eq!(limits(&recreate, None), (int(0), int(1)));
    assert_eq!(limits(&recreate, moving), (int(1), int(0)), "one new pod at a time, no old one lost");
    let percent = format!("{v2022}rollout: {{maxSurge: '0%', maxUnavailable: '50%'}}\n");
    assert_eq!(limits(&percent, moving), (int(1), int(0)));
    let surge = format!("{v2022}rollout: {{maxSurge: 2, maxUnavailable: 1}}\n");
    assert_eq!(limits(&surge, moving), (int(2), int(0)));
    // A claim only one node can mount: a new pod elsewhere would wait on the old one forever.
    let rwo = format!(
        "{recreate}volumes: [{{name: data, mountPath: 'C:\\data', claim: {{size: 1Gi, accessModes: [ReadWriteOnce]}}}}]\n"
    );
    assert_eq!(limits(&rwo, moving), (int(0), int(1)));
    let rwx = rwo.replace("ReadWriteOnce", "ReadWriteMany");
    assert_eq!(limits(&rwx, moving), (int(1), int(0)));

    let mut app = validated(&recreate);
    app.migration = moving;
    let d = build::workload::deployment(&app).expect("builds");
    let note = d.metadata.annotations.as_ref().and_then(|a| a.get(MIGRATING_FROM_ANNOTATION));
    assert_eq!(note.map(String::as_str), Some("ltsc2019"));
    let rolling = d.spec.strategy.and_then(|s| s.rolling_update).expect("rolling update");
    assert_eq!((rolling.max_surge, rolling.max_unavailable), (Some(int(1)), Some(int(0))));
    let d = build::workload::deployment(&validated(&recreate)).expect("builds");
    assert!(d.metadata.annotations.is_none_or(|a| !a.contains_key(MIGRATING_FROM_ANNOTATION)));
}
