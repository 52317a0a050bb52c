//! Correctness of the reconcile loop under real inputs and real failures: values the API server
//! normalises, fields an admission policy rewrites, changes the server refuses, an autoscaler
//! taking the replica count, prune of look-alikes, and leader election under a partition.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::{SLOW, apply, cond, ready_now, stalled_with};
use crate::harness::{GROUP_LABEL, Mode, Operator, Proxy, api_server_addr, kubeconfig_via, kubectl, kubectl_ok};
use crate::support::{self, TestNamespace, wait_for};
use winapp_operator::api::WindowsApp;

fn grouped(name: &str, group: &str, spec: &str) -> String {
    format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: {name}, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n{spec}"
    )
}

/// A dedicated operator for one test's apps.
fn operator_for(ns: &TestNamespace, what: &str) -> (Operator, String) {
    let group = format!("{what}-{}", ns.name());
    let op = Operator::start(what, &format!("winapp-test-{}", ns.name()), &format!("{GROUP_LABEL}={group}"));
    (op, group)
}

async fn metric(op: &Operator, name: &str) -> f64 {
    op.metric(name).await.unwrap_or(-1.0)
}

/// Touches the app's metadata (no new generation) so that the operator reconciles it again.
async fn nudge(apps: &Api<WindowsApp>, name: &str, n: usize) {
    let patch = json!({"metadata": {"annotations": {"test.winapp.dev/nudge": n.to_string()}}});
    apps.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("nudge the app");
}

/// Nudges the app `times` times and waits until the operator has reconciled each time.
async fn reconcile_again(op: &Operator, apps: &Api<WindowsApp>, name: &str, times: usize) {
    for n in 0..times {
        let before = metric(op, "winapp_reconciles_total").await;
        nudge(apps, name, n).await;
        for _ in 0..80 {
            if metric(op, "winapp_reconciles_total").await > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(metric(op, "winapp_reconciles_total").await > before, "nudge {n} caused no reconcile");
    }
}

async fn warning_events(ns: &TestNamespace, app: &str, reason: &str) -> Vec<Event> {
    let events: Api<Event> = ns.api();
    let lp = ListParams::default().fields(&format!("involvedObject.name={app},reason={reason},type=Warning"));
    events.list(&lp).await.expect("list events").items
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn values_the_server_normalises_converge_and_then_cost_no_writes() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "normalised").await;
    // The toleration below is of a taint of the platform's own: granted to the namespace.
    crate::harness::kubectl_ok(
        &["annotate", "namespace", ns.name(), "winapp.dev/allowed-taints=example.com/dedicated"],
        None,
    );
    let (op, group) = operator_for(&ns, "normalised");
    op.wait_leading().await;
    let spec = r#"  image: registry.example.com/web:1
  resources:
    requests: {cpu: "0.5", memory: 1024Mi}
    limits: {cpu: "1.0", memory: 2048Mi}
  env:
    - {name: EMPTY, value: ""}
  windows:
    version: ltsc2022
    tolerations:
      - {key: example.com/dedicated, operator: Exists, value: ""}
"#;
    apply(ns.name(), &grouped("norm", &group, spec));
    let apps: Api<WindowsApp> = ns.api();
    wait_for(&apps, "norm", "Ready", SLOW, ready_now).await;
    // Let the Deployment controller's status writes settle into the cache.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = metric(&op, "winapp_child_writes_total").await;
    let status_writes = metric(&op, "winapp_status_writes_total").await;
    reconcile_again(&op, &apps, "norm", 4).await;
    assert_eq!(
        metric(&op, "winapp_child_writes_total").await,
        writes,
        "a Ready app with non-canonical quantities and empty strings was applied again; log:\n{}",
        op.log_text()
    );
    assert_eq!(metric(&op, "winapp_status_writes_total").await, status_writes, "status rewritten without a change");
    let app = apps.get("norm").await.expect("app");
    assert!(ready_now(Some(&app)), "still Ready: {:?}", app.status);
    let stored: Deployment = ns.api().get("norm").await.expect("deployment");
    let requests = stored.spec.template.spec.as_ref().and_then(|s| s.containers[0].resources.clone());
    let cpu = requests.and_then(|r| r.requests).and_then(|r| r.get("cpu").cloned()).map(|q| q.0);
    assert_eq!(cpu.as_deref(), Some("500m"), "the server stores the canonical form");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_field_rewritten_by_admission_is_reported_once_and_not_fought() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "rewrite").await;
    let policy = format!("winapp-test-rewrite-{}", ns.name());
    // A real mutating admission policy: every Deployment created or updated in this namespace
    // gets its `app` container's image rewritten to a mirror.
    let policies = format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {{name: {policy}}}
