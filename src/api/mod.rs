//! The `WindowsApp` custom resource (winapp.dev/v1alpha1): spec, status and the CRD schema rules.
//!
//! Field documentation here becomes the CRD's OpenAPI descriptions, which the README's API
//! reference is checked against. Defaults are applied by [`crate::validate`], not by the schema,
//! so GitOps tools never see fields they did not write.

pub mod bounds;
pub mod reference;
mod status;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, LocalObjectReference, Probe, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use reference::{IMAGE_EXAMPLE, IMAGE_MAX_LENGTH, IMAGE_PATTERN};
pub use status::{ReleasedClaim, WindowsAppStatus};

/// The API group owned by this project.
pub const GROUP: &str = "winapp.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// A Windows application (IIS site, ASP.NET Framework app, .NET service, background worker) and
/// everything it needs on a hybrid Linux + Windows cluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "winapp.dev",
    version = "v1alpha1",
    kind = "WindowsApp",
    namespaced,
    status = "WindowsAppStatus",
    shortname = "wapp",
    category = "windows",
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.availableReplicas"),
    printcolumn(name = "Windows", type_ = "string", json_path = ".spec.windows.version"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS-1035 label of at most 63 characters (lower-case letters, digits and '-', starting with a letter): it names the Deployment and the Service"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.hostProcess) || !has(self.podTemplate) || !has(self.podTemplate.spec) || !has(self.podTemplate.spec.hostNetwork) || self.podTemplate.spec.hostNetwork")
    .message("hostProcess requires host networking: remove podTemplate.spec.hostNetwork or set it to true")
    .field_path(".podTemplate.spec.hostNetwork"))]
#[x_kube(validation = Rule::new("!has(self.hostProcess) || !has(self.gmsa)")
    .message("hostProcess pods run as a host account and cannot use gMSA: remove gmsa or hostProcess")
    .field_path(".gmsa"))]
#[x_kube(validation = Rule::new("!has(self.nodeAgent) || !self.nodeAgent || !has(self.replicas)")
    .message("nodeAgent runs one pod on every matching Windows node: remove replicas")
    .field_path(".replicas"))]
#[x_kube(validation = Rule::new("!has(self.nodeAgent) || !self.nodeAgent || !has(self.autoscaled) || !self.autoscaled")
    .message("nodeAgent runs one pod on every matching Windows node and cannot be autoscaled: remove autoscaled")
    .field_path(".autoscaled"))]
pub struct WindowsAppSpec {
    /// Pause reconciliation: while true the operator applies and deletes nothing and reports
    /// `Reconciling=False` with reason `Suspended`. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// Container image reference, such as `registry.example.com/team/app:1.2-ltsc2022` or
    /// `mcr.microsoft.com/windows/servercore@sha256:<64 hex digits>`: an optional registry host
    /// (with a port, `localhost:5000/app`), a lower-case repository path, then a tag, a digest or
    /// both. Its Windows build must match the nodes' (see `windows.version`).
    #[schemars(length(min = 1, max = IMAGE_MAX_LENGTH), regex(pattern = IMAGE_PATTERN))]
    pub image: String,

    /// Image pull policy: Always, IfNotPresent or Never. Default: Kubernetes' own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets with registry credentials, at most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::IMAGE_PULL_SECRETS), transform = reference::image_pull_secrets)]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Entrypoint (replaces the image's ENTRYPOINT), for example `["powershell", "-Command"]`.
    /// At most 64 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::COMMAND))]
    pub command: Vec<String>,

    /// Arguments (replace the image's CMD). At most 256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::ARGS))]
    pub args: Vec<String>,

    /// Environment variables, at most 256; `valueFrom.secretKeyRef` keeps connection strings in
    /// Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::ENV), transform = reference::env_secret_refs)]
    pub env: Vec<EnvVar>,

    /// Whole Secrets or ConfigMaps as environment variables, at most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::ENV_FROM), transform = reference::env_from_secret_refs)]
    pub env_from: Vec<EnvFromSource>,

