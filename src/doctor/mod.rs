//! `winapp-operator doctor`: a pre-flight of a cluster for WindowsApps, before and after the
//! operator is installed. [`gather`] reads the facts from the API server into a plain [`Facts`];
//! the checks ([`nodes`], [`addons`], [`security`], [`operator`], [`fence`], [`grants`]) are pure
//! functions from facts to [`Finding`]s; [`output`] prints them for people or as JSON.

pub mod addons;
pub mod builds;
pub mod capacity;
pub mod facts;
pub mod fence;
pub mod gather;
pub mod grants;
pub mod nodes;
pub mod operator;
pub mod output;
pub mod security;

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::CustomResourceExt;
use serde::Serialize;
use thiserror::Error;

use crate::api::{WindowsApp, WindowsAppSpec, WindowsVersion};
pub use facts::Facts;

/// Exit code when no finding is an error (with `--strict`: no warning either).
pub const EXIT_OK: u8 = 0;
/// Exit code when at least one finding is an error (with `--strict`: or a warning).
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code when `doctor` could not run: no kubeconfig, API server unreachable, nodes forbidden.
pub const EXIT_CANNOT_RUN: u8 = 2;

/// The long help of `winapp-operator doctor`: what is checked, and the exit codes.
pub const HELP: &str = "\
Checks, each reported as ok, warning or error with what to do:
  Windows nodes  count by Windows build and readiness (error: none usable); each --windows-version
                 (error: no Ready, schedulable node of that build); NoSchedule/NoExecute taints
                 that the default placement does not tolerate (warning, naming the WindowsApp
                 field to set); container runtime, kubelet and OS image (warning: not containerd);
                 per build, the usable nodes' allocatable CPU and memory against the requests of
                 the pods on them (warning: above 90 %)
  Windows builds WindowsApps per spec.windows.version; a build the cluster is leaving: no Ready
                 node of it left (error), or all its nodes cordoned (warning), naming the apps
                 to move to another build
  gMSA           the GMSACredentialSpec CRD and the gMSA admission webhooks (warning: missing)
  SMB storage    the CSIDriver smb.csi.k8s.io and its Windows node DaemonSet, ready on the
                 Windows nodes (warning: missing or not ready)
  NetworkPolicy  a network plugin that enforces NetworkPolicy on Windows nodes (Calico for Windows,
                 Azure NPM, Antrea); warning: WindowsApps set spec.networkPolicy and none runs
  Pod Security   namespaces with HostProcess WindowsApps admit privileged pods (error: they do not);
                 namespaces with WindowsApps have a pod-security.kubernetes.io/enforce label
                 (warning: none, with the level to set)
  Operator       the WindowsApp CRD equals this binary's (warning: stale), the operator's
                 Deployment is available (error: not), its ClusterRole (and, watching one
                 namespace, its Role there) grants at least config/rbac/cluster_role.yaml (error:
                 lacks rules); before the operator is installed each of these is a warning \"not
                 installed yet\". The admission fence (config/admission) is installed, bound with
                 Deny and names the operator's ServiceAccount (warning: not, with how to install).
                 What the operator's policy grants every app (its --allow, --allow-taint,
                 WINAPP_ALLOW, WINAPP_ALLOW_TAINTS) and each namespace (annotations winapp.dev/allow,
                 winapp.dev/allowed-taints); warning: node-level powers (host-process, node-agent,
                 tolerate-all, other-taints, privileged, host-path, host-namespaces) for every app
A refused read (403) of anything but nodes is a warning \"cannot check X: forbidden\".
doctor only gets and lists; it never reads Secrets.

Exit codes:
  0  no finding is an error (with --strict: no warning either)
  1  at least one finding is an error (with --strict: or a warning)
  2  doctor could not run: no kubeconfig, API server unreachable, or forbidden to list nodes

Examples:
  winapp-operator doctor
  winapp-operator doctor --windows-version ltsc2022 --windows-version ltsc2025 --strict
  winapp-operator doctor -o json | jq '.findings[] | select(.level != \"ok\")'";

/// Parses `--windows-version`: a release name (`ltsc2025`) or its build (`10.0.26100`).
pub fn parse_windows_version(s: &str) -> Result<WindowsVersion, String> {
    WindowsVersion::ALL.into_iter().find(|v| v.as_str() == s).or_else(|| WindowsVersion::from_build(s)).ok_or_else(
        || {
            let known: Vec<&str> = WindowsVersion::ALL.iter().map(|v| v.as_str()).collect();
            format!("unknown Windows release {s:?}; use one of {}", known.join(", "))
        },
    )
}

