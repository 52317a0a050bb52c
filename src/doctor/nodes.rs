//! Pure checks of the Windows nodes: builds and readiness, requested releases, taints against the
//! operator's default placement, and container runtimes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;

use super::facts::{NodeFacts, TaintFacts};
use super::{Check, Finding, Level, name_list};
use crate::api::WindowsVersion;
use crate::build::workload::WINDOWS_BUILD_LABEL;

/// Taints that Kubernetes and the cluster autoscaler put on nodes for their state; readiness is
/// reported on its own, and pods are not expected to tolerate these.
const CONDITION_TAINTS: &[&str] = &[
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/unschedulable",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/network-unavailable",
    "node.kubernetes.io/out-of-service",
    "node.cloudprovider.kubernetes.io/uninitialized",
    "node.cloudprovider.kubernetes.io/shutdown",
    "ToBeDeletedByClusterAutoscaler",
    "DeletionCandidateOfClusterAutoscaler",
];

/// At most this many node names in one message.
const MAX_NAMES: usize = 6;

fn windows(nodes: &[NodeFacts]) -> Vec<&NodeFacts> {
    nodes.iter().filter(|n| n.is_windows()).collect()
}

/// `ltsc2022 (10.0.20348)`, or what is known of an unknown build.
pub(crate) fn describe_build(build: Option<&str>) -> String {
    match build {
        Some(b) => match WindowsVersion::from_build(b) {
            Some(v) => format!("{} ({b})", v.as_str()),
            None => format!("build {b} (no LTSC release the operator knows)"),
        },
        None => format!("no {WINDOWS_BUILD_LABEL} label"),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Windows nodes by build, and how many can take new pods.
pub fn windows_nodes(nodes: &[NodeFacts]) -> Vec<Finding> {
    let win = windows(nodes);
    if win.is_empty() {
        return vec![Finding::error(
            Check::WindowsNodes,
            "no Windows nodes",
            format!(
                "none of the {} nodes runs Windows (label kubernetes.io/os=windows): WindowsApps stay Stalled with \
                 NoMatchingWindowsNodes; add a Windows Server 2019, 2022 or 2025 node pool",
                nodes.len()
            ),
        )];
    }
    let mut by_build: BTreeMap<Option<&str>, Vec<&NodeFacts>> = BTreeMap::new();
    for n in &win {
        by_build.entry(n.windows_build.as_deref()).or_default().push(n);
    }
    let groups: Vec<String> = by_build
        .iter()
        .map(|(build, ns)| {
            let usable = ns.iter().filter(|n| n.usable()).count();
            format!("{}: {}, {usable} usable", describe_build(*build), plural(ns.len(), "node", "nodes"))
        })
        .collect();
    let usable = win.iter().filter(|n| n.usable()).count();
    let not_usable: Vec<String> = win
        .iter()
        .filter(|n| !n.usable())
        .map(|n| format!("{} ({})", n.name, if n.ready { "cordoned" } else { "NotReady" }))
        .collect();
    let unlabelled: Vec<&str> = win.iter().filter(|n| n.windows_build.is_none()).map(|n| n.name.as_str()).collect();
    let known_builds = by_build.keys().filter(|b| b.is_some()).count();

    let mut message = vec![groups.join("; ")];
    if usable == 0 {
        message.push(
            "no Windows node is Ready and schedulable: WindowsApps stay Stalled with NoMatchingWindowsNodes until one is; \
             look at `kubectl describe node` of the nodes"
                .into(),
        );
    } else if !not_usable.is_empty() {
        message.push(format!(
            "not taking new pods: {}; look at `kubectl describe node` of each",
            name_list(&not_usable, MAX_NAMES)
        ));
    }
    if !unlabelled.is_empty() {
        message.push(format!(
            "without {WINDOWS_BUILD_LABEL}: {}; apps that set spec.windows.version never run there (the kubelet sets \
             this label: check how these nodes registered)",
            name_list(&unlabelled, MAX_NAMES)
        ));
    }
    if known_builds > 1 {
        message.push(
            "several Windows builds: an app without spec.windows.version may land on any of them, and a Windows \
             container image runs only on its own build; set spec.windows.version on each app"
                .into(),
        );
    }
    let level = if usable == 0 {
        Level::Error
    } else if !not_usable.is_empty() || !unlabelled.is_empty() {
        Level::Warning
    } else {
        Level::Ok
    };
    let title = format!("{}, {usable} Ready and schedulable", plural(win.len(), "Windows node", "Windows nodes"));
    vec![Finding::new(Check::WindowsNodes, level, title, message.join("; "))]
}

/// One finding per release asked for with `--windows-version`.
pub fn windows_versions(nodes: &[NodeFacts], wanted: &[WindowsVersion]) -> Vec<Finding> {
    let mut wanted = wanted.to_vec();
    wanted.sort();
    wanted.dedup();
    let win = windows(nodes);
    wanted
        .into_iter()
        .map(|v| {
            let of_build: Vec<&&NodeFacts> =
                win.iter().filter(|n| n.windows_build.as_deref() == Some(v.build())).collect();
            let usable = of_build.iter().filter(|n| n.usable()).count();
            let release = format!("{} ({})", v.as_str(), v.build());
            if usable > 0 {
                Finding::ok(
                    Check::WindowsVersion,
                    format!("{release}: {} Ready", plural(usable, "node", "nodes")),
                    format!("apps with spec.windows.version: {} can be scheduled", v.as_str()),
                )
            } else {
                let server = v.as_str().trim_start_matches("ltsc");
                let unusable = if of_build.is_empty() {
                    String::new()
                } else {
                    format!(" ({} of this build, none Ready and schedulable)", plural(of_build.len(), "node", "nodes"))
                };
                Finding::error(
                    Check::WindowsVersion,
                    format!("no {release} node"),
                    format!(
                        "no Ready, schedulable Windows node has {WINDOWS_BUILD_LABEL}={}{unusable}: apps with \
                         spec.windows.version: {} stay Stalled with NoMatchingWindowsNodes; add Windows Server {server} \
                         nodes, or drop --windows-version {} if no app needs it",
                        v.build(),
                        v.as_str(),
                        v.as_str()
                    ),
                )
            }
        })
        .collect()
}

/// Kubernetes' rule (`Toleration.ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &TaintFacts) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    if t.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match t.operator.as_deref() {
        Some("Exists") => true,
        None | Some("") | Some("Equal") => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        Some(_) => false,
    }
}

