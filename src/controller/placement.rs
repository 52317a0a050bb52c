//! The Windows nodes an app's pods can run on, judged as the scheduler will: their labels,
//! readiness and taints against the pods' node selector and tolerations (with a RuntimeClass's
//! scheduling added), from the caches.

use k8s_openapi::api::core::v1::{Node, PodSpec, Taint, Toleration};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::status::NodeCheck;
use crate::build::workload;
use crate::validate::ValidatedApp;

/// The Windows nodes the pods can run on, judged by the pod spec the operator applies (its node
/// selector and tolerations, `podTemplate` overrides included), and the taints that make other
/// nodes with the right labels unusable.
pub fn nodes(ctx: &Context, app: &ValidatedApp, pod: Option<&PodSpec>) -> NodeCheck {
    let p = &app.placement;
    let build = p.version.map(|v| v.build().to_owned());
    let mut selector = pod.and_then(|s| s.node_selector.clone()).unwrap_or_default();
    let mut tolerations = pod.and_then(|s| s.tolerations.clone()).unwrap_or_default();
    // A RuntimeClass adds its scheduling at admission: judge the nodes as the scheduler will.
    let mut runtime_class_missing = None;
    if let Some(rc) = pod.and_then(|s| s.runtime_class_name.as_deref()) {
        match ctx.stores.runtime_classes.get(&ObjectRef::new(rc)) {
            Some(class) => {
                if let Some(scheduling) = &class.scheduling {
                    selector.extend(scheduling.node_selector.clone().unwrap_or_default());
                    tolerations.extend(scheduling.tolerations.clone().unwrap_or_default());
                }
            }
            None => runtime_class_missing = Some(rc.to_owned()),
        }
    }
    let mut ready_matching = Vec::new();
    let mut tolerated_taints = std::collections::BTreeSet::new();
    let mut untolerated = std::collections::BTreeSet::new();
    let mut unlabeled = Vec::new();
    for n in ctx.stores.nodes.state().iter() {
        let labels = n.labels();
        let windows = labels.get(workload::OS_LABEL).map(String::as_str) == Some("windows");
        let selected = windows && selector.iter().all(|(k, v)| labels.get(k) == Some(v));
        if !windows || !node_ready(n) {
            continue;
        }
        let blocking = blocking_taints(n);
        let refused: Vec<String> =
            blocking.iter().filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t))).map(taint_text).collect();
        if !selected {
            if refused.is_empty()
                && let Some(found) = unlabeled_of_build(n, &selector)
            {
                unlabeled.push(found);
            }
            continue;
        }
        if refused.is_empty() {
            ready_matching.push(n.name_any());
            tolerated_taints.extend(blocking.iter().map(taint_text));
        } else {
            untolerated.extend(refused.into_iter().map(|t| format!("{t} ({})", n.name_any())));
        }
    }
    ready_matching.sort();
    unlabeled.sort();
    NodeCheck {
        wanted: p.version.map_or_else(|| "any build".to_owned(), |v| format!("{} ({})", v.as_str(), v.build())),
        build,
        ready_matching: ready_matching.len(),
        names: ready_matching.into_iter().take(5).collect(),
        tolerated_taints: tolerated_taints.into_iter().collect(),
        untolerated: untolerated.into_iter().take(5).collect(),
        runtime_class_missing,
        unlabeled: unlabeled.into_iter().take(5).collect(),
    }
}

/// A Windows node that the pods would select but for the `node.kubernetes.io/windows-build`
/// label it lacks (a node scaled from zero, a node image that does not set it), while its kernel
/// says it runs the selected build (or does not say): `name (kernel 10.0.20348.2227)`. A node
/// that runs another build is no candidate: the app's image would not run there.
fn unlabeled_of_build(n: &Node, selector: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let labels = n.labels();
    let build = selector.get(workload::WINDOWS_BUILD_LABEL)?;
    if labels.contains_key(workload::WINDOWS_BUILD_LABEL)
        || !selector.iter().all(|(k, v)| k == workload::WINDOWS_BUILD_LABEL || labels.get(k) == Some(v))
    {
        return None;
    }
    let kernel = n.status.as_ref().and_then(|s| s.node_info.as_ref()).map(|i| i.kernel_version.as_str());
    match kernel.filter(|k| !k.is_empty()) {
        Some(k) if k == build || k.starts_with(&format!("{build}.")) => Some(format!("{} (kernel {k})", n.name_any())),
        Some(_) => None,
        None => Some(n.name_any()),
    }
}

/// The Windows nodes that are cordoned (`spec.unschedulable`): those a drain empties.
pub fn cordoned_windows_nodes(ctx: &Context) -> std::collections::BTreeSet<String> {
    ctx.stores
        .nodes
        .state()
        .iter()
        .filter(|n| n.labels().get(workload::OS_LABEL).map(String::as_str) == Some("windows"))
        .filter(|n| n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false))
        .map(|n| n.name_any())
        .collect()
}

/// NoSchedule and NoExecute taints: the ones that keep pods off a node.
fn blocking_taints(n: &Node) -> Vec<Taint> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect != "PreferNoSchedule")
        .collect()
}

fn taint_text(t: &Taint) -> String {
    format!("{}={}:{}", t.key, t.value.as_deref().unwrap_or(""), t.effect)
}

/// Kubernetes' matching of a toleration against a taint.
fn tolerates(tol: &Toleration, t: &Taint) -> bool {
    let key_ok = tol.key.as_deref().is_none_or(|k| k.is_empty() || k == t.key);
    let effect_ok = tol.effect.as_deref().is_none_or(|e| e.is_empty() || e == t.effect);
    let value_ok = tol.operator.as_deref() == Some("Exists")
        || tol.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("");
    key_ok && effect_ok && value_ok
}

/// Whether a node is Ready and schedulable.
fn node_ready(n: &Node) -> bool {
    let schedulable = !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    schedulable && ready
}
