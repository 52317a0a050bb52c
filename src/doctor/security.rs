//! Pure check of Pod Security: namespaces that host HostProcess WindowsApps must admit privileged pods.

use std::collections::BTreeMap;

use super::facts::{AppFacts, Lookup};
use super::{Check, Finding, name_list, not_checked};

/// The Pod Security admission label that decides which pods a namespace admits.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// One error per namespace whose Pod Security level refuses the HostProcess pods of its WindowsApps.
pub fn pod_security(
    apps: &Lookup<Option<Vec<AppFacts>>>,
    namespaces: &Lookup<BTreeMap<String, BTreeMap<String, String>>>,
) -> Vec<Finding> {
    if let Some(f) = not_checked(Check::PodSecurity, "WindowsApps", apps) {
        return vec![f];
    }
    let Some(Some(apps)) = apps.found() else {
        return vec![Finding::ok(
            Check::PodSecurity,
            "no WindowsApps yet",
            format!(
                "the WindowsApp CRD is not installed, so no namespace needs privileged pods yet; HostProcess apps \
                 (spec.hostProcess) will need namespaces without {ENFORCE_LABEL} or with it set to privileged"
            ),
        )];
    };
    let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for app in apps.iter().filter(|a| a.host_process) {
        by_namespace.entry(&app.namespace).or_default().push(&app.name);
    }
    if by_namespace.is_empty() {
        return vec![Finding::ok(
            Check::PodSecurity,
            "no HostProcess WindowsApps",
            format!("{} WindowsApps, none with spec.hostProcess: no namespace needs privileged pods", apps.len()),
        )];
    }
    if let Some(f) = not_checked(Check::PodSecurity, "namespaces", namespaces) {
        return vec![f];
    }
    let labels = namespaces.found().cloned().unwrap_or_default();
    let mut findings = Vec::new();
    let mut allowed = Vec::new();
    for (namespace, names) in by_namespace {
        let Some(ns_labels) = labels.get(namespace) else {
            continue; // deleted since the apps were listed
        };
        match ns_labels.get(ENFORCE_LABEL).map(String::as_str) {
            None | Some("privileged") => allowed.push(namespace),
            Some(level) => findings.push(Finding::error(
                Check::PodSecurity,
                format!("namespace {namespace} refuses HostProcess pods"),
                format!(
                    "it enforces Pod Security {level:?} ({ENFORCE_LABEL}={level}), which refuses the pods of the \
                     HostProcess WindowsApps {}: they are never created; allow them with `kubectl label --overwrite \
                     namespace {namespace} {ENFORCE_LABEL}=privileged`, or move the apps to a namespace for node agents",
                    name_list(&names, 5)
                ),
            )),
        }
    }
    if !allowed.is_empty() {
        findings.push(Finding::ok(
            Check::PodSecurity,
            "HostProcess WindowsApps are admitted",
            format!(
                "namespaces {} allow privileged pods ({ENFORCE_LABEL} privileged or absent; when absent, the API \
                 server's default level applies, privileged unless its admission configuration says otherwise)",
                name_list(&allowed, 5)
            ),
        ));
    }
    findings
}
