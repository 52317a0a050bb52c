//! The operator against the local cluster, running as its own process under the RBAC that
//! `config/rbac` ships: every example turns Ready, changes roll, drift is undone, features
//! turned off are pruned, deletion leaves nothing, missing things stall and recover, and a
//! restart writes nothing.

mod correctness;
mod diagnosis;
mod drains;
mod fence;
mod gmsa_policy;
mod harness;
mod logging;
mod migrate;
mod node_agents;
mod pacing;
mod pod_policy;
mod scope;
mod shards;
mod shutdown;
#[path = "../support/mod.rs"]
mod support;
mod tenancy;
mod warmup;
mod windows_reasons;

use std::time::Duration;

use futures::StreamExt;
use harness::{GROUP_LABEL, Operator, argocd_health, kstatus, kubectl, kubectl_ok, repo, shared};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use support::{TestNamespace, list_all, wait_for};
use winapp_operator::api::WindowsApp;
use winapp_operator::build::meta;

const SLOW: Duration = Duration::from_secs(120);

fn cond<'a>(app: &'a WindowsApp, type_: &str) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    app.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
}

fn is(app: &WindowsApp, type_: &str, status: &str) -> bool {
    cond(app, type_).is_some_and(|c| c.status == status)
}

/// Ready=True for the current generation.
fn ready_now(app: Option<&WindowsApp>) -> bool {
    app.is_some_and(|a| {
        is(a, "Ready", "True")
            && a.status.as_ref().and_then(|s| s.observed_generation) == a.metadata.generation
            && cond(a, "Ready").and_then(|c| c.observed_generation) == a.metadata.generation
    })
}

fn stalled_with(reason: &'static str) -> impl Fn(Option<&WindowsApp>) -> bool {
    move |app| {
        app.is_some_and(|a| {
            is(a, "Stalled", "True")
                && cond(a, "Stalled").is_some_and(|c| c.reason == reason)
                && a.status.as_ref().and_then(|s| s.observed_generation) == a.metadata.generation
        })
    }
}

fn apply(ns: &str, yaml: &str) {
    kubectl_ok(&["apply", "-n", ns, "-f", "-"], Some(yaml));
}

/// The platform team grants the apps of `ns` these rules of the policy (README, "Security
/// model"): the Namespace's annotation `winapp.dev/allow`.
fn grant(ns: &str, rules: &str) {
    kubectl_ok(&["annotate", "namespace", ns, "--overwrite", &format!("winapp.dev/allow={rules}")], None);
}

fn credspec_api(client: &Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource {
            group: "windows.k8s.io".into(),
            version: "v1".into(),
            api_version: "windows.k8s.io/v1".into(),
            kind: "GMSACredentialSpec".into(),
            plural: "gmsacredentialspecs".into(),
        },
    )
}

/// Waits (with a watch) until no object of a kind matches the selector.
async fn wait_gone<K>(api: &Api<K>, selector: &str, secs: u64)
where
    K: Clone + std::fmt::Debug + Send + serde::Serialize + serde::de::DeserializeOwned + kube::Resource + 'static,
    <K as kube::Resource>::DynamicType: Default,
{
    support::wait_for_list(api, selector, "gone", Duration::from_secs(secs), |l: &[K]| l.is_empty()).await;
}

/// Polls until no GMSACredentialSpec matches the selector (a dynamic kind: no typed watch).
async fn wait_no_credspecs(api: &Api<DynamicObject>, selector: &str) {
    for _ in 0..60 {
        if list_all(api, selector).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("GMSACredentialSpecs ({selector}) still exist after 30 s");
}

async fn node_of(client: &Client, pod: &Pod) -> Node {
    let name = pod.spec.as_ref().and_then(|s| s.node_name.clone()).expect("pod is scheduled");
    Api::<Node>::all(client.clone()).get(&name).await.expect("node exists")
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn every_example_becomes_ready_on_windows_nodes_of_its_build() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "examples").await;
    // The Azure Files example needs its StorageClass; here a PV of that class stands in for the
    // provisioner, so the claim binds as it would on AKS.
    let pv_name = format!("azurefile-{}", ns.name());
    kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: azurefile-csi}}\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: Immediate\n---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {pv_name}}}\nspec:\n  storageClassName: azurefile-csi\n  capacity: {{storage: 10Gi}}\n  accessModes: [ReadWriteMany]\n  csi: {{driver: file.csi.azure.com, volumeHandle: {pv_name}}}\n  claimRef: {{namespace: {}, name: media-cache.cache}}\n",
            ns.name()
        )),
    );
    // The platform team's gMSA policy, as scripts/demo sets it for winapp-demo: the namespace may
    // generate a credspec for examples/gmsa-generated.yaml's account, and the credspec of
    // examples/gmsa-existing.yaml allows this namespace too.
    // As scripts/demo grants its namespace: the rules the examples need, the gMSA identity and
    // the portable CCG plugin settings of examples/gmsa-generated.yaml.
    grant(ns.name(), "host-process,node-agent,smb-volumes");
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
    kubectl_ok(&["apply", "-n", ns.name(), "-f", &repo().join("examples").to_string_lossy()], None);
    kubectl_ok(
        &[
            "annotate",
            "--overwrite",
            "gmsacredentialspec",
            "reports-gmsa",
            &format!("winapp.dev/allowed-namespaces=winapp-demo,{}", ns.name()),
        ],
        None,
    );

    let apps: Api<WindowsApp> = ns.api();
    let names: Vec<String> =
        apps.list(&Default::default()).await.expect("list apps").items.iter().map(|a| a.name_any()).collect();
    assert!(names.len() >= 11, "expected every example's WindowsApp, got {names:?}");
    for name in &names {
        let app = wait_for(&apps, name, "Ready", SLOW, ready_now).await.expect("app exists");
        assert_eq!(kstatus(&app), "Current", "{name}: kstatus (Flux)");
        assert_eq!(argocd_health(&app), "Healthy", "{name}: Argo CD health");
        let status = app.status.clone().expect("status");
        let pods = list_all(&ns.api::<Pod>(), &format!("app.kubernetes.io/instance={name}")).await;
        let want = if app.spec.node_agent == Some(true) {
            // A node agent: a pod on every node its DaemonSet schedules on (and no Deployment).
            assert!(ns.api::<Deployment>().get_opt(name).await.expect("get").is_none(), "{name}: no Deployment");
            let ds = ns.api::<k8s_openapi::api::apps::v1::DaemonSet>().get(name).await.expect("the DaemonSet");
            let desired = ds.status.map_or(0, |s| s.desired_number_scheduled) as usize;
            assert!(desired >= 1, "{name}: the DaemonSet schedules on no node");
            desired
        } else {
            app.spec.replicas.unwrap_or(1) as usize
        };
        let running: Vec<&Pod> = pods.iter().filter(|p| support::pod_running_and_ready(p)).collect();
        assert!(running.len() >= want, "{name}: {} of {want} pods Running and Ready", running.len());
        for pod in running {
            let node = node_of(&client, pod).await;
            let labels = node.labels();
            assert_eq!(
                labels.get("kubernetes.io/os").map(String::as_str),
                Some("windows"),
                "{name} on {}",
                node.name_any()
            );
            if let Some(v) = app.spec.windows.version {
                assert_eq!(
                    labels.get("node.kubernetes.io/windows-build").map(String::as_str),
                    Some(v.build()),
                    "{name}"
                );
                assert_eq!(status.windows_build.as_deref(), Some(v.build()));
            }
        }
    }
    // The hybrid example's Linux frontend stays on Linux.
    let front = list_all(&ns.api::<Pod>(), "app=catalog-frontend").await;
    assert!(!front.is_empty());
    for pod in &front {
        assert_eq!(node_of(&client, pod).await.labels().get("kubernetes.io/os").map(String::as_str), Some("linux"));
    }
    // Save the statuses: the Argo CD / kstatus checks read real ones.
    let all = apps.list(&Default::default()).await.expect("list");
    let _ = std::fs::write(
        repo().join("target/test-operator/ready-statuses.json"),
        serde_json::to_string_pretty(&all.items).unwrap_or_default(),
    );
    ns.cleanup().await;
    let _ = Api::<PersistentVolume>::all(client).delete(&pv_name, &DeleteParams::default()).await;
}