/// The operator's ClusterRole as `config/rbac` ships it: what an installed one must grant at least.
pub const CLUSTER_ROLE_YAML: &str = include_str!("../../config/rbac/cluster_role.yaml");

/// How bad a finding is.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// What a finding is about; its `section` groups the human output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    WindowsNodes,
    WindowsVersion,
    Taints,
    Runtime,
    Capacity,
    AppBuilds,
    GmsaCrd,
    GmsaWebhook,
    SmbCsiDriver,
    SmbNodeDaemonset,
    NetworkPolicy,
    PodSecurity,
    OperatorCrd,
    OperatorDeployment,
    OperatorRbac,
    OperatorFence,
    OperatorPolicy,
}

impl Check {
    /// The name used in the JSON output (`windows-nodes`).
    pub fn as_str(self) -> &'static str {
        match self {
            Check::WindowsNodes => "windows-nodes",
            Check::WindowsVersion => "windows-version",
            Check::Taints => "taints",
            Check::Runtime => "runtime",
            Check::Capacity => "capacity",
            Check::AppBuilds => "app-builds",
            Check::GmsaCrd => "gmsa-crd",
            Check::GmsaWebhook => "gmsa-webhook",
            Check::SmbCsiDriver => "smb-csi-driver",
            Check::SmbNodeDaemonset => "smb-node-daemonset",
            Check::NetworkPolicy => "network-policy",
            Check::PodSecurity => "pod-security",
            Check::OperatorCrd => "operator-crd",
            Check::OperatorDeployment => "operator-deployment",
            Check::OperatorRbac => "operator-rbac",
            Check::OperatorFence => "operator-fence",
            Check::OperatorPolicy => "operator-policy",
        }
    }

    /// The heading the finding is printed under.
    pub fn section(self) -> &'static str {
        match self {
            Check::WindowsNodes | Check::WindowsVersion | Check::Taints | Check::Runtime | Check::Capacity => {
                "Windows nodes"
            }
            Check::AppBuilds => "Windows builds",
            Check::GmsaCrd | Check::GmsaWebhook => "gMSA",
            Check::SmbCsiDriver | Check::SmbNodeDaemonset => "SMB storage",
            Check::NetworkPolicy => "NetworkPolicy",
            Check::PodSecurity => "Pod Security",
            Check::OperatorCrd
            | Check::OperatorDeployment
            | Check::OperatorRbac
            | Check::OperatorFence
            | Check::OperatorPolicy => "Operator",
        }
    }
}

/// One result: what was checked, how it stands, and what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub check: Check,
    pub level: Level,
    /// A short title, such as `GMSACredentialSpec CRD not installed`.
    pub title: String,
    /// What it means and what to do.
    pub message: String,
}

impl Finding {
    pub fn new(check: Check, level: Level, title: impl Into<String>, message: impl Into<String>) -> Self {
        Finding { check, level, title: title.into(), message: message.into() }
    }

    pub fn ok(check: Check, title: impl Into<String>, message: impl Into<String>) -> Self {
        Finding::new(check, Level::Ok, title, message)
    }

    pub fn warning(check: Check, title: impl Into<String>, message: impl Into<String>) -> Self {
        Finding::new(check, Level::Warning, title, message)
    }

    pub fn error(check: Check, title: impl Into<String>, message: impl Into<String>) -> Self {
        Finding::new(check, Level::Error, title, message)
    }
}

/// Counts of findings by level.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Summary {
    pub ok: usize,
    pub warnings: usize,
    pub errors: usize,
}

impl Summary {
    pub fn of(findings: &[Finding]) -> Self {
        let count = |l: Level| findings.iter().filter(|f| f.level == l).count();
        Summary { ok: count(Level::Ok), warnings: count(Level::Warning), errors: count(Level::Error) }
    }

    /// [`EXIT_FINDINGS`] when there is an error (or, with `strict`, a warning), else [`EXIT_OK`].
    pub fn exit_code(self, strict: bool) -> u8 {
        if self.errors > 0 || (strict && self.warnings > 0) { EXIT_FINDINGS } else { EXIT_OK }
    }
}