fn show_toleration(t: &Toleration) -> String {
    let key = t.key.as_deref().unwrap_or("*");
    let effect = t.effect.as_deref().unwrap_or("*");
    match (t.operator.as_deref(), t.value.as_deref()) {
        (Some("Exists"), _) => format!("{key}:{effect}"),
        (_, Some(v)) if !v.is_empty() => format!("{key}={v}:{effect}"),
        _ => format!("{key}:{effect}"),
    }
}

/// NoSchedule and NoExecute taints of the Windows nodes, against the default placement's tolerations.
pub fn taints(nodes: &[NodeFacts], default_tolerations: &[Toleration]) -> Vec<Finding> {
    let win = windows(nodes);
    if win.is_empty() {
        return Vec::new();
    }
    let mut by_taint: BTreeMap<&TaintFacts, Vec<&str>> = BTreeMap::new();
    for n in win {
        for t in &n.taints {
            if matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !CONDITION_TAINTS.contains(&t.key.as_str()) {
                by_taint.entry(t).or_default().push(&n.name);
            }
        }
    }
    let defaults: Vec<String> = default_tolerations.iter().map(show_toleration).collect();
    let defaults = defaults.join(", ");
    let mut findings = Vec::new();
    let mut tolerated = Vec::new();
    for (taint, names) in &by_taint {
        if default_tolerations.iter().any(|t| tolerates(t, taint)) {
            tolerated.push(format!("{taint} ({})", plural(names.len(), "node", "nodes")));
            continue;
        }
        let value = taint.value.as_deref().unwrap_or_default();
        let toleration = if value.is_empty() {
            format!("{{key: {}, operator: Exists, effect: {}}}", taint.key, taint.effect)
        } else {
            format!("{{key: {}, operator: Equal, value: {value}, effect: {}}}", taint.key, taint.effect)
        };
        let fix = if taint.effect == "NoSchedule" {
            format!(
                "if it marks your Windows pool, set spec.windows.toleration: {{key: {}, value: {value}}} on each \
                 WindowsApp (it replaces the default); otherwise add {toleration} to spec.windows.tolerations",
                taint.key
            )
        } else {
            format!("add {toleration} to spec.windows.tolerations of the WindowsApps that should run there")
        };
        let effect =
            if taint.effect == "NoExecute" { "not scheduled there, and evicted" } else { "not scheduled there" };
        findings.push(Finding::warning(
            Check::Taints,
            format!("taint {taint} is not tolerated"),
            format!(
                "on {}: WindowsApps with the default placement (tolerating {defaults}) are {effect}; {fix}",
                name_list(names, MAX_NAMES)
            ),
        ));
    }
    if findings.is_empty() {
        findings.push(if tolerated.is_empty() {
            Finding::ok(
                Check::Taints,
                "Windows nodes have no NoSchedule or NoExecute taints",
                "WindowsApps can run on every Windows node; taint the Windows pool (for example os=windows:NoSchedule, \
                 which WindowsApps tolerate by default) so that Linux pods without a nodeSelector stay off it",
            )
        } else {
            Finding::ok(
                Check::Taints,
                "Windows node taints are tolerated",
                format!("the default placement ({defaults}) tolerates {}", tolerated.join(", ")),
            )
        });
    }
    findings
}

