//! What Windows nodes say, in the WindowsApp's status: Container Credential Guard refusing a gMSA
//! logon, the Host Network Service refusing a pod's endpoint, and an SMB CSI driver that is not
//! registered on the pod's node (played by the KWOK stages of
//! hack/controlplane/stages/windows-failures.yaml, the last one also read from the node's real
//! CSINode), and Windows nodes of the build that lack the `node.kubernetes.io/windows-build` label
//! (a real node object, and the real scheduler). Each reason is read by kstatus and Argo CD's
//! health check as progress, then (past the rollout's deadline) as a failure.

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::storage::v1::CSINode;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::{SLOW, apply, cond, grant, ready_now, stalled_with};
use crate::harness::{GROUP_LABEL, Operator, argocd_health, kstatus, kubectl_ok, shared};
use crate::support::{TestNamespace, client, wait_for};
use winapp_operator::api::WindowsApp;

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

fn assert_mentions(app: &WindowsApp, type_: &str, words: &[&str]) {
    let msg = cond(app, type_).map(|c| c.message.clone()).unwrap_or_default();
    for w in words {
        assert!(
            msg.contains(w),
            "{}: {type_} message should mention {w:?}: {msg}",
            app.metadata.name.as_deref().unwrap_or("?")
        );
    }
}

