//! The platform's policy: which powers beyond its namespace a WindowsApp may ask for.
//!
//! An app team that may create WindowsApps may not create what the operator creates for them:
//! HostProcess pods on every Windows node, tolerations of other teams' node pools, SMB
//! PersistentVolumes (cluster-scoped), and, through the `spec.podTemplate` escape hatch, anything
//! a pod spec can say. Each such power is a named [`Rule`], refused by default and granted by the
//! platform team, for every app the operator reconciles (`--allow RULE`) or for the apps of one
//! namespace (the Namespace's annotation [`ALLOW_ANNOTATION`], which app teams usually cannot
//! write, as with the gMSA allow-list). Tolerations of taints other than the Windows pool
//! conventions are granted by taint as well ([`TaintGrant`]).
//!
//! The checks are pure: the spec in, [`Refusal`]s out ([`app::check`] for the spec's own
//! fields, [`pod::check`] for `spec.podTemplate.spec`).

pub mod app;
pub mod live;
pub mod pod;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

pub use pod::{APP_VOLUME_TYPES, ROOT, check};

/// Namespace annotation: the rules granted to the WindowsApps of this namespace, comma-separated.
pub const ALLOW_ANNOTATION: &str = "winapp.dev/allow";
/// Namespace annotation: the taints the WindowsApps of this namespace may tolerate beyond the
/// Windows pool conventions, comma-separated `key=value` (that value) or `key` (any value).
pub const ALLOWED_TAINTS_ANNOTATION: &str = "winapp.dev/allowed-taints";

/// A power the policy refuses unless the platform team allows it by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    Privileged,
    PrivilegeEscalation,
    Capabilities,
    HostNamespaces,
    HostPath,
    VolumeTypes,
    HostPorts,
    RunAsUser,
    Gmsa,
    HostProcess,
    TolerateAll,
    ServiceAccount,
    NodeName,
    WindowsSelector,
    RuntimeClass,
    ShareProcessNamespace,
    RemoveGenerated,
    NodeAgent,
    OtherTaints,
    SmbVolumes,
}

