//! Why pods are not available, in the WindowsApp's status: refusals by quota and admission (real,
//! from the API server), scheduling (the real scheduler), and the container failures a Windows
//! node reports (played by the KWOK stages in hack/controlplane/stages for images
//! `play.invalid/<case>`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

use super::{SLOW, apply, cond, ready_now, stalled_with};
use crate::harness::{GROUP_LABEL, Operator, argocd_health, kstatus, kubectl, kubectl_ok};
use crate::support::{TestNamespace, client, unique_name, wait_for};
use winapp_operator::api::WindowsApp;

fn app(name: &str, group: &str, spec: &str) -> String {
    format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: {name}, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n{spec}"
    )
}

/// Ready=False and Reconciling=True with `reason`, for the current generation.
fn progressing_with(reason: &'static str) -> impl Fn(Option<&WindowsApp>) -> bool {
    move |app| {
        app.is_some_and(|a| {
            cond(a, "Ready").is_some_and(|c| c.status == "False" && c.reason == reason)
                && cond(a, "Reconciling").is_some_and(|c| c.status == "True" && c.reason == reason)
                && a.status.as_ref().and_then(|s| s.observed_generation) == a.metadata.generation
        })
    }
}

fn message(app: &WindowsApp, type_: &str) -> String {
    cond(app, type_).map(|c| c.message.clone()).unwrap_or_default()
}

fn assert_mentions(app: &WindowsApp, type_: &str, words: &[&str]) {
    let msg = message(app, type_);
    for w in words {
        assert!(
            msg.contains(w),
            "{}: {type_} message should mention {w:?}: {msg}",
            app.metadata.name.as_deref().unwrap_or("?")
        );
    }
}

