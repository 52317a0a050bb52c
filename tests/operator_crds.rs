//! The operator when CustomResourceDefinitions change under it: a WindowsApp stored under a
//! looser schema is refused with the field it breaks (and, if it cannot be decoded at all, can
//! still be deleted), and the GMSACredentialSpec CRD installed or removed while the operator runs
//! is noticed without a restart.
//!
//! These tests change cluster-wide CRDs, so they live in a test binary of their own (cargo runs
//! test binaries one after another) and take a lock against each other. Each puts the CRDs back
//! as it found them, also when it fails.

#[path = "operator/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{CustomResourceDefinition, JSONSchemaProps};
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};
use support::{TestNamespace, wait_for};
use winapp_operator::api::WindowsApp;

use harness::{GROUP_LABEL, Operator, kubectl, kubectl_ok, repo};

const GMSA_CRD: &str = "gmsacredentialspecs.windows.k8s.io";

static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Puts both CRDs back as the repository ships them (runs on drop, so also after a panic).
struct RestoreCrds;

impl Drop for RestoreCrds {
    fn drop(&mut self) {
        let root = repo();
        let _ =
            kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &root.join("crds").to_string_lossy()], None);
        let fixture = root.join("tests/fixtures/gmsacredentialspecs.windows.k8s.io.yaml");
        let _ = kubectl(&["apply", "--server-side", "-f", &fixture.to_string_lossy()], None);
        let _ = kubectl(
            &["wait", "--for=condition=Established", &format!("crd/{GMSA_CRD}"), "crd/windowsapps.winapp.dev"],
            None,
        );
    }
}