    /// Number of pods. Default 1. Ignored (left to the HPA) when `autoscaled` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,

    /// True when a HorizontalPodAutoscaler owns the replica count: the operator then leaves
    /// `replicas` out of what it applies. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaled: Option<bool>,

    /// Run one pod on every matching Windows node (a DaemonSet) instead of `replicas` pods (a
    /// Deployment): for node agents such as windows-exporter or a log shipper, usually with
    /// `hostProcess`. The app is Ready when every node the DaemonSet schedules on runs an
    /// available, updated pod. Cannot be combined with `replicas` or `autoscaled`. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_agent: Option<bool>,

    /// CPU and memory requests and limits of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounds::resources)]
    pub resources: Option<ResourceRequirements>,

    /// Ports the container listens on, at most 64. A port named `http` gets default probes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::PORTS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub ports: Vec<AppPort>,

    /// Liveness, readiness and startup probes. Unset probes get Windows-friendly defaults
    /// when a port is named `http` (a startup probe that allows 10 minutes for IIS to start).
    // Boxed, like `gmsa`: a thousand cached apps would each carry its 1 KB inline, set or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Box<Probes>>,

    /// Rolling update limits. Default maxSurge 25%, maxUnavailable 0 (no capacity lost
    /// while slow-starting Windows pods come up); for a `nodeAgent`, maxSurge 0 and
    /// maxUnavailable 1 (one node at a time, as host-network agents cannot run twice on a node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,

    /// An existing ServiceAccount for the pods. Default: the operator creates one named
    /// after the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub service_account_name: Option<String>,

    /// Mount a Kubernetes API token in the pods (`automountServiceAccountToken`). Default false:
    /// IIS sites and .NET services rarely call the API, and a token in every pod is a credential
    /// waiting to be stolen. Node agents that read the API (log shippers) set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_access: Option<bool>,

    /// Windows node placement.
    #[serde(default)]
    pub windows: WindowsPlacement,

    /// A Service in front of the pods. Omit for background workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<AppService>,

    /// Configuration files (for example Web.config) mounted into the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigFiles>,

    /// Group Managed Service Account identity for the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmsa: Option<Box<Gmsa>>,

    /// Run as a HostProcess container (node agents): every container runs on the host,
    /// with host networking, as the given host account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_process: Option<HostProcess>,

    /// Volumes: SMB shares through the smb.csi.k8s.io driver, or claims from a StorageClass.
    /// At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::VOLUMES))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub volumes: Vec<AppVolume>,

    /// Prometheus scraping of the pods (for example windows-exporter on 9182).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,

    /// A NetworkPolicy for the pods: ingress to the app's ports only from the sources named
    /// here, all other ingress denied. Enforced only where the Windows nodes' network plugin
    /// implements NetworkPolicy (Calico for Windows, Azure Network Policy Manager); others
    /// ignore it. Omit for no policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<AppNetworkPolicy>,

    /// Escape hatch for pod-template fields this API does not model. Applied last, over what
    /// the operator generates: maps are merged, `containers`, `initContainers`, `volumes` and
    /// `tolerations` are merged by name (tolerations by key), other values replace. It may not
    /// change `os`, the selector labels, or turn host networking off for hostProcess apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,
}

/// Image pull policy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// A container port.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppPort {
    /// IANA_SVC_NAME: lower-case letters, digits and '-', at most 15 characters.
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Port number in the container.
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i32,
    /// TCP (default) or UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// Network protocol of a port.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

/// Probes of the container (core/v1 Probe).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Probes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounds::probe)]
    pub liveness: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounds::probe)]
    pub readiness: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounds::probe)]
    pub startup: Option<Probe>,
    /// Set false to get no default probes at all. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<bool>,
}