const WEB: &str = r#"
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {name: web}
spec:
  image: mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022
  replicas: 2
  ports: [{name: http, containerPort: 80}]
  windows: {version: ltsc2022}
  service: {ports: [{name: http, port: 80}]}
  config:
    mountPath: 'C:\inetpub\wwwroot'
    files: [{name: Web.config, content: "<configuration>v1</configuration>"}]
"#;

/// (Ready, Reconciling, observedGeneration) of each update the watch saw, and the objects.
type Recorded = (Vec<(String, String, i64)>, Vec<WindowsApp>);

/// Collects the states of an app as the watch sees them.
fn record_states(apps: Api<WindowsApp>, name: &str) -> tokio::task::JoinHandle<Recorded> {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut objects = Vec::new();
        let stream = watcher(apps, cfg).applied_objects().default_backoff();
        futures::pin_mut!(stream);
        let deadline = tokio::time::sleep(SLOW);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => return (seen, objects),
                next = stream.next() => match next {
                    Some(Ok(a)) => {
                        let r = cond(&a, "Ready").map(|c| c.status.clone()).unwrap_or_default();
                        let g = cond(&a, "Reconciling").map(|c| c.status.clone()).unwrap_or_default();
                        let og = a.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
                        let done = r == "True" && Some(og) == a.metadata.generation && a.metadata.generation > Some(1)
                            && seen.iter().any(|(_, rec, _): &(String, String, i64)| rec == "True");
                        seen.push((r, g, og));
                        objects.push(a);
                        if done { return (seen, objects); }
                    }
                    Some(Err(_)) => {}
                    None => return (seen, objects),
                }
            }
        }
    })
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn image_and_config_changes_roll_the_pods_and_report_reconciling_then_ready() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "rollout").await;
    apply(ns.name(), WEB);
    let apps: Api<WindowsApp> = ns.api();
    wait_for(&apps, "web", "Ready", SLOW, ready_now).await;
    let deployments: Api<Deployment> = ns.api();
    let before = deployments.get("web").await.expect("deployment");

    // A new image: a new ReplicaSet, and the status passes through Reconciling to Ready.
    let states = record_states(apps.clone(), "web");
    apply(ns.name(), &WEB.replace("windowsservercore-ltsc2022", "windowsservercore-ltsc2022-20261101"));
    let (seen, objects) = states.await.expect("recorder");
    let gen2 = seen.iter().position(|(_, rec, og)| rec == "True" && *og == 2);
    let ready2 = seen.iter().rposition(|(r, _, og)| r == "True" && *og == 2);
    assert!(
        matches!((gen2, ready2), (Some(a), Some(b)) if a < b),
        "expected Reconciling then Ready for generation 2, saw {seen:?}"
    );
    if let (Some(a), Some(b)) = (gen2, ready2) {
        assert_eq!(kstatus(&objects[a]), "InProgress", "kstatus (Flux) while rolling out");
        assert_eq!(argocd_health(&objects[a]), "Progressing", "Argo CD health while rolling out");
        assert_eq!(kstatus(&objects[b]), "Current");
    }
    let after = deployments.get("web").await.expect("deployment");
    let image = |d: &Deployment| d.spec.template.spec.as_ref().and_then(|s| s.containers[0].image.clone());
    assert_eq!(
        image(&after).as_deref(),
        Some("mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022-20261101")
    );
    assert_ne!(image(&before), image(&after));

    // New Web.config content: a new checksum on the pod template, so new pods.
    let checksum = |d: &Deployment| {
        d.spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(meta::CONFIG_CHECKSUM).cloned())
    };
    let old_sum = checksum(&after);
    apply(
        ns.name(),
        &WEB.replace("windowsservercore-ltsc2022", "windowsservercore-ltsc2022-20261101").replace(">v1<", ">v2<"),
    );
    let app = wait_for(&apps, "web", "Ready at generation 3", SLOW, |a: Option<&WindowsApp>| {
        ready_now(a) && a.is_some_and(|a| a.metadata.generation == Some(3))
    })
    .await
    .expect("app");
    assert_eq!(cond(&app, "Reconciling").map(|c| c.status.as_str()), Some("False"));
    let rolled = deployments.get("web").await.expect("deployment");
    assert_ne!(checksum(&rolled), old_sum, "config change must change the pod template checksum");
    let cm: ConfigMap = ns.api().get("web-config").await.expect("configmap");
    assert_eq!(
        cm.data.and_then(|d| d.get("Web.config").cloned()).as_deref(),
        Some("<configuration>v2</configuration>")
    );
    let sets = list_all(&ns.api::<ReplicaSet>(), "app.kubernetes.io/instance=web").await;
    assert!(sets.len() >= 3, "one ReplicaSet per rollout, got {}", sets.len());
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn drift_is_undone() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "drift").await;
    apply(ns.name(), WEB);
    let apps: Api<WindowsApp> = ns.api();
    wait_for(&apps, "web", "Ready", SLOW, ready_now).await;

    let services: Api<Service> = ns.api();
    let old_uid = services.get("web").await.expect("service").uid();
    services.delete("web", &DeleteParams::default()).await.expect("delete service");
    wait_for(&services, "web", "recreated", Duration::from_secs(30), move |s: Option<&Service>| {
        s.is_some_and(|s| s.uid() != old_uid)
    })
    .await;

    let deployments: Api<Deployment> = ns.api();
    let patch = serde_json::json!({"spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}}});
    deployments.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("edit the node selector");
    wait_for(&deployments, "web", "back on Windows", Duration::from_secs(30), |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.template.spec.as_ref()?.node_selector.as_ref()?.get("kubernetes.io/os").cloned())
            .as_deref()
            == Some("windows")
    })
    .await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn features_turned_off_are_pruned_and_deletion_leaves_nothing() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "prune").await;
    kubectl_ok(&["annotate", "namespace", ns.name(), r"winapp.dev/gmsa-accounts=contoso.com\FilesSvc"], None);
    grant(ns.name(), "smb-volumes");
    let full = r#"
