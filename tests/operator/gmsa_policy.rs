//! gMSA under the platform team's control, on the dev cluster: an app may use an existing
//! GMSACredentialSpec only if the credspec's annotation `winapp.dev/allowed-namespaces` names its
//! namespace, and generate one only for an account that its Namespace's annotation
//! `winapp.dev/gmsa-accounts` lists. Otherwise: Stalled/CredentialSpecNotAllowed, and no gMSA
//! RBAC, no generated credspec and no workload (what existed is pruned).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, DeleteParams};
use winapp_operator::api::WindowsApp;
use winapp_operator::build::meta;

use super::{SLOW, apply, cond, credspec_api, is, ready_now, stalled_with, wait_gone, wait_no_credspecs};
use crate::harness::{GROUP_LABEL, Operator, kubectl, kubectl_ok};
use crate::support::{TestNamespace, client, list_all, unique_name, wait_for};

const ALLOWED_NAMESPACES: &str = "winapp.dev/allowed-namespaces";
const GMSA_ACCOUNTS: &str = "winapp.dev/gmsa-accounts";

fn credspec(name: &str, annotation: Option<&str>) -> String {
    let annotations =
        annotation.map(|a| format!("\n  annotations: {{{ALLOWED_NAMESPACES}: \"{a}\"}}")).unwrap_or_default();
    format!(
        "apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\nmetadata:\n  name: {name}{annotations}\ncredspec:\n  ActiveDirectoryConfig:\n    GroupManagedServiceAccounts: [{{Name: ReportsSvc, Scope: CONTOSO}}]\n  CmsPlugins: [ActiveDirectory]\n  DomainJoinConfig: {{DnsName: contoso.com, DnsTreeName: contoso.com, Guid: 244818ae-87ac-4fcd-92ec-e79e5252348a, MachineAccountName: ReportsSvc, NetBiosName: CONTOSO, Sid: S-1-5-21-2126449477-2524075714-3094792973}}\n"
    )
}

fn app(name: &str, group: &str, gmsa: &str) -> String {
    format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: {name}, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n  image: registry.example.com/{name}:1\n  windows: {{version: ltsc2022}}\n  config: {{mountPath: 'C:\\app', files: [{{name: app.config, content: x}}]}}\n  gmsa: {gmsa}\n"
    )
}

fn message(app: &WindowsApp, type_: &str) -> String {
    cond(app, type_).map(|c| c.message.clone()).unwrap_or_default()
}

fn assert_mentions(app: &WindowsApp, type_: &str, words: &[&str]) {
    let msg = message(app, type_);
    for w in words {
        assert!(msg.contains(w), "{type_} message should mention {w:?}: {msg}");
    }
}