/// Rolling update limits of the Deployment (or, for a `nodeAgent`, the DaemonSet).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.maxSurge) || !(string(self.maxSurge) in ['0', '0%']) || (has(self.maxUnavailable) && !(string(self.maxUnavailable) in ['0', '0%']))")
    .message("maxSurge and maxUnavailable cannot both be 0 (maxUnavailable defaults to 0): a rollout could never make progress; raise one of them")
    .field_path(".maxSurge"))]
pub struct Rollout {
    /// Extra pods above `replicas` (for a `nodeAgent`: nodes running an old and a new pod at
    /// once) during a rollout (number or percentage). Default 25%; 0 for a `nodeAgent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Pods (for a `nodeAgent`: nodes) that may be unavailable during a rollout (number or
    /// percentage). Default 0; 1 for a `nodeAgent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Seconds a rollout may make no progress before it is reported Stalled. Default 900
    /// (Windows images are large and slow to pull). The Deployment enforces it; for a
    /// `nodeAgent` the operator does, counting from the last change in updated or available pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: Option<i32>,
}

/// Who may connect to the app's ports.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppNetworkPolicy {
    /// Allow every pod of the app's own namespace. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_same_namespace: Option<bool>,
    /// Further sources, at most 16: pods by label (in the app's namespace, or in the namespaces
    /// that `namespaceSelector` selects), or whole namespaces by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::NETWORK_SOURCES))]
    pub from: Vec<NetworkSource>,
}

/// One source of traffic: `namespaceSelector`, `podSelector`, or both (those pods in those
/// namespaces).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.namespaceSelector) || has(self.podSelector)")
    .message("set namespaceSelector, podSelector or both"))]
pub struct NetworkSource {
    /// Namespaces by label, for example `kubernetes.io/metadata.name: ingress-nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounds::label_selector)]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounds::label_selector)]
    pub pod_selector: Option<LabelSelector>,
}

/// Windows Server release of the nodes the pods must run on.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WindowsVersion {
    /// Windows Server 2019, build 10.0.17763.
    #[serde(rename = "ltsc2019")]
    Ltsc2019,
    /// Windows Server 2022, build 10.0.20348.
    #[serde(rename = "ltsc2022")]
    Ltsc2022,
    /// Windows Server 2025, build 10.0.26100.
    #[serde(rename = "ltsc2025")]
    Ltsc2025,
}

impl WindowsVersion {
    /// The value of the `node.kubernetes.io/windows-build` node label for this release.
    pub fn build(self) -> &'static str {
        match self {
            WindowsVersion::Ltsc2019 => "10.0.17763",
            WindowsVersion::Ltsc2022 => "10.0.20348",
            WindowsVersion::Ltsc2025 => "10.0.26100",
        }
    }

    /// The name used in the spec (`ltsc2022`).
    pub fn as_str(self) -> &'static str {
        match self {
            WindowsVersion::Ltsc2019 => "ltsc2019",
            WindowsVersion::Ltsc2022 => "ltsc2022",
            WindowsVersion::Ltsc2025 => "ltsc2025",
        }
    }

    /// Every release, oldest first.
    pub const ALL: [WindowsVersion; 3] = [WindowsVersion::Ltsc2019, WindowsVersion::Ltsc2022, WindowsVersion::Ltsc2025];

    /// The release whose `node.kubernetes.io/windows-build` label is `build`.
    pub fn from_build(build: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.build() == build)
    }
}