apiVersion: v1
kind: Secret
metadata: {name: smb-creds}
stringData: {username: u, password: p}
---
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {name: files}
spec:
  image: registry.example.com/files:1
  windows: {version: ltsc2022}
  gmsa:
    credentialSpec:
      account: FilesSvc
      domain: {dnsName: contoso.com, netBiosName: CONTOSO, sid: S-1-5-21-1-2-3, guid: 244818ae-87ac-4fcd-92ec-e79e5252348a}
  volumes:
    - name: share
      mountPath: 'D:\share'
      smb: {source: //fs.contoso.com/share, secretRef: {name: smb-creds}}
"#;
    apply(ns.name(), full);
    let apps: Api<WindowsApp> = ns.api();
    wait_for(&apps, "files", "Ready", SLOW, ready_now).await;
    let selector = meta::children_selector(ns.name(), "files");
    let credspecs = credspec_api(&client);
    let count_cluster = || async {
        (
            list_all(&credspecs, &selector).await.len(),
            list_all(&Api::<ClusterRole>::all(client.clone()), &selector).await.len(),
            list_all(&Api::<PersistentVolume>::all(client.clone()), &selector).await.len(),
        )
    };
    assert_eq!(count_cluster().await, (1, 1, 1));
    assert_eq!(list_all(&ns.api::<RoleBinding>(), &selector).await.len(), 1);
    assert_eq!(list_all(&ns.api::<PersistentVolumeClaim>(), &selector).await.len(), 1);
    let app = apps.get("files").await.expect("app");
    assert!(is(&app, "GMSAReady", "True") && is(&app, "StorageReady", "True"), "{}", support::show(&app.status));

    // gMSA off: credspec, ClusterRole and RoleBinding go.
    let without_gmsa = full.replace("  gmsa:\n    credentialSpec:\n      account: FilesSvc\n      domain: {dnsName: contoso.com, netBiosName: CONTOSO, sid: S-1-5-21-1-2-3, guid: 244818ae-87ac-4fcd-92ec-e79e5252348a}\n", "");
    apply(ns.name(), &without_gmsa);
    wait_no_credspecs(&credspecs, &selector).await;
    wait_gone(&Api::<ClusterRole>::all(client.clone()), &selector, 30).await;
    wait_gone(&ns.api::<RoleBinding>(), &selector, 30).await;
    let app = wait_for(&apps, "files", "Ready without gMSA", SLOW, ready_now).await.expect("app");
    assert!(cond(&app, "GMSAReady").is_none(), "GMSAReady is reported only when gMSA is asked for");

    // Storage off: PV and PVC go.
    let bare = without_gmsa.split("  volumes:").next().expect("spec head").to_owned();
    apply(ns.name(), &bare);
    wait_gone(&Api::<PersistentVolume>::all(client.clone()), &selector, 60).await;
    wait_gone(&ns.api::<PersistentVolumeClaim>(), &selector, 60).await;

    // Everything back on, then delete the app: nothing of it may remain, cluster-scoped included.
    apply(ns.name(), full);
    wait_for(&apps, "files", "Ready again", SLOW, ready_now).await;
    assert_eq!(count_cluster().await, (1, 1, 1));
    let uid = apps.get("files").await.expect("app").uid().expect("uid");
    apps.delete("files", &DeleteParams::foreground()).await.expect("delete app");
    wait_for(&apps, "files", "deleted", SLOW, kube::runtime::wait::conditions::is_deleted(&uid)).await;
    wait_gone(&Api::<PersistentVolume>::all(client.clone()), &selector, 60).await;
    assert_eq!(count_cluster().await, (0, 0, 0), "cluster-scoped children left behind");
    wait_gone(&ns.api::<Deployment>(), &selector, 60).await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_missing_windows_build_stalls_until_such_a_node_exists() {
    let client = support::client().await;
    shared().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = "win2025-test";
    let _ = nodes.delete(node, &DeleteParams::default()).await;
    wait_for(&nodes, node, "absent", Duration::from_secs(60), |n: Option<&Node>| n.is_none()).await;
    let ns = TestNamespace::new(&client, "ltsc2025").await;
    apply(
        ns.name(),
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {name: next}\nspec:\n  image: mcr.microsoft.com/windows/servercore:ltsc2025\n  windows: {version: ltsc2025}\n",
    );
    let apps: Api<WindowsApp> = ns.api();
    // A pool that may scale from zero: waiting is progress, not a failure...
    let waiting = |a: Option<&WindowsApp>| {
        a.is_some_and(|a| {
            is(a, "Reconciling", "True") && cond(a, "Ready").is_some_and(|c| c.reason == "WaitingForNodes")
        })
    };
    let app = wait_for(&apps, "next", "WaitingForNodes", SLOW, waiting).await.expect("app");
    let msg = &cond(&app, "Ready").expect("Ready").message;
    assert!(msg.contains("10.0.26100") && msg.contains("ltsc2025"), "message should name the build: {msg}");
    assert!(msg.contains("autoscaler"), "says why it waits: {msg}");
    assert!(is(&app, "Stalled", "False") && is(&app, "WindowsNodesAvailable", "False"));
    assert_eq!(kstatus(&app), "InProgress", "kstatus (Flux) of an app waiting for nodes");
    assert_eq!(argocd_health(&app), "Progressing", "Argo CD health of an app waiting for nodes");
    // ...until the rollout's progress deadline passes: then a person must act.
    apply(
        ns.name(),
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {name: next}\nspec:\n  image: mcr.microsoft.com/windows/servercore:ltsc2025\n  windows: {version: ltsc2025}\n  rollout: {progressDeadlineSeconds: 5}\n",
    );
    let app = wait_for(&apps, "next", "Stalled", SLOW, stalled_with("NoMatchingWindowsNodes")).await.expect("app");
    let msg = &cond(&app, "Stalled").expect("Stalled").message;
    assert!(msg.contains("progressDeadlineSeconds"), "says why it stalled: {msg}");
    assert_eq!(kstatus(&app), "Failed", "kstatus (Flux) of a stalled app");
    assert_eq!(argocd_health(&app), "Degraded", "Argo CD health of a stalled app");

    let script = repo().join("scripts/dev-cluster");
    let out = std::process::Command::new(&script)
        .args(["add-node", node, "--os", "windows", "--build", "10.0.26100"])
        .output()
        .expect("run scripts/dev-cluster add-node");
    assert!(out.status.success(), "add-node failed: {}", String::from_utf8_lossy(&out.stderr));
    let app = wait_for(&apps, "next", "Ready", SLOW, ready_now).await.expect("app");
    assert!(is(&app, "WindowsNodesAvailable", "True") && is(&app, "Stalled", "False"));
    assert_eq!((kstatus(&app).as_str(), argocd_health(&app).as_str()), ("Current", "Healthy"));
    ns.cleanup().await;
    let _ = nodes.delete(node, &DeleteParams::default()).await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_missing_secret_or_credspec_stalls_until_it_is_created() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "missing").await;
    grant(ns.name(), "smb-volumes");
    let cs_name = format!("missing-{}", ns.name());
    apply(
        ns.name(),
        &format!(
            r#"
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {{name: share}}
spec:
  image: registry.example.com/files:1
  volumes:
    - name: data
      mountPath: 'D:\data'
      smb: {{source: //fs/share, secretRef: {{name: smb-later}}}}
---
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {{name: ad}}
spec:
  image: registry.example.com/ad:1
  gmsa: {{credentialSpecName: {cs_name}}}
"#
        ),
    );
    let apps: Api<WindowsApp> = ns.api();
    let share = wait_for(&apps, "share", "Stalled", SLOW, stalled_with("SecretMissing")).await.expect("app");
    assert!(cond(&share, "Stalled").expect("Stalled").message.contains("smb-later"));
    assert!(is(&share, "StorageReady", "False"));
    let ad = wait_for(&apps, "ad", "Stalled", SLOW, stalled_with("CredentialSpecMissing")).await.expect("app");
    assert!(cond(&ad, "Stalled").expect("Stalled").message.contains(&cs_name));

    apply(
        ns.name(),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: smb-later}\nstringData: {username: u, password: p}\n",
    );
    kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\nmetadata: {{name: {cs_name}, annotations: {{winapp.dev/allowed-namespaces: {}}}}}\ncredspec: {{CmsPlugins: [ActiveDirectory]}}\n",
            ns.name()
        )),
    );
    wait_for(&apps, "share", "Ready", SLOW, ready_now).await;
    let ad = wait_for(&apps, "ad", "Ready", SLOW, ready_now).await.expect("app");
    assert!(is(&ad, "GMSAReady", "True"));
    ns.cleanup().await;
    let _ = credspec_api(&client).delete(&cs_name, &DeleteParams::default()).await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn invalid_specs_are_refused_with_the_field_path() {
    let client = support::client().await;
    harness::setup();
    let ns = TestNamespace::new(&client, "invalid").await;
    let base = "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {name: NAME}\nspec:\n  image: x\n";
    let gmsa_fields = "{account: a, domain: {dnsName: a, netBiosName: b, sid: S-1-5-21-1-2-3, guid: 244818ae-87ac-4fcd-92ec-e79e5252348a}}";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("unknown Windows version", "  windows: {version: ltsc2030}\n".into(), "spec.windows.version", "supported values"),
        ("hostProcess without host networking", "  hostProcess: {}\n  podTemplate: {spec: {hostNetwork: false}}\n".into(), "spec.podTemplate.spec.hostNetwork", "requires host networking"),
        ("hostProcess with gMSA", "  hostProcess: {}\n  gmsa: {credentialSpecName: x}\n".into(), "spec.gmsa", "cannot use gMSA"),
        ("credspec reference and generated fields", format!("  gmsa: {{credentialSpecName: x, credentialSpec: {gmsa_fields}}}\n"), "spec.gmsa", "exactly one of"),
        ("neither credspec reference nor fields", "  gmsa: {}\n".into(), "spec.gmsa", "exactly one of"),
        ("invalid config mount path", "  config: {mountPath: 'C:/web', files: [{name: a, content: b}]}\n".into(), "spec.config.mountPath", "absolute Windows path"),
        ("path with ..", "  volumes: [{name: v, mountPath: 'C:\\a\\..\\b', claim: {size: 1Gi}}]\n".into(), "spec.volumes[0].mountPath", "absolute Windows path"),
        ("config key that is not a file name", "  config: {mountPath: 'C:\\web', files: [{name: '..\\evil', content: b}]}\n".into(), "spec.config.files[0].name", "should match"),
        ("no config files", "  config: {mountPath: 'C:\\web', files: []}\n".into(), "spec.config.files", "at least 1"),
        ("volume with smb and claim", "  volumes: [{name: v, mountPath: 'D:\\v', claim: {size: 1Gi}, smb: {source: //a/b, secretRef: {name: s}}}]\n".into(), "spec.volumes[0]", "exactly one of smb and claim"),
        ("reserved volume name", "  volumes: [{name: winapp-x, mountPath: 'D:\\v', claim: {size: 1Gi}}]\n".into(), "spec.volumes[0].name", "reserved"),
        ("SMB source not //server/share", "  volumes: [{name: v, mountPath: 'D:\\v', smb: {source: 'fs\\share', secretRef: {name: s}}}]\n".into(), "spec.volumes[0].smb.source", "should match"),
        ("externalTrafficPolicy on ClusterIP", "  service: {externalTrafficPolicy: Local}\n".into(), "spec.service.externalTrafficPolicy", "LoadBalancer or NodePort"),
        ("negative replicas", "  replicas: -1\n".into(), "spec.replicas", "greater than or equal to 0"),
        ("bad port name", "  ports: [{name: HTTP_1, containerPort: 80}]\n".into(), "spec.ports[0].name", "should match"),
        ("empty image", "  image: ''\n".into(), "spec.image", "at least 1"),
    ];
    for (what, extra, path, message) in cases {
        let yaml = format!("{}{extra}", base.replace("NAME", "app"));
        let yaml = if extra.starts_with("  image:") { yaml.replace("  image: x\n", "") } else { yaml };
        let err = kubectl(&["apply", "-n", ns.name(), "--dry-run=server", "-f", "-"], Some(&yaml))
            .expect_err(&format!("{what}: the API server accepted it"));
        assert!(err.contains(path) && err.contains(message), "{what}: expected {path:?} and {message:?} in:\n{err}");
    }
    // A name too long to derive child names from.
    let long = "a".repeat(64);
    let err = kubectl(&["apply", "-n", ns.name(), "--dry-run=server", "-f", "-"], Some(&base.replace("NAME", &long)))
        .expect_err("a 64-character name was accepted");
    assert!(err.contains("DNS-1035 label of at most 63 characters"), "{err}");
    ns.cleanup().await;
}

