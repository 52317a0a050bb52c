//! Pure check of what the operator's policy grants, and where: to every app by the operator's
//! flags and environment (`--allow`, `--allow-pod-override`, `WINAPP_ALLOW`,
//! `WINAPP_ALLOW_POD_OVERRIDES`; `--allow-taint`, `WINAPP_ALLOW_TAINTS`), and to the apps of one
//! namespace by the Namespace's annotations `winapp.dev/allow` and `winapp.dev/allowed-taints`.

use std::collections::BTreeSet;

use super::facts::{DeploymentFacts, EnvFacts, Lookup, NamespaceGrantFacts};
use super::{Check, Finding, name_list, not_checked};
use crate::policy::Rule;

pub use crate::policy::{ALLOW_ANNOTATION, ALLOWED_TAINTS_ANNOTATION};
/// The operator's environment: rules granted to every app.
pub const ALLOW_ENV: &str = "WINAPP_ALLOW";
/// The former name of [`ALLOW_ENV`], still read by the operator.
pub const LEGACY_ALLOW_ENV: &str = "WINAPP_ALLOW_POD_OVERRIDES";
/// The operator's environment: taints every app may tolerate.
pub const ALLOW_TAINTS_ENV: &str = "WINAPP_ALLOW_TAINTS";
/// The operator's environment: the one namespace it watches (as `--namespace`).
const WATCH_NAMESPACE_ENV: &str = "WATCH_NAMESPACE";

/// Rules that reach the node itself: granted to every app, any app team could run on a node's host.
pub fn node_level() -> Vec<&'static str> {
    Rule::NODE_LEVEL.iter().map(|r| r.name()).collect()
}

/// Every rule name of the operator's policy, in the order `--help` lists them.
pub fn rule_names() -> Vec<&'static str> {
    Rule::ALL.iter().map(|r| r.name()).collect()
}

/// What one operator Deployment grants every app, read from its container's arguments and
/// environment the way the operator reads them (flags and variables add up).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperatorGrants {
    /// Rules, sorted and once each.
    pub rules: BTreeSet<String>,
    /// Taints (`key` or `key=value`), sorted and once each.
    pub taints: BTreeSet<String>,
    /// Variables of the policy set from elsewhere (`valueFrom`): doctor cannot tell their value.
    pub unknown: Vec<String>,
    /// `--namespace` or `WATCH_NAMESPACE`: the one namespace the operator watches.
    pub watch_namespace: Option<String>,
}

/// Comma-separated entries, trimmed, without empty ones.
fn entries(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned)
}

/// The value of `flag` in `arg` (`--flag=value`), or `Some("")` when `arg` is the flag alone and
/// its value is the next argument; `None` when `arg` is another flag.
fn flag_value<'a>(arg: &'a str, flag: &str) -> Option<&'a str> {
    let rest = arg.strip_prefix(flag)?;
    if rest.is_empty() { Some("") } else { rest.strip_prefix('=') }
}

/// Pure: the grants of a container with `args` (its command and arguments) and `env`.
pub fn operator_grants(args: &[String], env: &[EnvFacts]) -> OperatorGrants {
    let mut g = OperatorGrants::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        for flag in ["--allow", "--allow-pod-override", "--allow-taint", "--namespace"] {
            let Some(value) = flag_value(arg, flag) else { continue };
            let value = if value.is_empty() { args.next().map(String::as_str).unwrap_or_default() } else { value };
            match flag {
                "--allow-taint" => g.taints.extend(entries(value)),
                "--namespace" => g.watch_namespace = Some(value.to_owned()).filter(|v| !v.is_empty()),
                _ => g.rules.extend(entries(value)),
            }
        }
    }
    for var in env {
        let known = [ALLOW_ENV, LEGACY_ALLOW_ENV, ALLOW_TAINTS_ENV, WATCH_NAMESPACE_ENV];
        if !known.contains(&var.name.as_str()) {
            continue;
        }
        let Some(value) = &var.value else {
            g.unknown.push(var.name.clone());
            continue;
        };
        match var.name.as_str() {
            ALLOW_TAINTS_ENV => g.taints.extend(entries(value)),
            WATCH_NAMESPACE_ENV => {
                if g.watch_namespace.is_none() && !value.is_empty() {
                    g.watch_namespace = Some(value.clone());
                }
            }
            _ => g.rules.extend(entries(value)),
        }
    }
    g
}

/// `rules a, b; taints k=v`, or `nothing`.
fn describe(rules: &BTreeSet<String>, taints: &BTreeSet<String>) -> String {
    let mut parts = Vec::new();
    if !rules.is_empty() {
        parts.push(format!("rules {}", rules.iter().cloned().collect::<Vec<_>>().join(", ")));
    }
    if !taints.is_empty() {
        parts.push(format!("taints {}", taints.iter().cloned().collect::<Vec<_>>().join(", ")));
    }
    if parts.is_empty() { "nothing".to_owned() } else { parts.join("; ") }
}

