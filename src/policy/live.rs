//! What a running workload uses that the policy no longer grants. A grant withdrawn (a
//! Namespace's annotation changed, a flag dropped) must stop the pods that use it, whatever the
//! spec says now: the operator reads the powers off the workload it applied, not off the spec.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Policy, Rule};

/// Rules the operator's own pod template meets by itself (its ServiceAccount, Windows selector,
/// a HostProcess app's user, the gMSA settings): judged by the spec's own fields instead.
const GENERATED: &[Rule] = &[
    Rule::RunAsUser,
    Rule::Gmsa,
    Rule::ServiceAccount,
    Rule::WindowsSelector,
    Rule::RemoveGenerated,
    Rule::HostProcess,
    Rule::RuntimeClass,
];

/// Pure: the rules of `policy` that a running workload breaks: a DaemonSet (`daemon_set`) is a
/// pod on every node, `smb` says the app mounts SMB PersistentVolumes, and `pod_spec` is the
/// workload's pod template spec as applied.
pub fn refused(pod_spec: &Value, daemon_set: bool, smb: bool, policy: &Policy) -> Vec<Rule> {
    let mut found = BTreeSet::new();
    if daemon_set {
        found.insert(Rule::NodeAgent);
    }
    if smb {
        found.insert(Rule::SmbVolumes);
    }
    let host_process = host_process(pod_spec);
    if host_process {
        found.insert(Rule::HostProcess);
    }
    if pod_spec.get("runtimeClassName").is_some_and(|v| !v.is_null()) {
        found.insert(Rule::RuntimeClass);
    }
    if let Value::Object(spec) = pod_spec {
        found.extend(
            super::pod::check(spec, host_process, policy)
                .into_iter()
                .map(|r| r.rule)
                .filter(|r| !GENERATED.contains(r)),
        );
    }
    found.into_iter().filter(|r| !policy.allows(*r)).collect()
}

/// Whether the pod, or any of its containers, runs as HostProcess.
fn host_process(pod_spec: &Value) -> bool {
    let on = |sc: Option<&Value>| {
        sc.and_then(|s| s.get("windowsOptions")).and_then(|w| w.get("hostProcess")).and_then(Value::as_bool)
            == Some(true)
    };
    on(pod_spec.get("securityContext"))
        || ["containers", "initContainers"].iter().any(|list| {
            pod_spec
                .get(*list)
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| on(c.get("securityContext"))))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod template as the operator generates it for a HostProcess node agent.
    fn agent() -> Value {
        json!({
            "hostNetwork": true,
            "serviceAccountName": "agent",
            "automountServiceAccountToken": true,
            "nodeSelector": {"kubernetes.io/os": "windows"},
            "securityContext": {"windowsOptions": {"hostProcess": true, "runAsUserName": "NT AUTHORITY\\SYSTEM"}},
            "tolerations": [{"key": "os", "value": "windows", "effect": "NoSchedule"}],
            "containers": [{"name": "app", "image": "agent:1"}]
        })
    }

    #[test]
    fn what_the_operator_generates_is_not_held_against_the_app() {
        let web = json!({
            "serviceAccountName": "web", "automountServiceAccountToken": false,
            "nodeSelector": {"kubernetes.io/os": "windows", "node.kubernetes.io/windows-build": "10.0.20348"},
            "securityContext": {"windowsOptions": {"gmsaCredentialSpecName": "winapp.shop.web"}},
            "volumes": [{"name": "winapp-config", "configMap": {"name": "web-config"}}],
            "containers": [{"name": "app", "image": "web:1"}]
        });
        assert_eq!(refused(&web, false, false, &Policy::default()), vec![]);
    }

    #[test]
    fn a_withdrawn_grant_is_found_on_the_running_workload() {
        let granted = Policy::allowing([Rule::HostProcess, Rule::NodeAgent]);
        assert_eq!(refused(&agent(), true, false, &granted), vec![]);
        assert_eq!(refused(&agent(), true, false, &Policy::allowing([Rule::NodeAgent])), vec![Rule::HostProcess]);
        assert_eq!(refused(&agent(), true, false, &Policy::default()), vec![Rule::HostProcess, Rule::NodeAgent]);
        // Overrides that were allowed once: a hostPath, a privileged container, another pool.
        let mut pod = agent();
        pod["volumes"] = json!([{"name": "c", "hostPath": {"path": "C:\\"}}]);
        pod["tolerations"] = json!([{"operator": "Exists"}]);
        pod["containers"][0]["securityContext"] = json!({"privileged": true});
        pod["runtimeClassName"] = json!("hyperv");
        assert_eq!(
            refused(&pod, false, true, &granted),
            vec![Rule::Privileged, Rule::HostPath, Rule::TolerateAll, Rule::RuntimeClass, Rule::SmbVolumes]
        );
    }
}