/// Container runtime, kubelet and OS image of the Windows nodes.
pub fn runtimes(nodes: &[NodeFacts]) -> Vec<Finding> {
    let win = windows(nodes);
    if win.is_empty() {
        return Vec::new();
    }
    let mut by_info: BTreeMap<(&str, &str, &str), Vec<&str>> = BTreeMap::new();
    for n in &win {
        by_info
            .entry((n.container_runtime.as_str(), n.kubelet_version.as_str(), n.os_image.as_str()))
            .or_default()
            .push(&n.name);
    }
    let shown = |s: &str| if s.is_empty() { "unknown".to_owned() } else { s.to_owned() };
    let summary: Vec<String> = by_info
        .iter()
        .map(|((rt, kubelet, image), names)| {
            format!("{}, kubelet {}, {}: {}", shown(rt), shown(kubelet), shown(image), name_list(names, MAX_NAMES))
        })
        .collect();
    let mut findings = vec![Finding::ok(Check::Runtime, "Windows node software", summary.join("; "))];
    let mut other: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in &win {
        if n.container_runtime.split("://").next() != Some("containerd") {
            other.entry(n.container_runtime.as_str()).or_default().push(&n.name);
        }
    }
    for (runtime, names) in other {
        let what = if runtime.is_empty() { "no container runtime".to_owned() } else { runtime.to_owned() };
        findings.push(Finding::warning(
            Check::Runtime,
            format!("{} report {what}", name_list(&names, MAX_NAMES)),
            "Kubernetes supports only containerd on Windows nodes (dockershim was removed in 1.24), and HostProcess \
             containers need containerd 1.6 or later: move these nodes to containerd",
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toleration_rules_follow_kubernetes() {
        let taint = TaintFacts { key: "os".into(), value: Some("windows".into()), effect: "NoSchedule".into() };
        let t = |key: Option<&str>, op: Option<&str>, value: Option<&str>, effect: Option<&str>| Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            ..Toleration::default()
        };
        assert!(tolerates(&t(Some("os"), Some("Equal"), Some("windows"), Some("NoSchedule")), &taint));
        assert!(tolerates(&t(Some("os"), None, Some("windows"), None), &taint));
        assert!(tolerates(&t(Some("os"), Some("Exists"), None, None), &taint));
        assert!(tolerates(&t(None, Some("Exists"), None, None), &taint));
        assert!(!tolerates(&t(Some("os"), Some("Equal"), Some("linux"), None), &taint));
        assert!(!tolerates(&t(Some("os"), Some("Equal"), Some("windows"), Some("NoExecute")), &taint));
        assert!(!tolerates(&t(Some("node.kubernetes.io/os"), Some("Exists"), None, None), &taint));
    }
}
