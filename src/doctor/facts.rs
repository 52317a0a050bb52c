//! What `doctor` knows about a cluster: plain data gathered by [`super::gather`] and judged by the
//! pure checks. Tests build these by hand.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::PolicyRule;

/// The outcome of one read from the API server that may be refused without stopping `doctor`.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<T> {
    /// The read succeeded (an absent object is part of `T`, for example `None` or an empty list).
    Found(T),
    /// 403: the kubeconfig's user may not read this; the check becomes a warning.
    Forbidden(String),
    /// The API server refused for another reason (status code and message).
    Failed(String),
}

impl<T> Lookup<T> {
    /// The value, when the read succeeded.
    pub fn found(&self) -> Option<&T> {
        match self {
            Lookup::Found(v) => Some(v),
            Lookup::Forbidden(_) | Lookup::Failed(_) => None,
        }
    }
}

/// Everything the checks look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// Every node of the cluster (listing them is the one read `doctor` cannot do without).
    pub nodes: Vec<NodeFacts>,
    /// The GMSACredentialSpec CRD, `None` when it is not installed.
    pub gmsa_crd: Lookup<Option<GmsaCrdFacts>>,
    pub mutating_webhooks: Lookup<Vec<WebhookConfigFacts>>,
    pub validating_webhooks: Lookup<Vec<WebhookConfigFacts>>,
    /// Whether the CSIDriver `smb.csi.k8s.io` exists.
    pub smb_csi_driver: Lookup<bool>,
    /// DaemonSets of all namespaces.
    pub daemon_sets: Lookup<Vec<DaemonSetFacts>>,
    /// The WindowsApp CRD, `None` when it is not installed.
    pub windowsapp_crd: Lookup<Option<CrdFacts>>,
    /// WindowsApps of all namespaces; `None` when their CRD is not installed.
    pub apps: Lookup<Option<Vec<AppFacts>>>,
    /// Labels of every namespace, by name.
    pub namespaces: Lookup<BTreeMap<String, BTreeMap<String, String>>>,
    /// Deployments labelled as the operator's (`app.kubernetes.io/name=winapp-operator`).
    pub operator_deployments: Lookup<Vec<DeploymentFacts>>,
    /// The operator's ClusterRoles: `winapp-operator`, and any labelled as the operator's.
    pub operator_cluster_roles: Lookup<Vec<ClusterRoleFacts>>,
    /// Roles labelled as the operator's, of all namespaces (an operator that watches one
    /// namespace holds its rights on namespaced objects there).
    pub operator_roles: Lookup<Vec<RoleFacts>>,
    /// ValidatingAdmissionPolicies; `None` when the API server does not serve
    /// admissionregistration.k8s.io/v1 ones (Kubernetes before 1.30).
    pub admission_policies: Lookup<Option<Vec<AdmissionPolicyFacts>>>,
    /// ValidatingAdmissionPolicyBindings; `None` when not served.
    pub admission_bindings: Lookup<Option<Vec<AdmissionBindingFacts>>>,
    /// Namespaces that grant their apps powers of the operator's policy by annotation.
    pub namespace_grants: Lookup<Vec<NamespaceGrantFacts>>,
    /// The requests of the pods on Windows nodes that are not done (Succeeded or Failed).
    pub pods: Lookup<Vec<PodRequestFacts>>,
}

/// What the scheduler counts of one pod on a Windows node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodRequestFacts {
    pub node: String,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeFacts {
    pub name: String,
    /// `kubernetes.io/os`, or else `status.nodeInfo.operatingSystem`.
    pub os: Option<String>,
    /// `node.kubernetes.io/windows-build`.
    pub windows_build: Option<String>,
    /// Condition Ready is True.
    pub ready: bool,
    /// Cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    pub taints: Vec<TaintFacts>,
    /// `status.nodeInfo.containerRuntimeVersion`, such as `containerd://1.7.20`.
    pub container_runtime: String,
    pub kubelet_version: String,
    pub os_image: String,
    /// `status.allocatable.cpu`, in millicores.
    pub allocatable_cpu_millis: Option<u64>,
    /// `status.allocatable.memory`, in bytes.
    pub allocatable_memory_bytes: Option<u64>,
}