impl Rule {
    /// Every rule, in the order of the README's table.
    pub const ALL: &'static [Rule] = &[
        Rule::HostProcess,
        Rule::NodeAgent,
        Rule::TolerateAll,
        Rule::OtherTaints,
        Rule::RuntimeClass,
        Rule::SmbVolumes,
        Rule::Privileged,
        Rule::PrivilegeEscalation,
        Rule::Capabilities,
        Rule::HostNamespaces,
        Rule::HostPath,
        Rule::VolumeTypes,
        Rule::HostPorts,
        Rule::RunAsUser,
        Rule::Gmsa,
        Rule::ServiceAccount,
        Rule::NodeName,
        Rule::WindowsSelector,
        Rule::ShareProcessNamespace,
        Rule::RemoveGenerated,
    ];

    /// The rules that reach the nodes themselves: granted to every app, a doctor warning.
    pub const NODE_LEVEL: &'static [Rule] = &[
        Rule::HostProcess,
        Rule::NodeAgent,
        Rule::TolerateAll,
        Rule::OtherTaints,
        Rule::Privileged,
        Rule::HostPath,
        Rule::HostNamespaces,
    ];

    /// The stable name, as `--allow`, the Namespace annotation and the Helm value take it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Privileged => "privileged",
            Rule::PrivilegeEscalation => "privilege-escalation",
            Rule::Capabilities => "capabilities",
            Rule::HostNamespaces => "host-namespaces",
            Rule::HostPath => "host-path",
            Rule::VolumeTypes => "volume-types",
            Rule::HostPorts => "host-ports",
            Rule::RunAsUser => "run-as-user",
            Rule::Gmsa => "gmsa",
            Rule::HostProcess => "host-process",
            Rule::TolerateAll => "tolerate-all",
            Rule::ServiceAccount => "service-account",
            Rule::NodeName => "node-name",
            Rule::WindowsSelector => "windows-selector",
            Rule::RuntimeClass => "runtime-class",
            Rule::ShareProcessNamespace => "share-process-namespace",
            Rule::RemoveGenerated => "remove-generated",
            Rule::NodeAgent => "node-agent",
            Rule::OtherTaints => "other-taints",
            Rule::SmbVolumes => "smb-volumes",
        }
    }

    /// What the rule refuses (for `--help`).
    pub fn summary(self) -> &'static str {
        match self {
            Rule::Privileged => "securityContext.privileged: true in a podTemplate container",
            Rule::PrivilegeEscalation => "securityContext.allowPrivilegeEscalation: true in a podTemplate container",
            Rule::Capabilities => "securityContext.capabilities.add in a podTemplate container",
            Rule::HostNamespaces => "podTemplate hostNetwork (except for hostProcess apps), hostPID or hostIPC: true",
            Rule::HostPath => "podTemplate hostPath volumes",
            Rule::VolumeTypes => {
                "podTemplate volume types other than configMap, secret, emptyDir, projected, downwardAPI, persistentVolumeClaim, ephemeral and csi"
            }
            Rule::HostPorts => "hostPort on a podTemplate container port",
            Rule::RunAsUser => "podTemplate windowsOptions.runAsUserName other than ContainerUser",
            Rule::Gmsa => "podTemplate windowsOptions.gmsaCredentialSpecName or gmsaCredentialSpec",
            Rule::HostProcess => {
                "spec.hostProcess (HostProcess containers: a host account on the node, host network), or windowsOptions.hostProcess in the podTemplate"
            }
            Rule::TolerateAll => {
                "a toleration with operator Exists and no key (tolerates every taint), in spec.windows.tolerations or the podTemplate"
            }
            Rule::ServiceAccount => {
                "podTemplate serviceAccountName, serviceAccount, automountServiceAccountToken, serviceAccountToken projections"
            }
            Rule::NodeName => "podTemplate nodeName",
            Rule::WindowsSelector => {
                "podTemplate nodeSelector keys kubernetes.io/os and node.kubernetes.io/windows-build"
            }
            Rule::RuntimeClass => "spec.windows.runtimeClassName, or runtimeClassName in the podTemplate",
            Rule::ShareProcessNamespace => "podTemplate shareProcessNamespace: true",
            Rule::RemoveGenerated => {
                "null anywhere in the podTemplate overrides (it deletes what the operator generates)"
            }
            Rule::NodeAgent => "spec.nodeAgent (one pod on every Windows node, a DaemonSet)",
            Rule::OtherTaints => {
                "tolerations of taints other than the Windows pool conventions (os=windows, os=Windows, node.kubernetes.io/os=windows) and the node-condition taints, unless the taint is granted"
            }
            Rule::SmbVolumes => "spec.volumes[].smb (a cluster-scoped PersistentVolume for an SMB share)",
        }
    }

    /// What an app team does instead, when the refused field is in `spec.podTemplate`.
    fn pod_remedy(self) -> &'static str {
        match self {
            Rule::Privileged | Rule::PrivilegeEscalation | Rule::Capabilities => {
                "remove it (Windows containers do not use it)"
            }
            Rule::HostNamespaces => "remove it; an agent that needs the host uses spec.hostProcess",
            Rule::HostPath => "use spec.volumes (an SMB share or a claim), or spec.hostProcess for a host agent",
            Rule::VolumeTypes => "use spec.volumes, a persistentVolumeClaim or a csi volume",
            Rule::HostPorts => "remove hostPort and expose the port with spec.service",
            Rule::RunAsUser => {
                "set runAsUserName: ContainerUser or remove it (a hostProcess app: spec.hostProcess.runAsUserName)"
            }
            Rule::Gmsa => "use spec.gmsa",
            Rule::HostProcess => "use spec.hostProcess",
            Rule::TolerateAll => "tolerate the taints by key, or use spec.windows.tolerations",
            Rule::OtherTaints => "tolerate only the Windows pool taints, or ask for the taint to be granted",
            Rule::ServiceAccount => "use spec.serviceAccountName and spec.apiAccess",
            Rule::NodeName => "remove it; select nodes with nodeSelector or affinity",
            Rule::WindowsSelector => "use spec.windows.version",
            Rule::RuntimeClass => "use spec.windows.runtimeClassName",
            Rule::ShareProcessNamespace => "remove it",
            Rule::RemoveGenerated => {
                "remove the null and set the dedicated field instead (spec.probes, spec.windows, spec.gmsa, ...)"
            }
            Rule::NodeAgent | Rule::SmbVolumes => "remove it",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule name that is not one of [`Rule::ALL`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0:?} is not a policy rule; the rules are: {names}", names = rule_names().join(", "))]
pub struct UnknownRule(pub String);

fn rule_names() -> Vec<&'static str> {
    Rule::ALL.iter().map(|r| r.name()).collect()
}

impl FromStr for Rule {
    type Err = UnknownRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Rule::ALL.iter().copied().find(|r| r.name() == s).ok_or_else(|| UnknownRule(s.to_owned()))
    }
}

/// A taint the platform lets apps tolerate beyond the Windows pool conventions: `key=value`
/// (tolerations of exactly that value) or `key` (any toleration of the key, `Exists` included).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaintGrant {
    pub key: String,
    pub value: Option<String>,
}

