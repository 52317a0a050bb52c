//! An operator that watches one namespace works with the RBAC of `config/namespaced` (the Helm
//! chart's with `watchNamespace`): rights on namespaced objects by a Role in that namespace only,
//! and a ClusterRole with nothing but the cluster-wide kinds. It runs under a ServiceAccount of
//! its own, bound as the overlay binds winapp-operator, so the shared operator's RBAC stays as it is.

use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::Api;
use serde_json::Value;

use crate::harness::{GROUP_LABEL, Operator, kubeconfig_via, kubectl, kubectl_ok, repo};
use crate::support::{self, TestNamespace};
use crate::{SLOW, credspec_api, ready_now, wait_gone, wait_no_credspecs};
use winapp_operator::api::WindowsApp;
use winapp_operator::build::meta;

/// The RBAC of config/namespaced for ServiceAccount winapp-system/`sa` watching `namespace`: its
/// ClusterRole, ClusterRoleBinding, Role and RoleBinding renamed to `sa`, and the leader election
/// Role of config/rbac bound to it too.
fn namespaced_rbac(sa: &str, namespace: &str) -> String {
    let overlay = kubectl_ok(&["kustomize", &repo().join("config/namespaced").to_string_lossy()], None);
    let docs: Vec<Value> = serde_saphyr::from_multiple::<Value>(&overlay).expect("YAML stream");
    let mut out = Vec::new();
    for mut d in docs.into_iter().filter(|d| !d.is_null()) {
        let kind = d["kind"].as_str().unwrap_or_default().to_owned();
        let scoped = d["metadata"]["namespace"] == "apps";
        let ours = d["metadata"]["name"] == "winapp-operator";
        let keep = match kind.as_str() {
            "ClusterRole" | "ClusterRoleBinding" => ours,
            "Role" | "RoleBinding" => ours && scoped,
            _ => false,
        };
        if !keep {
            continue;
        }
        d["metadata"]["name"] = sa.into();
        if scoped {
            d["metadata"]["namespace"] = namespace.into();
        }
        if kind.ends_with("Binding") {
            d["roleRef"]["name"] = sa.into();
            d["subjects"][0]["name"] = sa.into();
        }
        out.push(d);
    }
    assert_eq!(out.len(), 4, "config/namespaced's ClusterRole, ClusterRoleBinding, Role and RoleBinding: {out:?}");
    out.push(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": sa, "namespace": "winapp-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "winapp-operator-leader-election"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "winapp-system"}],
    }));
    out.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n---\n")
}

/// An example's WindowsApp (and its other documents), labelled for the group's operator.
fn grouped_example(file: &str, group: &str) -> String {
    let text = std::fs::read_to_string(repo().join("examples").join(file)).expect("read the example");
    let docs: Vec<Value> = serde_saphyr::from_multiple::<Value>(&text).expect("YAML stream");
    docs.into_iter()
        .filter(|d| !d.is_null())
        .map(|mut d| {
            if d["kind"] == "WindowsApp" {
                d["metadata"]["labels"] = serde_json::json!({GROUP_LABEL: group});
            }
            d.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Removes the ServiceAccount and its cluster-wide RBAC, also when the test fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let sa = &self.0;
        let _ = kubectl(&["delete", "clusterrolebinding,clusterrole", sa, "--ignore-not-found"], None);
        let _ =
            kubectl(&["delete", "rolebinding,serviceaccount", sa, "-n", "winapp-system", "--ignore-not-found"], None);
    }
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn an_operator_of_one_namespace_works_with_the_rbac_of_config_namespaced() {
    let client = support::client().await;
    crate::harness::setup();
    let ns = TestNamespace::new(&client, "scoped").await;
    let sa = format!("scoped-{}", ns.name());
    let _cleanup = Cleanup(sa.clone());
    kubectl_ok(&["create", "serviceaccount", &sa, "-n", "winapp-system"], None);
    kubectl_ok(&["apply", "-f", "-"], Some(&namespaced_rbac(&sa, ns.name())));
    // Nothing namespaced is granted cluster-wide.
    let role: ClusterRole = Api::all(client.clone()).get(&sa).await.expect("the ClusterRole");
    for rule in role.rules.iter().flatten() {
        for resource in rule.resources.iter().flatten() {
            assert!(
                [
                    "persistentvolumes",
                    "clusterroles",
                    "gmsacredentialspecs",
                    "namespaces",
                    "nodes",
                    "runtimeclasses",
                    "csinodes",
                    "customresourcedefinitions"
                ]
                .contains(&resource.as_str()),
                "{resource} is granted cluster-wide"
            );
        }
    }
    // A kubeconfig with this ServiceAccount's token.
    let token = kubectl_ok(&["create", "token", &sa, "-n", "winapp-system", "--duration=1h"], None);
    let path = kubeconfig_via(&format!("https://{}", crate::harness::api_server_addr()), &sa);
    let mut k: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    k["users"][0]["user"]["token"] = Value::String(token.trim().to_owned());
    std::fs::write(&path, k.to_string()).expect("write kubeconfig");

    let group = format!("scoped-{}", ns.name());
    let lease = format!("winapp-test-{}", ns.name());
    let op =
        Operator::start_with("scoped", &lease, &format!("{GROUP_LABEL}={group}"), &path, &["--namespace", ns.name()]);
    op.wait_leading().await;
    // Every kind of child: namespaced ones, a generated credspec with its ClusterRole and
    // RoleBinding (allowed by the namespace's annotation), an SMB PersistentVolume.
    // As scripts/demo grants its namespace: SMB volumes, the gMSA identity and its CCG plugin.
    crate::grant(ns.name(), "smb-volumes");
    kubectl_ok(&["annotate", "namespace", ns.name(), r"winapp.dev/gmsa-accounts=CONTOSO\PayrollSvc"], None);
    kubectl_ok(
        &[
            "annotate",
            "namespace",
            ns.name(),
            "winapp.dev/gmsa-ccg-plugins={CCC2A336-D7F3-4818-A213-272B7924213E} ObjectId=00000000-0000-0000-0000-000000000000;SecretUri=https://contoso-kv.vault.azure.net/secrets/gmsa-*",
        ],
        None,
    );
    for example in ["gmsa-generated.yaml", "smb-share.yaml"] {
        kubectl_ok(&["apply", "-n", ns.name(), "-f", "-"], Some(&grouped_example(example, &group)));
    }
    let apps: Api<WindowsApp> = ns.api();
    for app in ["payroll", "file-importer"] {
        let ready = crate::support::wait_for(&apps, app, "Ready", SLOW, ready_now).await;
        assert!(ready.is_some(), "{app} never turned Ready; operator log:\n{}", op.log_text());
    }
    // Deleting the apps removes their cluster-scoped children through the finalizer.
    kubectl_ok(&["delete", "windowsapps", "--all", "-n", ns.name(), "--wait=false"], None);
    for app in ["payroll", "file-importer"] {
        let selector = meta::children_selector(ns.name(), app);
        wait_gone(&Api::<PersistentVolume>::all(client.clone()), &selector, 120).await;
        wait_gone(&Api::<ClusterRole>::all(client.clone()), &selector, 120).await;
        wait_no_credspecs(&credspec_api(&client), &selector).await;
    }
    wait_gone(&apps, "", 120).await;
    let log = op.log_text();
    assert!(!log.contains("forbidden"), "a request of the operator was forbidden:\n{log}");
    drop(op);
    let _ = kubectl(&["delete", "lease", &lease, "-n", "winapp-system", "--ignore-not-found"], None);
    ns.cleanup().await;
}
