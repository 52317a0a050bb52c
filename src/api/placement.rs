//! `spec.windows`: the Windows Server release and the node pool the pods are placed on.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bounds;

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