/// `kubectl get windowsapp` as a person sees it, printed for the record (run with --nocapture).
fn show_table(ns: &str, when: &str) {
    let table = kubectl_ok(&["get", "windowsapp", "-n", ns], None);
    println!("--- kubectl get windowsapp -n {ns} ({when})\n{table}");
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn windows_node_failures_show_in_status_with_their_reasons() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "winreasons").await;
    let group = format!("winreasons-{}", ns.name());
    kubectl_ok(&["annotate", "namespace", ns.name(), r"winapp.dev/gmsa-accounts=contoso.com\WebSvc"], None);
    grant(ns.name(), "smb-volumes");
    apply(
        ns.name(),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: smb-creds}\nstringData: {username: u, password: p}\n",
    );
    let mut op = Operator::start_with(
        "winreasons",
        &format!("winapp-test-{}", ns.name()),
        &format!("{GROUP_LABEL}={group}"),
        crate::harness::setup(),
        &["--diagnose-after-seconds", "2"],
    );
    op.wait_leading().await;

    let app = |name: &str, spec: &str| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: {name}, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n  windows: {{version: ltsc2022}}\n{spec}"
        )
    };
    let gmsa = "  gmsa:\n    credentialSpec:\n      account: WebSvc\n      domain: {dnsName: contoso.com, netBiosName: CONTOSO, sid: S-1-5-21-1-2-3, guid: 244818ae-87ac-4fcd-92ec-e79e5252348a}\n";
    let smb = "  volumes: [{name: data, mountPath: 'D:\\data', smb: {source: //fs.contoso.com/share, secretRef: {name: smb-creds}}}]\n";
    // (name, spec, reason, words the Ready message must hold)
    let cases: Vec<(&str, String, &'static str, Vec<&str>)> = vec![
        (
            "logon",
            format!("  image: play.invalid/gmsa-logon-fails:ltsc2022\n{gmsa}"),
            "GMSALogonFailed",
            vec![
                "Container Credential Guard cannot fetch the credentials of the gMSA of credential spec winapp.",
                "The specified domain either does not exist or could not be contacted",
                "hcs::CreateComputeSystem <id>",
                "reach a domain controller",
                "Microsoft-Windows-Containers-CCG/Admin",
            ],
        ),
        (
            "network",
            "  image: play.invalid/hns-endpoint-fails:ltsc2022\n".to_owned(),
            "PodNetworkFailed",
            vec![
                "FailedCreatePodSandBox",
                "hcnCreateEndpoint failed in Win32: The object already exists. (0x1392)",
                "sandbox \"<id>\"",
                "Host Network Service (HNS) on node win2022-",
            ],
        ),
        (
            "files",
            format!("  image: play.invalid/smb-unregistered:ltsc2022\n{smb}"),
            "SMBDriverNotRegistered",
            vec!["smb.csi.k8s.io is not registered on that node", "lists no CSI driver", "csi-smb-node-win"],
        ),
    ];
    for (name, spec, _, _) in &cases {
        apply(ns.name(), &app(name, spec));
    }
    let apps: Api<WindowsApp> = ns.api();
    for (name, _, reason, words) in &cases {
        let found = wait_for(&apps, name, reason, SLOW, progressing_with(reason)).await.expect("app exists");
        assert_mentions(&found, "Ready", words);
        // Progress for Flux and Argo CD until the rollout's deadline passes.
        assert_eq!(kstatus(&found), "InProgress", "{name}: kstatus");
        assert_eq!(argocd_health(&found), "Progressing", "{name}: Argo CD health");
        println!("{name}: {reason}: {}", cond(&found, "Ready").map(|c| c.message.as_str()).unwrap_or_default());
    }
    show_table(ns.name(), "each Windows reason");

    // Past the rollout's deadline the same reason stalls the app: a failure for Flux and Argo CD.
    apply(
        ns.name(),
        &app("stuck", "  image: play.invalid/hns-endpoint-fails:ltsc2022\n  rollout: {progressDeadlineSeconds: 5}\n"),
    );
    let stuck = wait_for(&apps, "stuck", "Stalled PodNetworkFailed", SLOW, stalled_with("PodNetworkFailed"))
        .await
        .expect("app exists");
    assert_mentions(&stuck, "Stalled", &["spec.rollout.progressDeadlineSeconds", "hcnCreateEndpoint"]);
    assert_eq!(kstatus(&stuck), "Failed", "past the deadline: kstatus");
    assert_eq!(argocd_health(&stuck), "Degraded", "past the deadline: Argo CD health");
    show_table(ns.name(), "stuck past its deadline");
    for (name, _, reason, _) in &cases {
        let problems = op.metric_of("winapp_pod_problems_total", &format!("reason=\"{reason}\"")).await;
        assert!(problems.unwrap_or(0.0) >= 1.0, "{name}: winapp_pod_problems_total counts {reason}");
    }

    // The SMB driver registers on the pod's node (its CSINode lists it): the operator reads that
    // and the reason goes, whatever the kubelet's older event says.
    let pods: Api<Pod> = ns.api();
    let pod = pods
        .list(&ListParams::default().labels("app.kubernetes.io/instance=files"))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .next()
        .expect("a pod of files");
    let node = pod.spec.and_then(|s| s.node_name).expect("scheduled");
    let csinodes: Api<CSINode> = Api::all(client.clone());
    let registered: CSINode = serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
        "metadata": {"name": node},
        "spec": {"drivers": [{"name": "smb.csi.k8s.io", "nodeID": node}]},
    }))
    .expect("a CSINode");
    csinodes.create(&PostParams::default(), &registered).await.expect("create the CSINode");
    let moved_on = |a: Option<&WindowsApp>| {
        a.is_some_and(|a| cond(a, "Ready").is_some_and(|c| c.reason != "SMBDriverNotRegistered"))
    };
    let files = wait_for(&apps, "files", "a reason other than SMBDriverNotRegistered", SLOW, moved_on).await;
    let _ = csinodes.delete(&node, &DeleteParams::default()).await;
    let files = files.expect("app exists");
    println!("files once {node} lists the driver: {:?}", cond(&files, "Ready").map(|c| &c.reason));

    assert!(
        !op.log_text().contains("could not read the pods"),
        "diagnosis failed under config/rbac:\n{}",
        op.log_text()
    );
    ns.cleanup().await;
    op.stop();
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn windows_nodes_without_the_build_label_are_named_until_labelled() {
    let client = client().await;
    shared().await;
    let ns = TestNamespace::new(&client, "buildlabel").await;
    kubectl_ok(&["annotate", "namespace", ns.name(), "winapp.dev/allowed-taints=winapp.dev/test-pool"], None);
    // A node of the 2022 build, as a pool that scaled from zero may bring it: no build label.
    let pool = format!("unlabelled-{}", ns.name());
    let name = format!("win-{}", ns.name());
    let mut node: serde_json::Value =
        serde_json::from_str(&crate::pool_node(&name, &pool, &[])).expect("a node manifest");
    node["metadata"]["labels"].as_object_mut().expect("labels").remove("node.kubernetes.io/windows-build");
    kubectl_ok(&["create", "-f", "-"], Some(&node.to_string()));
    let nodes: Api<Node> = Api::all(client.clone());

    apply(
        ns.name(),
        &format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: web}}\nspec:\n  image: registry.example.com/web:1\n  rollout: {{progressDeadlineSeconds: 30}}\n  windows:\n    version: ltsc2022\n    nodeSelector: {{winapp.dev/test-pool: {pool}}}\n    tolerations: [{{key: winapp.dev/test-pool, operator: Exists}}]\n"
        ),
    );
    let apps: Api<WindowsApp> = ns.api();
    let reason = "WindowsBuildLabelMissing";
    let waiting = wait_for(&apps, "web", reason, SLOW, progressing_with(reason)).await;
    let stalled = match waiting {
        Some(ref w) => {
            show_table(ns.name(), "within the rollout's deadline");
            let k = kstatus(w);
            let argo = argocd_health(w);
            let later = wait_for(&apps, "web", "Stalled", SLOW, stalled_with(reason)).await;
            Some((w.clone(), k, argo, later))
        }
        None => None,
    };
    if stalled.as_ref().is_some_and(|s| s.3.is_some()) {
        show_table(ns.name(), "past the rollout's deadline");
    }
    // Labelled as the kubelet labels a node of that build: the pods land there.
    kubectl_ok(&["label", "node", &name, "node.kubernetes.io/windows-build=10.0.20348"], None);
    let ready = wait_for(&apps, "web", "Ready once the node is labelled", SLOW, ready_now).await;
    let _ = nodes.delete(&name, &DeleteParams::default()).await;
    let (waiting, k, argo, stalled) = stalled.expect("WindowsBuildLabelMissing while the node lacks the label");
    for words in [
        format!("Windows node(s) {name} (kernel 10.0.20348.1) run that build without the label"),
        format!("kubectl label node {name} node.kubernetes.io/windows-build=10.0.20348"),
        "the pods wait Pending".to_owned(),
    ] {
        assert_mentions(&waiting, "Ready", &[words.as_str()]);
    }
    assert_mentions(&waiting, "WindowsNodesAvailable", &["node pool's settings"]);
    assert_eq!((k.as_str(), argo.as_str()), ("InProgress", "Progressing"), "within the deadline: progress");
    println!("web: {reason}: {}", cond(&waiting, "Ready").map(|c| c.message.as_str()).unwrap_or_default());
    let stalled = stalled.expect("Stalled with WindowsBuildLabelMissing past the deadline");
    println!("web: Stalled: {}", cond(&stalled, "Stalled").map(|c| c.message.as_str()).unwrap_or_default());
    assert_mentions(&stalled, "Stalled", &["spec.rollout.progressDeadlineSeconds", &name]);
    assert_eq!(kstatus(&stalled), "Failed", "past the deadline: kstatus");
    assert_eq!(argocd_health(&stalled), "Degraded", "past the deadline: Argo CD health");
    assert!(ready.is_some(), "Ready once the node has the label");
    ns.cleanup().await;
}
