//! Pure checks of the operator's own installation: the WindowsApp CRD against what this binary
//! generates, the operator's Deployment, and its ClusterRole (with the Role of the namespace it
//! watches, if it watches one) against `config/rbac/cluster_role.yaml`.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::facts::{ClusterRoleFacts, CrdFacts, DeploymentFacts, Lookup, RoleFacts};
use super::{Check, Finding, name_list, not_checked};
use crate::crd::CRD_PATH;

/// The WindowsApp CRD.
pub const WINDOWSAPP_CRD: &str = "windowsapps.winapp.dev";
/// Label of the operator's Deployment and RBAC, as `config/` and the Helm chart set it.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Its value, and the name of the ClusterRole that `config/rbac` installs.
pub const OPERATOR_NAME: &str = "winapp-operator";

const INSTALL: &str =
    "install the operator with `kubectl apply -k config/default`, or the Helm chart charts/winapp-operator";

/// The installed WindowsApp CRD against the one this binary generates.
pub fn crd(installed: &Lookup<Option<CrdFacts>>, expected: &CrdFacts) -> Vec<Finding> {
    if let Some(f) = not_checked(Check::OperatorCrd, &format!("the CRD {WINDOWSAPP_CRD}"), installed) {
        return vec![f];
    }
    let Some(Some(installed)) = installed.found() else {
        return vec![Finding::warning(
            Check::OperatorCrd,
            "WindowsApp CRD not installed yet",
            format!(
                "no CRD {WINDOWSAPP_CRD}: nobody can create WindowsApps yet; apply it with `kubectl apply \
                 --server-side -f {CRD_PATH}`, or {INSTALL}"
            ),
        )];
    };
    let differences = crd_differences(installed, expected);
    if differences.is_empty() {
        let versions: Vec<&str> = expected.versions.iter().map(|v| v.name.as_str()).collect();
        vec![Finding::ok(
            Check::OperatorCrd,
            "WindowsApp CRD up to date",
            format!("{WINDOWSAPP_CRD} serves {} with the schema of this binary", versions.join(", ")),
        )]
    } else {
        vec![Finding::warning(
            Check::OperatorCrd,
            "WindowsApp CRD is stale",
            format!(
                "{WINDOWSAPP_CRD} differs from the one this binary generates: {}; re-apply crds/ with `kubectl apply \
                 --server-side -f {CRD_PATH}` (Helm never upgrades CRDs: after a chart upgrade, apply \
                 charts/winapp-operator/crds/)",
                differences.join("; ")
            ),
        )]
    }
}

/// How an installed CRD differs from the expected one: versions, their flags, their schemas.
pub fn crd_differences(installed: &CrdFacts, expected: &CrdFacts) -> Vec<String> {
    let mut out = Vec::new();
    for e in &expected.versions {
        let Some(i) = installed.versions.iter().find(|i| i.name == e.name) else {
            out.push(format!("version {} is missing", e.name));
            continue;
        };
        if i.served != e.served {
            out.push(format!("version {} has served={}, expected {}", e.name, i.served, e.served));
        }
        if i.storage != e.storage {
            out.push(format!("version {} has storage={}, expected {}", e.name, i.storage, e.storage));
        }
        let mut paths = Vec::new();
        json_diff(i.schema.as_ref().unwrap_or(&Value::Null), e.schema.as_ref().unwrap_or(&Value::Null), "", &mut paths);
        if !paths.is_empty() {
            out.push(format!("the schema of {} differs at {}", e.name, name_list(&paths, 3)));
        }
    }
    for i in installed.versions.iter().filter(|i| !expected.versions.iter().any(|e| e.name == i.name)) {
        out.push(format!("version {} is not one this binary knows", i.name));
    }
    out
}

/// Paths (`.properties.spec.properties.image`) where two JSON documents differ; at most 20.
fn json_diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    if out.len() >= 20 || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                json_diff(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (n, (p, q)) in x.iter().zip(y).enumerate() {
                json_diff(p, q, &format!("{path}[{n}]"), out);
            }
        }
        _ => out.push(if path.is_empty() { "the root".into() } else { path.to_owned() }),
    }
}