/// Where on the Windows node pool the pods may run.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WindowsPlacement {
    /// Windows Server release: ltsc2019, ltsc2022 or ltsc2025. Selects nodes by
    /// `node.kubernetes.io/windows-build`. Default: any Windows node (the image must then run on
    /// every build in the pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<WindowsVersion>,
    /// The taint of the Windows node pool, tolerated with effect NoSchedule. Default: the
    /// conventions of kubeadm and EKS (`os=windows`), OpenShift (`os=Windows`) and GKE
    /// (`node.kubernetes.io/os=windows`), all three; set it to tolerate exactly one other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration: Option<PoolTaint>,
    /// Extra node labels to select, at most 32.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = bounds::max_properties::<{ bounds::NODE_SELECTOR }>)]
    pub node_selector: BTreeMap<String, String>,
    /// Extra tolerations, at most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::TOLERATIONS))]
    pub tolerations: Vec<Toleration>,
    /// A RuntimeClass (node.k8s.io) that places the pods, for platforms that define one per
    /// Windows pool: its `scheduling` node selector and tolerations are added to the pods at
    /// admission, and the operator adds no pool tolerations of its own (so `toleration` may not be
    /// set with it). `kubernetes.io/os: windows`, `version` and `nodeSelector` still apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub runtime_class_name: Option<String>,
}

/// Key and value of the Windows pool's NoSchedule taint.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct PoolTaint {
    #[schemars(length(min = 1))]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// The Service in front of the app.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.externalTrafficPolicy) || (has(self.type) && self.type != 'ClusterIP')")
    .message("externalTrafficPolicy applies only to type LoadBalancer or NodePort")
    .field_path(".externalTrafficPolicy"))]
pub struct AppService {
    /// The Service's name, when clients already know another one (for example `iis-service`).
    /// Default: the app's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: Option<String>,
    /// ClusterIP (default), NodePort or LoadBalancer.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// Service ports, at most 64. Default: one per container port, same number and name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::SERVICE_PORTS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub ports: Vec<AppServicePort>,
    /// Cluster or Local, for LoadBalancer and NodePort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<TrafficPolicy>,
    /// Annotations of the Service (cloud load balancer settings), at most 128.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = bounds::max_properties::<{ bounds::SERVICE_ANNOTATIONS }>)]
    pub annotations: BTreeMap<String, String>,
}

/// Service type.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

/// externalTrafficPolicy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficPolicy {
    Cluster,
    Local,
}

/// One port of the Service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppServicePort {
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Port of the Service.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Container port name or number. Default: the container port of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// Fixed node port (NodePort and LoadBalancer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub node_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// Configuration files, each mounted by subPath at `mountPath\<file name>`. A change of any
/// content rolls the pods (subPath mounts never see ConfigMap updates).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigFiles {
    /// Windows directory, for example `C:\inetpub\wwwroot`.
    #[x_kube(validation = Rule::new(WINDOWS_PATH_RULE).message(WINDOWS_PATH_MESSAGE))]
    #[schemars(length(max = 240))]
    pub mount_path: String,
    /// The files, at most 32, together under 1 MiB (the ConfigMap limit).
    #[schemars(length(min = 1, max = bounds::CONFIG_FILES))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub files: Vec<ConfigFile>,
}

/// One configuration file: its content inline, or a key of a Secret (for files that hold
/// connection strings or keys).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.content) != has(self.secretRef)")
    .message("set exactly one of content (the file inline, kept in a ConfigMap) and secretRef (a key of a Secret in the app's namespace)"))]
pub struct ConfigFile {
    /// A plain file name such as `Web.config`: letters, digits, '.', '_', '-', no path separators.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9_][-._A-Za-z0-9]*$"))]
    pub name: String,
    /// The file's content, copied into the app's ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The file is this key of a Secret in the app's namespace, mounted from the Secret itself:
    /// the operator never reads its data. A change of the Secret rolls the pods when the operator
    /// may watch Secrets (config/components/secret-check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ConfigSecretRef>,
}

/// A key of a Secret in the app's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ConfigSecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// The key in the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// CEL rule for an absolute Windows path on a drive, without characters Windows forbids.
pub const WINDOWS_PATH_RULE: &str = r#"!self.matches('(^|\\\\)\\.\\.?(\\\\|$)') && self.matches('^[A-Za-z]:\\\\([^\\\\/:*?"<>|]+(\\\\[^\\\\/:*?"<>|]+)*)?$')"#;
/// Message of [`WINDOWS_PATH_RULE`].
pub const WINDOWS_PATH_MESSAGE: &str = r"must be an absolute Windows path such as C:\inetpub\wwwroot (a drive letter, backslashes, no trailing backslash, no . or .. segments, none of * ? : < > | / in names)";

