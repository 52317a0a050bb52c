//! `WindowsApp` -> [`ValidatedApp`]: cross-field rules, resolved defaults, typed errors.
//!
//! The CRD schema refuses most bad input at the API server; this step checks the same rules for
//! offline `render`, plus the ones a schema cannot express (references between fields, mount path
//! clashes, the pod-template escape hatch). Builders accept only a [`ValidatedApp`].

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, LocalObjectReference, Probe, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::api::{
    AccessMode, AppPort, CredentialSpec, ImagePullPolicy, PoolTaint, Protocol, RetentionPolicy, ServiceType,
    TrafficPolicy, WindowsApp, WindowsAppSpec, WindowsVersion,
};
use crate::policy::Policy;
pub use shutdown::{PreStopAction, ShutdownSettings};

mod build_tag;
mod disruption;
mod identity;
pub mod image;
pub mod logging;
mod overrides;
mod placement;
mod resolve;
mod service;
mod shutdown;
mod storage;
mod warmup;
mod workload;

pub use disruption::DisruptionPolicy;
pub use placement::BuildMigration;
pub use warmup::{WarmUpDefault, WarmUpSettings};

/// Defaults, in one place so that the README's API reference can quote them.
pub mod defaults {
    pub const REPLICAS: i32 = 1;
    pub const MAX_SURGE: &str = "25%";
    pub const MAX_UNAVAILABLE: i32 = 0;
    /// Node agents roll one node at a time: a host-network agent cannot run twice on a node.
    pub const NODE_AGENT_MAX_UNAVAILABLE: i32 = 1;
    pub const PROGRESS_DEADLINE_SECONDS: i32 = 900;
    /// Longer than Kubernetes' 30: IIS and ASP.NET finish their requests, and a Windows
    /// container is slow to stop. `spec.shutdown`'s CEL rule repeats it.
    pub const GRACE_PERIOD_SECONDS: i64 = 60;
    /// The IIS drain's wait for the endpoints to go before the site stops (the CEL rule repeats it).
    pub const IIS_DELAY_SECONDS: i64 = 5;
    pub const POOL_TAINT_KEY: &str = "os";
    pub const POOL_TAINT_VALUE: &str = "windows";
    /// The Windows pool taints tolerated when `spec.windows.toleration` is unset, one per
    /// convention: kubeadm and the EKS guide (`os=windows`), OpenShift's Windows Machine Config
    /// Operator (`os=Windows`), GKE (`node.kubernetes.io/os=windows`). AKS taints none.
    pub const POOL_TAINTS: [(&str, &str); 3] =
        [(POOL_TAINT_KEY, POOL_TAINT_VALUE), ("os", "Windows"), ("node.kubernetes.io/os", "windows")];
    pub const HOST_PROCESS_USER: &str = r"NT AUTHORITY\SYSTEM";
    pub const PROMETHEUS_PORT: i32 = 9182;
    pub const PROMETHEUS_PATH: &str = "/metrics";
    pub const SMB_CAPACITY: &str = "100Gi";
    pub const PORTABLE_CCG_VERSION: &str = "1";
    /// Name of the port that gets default probes.
    pub const PROBED_PORT: &str = "http";
    /// How long the warm-up of a new image may take before the app is Stalled: half an hour,
    /// for images of several gigabytes on nodes that pull them at once.
    pub const WARM_UP_DEADLINE_SECONDS: i32 = 1800;
    /// The warm-up pods' container (`--warm-up-pause-image`): the sandbox image of Windows
    /// nodes under containerd, whose manifest list has a variant for each Windows Server build.
    pub const WARM_UP_PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
}