impl NodeFacts {
    pub fn is_windows(&self) -> bool {
        self.os.as_deref() == Some("windows")
    }

    /// Ready and not cordoned: where the scheduler can put new pods.
    pub fn usable(&self) -> bool {
        self.ready && !self.unschedulable
    }
}

/// One taint of a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct TaintFacts {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

impl std::fmt::Display for TaintFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) if !v.is_empty() => write!(f, "{}={}:{}", self.key, v, self.effect),
            _ => write!(f, "{}:{}", self.key, self.effect),
        }
    }
}

/// The installed GMSACredentialSpec CRD.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GmsaCrdFacts {
    /// Labelled `winapp.dev/test-fixture`: this repository's stand-in, not the webhook's own.
    pub test_fixture: bool,
}

/// A Mutating- or ValidatingWebhookConfiguration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookConfigFacts {
    pub name: String,
    pub webhooks: Vec<WebhookFacts>,
}

/// One webhook of a configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookFacts {
    pub name: String,
    /// The resources of all its rules (`pods`, `*`, ...).
    pub resources: Vec<String>,
}

/// One DaemonSet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DaemonSetFacts {
    pub namespace: String,
    pub name: String,
    /// The pod template's node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Images of the pod template's containers.
    pub images: Vec<String>,
    pub desired: i32,
    pub ready: i32,
}

/// An installed CRD: its versions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CrdFacts {
    pub versions: Vec<CrdVersionFacts>,
}

/// One version of a CRD.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CrdVersionFacts {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    /// `schema.openAPIV3Schema`, as JSON.
    pub schema: Option<serde_json::Value>,
}

/// One WindowsApp (read as plain JSON, so that an app the current schema cannot decode still counts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppFacts {
    pub namespace: String,
    pub name: String,
    /// `spec.hostProcess` is set.
    pub host_process: bool,
    /// `spec.networkPolicy` is set.
    pub network_policy: bool,
    /// `spec.windows.version`, as written (`ltsc2022`).
    pub windows_version: Option<String>,
}

/// One Deployment of the operator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeploymentFacts {
    pub namespace: String,
    pub name: String,
    pub replicas: i32,
    pub available_replicas: i32,
    /// Condition Available is True.
    pub available: bool,
    /// The message of the Available or Progressing condition, when the Deployment is not available.
    pub message: Option<String>,
    /// The pod template's `serviceAccountName` (empty: `default`).
    pub service_account: String,
    /// The operator container's `command` and `args`, in order.
    pub args: Vec<String>,
    /// The operator container's environment.
    pub env: Vec<EnvFacts>,
}

/// One environment variable of a container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EnvFacts {
    pub name: String,
    /// The value; `None` when it comes from elsewhere (`valueFrom`: a ConfigMap, a Secret, a field).
    pub value: Option<String>,
}

/// One Role.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoleFacts {
    pub namespace: String,
    pub name: String,
    pub rules: Vec<PolicyRule>,
}

/// One ValidatingAdmissionPolicy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdmissionPolicyFacts {
    pub name: String,
    /// Labelled `app.kubernetes.io/name=winapp-operator`, as `config/` and the chart label it.
    pub operator_labelled: bool,
    /// The expressions of its `matchConditions`.
    pub match_conditions: Vec<String>,
    /// The resources of its `matchConstraints.resourceRules`.
    pub resources: Vec<String>,
}

/// One ValidatingAdmissionPolicyBinding.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdmissionBindingFacts {
    pub name: String,
    pub policy_name: String,
    /// `validationActions`: Deny, Warn, Audit.
    pub actions: Vec<String>,
}

/// A namespace's annotations of the operator's policy (only namespaces with one of them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamespaceGrantFacts {
    pub namespace: String,
    /// `winapp.dev/allow`, as written.
    pub allow: Option<String>,
    /// `winapp.dev/allowed-taints`, as written.
    pub allowed_taints: Option<String>,
}

/// One ClusterRole.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterRoleFacts {
    pub name: String,
    pub rules: Vec<PolicyRule>,
}
