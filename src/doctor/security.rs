//! Pure check of Pod Security: namespaces that host HostProcess WindowsApps must admit privileged
//! pods, and every namespace with WindowsApps should say what it admits (an enforce label).

use std::collections::BTreeMap;

use super::facts::{AppFacts, Lookup};
use super::{Check, Finding, name_list, not_checked};

/// The Pod Security admission label that decides which pods a namespace admits.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// The level to suggest for a namespace: HostProcess pods need `privileged`; the operator's other
/// pods pass `baseline` (not `restricted`, which wants runAsNonRoot of Windows pods too).
fn suggested_level(host_process: bool) -> &'static str {
    if host_process { "privileged" } else { "baseline" }
}

/// An error per namespace whose Pod Security level refuses the HostProcess pods of its
/// WindowsApps; a warning per namespace with WindowsApps and no enforce label; ok for the rest.
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
    if apps.is_empty() {
        return vec![Finding::ok(Check::PodSecurity, "no WindowsApps yet", "no namespace hosts WindowsApps yet")];
    }
    // Namespace -> (apps, HostProcess apps).
    let mut by_namespace: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for app in apps {
        let entry = by_namespace.entry(&app.namespace).or_default();
        entry.0.push(&app.name);
        if app.host_process {
            entry.1.push(&app.name);
        }
    }
    if let Some(f) = not_checked(Check::PodSecurity, "namespaces", namespaces) {
        return vec![f];
    }
    let labels = namespaces.found().cloned().unwrap_or_default();
    let mut findings = Vec::new();
    let mut enforced = Vec::new();
    let mut unlabelled = Vec::new();
    for (namespace, (names, host_process)) in by_namespace {
        let Some(ns_labels) = labels.get(namespace) else {
            continue; // deleted since the apps were listed
        };
        match ns_labels.get(ENFORCE_LABEL).map(String::as_str) {
            None => unlabelled.push((namespace, !host_process.is_empty())),
            Some(level) if level != "privileged" && !host_process.is_empty() => findings.push(Finding::error(
                Check::PodSecurity,
                format!("namespace {namespace} refuses HostProcess pods"),
                format!(
                    "it enforces Pod Security {level:?} ({ENFORCE_LABEL}={level}), which refuses the pods of the \
                     HostProcess WindowsApps {}: they are never created; allow them with `kubectl label --overwrite \
                     namespace {namespace} {ENFORCE_LABEL}=privileged`, or move the apps to a namespace for node agents",
                    name_list(&host_process, 5)
                ),
            )),
            Some(level) => enforced.push(format!("{namespace} ({level}, {} apps)", names.len())),
        }
    }
    for (namespace, host_process) in unlabelled {
        let level = suggested_level(host_process);
        let which =
            if host_process { "its HostProcess apps need privileged" } else { "the operator's pods pass baseline" };
        findings.push(Finding::warning(
            Check::PodSecurity,
            format!("namespace {namespace} has WindowsApps but no Pod Security level"),
            format!(
                "without {ENFORCE_LABEL} its pods are admitted at the API server's default level (privileged unless \
                 its admission configuration says otherwise): nothing but the operator's policy limits what runs \
                 there; say which pods it admits ({which}): `kubectl label namespace {namespace} {ENFORCE_LABEL}={level}`"
            ),
        ));
    }
    if !enforced.is_empty() {
        findings.push(Finding::ok(
            Check::PodSecurity,
            "namespaces with WindowsApps enforce Pod Security",
            format!("{} admit the pods of their WindowsApps", name_list(&enforced, 5)),
        ));
    }
    findings
}