/// One thing wrong with a `WindowsApp`, with the field and what to do.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ValidationError {
    #[error("spec.{0}: a nodeAgent runs one pod on every matching Windows node; remove spec.{0}")]
    NodeAgentWith(&'static str),
    #[error(
        "spec.warmUp.enabled: not for a {0} app (a nodeAgent's DaemonSet rolls node by node already; a hostProcess image cannot start as an ordinary container); remove spec.warmUp.enabled"
    )]
    WarmUpWith(&'static str),
    #[error("metadata.namespace: missing; set the namespace of the WindowsApp")]
    MissingNamespace,
    #[error(
        "metadata.name: {0:?} must be a DNS-1035 label of at most 63 characters (lower-case letters, digits, '-', starting with a letter); rename the app"
    )]
    InvalidName(String),
    #[error("spec.image: empty; set the container image")]
    EmptyImage,
    #[error("spec.image: {0:?} {desc}", desc = image::describe(.1))]
    InvalidImage(String, image::ImageProblem),
    #[error("{field}: {}", build_tag::describe(image, *tagged, *version))]
    ImageBuildMismatch { field: String, image: String, tagged: WindowsVersion, version: WindowsVersion },
    #[error(
        "{field}: {path:?} must be an absolute Windows path such as C:\\inetpub\\wwwroot (a drive letter, backslashes, no trailing backslash, no . or .. segments, none of * ? : < > | / in names)"
    )]
    InvalidWindowsPath { field: String, path: String },
    #[error(
        "spec.config.files: {0:?} is not a plain file name; use letters, digits, '.', '_' and '-' only, such as Web.config"
    )]
    InvalidConfigKey(String),
    #[error("spec.config.files[{0}]: set exactly one of content and secretRef")]
    ConfigFileSource(String),
    #[error("spec.config.files: the file {0:?} is listed twice; give each file its own name")]
    DuplicateConfigFile(String),
    #[error("spec.config.files: empty; add at least one file or remove spec.config")]
    NoConfigFiles,
    #[error("spec.gmsa: set exactly one of credentialSpecName and credentialSpec")]
    GmsaOneOf,
    #[error(
        "spec.windows.toleration: the RuntimeClass in spec.windows.runtimeClassName brings the pool's tolerations; remove toleration (or add it to the RuntimeClass's scheduling)"
    )]
    RuntimeClassWithToleration,
    #[error("spec.gmsa: hostProcess pods run as a host account and cannot use gMSA; remove gmsa or hostProcess")]
    GmsaWithHostProcess,
    #[error(
        "spec.networkPolicy: hostProcess pods use the host's network, which a NetworkPolicy does not cover; remove networkPolicy or hostProcess"
    )]
    NetworkPolicyWithHostProcess,
    #[error(
        "spec.volumes[{volume}].smb.claimSize: {claim} is more than the volume's capacity {capacity}; a claim cannot bind to a smaller volume: lower claimSize or raise capacity"
    )]
    ClaimLargerThanVolume { volume: String, claim: String, capacity: String },
    #[error("spec.volumes[{0}]: set exactly one of smb and claim")]
    VolumeOneOf(String),
    #[error("spec.volumes: the name {0:?} is used twice; volume names must be unique")]
    DuplicateVolume(String),
    #[error(
        "{0}: the mount path {1:?} is used twice (paths are case-insensitive on Windows); give each mount its own path"
    )]
    DuplicateMountPath(String, String),
    #[error("spec.ports: the {0} {1:?} is used twice; each container port needs its own name and number")]
    DuplicatePort(&'static str, String),
    #[error(
        "spec.service.ports[{port}].targetPort: no container port is named {target:?}; name one in spec.ports or give a number"
    )]
    UnknownTargetPort { port: String, target: String },
    #[error("spec.service.ports: the Service has no ports and spec.ports is empty; list the ports to expose")]
    ServiceWithoutPorts,
    #[error(
        "spec.service.ports[{0}].nodePort: only NodePort and LoadBalancer Services have node ports; remove nodePort or change spec.service.type"
    )]
    NodePortOnClusterIp(String),
    #[error(
        "spec.service.externalTrafficPolicy: applies only to type LoadBalancer or NodePort; remove it or change spec.service.type"
    )]
    TrafficPolicyOnClusterIp,
    #[error(
        "spec.podTemplate.spec.{template}: set twice, here and in spec.shutdown.{shutdown}; keep spec.shutdown.{shutdown} and remove this one"
    )]
    ShutdownSetTwice { template: &'static str, shutdown: &'static str },
    #[error("spec.shutdown.preStop: set exactly one of command and iis")]
    PreStopOneOf,
    #[error(
        "spec.shutdown.preStop.iis.drainSeconds: delaySeconds ({delay}) plus drainSeconds ({drain}) must be less than the grace period ({grace} s), since the kubelet kills the container when it ends; lower drainSeconds or raise spec.shutdown.gracePeriodSeconds"
    )]
    DrainPastGracePeriod { delay: i64, drain: i64, grace: i64 },
    #[error("spec.disruption.{field}: {message}")]
    InvalidDisruption { field: &'static str, message: String },
    #[error("{field}: {message}")]
    InvalidLogging { field: String, message: String },
    #[error("spec.podTemplate.spec.{0}: is set by the operator and may not be overridden; remove it")]
    ForbiddenOverride(String),
    #[error(
        "spec.podTemplate.spec.hostNetwork: hostProcess requires host networking; remove hostNetwork or set it to true"
    )]
    HostProcessWithoutHostNetwork,
    #[error("spec.podTemplate.spec.{0}: every entry needs a name (entries merge by name); add one")]
    UnnamedOverrideEntry(&'static str),
    #[error(
        "spec.volumes[{0}].name: names starting with 'winapp-' are reserved for the operator's own pod volumes; rename the volume"
    )]
    ReservedVolumeName(String),
    #[error("spec.podTemplate.metadata.labels: {0:?} is a selector label owned by the operator; remove it")]
    SelectorLabelOverride(String),
    #[error("spec.podTemplate.spec: not a valid pod spec fragment ({0}); fix the field it names")]
    InvalidPodSpecOverride(String),
    #[error("spec.serviceAccountName: {0:?} is not a valid ServiceAccount name")]
    InvalidServiceAccountName(String),
    /// A `spec.podTemplate` override refused by the platform's policy (see [`crate::policy`]),
    /// not invalid as such.
    #[error(transparent)]
    OverrideNotAllowed(#[from] crate::policy::Refusal),
    /// A field of the spec that reaches beyond the app's namespace (HostProcess, a pod on every
    /// node, another pool's taint, a RuntimeClass, an SMB PersistentVolume) and that the
    /// platform's policy does not grant the app's namespace.
    #[error(transparent)]
    NotAllowed(crate::policy::Refusal),
}

