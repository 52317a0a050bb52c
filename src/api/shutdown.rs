//! `spec.shutdown`: how the pods stop. Windows apps need longer than Kubernetes' 30 seconds
//! (IIS and ASP.NET finish their requests, and a servercore container is slow to stop), and an
//! IIS site should stop taking requests, and finish those it has, before the container is killed.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bounds;

/// A site name that needs no quoting in PowerShell or appcmd: letters, digits, spaces, `.`, `_`
/// and `-`, starting with a letter or digit.
pub const IIS_SITE_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$";

/// How the pods stop.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
// The defaults 5 and 60 are `validate::defaults::IIS_DELAY_SECONDS` and `GRACE_PERIOD_SECONDS`
// (a test of validate holds this rule to them).
#[x_kube(validation = Rule::new("!has(self.preStop) || !has(self.preStop.iis) || (has(self.preStop.iis.delaySeconds) ? self.preStop.iis.delaySeconds : 5) + self.preStop.iis.drainSeconds < (has(self.gracePeriodSeconds) ? self.gracePeriodSeconds : 60)")
    .message("preStop.iis: delaySeconds (default 5) plus drainSeconds must be less than gracePeriodSeconds (default 60), since the kubelet kills the container when the grace period ends, drained or not: lower drainSeconds or raise gracePeriodSeconds")
    .field_path(".preStop.iis.drainSeconds"))]
pub struct Shutdown {
    /// Seconds the pod has to stop, the pre-stop action included, before it is killed
    /// (`terminationGracePeriodSeconds`). Default 60: longer than Kubernetes' 30, for IIS and
    /// ASP.NET to finish their requests and a Windows container to stop. 1 to 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub grace_period_seconds: Option<i64>,

    /// What runs in the container before it is told to stop: a command, or the IIS drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<PreStop>,
}

/// The pre-stop action: exactly one of `command` and `iis`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.command) != has(self.iis)")
    .message("preStop: set exactly one of command and iis"))]
pub struct PreStop {
    /// A command run in the container (an exec hook), such as
    /// `["powershell.exe", "-Command", "Stop-Service MyService"]`. At most 64 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::COMMAND))]
    pub command: Vec<String>,

    /// The IIS drain: wait `delaySeconds` for the Service to stop sending requests, stop the site
    /// (or every site), then wait up to `drainSeconds` for the requests in flight to finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iis: Option<IisDrain>,
}

/// Stop an IIS site and let its requests finish. Runs Windows PowerShell and appcmd in the
/// container, which IIS images (servercore) have.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IisDrain {
    /// The site to stop, such as `Default Web Site`. Default: every site of the container.
    /// Letters, digits, spaces, `.`, `_` and `-`; at most 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = IIS_SITE_PATTERN))]
    pub site: Option<String>,

    /// Seconds to wait, once the site is stopped, for the requests in flight to finish (the wait
    /// ends early when IIS's request monitor reports none). 0 to 3599; `delaySeconds` plus this
    /// must be less than `gracePeriodSeconds`.
    #[schemars(range(min = 0, max = 3599))]
    pub drain_seconds: i64,

    /// Seconds to wait before the site is stopped, while the pod is taken out of the Service's
    /// endpoints and load balancers stop sending it requests. Default 5; 0 to 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 300))]
    pub delay_seconds: Option<i64>,
}
