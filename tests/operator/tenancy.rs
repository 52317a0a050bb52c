//! The operator among tenants: a WindowsApp gets no power beyond its namespace unless the
//! platform grants it (per namespace or for every app), a withdrawn grant stops the pods that
//! used it, claims are never deleted unless their volume asks, and objects that carry the
//! operator's label without being an app's cost its cache no body.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::{SLOW, apply, cond, grant, ready_now, stalled_with};
use crate::harness::{GROUP_LABEL, Operator, kubectl_ok, setup};
use crate::support::{TestNamespace, client, wait_for};
use winapp_operator::api::WindowsApp;

/// The manifest of a tenant that wants SYSTEM on every Windows node, tolerating every taint.
fn tenant(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec: {{image: registry.example.com/x:1, nodeAgent: true, hostProcess: {{}}, apiAccess: true, windows: {{version: ltsc2022, tolerations: [{{operator: Exists}}]}}}}\n"
    )
}

fn message(app: &WindowsApp, type_: &str) -> String {
    cond(app, type_).map(|c| c.message.clone()).unwrap_or_default()
}

async fn events(ns: &TestNamespace, app: &str, reason: &str) -> Vec<Event> {
    let lp = ListParams::default().fields(&format!("involvedObject.name={app},reason={reason}"));
    ns.api::<Event>().list(&lp).await.expect("list events").items
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn node_level_powers_are_refused_until_the_platform_grants_them_and_stop_when_withdrawn() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "tenant").await;
    let group = format!("tenant-{}", ns.name());
    let selector = format!("{GROUP_LABEL}={group}");
    let mut op = Operator::start("tenant", &format!("winapp-test-{}", ns.name()), &selector);
    op.wait_leading().await;
    apply(ns.name(), &tenant("agent", &format!("{GROUP_LABEL}: {group}")));
    let apps: Api<WindowsApp> = ns.api();
    let daemon_sets: Api<DaemonSet> = ns.api();

    // 1. Refused by default: Stalled/NotAllowed, each field named with how to allow it; no pods.
    let refused = wait_for(&apps, "agent", "NotAllowed", SLOW, stalled_with("NotAllowed")).await.expect("app");
    let msg = message(&refused, "Stalled");
    for words in [
        "spec.nodeAgent",
        "rule node-agent",
        "spec.hostProcess",
        r"NT AUTHORITY\SYSTEM",
        "spec.windows.tolerations[0]",
        "rule tolerate-all",
        "winapp.dev/allow",
        "--allow",
    ] {
        assert!(msg.contains(words), "the message should mention {words:?}: {msg}");
    }
    assert!(daemon_sets.get_opt("agent").await.expect("get").is_none(), "a refused app got a DaemonSet");

    // 2. The platform team grants the namespace: the same app runs, one pod per node.
    grant(ns.name(), "host-process,node-agent,tolerate-all");
    wait_for(&apps, "agent", "Ready once granted", SLOW, ready_now).await;
    assert!(daemon_sets.get_opt("agent").await.expect("get").is_some());

    // 3. One grant withdrawn: the running HostProcess pods stop (their DaemonSet is removed),
    //    the rest of the app stays, and the status and an event say why.
    grant(ns.name(), "node-agent,tolerate-all");
    let withdrawn = wait_for(&apps, "agent", "NotAllowed again", SLOW, stalled_with("NotAllowed")).await.expect("app");
    assert!(
        message(&withdrawn, "Stalled").contains("no longer grants (rule host-process)"),
        "{}",
        message(&withdrawn, "Stalled")
    );
    wait_for(&daemon_sets, "agent", "removed", SLOW, |d: Option<&DaemonSet>| d.is_none()).await;
    assert!(!events(&ns, "agent", "GrantWithdrawn").await.is_empty(), "a Warning event says so");
    assert!(ns.api::<k8s_openapi::api::core::v1::ServiceAccount>().get_opt("agent").await.expect("get").is_some());
    op.stop();

    // 4. A grant for every app, by the operator's flag, works the same without the annotation.
    kubectl_ok(&["annotate", "namespace", ns.name(), "winapp.dev/allow-"], None);
    let mut op = Operator::start_with(
        "tenant-flag",
        &format!("winapp-test-{}", ns.name()),
        &selector,
        setup(),
        &["--allow", "host-process,node-agent", "--allow", "tolerate-all"],
    );
    op.wait_leading().await;
    wait_for(&apps, "agent", "Ready by the flag", SLOW, ready_now).await;
    op.stop();
    ns.cleanup().await;
}