spec:
  matchConstraints:
    resourceRules:
      - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
    - patchType: ApplyConfiguration
      applyConfiguration:
        expression: >
          Object{{spec: Object.spec{{template: Object.spec.template{{spec: Object.spec.template.spec{{
            containers: [Object.spec.template.spec.containers{{name: "app", image: "mirror.internal/rewritten:1"}}]}}}}}}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {{name: {policy}}}
spec:
  policyName: {policy}
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {ns}}}
"#,
        ns = ns.name()
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&policies));
    // The API server loads policies asynchronously: probe with a dry-run Deployment until the
    // rewrite shows, so that the app's Deployment is certain to meet it.
    let probe = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: probe}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: app, image: registry.example.com/web:1}]}\n";
    let mut active = false;
    for _ in 0..120 {
        let out = kubectl(&["create", "-n", ns.name(), "--dry-run=server", "-o", "json", "-f", "-"], Some(probe));
        if out.is_ok_and(|o| o.contains("mirror.internal/rewritten:1")) {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(active, "the MutatingAdmissionPolicy never took effect");
    let (op, group) = operator_for(&ns, "rewrite");
    op.wait_leading().await;
    let apps: Api<WindowsApp> = ns.api();
    apply(
        ns.name(),
        &grouped("mirror", &group, "  image: registry.example.com/web:1\n  windows: {version: ltsc2022}\n"),
    );
    let deployments: Api<Deployment> = ns.api();
    wait_for(&deployments, "mirror", "image rewritten", SLOW, |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.template.spec.as_ref()?.containers.first()?.image.clone()).as_deref()
            == Some("mirror.internal/rewritten:1")
    })
    .await;
    let app = wait_for(&apps, "mirror", "Ready with SpecApplied=False", SLOW, |a: Option<&WindowsApp>| {
        ready_now(a) && a.and_then(|a| cond(a, "SpecApplied")).is_some_and(|c| c.reason == "RewrittenByAdmission")
    })
    .await
    .expect("app");
    let message = cond(&app, "SpecApplied").map(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains(".spec.template.spec.containers[0].image"), "names the field: {message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = metric(&op, "winapp_child_writes_total").await;
    reconcile_again(&op, &apps, "mirror", 4).await;
    assert_eq!(
        metric(&op, "winapp_child_writes_total").await,
        writes,
        "the operator fought the admission policy; log:\n{}",
        op.log_text()
    );
    let events = warning_events(&ns, "mirror", "RewrittenByAdmission").await;
    assert_eq!(events.iter().map(|e| e.count.unwrap_or(1)).sum::<i32>().max(events.len() as i32), 1, "one event");
    kubectl_ok(&["delete", "mutatingadmissionpolicybinding,mutatingadmissionpolicy", &policy], None);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_change_the_server_refuses_is_reported_with_its_message_and_an_event() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "refused").await;
    let (op, group) = operator_for(&ns, "refused");
    op.wait_leading().await;
    let spec = |size: &str| {
        format!(
            "  image: registry.example.com/web:1\n  windows: {{version: ltsc2022}}\n  volumes:\n    - name: data\n      mountPath: 'C:\\data'\n      claim: {{storageClassName: winapp-test-none, size: {size}}}\n"
        )
    };
    apply(ns.name(), &grouped("shrink", &group, &spec("10Gi")));
    let apps: Api<WindowsApp> = ns.api();
    wait_for(&apps, "shrink", "claim created", SLOW, |a: Option<&WindowsApp>| {
        a.and_then(|a| cond(a, "StorageReady")).is_some()
    })
    .await;
    // A claim's spec is immutable once created (its size may only grow, and only when bound).
    apply(ns.name(), &grouped("shrink", &group, &spec("5Gi")));
    let app = wait_for(&apps, "shrink", "Stalled/ApplyFailed", SLOW, stalled_with("ApplyFailed")).await.expect("app");
    let message = cond(&app, "Stalled").map(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("PersistentVolumeClaim shrink.data"), "names the child: {message}");
    assert!(message.contains("spec"), "carries the server's message with the field: {message}");
    assert!(!ready_now(Some(&app)), "not Ready while the spec cannot be applied");
    for _ in 0..40 {
        if !warning_events(&ns, "shrink", "ApplyFailed").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!warning_events(&ns, "shrink", "ApplyFailed").await.is_empty(), "a Warning event ApplyFailed");
    // Back to what the server accepts: the app recovers.
    apply(ns.name(), &grouped("shrink", &group, &spec("10Gi")));
    wait_for(&apps, "shrink", "no longer stalled", SLOW, |a: Option<&WindowsApp>| {
        a.is_some_and(|a| {
            cond(a, "Stalled").is_some_and(|c| c.status == "False")
                && a.status.as_ref().and_then(|s| s.observed_generation) == a.metadata.generation
        })
    })
    .await;
    ns.cleanup().await;
    drop(op);
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn autoscaled_toggles_keep_the_running_replica_count() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "autoscale").await;
    let (op, group) = operator_for(&ns, "autoscale");
    op.wait_leading().await;
    let apps: Api<WindowsApp> = ns.api();
    let deployments: Api<Deployment> = ns.api();
    let app = |extra: &str| {
        grouped(
            "scaled",
            &group,
            &format!("  image: registry.example.com/web:1\n  windows: {{version: ltsc2022}}\n{extra}"),
        )
    };
    apply(ns.name(), &app("  replicas: 2\n"));
    wait_for(&apps, "scaled", "Ready", SLOW, ready_now).await;

    // Record every replica count the Deployment passes through from now on.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<i32>::new()));
    let recorder = {
        let (seen, deployments) = (seen.clone(), deployments.clone());
        tokio::spawn(async move {
            use futures::StreamExt;
            let cfg = kube::runtime::watcher::Config::default().fields("metadata.name=scaled");
            let mut stream = std::pin::pin!(kube::runtime::watcher(deployments, cfg));
            while let Some(Ok(ev)) = stream.next().await {
                if let kube::runtime::watcher::Event::Apply(d) | kube::runtime::watcher::Event::InitApply(d) = ev
                    && let Ok(mut s) = seen.lock()
                {
                    s.push(d.spec.replicas.unwrap_or(1));
                }
            }
        })
    };

    // On: the operator hands the field over; the count stays 2.
    apply(ns.name(), &app("  replicas: 2\n  autoscaled: true\n"));
    wait_for(&apps, "scaled", "Ready with autoscaled", SLOW, ready_now).await;
    // An HPA-like writer scales through the scale subresource.
    let scale = json!({"spec": {"replicas": 4}});
    deployments
        .patch_scale(
            "scaled",
            &PatchParams { field_manager: Some("hpa-like".into()), ..Default::default() },
            &Patch::Merge(&scale),
        )
        .await
        .expect("scale to 4");
    reconcile_again(&op, &apps, "scaled", 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        deployments.get("scaled").await.expect("deployment").spec.replicas,
        Some(4),
        "the autoscaler's count holds"
    );

    // Off, with no spec.replicas: the running count is kept.
    apply(ns.name(), &app(""));
    wait_for(&apps, "scaled", "Ready with autoscaled off", SLOW, ready_now).await;
    reconcile_again(&op, &apps, "scaled", 2).await;
    assert_eq!(deployments.get("scaled").await.expect("deployment").spec.replicas, Some(4), "kept when turned off");
    // An explicit spec.replicas wins again.
    apply(ns.name(), &app("  replicas: 3\n"));
    wait_for(&deployments, "scaled", "3 replicas", SLOW, |d: Option<&Deployment>| {
        d.is_some_and(|d| d.spec.replicas == Some(3))
    })
    .await;
    recorder.abort();
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(seen.iter().all(|r| *r >= 2), "the count never fell below 2 (no reset to 1): {seen:?}");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn prune_leaves_look_alikes_in_other_namespaces_and_without_our_owner() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "prune-own").await;
    let other = TestNamespace::new(&client, "prune-other").await;
    let (op, group) = operator_for(&ns, "prune-own");
    op.wait_leading().await;
    let apps: Api<WindowsApp> = ns.api();
    apply(ns.name(), &grouped("own", &group, "  image: registry.example.com/web:1\n  windows: {version: ltsc2022}\n"));
    wait_for(&apps, "own", "Ready", SLOW, ready_now).await;
    // Objects that carry this app's labels but are not its children: one in another namespace,
    // one in the app's namespace without its owner reference.
    let labels = format!(
        "{{app.kubernetes.io/managed-by: winapp-operator, winapp.dev/app: own, winapp.dev/namespace: {}}}",
        ns.name()
    );
    for (target, name) in [(other.name(), "look-alike"), (ns.name(), "no-owner")] {
        apply(
            target,
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {labels}}}\ndata: {{k: v}}\n"),
        );
    }
    // Turning a feature off prunes: give the app a config file, then take it away.
    apply(
        ns.name(),
        &grouped(
            "own",
            &group,
            "  image: registry.example.com/web:1\n  windows: {version: ltsc2022}\n  config: {mountPath: 'C:\\cfg', files: [{name: a.txt, content: x}]}\n",
        ),
    );
    let cms: Api<ConfigMap> = ns.api();
    wait_for(&cms, "own-config", "config created", SLOW, |c: Option<&ConfigMap>| c.is_some()).await;
    apply(ns.name(), &grouped("own", &group, "  image: registry.example.com/web:1\n  windows: {version: ltsc2022}\n"));
    wait_for(&cms, "own-config", "config pruned", SLOW, |c: Option<&ConfigMap>| c.is_none()).await;
    let other_cms: Api<ConfigMap> = other.api();
    assert!(other_cms.get_opt("look-alike").await.expect("get").is_some(), "prune reached another namespace");
    assert!(cms.get_opt("no-owner").await.expect("get").is_some(), "prune deleted an object not owned by the app");
    other.cleanup().await;
    ns.cleanup().await;
    drop(op);
}