/// A taint grant that cannot be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0:?} is not a taint: write key=value (that value only) or key (any value of the key)")]
pub struct BadTaintGrant(pub String);

impl FromStr for TaintGrant {
    type Err = BadTaintGrant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().to_owned())),
            None => (s, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) || key == "*" {
            return Err(BadTaintGrant(s.to_owned()));
        }
        Ok(TaintGrant { key: key.to_owned(), value })
    }
}

impl fmt::Display for TaintGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// A toleration as the policy reads it (from a typed spec or from podTemplate JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerating<'a> {
    pub key: &'a str,
    /// `Exists` (any value) rather than `Equal`.
    pub exists: bool,
    pub value: &'a str,
}

/// The Windows pool taints of every provider's convention (see `validate::defaults::POOL_TAINTS`).
const POOL_CONVENTIONS: &[(&str, &str)] = &[("os", "windows"), ("os", "Windows"), ("node.kubernetes.io/os", "windows")];
/// Taints that the node lifecycle controller sets on unhealthy nodes; tolerating them (usually
/// for a time) changes only how long the app's own pods stay on a failing node.
const NODE_CONDITION_TAINTS: &[&str] = &["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"];

/// The rules and taints the platform team allows; the default allows none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    allowed: BTreeSet<Rule>,
    taints: BTreeSet<TaintGrant>,
}

impl Policy {
    /// A policy that allows `rules`.
    pub fn allowing(rules: impl IntoIterator<Item = Rule>) -> Self {
        Policy { allowed: rules.into_iter().collect(), taints: BTreeSet::new() }
    }

    /// This policy, with `taints` granted too.
    pub fn with_taints(mut self, taints: impl IntoIterator<Item = TaintGrant>) -> Self {
        self.taints.extend(taints);
        self
    }

    /// Whether `rule` is allowed.
    pub fn allows(&self, rule: Rule) -> bool {
        self.allowed.contains(&rule)
    }

    /// The allowed rules, in order.
    pub fn allowed(&self) -> impl Iterator<Item = Rule> + '_ {
        self.allowed.iter().copied()
    }

    /// The granted taints, in order.
    pub fn taints(&self) -> impl Iterator<Item = &TaintGrant> + '_ {
        self.taints.iter()
    }

    /// Whether a toleration needs no grant (the Windows pool conventions, node conditions) or
    /// tolerates a granted taint. Tolerating every taint is [`Rule::TolerateAll`]'s concern.
    pub fn allows_toleration(&self, t: Tolerating<'_>) -> bool {
        if NODE_CONDITION_TAINTS.contains(&t.key) {
            return true;
        }
        if !t.exists && POOL_CONVENTIONS.contains(&(t.key, t.value)) {
            return true;
        }
        self.taints.iter().any(|g| {
            g.key == t.key
                && match &g.value {
                    None => true,
                    Some(v) => !t.exists && v == t.value,
                }
        })
    }

    /// This policy with what the Namespace's annotations grant its apps.
    pub fn for_namespace(&self, annotations: &BTreeMap<String, String>) -> NamespacePolicy {
        let mut policy = self.clone();
        let mut unknown = Vec::new();
        for entry in list(annotations.get(ALLOW_ANNOTATION)) {
            match entry.parse::<Rule>() {
                Ok(rule) => {
                    policy.allowed.insert(rule);
                }
                Err(_) => unknown.push(format!("{ALLOW_ANNOTATION}: {entry}")),
            }
        }
        for entry in list(annotations.get(ALLOWED_TAINTS_ANNOTATION)) {
            match entry.parse::<TaintGrant>() {
                Ok(taint) => {
                    policy.taints.insert(taint);
                }
                Err(_) => unknown.push(format!("{ALLOWED_TAINTS_ANNOTATION}: {entry}")),
            }
        }
        NamespacePolicy { policy, unreadable: unknown }
    }
}

/// The entries of a comma-separated annotation: trimmed, empty ones dropped.
fn list(value: Option<&String>) -> impl Iterator<Item = &str> {
    value.into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|e| !e.is_empty())
}

/// The policy for the apps of one namespace, and the Namespace's grant entries that could not
/// be read (a typo must not pass silently: refusals name them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePolicy {
    pub policy: Policy,
    pub unreadable: Vec<String>,
}

/// One field the policy refuses: where, which rule, and what to do.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "{path}: {what} is not allowed by the platform's policy (rule {rule}); {remedy}, or ask the platform team to allow rule {rule} for this namespace (Namespace annotation {ALLOW_ANNOTATION}) or for every app (the operator's --allow {rule}){hint}",
    hint = self.hint()
)]
pub struct Refusal {
    pub rule: Rule,
    /// The field, from `spec`.
    pub path: String,
    /// What was found there.
    pub what: String,
    /// What an app team does instead.
    pub remedy: String,
}