/// Every problem found in one `WindowsApp`, in spec order.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

impl ValidationErrors {
    /// Whether every error is a refusal of the platform's policy (status reason `NotAllowed` or
    /// `OverrideNotAllowed` rather than `InvalidSpec`).
    pub fn only_policy_refusals(&self) -> bool {
        !self.0.is_empty()
            && self
                .0
                .iter()
                .all(|e| matches!(e, ValidationError::OverrideNotAllowed(_) | ValidationError::NotAllowed(_)))
    }

    /// Whether a refusal concerns the spec's own fields (reason `NotAllowed`), not only the pod
    /// template's overrides (reason `OverrideNotAllowed`).
    pub fn refuses_spec_fields(&self) -> bool {
        self.0.iter().any(|e| matches!(e, ValidationError::NotAllowed(_)))
    }
}

/// Which ServiceAccount the pods run as.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceAccountChoice {
    /// The operator creates and owns it.
    Managed(String),
    /// The user's own; the operator only references (and, for gMSA, binds) it.
    Existing(String),
}

impl ServiceAccountChoice {
    pub fn name(&self) -> &str {
        match self {
            ServiceAccountChoice::Managed(n) | ServiceAccountChoice::Existing(n) => n,
        }
    }
}

/// Resolved probes of the container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResolvedProbes {
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
    pub startup: Option<Probe>,
}

