//! Unit tests of the validate step: one test per `ValidationError` variant, resolved defaults,
//! probes, the config checksum, error aggregation and the helper predicates.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use winapp_operator::api::{AccessMode, PoolTaint, Protocol, ServiceType, WindowsApp, WindowsAppSpec, WindowsVersion};
use winapp_operator::policy::{Policy, Rule};
use winapp_operator::validate::{
    self, ServiceAccountChoice, ServicePort, ValidatedApp, ValidationError, ValidationErrors, VolumeSource, defaults,
    is_config_key, is_dns1035_label, is_windows_path,
};

const NAME: &str = "web";
const NS: &str = "shop";

/// A WindowsApp `shop/web` with the given spec (YAML).
fn app(yaml_spec: &str) -> WindowsApp {
    let spec: WindowsAppSpec = serde_saphyr::from_str(yaml_spec).expect("spec YAML parses");
    let mut app = WindowsApp::new(NAME, spec);
    app.metadata.namespace = Some(NS.into());
    app
}

/// The powers of the spec's own fields granted (SMB shares, HostProcess, other pools' taints...):
/// these tests are about validation; the policy's refusals have tests of their own below. The
/// pod template's rules stay as by default.
fn granted() -> Policy {
    Policy::allowing([Rule::HostProcess, Rule::NodeAgent, Rule::OtherTaints, Rule::RuntimeClass, Rule::SmbVolumes])
}

fn valid(yaml_spec: &str) -> ValidatedApp {
    validate::validate_with(&app(yaml_spec), None, &granted())
        .unwrap_or_else(|e| panic!("expected a valid app, got: {e}"))
}

fn errors_of(app: &WindowsApp, default_namespace: Option<&str>) -> Vec<ValidationError> {
    validate::validate_with(app, default_namespace, &granted()).expect_err("expected validation errors").0
}

/// The variant's name. Exhaustive without a wildcard: adding a variant fails to compile here
/// until a test for it is added below.
fn variant(e: &ValidationError) -> &'static str {
    match e {
        ValidationError::MissingNamespace => "MissingNamespace",
        ValidationError::InvalidName(_) => "InvalidName",
        ValidationError::EmptyImage => "EmptyImage",
        ValidationError::InvalidImage(..) => "InvalidImage",
        ValidationError::ImageBuildMismatch { .. } => "ImageBuildMismatch",
        ValidationError::InvalidWindowsPath { .. } => "InvalidWindowsPath",
        ValidationError::InvalidConfigKey(_) => "InvalidConfigKey",
        ValidationError::DuplicateConfigFile(_) => "DuplicateConfigFile",
        ValidationError::ConfigFileSource(_) => "ConfigFileSource",
        ValidationError::NoConfigFiles => "NoConfigFiles",
        ValidationError::GmsaOneOf => "GmsaOneOf",
        ValidationError::GmsaWithHostProcess => "GmsaWithHostProcess",
        ValidationError::RuntimeClassWithToleration => "RuntimeClassWithToleration",
        ValidationError::NetworkPolicyWithHostProcess => "NetworkPolicyWithHostProcess",
        ValidationError::VolumeOneOf(_) => "VolumeOneOf",
        ValidationError::ClaimLargerThanVolume { .. } => "ClaimLargerThanVolume",
        ValidationError::DuplicateVolume(_) => "DuplicateVolume",
        ValidationError::DuplicateMountPath(..) => "DuplicateMountPath",
        ValidationError::DuplicatePort(..) => "DuplicatePort",
        ValidationError::UnknownTargetPort { .. } => "UnknownTargetPort",
        ValidationError::ServiceWithoutPorts => "ServiceWithoutPorts",
        ValidationError::NodePortOnClusterIp(_) => "NodePortOnClusterIp",
        ValidationError::TrafficPolicyOnClusterIp => "TrafficPolicyOnClusterIp",
        ValidationError::ForbiddenOverride(_) => "ForbiddenOverride",
        ValidationError::HostProcessWithoutHostNetwork => "HostProcessWithoutHostNetwork",
        ValidationError::SelectorLabelOverride(_) => "SelectorLabelOverride",
        ValidationError::InvalidPodSpecOverride(_) => "InvalidPodSpecOverride",
        ValidationError::InvalidServiceAccountName(_) => "InvalidServiceAccountName",
        ValidationError::UnnamedOverrideEntry(_) => "UnnamedOverrideEntry",
        ValidationError::ReservedVolumeName(_) => "ReservedVolumeName",
        ValidationError::NodeAgentWith(_) => "NodeAgentWith",
        ValidationError::WarmUpWith(_) => "WarmUpWith",
        ValidationError::InvalidDisruption { .. } => "InvalidDisruption",
        ValidationError::OverrideNotAllowed(_) => "OverrideNotAllowed",
        ValidationError::NotAllowed(_) => "NotAllowed",
        ValidationError::ShutdownSetTwice { .. } => "ShutdownSetTwice",
        ValidationError::PreStopOneOf => "PreStopOneOf",
        ValidationError::DrainPastGracePeriod { .. } => "DrainPastGracePeriod",
        ValidationError::InvalidLogging { .. } => "InvalidLogging",
    }
}

/// Validates `app`, expects exactly one error of the named variant whose message starts with
/// `field`, and returns it.
fn only_error_of(app: &WindowsApp, expected_variant: &str, field: &str) -> ValidationError {
    let errors = errors_of(app, None);
    assert_eq!(errors.len(), 1, "expected exactly one error, got {errors:?}");
    let e = errors.into_iter().next().expect("one error");
    assert_eq!(variant(&e), expected_variant, "wrong variant: {e:?}");
    let message = e.to_string();
    assert!(message.starts_with(field), "message should start with {field:?}: {message}");
    e
}

fn only_error(yaml_spec: &str, expected_variant: &str, field: &str) -> ValidationError {
    only_error_of(&app(yaml_spec), expected_variant, field)
}

// ---------------------------------------------------------------------------------------------
// One test per ValidationError variant.
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_disruption_budgets_name_their_field() {
    let e = only_error(
        "image: x\nreplicas: 3\ndisruption: {maxUnavailable: 0}\n",
        "InvalidDisruption",
        "spec.disruption.maxUnavailable: must be",
    );
    assert!(e.to_string().contains("wait forever"), "{e}");
    only_error(
        "image: x\nreplicas: 3\ndisruption: {minAvailable: 3}\n",
        "InvalidDisruption",
        "spec.disruption.minAvailable: 3 of 3 replica(s) allows no eviction",
    );
    only_error(
        "image: x\nnodeAgent: true\ndisruption: {maxUnavailable: 1}\n",
        "InvalidDisruption",
        "spec.disruption.maxUnavailable: a nodeAgent gets no PodDisruptionBudget",
    );
    only_error(
        "image: x\nreplicas: 3\ndisruption: {enabled: false, maxUnavailable: 2}\n",
        "InvalidDisruption",
        "spec.disruption.enabled",
    );
    // Autoscaled, the count is the autoscaler's: minAvailable is not held to spec.replicas.
    let v = valid("image: x\nautoscaled: true\nreplicas: 2\ndisruption: {minAvailable: 2}\n");
    assert_eq!(v.disruption, validate::DisruptionPolicy::MinAvailable(IntOrString::Int(2)));
    assert_eq!(valid("image: x\n").disruption, validate::DisruptionPolicy::Default);
}