/// gMSA identity: exactly one of `credentialSpecName` and `credentialSpec`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.credentialSpecName) != has(self.credentialSpec)")
    .message("set exactly one of gmsa.credentialSpecName (an existing GMSACredentialSpec) and gmsa.credentialSpec (one the operator creates)"))]
pub struct Gmsa {
    /// Name of an existing, cluster-scoped GMSACredentialSpec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credential_spec_name: Option<String>,
    /// The fields of a GMSACredentialSpec that the operator creates and owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<CredentialSpec>,
}

/// What a generated GMSACredentialSpec contains.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSpec {
    /// The gMSA account name (sAMAccountName without the trailing $), for example `WebApp1`.
    #[schemars(length(min = 1, max = 15))]
    pub account: String,
    pub domain: GmsaDomain,
    /// Portable CCG plugin settings for nodes that are not domain-joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_account: Option<HostAccount>,
}

/// The Active Directory domain of the gMSA.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GmsaDomain {
    /// DNS name, for example `contoso.com`.
    #[schemars(length(min = 1, max = 253))]
    pub dns_name: String,
    /// Forest root DNS name. Default: `dnsName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_tree_name: Option<String>,
    /// NetBIOS name, for example `CONTOSO`.
    #[schemars(length(min = 1, max = 15))]
    pub net_bios_name: String,
    /// Domain SID, `S-1-5-21-...`.
    #[schemars(regex(pattern = r"^S-1-5-21(-[0-9]+){3}$"))]
    pub sid: String,
    /// Domain GUID.
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"))]
    pub guid: String,
}

/// Portable CCG (container credential guard) plugin fields.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostAccount {
    /// GUID of the CCG plugin, in braces.
    #[schemars(regex(pattern = r"^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$"))]
    pub plugin_guid: String,
    /// Plugin input, for example the Key Vault secret URI the plugin reads the account from.
    #[schemars(length(min = 1))]
    pub plugin_input: String,
    /// Portable CCG version. Default "1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portable_ccg_version: Option<String>,
}

/// HostProcess settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostProcess {
    /// Host account the containers run as. Default `NT AUTHORITY\SYSTEM`; also
    /// `NT AUTHORITY\LOCAL SERVICE`, `NT AUTHORITY\NETWORK SERVICE` or a local group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub run_as_user_name: Option<String>,
}

/// A volume mounted into the container: exactly one of `smb` and `claim`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.smb) != has(self.claim)")
    .message("a volume needs exactly one of smb and claim"))]
// Transition rules (checked on update, against the volume of the same name): what backs a volume
// is immutable in Kubernetes (a PersistentVolume's source, a claim's class and access modes), so
// the API server refuses such a change here with what to do, instead of the operator failing on it.
#[x_kube(validation = Rule::new("has(self.smb) == has(oldSelf.smb)")
    .message("a volume cannot switch between smb and claim; give it a new name to replace it"))]
#[x_kube(validation = Rule::new("!has(self.smb) || !has(oldSelf.smb) || (self.smb.source == oldSelf.smb.source && self.smb.secretRef == oldSelf.smb.secretRef)")
    .message("smb.source and smb.secretRef cannot change (a PersistentVolume's source is immutable); give the volume a new name to replace it"))]
#[x_kube(validation = Rule::new("!has(self.claim) || !has(oldSelf.claim) || (has(self.claim.storageClassName) == has(oldSelf.claim.storageClassName) && (!has(self.claim.storageClassName) || self.claim.storageClassName == oldSelf.claim.storageClassName) && has(self.claim.accessModes) == has(oldSelf.claim.accessModes) && (!has(self.claim.accessModes) || self.claim.accessModes == oldSelf.claim.accessModes))")
    .message("claim.storageClassName and claim.accessModes cannot change (a claim's spec is immutable); give the volume a new name to replace it"))]
