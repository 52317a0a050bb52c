//! The spec's own fields that reach beyond the app's namespace: HostProcess containers, a pod
//! on every Windows node, tolerations of other pools, a RuntimeClass, SMB PersistentVolumes.

use k8s_openapi::api::core::v1::Toleration;

use super::{Policy, Refusal, Rule, Tolerating};
use crate::api::WindowsAppSpec;

/// Every power of `spec` (outside `podTemplate`, see [`super::pod::check`]) that `policy` does
/// not allow, in spec order.
pub fn check(spec: &WindowsAppSpec, policy: &Policy) -> Vec<Refusal> {
    let mut found = Vec::new();
    let mut refuse = |rule: Rule, path: String, what: String, remedy: &str| {
        if !policy.allows(rule) {
            found.push(Refusal { rule, path, what, remedy: remedy.to_owned() });
        }
    };
    if spec.node_agent == Some(true) {
        refuse(
            Rule::NodeAgent,
            "spec.nodeAgent".into(),
            "one pod on every Windows node (a DaemonSet)".into(),
            "run the app as a Deployment: remove spec.nodeAgent",
        );
    }
    if let Some(h) = &spec.host_process {
        let user = h.run_as_user_name.as_deref().unwrap_or(crate::validate::defaults::HOST_PROCESS_USER);
        refuse(
            Rule::HostProcess,
            "spec.hostProcess".into(),
            format!("a HostProcess container (runs on the node as {user}, with the node's network)"),
            "remove spec.hostProcess (an app's own container needs none of the node's powers)",
        );
    }
    let w = &spec.windows;
    if let Some(t) = &w.toleration {
        let tolerating = Tolerating { key: &t.key, exists: false, value: &t.value };
        if !policy.allows_toleration(tolerating) {
            refuse(
                Rule::OtherTaints,
                "spec.windows.toleration".into(),
                format!("tolerating the taint {}={}, which no Windows pool convention uses", t.key, t.value),
                "remove spec.windows.toleration to tolerate the Windows pool conventions",
            );
        }
    }
    for (i, t) in w.tolerations.iter().enumerate() {
        let path = format!("spec.windows.tolerations[{i}]");
        let exists = t.operator.as_deref() == Some("Exists");
        let key = t.key.as_deref().unwrap_or_default();
        if key.is_empty() && exists {
            refuse(Rule::TolerateAll, path, "tolerating every taint".into(), "tolerate the taints by key");
        } else if !policy.allows_toleration(tolerating(t)) {
            refuse(
                Rule::OtherTaints,
                path,
                format!("tolerating the taint {}", describe(t)),
                "tolerate only the Windows pool taints",
            );
        }
    }
    if w.runtime_class_name.is_some() {
        refuse(
            Rule::RuntimeClass,
            "spec.windows.runtimeClassName".into(),
            "a RuntimeClass (it chooses the runtime handler and adds its own node selector and tolerations)".into(),
            "remove spec.windows.runtimeClassName and place the pods with spec.windows.version",
        );
    }
    for v in spec.volumes.iter().filter(|v| v.smb.is_some()) {
        refuse(
            Rule::SmbVolumes,
            format!("spec.volumes[{}].smb", v.name),
            "an SMB share as a cluster-scoped PersistentVolume".into(),
            "use a claim volume (spec.volumes[].claim) from a StorageClass",
        );
    }
    found
}

fn tolerating(t: &Toleration) -> Tolerating<'_> {
    Tolerating {
        key: t.key.as_deref().unwrap_or_default(),
        exists: t.operator.as_deref() == Some("Exists"),
        value: t.value.as_deref().unwrap_or_default(),
    }
}

fn describe(t: &Toleration) -> String {
    let key = t.key.as_deref().unwrap_or_default();
    match t.operator.as_deref() {
        Some("Exists") => format!("{key} (any value)"),
        _ => format!("{key}={}", t.value.as_deref().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WindowsApp;

    fn spec(yaml: &str) -> WindowsAppSpec {
        let app: WindowsApp = serde_saphyr::from_str(&format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: a, namespace: n}}\nspec:\n{yaml}"
        ))
        .expect("a WindowsApp");
        app.spec
    }

    fn rules(found: &[Refusal]) -> Vec<(Rule, &str)> {
        found.iter().map(|r| (r.rule, r.path.as_str())).collect()
    }

    /// The tenant manifest of the issue: SYSTEM on every Windows node, tolerating every taint.
    const TENANT: &str = "  image: registry.example.com/x:1\n  nodeAgent: true\n  hostProcess: {}\n  apiAccess: true\n  windows: {tolerations: [{operator: Exists}]}\n";

    #[test]
    fn the_node_level_powers_are_refused_by_default_each_with_its_field() {
        let found = check(&spec(TENANT), &Policy::default());
        assert_eq!(
            rules(&found),
            vec![
                (Rule::NodeAgent, "spec.nodeAgent"),
                (Rule::HostProcess, "spec.hostProcess"),
                (Rule::TolerateAll, "spec.windows.tolerations[0]"),
            ]
        );
        assert!(found[1].to_string().contains(r"NT AUTHORITY\SYSTEM"), "{}", found[1]);
        let granted = Policy::allowing([Rule::NodeAgent, Rule::HostProcess, Rule::TolerateAll]);
        assert_eq!(check(&spec(TENANT), &granted), vec![]);
        // One grant does not give the others.
        assert_eq!(rules(&check(&spec(TENANT), &Policy::allowing([Rule::HostProcess]))).len(), 2);
    }

    #[test]
    fn a_plain_app_asks_for_nothing() {
        let plain = "  image: x\n  replicas: 2\n  windows: {version: ltsc2022, tolerations: [{key: os, value: windows, effect: NoSchedule}]}\n  volumes: [{name: cache, mountPath: 'C:\\cache', claim: {size: 1Gi}}]\n";
        assert_eq!(check(&spec(plain), &Policy::default()), vec![]);
    }

    #[test]
    fn other_pools_runtime_classes_and_smb_shares_need_a_grant() {
        let s = spec(
            "  image: x\n  windows:\n    toleration: {key: dedicated, value: team-b}\n    tolerations: [{key: gpu, operator: Exists}, {key: sku, value: win}]\n    runtimeClassName: hyperv\n  volumes: [{name: share, mountPath: 'C:\\s', smb: {source: //fs/s, secretRef: {name: creds}}}]\n",
        );
        assert_eq!(
            rules(&check(&s, &Policy::default())),
            vec![
                (Rule::OtherTaints, "spec.windows.toleration"),
                (Rule::OtherTaints, "spec.windows.tolerations[0]"),
                (Rule::OtherTaints, "spec.windows.tolerations[1]"),
                (Rule::RuntimeClass, "spec.windows.runtimeClassName"),
                (Rule::SmbVolumes, "spec.volumes[share].smb"),
            ]
        );
        // Granting the taints one by one: exactly the granted ones pass.
        let taints =
            Policy::default().with_taints(["dedicated=team-b".parse().expect("grant"), "gpu".parse().expect("grant")]);
        assert_eq!(
            rules(&check(&s, &taints))[..1],
            [(Rule::OtherTaints, "spec.windows.tolerations[1]")],
            "sku=win is not granted"
        );
    }
}