/// Resolved Windows placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub version: Option<WindowsVersion>,
    /// The Windows pool taints tolerated (effect NoSchedule).
    pub pool_taints: Vec<PoolTaint>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    /// The RuntimeClass that places the pods (then `pool_taints` is empty).
    pub runtime_class_name: Option<String>,
}

/// A resolved Service port.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePort {
    pub name: String,
    pub port: i32,
    pub target_port: IntOrString,
    pub node_port: Option<i32>,
    pub protocol: Protocol,
}

/// The resolved Service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSettings {
    /// The Service's name (default: the app's).
    pub name: Option<String>,
    pub type_: ServiceType,
    pub ports: Vec<ServicePort>,
    pub external_traffic_policy: Option<TrafficPolicy>,
    pub annotations: BTreeMap<String, String>,
}

/// Config files and the checksum that rolls the pods when any content changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSettings {
    pub mount_path: String,
    /// Inline files: name -> content (the ConfigMap's data).
    pub files: BTreeMap<String, String>,
    /// Files from Secrets: file name -> (Secret, key).
    pub secret_files: BTreeMap<String, (String, String)>,
    /// Files the operator writes (LogMonitor's configuration): key -> (where it is mounted, content).
    pub generated: BTreeMap<String, (String, String)>,
    /// Over the inline contents, the Secret references (not the Secrets' data) and the files
    /// the operator writes.
    pub checksum: String,
    /// `resourceVersion` of each referenced Secret, filled in by the operator before it builds
    /// (empty offline): their hash rolls the pods when a Secret changes.
    pub secret_versions: BTreeMap<String, String>,
}

impl ConfigSettings {
    /// The Secrets the config files come from.
    pub fn secret_names(&self) -> std::collections::BTreeSet<&str> {
        self.secret_files.values().map(|(s, _)| s.as_str()).collect()
    }
}

/// Resolved gMSA settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GmsaSettings {
    /// The GMSACredentialSpec the pods use.
    pub credential_spec_name: String,
    /// Set when the operator generates (and owns) that credspec.
    pub generated: Option<CredentialSpec>,
}

/// Where a volume comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeSource {
    Smb {
        source: String,
        secret_name: String,
        capacity: Quantity,
        claim_size: Quantity,
        mount_options: Vec<String>,
    },
    Claim {
        storage_class_name: Option<String>,
        size: Quantity,
        access_modes: Vec<AccessMode>,
        /// What becomes of the claim when the volume or the app goes (default Retain).
        retention: RetentionPolicy,
    },
}

/// A resolved volume.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSettings {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
    pub source: VolumeSource,
}

/// A `WindowsApp` that passed validation, with every default resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedApp {
    pub name: String,
    pub namespace: String,
    /// UID of the WindowsApp, when it came from the API server (owner references need it).
    pub uid: Option<String>,
    pub suspend: bool,
    pub image: String,
    pub image_pull_policy: Option<ImagePullPolicy>,
    pub image_pull_secrets: Vec<LocalObjectReference>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub env_from: Vec<EnvFromSource>,
    /// One pod per matching Windows node (a DaemonSet) instead of a Deployment.
    pub node_agent: bool,
    /// None when an HPA owns the replica count, or for a node agent.
    pub replicas: Option<i32>,
    /// Whether `spec.replicas` was given (when not, the running count of an existing
    /// Deployment is kept rather than reset to the default).
    pub replicas_explicit: bool,
    pub resources: Option<ResourceRequirements>,
    pub ports: Vec<AppPort>,
    pub probes: ResolvedProbes,
    pub max_surge: IntOrString,
    pub max_unavailable: IntOrString,
    pub progress_deadline_seconds: i32,
    pub shutdown: ShutdownSettings,
    /// The PodDisruptionBudget to build (see `build::disruption`).
    pub disruption: DisruptionPolicy,
    pub service_account: ServiceAccountChoice,
    /// Whether the pods get a Kubernetes API token.
    pub api_access: bool,
    pub placement: Placement,
    pub migration: Option<BuildMigration>, // the operator's, None offline (see [`BuildMigration`])
    pub service: Option<ServiceSettings>,
    pub config: Option<ConfigSettings>,
    pub network_policy: Option<crate::api::AppNetworkPolicy>,
    pub gmsa: Option<GmsaSettings>,
    /// The host account, when the app runs as HostProcess.
    pub host_process_user: Option<String>,
    pub volumes: Vec<VolumeSettings>,
    /// Prometheus scrape port and path.
    pub prometheus: Option<(i32, String)>,
    pub pod_labels: BTreeMap<String, String>,
    pub pod_annotations: BTreeMap<String, String>,
    /// The app's own labels that every child and the pods carry too (see [`propagates`]).
    pub propagated_labels: BTreeMap<String, String>,
    /// The app's annotations named in [`PROPAGATE_ANNOTATIONS`], for every child and the pods.
    pub propagated_annotations: BTreeMap<String, String>,
    /// Image warm-up before a rollout (see [`WarmUpSettings`]).
    pub warm_up: WarmUpSettings,
    /// The escape hatch, type-checked as a pod spec fragment.
    pub pod_spec_overrides: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Validates a `WindowsApp` and resolves its defaults. `default_namespace` is used when the