pub struct AppVolume {
    /// Volume name, a DNS label of at most 40 characters not starting with `winapp-`; names the
    /// claim `<app>.<name>`.
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("!self.startsWith('winapp-')").message("volume names starting with 'winapp-' are reserved for the operator"))]
    pub name: String,
    /// Windows directory to mount at, for example `C:\data`.
    #[x_kube(validation = Rule::new(WINDOWS_PATH_RULE).message(WINDOWS_PATH_MESSAGE))]
    #[schemars(length(max = 240))]
    pub mount_path: String,
    /// Mount read-only. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// An SMB share through the smb.csi.k8s.io CSI driver (a static PersistentVolume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smb: Option<SmbVolume>,
    /// A claim provisioned by a StorageClass (for example Azure Files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimVolume>,
}

/// An SMB share.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SmbVolume {
    /// The share, `//server/share[/path]`.
    #[schemars(regex(pattern = r"^//[^/\s]+/[^\s]+$"))]
    pub source: String,
    /// Secret in the app's namespace with `username` and `password`, read by the CSI driver
    /// when it mounts the share. The operator never reads it.
    #[schemars(transform = reference::smb_secret_ref)]
    pub secret_ref: LocalObjectReference,
    /// Size recorded on the PersistentVolume. Default 100Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// Size the claim requests, at most `capacity`. Default: `capacity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_size: Option<Quantity>,
    /// Mount options, for example `dir_mode=0777`; at most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::MOUNT_OPTIONS))]
    pub mount_options: Vec<String>,
}

/// A dynamically provisioned claim.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimVolume {
    /// StorageClass. Default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Requested size, for example `10Gi`.
    pub size: Quantity,
    /// Access modes. Default `[ReadWriteMany]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::ACCESS_MODES))]
    pub access_modes: Vec<AccessMode>,
    /// What happens to the claim, and so to its data where the StorageClass's reclaim policy is
    /// Delete, when the volume is renamed or removed from the spec, or the app is deleted.
    /// `Retain` (default): the claim is released (the operator's labels and ownership removed,
    /// annotated with the app and volume it came from) and kept with its data; adding the volume
    /// back adopts it again. `Delete`: the claim is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicy>,
}

/// What happens to a claim the app no longer asks for.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RetentionPolicy {
    /// Keep the claim (and its data), released from the app.
    #[default]
    Retain,
    /// Delete the claim.
    Delete,
}

impl RetentionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionPolicy::Retain => "Retain",
            RetentionPolicy::Delete => "Delete",
        }
    }
}

/// PersistentVolume access mode.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadOnlyMany,
    ReadWriteMany,
    ReadWriteOncePod,
}

/// Monitoring settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// Prometheus scrape annotations on the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusScrape>,
}

/// Where Prometheus scrapes the pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusScrape {
    /// Port. Default 9182 (windows-exporter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Path. Default `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: Option<String>,
}

/// Additions to the generated pod template, applied last.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Labels and annotations added to the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodMetadata>,
    /// Pod spec fields merged over the generated spec (see `podTemplate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_spec_overrides_schema")]
    pub spec: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Labels and annotations of the pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct PodMetadata {
    /// Labels added to the pods, at most 64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = bounds::max_properties::<{ bounds::POD_LABELS }>)]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the pods, at most 128.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = bounds::max_properties::<{ bounds::POD_ANNOTATIONS }>)]
    pub annotations: BTreeMap<String, String>,
}

/// An open object whose `hostNetwork` is typed, so that CEL rules can read it.
fn pod_spec_overrides_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "Pod spec fields merged over the generated spec.",
        "properties": {
            "hostNetwork": {"type": "boolean"}
        },
        "x-kubernetes-preserve-unknown-fields": true
    })
}