async fn warnings(ns: &TestNamespace, app: &str, reason: &str) -> Vec<Event> {
    let events: Api<Event> = ns.api();
    let lp =
        ListParams::default().fields(&format!("involvedObject.name={app},involvedObject.kind=WindowsApp,type=Warning"));
    events
        .list(&lp)
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn pod_failures_show_in_status_with_a_reason_and_what_to_do() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "diagnose").await;
    let group = format!("diagnose-{}", ns.name());
    let mut op = Operator::start_with(
        "diagnose",
        &format!("winapp-test-{}", ns.name()),
        &format!("{GROUP_LABEL}={group}"),
        crate::harness::setup(),
        &["--diagnose-after-seconds", "2"],
    );
    op.wait_leading().await;

    let v2022 = "  windows: {version: ltsc2022}\n";
    // (name, spec, reason, words the Ready message must hold)
    let cases: Vec<(&str, String, &'static str, Vec<&str>)> = vec![
        (
            "pull",
            format!("  image: play.invalid/pull-fails:ltsc2022\n{v2022}"),
            "ImagePullFailed",
            vec!["play.invalid/pull-fails:ltsc2022", "not found", "imagePullSecrets"],
        ),
        (
            "mismatch",
            format!("  image: play.invalid/os-mismatch:built-for-2019\n{v2022}"),
            "ImageOSMismatch",
            vec!["play.invalid/os-mismatch:built-for-2019", "10.0.20348 (ltsc2022)", "spec.windows.version"],
        ),
        (
            "mount",
            format!("  image: play.invalid/mount-fails:ltsc2022\n{v2022}"),
            "MountFailed",
            vec!["New-SmbGlobalMapping", "Access is denied", "DOMAIN\\user"],
        ),
        (
            "pulling",
            format!("  image: play.invalid/slow-pull:ltsc2022\n{v2022}"),
            "PullingImage",
            vec!["Pulling image \"play.invalid/slow-pull:ltsc2022\""],
        ),
        (
            "probe",
            format!("  image: play.invalid/not-ready:ltsc2022\n  ports: [{{name: http, containerPort: 80}}]\n{v2022}"),
            "ProbeFailing",
            vec!["Readiness probe failed", "initialDelaySeconds"],
        ),
        (
            "config",
            format!("  image: play.invalid/config-error:ltsc2022\n{v2022}"),
            "ContainerConfigError",
            vec!["secret \"orders-db\" not found", "spec.env"],
        ),
        (
            "huge",
            format!("  image: registry.example.com/web:1\n  resources: {{requests: {{cpu: \"500\"}}}}\n{v2022}"),
            "Unschedulable",
            vec!["Insufficient cpu", "spec.resources"],
        ),
    ];
    for (name, spec, _, _) in &cases {
        apply(ns.name(), &app(name, &group, spec));
    }
    let apps: Api<WindowsApp> = ns.api();
    for (name, _, reason, words) in &cases {
        let found = wait_for(&apps, name, reason, SLOW, progressing_with(reason)).await.expect("app exists");
        assert_mentions(&found, "Ready", words);
        // Still progress for Flux and Argo CD until the rollout's deadline passes.
        assert_eq!(kstatus(&found), "InProgress", "{name}: kstatus");
        assert_eq!(argocd_health(&found), "Progressing", "{name}: Argo CD health");
    }

    // Each problem (not the pull in progress) is a Warning event once, and counted.
    for (name, _, reason, _) in &cases {
        let events = warnings(&ns, name, reason).await;
        if *reason == "PullingImage" {
            assert!(events.is_empty(), "a pull in progress is no Warning: {events:?}");
        } else {
            assert_eq!(events.len(), 1, "{name}: one Warning event {reason}: {events:?}");
        }
    }
    assert!(
        op.metric("winapp_pod_problems_total").await.unwrap_or(0.0) >= (cases.len() - 1) as f64,
        "winapp_pod_problems_total counts the problems"
    );

    // A crash loop past the rollout's progress deadline is Stalled, with the same reason.
    apply(
        ns.name(),
        &app(
            "crash",
            &group,
            &format!("  image: play.invalid/crash:ltsc2022\n  rollout: {{progressDeadlineSeconds: 5}}\n{v2022}"),
        ),
    );
    let crash = wait_for(&apps, "crash", "Stalled CrashLoopBackOff", SLOW, stalled_with("CrashLoopBackOff"))
        .await
        .expect("app exists");
    assert_mentions(&crash, "Stalled", &["progressDeadlineSeconds", "exit code 3", "kubectl logs", "--previous"]);
    assert_eq!(kstatus(&crash), "Failed", "crash loop past the deadline: kstatus");

    // A fixed image clears the diagnosis.
    apply(ns.name(), &app("pull", &group, &format!("  image: registry.example.com/web:1\n{v2022}")));
    wait_for(&apps, "pull", "Ready after the image is fixed", SLOW, ready_now).await;
    let pull = apps.get("pull").await.expect("app");
    assert!(
        !pull.status.iter().flat_map(|s| &s.conditions).any(|c| c.reason == "ImagePullFailed"),
        "a stale diagnosis was kept: {:?}",
        pull.status
    );

    // The diagnosis reads pods only while a rollout is stuck, never for Ready apps.
    assert!(
        !op.log_text().contains("could not read the pods"),
        "diagnosis failed under config/rbac:\n{}",
        op.log_text()
    );
    // The operator removes its finalizers while the namespace goes.
    ns.cleanup().await;
    op.stop();
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn refused_pod_creations_show_in_status() {
    let client = client().await;
    let quota_ns = TestNamespace::new(&client, "quota").await;
    let gmsa_ns = TestNamespace::new(&client, "gmsarefused").await;
    let limit_ns = TestNamespace::new(&client, "limitrange").await;
    let group = format!("refused-{}", quota_ns.name());
    let mut op =
        Operator::start("refused", &format!("winapp-test-{}", quota_ns.name()), &format!("{GROUP_LABEL}={group}"));

    // A quota that allows no pods: the ReplicaSet controller's FailedCreate, through the Deployment.
    kubectl_ok(
        &["apply", "-n", quota_ns.name(), "-f", "-"],
        Some("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: no-pods}\nspec: {hard: {pods: \"0\"}}\n"),
    );

    // A LimitRange that the app's requests exceed.
    kubectl_ok(
        &["apply", "-n", limit_ns.name(), "-f", "-"],
        Some(
            "apiVersion: v1\nkind: LimitRange\nmetadata: {name: small}\nspec: {limits: [{type: Container, max: {cpu: \"1\"}}]}\n",
        ),
    );

    // The gMSA webhook's refusal, played by an admission policy with the webhook's words.
    let policy = unique_name("gmsa-use");
    let credspec = unique_name("refused-gmsa");
    let policies = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {policy}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}}
  validations:
    - expression: "!has(object.spec.securityContext) || !has(object.spec.securityContext.windowsOptions) || !has(object.spec.securityContext.windowsOptions.gmsaCredentialSpecName)"
      message: "service account 'web' is not authorized to 'use' gMSA cred spec '{credspec}'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {policy}}}
