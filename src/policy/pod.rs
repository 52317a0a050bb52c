//! `spec.podTemplate.spec`: which overrides an app team may make.
//!
//! The escape hatch is merged over the generated pod spec last, so without a policy it could
//! undo everything the operator and the platform team guarantee: the Windows pinning, the gMSA
//! settings, the ServiceAccount, and the pod's isolation from the host. By default every
//! override that widens privilege or escapes placement is refused, each by a named [`Rule`]
//! that the platform team can allow. Overrides that do neither (sidecars, working directories,
//! env, probes, affinity, DNS, grace periods, ...) pass.
//!
//! The check is pure: JSON in, [`Refusal`]s out, for any input (wrong types included, which
//! validation reports separately).

use serde_json::{Map, Value};

use super::{Policy, Refusal, Rule, Tolerating};

/// Where the overrides sit in a WindowsApp.
pub const ROOT: &str = "spec.podTemplate.spec";

/// Volume sources an app may add: the ones Pod Security's `restricted` level allows.
pub const APP_VOLUME_TYPES: &[&str] =
    &["configMap", "secret", "emptyDir", "projected", "downwardAPI", "persistentVolumeClaim", "ephemeral", "csi"];

/// Node selector keys the operator owns.
const WINDOWS_SELECTOR_KEYS: &[&str] = &["kubernetes.io/os", "node.kubernetes.io/windows-build"];

/// The user every Windows base image has without administrator rights.
const NON_ADMIN_USER: &str = "ContainerUser";

/// Every override of `overrides` that `policy` does not allow. `host_process`: the app runs as
/// HostProcess, so the operator already sets hostNetwork and hostProcess (restating them is no
/// widening).
pub fn check(overrides: &Map<String, Value>, host_process: bool, policy: &Policy) -> Vec<Refusal> {
    let mut found = Vec::new();
    check_pod(overrides, host_process, policy, &mut found);
    find_nulls(&Value::Object(overrides.clone()), ROOT, &mut found);
    found.retain(|r| !policy.allows(r.rule));
    found
}

fn refuse(found: &mut Vec<Refusal>, rule: Rule, path: String, what: impl Into<String>) {
    found.push(Refusal { rule, path, what: what.into(), remedy: rule.pod_remedy().to_owned() });
}

/// Set to anything but `false` (a `null` is the concern of [`Rule::RemoveGenerated`]).
fn turned_on(v: Option<&Value>) -> bool {
    v.is_some_and(|v| !matches!(v, Value::Bool(false) | Value::Null))
}

fn set(v: Option<&Value>) -> bool {
    v.is_some_and(|v| !v.is_null())
}

/// `list[name=x]` for a named entry, `list[i]` otherwise.
fn entry_path(parent: &str, list: &str, i: usize, item: &Value) -> String {
    match item.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => format!("{parent}.{list}[name={name}]"),
        _ => format!("{parent}.{list}[{i}]"),
    }
}

fn items<'a>(o: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    o.get(key).and_then(Value::as_array).into_iter().flatten().enumerate()
}