/// object has none (offline render of a file without one). Pod template overrides are checked
/// against the default policy (see [`validate_with`]).
pub fn validate(app: &WindowsApp, default_namespace: Option<&str>) -> Result<ValidatedApp, ValidationErrors> {
    validate_with(app, default_namespace, &Policy::default())
}

/// [`validate`], with the pod template overrides checked against `policy`.
pub fn validate_with(
    app: &WindowsApp,
    default_namespace: Option<&str>,
    policy: &Policy,
) -> Result<ValidatedApp, ValidationErrors> {
    let mut errors = Vec::new();
    let checked = check_all(app, default_namespace, policy, &mut errors);
    if !errors.is_empty() {
        return Err(ValidationErrors(errors));
    }
    Ok(resolve::validated(app, checked))
}

/// Every check, in spec order (the order the errors are reported in), with what each resolves.
fn check_all(
    app: &WindowsApp,
    default_namespace: Option<&str>,
    policy: &Policy,
    errors: &mut Vec<ValidationError>,
) -> resolve::Checked {
    let spec = &app.spec;
    let (name, namespace) = name_and_namespace(app, default_namespace, errors);
    check_image(&spec.image, errors);

    service::check_ports(&spec.ports, errors);

    let service_account = identity::service_account(spec.service_account_name.as_ref(), &name, errors);
    let placement = placement::placement(&spec.windows, errors);
    build_tag::check(spec, errors);
    let service = spec.service.as_ref().and_then(|s| service::resolve(s, &spec.ports, errors));

    let mut mounts = storage::Mounts::default();
    let mut config = spec.config.as_ref().map(|c| storage::config(c, &mut mounts, errors));
    let command = logging::logging(spec, &mut config, &mut mounts, errors);

    check_exclusive(spec, errors);
    warmup::check(spec, errors);
    let shutdown = shutdown::shutdown(spec, errors);
    let disruption = disruption::disruption(spec, errors);

    let gmsa =
        spec.gmsa.as_ref().and_then(|g| identity::gmsa(g, spec.host_process.is_some(), &namespace, &name, errors));
    let volumes = storage::volumes(&spec.volumes, &mut mounts, errors);

    let host_process_user = spec
        .host_process
        .as_ref()
        .map(|h| h.run_as_user_name.clone().unwrap_or_else(|| defaults::HOST_PROCESS_USER.into()));

    let (pod_labels, pod_annotations, pod_spec_overrides) =
        overrides::pod_template(spec.pod_template.as_ref(), host_process_user.is_some(), policy, errors);
    errors.extend(crate::policy::app::check(spec, policy).into_iter().map(ValidationError::NotAllowed));

    resolve::Checked {
        name,
        namespace,
        command,
        shutdown,
        disruption,
        service_account,
        placement,
        service,
        config,
        gmsa,
        volumes,
        host_process_user,
        pod_labels,
        pod_annotations,
        pod_spec_overrides,
    }
}