#[test]
fn an_image_tagged_for_another_windows_build_is_refused_with_both_fixes() {
    let e = only_error(
        "image: registry.example.com/web:4.8-windowsservercore-ltsc2019\nwindows: {version: ltsc2022}\n",
        "ImageBuildMismatch",
        "spec.image:",
    );
    assert_eq!(
        e.to_string(),
        "spec.image: the image \"registry.example.com/web:4.8-windowsservercore-ltsc2019\" is tagged for ltsc2019 (10.0.17763) but spec.windows.version is ltsc2022 (10.0.20348): a Windows container image runs only on the build it was built for; use the image's ltsc2022 tag, or set spec.windows.version to ltsc2019"
    );
    // A sidecar of the pod template is held to the same build.
    only_error(
        "image: web:1.2\nwindows: {version: ltsc2025}\npodTemplate:\n  spec:\n    containers: [{name: logs, image: 'mcr.microsoft.com/windows/nanoserver:1809'}]\n",
        "ImageBuildMismatch",
        "spec.podTemplate.spec.containers[logs].image: the image \"mcr.microsoft.com/windows/nanoserver:1809\" is tagged for ltsc2019",
    );
    // A tag that names no build, the matching build, or no version pinned: valid.
    valid("image: web:1.2\nwindows: {version: ltsc2022}\n");
    valid("image: web:10.0.20348.2700\nwindows: {version: ltsc2022}\n");
    valid("image: web:1-ltsc2019\n");
}

#[test]
fn invalid_logging_names_its_field_and_the_fix() {
    let e = only_error("image: x\nlogging: {eventLog: [{channel: Application}]}\n", "InvalidLogging", "spec.command:");
    assert!(e.to_string().contains("C:\\\\ServiceMonitor.exe"), "{e}");
    only_error(
        "image: x\ncommand: [a.exe]\nlogging: {eventLog: [{channel: 'App$'}]}\n",
        "InvalidLogging",
        "spec.logging.eventLog[0].channel",
    );
    only_error(
        "image: x\nhostProcess: {}\nnodeAgent: true\ncommand: [a.exe]\nlogging: {iis: true}\n",
        "InvalidLogging",
        "spec.logging: a hostProcess container",
    );
    let v = valid("image: x\nlogging: {iis: true}\n");
    assert_eq!(v.command[3..], ["C:\\ServiceMonitor.exe".to_owned(), "w3svc".to_owned()]);
}

#[test]
fn warm_up_with_a_node_agent_or_host_process() {
    let e = only_error("image: x\nnodeAgent: true\nwarmUp: {enabled: true}\n", "WarmUpWith", "spec.warmUp.enabled");
    assert_eq!(e, ValidationError::WarmUpWith("nodeAgent"));
    let e = only_error("image: x\nhostProcess: {}\nwarmUp: {enabled: true}\n", "WarmUpWith", "spec.warmUp.enabled");
    assert_eq!(e, ValidationError::WarmUpWith("hostProcess"));
    // Off, or left to the platform, it says nothing against them; and it is never on for them.
    let v = valid("image: x\nnodeAgent: true\nwarmUp: {enabled: false}\n");
    assert!(!v.warm_up.enabled && !v.warm_up.eligible);
    let v = valid("image: x\nwarmUp: {enabled: true, deadlineSeconds: 120}\n");
    assert!(v.warm_up.enabled && v.warm_up.eligible);
    assert_eq!(v.warm_up.deadline_seconds, 120);
}

#[test]
fn node_agent_with_replicas_or_autoscaled() {
    let e = only_error("image: x\nnodeAgent: true\nreplicas: 2\n", "NodeAgentWith", "spec.replicas");
    assert_eq!(e, ValidationError::NodeAgentWith("replicas"));
    let e = only_error("image: x\nnodeAgent: true\nautoscaled: true\n", "NodeAgentWith", "spec.autoscaled");
    assert_eq!(e, ValidationError::NodeAgentWith("autoscaled"));
    // autoscaled: false says nothing against it; a node agent has no replica count.
    let v = valid("image: x\nnodeAgent: true\nautoscaled: false\n");
    assert!(v.node_agent);
    assert_eq!(v.replicas, None);
    // One node at a time by default; the spec's limits win.
    assert_eq!(v.max_surge, IntOrString::Int(0));
    assert_eq!(v.max_unavailable, IntOrString::Int(1));
    let v = valid("image: x\nnodeAgent: true\nrollout: {maxSurge: 1, maxUnavailable: 0}\n");
    assert_eq!((v.max_surge, v.max_unavailable), (IntOrString::Int(1), IntOrString::Int(0)));
    // Not a node agent: the Deployment defaults stay.
    let v = valid("image: x\nnodeAgent: false\n");
    assert!(!v.node_agent);
    assert_eq!(v.max_surge, IntOrString::String("25%".into()));
}

#[test]
fn missing_namespace() {
    let mut a = app("image: iis:ltsc2022");
    a.metadata.namespace = None;
    let e = only_error_of(&a, "MissingNamespace", "metadata.namespace");
    assert_eq!(e, ValidationError::MissingNamespace);

    // The default namespace fills the gap; the object's own namespace wins over it.
    let v = validate::validate(&a, Some("fallback")).expect("valid with a default namespace");
    assert_eq!(v.namespace, "fallback");
    let v = validate::validate(&app("image: iis:ltsc2022"), Some("fallback")).expect("valid");
    assert_eq!(v.namespace, NS);
}

#[test]
fn invalid_name() {
    let mut a = app("image: iis:ltsc2022");
    a.metadata.name = Some("Web_App".into());
    let e = only_error_of(&a, "InvalidName", "metadata.name");
    assert_eq!(e, ValidationError::InvalidName("Web_App".into()));
    assert!(e.to_string().contains("\"Web_App\""), "{e}");

    a.metadata.name = Some("a".repeat(64));
    assert_eq!(only_error_of(&a, "InvalidName", "metadata.name"), ValidationError::InvalidName("a".repeat(64)));

    a.metadata.name = None;
    assert_eq!(only_error_of(&a, "InvalidName", "metadata.name"), ValidationError::InvalidName(String::new()));
}

#[test]
fn empty_image() {
    assert_eq!(only_error("image: ''", "EmptyImage", "spec.image"), ValidationError::EmptyImage);
    assert_eq!(only_error("image: '   '", "EmptyImage", "spec.image"), ValidationError::EmptyImage);
}

#[test]
fn invalid_image() {
    use validate::image::ImageProblem;
    // What the CRD's pattern refuses, the operator refuses too (an app stored under an older CRD),
    // saying what is wrong and what a valid reference looks like.
    let e = only_error("image: registry.example.com/Team/app:1", "InvalidImage", "spec.image");
    assert_eq!(
        e,
        ValidationError::InvalidImage(
            "registry.example.com/Team/app:1".into(),
            ImageProblem::UpperCasePath("Team".into())
        )
    );
    let message = e.to_string();
    assert!(
        message.starts_with("spec.image: \"registry.example.com/Team/app:1\" is not a valid image reference: the repository path has upper-case letters (\"Team\"); write it in lower case"),
        "{message}"
    );
    assert!(message.contains("such as registry.example.com/team/app:1.2-ltsc2022"), "{message}");
    let e = only_error("image: 'registry.example.com/app: 1'", "InvalidImage", "spec.image");
    assert_eq!(e, ValidationError::InvalidImage("registry.example.com/app: 1".into(), ImageProblem::Whitespace(' ')));
    // What the container runtime refuses beyond the grammar: the CRD lets it through, the
    // operator does not.
    let short_digest = format!("image: 'app@sha256:{}'", "ab".repeat(20));
    let e = only_error(&short_digest, "InvalidImage", "spec.image");
    assert!(e.to_string().contains("a sha256 digest is exactly 64 lower-case hexadecimal digits"), "{e}");
    // Registries with ports, IPs, digests, tags and both are valid.
    for image in [
        "localhost:5000/x",
        "10.0.0.4:5000/team/app:1.0",
        "[fd00::1]:443/app",
        "mcr.microsoft.com/windows/servercore@sha256:3f1b0c8a9d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a",
        "registry.example.com/team/app:1.2-ltsc2022@sha256:3f1b0c8a9d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a",
    ] {
        assert_eq!(valid(&format!("image: '{image}'")).image, image);
    }
}