fn check_pod(o: &Map<String, Value>, host_process: bool, policy: &Policy, found: &mut Vec<Refusal>) {
    for key in ["hostPID", "hostIPC"] {
        if turned_on(o.get(key)) {
            refuse(found, Rule::HostNamespaces, format!("{ROOT}.{key}"), format!("{key}: true"));
        }
    }
    if !host_process && turned_on(o.get("hostNetwork")) {
        refuse(found, Rule::HostNamespaces, format!("{ROOT}.hostNetwork"), "hostNetwork: true");
    }
    if turned_on(o.get("shareProcessNamespace")) {
        refuse(found, Rule::ShareProcessNamespace, format!("{ROOT}.shareProcessNamespace"), "shareProcessNamespace");
    }
    for key in ["serviceAccountName", "serviceAccount", "automountServiceAccountToken"] {
        if set(o.get(key)) {
            refuse(found, Rule::ServiceAccount, format!("{ROOT}.{key}"), format!("setting {key}"));
        }
    }
    if set(o.get("nodeName")) {
        refuse(found, Rule::NodeName, format!("{ROOT}.nodeName"), "pinning a node by name");
    }
    if set(o.get("runtimeClassName")) {
        refuse(found, Rule::RuntimeClass, format!("{ROOT}.runtimeClassName"), "setting the RuntimeClass");
    }
    if let Some(selector) = o.get("nodeSelector").and_then(Value::as_object) {
        for key in WINDOWS_SELECTOR_KEYS {
            if selector.contains_key(*key) {
                refuse(
                    found,
                    Rule::WindowsSelector,
                    format!("{ROOT}.nodeSelector[{key}]"),
                    format!("changing the operator's node selector {key}"),
                );
            }
        }
    }
    for (i, t) in items(o, "tolerations") {
        let exists = t.get("operator").and_then(Value::as_str) == Some("Exists");
        let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
        let value = t.get("value").and_then(Value::as_str).unwrap_or_default();
        if exists && key.is_empty() {
            refuse(found, Rule::TolerateAll, format!("{ROOT}.tolerations[{i}]"), "tolerating every taint");
        } else if !key.is_empty() && !policy.allows_toleration(Tolerating { key, exists, value }) {
            let taint = if exists { format!("{key} (any value)") } else { format!("{key}={value}") };
            refuse(
                found,
                Rule::OtherTaints,
                format!("{ROOT}.tolerations[{i}]"),
                format!("tolerating the taint {taint}"),
            );
        }
    }
    if let Some(sc) = o.get("securityContext").and_then(Value::as_object) {
        check_windows_options(sc, &format!("{ROOT}.securityContext"), host_process, found);
    }
    for (i, v) in items(o, "volumes") {
        check_volume(v, &entry_path(ROOT, "volumes", i, v), found);
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for (i, c) in items(o, list) {
            if let Some(c) = c.as_object() {
                check_container(c, &entry_path(ROOT, list, i, &Value::Object(c.clone())), host_process, found);
            }
        }
    }
}

fn check_volume(v: &Value, path: &str, found: &mut Vec<Refusal>) {
    let Some(v) = v.as_object() else { return };
    for (source, value) in v {
        if source == "name" || value.is_null() {
            continue;
        }
        if source == "hostPath" {
            let at = value.get("path").and_then(Value::as_str).unwrap_or("?");
            refuse(found, Rule::HostPath, format!("{path}.hostPath"), format!("a hostPath volume of {at:?}"));
        } else if !APP_VOLUME_TYPES.contains(&source.as_str()) {
            refuse(found, Rule::VolumeTypes, format!("{path}.{source}"), format!("a {source} volume"));
        }
    }
    let sources = v.get("projected").and_then(|p| p.get("sources")).and_then(Value::as_array);
    for (i, s) in sources.into_iter().flatten().enumerate() {
        if set(s.get("serviceAccountToken")) {
            refuse(
                found,
                Rule::ServiceAccount,
                format!("{path}.projected.sources[{i}].serviceAccountToken"),
                "a projected ServiceAccount token",
            );
        }
    }
}

fn check_container(c: &Map<String, Value>, path: &str, host_process: bool, found: &mut Vec<Refusal>) {
    if let Some(sc) = c.get("securityContext").and_then(Value::as_object) {
        let at = format!("{path}.securityContext");
        if turned_on(sc.get("privileged")) {
            refuse(found, Rule::Privileged, format!("{at}.privileged"), "a privileged container");
        }
        if turned_on(sc.get("allowPrivilegeEscalation")) {
            refuse(found, Rule::PrivilegeEscalation, format!("{at}.allowPrivilegeEscalation"), "privilege escalation");
        }
        let add = sc.get("capabilities").and_then(|c| c.get("add"));
        if add.is_some_and(|a| !a.is_null() && a.as_array().is_none_or(|a| !a.is_empty())) {
            refuse(found, Rule::Capabilities, format!("{at}.capabilities.add"), "adding capabilities");
        }
        check_windows_options(sc, &at, host_process, found);
    }
    for (i, p) in items(c, "ports") {
        let host_port = p.get("hostPort");
        if host_port.is_some_and(|h| !h.is_null() && h.as_i64() != Some(0)) {
            let at = format!("{path}.ports[{i}].hostPort");
            refuse(
                found,
                Rule::HostPorts,
                at,
                format!("a host port ({})", host_port.map_or(Value::Null, Clone::clone)),
            );
        }
    }
}

