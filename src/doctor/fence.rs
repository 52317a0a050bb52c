//! Pure check of the admission fence around the operator's ServiceAccount (`config/admission`, the
//! chart's `admissionPolicy`): a ValidatingAdmissionPolicy that matches the requests of the
//! operator's ServiceAccount, bound with `Deny`, over the kinds the operator's RBAC cannot narrow.

use super::facts::{AdmissionBindingFacts, AdmissionPolicyFacts, DeploymentFacts, Lookup};
use super::{Check, Finding, name_list, not_checked};

/// The kinds the fence must cover.
pub const FENCED: &[&str] = &["clusterroles", "rolebindings", "persistentvolumes", "gmsacredentialspecs"];

const INSTALL: &str = "install it with `kubectl apply --server-side -k config/admission` (config/default includes \
     it) or the Helm chart's admissionPolicy.enabled=true (the default); it needs Kubernetes 1.30 or later";

/// The user name of a Deployment's pods: `system:serviceaccount:NAMESPACE:NAME`.
pub fn service_account_user(d: &DeploymentFacts) -> String {
    let sa = if d.service_account.is_empty() { "default" } else { d.service_account.as_str() };
    format!("system:serviceaccount:{}:{sa}", d.namespace)
}

/// Whether one of the policy's match conditions names `user` (as `'user'` or `"user"`).
fn names_user(p: &AdmissionPolicyFacts, user: &str) -> bool {
    let quoted = [format!("'{user}'"), format!("\"{user}\"")];
    p.match_conditions.iter().any(|c| quoted.iter().any(|q| c.contains(q.as_str())))
}

/// Whether a binding enforces the policy (Deny; Warn and Audit refuse nothing).
fn enforced(p: &AdmissionPolicyFacts, bindings: &[AdmissionBindingFacts]) -> bool {
    bindings.iter().any(|b| b.policy_name == p.name && b.actions.iter().any(|a| a == "Deny"))
}