/// The operator's Deployment: present, and available.
pub fn deployment(deployments: &Lookup<Vec<DeploymentFacts>>, namespace: Option<&str>) -> Vec<Finding> {
    if let Some(f) = not_checked(Check::OperatorDeployment, "Deployments", deployments) {
        return vec![f];
    }
    let found = deployments.found().cloned().unwrap_or_default();
    if found.is_empty() {
        let where_ = match namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "in any namespace".to_owned(),
        };
        return vec![Finding::warning(
            Check::OperatorDeployment,
            "operator not installed yet",
            format!(
                "no Deployment labelled {NAME_LABEL}={OPERATOR_NAME} {where_}: WindowsApps are not reconciled until it \
                 runs; {INSTALL}"
            ),
        )];
    }
    found
        .iter()
        .map(|d| {
            let id = format!("{}/{}", d.namespace, d.name);
            if d.replicas == 0 {
                Finding::warning(
                    Check::OperatorDeployment,
                    format!("operator {id} is scaled to zero"),
                    format!(
                        "WindowsApps are not reconciled; scale it up: `kubectl -n {} scale deployment {} --replicas=2`",
                        d.namespace, d.name
                    ),
                )
            } else if d.available {
                Finding::ok(
                    Check::OperatorDeployment,
                    format!("operator {id} available"),
                    format!("{} of {} replicas available", d.available_replicas, d.replicas),
                )
            } else {
                let why = d.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
                Finding::error(
                    Check::OperatorDeployment,
                    format!("operator {id} not available"),
                    format!(
                        "{} of {} replicas available{why}: WindowsApps are not reconciled; look at `kubectl -n {} \
                         describe deployment {}` and its pods' events",
                        d.available_replicas, d.replicas, d.namespace, d.name
                    ),
                )
            }
        })
        .collect()
}

/// Resources of `config/rbac/cluster_role.yaml` that are cluster-scoped: a Role cannot grant them.
const CLUSTER_SCOPED: &[&str] = &[
    "persistentvolumes",
    "clusterroles",
    "gmsacredentialspecs",
    "namespaces",
    "nodes",
    "runtimeclasses",
    "csinodes",
    "customresourcedefinitions",
];

/// The rules of the operator's Roles in `namespace`, without the cluster-scoped resources that a
/// Role names to no effect.
fn namespaced_rules(roles: &[RoleFacts], namespace: &str) -> Vec<PolicyRule> {
    roles
        .iter()
        .filter(|r| r.namespace == namespace)
        .flat_map(|r| r.rules.iter().cloned())
        .map(|mut rule| {
            if let Some(resources) = rule.resources.as_mut() {
                resources.retain(|res| !CLUSTER_SCOPED.contains(&res.split('/').next().unwrap_or_default()));
            }
            rule
        })
        .collect()
}

