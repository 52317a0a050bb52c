//! The `WindowsApp` custom resource (winapp.dev/v1alpha1): spec, status and the CRD schema rules.
//!
//! Field documentation here and in the submodules (one per part of the spec) becomes the CRD's
//! OpenAPI descriptions, which the README's API reference is checked against. Defaults are applied
//! by [`crate::validate`], not by the schema, so GitOps tools never see fields they did not write.
//! Every type is re-exported here: `crate::api::X` is the path to use.

pub mod bounds;
mod config;
mod disruption;
mod identity;
mod logging;
mod monitoring;
mod network;
mod overrides;
mod placement;
pub mod reference;
mod service;
mod shutdown;
mod status;
mod volumes;
mod warmup;

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, LocalObjectReference, Probe, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use config::{ConfigFile, ConfigFiles, ConfigSecretRef, WINDOWS_PATH_MESSAGE, WINDOWS_PATH_RULE};
pub use disruption::Disruption;
pub use identity::{CredentialSpec, Gmsa, GmsaDomain, HostAccount, HostProcess};
pub use logging::{EVENT_CHANNEL_PATTERN, EventLevel, EventLogChannel, FILE_FILTER_PATTERN, LogFiles, Logging};
pub use monitoring::{Monitoring, PrometheusScrape};
pub use network::{AppNetworkPolicy, NetworkSource};
pub use overrides::{PodMetadata, PodTemplateOverrides};
pub use placement::{PoolTaint, WindowsPlacement, WindowsVersion};
pub use reference::{IMAGE_EXAMPLE, IMAGE_MAX_LENGTH, IMAGE_PATTERN};
pub use service::{AppService, AppServicePort, ServiceType, TrafficPolicy};
pub use shutdown::{IIS_SITE_PATTERN, IisDrain, PreStop, Shutdown};
pub use status::{DisruptionStatus, ReleasedClaim, WindowsAppStatus};
pub use volumes::{AccessMode, AppVolume, ClaimVolume, RetentionPolicy, SmbVolume};
pub use warmup::WarmUp;

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
#[x_kube(validation = Rule::new("!has(self.warmUp) || !has(self.warmUp.enabled) || !self.warmUp.enabled || ((!has(self.nodeAgent) || !self.nodeAgent) && !has(self.hostProcess))")
    .message("warmUp is for Deployments of ordinary containers: a nodeAgent's DaemonSet already rolls node by node, and a hostProcess image cannot start as an ordinary container; remove warmUp.enabled")
    .field_path(".warmUp.enabled"))]
#[x_kube(validation = Rule::new("!has(self.shutdown) || !has(self.shutdown.gracePeriodSeconds) || !has(self.podTemplate) || !has(self.podTemplate.spec) || !has(self.podTemplate.spec.terminationGracePeriodSeconds)")
    .message("the grace period is set twice: remove podTemplate.spec.terminationGracePeriodSeconds and keep shutdown.gracePeriodSeconds")
    .field_path(".podTemplate.spec.terminationGracePeriodSeconds"))]
#[x_kube(validation = Rule::new("!has(self.nodeAgent) || !self.nodeAgent || !has(self.disruption) || (!has(self.disruption.maxUnavailable) && !has(self.disruption.minAvailable))")
    .message("a nodeAgent gets no PodDisruptionBudget: kubectl drain --ignore-daemonsets never evicts DaemonSet pods, so a budget would not hold; remove disruption.maxUnavailable and disruption.minAvailable")
    .field_path(".disruption"))]
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

    /// How the pods stop: the grace period (default 60 seconds) and a pre-stop action (a
    /// command, or the IIS drain). `podTemplate` may set `terminationGracePeriodSeconds` or the
    /// app container's `lifecycle.preStop` instead, but not the same one as `shutdown` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Shutdown>,
    /// The app's PodDisruptionBudget: how many pods a node drain may evict at once. Default
    /// `maxUnavailable: 1` with more than one replica or `autoscaled`; none with one replica or
    /// for a `nodeAgent`. README: Node drains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<Disruption>,

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

    /// Windows logs sent to the container's output through LogMonitor, so that `kubectl logs`
    /// shows them: IIS log files, event log channels, the app's own log files. The operator
    /// writes LogMonitor's configuration into the app's ConfigMap (a change rolls the pods) and
    /// runs the container's command through `LogMonitor.exe`, which the image must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,

    /// Prometheus scraping of the pods (for example windows-exporter on 9182).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,

    /// Pull a new image on the nodes before the pods roll to it (README: Image warm-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_up: Option<WarmUp>,

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