fn grouped_app(name: &str, group: &str) -> String {
    format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: {name}, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n  image: registry.example.com/{name}:1\n  ports: [{{name: http, containerPort: 80}}]\n  service: {{}}\n  windows: {{version: ltsc2022}}\n"
    )
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn restarting_on_converged_apps_writes_nothing() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "restart").await;
    let selector = format!("{GROUP_LABEL}=restart-{}", ns.name());
    let group = format!("restart-{}", ns.name());
    // The first run lists in pages, the second as the API server allows (v1.32+: streaming), so
    // both ways of filling the caches converge, and a streaming restart re-verifies without writes.
    let lease = format!("winapp-test-{}", ns.name());
    let mut first =
        Operator::start_with("restart-1", &lease, &selector, harness::setup(), &["--initial-list", "paged"]);
    first.wait_ready().await;
    assert!(first.log_text().contains("caches list in pages"), "log:\n{}", first.log_text());
    for n in ["r1", "r2", "r3"] {
        apply(ns.name(), &grouped_app(n, &group));
    }
    let apps: Api<WindowsApp> = ns.api();
    for n in ["r1", "r2", "r3"] {
        wait_for(&apps, n, "Ready", SLOW, ready_now).await;
    }
    assert!(
        first.metric("winapp_child_writes_total").await.unwrap_or(0.0) >= 9.0,
        "the first run applied the children"
    );
    first.stop();

    let second = Operator::start("restart-2", &lease, &selector);
    second.wait_ready().await;
    assert!(second.log_text().contains("caches list by streaming"), "log:\n{}", second.log_text());
    for _ in 0..120 {
        if second.metric("winapp_reconciles_total").await.unwrap_or(0.0) >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        second.metric("winapp_reconciles_total").await.unwrap_or(0.0) >= 3.0,
        "every app was reconciled after the restart"
    );
    assert_eq!(
        second.metric("winapp_child_writes_total").await,
        Some(0.0),
        "child writes after a restart; log:\n{}",
        second.log_text()
    );
    assert_eq!(second.metric("winapp_status_writes_total").await, Some(0.0), "status writes after a restart");
    assert_eq!(second.metric("winapp_apps").await, Some(3.0), "every app counted in the apps-by-Ready gauge");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn only_one_replica_reconciles_and_a_standby_takes_over() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "leader").await;
    let group = format!("leader-{}", ns.name());
    let selector = format!("{GROUP_LABEL}={group}");
    let lease = format!("winapp-test-{}", ns.name());
    let a = Operator::start("replica-a", &lease, &selector);
    a.wait_ready().await;
    let b = Operator::start("replica-b", &lease, &selector);
    b.wait_ready().await;
    apply(ns.name(), &grouped_app("l1", &group));
    let apps: Api<WindowsApp> = ns.api();
    wait_for(&apps, "l1", "Ready", SLOW, ready_now).await;
    let (ra, rb) = (
        a.metric("winapp_reconciles_total").await.unwrap_or(0.0),
        b.metric("winapp_reconciles_total").await.unwrap_or(0.0),
    );
    assert!((ra > 0.0) != (rb > 0.0), "exactly one replica reconciles: a={ra} b={rb}");
    let (mut leader, standby) = if ra > 0.0 { (a, b) } else { (b, a) };
    leader.kill();
    apply(ns.name(), &grouped_app("l1", &group).replace(":1\n", ":2\n"));
    wait_for(&apps, "l1", "Ready after take-over", SLOW, |x: Option<&WindowsApp>| {
        ready_now(x) && x.is_some_and(|x| x.metadata.generation == Some(2))
    })
    .await;
    assert!(standby.metric("winapp_reconciles_total").await.unwrap_or(0.0) > 0.0, "the standby took over");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn no_secret_content_appears_in_logs_events_configmaps_or_status() {
    let client = support::client().await;
    let op = shared().await;
    let ns = TestNamespace::new(&client, "canary").await;
    grant(ns.name(), "smb-volumes");
    let canary = format!("canary-{}-do-not-leak", ns.name());
    apply(
        ns.name(),
        &format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{username: svc, password: {canary}, connectionString: "Server=db;Password={canary}"}}
---
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {{name: leaky}}
spec:
  image: registry.example.com/app:1
  env:
    - name: DB
      valueFrom: {{secretKeyRef: {{name: creds, key: connectionString}}}}
  envFrom: [{{secretRef: {{name: creds}}}}]
  volumes:
    - name: data
      mountPath: 'D:\data'
      smb: {{source: //fs/share, secretRef: {{name: creds}}}}
"#
        ),
    );
    let apps: Api<WindowsApp> = ns.api();
    let app = wait_for(&apps, "leaky", "Ready", SLOW, ready_now).await.expect("app");
    assert!(!serde_json::to_string(&app.status).expect("json").contains(&canary), "status");
    let events = kubectl_ok(&["get", "events", "-n", ns.name(), "-o", "json"], None);
    assert!(events.contains("leaky") && !events.contains(&canary), "events");
    let cms = kubectl_ok(&["get", "configmaps", "-n", ns.name(), "-o", "json"], None);
    assert!(!cms.contains(&canary), "configmaps");
    let children =
        kubectl_ok(&["get", "deployments,services,pvc,serviceaccounts", "-n", ns.name(), "-o", "json"], None);
    assert!(!children.contains(&canary), "children");
    assert!(!op.log_text().contains(&canary), "operator log");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn config_files_from_secrets_are_mounted_never_copied_and_a_secret_change_rolls_the_pods() {
    let client = support::client().await;
    let op = shared().await;
    let ns = TestNamespace::new(&client, "secretfiles").await;
    let canary = format!("canary-{}-do-not-leak", ns.name());
    let app = r#"
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {name: site}
spec:
  image: registry.example.com/site:1
  windows: {version: ltsc2022}
  config:
    mountPath: 'C:\inetpub\wwwroot'
    files:
      - {name: Web.config, content: '<configuration><connectionStrings configSource="conn.config" /></configuration>'}
      - {name: conn.config, secretRef: {name: site-secrets, key: conn}}
"#;
    apply(ns.name(), app);
    let apps: Api<WindowsApp> = ns.api();
    // The Secret does not exist yet: said so, and fixed by creating it.
    let stalled =
        wait_for(&apps, "site", "Stalled SecretMissing", SLOW, stalled_with("SecretMissing")).await.expect("app");
    assert!(cond(&stalled, "Stalled").is_some_and(|c| c.message.contains("site-secrets")), "{:?}", stalled.status);
    let secret = |value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: site-secrets}}\nstringData: {{conn: '<connectionStrings><add name=\"db\" connectionString=\"Password={value}\" /></connectionStrings>'}}\n"
        )
    };
    apply(ns.name(), &secret(&canary));
    wait_for(&apps, "site", "Ready", SLOW, ready_now).await;

    let deployments: Api<Deployment> = ns.api();
    let version = |d: &Deployment| {
        d.spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(meta::CONFIG_SECRETS_VERSION).cloned())
    };
    let d = deployments.get("site").await.expect("deployment");
    let first = version(&d).expect("the Secret's version is on the pod template");
    let spec = d.spec.template.spec.clone().expect("pod spec");
    let projected = spec.volumes.iter().flatten().find(|v| v.name == meta::CONFIG_SECRETS_VOLUME).expect("volume");
    let source = projected
        .projected
        .as_ref()
        .and_then(|p| p.sources.as_ref())
        .and_then(|s| s.first())
        .and_then(|s| s.secret.clone());
    assert_eq!(source.map(|s| s.name), Some("site-secrets".to_owned()));
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns.name()).get("site-config").await.expect("configmap");
    assert_eq!(cm.data.as_ref().map(|d| d.keys().cloned().collect::<Vec<_>>()), Some(vec!["Web.config".to_owned()]));

    // A new value in the Secret rolls the pods: the template's version annotation changes.
    apply(ns.name(), &secret(&format!("{canary}-2")));
    let rolled =
        wait_for(&deployments, "site", "new Secret version on the template", SLOW, |d: Option<&Deployment>| {
            d.and_then(version).is_some_and(|v| v != first)
        })
        .await;
    assert!(rolled.is_some());
    wait_for(&apps, "site", "Ready after the roll", SLOW, ready_now).await;

    // The value is nowhere but in the Secret.
    let app = apps.get("site").await.expect("app");
    assert!(!serde_json::to_string(&app).expect("json").contains(&canary), "the WindowsApp");
    let everything = kubectl_ok(
        &["get", "deployments,replicasets,configmaps,services,serviceaccounts,events", "-n", ns.name(), "-o", "json"],
        None,
    );
    assert!(!everything.contains(&canary), "children or events hold the Secret's value");
    assert!(!op.log_text().contains(&canary), "operator log");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn suspend_leaves_children_alone_and_says_so() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "suspend").await;
    apply(ns.name(), WEB);
    let apps: Api<WindowsApp> = ns.api();
    wait_for(&apps, "web", "Ready", SLOW, ready_now).await;
    apply(ns.name(), &WEB.replace("  replicas: 2\n", "  replicas: 2\n  suspend: true\n").replace(">v1<", ">v9<"));
    let app = wait_for(&apps, "web", "Suspended", SLOW, |a: Option<&WindowsApp>| {
        a.is_some_and(|a| {
            cond(a, "Reconciling").is_some_and(|c| c.reason == "Suspended")
                && a.status.as_ref().and_then(|s| s.observed_generation) == a.metadata.generation
        })
    })
    .await
    .expect("app");
    assert!(is(&app, "Stalled", "False"));
    assert_eq!(argocd_health(&app), "Suspended", "Argo CD health of a suspended app");
    // Nothing is applied or re-created while suspended.
    let cm: ConfigMap = ns.api().get("web-config").await.expect("configmap");
    assert!(cm.data.and_then(|d| d.get("Web.config").cloned()).is_some_and(|c| c.contains(">v1<")));
    let services: Api<Service> = ns.api();
    services.delete("web", &DeleteParams::default()).await.expect("delete service");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(services.get_opt("web").await.expect("get").is_none(), "a suspended app's Service was re-created");
    // Resuming applies the pending change and re-creates the Service.
    apply(ns.name(), &WEB.replace(">v1<", ">v9<"));
    wait_for(&apps, "web", "Ready after resume", SLOW, ready_now).await;
    assert!(services.get_opt("web").await.expect("get").is_some());
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_foreign_object_in_the_way_stalls_with_its_name() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "foreign").await;
    apply(ns.name(), "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n");
    apply(ns.name(), WEB);
    let apps: Api<WindowsApp> = ns.api();
    let app = wait_for(&apps, "web", "Stalled", SLOW, stalled_with("ChildConflict")).await.expect("app");
    let msg = &cond(&app, "Stalled").expect("Stalled").message;
    assert!(msg.contains("Service web"), "{msg}");
    let svc: Service = ns.api().get("web").await.expect("service");
    assert!(svc.labels().get(meta::APP_LABEL).is_none(), "the operator must not take over a foreign Service");
    // Removing it lets the app converge.
    kubectl_ok(&["delete", "service", "web", "-n", ns.name()], None);
    wait_for(&apps, "web", "Ready", SLOW, ready_now).await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_network_policy_is_applied_on_request_and_pruned_when_dropped() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "netpol").await;
    let app = |policy: &str| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: api}}\nspec:\n  image: registry.example.com/api:1\n  ports: [{{name: http, containerPort: 80}}]\n  windows: {{version: ltsc2022}}\n{policy}"
        )
    };
    apply(
        ns.name(),
        &app(
            "  networkPolicy:\n    allowSameNamespace: false\n    from: [{podSelector: {matchLabels: {app: front}}}]\n",
        ),
    );
    let apps: Api<WindowsApp> = ns.api();
    wait_for(&apps, "api", "Ready", SLOW, ready_now).await;
    let policies: Api<k8s_openapi::api::networking::v1::NetworkPolicy> = ns.api();
    let np = policies.get("api").await.expect("the NetworkPolicy exists");
    let spec = np.spec.expect("spec");
    let rule = spec.ingress.as_ref().and_then(|i| i.first()).expect("one ingress rule");
    let source = rule.from.as_ref().and_then(|f| f.first()).and_then(|p| p.pod_selector.clone());
    assert_eq!(
        source.and_then(|s| s.match_labels).and_then(|l| l.get("app").cloned()),
        Some("front".to_owned()),
        "only the named pods: {spec:?}"
    );
    assert_eq!(rule.from.as_ref().map(Vec::len), Some(1), "the own namespace is not admitted: {spec:?}");
    assert!(np.metadata.owner_references.iter().flatten().any(|o| o.kind == "WindowsApp" && o.name == "api"));

    // Dropped from the spec: pruned.
    apply(ns.name(), &app(""));
    wait_gone(&policies, "app.kubernetes.io/instance=api", 60).await;
    ns.cleanup().await;
}