/// What the checks compare the cluster with: derived from this binary, never from the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// The tolerations of a WindowsApp that sets no placement (the default Windows pool taint).
    pub default_tolerations: Vec<Toleration>,
    /// The WindowsApp CRD as `winapp-operator crd` prints it.
    pub crd: facts::CrdFacts,
    /// The rules of `config/rbac/cluster_role.yaml`.
    pub rules: Vec<PolicyRule>,
}

impl Expected {
    /// From the operator's own validation, builders, CRD and RBAC.
    pub fn current() -> Result<Self, DoctorError> {
        Ok(Expected { default_tolerations: default_tolerations()?, crd: expected_crd()?, rules: required_rules()? })
    }
}

/// The tolerations the builders give the pods of an app with no `spec.windows`.
fn default_tolerations() -> Result<Vec<Toleration>, DoctorError> {
    let app = WindowsApp::new("doctor", WindowsAppSpec { image: "doctor".into(), ..WindowsAppSpec::default() });
    let validated = crate::validate::validate(&app, Some("default"))
        .map_err(|e| DoctorError::Internal(format!("the default placement does not validate: {e}")))?;
    let deployment = crate::build::workload::deployment(&validated)
        .map_err(|e| DoctorError::Internal(format!("the default placement does not build: {e}")))?;
    Ok(deployment.spec.template.spec.and_then(|s| s.tolerations).unwrap_or_default())
}

fn expected_crd() -> Result<facts::CrdFacts, DoctorError> {
    let crd = WindowsApp::crd();
    let versions = crd
        .spec
        .versions
        .into_iter()
        .map(|v| {
            let schema = match v.schema.and_then(|s| s.open_api_v3_schema) {
                Some(s) => Some(
                    serde_json::to_value(s)
                        .map_err(|e| DoctorError::Internal(format!("cannot serialize the CRD schema: {e}")))?,
                ),
                None => None,
            };
            Ok(facts::CrdVersionFacts { name: v.name, served: v.served, storage: v.storage, schema })
        })
        .collect::<Result<Vec<_>, DoctorError>>()?;
    Ok(facts::CrdFacts { versions })
}

fn required_rules() -> Result<Vec<PolicyRule>, DoctorError> {
    let role: ClusterRole = serde_saphyr::from_str(CLUSTER_ROLE_YAML)
        .map_err(|e| DoctorError::Internal(format!("cannot read the embedded config/rbac/cluster_role.yaml: {e}")))?;
    Ok(role.rules.unwrap_or_default())
}

/// What the user asked to be checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckOptions {
    /// Windows releases that must have at least one Ready, schedulable node.
    pub windows_versions: Vec<WindowsVersion>,
    /// Where the operator is installed, when given; any namespace otherwise.
    pub operator_namespace: Option<String>,
}

/// Which cluster to check and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A kubeconfig file; default `KUBECONFIG`, `~/.kube/config`, or the in-cluster account.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; default its current context.
    pub context: Option<String>,
    pub checks: CheckOptions,
}

/// Why `doctor` could not run at all (exit code [`EXIT_CANNOT_RUN`]).
#[derive(Debug, Error)]
pub enum DoctorError {
    #[error(
        "no cluster to check: {0}; point KUBECONFIG (or --kubeconfig) at the kubeconfig of the cluster, as for kubectl"
    )]
    NoConfig(String),
    #[error("cannot build a client from the kubeconfig: {0}; check its cluster address and credentials")]
    Client(#[source] kube::Error),
    #[error(
        "the API server at {url} is unreachable: {reason}; check that the cluster runs and that the kubeconfig's server address is right"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "the API server at {url} refused to list nodes ({status}); doctor needs at least get/list on nodes: run it as a cluster administrator"
    )]
    NodesRefused { url: String, status: String },
    #[error("{0}; this is a bug in winapp-operator, please report it")]
    Internal(String),
}