/// Per namespace, what its annotations grant: `team-a (rules gmsa; taints spot)`.
fn per_namespace(grants: &[NamespaceGrantFacts], scope: Option<&str>) -> (Vec<String>, BTreeSet<String>) {
    let mut described = Vec::new();
    let mut rules_seen = BTreeSet::new();
    for n in grants.iter().filter(|n| scope.is_none_or(|s| s == n.namespace)) {
        let rules: BTreeSet<String> = n.allow.as_deref().map(|a| entries(a).collect()).unwrap_or_default();
        let taints: BTreeSet<String> = n.allowed_taints.as_deref().map(|a| entries(a).collect()).unwrap_or_default();
        if rules.is_empty() && taints.is_empty() {
            continue;
        }
        rules_seen.extend(rules.iter().cloned());
        described.push(format!("{} ({})", n.namespace, describe(&rules, &taints)));
    }
    (described, rules_seen)
}

/// Rule names among `rules` that this binary does not know.
fn unknown_rules<'a>(rules: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let known = rule_names();
    rules.into_iter().filter(|r| !known.contains(&r.as_str())).cloned().collect()
}

const HOW_PER_NAMESPACE: &str = "grant them only to the namespaces whose apps need them, with the Namespace annotation \
     winapp.dev/allow (`kubectl annotate namespace NS winapp.dev/allow=host-process,node-agent`), and take them off \
     the operator's --allow / WINAPP_ALLOW (Helm: policy.allow)";

/// One finding per operator Deployment: what its policy grants every app and each namespace.
pub fn policy(
    deployments: &Lookup<Vec<DeploymentFacts>>,
    namespaces: &Lookup<Vec<NamespaceGrantFacts>>,
) -> Vec<Finding> {
    if let Some(f) = not_checked(Check::OperatorPolicy, "Deployments", deployments) {
        return vec![f];
    }
    let mut findings: Vec<Finding> =
        not_checked(Check::OperatorPolicy, "namespaces' annotations", namespaces).into_iter().collect();
    let grants = namespaces.found().cloned().unwrap_or_default();
    let deployments = deployments.found().cloned().unwrap_or_default();
    if deployments.is_empty() {
        let (described, _) = per_namespace(&grants, None);
        let where_ = if described.is_empty() { "none".to_owned() } else { name_list(&described, 8) };
        findings.push(Finding::ok(
            Check::OperatorPolicy,
            "no operator to read the policy of yet",
            format!(
                "what the operator grants every app is in its flags and environment, read once it is installed; \
                 namespaces grant their apps by annotation ({ALLOW_ANNOTATION}, {ALLOWED_TAINTS_ANNOTATION}): {where_}"
            ),
        ));
        return findings;
    }
    for d in &deployments {
        let id = format!("{}/{}", d.namespace, d.name);
        let g = operator_grants(&d.args, &d.env);
        let (described, namespace_rules) = per_namespace(&grants, g.watch_namespace.as_deref());
        let scope = match &g.watch_namespace {
            Some(ns) => format!(" (it watches the namespace {ns} only)"),
            None => String::new(),
        };
        let per_ns = if described.is_empty() { "none".to_owned() } else { name_list(&described, 8) };
        let granted = format!("every app: {}; per namespace{scope}: {per_ns}", describe(&g.rules, &g.taints));
        let node_level: Vec<&str> = node_level().into_iter().filter(|r| g.rules.contains(*r)).collect();
        let unknown = unknown_rules(g.rules.iter().chain(&namespace_rules));
        if !node_level.is_empty() {
            findings.push(Finding::warning(
                Check::OperatorPolicy,
                format!("operator {id} grants node-level powers to every app: {}", node_level.join(", ")),
                format!(
                    "{granted}. Any app team that can create a WindowsApp reaches the Windows nodes themselves with \
                     these; {HOW_PER_NAMESPACE}"
                ),
            ));
        } else if !g.unknown.is_empty() {
            findings.push(Finding::warning(
                Check::OperatorPolicy,
                format!("cannot tell all that operator {id} grants every app"),
                format!(
                    "{} set from a ConfigMap, Secret or field (valueFrom), which doctor does not read; besides: {granted}",
                    g.unknown.join(", ")
                ),
            ));
        } else {
            findings.push(Finding::ok(
                Check::OperatorPolicy,
                format!("operator {id}: policy granted"),
                format!("{granted}; no node-level power is granted to every app"),
            ));
        }
        if !unknown.is_empty() {
            findings.push(Finding::warning(
                Check::OperatorPolicy,
                format!("unknown policy rules for operator {id}: {}", unknown.join(", ")),
                format!(
                    "not rules this winapp-operator knows ({}); the operator refuses to start with an unknown --allow \
                     rule, and a namespace annotation naming one grants nothing: fix the name",
                    rule_names().join(", ")
                ),
            ));
        }
    }
    findings
}