spec:
  policyName: {policy}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {ns}}}
---
apiVersion: windows.k8s.io/v1
kind: GMSACredentialSpec
metadata: {{name: {credspec}, annotations: {{winapp.dev/allowed-namespaces: {ns}}}}}
credspec:
  ActiveDirectoryConfig:
    GroupManagedServiceAccounts: [{{Name: WebSvc, Scope: CONTOSO}}]
  CmsPlugins: [ActiveDirectory]
  DomainJoinConfig: {{DnsName: contoso.com, DnsTreeName: contoso.com, Guid: 244818ae-87ac-4fcd-92ec-e79e5252348a, MachineAccountName: WebSvc, NetBiosName: CONTOSO, Sid: S-1-5-21-2126449477-2524075714-3094792973}}
"#,
        ns = gmsa_ns.name()
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&policies));
    let cleanup_policies = || {
        let _ = kubectl(
            &["delete", "--ignore-not-found", "validatingadmissionpolicybinding,validatingadmissionpolicy", &policy],
            None,
        );
        let _ = kubectl(&["delete", "--ignore-not-found", "gmsacredentialspec", &credspec], None);
    };
    // The API server loads policies asynchronously: wait until a dry-run pod meets it.
    let probe = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: probe}}\nspec:\n  securityContext: {{windowsOptions: {{gmsaCredentialSpecName: {credspec}}}}}\n  containers: [{{name: app, image: registry.example.com/web:1}}]\n"
    );
    let mut active = false;
    for _ in 0..120 {
        if kubectl(&["create", "-n", gmsa_ns.name(), "--dry-run=server", "-f", "-"], Some(&probe))
            .is_err_and(|e| e.contains("not authorized to 'use' gMSA"))
        {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !active {
        cleanup_policies();
        panic!("the ValidatingAdmissionPolicy never took effect");
    }

    op.wait_leading().await;
    let spec = "  image: registry.example.com/web:1\n  windows: {version: ltsc2022}\n";
    apply(quota_ns.name(), &app("web", &group, spec));
    apply(gmsa_ns.name(), &app("web", &group, &format!("{spec}  gmsa: {{credentialSpecName: {credspec}}}\n")));
    apply(limit_ns.name(), &app("web", &group, &format!("{spec}  resources: {{limits: {{cpu: \"2\"}}}}\n")));

    let quota =
        wait_for(&quota_ns.api::<WindowsApp>(), "web", "QuotaExceeded", SLOW, progressing_with("QuotaExceeded")).await;
    let refused = wait_for(
        &gmsa_ns.api::<WindowsApp>(),
        "web",
        "GMSAWebhookRefused",
        SLOW,
        progressing_with("GMSAWebhookRefused"),
    )
    .await;
    cleanup_policies();
    let limited =
        wait_for(&limit_ns.api::<WindowsApp>(), "web", "PodsRefused", SLOW, progressing_with("PodsRefused")).await;
    let (quota, refused, limited) = (quota.expect("app"), refused.expect("app"), limited.expect("app"));
    assert_mentions(&limited, "Ready", &["LimitRange", "maximum cpu usage per Container is 1"]);
    assert_mentions(&quota, "Ready", &["exceeded quota: no-pods", "raise the quota"]);
    assert_mentions(&refused, "Ready", &["not authorized to 'use' gMSA cred spec", "spec.gmsa.credentialSpecName"]);

    // Lifting the quota lets the app become Ready: the reason does not stick.
    kubectl_ok(&["delete", "-n", quota_ns.name(), "resourcequota", "no-pods"], None);
    wait_for(&quota_ns.api::<WindowsApp>(), "web", "Ready once the quota is gone", SLOW, ready_now).await;
    quota_ns.cleanup().await;
    gmsa_ns.cleanup().await;
    limit_ns.cleanup().await;
    op.stop();
}