/// `securityContext.windowsOptions` of the pod or of a container.
fn check_windows_options(sc: &Map<String, Value>, at: &str, host_process: bool, found: &mut Vec<Refusal>) {
    let Some(w) = sc.get("windowsOptions").and_then(Value::as_object) else { return };
    let at = format!("{at}.windowsOptions");
    for key in ["gmsaCredentialSpecName", "gmsaCredentialSpec"] {
        if set(w.get(key)) {
            refuse(found, Rule::Gmsa, format!("{at}.{key}"), "choosing a gMSA credential spec");
        }
    }
    if !host_process && turned_on(w.get("hostProcess")) {
        refuse(found, Rule::HostProcess, format!("{at}.hostProcess"), "running as a HostProcess");
    }
    match w.get("runAsUserName") {
        None | Some(Value::Null) => {}
        Some(Value::String(user)) if user.eq_ignore_ascii_case(NON_ADMIN_USER) => {}
        Some(user) => {
            refuse(found, Rule::RunAsUser, format!("{at}.runAsUserName"), format!("running as {user}"));
        }
    }
}

/// Every `null` member: the merge deletes the generated field there.
fn find_nulls(v: &Value, path: &str, found: &mut Vec<Refusal>) {
    match v {
        Value::Object(o) => {
            for (k, sub) in o {
                let at = format!("{path}.{k}");
                if sub.is_null() {
                    refuse(found, Rule::RemoveGenerated, at, "null (which deletes what the operator generates there)");
                } else {
                    find_nulls(sub, &at, found);
                }
            }
        }
        Value::Array(items) => {
            let (parent, list) = path.rsplit_once('.').unwrap_or(("", path));
            for (i, item) in items.iter().enumerate() {
                find_nulls(item, &entry_path(parent, list, i, item), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    fn refusals(o: Value, host_process: bool, policy: &Policy) -> Vec<Refusal> {
        let Value::Object(o) = o else { panic!("test input must be an object") };
        check(&o, host_process, policy)
    }

    /// `o` is refused by `rule` alone, at `path`; allowed once `rule` is.
    fn refused_by(rule: Rule, o: Value, path: &str) {
        let found = refusals(o.clone(), false, &Policy::default());
        assert_eq!(found.len(), 1, "{rule}: expected one refusal, got {found:?}");
        assert_eq!(found[0].rule, rule);
        assert_eq!(found[0].path, path);
        let msg = found[0].to_string();
        assert!(msg.starts_with(path), "{msg}");
        assert!(msg.contains(&format!("allow rule {rule}")), "{msg}");
        assert!(refusals(o, false, &Policy::allowing([rule])).is_empty(), "{rule}: still refused when allowed");
    }

    #[test]
    fn every_rule_refuses_by_default_and_allows_when_named() {
        let c = "spec.podTemplate.spec.containers[name=app]";
        let cases: Vec<(Rule, Value, String)> = vec![
            (
                Rule::Privileged,
                json!({"containers": [{"name": "app", "securityContext": {"privileged": true}}]}),
                format!("{c}.securityContext.privileged"),
            ),
            (
                Rule::PrivilegeEscalation,
                json!({"containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": true}}]}),
                format!("{c}.securityContext.allowPrivilegeEscalation"),
            ),
            (
                Rule::Capabilities,
                json!({"containers": [{"name": "app", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}),
                format!("{c}.securityContext.capabilities.add"),
            ),
            (Rule::HostNamespaces, json!({"hostPID": true}), "spec.podTemplate.spec.hostPID".into()),
            (Rule::HostNamespaces, json!({"hostIPC": true}), "spec.podTemplate.spec.hostIPC".into()),
            (Rule::HostNamespaces, json!({"hostNetwork": true}), "spec.podTemplate.spec.hostNetwork".into()),
            (
                Rule::HostPath,
                json!({"volumes": [{"name": "c", "hostPath": {"path": "C:\\"}}]}),
                "spec.podTemplate.spec.volumes[name=c].hostPath".into(),
            ),
            (
                Rule::VolumeTypes,
                json!({"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}),
                "spec.podTemplate.spec.volumes[name=n].nfs".into(),
            ),
            (
                Rule::HostPorts,
                json!({"containers": [{"name": "app", "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
                format!("{c}.ports[0].hostPort"),
            ),
            (
                Rule::RunAsUser,
                json!({"containers": [{"name": "app", "securityContext": {"windowsOptions": {"runAsUserName": "ContainerAdministrator"}}}]}),
                format!("{c}.securityContext.windowsOptions.runAsUserName"),
            ),
            (
                Rule::RunAsUser,
                json!({"securityContext": {"windowsOptions": {"runAsUserName": "NT AUTHORITY\\SYSTEM"}}}),
                "spec.podTemplate.spec.securityContext.windowsOptions.runAsUserName".into(),
            ),
            (
                Rule::Gmsa,
                json!({"securityContext": {"windowsOptions": {"gmsaCredentialSpecName": "domain-admin"}}}),
                "spec.podTemplate.spec.securityContext.windowsOptions.gmsaCredentialSpecName".into(),
            ),
            (
                Rule::Gmsa,
                json!({"containers": [{"name": "app", "securityContext": {"windowsOptions": {"gmsaCredentialSpec": "{}"}}}]}),
                format!("{c}.securityContext.windowsOptions.gmsaCredentialSpec"),
            ),
            (
                Rule::HostProcess,
                json!({"securityContext": {"windowsOptions": {"hostProcess": true}}}),
                "spec.podTemplate.spec.securityContext.windowsOptions.hostProcess".into(),
            ),
            (
                Rule::TolerateAll,
                json!({"tolerations": [{"key": "os", "value": "Windows"}, {"operator": "Exists"}]}),
                "spec.podTemplate.spec.tolerations[1]".into(),
            ),
            (
                Rule::TolerateAll,
                json!({"tolerations": [{"operator": "Exists", "effect": "NoExecute"}]}),
                "spec.podTemplate.spec.tolerations[0]".into(),
            ),
            (
                Rule::ServiceAccount,
                json!({"serviceAccountName": "admin"}),
                "spec.podTemplate.spec.serviceAccountName".into(),
            ),
            (Rule::ServiceAccount, json!({"serviceAccount": "admin"}), "spec.podTemplate.spec.serviceAccount".into()),
            (
                Rule::ServiceAccount,
                json!({"automountServiceAccountToken": true}),
                "spec.podTemplate.spec.automountServiceAccountToken".into(),
            ),
            (
                Rule::ServiceAccount,
                json!({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}),
                "spec.podTemplate.spec.volumes[name=t].projected.sources[0].serviceAccountToken".into(),
            ),
            (
                Rule::OtherTaints,
                json!({"tolerations": [{"key": "os", "value": "windows"}, {"key": "dedicated", "value": "team-b"}]}),
                "spec.podTemplate.spec.tolerations[1]".into(),
            ),
            (
                Rule::OtherTaints,
                json!({"tolerations": [{"key": "gpu", "operator": "Exists"}]}),
                "spec.podTemplate.spec.tolerations[0]".into(),
            ),
            (Rule::NodeName, json!({"nodeName": "win-1"}), "spec.podTemplate.spec.nodeName".into()),
            (
                Rule::WindowsSelector,
                json!({"nodeSelector": {"kubernetes.io/os": "linux", "pool": "gold"}}),
                "spec.podTemplate.spec.nodeSelector[kubernetes.io/os]".into(),
            ),
            (
                Rule::WindowsSelector,
                json!({"nodeSelector": {"node.kubernetes.io/windows-build": "10.0.17763"}}),
                "spec.podTemplate.spec.nodeSelector[node.kubernetes.io/windows-build]".into(),
            ),
            (
                Rule::RuntimeClass,
                json!({"runtimeClassName": "hyperv"}),
                "spec.podTemplate.spec.runtimeClassName".into(),
            ),
            (
                Rule::ShareProcessNamespace,
                json!({"shareProcessNamespace": true}),
                "spec.podTemplate.spec.shareProcessNamespace".into(),
            ),
            (Rule::RemoveGenerated, json!({"nodeSelector": null}), "spec.podTemplate.spec.nodeSelector".into()),
            (Rule::RemoveGenerated, json!({"securityContext": null}), "spec.podTemplate.spec.securityContext".into()),
            (Rule::RemoveGenerated, json!({"tolerations": null}), "spec.podTemplate.spec.tolerations".into()),
            (
                Rule::RemoveGenerated,
                json!({"securityContext": {"windowsOptions": null}}),
                "spec.podTemplate.spec.securityContext.windowsOptions".into(),
            ),
            (
                Rule::RemoveGenerated,
                json!({"containers": [{"name": "app", "startupProbe": null}]}),
                format!("{c}.startupProbe"),
            ),
        ];
        let mut covered = BTreeSet::new();
        for (rule, o, path) in cases {
            refused_by(rule, o, &path);
            covered.insert(rule);
        }
        // Every rule that a pod template can break (the others govern the spec's own fields:
        // see `super::super::app`).
        let missing: Vec<&Rule> = Rule::ALL
            .iter()
            .filter(|r| !matches!(r, Rule::NodeAgent | Rule::SmbVolumes) && !covered.contains(r))
            .collect();
        assert!(missing.is_empty(), "rules without a test case: {missing:?}");
    }

    #[test]
    fn app_level_overrides_pass() {
        let o = json!({
            "terminationGracePeriodSeconds": 120,
            "priorityClassName": "high",
            "nodeSelector": {"pool": "gold"},
            "tolerations": [{"key": "os", "value": "windows"}, {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 30}],
            "affinity": {"nodeAffinity": {}},
            "dnsPolicy": "None",
            "hostNetwork": false,
            "securityContext": {"windowsOptions": {"runAsUserName": "ContainerUser"}},
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "cm", "configMap": {"name": "x"}},
                {"name": "s", "csi": {"driver": "secrets-store.csi.k8s.io"}},
                {"name": "p", "projected": {"sources": [{"configMap": {"name": "x"}}]}}
            ],
            "containers": [
                {"name": "logmonitor", "image": "logmonitor:1", "ports": [{"containerPort": 9000, "hostPort": 0}],
                 "securityContext": {"privileged": false, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}},
                {"name": "app", "workingDir": "C:\\app"}
            ]
        });
        assert_eq!(refusals(o, false, &Policy::default()), vec![]);
    }

    #[test]
    fn a_granted_taint_may_be_tolerated_in_the_pod_template() {
        let o = json!({"tolerations": [{"key": "dedicated", "value": "team-a", "effect": "NoSchedule"}]});
        assert_eq!(refusals(o.clone(), false, &Policy::default()).len(), 1);
        let granted = Policy::default().with_taints(["dedicated=team-a".parse().expect("a taint grant")]);
        assert_eq!(refusals(o, false, &granted), vec![]);
    }

    #[test]
    fn host_process_apps_may_restate_what_the_operator_sets() {
        let o = json!({"hostNetwork": true, "securityContext": {"windowsOptions": {"hostProcess": true}}});
        assert_eq!(refusals(o.clone(), true, &Policy::default()), vec![]);
        let rules: Vec<Rule> = refusals(o, false, &Policy::default()).into_iter().map(|r| r.rule).collect();
        assert_eq!(rules, vec![Rule::HostNamespaces, Rule::HostProcess]);
    }

    #[test]
    fn every_refusal_is_reported_with_its_own_path() {
        let o = json!({
            "hostPID": true,
            "volumes": [{"hostPath": {"path": "C:\\"}}],
            "initContainers": [{"name": "init", "securityContext": {"privileged": true}}]
        });
        let paths: Vec<String> = refusals(o, false, &Policy::default()).into_iter().map(|r| r.path).collect();
        assert_eq!(
            paths,
            vec![
                "spec.podTemplate.spec.hostPID",
                "spec.podTemplate.spec.volumes[0].hostPath",
                "spec.podTemplate.spec.initContainers[name=init].securityContext.privileged",
            ]
        );
    }

    #[test]
    fn wrong_types_do_not_panic_and_are_left_to_the_type_check() {
        for o in [
            json!({"containers": "x", "volumes": [1, null, "v"], "tolerations": {"a": 1}}),
            json!({"containers": [{"name": 3, "securityContext": [], "ports": "80"}], "securityContext": 1}),
            json!({"nodeSelector": [], "hostPID": "yes", "volumes": [{"name": "v", "hostPath": 7}]}),
        ] {
            let _ = refusals(o.clone(), false, &Policy::default());
            let _ = refusals(o, true, &Policy::allowing(Rule::ALL.iter().copied()));
        }
        // A truthy value of the wrong type is still refused.
        let found = refusals(json!({"hostPID": "yes"}), false, &Policy::default());
        assert_eq!(found.len(), 1);
    }
}