fn conditions(app: &serde_json::Value) -> Vec<(String, String, String)> {
    app["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                    (s("type"), s("status"), s("reason"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls the app (as JSON, so that it need not decode) until `pred` holds.
async fn wait_json(ns: &str, name: &str, what: &str, secs: u64, pred: impl Fn(&serde_json::Value) -> bool) {
    let mut last = String::new();
    for _ in 0..secs * 2 {
        if let Ok(out) = kubectl(&["get", "windowsapp", name, "-n", ns, "-o", "json"], None) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out)
                && pred(&v)
            {
                return;
            }
            last = out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("WindowsApp {ns}/{name} never became {what}; last seen:\n{last}");
}

/// Serves `crd` in place of the WindowsApp CRD as shipped ([`RestoreCrds`] puts that back).
async fn serve_crd(client: &kube::Client, crd: &CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch("windowsapps.winapp.dev", &PatchParams::apply("winapp-test").force(), &Patch::Apply(crd))
        .await
        .expect("serve the changed CRD");
}

/// Loosens the schema: spec becomes an open object, so the API server stores what the operator's
/// types cannot read (an older or hand-edited CRD can do the same).
async fn loosen_the_spec_schema(client: &kube::Client) {
    let mut crd = WindowsApp::crd();
    for v in &mut crd.spec.versions {
        if let Some(schema) = v.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            schema.x_kubernetes_validations = None;
            if let Some(props) = schema.properties.as_mut() {
                props.insert(
                    "spec".into(),
                    JSONSchemaProps {
                        type_: Some("object".into()),
                        x_kubernetes_preserve_unknown_fields: Some(true),
                        ..JSONSchemaProps::default()
                    },
                );
            }
        }
    }
    serve_crd(client, &crd).await;
}

/// Applies `yaml` in `ns`, retrying for up to 20 s: a changed CRD takes a moment to be served.
async fn apply_while_served(ns: &str, yaml: &str) -> Result<String, String> {
    let mut result = Err(String::new());
    for _ in 0..80 {
        result = kubectl(&["apply", "-n", ns, "-f", "-"], Some(yaml));
        if result.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    result
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn deleting_an_app_that_cannot_be_decoded_completes() {
    let _lock = LOCK.lock().await;
    let _restore = RestoreCrds;
    let client = support::client().await;
    harness::setup();
    let ns = TestNamespace::new(&client, "undecodable").await;
    let group = format!("undecodable-{}", ns.name());
    let op = Operator::start("undecodable", &format!("winapp-test-{}", ns.name()), &format!("{GROUP_LABEL}={group}"));
    op.wait_leading().await;

    loosen_the_spec_schema(&client).await;

    // A cluster-scoped child the finalizer must remove.
    let role = format!("winapp.{}.broken.gmsa", ns.name());
    let child = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {role}\n  labels: {{app.kubernetes.io/managed-by: winapp-operator, winapp.dev/app: broken, winapp.dev/namespace: {}}}\nrules: []\n",
        ns.name()
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&child));
    let broken = format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata:\n  name: broken\n  labels: {{{GROUP_LABEL}: {group}}}\n  finalizers: [winapp.dev/cleanup]\nspec: {{image: 5, replicas: three}}\n"
    );
    apply_while_served(ns.name(), &broken).await.expect("store an app the operator cannot decode");
    for _ in 0..40 {
        if op.log_text().contains("cannot decode this WindowsApp") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(op.log_text().contains("cannot decode this WindowsApp"), "the operator saw it:\n{}", op.log_text());

    kubectl_ok(&["delete", "windowsapp", "broken", "-n", ns.name(), "--wait=false"], None);
    let mut gone = false;
    for _ in 0..60 {
        if kubectl(&["get", "windowsapp", "broken", "-n", ns.name()], None).is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(gone, "the deletion completed; operator log:\n{}", op.log_text());
    let roles: Api<ClusterRole> = Api::all(client.clone());
    assert!(roles.get_opt(&role).await.expect("get").is_none(), "its cluster-scoped child was removed");
    drop(_restore);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn deleted_apps_leave_nothing_in_the_operators_memory_whatever_their_state() {
    let _lock = LOCK.lock().await;
    let _restore = RestoreCrds;
    let client = support::client().await;
    harness::setup();
    let ns = TestNamespace::new(&client, "memory").await;
    let group = format!("memory-{}", ns.name());
    let op = Operator::start("memory", &format!("winapp-test-{}", ns.name()), &format!("{GROUP_LABEL}={group}"));
    op.wait_leading().await;
    loosen_the_spec_schema(&client).await;

    // One app in each state: Ready; failing (its image cannot be pulled); Stalled (asks for a
    // power the platform did not grant); one the operator cannot decode.
    let app = |name: &str, spec: &str| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata:\n  name: {name}\n  labels: {{{GROUP_LABEL}: {group}}}\nspec:\n{spec}"
        )
    };
    let v2022 = "  windows: {version: ltsc2022}\n";
    let apps = [
        app("ready", &format!("  image: registry.example.com/web:1\n{v2022}")),
        app("failing", &format!("  image: play.invalid/pull-fails:ltsc2022\n{v2022}")),
        app(
            "stalled",
            &format!(
                "  image: registry.example.com/agent:1\n{v2022}  nodeAgent: true\n  hostProcess: {{runAsUserName: 'NT AUTHORITY\\SYSTEM'}}\n"
            ),
        ),
        app("broken", "  image: 5\n  replicas: three\n"),
    ];
    for yaml in &apps {
        apply_while_served(ns.name(), yaml).await.expect("store the app");
    }
    let has = |t: &'static str, s: &'static str| {
        move |v: &serde_json::Value| conditions(v).iter().any(|(ct, cs, _)| ct == t && cs == s)
    };
    wait_json(ns.name(), "ready", "Ready", 90, has("Ready", "True")).await;
    wait_json(ns.name(), "failing", "Reconciling", 90, has("Reconciling", "True")).await;
    wait_json(ns.name(), "stalled", "Stalled", 90, has("Stalled", "True")).await;
    let remembered = op.metric("winapp_remembered_apps").await.unwrap_or(-1.0);
    assert!(remembered >= 3.0, "the three apps it reconciled have entries; winapp_remembered_apps = {remembered}");

    for name in ["ready", "failing", "stalled", "broken"] {
        kubectl_ok(&["delete", "windowsapp", name, "-n", ns.name(), "--wait=false"], None);
    }
    // Every entry goes, by the deletion's watch event or at the latest by the sweep (each minute).
    let mut remembered = -1.0;
    for _ in 0..180 {
        remembered = op.metric("winapp_remembered_apps").await.unwrap_or(-1.0);
        let none_left = kubectl(&["get", "windowsapps", "-n", ns.name(), "-o", "name"], None)
            .is_ok_and(|out| out.trim().is_empty());
        if remembered == 0.0 && none_left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(remembered, 0.0, "winapp_remembered_apps after deleting every app; log:\n{}", op.log_text());
    drop(_restore);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_gmsa_crd_installed_or_removed_later_is_noticed_without_a_restart() {
    let _lock = LOCK.lock().await;
    let _restore = RestoreCrds;
    let client = support::client().await;
    harness::setup();
    let _ = kubectl(&["delete", "crd", GMSA_CRD, "--wait=true"], None);

    let ns = TestNamespace::new(&client, "late-crd").await;
    let group = format!("late-crd-{}", ns.name());
    let op = Operator::start("late-crd", &format!("winapp-test-{}", ns.name()), &format!("{GROUP_LABEL}={group}"));
    op.wait_leading().await;
    let credspec = format!("late-{}", ns.name());
    let app = format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: reports, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n  image: registry.example.com/reports:1\n  windows: {{version: ltsc2022}}\n  gmsa: {{credentialSpecName: {credspec}}}\n"
    );
    kubectl_ok(&["apply", "-n", ns.name(), "-f", "-"], Some(&app));
    let has = |t: &'static str, s: &'static str, r: &'static str| {
        move |v: &serde_json::Value| conditions(v).iter().any(|(ct, cs, cr)| ct == t && cs == s && cr == r)
    };
    wait_json(ns.name(), "reports", "CredentialSpecCRDMissing", 60, has("Stalled", "True", "CredentialSpecCRDMissing"))
        .await;

    // The platform team installs the CRD and the credspec: the app recovers, no restart.
    let fixture = repo().join("tests/fixtures/gmsacredentialspecs.windows.k8s.io.yaml");
    kubectl_ok(&["apply", "--server-side", "-f", &fixture.to_string_lossy()], None);
    kubectl_ok(&["wait", "--for=condition=Established", &format!("crd/{GMSA_CRD}")], None);
    let spec = format!(
        "apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\nmetadata: {{name: {credspec}, annotations: {{winapp.dev/allowed-namespaces: {ns}}}}}\ncredspec:\n  ActiveDirectoryConfig:\n    GroupManagedServiceAccounts: [{{Name: reports, Scope: CONTOSO}}]\n  DomainJoinConfig: {{DnsName: contoso.com, NetBiosName: CONTOSO}}\n",
        ns = ns.name()
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&spec));
    wait_json(ns.name(), "reports", "GMSAReady", 90, has("GMSAReady", "True", "CredentialSpecFound")).await;
    let apps: Api<WindowsApp> = Api::namespaced(client.clone(), ns.name());
    wait_for(&apps, "reports", "Ready", Duration::from_secs(120), |a: Option<&WindowsApp>| {
        a.and_then(|a| a.status.as_ref())
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await;

    // Removed again: reported again.
    kubectl_ok(&["delete", "crd", GMSA_CRD, "--wait=true"], None);
    wait_json(
        ns.name(),
        "reports",
        "CredentialSpecCRDMissing again",
        90,
        has("Stalled", "True", "CredentialSpecCRDMissing"),
    )
    .await;
    assert!(op.log_text().contains("the GMSACredentialSpec CRD was removed"), "{}", op.log_text());
    drop(_restore);
    ns.cleanup().await;
}

/// The schema of `spec.monitoring.prometheus.port` in the CRD's served version.
fn prometheus_port(crd: &mut CustomResourceDefinition) -> Option<&mut JSONSchemaProps> {
    let mut node = crd.spec.versions.first_mut()?.schema.as_mut()?.open_api_v3_schema.as_mut()?;
    for key in ["spec", "monitoring", "prometheus", "port"] {
        node = node.properties.as_mut()?.get_mut(key)?;
    }
    Some(node)
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn an_app_stored_under_a_looser_crd_is_refused_with_its_field_until_fixed() {
    let _lock = LOCK.lock().await;
    let restore = RestoreCrds;
    let client = support::client().await;
    harness::setup();
    let ns = TestNamespace::new(&client, "looser-crd").await;
    let group = format!("looser-crd-{}", ns.name());
    let op = Operator::start("looser-crd", &format!("winapp-test-{}", ns.name()), &format!("{GROUP_LABEL}={group}"));
    op.wait_leading().await;

    // An older CRD without the port's minimum: the API server stores port 0. No corpus input and
    // no other test sends a prometheus port of 0, and the CRD is restored as soon as it is stored.
    let mut crd = WindowsApp::crd();
    let port = prometheus_port(&mut crd).expect("the CRD has spec.monitoring.prometheus.port");
    assert_eq!(port.minimum, Some(1.0), "the constraint this test relaxes");
    port.minimum = None;
    serve_crd(&client, &crd).await;
    let app = |port: u16| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: scraped, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n  image: registry.example.com/exporter:1\n  windows: {{version: ltsc2022}}\n  monitoring: {{prometheus: {{port: {port}}}}}\n"
        )
    };
    let created = apply_while_served(ns.name(), &app(0)).await;
    drop(restore);
    created.expect("store an app with port 0 under the looser CRD");

    let apps: Api<WindowsApp> = ns.api();
    let refused =
        wait_for(&apps, "scraped", "Stalled/InvalidSpec", Duration::from_secs(60), |a: Option<&WindowsApp>| {
            a.and_then(|a| Some((a.metadata.generation, a.status.as_ref()?))).is_some_and(|(g, s)| {
                s.observed_generation == g
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "InvalidSpec")
            })
        })
        .await
        .expect("the app");
    let message = refused
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert_eq!(
        message,
        "the spec is invalid: spec.monitoring.prometheus.port: 0 is below the minimum 1; use a value of at least 1",
        "names the field and what to do"
    );
    // Nothing was applied for it.
    assert!(ns.api::<Deployment>().get_opt("scraped").await.expect("get").is_none(), "no Deployment");
    assert!(ns.api::<ServiceAccount>().get_opt("scraped").await.expect("get").is_none(), "no ServiceAccount");

    // Fixed under the CRD as shipped: the app is applied and turns Ready.
    kubectl_ok(&["apply", "-n", ns.name(), "-f", "-"], Some(&app(9182)));
    wait_for(&apps, "scraped", "Ready", Duration::from_secs(120), |a: Option<&WindowsApp>| {
        a.and_then(|a| Some((a.metadata.generation, a.status.as_ref()?))).is_some_and(|(g, s)| {
            s.observed_generation == g && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        })
    })
    .await;
    let deployment = ns.api::<Deployment>().get("scraped").await.expect("the Deployment, once fixed");
    let annotations = deployment.spec.template.metadata.and_then(|m| m.annotations).unwrap_or_default();
    assert_eq!(annotations.get("prometheus.io/port").map(String::as_str), Some("9182"));
    drop(op);
    ns.cleanup().await;
}