/// Starts leader `a` through a proxy and standby `b` directly on one Lease, cuts `a` off in
/// `mode`, and checks that `a` stops leading before `b` takes over.
async fn partition(mode: Mode, what: &str) {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, what).await;
    let group = format!("{what}-{}", ns.name());
    let selector = format!("{GROUP_LABEL}={group}");
    let lease = format!("winapp-test-{}", ns.name());
    let proxy = Proxy::start(api_server_addr()).await;
    let via = kubeconfig_via(&proxy.server(), what);
    let mut a = Operator::start_with(&format!("{what}-a"), &lease, &selector, &via, &[]);
    a.wait_leading().await;
    let b = Operator::start(&format!("{what}-b"), &lease, &selector);
    for _ in 0..40 {
        if b.probe("/readyz").await.is_some_and(|(c, _)| c == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!b.leading().await, "b stands by while a leads");

    let cut = Instant::now();
    proxy.set(mode);
    let mut a_stopped = None;
    let mut b_led = None;
    while cut.elapsed() < Duration::from_secs(60) && (a_stopped.is_none() || b_led.is_none()) {
        if a_stopped.is_none() && a.exited().is_some() {
            a_stopped = Some(cut.elapsed());
        }
        if b_led.is_none() && b.leading().await {
            b_led = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (Some(stopped), Some(led)) = (a_stopped, b_led) else {
        panic!("a stopped: {a_stopped:?}, b led: {b_led:?}\na's log:\n{}\nb's log:\n{}", a.log_text(), b.log_text());
    };
    assert!(stopped < led, "the old leader stopped ({stopped:?}) before the standby led ({led:?})");
    assert!(stopped <= Duration::from_secs(14), "gave up within the renew deadline (10 s) and a retry: {stopped:?}");
    assert!(a.log_text().contains("could not renew the Lease"), "says why:\n{}", a.log_text());
    // b reconciles: a new app turns Ready.
    let apps: Api<WindowsApp> = ns.api();
    apply(
        ns.name(),
        &grouped("after", &group, "  image: registry.example.com/web:1\n  windows: {version: ltsc2022}\n"),
    );
    wait_for(&apps, "after", "Ready under the new leader", SLOW, ready_now).await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_partitioned_leader_stops_before_a_standby_takes_over() {
    partition(Mode::Hang, "partition").await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_leader_whose_renewals_fail_gives_up_before_a_standby_takes_over() {
    partition(Mode::Reset, "renewfail").await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn healthz_fails_when_the_leader_cannot_sync_its_caches() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "nosync").await;
    // A service account that may hold the Lease and read WindowsApps, but not list Deployments:
    // that cache never syncs.
    let sa = format!("nosync-{}", ns.name());
    let rbac = format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {sa}, namespace: winapp-system}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {sa}}}
rules:
  - {{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update]}}
  - {{apiGroups: [winapp.dev], resources: [windowsapps], verbs: [get, list, watch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {sa}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {sa}}}
subjects: [{{kind: ServiceAccount, name: {sa}, namespace: winapp-system}}]
"#
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&rbac));
    let token = kubectl_ok(&["create", "token", &sa, "-n", "winapp-system", "--duration=1h"], None);
    let path = crate::harness::kubeconfig_via(&format!("https://{}", api_server_addr()), &sa);
    let mut k: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    k["users"][0]["user"]["token"] = serde_json::Value::String(token.trim().to_owned());
    std::fs::write(&path, k.to_string()).expect("write kubeconfig");
    let lease = format!("winapp-test-{}", ns.name());
    let op = Operator::start_with(
        "nosync",
        &lease,
        &format!("{GROUP_LABEL}=nosync-{}", ns.name()),
        &path,
        &["--sync-deadline-seconds", "3"],
    );
    let mut health = None;
    for _ in 0..120 {
        health = op.probe("/healthz").await;
        if health.as_ref().is_some_and(|(c, _)| *c == 503) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (code, body) = health.expect("/healthz answers");
    assert_eq!(code, 503, "/healthz fails: {body}\n{}", op.log_text());
    assert!(body.contains("caches not synced"), "{body}");
    assert_eq!(op.probe("/readyz").await.map(|(c, _)| c), Some(200), "readiness does not flip");
    assert_eq!(op.probe("/leaderz").await.map(|(c, _)| c), Some(503), "not reconciling");
    drop(op);
    kubectl_ok(&["delete", "clusterrolebinding,clusterrole", &sa], None);
    kubectl_ok(&["delete", "serviceaccount", &sa, "-n", "winapp-system"], None);
    ns.cleanup().await;
}