/// A Windows node of the dev cluster's KWOK, in a pool of its own: labelled and tainted with
/// `winapp.dev/test-pool=<pool>` so that only the test's apps land there, plus `taints`.
fn pool_node(name: &str, pool: &str, taints: &[(&str, &str)]) -> String {
    let mut all: Vec<serde_json::Value> = taints
        .iter()
        .map(|(key, value)| serde_json::json!({"key": key, "value": value, "effect": "NoSchedule"}))
        .collect();
    all.push(serde_json::json!({"key": "winapp.dev/test-pool", "value": pool, "effect": "NoSchedule"}));
    serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/os": "windows", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
                "node.kubernetes.io/windows-build": "10.0.20348", "type": "kwok", "winapp.dev/test-pool": pool,
            },
        },
        "spec": {"taints": all},
        "status": {
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
            "nodeInfo": {"operatingSystem": "windows", "architecture": "amd64", "osImage": "Windows Server 2022 Datacenter",
                "kernelVersion": "10.0.20348.1", "kubeletVersion": "v1.37.2", "kubeProxyVersion": "v1.37.2",
                "containerRuntimeVersion": "containerd://2.1.4", "bootID": "", "machineID": "", "systemUUID": ""},
        },
    })
    .to_string()
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn every_providers_windows_pool_taint_is_tolerated_without_settings() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "providers").await;
    // The test pools' own taint key is granted by the platform team, by key (any value).
    kubectl_ok(&["annotate", "namespace", ns.name(), "winapp.dev/allowed-taints=winapp.dev/test-pool"], None);
    let id = ns.name().to_owned();
    // (node, its Windows pool taint as the provider sets it)
    let pools: [(&str, &[(&str, &str)]); 4] = [
        ("gke", &[("node.kubernetes.io/os", "windows")]),
        ("openshift", &[("os", "Windows")]),
        ("aks", &[]),
        ("custom", &[("dedicated", "windows")]),
    ];
    let nodes: Api<Node> = Api::all(client.clone());
    let names: Vec<String> = pools.iter().map(|(p, _)| format!("{p}-{id}")).collect();
    for ((pool, taints), name) in pools.iter().zip(&names) {
        kubectl_ok(&["create", "-f", "-"], Some(&pool_node(name, &format!("{pool}-{id}"), taints)));
    }
    let cleanup = || async {
        for name in &names {
            let _ = nodes.delete(name, &DeleteParams::default()).await;
        }
    };
    for (pool, _) in &pools {
        apply(
            ns.name(),
            &format!(
                "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: {pool}}}\nspec:\n  image: registry.example.com/web:1\n  windows:\n    version: ltsc2022\n    nodeSelector: {{winapp.dev/test-pool: {pool}-{id}}}\n    tolerations: [{{key: winapp.dev/test-pool, operator: Exists}}]\n"
            ),
        );
    }
    let apps: Api<WindowsApp> = ns.api();
    for (pool, taints) in &pools[..3] {
        let app = wait_for(&apps, pool, "Ready", SLOW, ready_now).await;
        let Some(app) = app else {
            cleanup().await;
            panic!("{pool}: app gone");
        };
        let msg = cond(&app, "WindowsNodesAvailable").map(|c| c.message.clone()).unwrap_or_default();
        assert!(msg.contains(&format!("({pool}-{id})")), "{pool}: names the node: {msg}");
        for (k, v) in taints.iter() {
            assert!(
                msg.contains(&format!("tolerating {k}={v}:NoSchedule")),
                "{pool}: names the tolerated taint: {msg}"
            );
        }
    }
    // A taint of no known convention: the app waits and the status names the taint to tolerate.
    let waiting =
        |a: Option<&WindowsApp>| a.is_some_and(|a| cond(a, "Ready").is_some_and(|c| c.reason == "WaitingForNodes"));
    let custom = wait_for(&apps, "custom", "WaitingForNodes", SLOW, waiting).await;
    cleanup().await;
    let custom = custom.expect("app");
    let msg = cond(&custom, "WindowsNodesAvailable").map(|c| c.message.clone()).unwrap_or_default();
    assert!(
        msg.contains(&format!("dedicated=windows:NoSchedule (custom-{id})"))
            && msg.contains("spec.windows.tolerations"),
        "names the untolerated taint and the field: {msg}"
    );
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn the_service_takes_its_own_name_and_a_rename_replaces_it() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "svcname").await;
    let app = |name: &str| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: site}}\nspec:\n  image: registry.example.com/site:1\n  ports: [{{name: http, containerPort: 80}}]\n  windows: {{version: ltsc2022}}\n  service: {{name: {name}}}\n"
        )
    };
    apply(ns.name(), &app("iis-service"));
    let apps: Api<WindowsApp> = ns.api();
    wait_for(&apps, "site", "Ready", SLOW, ready_now).await;
    let services: Api<Service> = ns.api();
    assert!(services.get_opt("iis-service").await.expect("get").is_some(), "the named Service");
    assert!(services.get_opt("site").await.expect("get").is_none(), "no Service under the app's name");
    apply(ns.name(), &app("web-service"));
    wait_for(&services, "iis-service", "pruned", SLOW, |s: Option<&Service>| s.is_none()).await;
    wait_for(&services, "web-service", "created", SLOW, |s: Option<&Service>| s.is_some()).await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_runtime_class_places_the_pods_and_a_missing_one_stalls() {
    let client = support::client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "runtimeclass").await;
    grant(ns.name(), "runtime-class");
    let id = ns.name().to_owned();
    let (node, class) = (format!("rc-{id}"), format!("winapp-test-{id}"));
    kubectl_ok(&["create", "-f", "-"], Some(&pool_node(&node, &node, &[("dedicated", "windows-rc")])));
    kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {{name: {class}}}\nhandler: runhcs-wcow-process\nscheduling:\n  nodeSelector: {{winapp.dev/test-pool: {node}}}\n  tolerations:\n    - {{key: dedicated, operator: Equal, value: windows-rc, effect: NoSchedule}}\n    - {{key: winapp.dev/test-pool, operator: Exists}}\n"
        )),
    );
    let app = |name: &str, class: &str| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: {name}}}\nspec:\n  image: registry.example.com/web:1\n  windows: {{version: ltsc2022, runtimeClassName: {class}}}\n"
        )
    };
    apply(ns.name(), &app("placed", &class));
    apply(ns.name(), &app("unplaced", &format!("missing-{id}")));
    let apps: Api<WindowsApp> = ns.api();
    let placed = wait_for(&apps, "placed", "Ready", SLOW, ready_now).await;
    let unplaced = wait_for(&apps, "unplaced", "Stalled", SLOW, stalled_with("RuntimeClassMissing")).await;
    let pods: Vec<Pod> = list_all(&ns.api::<Pod>(), "app.kubernetes.io/instance=placed").await;
    let _ = kubectl(&["delete", "runtimeclass", &class, "--ignore-not-found"], None);
    let _ = Api::<Node>::all(client.clone()).delete(&node, &DeleteParams::default()).await;
    let placed = placed.expect("app");
    let msg = cond(&placed, "WindowsNodesAvailable").map(|c| c.message.clone()).unwrap_or_default();
    assert!(msg.contains(&format!("({node})")), "the RuntimeClass's pool is the one judged: {msg}");
    assert!(
        pods.iter().all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())),
        "the pods run on the RuntimeClass's node"
    );
    let unplaced = unplaced.expect("app");
    assert!(cond(&unplaced, "Stalled").is_some_and(|c| c.message.contains(&format!("missing-{id}"))));
    ns.cleanup().await;
}