/// The operator's ClusterRoles against the rules it needs; for an operator Deployment that watches
/// one namespace (`--namespace`), its rights on namespaced objects may be the operator's Roles
/// there (config/namespaced, the chart's watchNamespace).
pub fn rbac(
    roles: &Lookup<Vec<ClusterRoleFacts>>,
    namespaced: &Lookup<Vec<RoleFacts>>,
    deployments: &Lookup<Vec<DeploymentFacts>>,
    required: &[PolicyRule],
) -> Vec<Finding> {
    if let Some(f) = not_checked(Check::OperatorRbac, "ClusterRoles", roles) {
        return vec![f];
    }
    // The namespaces the operators watch, when each watches one; None: every namespace.
    let scopes: Vec<Option<String>> = match deployments.found() {
        Some(found) if !found.is_empty() => {
            found.iter().map(|d| super::grants::operator_grants(&d.args, &d.env).watch_namespace).collect()
        }
        _ => vec![None],
    };
    if scopes.iter().any(Option::is_some)
        && let Some(f) = not_checked(Check::OperatorRbac, "Roles", namespaced)
    {
        return vec![f];
    }
    let namespaced = namespaced.found().cloned().unwrap_or_default();
    let roles = roles.found().cloned().unwrap_or_default();
    if roles.is_empty() {
        return vec![Finding::warning(
            Check::OperatorRbac,
            "operator ClusterRole not installed yet",
            format!(
                "no ClusterRole {OPERATOR_NAME} (nor one labelled {NAME_LABEL}={OPERATOR_NAME}): the operator could not \
                 read or write anything; {INSTALL} (or `kubectl apply -k config/rbac`)"
            ),
        )];
    }
    let mut names: Vec<String> = roles.iter().map(|r| r.name.clone()).collect();
    let mut missing = Vec::new();
    for scope in &scopes {
        let in_namespace = scope.as_deref().map(|ns| namespaced_rules(&namespaced, ns)).unwrap_or_default();
        if let Some(ns) = scope {
            names.extend(namespaced.iter().filter(|r| &r.namespace == ns).map(|r| format!("Role {ns}/{}", r.name)));
        }
        let granted: Vec<&PolicyRule> = roles.iter().flat_map(|r| &r.rules).chain(&in_namespace).collect();
        let lacking = missing_permissions(required, &granted);
        match scope {
            Some(ns) if !lacking.is_empty() => missing.push(format!("for the namespace {ns}: {}", lacking.join("; "))),
            _ => missing.extend(lacking),
        }
    }
    names.sort();
    names.dedup();
    let names = name_list(&names, 4);
    if missing.is_empty() {
        vec![Finding::ok(
            Check::OperatorRbac,
            "operator ClusterRole grants what it needs",
            format!("every rule of config/rbac/cluster_role.yaml is granted by {names}"),
        )]
    } else {
        vec![Finding::error(
            Check::OperatorRbac,
            "operator ClusterRole lacks permissions",
            format!(
                "{names} lack {}: the operator fails on these calls; re-apply its RBAC with `kubectl apply -k \
                 config/rbac` (config/namespaced for an operator that watches one namespace), or upgrade the Helm release",
                missing.join("; ")
            ),
        )]
    }
}

/// Every permission of `required` that no rule of `granted` covers, as `verb,verb on resource`.
pub fn missing_permissions(required: &[PolicyRule], granted: &[&PolicyRule]) -> Vec<String> {
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in required {
        let names: Vec<Option<&str>> = match rule.resource_names.as_deref() {
            Some(n) if !n.is_empty() => n.iter().map(|s| Some(s.as_str())).collect(),
            _ => vec![None],
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for name in &names {
                    for verb in &rule.verbs {
                        if !granted.iter().any(|g| covers(g, group, resource, verb, *name)) {
                            let mut what =
                                if group.is_empty() { resource.clone() } else { format!("{resource}.{group}") };
                            if let Some(n) = name {
                                what = format!("{what} named {n}");
                            }
                            missing.entry(what).or_default().push(verb.clone());
                        }
                    }
                }
            }
        }
    }
    missing.into_iter().map(|(what, verbs)| format!("{} on {what}", verbs.join(","))).collect()
}

/// Kubernetes' RBAC rule matching (`rbac/v1` helpers: APIGroupMatches, ResourceMatches, VerbMatches,
/// ResourceNameMatches).
fn covers(rule: &PolicyRule, group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
    let has = |list: &Option<Vec<String>>, want: &str| list.iter().flatten().any(|x| x == "*" || x == want);
    let resource_matches = rule.resources.iter().flatten().any(|r| {
        r == "*" || r == resource || resource.split_once('/').is_some_and(|(_, sub)| r.strip_prefix("*/") == Some(sub))
    });
    let name_matches = match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(allowed) => name.is_some_and(|n| allowed.iter().any(|a| a == n)),
    };
    has(&rule.api_groups, group) && resource_matches && rule.verbs.iter().any(|v| v == "*" || v == verb) && name_matches
}