/// `metadata.name` (a DNS-1035 label) and `metadata.namespace` (or `default_namespace`).
fn name_and_namespace(
    app: &WindowsApp,
    default_namespace: Option<&str>,
    errors: &mut Vec<ValidationError>,
) -> (String, String) {
    let name = app.name_any();
    if !is_dns1035_label(&name) {
        errors.push(ValidationError::InvalidName(name.clone()));
    }
    let namespace = match app.namespace().or_else(|| default_namespace.map(str::to_owned)) {
        Some(ns) => ns,
        None => {
            errors.push(ValidationError::MissingNamespace);
            String::new()
        }
    };
    (name, namespace)
}

/// `spec.image`: set, and an image reference the container runtime can parse.
fn check_image(reference: &str, errors: &mut Vec<ValidationError>) {
    if reference.trim().is_empty() {
        errors.push(ValidationError::EmptyImage);
    } else if let Err(problem) = image::check(reference) {
        errors.push(ValidationError::InvalidImage(reference.to_owned(), problem));
    }
}

/// Fields that exclude each other: a node agent with `replicas` or `autoscaled`, a NetworkPolicy
/// with `hostProcess`.
fn check_exclusive(spec: &WindowsAppSpec, errors: &mut Vec<ValidationError>) {
    let node_agent = spec.node_agent.unwrap_or(false);
    if node_agent && spec.replicas.is_some() {
        errors.push(ValidationError::NodeAgentWith("replicas"));
    }
    if node_agent && spec.autoscaled.unwrap_or(false) {
        errors.push(ValidationError::NodeAgentWith("autoscaled"));
    }
    if spec.network_policy.is_some() && spec.host_process.is_some() {
        errors.push(ValidationError::NetworkPolicyWithHostProcess);
    }
}

/// SHA-256 over the file names and contents, as lower-case hex.
/// SHA-256 over the entries, each length-prefixed.
pub fn checksum(files: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in files {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Annotation of a WindowsApp: a comma-separated list of its annotation keys that its children
/// and pods carry too (labels propagate without it).
pub const PROPAGATE_ANNOTATIONS: &str = "winapp.dev/propagate-annotations";

/// Whether a label or annotation key of the app propagates to its children: every key except
/// those that tools own, whose copies would confuse them: `app.kubernetes.io/*` (the selector and
/// Argo CD's tracking label), `winapp.dev/*`, `*kubernetes.io/*` and `*k8s.io/*`, Argo CD's
/// `*argoproj.io/*`, Flux's `*fluxcd.io/*` and Helm's `helm.sh/*`.
pub fn propagates(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else { return true };
    !(prefix == "winapp.dev"
        || prefix == "helm.sh"
        || ["kubernetes.io", "k8s.io", "argoproj.io", "fluxcd.io"]
            .iter()
            .any(|d| prefix == *d || prefix.ends_with(&format!(".{d}"))))
}

/// The rule of the CRD's metadata.name check.
pub fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn is_dns1123_subdomain(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// The rule of [`crate::api::WINDOWS_PATH_RULE`]: `C:\` or `C:\a\b`, no trailing backslash, no
/// `.` or `..` segments.
pub fn is_windows_path(p: &str) -> bool {
    let b = p.as_bytes();
    if b.len() < 3 || b.len() > 240 || !b[0].is_ascii_alphabetic() || b[1] != b':' || b[2] != b'\\' {
        return false;
    }
    let rest = &p[3..];
    rest.is_empty()
        || rest.split('\\').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && !seg.chars().any(|c| matches!(c, '/' | ':' | '*' | '?' | '"' | '<' | '>' | '|'))
        })
}

/// The rule of the CRD's config file name check.
pub fn is_config_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
}