impl Refusal {
    /// Whether the field is in `spec.podTemplate` (reason `OverrideNotAllowed`) rather than one
    /// of the spec's own fields (reason `NotAllowed`).
    pub fn in_pod_template(&self) -> bool {
        self.path.starts_with("spec.podTemplate")
    }

    fn hint(&self) -> String {
        match self.rule {
            Rule::OtherTaints => format!(
                "; a single taint can be granted instead: Namespace annotation {ALLOWED_TAINTS_ANNOTATION} (key=value or key), or the operator's --allow-taint"
            ),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn rule_names_round_trip_and_unknown_names_list_the_rules() {
        for r in Rule::ALL {
            assert_eq!(r.name().parse::<Rule>(), Ok(*r));
        }
        let e = "hostpath".parse::<Rule>().expect_err("unknown");
        assert!(e.to_string().contains("host-path") && e.to_string().contains("smb-volumes"), "{e}");
        let distinct: BTreeSet<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(distinct.len(), Rule::ALL.len());
        assert!(Rule::NODE_LEVEL.iter().all(|r| Rule::ALL.contains(r)));
    }

    #[test]
    fn a_namespace_grants_rules_and_taints_on_top_of_the_operators_and_names_what_it_cannot_read() {
        let operator = Policy::allowing([Rule::HostPath]);
        let ns = operator.for_namespace(&annotations(&[
            (ALLOW_ANNOTATION, " host-process, node-agent,,hostprocess "),
            (ALLOWED_TAINTS_ANNOTATION, "dedicated=team-a, sku , =x"),
        ]));
        for rule in [Rule::HostPath, Rule::HostProcess, Rule::NodeAgent] {
            assert!(ns.policy.allows(rule), "{rule}");
        }
        assert!(!ns.policy.allows(Rule::SmbVolumes));
        assert_eq!(ns.unreadable, vec!["winapp.dev/allow: hostprocess", "winapp.dev/allowed-taints: =x"]);
        // Another namespace gets only the operator's.
        let other = operator.for_namespace(&BTreeMap::new());
        assert_eq!(other.policy, operator);
        assert!(other.unreadable.is_empty());
    }

    #[test]
    fn tolerations_pass_for_the_pool_conventions_and_granted_taints_only() {
        let t = |key, exists, value| Tolerating { key, exists, value };
        let none = Policy::default();
        for ok in [t("os", false, "windows"), t("os", false, "Windows"), t("node.kubernetes.io/os", false, "windows")] {
            assert!(none.allows_toleration(ok), "{ok:?}");
        }
        assert!(none.allows_toleration(t("node.kubernetes.io/unreachable", true, "")));
        for refused in [t("os", true, ""), t("os", false, "linux"), t("dedicated", false, "team-b"), t("gpu", true, "")]
        {
            assert!(!none.allows_toleration(refused), "{refused:?}");
        }
        let team =
            Policy::default().with_taints(["dedicated=team-a".parse().expect("grant"), "gpu".parse().expect("grant")]);
        assert!(team.allows_toleration(t("dedicated", false, "team-a")));
        assert!(!team.allows_toleration(t("dedicated", false, "team-b")), "another team's pool");
        assert!(!team.allows_toleration(t("dedicated", true, "")), "Exists reaches every team's pool");
        assert!(team.allows_toleration(t("gpu", true, "")), "a key grant allows any value");
        assert!("".parse::<TaintGrant>().is_err() && "a b".parse::<TaintGrant>().is_err());
        assert_eq!("k=v".parse::<TaintGrant>().expect("grant").to_string(), "k=v");
    }

    #[test]
    fn a_refusal_says_where_what_and_how_to_allow_it() {
        let r = Refusal {
            rule: Rule::HostProcess,
            path: "spec.hostProcess".into(),
            what: "running as a HostProcess container".into(),
            remedy: "remove it".into(),
        };
        let msg = r.to_string();
        assert!(msg.starts_with("spec.hostProcess: running as a HostProcess container is not allowed"), "{msg}");
        for words in
            ["rule host-process", "winapp.dev/allow", "--allow host-process", "ask the platform team to allow rule"]
        {
            assert!(msg.contains(words), "{words}: {msg}");
        }
        assert!(!r.in_pod_template());
        let taint = Refusal { rule: Rule::OtherTaints, ..r };
        assert!(taint.to_string().contains(ALLOWED_TAINTS_ANNOTATION), "{taint}");
    }
}