/// Every finding about a cluster, in check order.
pub fn check(facts: &Facts, expected: &Expected, opts: &CheckOptions) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(nodes::windows_nodes(&facts.nodes));
    findings.extend(nodes::windows_versions(&facts.nodes, &opts.windows_versions));
    findings.extend(nodes::taints(&facts.nodes, &expected.default_tolerations));
    findings.extend(nodes::runtimes(&facts.nodes));
    findings.extend(capacity::capacity(&facts.nodes, &facts.pods));
    findings.extend(builds::app_builds(&facts.apps, &facts.nodes));
    findings.extend(addons::gmsa_crd(&facts.gmsa_crd));
    findings.extend(addons::gmsa_webhook(&facts.mutating_webhooks, &facts.validating_webhooks));
    findings.extend(addons::smb_csi_driver(&facts.smb_csi_driver));
    findings.extend(addons::smb_node_daemonset(&facts.daemon_sets, &facts.nodes));
    findings.extend(addons::network_policy(&facts.daemon_sets, &facts.apps));
    findings.extend(security::pod_security(&facts.apps, &facts.namespaces));
    findings.extend(operator::crd(&facts.windowsapp_crd, &expected.crd));
    findings.extend(operator::deployment(&facts.operator_deployments, opts.operator_namespace.as_deref()));
    findings.extend(operator::rbac(
        &facts.operator_cluster_roles,
        &facts.operator_roles,
        &facts.operator_deployments,
        &expected.rules,
    ));
    findings.extend(fence::fence(&facts.admission_policies, &facts.admission_bindings, &facts.operator_deployments));
    findings.extend(grants::policy(&facts.operator_deployments, &facts.namespace_grants));
    findings
}

/// Connects, gathers the facts and checks them.
pub async fn run(opts: &Options) -> Result<Vec<Finding>, DoctorError> {
    let expected = Expected::current()?;
    let cluster = gather::client(opts.kubeconfig.as_deref(), opts.context.as_deref()).await?;
    let facts = gather::gather(&cluster, opts.checks.operator_namespace.as_deref()).await?;
    Ok(check(&facts, &expected, &opts.checks))
}

/// A finding for a read that was refused: `cannot check X: forbidden`.
pub(crate) fn not_checked<T>(check: Check, what: &str, lookup: &facts::Lookup<T>) -> Option<Finding> {
    match lookup {
        facts::Lookup::Found(_) => None,
        facts::Lookup::Forbidden(msg) => Some(Finding::warning(
            check,
            format!("cannot check {what}: forbidden"),
            format!(
                "the kubeconfig's user may not read {what} ({msg}); run doctor with more rights (a cluster administrator) to check it"
            ),
        )),
        facts::Lookup::Failed(msg) => Some(Finding::warning(
            check,
            format!("cannot check {what}"),
            format!(
                "the API server refused to read {what} ({msg}); run doctor again, or look at the API server's logs"
            ),
        )),
    }
}

/// `a, b and 3 more`: a readable list of at most `max` names.
pub(crate) fn name_list<S: AsRef<str>>(names: &[S], max: usize) -> String {
    let shown: Vec<&str> = names.iter().take(max).map(AsRef::as_ref).collect();
    let mut s = shown.join(", ");
    if names.len() > max {
        s.push_str(&format!(" and {} more", names.len() - max));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_come_from_the_operator_itself() {
        let e = Expected::current().expect("expected");
        assert!(
            e.default_tolerations.iter().any(|t| t.key.as_deref() == Some(crate::validate::defaults::POOL_TAINT_KEY)
                && t.value.as_deref() == Some(crate::validate::defaults::POOL_TAINT_VALUE)
                && t.effect.as_deref() == Some("NoSchedule")),
            "{:?}",
            e.default_tolerations
        );
        assert!(e.crd.versions.iter().any(|v| v.served && v.storage && v.schema.is_some()));
        assert!(e.rules.iter().any(|r| r.resources.iter().flatten().any(|res| res == "windowsapps")));
    }

    #[test]
    fn exit_codes() {
        let f = |l| Finding::new(Check::Taints, l, "t", "m");
        assert_eq!(Summary::of(&[f(Level::Ok)]).exit_code(true), EXIT_OK);
        assert_eq!(Summary::of(&[f(Level::Ok), f(Level::Warning)]).exit_code(false), EXIT_OK);
        assert_eq!(Summary::of(&[f(Level::Warning)]).exit_code(true), EXIT_FINDINGS);
        assert_eq!(Summary::of(&[f(Level::Error)]).exit_code(false), EXIT_FINDINGS);
    }

    #[test]
    fn name_lists_are_cut() {
        assert_eq!(name_list(&["a", "b", "c"], 2), "a, b and 1 more");
        assert_eq!(name_list(&["a"], 2), "a");
    }
}