/// A StorageClass without a provisioner, with reclaim policy Delete (as the usual Azure Files and
/// SMB classes), and a volume of it pre-bound to `claim`, standing in for a provisioned share.
fn class_and_volume(class: &str, pv: &str, ns: &str, claim: &str) -> String {
    format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: {class}}}\nprovisioner: kubernetes.io/no-provisioner\nreclaimPolicy: Delete\nvolumeBindingMode: Immediate\n---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {pv}}}\nspec:\n  storageClassName: {class}\n  persistentVolumeReclaimPolicy: Delete\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteMany]\n  csi: {{driver: file.csi.azure.com, volumeHandle: {pv}}}\n  claimRef: {{namespace: {ns}, name: {claim}}}\n"
    )
}

fn claim_app(class: &str, volumes: &[(&str, Option<&str>)]) -> String {
    let list: Vec<String> = volumes
        .iter()
        .map(|(v, policy)| {
            let policy = policy.map(|p| format!(", retentionPolicy: {p}")).unwrap_or_default();
            format!(
                "    - {{name: {v}, mountPath: 'D:\\{v}', claim: {{storageClassName: {class}, size: 1Gi{policy}}}}}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: data}}\nspec:\n  image: registry.example.com/data:1\n  windows: {{version: ltsc2022}}\n  volumes:\n{}",
        list.concat()
    )
}

fn released_from(c: &PersistentVolumeClaim) -> Option<String> {
    c.annotations().get("winapp.dev/released-from").cloned()
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn claims_outlive_a_renamed_volume_and_a_deleted_app_and_are_adopted_again() {
    let client = client().await;
    super::harness::shared().await;
    let ns = TestNamespace::new(&client, "claims").await;
    let class = format!("keep-{}", ns.name());
    let (pv, scratch_pv) = (format!("keep-{}", ns.name()), format!("scratch-{}", ns.name()));
    kubectl_ok(&["apply", "-f", "-"], Some(&class_and_volume(&class, &pv, ns.name(), "data.cache")));
    kubectl_ok(&["apply", "-f", "-"], Some(&class_and_volume(&class, &scratch_pv, ns.name(), "data.scratch")));
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = ns.api();
    let apps: Api<WindowsApp> = ns.api();
    let cleanup_pvs = || async {
        for name in [&pv, &scratch_pv] {
            let _ = pvs.delete(name, &DeleteParams::default()).await;
        }
        let _ = kubectl_ok(&["delete", "storageclass", &class, "--ignore-not-found"], None);
    };

    apply(ns.name(), &claim_app(&class, &[("cache", None), ("scratch", Some("Delete"))]));
    wait_for(&apps, "data", "Ready", SLOW, ready_now).await;
    let uid = claims.get("data.cache").await.expect("the claim").uid();

    // 1. The volumes renamed away: the Retain claim is released and kept, bound to its data; the
    //    Delete one goes.
    apply(ns.name(), &claim_app(&class, &[("cache-v2", None)]));
    let released = wait_for(&claims, "data.cache", "released", SLOW, |c: Option<&PersistentVolumeClaim>| {
        c.is_some_and(|c| released_from(c).is_some())
    })
    .await
    .expect("the claim is kept");
    assert_eq!(released.uid(), uid, "the same claim, not a new one");
    assert_eq!(released_from(&released).as_deref(), Some(format!("{}/data/cache", ns.name()).as_str()));
    assert!(released.labels().get("app.kubernetes.io/managed-by").is_none(), "{:?}", released.labels());
    assert!(released.owner_references().is_empty());
    assert_eq!(released.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Bound"));
    // (Deleted: its pods still run until the new ones are available, so the claim may wait on
    // kubernetes.io/pvc-protection a while.)
    wait_for(&claims, "data.scratch", "deleted", SLOW, |c: Option<&PersistentVolumeClaim>| {
        c.is_none_or(|c| c.metadata.deletion_timestamp.is_some())
    })
    .await;
    let app = wait_for(&apps, "data", "status lists the released claim", SLOW, |a: Option<&WindowsApp>| {
        a.is_some_and(|a| a.status.as_ref().is_some_and(|s| s.released_claims.iter().any(|r| r.claim == "data.cache")))
    })
    .await
    .expect("app");
    let listed = &app.status.as_ref().expect("status").released_claims;
    assert_eq!(
        listed.iter().map(|r| (r.claim.as_str(), r.volume.as_str())).collect::<Vec<_>>(),
        [("data.cache", "cache")]
    );
    let note = events(&ns, "data", "Released").await;
    assert!(note.iter().any(|e| e.message.as_deref().is_some_and(|m| m.contains("data.cache"))), "{note:?}");
    assert!(pvs.get_opt(&pv).await.expect("get").is_some(), "the data's volume is there");

    // 2. The volume back: the same claim is adopted again, nothing is created anew.
    apply(ns.name(), &claim_app(&class, &[("cache", None)]));
    let adopted = wait_for(&claims, "data.cache", "adopted", SLOW, |c: Option<&PersistentVolumeClaim>| {
        c.is_some_and(|c| released_from(c).is_none() && c.labels().contains_key("app.kubernetes.io/managed-by"))
    })
    .await
    .expect("claim");
    assert_eq!(adopted.uid(), uid);
    let app = wait_for(&apps, "data", "Ready with the claim again", SLOW, ready_now).await.expect("app");
    // The adopted claim is no longer listed; cache-v2's, renamed away in turn, is.
    let listed: Vec<&str> =
        app.status.as_ref().map(|s| s.released_claims.iter().map(|r| r.claim.as_str()).collect()).unwrap_or_default();
    assert_eq!(listed, ["data.cache-v2"], "{:?}", app.status);

    // 3. The app deleted: its claim stays, released, with its data's volume.
    let app_uid = apps.get("data").await.expect("app").uid().expect("uid");
    apps.delete("data", &DeleteParams::foreground()).await.expect("delete the app");
    wait_for(&apps, "data", "deleted", SLOW, kube::runtime::wait::conditions::is_deleted(&app_uid)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kept = claims.get_opt("data.cache").await.expect("get");
    let volume = pvs.get_opt(&pv).await.expect("get");
    cleanup_pvs().await;
    let kept = kept.expect("the claim outlives the app");
    assert_eq!(kept.uid(), uid);
    assert_eq!(released_from(&kept).as_deref(), Some(format!("{}/data/cache", ns.name()).as_str()));
    assert!(volume.is_some(), "the volume of the data is kept");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn labelled_objects_that_no_app_owns_cost_the_cache_no_body() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "flood").await;
    let group = format!("flood-{}", ns.name());
    let op = Operator::start("flood", &format!("winapp-test-{}", ns.name()), &format!("{GROUP_LABEL}={group}"));
    op.wait_leading().await;
    let bytes = || op.metric_of("winapp_cache_body_bytes", "kind=\"ConfigMap\"");
    let objects = || op.metric_of("winapp_cache_objects", "kind=\"ConfigMap\"");
    let (bytes_before, objects_before) = (bytes().await.expect("metric"), objects().await.expect("metric"));

    // 20 ConfigMaps of 0.9 MiB that claim to be the operator's, by label only.
    let api: Api<ConfigMap> = ns.api();
    let content = "x".repeat(900 * 1024);
    for i in 0..20 {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("planted-{i}"), "labels": {
                "app.kubernetes.io/managed-by": "winapp-operator", "winapp.dev/app": "web", "winapp.dev/namespace": ns.name()}},
            "data": {"Web.config": content},
        }))
        .expect("a ConfigMap");
        api.create(&PostParams::default(), &cm).await.expect("create a planted ConfigMap");
    }
    let mut seen = 0.0;
    for _ in 0..100 {
        seen = objects().await.unwrap_or_default();
        if seen >= objects_before + 20.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen >= objects_before + 20.0, "the cache saw {seen} ConfigMaps, {objects_before} before the 20");
    let grown = bytes().await.expect("metric") - bytes_before;
    // 18 MiB planted; what the cache keeps of them is their metadata only (other tests' apps may
    // add a few small owned ConfigMaps meanwhile, their files kept as digests).
    assert!(grown < 64.0 * 1024.0, "the cache kept {grown} bytes more for 18 MiB of planted ConfigMaps");
    // And they are nobody's children: never applied over or pruned.
    for i in 0..20 {
        assert!(api.get(&format!("planted-{i}")).await.is_ok());
    }
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_resource_quota_limits_what_the_operator_creates_for_an_app() {
    let client = client().await;
    super::harness::shared().await;
    let ns = TestNamespace::new(&client, "quota").await;
    // The platform team allows this namespace no load balancer.
    apply(
        ns.name(),
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: no-lb}\nspec: {hard: {services.loadbalancers: '0'}}\n",
    );
    apply(
        ns.name(),
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {name: public}\nspec:\n  image: registry.example.com/web:1\n  ports: [{name: http, containerPort: 80}]\n  service: {type: LoadBalancer}\n",
    );
    let apps: Api<WindowsApp> = ns.api();
    let refused = wait_for(&apps, "public", "refused by the quota", SLOW, |a: Option<&WindowsApp>| {
        a.is_some_and(|a| cond(a, "Ready").is_some_and(|c| c.reason == "ApplyFailed"))
    })
    .await
    .expect("app");
    let msg = message(&refused, "Ready");
    assert!(msg.contains("Service public") && msg.contains("services.loadbalancers"), "{msg}");
    assert!(ns.api::<k8s_openapi::api::core::v1::Service>().get_opt("public").await.expect("get").is_none());
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn an_app_relabelled_out_of_the_selector_is_still_cleaned_up_when_deleted() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "strays").await;
    grant(ns.name(), "smb-volumes");
    let group = format!("strays-{}", ns.name());
    let op = Operator::start("strays", &format!("winapp-test-{}", ns.name()), &format!("{GROUP_LABEL}={group}"));
    op.wait_leading().await;
    apply(
        ns.name(),
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds}}\nstringData: {{username: u, password: p}}\n---\napiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: files, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n  image: registry.example.com/files:1\n  volumes: [{{name: share, mountPath: 'D:\\share', smb: {{source: //fs/share, secretRef: {{name: creds}}}}}}]\n"
        ),
    );
    let apps: Api<WindowsApp> = ns.api();
    let app = wait_for(&apps, "files", "Ready", SLOW, ready_now).await.expect("app");
    assert!(app.finalizers().iter().any(|f| f == "winapp.dev/cleanup"), "{:?}", app.finalizers());
    let selector = winapp_operator::build::meta::children_selector(ns.name(), "files");
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    assert_eq!(crate::support::list_all(&pvs, &selector).await.len(), 1);

    // Moved to a shard that no operator serves (the shared one leaves labelled apps alone), then
    // deleted: the operator it left still removes its PersistentVolume and the finalizer.
    kubectl_ok(
        &["label", "windowsapp", "files", "-n", ns.name(), "--overwrite", &format!("{GROUP_LABEL}=nobody")],
        None,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let uid = app.uid().expect("uid");
    apps.delete("files", &DeleteParams::background()).await.expect("delete the app");
    wait_for(&apps, "files", "deleted", SLOW, kube::runtime::wait::conditions::is_deleted(&uid)).await;
    // The operator deleted the PersistentVolume before it let the app go; the volume itself waits
    // for its claim (garbage-collected after the app) to leave, under `pv-protection`.
    let left = crate::support::list_all(&pvs, &selector).await;
    assert!(
        left.iter().all(|pv| pv.metadata.deletion_timestamp.is_some()),
        "its PersistentVolume is being deleted: {:?}",
        left.iter().map(|pv| (pv.name_any(), pv.finalizers().to_vec())).collect::<Vec<_>>()
    );
    super::wait_gone(&pvs, &selector, 120).await;
    // (It logs once the finalizer is gone, which may be just after the app is.)
    for _ in 0..50 {
        if op.log_text().contains("outside the selector") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(op.log_text().contains("outside the selector"), "the operator says what it did");
    ns.cleanup().await;
}