#[test]
fn invalid_windows_path_of_config() {
    let e = only_error(
        r#"
image: iis:ltsc2022
config:
  mountPath: /inetpub/wwwroot
  files: [{name: Web.config, content: "<configuration/>"}]
"#,
        "InvalidWindowsPath",
        "spec.config.mountPath",
    );
    assert_eq!(
        e,
        ValidationError::InvalidWindowsPath { field: "spec.config.mountPath".into(), path: "/inetpub/wwwroot".into() }
    );
}

#[test]
fn invalid_windows_path_of_volume() {
    let e = only_error(
        r#"
image: iis:ltsc2022
volumes:
  - name: data
    mountPath: 'C:\data\'
    claim: {size: 1Gi}
"#,
        "InvalidWindowsPath",
        "spec.volumes[data].mountPath",
    );
    assert_eq!(
        e,
        ValidationError::InvalidWindowsPath { field: "spec.volumes[data].mountPath".into(), path: r"C:\data\".into() }
    );
}

#[test]
fn invalid_config_key() {
    let e = only_error(
        r#"
image: iis:ltsc2022
config:
  mountPath: 'C:\inetpub\wwwroot'
  files:
    - {name: Web.config, content: "<configuration/>"}
    - {name: 'conf\app.json', content: "{}"}
"#,
        "InvalidConfigKey",
        "spec.config.files",
    );
    assert_eq!(e, ValidationError::InvalidConfigKey(r"conf\app.json".into()));
}

#[test]
fn duplicate_config_file() {
    let e = only_error(
        r#"
image: iis:ltsc2022
config:
  mountPath: 'C:\inetpub\wwwroot'
  files:
    - {name: Web.config, content: "<configuration/>"}
    - {name: app.json, content: "{}"}
    - {name: Web.config, content: "<configuration />"}
"#,
        "DuplicateConfigFile",
        "spec.config.files",
    );
    assert_eq!(e, ValidationError::DuplicateConfigFile("Web.config".into()));
}

#[test]
fn config_file_source() {
    // The CRD refuses both and neither (CEL); validate says the same for what reaches it.
    for file in
        ["{name: Web.config, content: x, secretRef: {name: web-secrets, key: Web.config}}", "{name: Web.config}"]
    {
        let e = only_error(
            &format!("image: iis:ltsc2022\nconfig:\n  mountPath: 'C:\\app'\n  files: [{file}]\n"),
            "ConfigFileSource",
            "spec.config.files[Web.config]",
        );
        assert_eq!(e, ValidationError::ConfigFileSource("Web.config".into()));
    }
    // A name taken by an inline file and a Secret file is a duplicate.
    only_error(
        "image: x\nconfig:\n  mountPath: 'C:\\app'\n  files: [{name: a.config, content: x}, {name: a.config, secretRef: {name: s, key: k}}]\n",
        "DuplicateConfigFile",
        "spec.config.files",
    );
}

#[test]
fn unnamed_override_entry() {
    let e = only_error(
        r#"
image: iis:ltsc2022
podTemplate:
  spec:
    volumes: [{emptyDir: {}}]
"#,
        "UnnamedOverrideEntry",
        "spec.podTemplate.spec.volumes",
    );
    assert_eq!(e, ValidationError::UnnamedOverrideEntry("volumes"));
}

#[test]
fn reserved_volume_name() {
    let e = only_error(
        r#"
image: iis:ltsc2022
volumes:
  - {name: winapp-data, mountPath: 'D:\data', claim: {size: 1Gi}}
"#,
        "ReservedVolumeName",
        "spec.volumes[winapp-data].name",
    );
    assert_eq!(e, ValidationError::ReservedVolumeName("winapp-data".into()));
}

#[test]
fn no_config_files() {
    let e = only_error(
        r#"
image: iis:ltsc2022
config:
  mountPath: 'C:\inetpub\wwwroot'
  files: []
"#,
        "NoConfigFiles",
        "spec.config.files",
    );
    assert_eq!(e, ValidationError::NoConfigFiles);
}

const CREDSPEC: &str = r#"
      account: WebSvc
      domain:
        dnsName: contoso.com
        netBiosName: CONTOSO
        sid: S-1-5-21-1-2-3
        guid: 244818ae-87ac-4fcd-92ec-e79e5252348a
"#;

#[test]
fn gmsa_one_of_neither() {
    let e = only_error("image: iis:ltsc2022\ngmsa: {}\n", "GmsaOneOf", "spec.gmsa");
    assert_eq!(e, ValidationError::GmsaOneOf);
}

#[test]
fn gmsa_one_of_both() {
    let yaml = format!("image: iis:ltsc2022\ngmsa:\n  credentialSpecName: existing\n  credentialSpec:{CREDSPEC}");
    assert_eq!(only_error(&yaml, "GmsaOneOf", "spec.gmsa"), ValidationError::GmsaOneOf);
}

#[test]
fn gmsa_with_host_process() {
    let e = only_error(
        "image: agent:1\ngmsa: {credentialSpecName: existing}\nhostProcess: {}\n",
        "GmsaWithHostProcess",
        "spec.gmsa",
    );
    assert_eq!(e, ValidationError::GmsaWithHostProcess);
}

#[test]
fn runtime_class_with_toleration() {
    let e = only_error(
        "image: x\nwindows: {runtimeClassName: windows-2022, toleration: {key: os, value: windows}}\n",
        "RuntimeClassWithToleration",
        "spec.windows.toleration",
    );
    assert_eq!(e, ValidationError::RuntimeClassWithToleration);
}

#[test]
fn network_policy_with_host_process() {
    let e = only_error(
        "image: agent:1\nnetworkPolicy: {}\nhostProcess: {}\n",
        "NetworkPolicyWithHostProcess",
        "spec.networkPolicy",
    );
    assert_eq!(e, ValidationError::NetworkPolicyWithHostProcess);
}

#[test]
fn claim_larger_than_volume() {
    let e = only_error(
        "image: x\nvolumes:\n  - {name: data, mountPath: 'D:\\data', smb: {source: //fs/share, secretRef: {name: c}, capacity: 100Gi, claimSize: 0.5Ti}}\n",
        "ClaimLargerThanVolume",
        "spec.volumes[data].smb.claimSize",
    );
    assert_eq!(
        e,
        ValidationError::ClaimLargerThanVolume {
            volume: "data".into(),
            claim: "0.5Ti".into(),
            capacity: "100Gi".into()
        }
    );
    // Equal by value in other units is fine.
    valid(
        "image: x\nvolumes:\n  - {name: data, mountPath: 'D:\\data', smb: {source: //fs/share, secretRef: {name: c}, capacity: 1Ti, claimSize: 1024Gi}}\n",
    );
}

#[test]
fn volume_one_of_neither() {
    let e = only_error(
        r#"
image: iis:ltsc2022
volumes:
  - {name: data, mountPath: 'C:\data'}
"#,
        "VolumeOneOf",
        "spec.volumes[data]",
    );
    assert_eq!(e, ValidationError::VolumeOneOf("data".into()));
}

#[test]
fn volume_one_of_both() {
    let e = only_error(
        r#"
image: iis:ltsc2022
volumes:
  - name: data
    mountPath: 'C:\data'
    claim: {size: 1Gi}
    smb: {source: //server/share, secretRef: {name: creds}}
"#,
        "VolumeOneOf",
        "spec.volumes[data]",
    );
    assert_eq!(e, ValidationError::VolumeOneOf("data".into()));
}

#[test]
fn duplicate_volume() {
    let e = only_error(
        r#"
image: iis:ltsc2022
volumes:
  - {name: data, mountPath: 'C:\data', claim: {size: 1Gi}}
  - {name: data, mountPath: 'D:\data', claim: {size: 1Gi}}
"#,
        "DuplicateVolume",
        "spec.volumes",
    );
    assert_eq!(e, ValidationError::DuplicateVolume("data".into()));
}

#[test]
fn duplicate_mount_path_between_volumes_is_case_insensitive() {
    let e = only_error(
        r#"
image: iis:ltsc2022
volumes:
  - {name: a, mountPath: 'C:\Data', claim: {size: 1Gi}}
  - {name: b, mountPath: 'c:\DATA', claim: {size: 1Gi}}
"#,
        "DuplicateMountPath",
        "spec.volumes[b].mountPath",
    );
    assert_eq!(e, ValidationError::DuplicateMountPath("spec.volumes[b].mountPath".into(), r"c:\DATA".into()));
}

#[test]
fn duplicate_mount_path_between_config_file_and_volume() {
    let e = only_error(
        r#"
image: iis:ltsc2022
config:
  mountPath: 'C:\app'
  files: [{name: data, content: x}]
volumes:
  - {name: data, mountPath: 'C:\app\data', claim: {size: 1Gi}}
"#,
        "DuplicateMountPath",
        "spec.volumes[data].mountPath",
    );
    assert_eq!(e, ValidationError::DuplicateMountPath("spec.volumes[data].mountPath".into(), r"C:\app\data".into()));
}

#[test]
fn duplicate_mount_path_between_config_files_differing_in_case() {
    let e = only_error(
        r#"
image: iis:ltsc2022
config:
  mountPath: 'C:\app'
  files: [{name: Web.config, content: a}, {name: web.config, content: b}]
"#,
        "DuplicateMountPath",
        "spec.config.files[web.config]",
    );
    assert_eq!(
        e,
        ValidationError::DuplicateMountPath("spec.config.files[web.config]".into(), r"C:\app\web.config".into())
    );
}

#[test]
fn duplicate_port_name() {
    let e = only_error(
        r#"
image: iis:ltsc2022
ports:
  - {name: http, containerPort: 80}
  - {name: http, containerPort: 8080}
"#,
        "DuplicatePort",
        "spec.ports",
    );
    assert_eq!(e, ValidationError::DuplicatePort("name", "http".into()));
}

#[test]
fn duplicate_port_number() {
    let e = only_error(
        r#"
image: iis:ltsc2022
ports:
  - {name: http, containerPort: 80}
  - {name: alt, containerPort: 80, protocol: TCP}
"#,
        "DuplicatePort",
        "spec.ports",
    );
    assert_eq!(e, ValidationError::DuplicatePort("number", "80".into()));

    // The same number with another protocol is a different port.
    let v = valid(
        r#"
image: dns:1
ports:
  - {name: dns-tcp, containerPort: 53}
  - {name: dns-udp, containerPort: 53, protocol: UDP}
"#,
    );
    assert_eq!(v.ports.len(), 2);
}

#[test]
fn unknown_target_port() {
    let e = only_error(
        r#"
image: iis:ltsc2022
ports: [{name: http, containerPort: 80}]
service:
  ports: [{name: web, port: 80, targetPort: https}]
"#,
        "UnknownTargetPort",
        "spec.service.ports[web].targetPort",
    );
    assert_eq!(e, ValidationError::UnknownTargetPort { port: "web".into(), target: "https".into() });
}

#[test]
fn service_without_ports() {
    let e = only_error("image: iis:ltsc2022\nservice: {}\n", "ServiceWithoutPorts", "spec.service.ports");
    assert_eq!(e, ValidationError::ServiceWithoutPorts);
}

#[test]
fn node_port_on_cluster_ip() {
    let e = only_error(
        r#"
image: iis:ltsc2022
ports: [{name: http, containerPort: 80}]
service:
  ports: [{name: http, port: 80, nodePort: 30080}]
"#,
        "NodePortOnClusterIp",
        "spec.service.ports[http].nodePort",
    );
    assert_eq!(e, ValidationError::NodePortOnClusterIp("http".into()));

    // Explicit ClusterIP is the same; NodePort and LoadBalancer accept node ports.
    let yaml = |t: &str| {
        format!(
            "image: iis:ltsc2022\nports: [{{name: http, containerPort: 80}}]\nservice:\n  type: {t}\n  ports: [{{name: http, port: 80, nodePort: 30080}}]\n"
        )
    };
    only_error(&yaml("ClusterIP"), "NodePortOnClusterIp", "spec.service.ports[http].nodePort");
    assert_eq!(valid(&yaml("NodePort")).service.expect("service").ports[0].node_port, Some(30080));
    assert_eq!(valid(&yaml("LoadBalancer")).service.expect("service").ports[0].node_port, Some(30080));
}

#[test]
fn traffic_policy_on_cluster_ip() {
    let e = only_error(
        r#"
image: iis:ltsc2022
ports: [{name: http, containerPort: 80}]
service: {externalTrafficPolicy: Local}
"#,
        "TrafficPolicyOnClusterIp",
        "spec.service.externalTrafficPolicy",
    );
    assert_eq!(e, ValidationError::TrafficPolicyOnClusterIp);
}

#[test]
fn forbidden_override() {
    let e = only_error(
        "image: iis:ltsc2022\npodTemplate:\n  spec:\n    os: {name: linux}\n",
        "ForbiddenOverride",
        "spec.podTemplate.spec.os",
    );
    assert_eq!(e, ValidationError::ForbiddenOverride("os".into()));
    // Deleting it with null is overriding it too.
    let e = only_error(
        "image: iis:ltsc2022\npodTemplate:\n  spec:\n    os: null\n",
        "ForbiddenOverride",
        "spec.podTemplate.spec.os",
    );
    assert_eq!(e, ValidationError::ForbiddenOverride("os".into()));
}

#[test]
fn host_process_without_host_network() {
    let e = only_error(
        "image: agent:1\nhostProcess: {}\npodTemplate:\n  spec:\n    hostNetwork: false\n",
        "HostProcessWithoutHostNetwork",
        "spec.podTemplate.spec.hostNetwork",
    );
    assert_eq!(e, ValidationError::HostProcessWithoutHostNetwork);
    // Without hostProcess, hostNetwork false is allowed.
    valid("image: agent:1\npodTemplate:\n  spec:\n    hostNetwork: false\n");
}

#[test]
fn override_not_allowed() {
    // A hostPath of C:\ is refused by the default policy, with the field path and the rule.
    let hostile = "image: iis:ltsc2022\npodTemplate:\n  spec:\n    volumes: [{name: host, hostPath: {path: 'C:\\'}}]\n";
    let e = only_error(hostile, "OverrideNotAllowed", "spec.podTemplate.spec.volumes[name=host].hostPath");
    let ValidationError::OverrideNotAllowed(refusal) = &e else { unreachable!("variant checked above") };
    assert_eq!(refusal.rule, Rule::HostPath);
    assert!(e.to_string().contains("allow rule host-path"), "{e}");
    let errors = validate::validate(&app(hostile), None).expect_err("refused");
    assert!(errors.only_policy_refusals());
    // Allowed once the platform team names the rule.
    let v = validate::validate_with(&app(hostile), None, &Policy::allowing([Rule::HostPath])).expect("allowed");
    assert!(v.pod_spec_overrides.is_some());

    // Deleting the Windows selector or the gMSA settings with null is refused too.
    for (field, yaml) in [
        ("spec.podTemplate.spec.nodeSelector", "nodeSelector: null"),
        ("spec.podTemplate.spec.securityContext", "securityContext: null"),
        ("spec.podTemplate.spec.tolerations", "tolerations: null"),
    ] {
        only_error(&format!("image: x\npodTemplate:\n  spec:\n    {yaml}\n"), "OverrideNotAllowed", field);
    }
    // So are a privileged container, host namespaces, another ServiceAccount and credspec.
    for (field, yaml) in [
        (
            "spec.podTemplate.spec.containers[name=app].securityContext.privileged",
            "containers: [{name: app, securityContext: {privileged: true}}]",
        ),
        ("spec.podTemplate.spec.hostPID", "hostPID: true"),
        ("spec.podTemplate.spec.serviceAccountName", "serviceAccountName: admin"),
        (
            "spec.podTemplate.spec.securityContext.windowsOptions.gmsaCredentialSpecName",
            "securityContext: {windowsOptions: {gmsaCredentialSpecName: domain-admin}}",
        ),
        ("spec.podTemplate.spec.tolerations[0]", "tolerations: [{operator: Exists}]"),
        ("spec.podTemplate.spec.nodeSelector[kubernetes.io/os]", "nodeSelector: {kubernetes.io/os: linux}"),
    ] {
        only_error(&format!("image: x\npodTemplate:\n  spec:\n    {yaml}\n"), "OverrideNotAllowed", field);
    }

    // With another error, both are reported and the app is not a pure policy refusal.
    let errors =
        validate::validate(&app(&hostile.replace("image: iis:ltsc2022", "image: ''")), None).expect_err("invalid");
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert!(!errors.only_policy_refusals());
}

#[test]
fn selector_label_override() {
    let e = only_error(
        r#"
image: iis:ltsc2022
podTemplate:
  metadata:
    labels: {app.kubernetes.io/instance: other, team: payments}
"#,
        "SelectorLabelOverride",
        "spec.podTemplate.metadata.labels",
    );
    assert_eq!(e, ValidationError::SelectorLabelOverride("app.kubernetes.io/instance".into()));
    let e = only_error(
        "image: iis:ltsc2022\npodTemplate:\n  metadata:\n    labels: {app.kubernetes.io/name: other}\n",
        "SelectorLabelOverride",
        "spec.podTemplate.metadata.labels",
    );
    assert_eq!(e, ValidationError::SelectorLabelOverride("app.kubernetes.io/name".into()));
}

#[test]
fn invalid_pod_spec_override() {
    let e = only_error(
        "image: iis:ltsc2022\npodTemplate:\n  spec:\n    terminationGracePeriodSeconds: soon\n",
        "InvalidPodSpecOverride",
        "spec.podTemplate.spec",
    );
    let ValidationError::InvalidPodSpecOverride(detail) = e else { unreachable!("variant checked above") };
    assert!(!detail.is_empty());

    // A sidecar that is not a container object is refused too.
    only_error(
        "image: iis:ltsc2022\npodTemplate:\n  spec:\n    containers: [{name: sidecar, ports: 80}]\n",
        "InvalidPodSpecOverride",
        "spec.podTemplate.spec",
    );
}

#[test]
fn invalid_service_account_name() {
    let e = only_error(
        "image: iis:ltsc2022\nserviceAccountName: Web_Runner\n",
        "InvalidServiceAccountName",
        "spec.serviceAccountName",
    );
    assert_eq!(e, ValidationError::InvalidServiceAccountName("Web_Runner".into()));
    only_error("image: x\nserviceAccountName: runner-\n", "InvalidServiceAccountName", "spec.serviceAccountName");
    only_error("image: x\nserviceAccountName: ''\n", "InvalidServiceAccountName", "spec.serviceAccountName");
}

// ---------------------------------------------------------------------------------------------
// Valid apps and resolved defaults.
// ---------------------------------------------------------------------------------------------

#[test]
fn minimal_app_is_valid() {
    let v = valid("image: mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022");
    assert_eq!(v.name, NAME);
    assert_eq!(v.namespace, NS);
    assert_eq!(v.uid, None);
    assert!(!v.suspend);
    assert_eq!(v.image, "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022");
    assert_eq!(v.service_account, ServiceAccountChoice::Managed(NAME.into()));
    assert_eq!(v.service_account.name(), NAME);
    assert_eq!(v.service, None);
    assert_eq!(v.config, None);
    assert_eq!(v.gmsa, None);
    assert_eq!(v.host_process_user, None);
    assert_eq!(v.prometheus, None);
    assert!(v.volumes.is_empty());
    assert_eq!(v.placement.version, None);
    assert!(v.placement.node_selector.is_empty());
    assert!(v.placement.tolerations.is_empty());
    assert_eq!(v.pod_spec_overrides, None);
}

#[test]
fn uid_and_suspend_are_carried() {
    let mut a = app("image: x\nsuspend: true\n");
    a.metadata.uid = Some("0b5c6f1e-uid".into());
    let v = validate::validate(&a, None).expect("valid");
    assert_eq!(v.uid.as_deref(), Some("0b5c6f1e-uid"));
    assert!(v.suspend);
}

#[test]
fn defaults_are_resolved() {
    let v = valid(
        r#"
image: agent:1
hostProcess: {}
monitoring: {prometheus: {}}
volumes:
  - name: share
    mountPath: 'D:\share'
    smb: {source: //server/share, secretRef: {name: creds}}
  - name: files
    mountPath: 'D:\files'
    claim: {size: 5Gi}
"#,
    );
    assert_eq!(v.replicas, Some(1));
    assert_eq!(v.replicas, Some(defaults::REPLICAS));
    assert_eq!(v.max_surge, IntOrString::String("25%".into()));
    assert_eq!(v.max_unavailable, IntOrString::Int(0));
    assert_eq!(v.progress_deadline_seconds, 900);
    // Every provider's Windows pool convention: kubeadm/EKS, OpenShift, GKE.
    assert_eq!(
        v.placement.pool_taints,
        vec![
            PoolTaint { key: "os".into(), value: "windows".into() },
            PoolTaint { key: "os".into(), value: "Windows".into() },
            PoolTaint { key: "node.kubernetes.io/os".into(), value: "windows".into() },
        ]
    );
    assert_eq!(v.host_process_user.as_deref(), Some(r"NT AUTHORITY\SYSTEM"));
    assert_eq!(v.prometheus, Some((9182, "/metrics".into())));
    assert_eq!(v.volumes.len(), 2);
    assert!(!v.volumes[0].read_only);
    match &v.volumes[0].source {
        VolumeSource::Smb { source, secret_name, capacity, claim_size, mount_options } => {
            assert_eq!(source, "//server/share");
            assert_eq!(secret_name, "creds");
            assert_eq!(capacity, &Quantity("100Gi".into()));
            assert_eq!(claim_size, capacity, "the claim asks for the whole volume by default");
            assert!(mount_options.is_empty());
        }
        other => panic!("expected an SMB volume, got {other:?}"),
    }
    match &v.volumes[1].source {
        VolumeSource::Claim { storage_class_name, size, access_modes, retention } => {
            assert_eq!(retention, &winapp_operator::api::RetentionPolicy::Retain, "claims are kept by default");
            assert_eq!(storage_class_name, &None);
            assert_eq!(size, &Quantity("5Gi".into()));
            assert_eq!(access_modes, &vec![AccessMode::ReadWriteMany]);
        }
        other => panic!("expected a claim volume, got {other:?}"),
    }
}

#[test]
fn given_values_replace_defaults() {
    let v = valid(
        r#"
image: agent:1
replicas: 3
rollout: {maxSurge: 1, maxUnavailable: "10%", progressDeadlineSeconds: 1800}
windows:
  version: ltsc2025
  toleration: {key: pool, value: win}
hostProcess: {runAsUserName: 'NT AUTHORITY\LOCAL SERVICE'}
monitoring: {prometheus: {port: 9100, path: /stats}}
serviceAccountName: runner
volumes:
  - name: share
    mountPath: 'D:\share'
    readOnly: true
    smb: {source: //server/share, secretRef: {name: creds}, capacity: 2Ti, claimSize: 500Gi, mountOptions: [vers=3.0]}
  - name: files
    mountPath: 'D:\files'
    claim: {size: 5Gi, storageClassName: azurefile, accessModes: [ReadWriteOnce, ReadOnlyMany]}
"#,
    );
    assert_eq!(v.replicas, Some(3));
    assert_eq!(v.max_surge, IntOrString::Int(1));
    assert_eq!(v.max_unavailable, IntOrString::String("10%".into()));
    assert_eq!(v.progress_deadline_seconds, 1800);
    assert_eq!(v.placement.version, Some(WindowsVersion::Ltsc2025));
    assert_eq!(v.placement.pool_taints, vec![PoolTaint { key: "pool".into(), value: "win".into() }]);
    assert_eq!(v.host_process_user.as_deref(), Some(r"NT AUTHORITY\LOCAL SERVICE"));
    assert_eq!(v.prometheus, Some((9100, "/stats".into())));
    assert_eq!(v.service_account, ServiceAccountChoice::Existing("runner".into()));
    assert!(v.volumes[0].read_only);
    assert_eq!(
        v.volumes[0].source,
        VolumeSource::Smb {
            source: "//server/share".into(),
            secret_name: "creds".into(),
            capacity: Quantity("2Ti".into()),
            claim_size: Quantity("500Gi".into()),
            mount_options: vec!["vers=3.0".into()],
        }
    );
    assert_eq!(
        v.volumes[1].source,
        VolumeSource::Claim {
            storage_class_name: Some("azurefile".into()),
            size: Quantity("5Gi".into()),
            access_modes: vec![AccessMode::ReadWriteOnce, AccessMode::ReadOnlyMany],
            retention: winapp_operator::api::RetentionPolicy::Retain,
        }
    );
}

#[test]
fn autoscaled_leaves_replicas_to_the_hpa() {
    assert_eq!(valid("image: x\nautoscaled: true\n").replicas, None);
    assert_eq!(valid("image: x\nautoscaled: true\nreplicas: 4\n").replicas, None);
    assert_eq!(valid("image: x\nautoscaled: false\nreplicas: 4\n").replicas, Some(4));
    assert_eq!(valid("image: x\nreplicas: 0\n").replicas, Some(0));
}

#[test]
fn gmsa_generated_and_existing() {
    let v = valid(&format!("image: x\ngmsa:\n  credentialSpec:{CREDSPEC}"));
    let g = v.gmsa.expect("gmsa");
    assert_eq!(g.credential_spec_name, "winapp.shop.web");
    let generated = g.generated.expect("generated credspec");
    assert_eq!(generated.account, "WebSvc");
    assert_eq!(generated.domain.net_bios_name, "CONTOSO");

    let v = valid("image: x\ngmsa: {credentialSpecName: webapp1}\n");
    let g = v.gmsa.expect("gmsa");
    assert_eq!(g.credential_spec_name, "webapp1");
    assert_eq!(g.generated, None);
}

#[test]
fn service_ports_are_resolved() {
    let v = valid(
        r#"
image: x
ports:
  - {name: http, containerPort: 80}
  - {name: syslog, containerPort: 514, protocol: UDP}
service: {}
"#,
    );
    let s = v.service.expect("service");
    assert_eq!(s.type_, ServiceType::ClusterIP);
    assert_eq!(
        s.ports,
        vec![
            ServicePort {
                name: "http".into(),
                port: 80,
                target_port: IntOrString::String("http".into()),
                node_port: None,
                protocol: Protocol::Tcp,
            },
            ServicePort {
                name: "syslog".into(),
                port: 514,
                target_port: IntOrString::String("syslog".into()),
                node_port: None,
                protocol: Protocol::Udp,
            },
        ]
    );

    let v = valid(
        r#"
image: x
ports: [{name: http, containerPort: 8080}]
service:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports:
    - {name: http, port: 80}
    - {name: admin, port: 9000}
    - {name: alt, port: 81, targetPort: 8081}
    - {name: named, port: 82, targetPort: http}
"#,
    );
    let s = v.service.expect("service");
    assert_eq!(s.type_, ServiceType::LoadBalancer);
    let targets: Vec<_> = s.ports.iter().map(|p| p.target_port.clone()).collect();
    assert_eq!(
        targets,
        vec![
            IntOrString::String("http".into()),
            IntOrString::Int(9000),
            IntOrString::Int(8081),
            IntOrString::String("http".into()),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Probes.
// ---------------------------------------------------------------------------------------------

fn tcp_port(p: &k8s_openapi::api::core::v1::Probe) -> IntOrString {
    p.tcp_socket.as_ref().expect("a TCP probe").port.clone()
}

#[test]
fn default_probes_when_a_port_is_named_http() {
    let v = valid("image: x\nports: [{name: http, containerPort: 80}]\n");
    let liveness = v.probes.liveness.expect("default liveness probe");
    let readiness = v.probes.readiness.expect("default readiness probe");
    let startup = v.probes.startup.expect("default startup probe");
    for p in [&liveness, &readiness, &startup] {
        assert_eq!(tcp_port(p), IntOrString::String("http".into()));
        assert_eq!(p.http_get, None);
        assert_eq!(p.timeout_seconds, Some(5));
    }
    assert_eq!((liveness.period_seconds, liveness.failure_threshold), (Some(20), Some(3)));
    assert_eq!((readiness.period_seconds, readiness.failure_threshold), (Some(10), Some(3)));
    // Ten minutes for IIS to start.
    assert_eq!((startup.period_seconds, startup.failure_threshold), (Some(10), Some(60)));
}

#[test]
fn no_default_probes_without_an_http_port() {
    let v = valid("image: x\nports: [{name: web, containerPort: 80}]\n");
    assert_eq!((v.probes.liveness, v.probes.readiness, v.probes.startup), (None, None, None));
    let v = valid("image: x\n");
    assert_eq!((v.probes.liveness, v.probes.readiness, v.probes.startup), (None, None, None));
}

#[test]
fn no_default_probes_when_defaults_false() {
    let v = valid("image: x\nports: [{name: http, containerPort: 80}]\nprobes: {defaults: false}\n");
    assert_eq!((v.probes.liveness, v.probes.readiness, v.probes.startup), (None, None, None));
}

#[test]
fn given_probes_are_kept() {
    let v = valid(
        r#"
image: x
ports: [{name: http, containerPort: 80}]
probes:
  liveness:
    httpGet: {path: /healthz, port: 80}
    periodSeconds: 7
"#,
    );
    let liveness = v.probes.liveness.expect("liveness");
    assert_eq!(liveness.http_get.as_ref().map(|h| h.path.as_deref()), Some(Some("/healthz")));
    assert_eq!(liveness.period_seconds, Some(7));
    assert_eq!(liveness.tcp_socket, None);
    // The unset ones still get defaults.
    assert_eq!(tcp_port(&v.probes.readiness.expect("readiness")), IntOrString::String("http".into()));
    assert_eq!(v.probes.startup.expect("startup").failure_threshold, Some(60));

    // defaults: false keeps the given ones and adds nothing.
    let v = valid(
        r#"
image: x
ports: [{name: http, containerPort: 80}]
probes:
  defaults: false
  readiness: {tcpSocket: {port: 8080}}
"#,
    );
    assert_eq!(v.probes.liveness, None);
    assert_eq!(v.probes.startup, None);
    assert_eq!(tcp_port(&v.probes.readiness.expect("readiness")), IntOrString::Int(8080));
}

// ---------------------------------------------------------------------------------------------
// Config checksum.
// ---------------------------------------------------------------------------------------------

/// `config.files` as YAML: a flow list of `{name, content}` (JSON strings are YAML scalars).
fn files_yaml(files: &[(&str, &str)]) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("string serializes");
    let items: Vec<String> =
        files.iter().map(|(name, content)| format!("{{name: {}, content: {}}}", q(name), q(content))).collect();
    format!("[{}]", items.join(", "))
}

fn checksum(files: &[(&str, &str)]) -> String {
    let files_yaml = files_yaml(files);
    valid(&format!("image: x\nconfig:\n  mountPath: 'C:\\inetpub\\wwwroot'\n  files: {files_yaml}\n"))
        .config
        .expect("config")
        .checksum
}

#[test]
fn config_checksum_tracks_content() {
    let base = checksum(&[("Web.config", "<configuration/>"), ("app.json", "{}")]);
    assert_eq!(base.len(), 64, "SHA-256 hex: {base}");
    assert!(base.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{base}");
    // Stable: the same files (listed in another order) give the same checksum.
    assert_eq!(base, checksum(&[("Web.config", "<configuration/>"), ("app.json", "{}")]));
    assert_eq!(base, checksum(&[("app.json", "{}"), ("Web.config", "<configuration/>")]));
    // Any content change, rename, or added file changes it.
    assert_ne!(base, checksum(&[("Web.config", "<configuration />"), ("app.json", "{}")]));
    assert_ne!(base, checksum(&[("Web.config", "<configuration/>"), ("app.json", "{ }")]));
    assert_ne!(base, checksum(&[("web.config", "<configuration/>"), ("app.json", "{}")]));
    assert_ne!(base, checksum(&[("Web.config", "<configuration/>"), ("app.json", "{}"), ("x.txt", "")]));
    // Moving bytes between name and content is a change too.
    assert_ne!(checksum(&[("ab", "c")]), checksum(&[("a", "bc")]));
}

#[test]
fn config_settings_are_carried() {
    let v = valid("image: x\nconfig:\n  mountPath: 'C:\\app'\n  files: [{name: Web.config, content: \"<c/>\"}]\n");
    let c = v.config.expect("config");
    assert_eq!(c.mount_path, r"C:\app");
    assert_eq!(c.files.get("Web.config").map(String::as_str), Some("<c/>"));
}

// ---------------------------------------------------------------------------------------------
// Several errors at once.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_error_is_reported_in_spec_order() {
    let mut a = app(r#"
image: ''
ports:
  - {name: http, containerPort: 80}
  - {name: http, containerPort: 81}
serviceAccountName: Bad_Name
config:
  mountPath: 'C:\app'
  files: [{name: 'a/b', content: x}]
gmsa: {}
volumes:
  - {name: data, mountPath: 'data'}
podTemplate:
  metadata:
    labels: {app.kubernetes.io/name: x}
  spec:
    os: {name: windows}
"#);
    a.metadata.namespace = None;
    let errors = errors_of(&a, None);
    assert_eq!(
        errors,
        vec![
            ValidationError::MissingNamespace,
            ValidationError::EmptyImage,
            ValidationError::DuplicatePort("name", "http".into()),
            ValidationError::InvalidServiceAccountName("Bad_Name".into()),
            ValidationError::InvalidConfigKey("a/b".into()),
            ValidationError::GmsaOneOf,
            ValidationError::InvalidWindowsPath { field: "spec.volumes[data].mountPath".into(), path: "data".into() },
            ValidationError::VolumeOneOf("data".into()),
            ValidationError::SelectorLabelOverride("app.kubernetes.io/name".into()),
            ValidationError::ForbiddenOverride("os".into()),
        ]
    );
    let message = ValidationErrors(errors.clone()).to_string();
    let joined: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(message, joined.join("; "));
    assert!(message.starts_with("metadata.namespace: missing"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Helper predicates.
// ---------------------------------------------------------------------------------------------

#[test]
fn windows_paths() {
    let long_ok = format!(r"C:\{}", "a".repeat(237));
    let too_long = format!(r"C:\{}", "a".repeat(238));
    assert_eq!(long_ok.len(), 240);
    let cases: &[(&str, bool)] = &[
        (r"C:\", true),
        (r"C:\inetpub\wwwroot", true),
        (r"c:\data", true),
        (r"D:\shared", true),
        (r"C:\Program Files\My App", true),
        (r"C:\app\Web.config", true),
        // `.` and `..` segments would let two spellings name one directory.
        (r"C:\..", false),
        (r"C:\app\..\data", false),
        (r"C:\app\.\data", false),
        (r"C:\app\.hidden", true),
        (&long_ok, true),
        (&too_long, false),
        ("", false),
        ("C", false),
        ("C:", false),
        (r"C:inetpub", false),
        (r"C:\inetpub\", false),
        (r"C:\inetpub\wwwroot\", false),
        (r"C:\\", false),
        (r"C:\a\\b", false),
        ("C:/inetpub", false),
        ("C:/", false),
        (r"C:\inetpub/wwwroot", false),
        ("/var/www", false),
        (r"\inetpub", false),
        (r"\\server\share", false),
        (r"1:\data", false),
        (r"CC:\data", false),
        (r"C:\a:b", false),
        (r"C:\a*b", false),
        (r"C:\a?b", false),
        (r#"C:\a"b"#, false),
        (r"C:\a<b", false),
        (r"C:\a>b", false),
        (r"C:\a|b", false),
    ];
    for (path, expected) in cases {
        assert_eq!(is_windows_path(path), *expected, "is_windows_path({path:?})");
    }
}

#[test]
fn config_keys() {
    let cases: &[(&str, bool)] = &[
        ("Web.config", true),
        ("appsettings.Production.json", true),
        ("_secret", true),
        ("a-b_c.d", true),
        ("1.txt", true),
        ("a..b", true),
        (&"a".repeat(253), true),
        (&"a".repeat(254), false),
        ("", false),
        (".hidden", false),
        ("..", false),
        ("-x", false),
        ("a/b", false),
        (r"a\b", false),
        ("../Web.config", false),
        ("a b", false),
        ("a:b", false),
        ("Wéb.config", false),
    ];
    for (key, expected) in cases {
        assert_eq!(is_config_key(key), *expected, "is_config_key({key:?})");
    }
}

#[test]
fn dns1035_labels() {
    let cases: &[(&str, bool)] = &[
        ("web", true),
        ("a", true),
        ("web-1", true),
        ("a-b-c", true),
        ("a--b", true),
        (&"a".repeat(63), true),
        (&"a".repeat(64), false),
        ("", false),
        ("1web", false),
        ("Web", false),
        ("weB", false),
        ("web-", false),
        ("-web", false),
        ("web.app", false),
        ("web_app", false),
        ("web app", false),
    ];
    for (label, expected) in cases {
        assert_eq!(is_dns1035_label(label), *expected, "is_dns1035_label({label:?})");
    }
}

#[test]
fn powers_beyond_the_namespace_are_not_allowed_by_default_and_name_their_field() {
    let tenant = app(
        "image: registry.example.com/x:1\nnodeAgent: true\nhostProcess: {}\napiAccess: true\nwindows: {tolerations: [{operator: Exists}]}\n",
    );
    let errors = validate::validate(&tenant, None).expect_err("refused by default");
    let fields: Vec<(&str, String)> = errors
        .0
        .iter()
        .map(|e| match e {
            ValidationError::NotAllowed(r) => (variant(e), r.path.clone()),
            other => panic!("only policy refusals expected, got {other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("NotAllowed", "spec.nodeAgent".to_owned()),
            ("NotAllowed", "spec.hostProcess".to_owned()),
            ("NotAllowed", "spec.windows.tolerations[0]".to_owned())
        ]
    );
    assert!(errors.only_policy_refusals() && errors.refuses_spec_fields());
    let msg = errors.to_string();
    for words in ["rule node-agent", "rule host-process", "rule tolerate-all", "winapp.dev/allow"] {
        assert!(msg.contains(words), "{words}: {msg}");
    }
    // Granted, it validates; a pod template refusal alone is not a refusal of the spec's fields.
    let policy = Policy::allowing([Rule::NodeAgent, Rule::HostProcess, Rule::TolerateAll]);
    assert!(validate::validate_with(&tenant, None, &policy).is_ok());
    let override_only =
        validate::validate(&app("image: x\npodTemplate: {spec: {hostPID: true}}\n"), None).expect_err("refused");
    assert!(override_only.only_policy_refusals() && !override_only.refuses_spec_fields());
}

#[test]
fn shutdown_defaults_to_sixty_seconds_and_resolves_the_iis_drain() {
    let v = valid("image: x\n");
    assert_eq!(v.shutdown.grace_period_seconds, defaults::GRACE_PERIOD_SECONDS);
    assert_eq!(defaults::GRACE_PERIOD_SECONDS, 60, "longer than Kubernetes' 30");
    assert_eq!(v.shutdown.pre_stop, None);
    let v = valid(
        "image: x\nshutdown:\n  gracePeriodSeconds: 120\n  preStop: {iis: {site: Default Web Site, drainSeconds: 60}}\n",
    );
    assert_eq!(v.shutdown.grace_period_seconds, 120);
    assert_eq!(
        v.shutdown.pre_stop,
        Some(validate::PreStopAction::Iis {
            site: Some("Default Web Site".into()),
            delay_seconds: defaults::IIS_DELAY_SECONDS,
            drain_seconds: 60
        })
    );
    let v = valid("image: x\nshutdown: {preStop: {command: [cmd, /c, exit]}}\n");
    assert_eq!(
        v.shutdown.pre_stop,
        Some(validate::PreStopAction::Command(vec!["cmd".into(), "/c".into(), "exit".into()]))
    );
    // podTemplate's grace period, alone, wins over the default (merged last).
    let v = valid("image: x\npodTemplate: {spec: {terminationGracePeriodSeconds: 300}}\n");
    assert_eq!(v.shutdown.grace_period_seconds, 60, "resolved, then overridden by the merge");
}

#[test]
fn shutdown_set_twice() {
    let e = only_error(
        "image: x\nshutdown: {gracePeriodSeconds: 90}\npodTemplate: {spec: {terminationGracePeriodSeconds: 300}}\n",
        "ShutdownSetTwice",
        "spec.podTemplate.spec.terminationGracePeriodSeconds",
    );
    assert!(e.to_string().contains("keep spec.shutdown.gracePeriodSeconds"), "{e}");
    only_error(
        "image: x\nshutdown: {preStop: {command: [a]}}\npodTemplate: {spec: {containers: [{name: app, lifecycle: {preStop: {exec: {command: [b]}}}}]}}\n",
        "ShutdownSetTwice",
        "spec.podTemplate.spec.containers[app].lifecycle.preStop",
    );
    // A sidecar's preStop, or the app container's without shutdown.preStop, is no conflict.
    valid(
        "image: x\nshutdown: {preStop: {command: [a]}}\npodTemplate: {spec: {containers: [{name: side, image: 'side:1', lifecycle: {preStop: {exec: {command: [b]}}}}]}}\n",
    );
    valid(
        "image: x\nshutdown: {gracePeriodSeconds: 90}\npodTemplate: {spec: {containers: [{name: app, lifecycle: {preStop: {exec: {command: [b]}}}}]}}\n",
    );
}

#[test]
fn pre_stop_one_of() {
    for pre_stop in ["{}", "{command: [a], iis: {drainSeconds: 5}}"] {
        let e = only_error(
            &format!("image: x\nshutdown: {{preStop: {pre_stop}}}\n"),
            "PreStopOneOf",
            "spec.shutdown.preStop",
        );
        assert_eq!(e, ValidationError::PreStopOneOf);
    }
}

#[test]
fn drain_past_grace_period() {
    let e = only_error(
        "image: x\nshutdown: {preStop: {iis: {drainSeconds: 55}}}\n",
        "DrainPastGracePeriod",
        "spec.shutdown.preStop.iis.drainSeconds",
    );
    assert_eq!(e, ValidationError::DrainPastGracePeriod { delay: 5, drain: 55, grace: 60 });
    valid("image: x\nshutdown: {preStop: {iis: {drainSeconds: 54}}}\n");
    valid("image: x\nshutdown: {gracePeriodSeconds: 90, preStop: {iis: {drainSeconds: 80, delaySeconds: 0}}}\n");
    // The grace period the pods get is podTemplate's when it sets one.
    let e = only_error(
        "image: x\nshutdown: {preStop: {iis: {drainSeconds: 30}}}\npodTemplate: {spec: {terminationGracePeriodSeconds: 20}}\n",
        "DrainPastGracePeriod",
        "spec.shutdown.preStop.iis.drainSeconds",
    );
    assert_eq!(e, ValidationError::DrainPastGracePeriod { delay: 5, drain: 30, grace: 20 });
}

#[test]
fn the_crd_refuses_what_validate_refuses_of_shutdown() {
    let doc = |spec: &str| -> serde_json::Value {
        let spec: serde_json::Value = serde_saphyr::from_str(spec).expect("spec YAML");
        serde_json::json!({"apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp",
            "metadata": {"name": "web", "namespace": "shop"}, "spec": spec})
    };
    let refused = |spec: &str| -> String {
        let errors = winapp_operator::schema::check(&doc(spec)).expect_err(spec);
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    };
    let m = refused("image: x\nshutdown: {preStop: {iis: {drainSeconds: 55}}}\n");
    assert!(m.contains("must be less than gracePeriodSeconds (default 60)"), "{m}");
    let m = refused(
        "image: x\nshutdown: {preStop: {iis: {drainSeconds: 100, delaySeconds: 0}}, gracePeriodSeconds: 100}\n",
    );
    assert!(m.contains("drainSeconds"), "{m}");
    let m = refused("image: x\nshutdown: {preStop: {command: [a], iis: {drainSeconds: 5}}}\n");
    assert!(m.contains("exactly one of command and iis"), "{m}");
    let m = refused(
        "image: x\nshutdown: {gracePeriodSeconds: 90}\npodTemplate: {spec: {terminationGracePeriodSeconds: 300}}\n",
    );
    assert!(m.contains("the grace period is set twice"), "{m}");
    let m = refused("image: x\nshutdown: {gracePeriodSeconds: 0}\n");
    assert!(m.contains("gracePeriodSeconds"), "{m}");
    let m = refused("image: x\nshutdown: {preStop: {iis: {site: \"it's\", drainSeconds: 5}}}\n");
    assert!(m.contains("site"), "a quote in the site name: {m}");
    winapp_operator::schema::check(&doc(
        "image: x\nshutdown: {gracePeriodSeconds: 90, preStop: {iis: {site: Default Web Site, drainSeconds: 80}}}\n",
    ))
    .expect("the example's shape passes");
    // The CEL rule's defaults are validate's.
    assert_eq!((defaults::GRACE_PERIOD_SECONDS, defaults::IIS_DELAY_SECONDS), (60, 5));
}