/// Whether the operator's fence is installed, bound with Deny, and matches the operator's
/// ServiceAccount (one user per operator Deployment found).
pub fn fence(
    policies: &Lookup<Option<Vec<AdmissionPolicyFacts>>>,
    bindings: &Lookup<Option<Vec<AdmissionBindingFacts>>>,
    deployments: &Lookup<Vec<DeploymentFacts>>,
) -> Vec<Finding> {
    let refused: Vec<Finding> = [
        not_checked(Check::OperatorFence, "ValidatingAdmissionPolicies", policies),
        not_checked(Check::OperatorFence, "ValidatingAdmissionPolicyBindings", bindings),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !refused.is_empty() {
        return refused;
    }
    let (Some(Some(policies)), Some(Some(bindings))) = (policies.found(), bindings.found()) else {
        return vec![not_served()];
    };
    let users: Vec<String> = deployments.found().into_iter().flatten().map(service_account_user).collect();
    let candidates: Vec<&AdmissionPolicyFacts> =
        policies.iter().filter(|p| p.operator_labelled || users.iter().any(|u| names_user(p, u))).collect();
    if candidates.is_empty() {
        return vec![not_installed()];
    }
    let mut findings: Vec<Finding> = candidates.iter().flat_map(|p| policy_findings(p, bindings)).collect();
    let enforcing: Vec<&AdmissionPolicyFacts> = candidates.iter().copied().filter(|p| enforced(p, bindings)).collect();
    for user in &users {
        if !enforcing.iter().any(|p| names_user(p, user)) {
            findings.push(unmatched_user(user, &enforcing));
        }
    }
    if findings.is_empty() {
        findings.push(installed(&enforcing, &users));
    }
    findings
}

/// The API server serves no ValidatingAdmissionPolicies: no fence is possible.
fn not_served() -> Finding {
    Finding::warning(
        Check::OperatorFence,
        "admission fence not possible: ValidatingAdmissionPolicy not served",
        "the API server does not serve admissionregistration.k8s.io/v1 ValidatingAdmissionPolicies (Kubernetes \
         before 1.30): nothing but RBAC limits the operator's ServiceAccount, which may then change any \
         ClusterRole, PersistentVolume or GMSACredentialSpec and bind roles it holds in any namespace; upgrade \
         the cluster, and guard the operator's token meanwhile",
    )
}

/// No policy is the operator's (by its label) or names the operator's ServiceAccount.
fn not_installed() -> Finding {
    Finding::warning(
        Check::OperatorFence,
        "admission fence not installed",
        format!(
            "no ValidatingAdmissionPolicy fences the operator's ServiceAccount: with its RBAC alone it may delete \
             any ClusterRole (cluster-admin too), change or delete any PersistentVolume or GMSACredentialSpec, and \
             bind roles it holds to anyone; {INSTALL}"
        ),
    )
}

/// What is wrong with one fence policy: no binding with Deny, kinds of [`FENCED`] left out.
fn policy_findings(p: &AdmissionPolicyFacts, bindings: &[AdmissionBindingFacts]) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !enforced(p, bindings) {
        let how = match bindings.iter().find(|b| b.policy_name == p.name) {
            Some(b) => format!(
                "its binding {} has validationActions [{}], which refuse nothing; set them to [Deny]",
                b.name,
                b.actions.join(", ")
            ),
            None => format!("no ValidatingAdmissionPolicyBinding names it; {INSTALL}"),
        };
        findings.push(Finding::warning(
            Check::OperatorFence,
            format!("admission fence {} not enforced", p.name),
            format!("the policy {} is installed but {how}", p.name),
        ));
    }
    let missing: Vec<&str> =
        FENCED.iter().copied().filter(|k| !p.resources.iter().any(|r| r == k || r == "*")).collect();
    if !missing.is_empty() {
        findings.push(Finding::warning(
            Check::OperatorFence,
            format!("admission fence {} leaves out {}", p.name, missing.join(", ")),
            format!(
                "its matchConstraints do not cover {}: the operator's writes of those are not fenced; re-apply \
                 config/admission or upgrade the Helm release",
                missing.join(", ")
            ),
        ));
    }
    findings
}

/// The operator runs as `user`, whom no enforced fence names.
fn unmatched_user(user: &str, enforcing: &[&AdmissionPolicyFacts]) -> Finding {
    let fenced: Vec<String> = enforcing
        .iter()
        .flat_map(|p| p.match_conditions.iter())
        .filter_map(|c| c.split(['\'', '"']).find(|s| s.starts_with("system:serviceaccount:")))
        .map(str::to_owned)
        .collect();
    let instead = if fenced.is_empty() { String::new() } else { format!(" (it names {})", fenced.join(", ")) };
    Finding::warning(
        Check::OperatorFence,
        format!("admission fence does not match the operator's ServiceAccount {user}"),
        format!(
            "the operator runs as {user} but no enforced fence's matchConditions name it{instead}: an overlay \
             that moved or renamed the operator must patch the policy's \
             /spec/matchConditions/0/expression (config/admission/kustomization.yaml shows how); the Helm chart \
             names its own ServiceAccount"
        ),
    )
}

/// The fence is installed, enforced and names every operator's ServiceAccount.
fn installed(enforcing: &[&AdmissionPolicyFacts], users: &[String]) -> Finding {
    let names: Vec<&str> = enforcing.iter().map(|p| p.name.as_str()).collect();
    let whom = if users.is_empty() {
        "the operator's ServiceAccount (no operator Deployment found yet to compare with)".to_owned()
    } else {
        users.join(", ")
    };
    Finding::ok(
        Check::OperatorFence,
        "admission fence installed",
        format!(
            "{} (bound with Deny) lets {whom} create, change and delete ClusterRoles, PersistentVolumes, \
             GMSACredentialSpecs and RoleBindings only when they are the operator's own",
            name_list(&names, 3)
        ),
    )
}