/// (ClusterRoles, RoleBindings, Deployments) of the app.
async fn gmsa_children(client: &kube::Client, ns: &TestNamespace, app: &str) -> (usize, usize, usize) {
    let selector = meta::children_selector(ns.name(), app);
    (
        list_all(&Api::<ClusterRole>::all(client.clone()), &selector).await.len(),
        list_all(&ns.api::<RoleBinding>(), &selector).await.len(),
        list_all(&ns.api::<Deployment>(), &selector).await.len(),
    )
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn gmsa_is_used_only_where_the_platform_team_allows_it() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "gmsa-policy").await;
    let group = format!("gmsa-policy-{}", ns.name());
    let mut op = Operator::start_with(
        "gmsa-policy",
        &format!("winapp-test-{}", ns.name()),
        &format!("{GROUP_LABEL}={group}"),
        crate::harness::setup(),
        &[],
    );
    op.wait_leading().await;
    let apps: Api<WindowsApp> = ns.api();
    let credspecs = credspec_api(&client);

    // An existing credspec without the annotation: refused, nothing of gMSA and no workload.
    let existing = unique_name("policy-gmsa");
    kubectl_ok(&["apply", "-f", "-"], Some(&credspec(&existing, None)));
    let cleanup_credspec = || {
        let _ = kubectl(&["delete", "--ignore-not-found", "gmsacredentialspec", &existing], None);
    };
    apply(ns.name(), &app("reports", &group, &format!("{{credentialSpecName: {existing}}}")));
    let refused =
        wait_for(&apps, "reports", "CredentialSpecNotAllowed", SLOW, stalled_with("CredentialSpecNotAllowed"))
            .await
            .expect("app");
    assert!(
        cond(&refused, "GMSAReady").is_some_and(|c| c.status == "False" && c.reason == "CredentialSpecNotAllowed"),
        "{}",
        crate::support::show(&refused.status)
    );
    let on_credspec = format!("annotation {ALLOWED_NAMESPACES} on the GMSACredentialSpec {existing}");
    assert_mentions(&refused, "GMSAReady", &[&on_credspec, ns.name(), "no such annotation"]);
    assert_mentions(&refused, "Stalled", &[&on_credspec]);
    assert_eq!(gmsa_children(&client, &ns, "reports").await, (0, 0, 0), "no gMSA RBAC and no workload");
    // The rest of the app is applied.
    assert!(ns.api::<ServiceAccount>().get_opt("reports").await.expect("get").is_some(), "its ServiceAccount");
    assert!(ns.api::<ConfigMap>().get_opt("reports-config").await.expect("get").is_some(), "its ConfigMap");

    // The platform team allows the namespace on the credspec: Ready, with the RBAC.
    kubectl_ok(
        &[
            "annotate",
            "--overwrite",
            "gmsacredentialspec",
            &existing,
            &format!("{ALLOWED_NAMESPACES}=other, {}", ns.name()),
        ],
        None,
    );
    let ready = wait_for(&apps, "reports", "Ready once allowed", SLOW, ready_now).await.expect("app");
    assert!(is(&ready, "GMSAReady", "True"), "{}", crate::support::show(&ready.status));
    assert_eq!(gmsa_children(&client, &ns, "reports").await, (1, 1, 1), "RBAC and the Deployment");

    // The credspec deleted: the operator cannot see its annotation, so it creates nothing and
    // removes nothing until it is back.
    credspecs.delete(&existing, &DeleteParams::default()).await.expect("delete the credspec");
    wait_for(&apps, "reports", "CredentialSpecMissing", SLOW, stalled_with("CredentialSpecMissing")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gmsa_children(&client, &ns, "reports").await, (1, 1, 1), "kept while it cannot tell");
    kubectl_ok(&["apply", "-f", "-"], Some(&credspec(&existing, Some(&format!("other,{}", ns.name())))));
    wait_for(&apps, "reports", "Ready with the credspec back", SLOW, ready_now).await;

    // The namespace taken out of the annotation: Stalled again, RBAC and workload pruned.
    kubectl_ok(
        &["annotate", "--overwrite", "gmsacredentialspec", &existing, &format!("{ALLOWED_NAMESPACES}=other")],
        None,
    );
    let withdrawn =
        wait_for(&apps, "reports", "withdrawn", SLOW, stalled_with("CredentialSpecNotAllowed")).await.expect("app");
    assert_mentions(&withdrawn, "GMSAReady", &["\"other\"", &format!("add {}", ns.name())]);
    let selector = meta::children_selector(ns.name(), "reports");
    wait_gone(&Api::<ClusterRole>::all(client.clone()), &selector, 30).await;
    wait_gone(&ns.api::<RoleBinding>(), &selector, 30).await;
    wait_gone(&ns.api::<Deployment>(), &selector, 30).await;
    assert!(ns.api::<ServiceAccount>().get_opt("reports").await.expect("get").is_some(), "the rest stays");

    // A generated credspec for an account the namespace does not list: refused, none created.
    let generated = "{credentialSpec: {account: PayrollSvc, domain: {dnsName: contoso.com, netBiosName: CONTOSO, sid: S-1-5-21-1-2-3, guid: 244818ae-87ac-4fcd-92ec-e79e5252348a}}}";
    apply(ns.name(), &app("payroll", &group, generated));
    let refused =
        wait_for(&apps, "payroll", "CredentialSpecNotAllowed", SLOW, stalled_with("CredentialSpecNotAllowed"))
            .await
            .expect("app");
    let on_namespace = format!("annotation {GMSA_ACCOUNTS} on the Namespace {}", ns.name());
    assert_mentions(&refused, "GMSAReady", &[&on_namespace, "PayrollSvc"]);
    let payroll = meta::children_selector(ns.name(), "payroll");
    assert!(list_all(&credspecs, &payroll).await.is_empty(), "no credspec generated");
    assert_eq!(gmsa_children(&client, &ns, "payroll").await, (0, 0, 0));

    // Another account listed only: still refused. Then the account, in another case: Ready.
    kubectl_ok(&["annotate", "--overwrite", "namespace", ns.name(), &format!("{GMSA_ACCOUNTS}=ReportsSvc")], None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = apps.get("payroll").await.expect("app");
    assert!(stalled_with("CredentialSpecNotAllowed")(Some(&still)), "{}", crate::support::show(&still.status));
    kubectl_ok(
        &["annotate", "--overwrite", "namespace", ns.name(), &format!("{GMSA_ACCOUNTS}=ReportsSvc, payrollsvc")],
        None,
    );
    let ready = wait_for(&apps, "payroll", "Ready once allowed", SLOW, ready_now).await.expect("app");
    assert!(is(&ready, "GMSAReady", "True"));
    // An entry without a domain still allows (as earlier versions did), and says how to pin it.
    assert_mentions(&ready, "GMSAReady", &["names no domain", r"CONTOSO\PayrollSvc"]);
    assert_eq!(list_all(&credspecs, &payroll).await.len(), 1, "the credspec is generated");
    assert_eq!(gmsa_children(&client, &ns, "payroll").await, (1, 1, 1));

    // The identity of another domain: the app's CONTOSO\PayrollSvc is not FABRIKAM's, refused.
    kubectl_ok(
        &["annotate", "--overwrite", "namespace", ns.name(), &format!(r"{GMSA_ACCOUNTS}=FABRIKAM\PayrollSvc")],
        None,
    );
    let mismatch = wait_for(&apps, "payroll", "another domain refused", SLOW, stalled_with("CredentialSpecNotAllowed"))
        .await
        .expect("app");
    assert_mentions(&mismatch, "GMSAReady", &[r"CONTOSO\PayrollSvc", "is not allowed"]);
    wait_no_credspecs(&credspecs, &payroll).await;
    // Its own domain, by DNS name: Ready, without a warning.
    kubectl_ok(
        &["annotate", "--overwrite", "namespace", ns.name(), &format!(r"{GMSA_ACCOUNTS}=contoso.com\PayrollSvc")],
        None,
    );
    let pinned = wait_for(&apps, "payroll", "Ready with the identity", SLOW, ready_now).await.expect("app");
    assert!(!message(&pinned, "GMSAReady").contains("warning"), "{}", message(&pinned, "GMSAReady"));
    assert_eq!(list_all(&credspecs, &payroll).await.len(), 1, "the credspec is generated again");

    // The account withdrawn from the namespace: the generated credspec goes with the RBAC.
    kubectl_ok(&["annotate", "namespace", ns.name(), &format!("{GMSA_ACCOUNTS}-")], None);
    wait_for(&apps, "payroll", "withdrawn", SLOW, stalled_with("CredentialSpecNotAllowed")).await;
    wait_no_credspecs(&credspecs, &payroll).await;
    wait_gone(&ns.api::<Deployment>(), &payroll, 30).await;
    assert_eq!(gmsa_children(&client, &ns, "payroll").await, (0, 0, 0));

    cleanup_credspec();
    ns.cleanup().await;
    op.stop();
}
