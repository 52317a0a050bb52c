//! Pure checks of the cluster add-ons some WindowsApps need: the gMSA CRD and admission webhook
//! (apps with `spec.gmsa`), and the SMB CSI driver with its Windows node plugin (SMB volumes).

use super::facts::{AppFacts, DaemonSetFacts, GmsaCrdFacts, Lookup, NodeFacts, WebhookConfigFacts};
use super::{Check, Finding, name_list, not_checked};
use crate::build::workload::OS_LABEL;

/// The GMSACredentialSpec CRD.
pub const GMSA_CRD: &str = "gmsacredentialspecs.windows.k8s.io";
/// The SMB CSI driver.
pub const SMB_DRIVER: &str = "smb.csi.k8s.io";
/// Name of the upstream SMB CSI driver's Windows node DaemonSet.
pub const SMB_WINDOWS_DAEMONSET: &str = "csi-smb-node-win";
/// Image name of the SMB CSI driver's plugin.
const SMB_PLUGIN_IMAGE: &str = "smbplugin";

const INSTALL_GMSA: &str = "install the gMSA admission webhook from kubernetes-sigs/windows-gmsa (its Helm chart \
     windows-gmsa/gmsa, or admission-webhook/deploy/deploy-gmsa-webhook.sh), which brings the CRD and both webhooks";
const INSTALL_SMB: &str = "install kubernetes-csi/csi-driver-smb with its Windows node plugin (its Helm chart \
     csi-driver-smb/csi-driver-smb, or deploy/install-driver.sh, which also applies csi-smb-node-windows.yaml)";

/// The GMSACredentialSpec CRD.
pub fn gmsa_crd(crd: &Lookup<Option<GmsaCrdFacts>>) -> Vec<Finding> {
    if let Some(f) = not_checked(Check::GmsaCrd, &format!("the CRD {GMSA_CRD}"), crd) {
        return vec![f];
    }
    match crd.found() {
        Some(Some(facts)) if facts.test_fixture => vec![Finding::ok(
            Check::GmsaCrd,
            "GMSACredentialSpec CRD installed",
            format!(
                "{GMSA_CRD} is this repository's test fixture (label winapp.dev/test-fixture): fine for a dev \
                 cluster; in production, {INSTALL_GMSA}"
            ),
        )],
        Some(Some(_)) => vec![Finding::ok(
            Check::GmsaCrd,
            "GMSACredentialSpec CRD installed",
            format!("{GMSA_CRD} is served: WindowsApps can reference or generate credential specs"),
        )],
        _ => vec![Finding::warning(
            Check::GmsaCrd,
            "GMSACredentialSpec CRD not installed",
            format!(
                "only WindowsApps with spec.gmsa need it (without it they stay Stalled with \
                 CredentialSpecCRDMissing); {INSTALL_GMSA}"
            ),
        )],
    }
}

/// Names (`config/webhook`) of the webhooks on pods that belong to the gMSA webhook.
fn gmsa_webhooks(configs: &[WebhookConfigFacts]) -> Vec<String> {
    let on_pods = |resources: &[String]| resources.iter().any(|r| matches!(r.as_str(), "pods" | "*" | "*/*"));
    let gmsa = |s: &str| s.to_ascii_lowercase().contains("gmsa");
    configs
        .iter()
        .flat_map(|c| {
            c.webhooks
                .iter()
                .filter(move |w| (gmsa(&c.name) || gmsa(&w.name)) && on_pods(&w.resources))
                .map(move |w| format!("{}/{}", c.name, w.name))
        })
        .collect()
}

/// The gMSA admission webhook: a mutating one (fills the credential spec into pods) and a
/// validating one (checks that the pod's ServiceAccount may `use` it).
pub fn gmsa_webhook(
    mutating: &Lookup<Vec<WebhookConfigFacts>>,
    validating: &Lookup<Vec<WebhookConfigFacts>>,
) -> Vec<Finding> {
    let mut findings: Vec<Finding> = [
        not_checked(Check::GmsaWebhook, "MutatingWebhookConfigurations", mutating),
        not_checked(Check::GmsaWebhook, "ValidatingWebhookConfigurations", validating),
    ]
    .into_iter()
    .flatten()
    .collect();
    let m = mutating.found().map(|c| gmsa_webhooks(c));
    let v = validating.found().map(|c| gmsa_webhooks(c));
    let missing = |kind: &str, does: &str| {
        Finding::warning(
            Check::GmsaWebhook,
            format!("gMSA {kind} webhook not found"),
            format!("no {kind} webhook on pods with gmsa in its name: {does}; {INSTALL_GMSA}"),
        )
    };
    const MUTATES: &str = "gMSA pods would not get their credential spec";
    const VALIDATES: &str = "nothing would check that a pod's ServiceAccount may use its credential spec";
    match (m, v) {
        (Some(m), Some(v)) if m.is_empty() && v.is_empty() => findings.push(Finding::warning(
            Check::GmsaWebhook,
            "gMSA admission webhook not installed",
            format!(
                "only WindowsApps with spec.gmsa need it: it fills the credential spec into their pods and checks \
                 that their ServiceAccount may use it; {INSTALL_GMSA}"
            ),
        )),
        (m, v) => {
            let mut found = Vec::new();
            match m {
                Some(m) if m.is_empty() => findings.push(missing("mutating", MUTATES)),
                Some(m) => found.push(format!("mutating {}", name_list(&m, 3))),
                None => {}
            }
            match v {
                Some(v) if v.is_empty() => findings.push(missing("validating", VALIDATES)),
                Some(v) => found.push(format!("validating {}", name_list(&v, 3))),
                None => {}
            }
            if !found.is_empty() {
                findings.push(Finding::ok(
                    Check::GmsaWebhook,
                    "gMSA admission webhook found",
                    format!("{}: pods of WindowsApps with spec.gmsa get their credential spec", found.join("; ")),
                ));
            }
        }
    }
    findings
}

/// The CSIDriver object of the SMB CSI driver.
pub fn smb_csi_driver(driver: &Lookup<bool>) -> Vec<Finding> {
    if let Some(f) = not_checked(Check::SmbCsiDriver, &format!("the CSIDriver {SMB_DRIVER}"), driver) {
        return vec![f];
    }
    if driver.found() == Some(&true) {
        vec![Finding::ok(
            Check::SmbCsiDriver,
            "SMB CSI driver registered",
            format!("the CSIDriver {SMB_DRIVER} exists: SMB volumes of WindowsApps can be provisioned"),
        )]
    } else {
        vec![Finding::warning(
            Check::SmbCsiDriver,
            "SMB CSI driver not installed",
            format!(
                "no CSIDriver {SMB_DRIVER}: only WindowsApps with spec.volumes[].smb need it (their pods cannot \
                 mount the share without it); {INSTALL_SMB}"
            ),
        )]
    }
}

/// A DaemonSet that runs the SMB plugin on Windows nodes.
fn is_smb_windows_node_plugin(ds: &DaemonSetFacts) -> bool {
    ds.name.contains(SMB_WINDOWS_DAEMONSET)
        || (ds.images.iter().any(|i| i.contains(SMB_PLUGIN_IMAGE))
            && ds.node_selector.get(OS_LABEL).is_some_and(|os| os == "windows"))
}

/// The SMB CSI driver's Windows node plugin: present and ready on the Windows nodes.
pub fn smb_node_daemonset(daemon_sets: &Lookup<Vec<DaemonSetFacts>>, nodes: &[NodeFacts]) -> Vec<Finding> {
    if let Some(f) = not_checked(Check::SmbNodeDaemonset, "DaemonSets", daemon_sets) {
        return vec![f];
    }
    let found: Vec<&DaemonSetFacts> =
        daemon_sets.found().into_iter().flatten().filter(|d| is_smb_windows_node_plugin(d)).collect();
    if found.is_empty() {
        return vec![Finding::warning(
            Check::SmbNodeDaemonset,
            "SMB CSI node plugin for Windows not found",
            format!(
                "no DaemonSet {SMB_WINDOWS_DAEMONSET} (or other running the SMB plugin on Windows nodes) in any \
                 namespace: only WindowsApps with SMB volumes need it (their pods stay ContainerCreating without it); \
                 {INSTALL_SMB}"
            ),
        )];
    }
    let windows_nodes = nodes.iter().filter(|n| n.is_windows()).count() as i32;
    let desired: i32 = found.iter().map(|d| d.desired).sum();
    let ready: i32 = found.iter().map(|d| d.ready).sum();
    let names: Vec<String> = found.iter().map(|d| format!("{}/{}", d.namespace, d.name)).collect();
    let names = name_list(&names, 3);
    if desired == 0 {
        vec![Finding::warning(
            Check::SmbNodeDaemonset,
            "SMB CSI node plugin runs on no node",
            format!(
                "{names} is scheduled on none of the {windows_nodes} Windows nodes, so SMB volumes cannot mount: check \
                 its nodeSelector and tolerations against the Windows nodes' labels and taints"
            ),
        )]
    } else if ready < desired {
        vec![Finding::warning(
            Check::SmbNodeDaemonset,
            format!("SMB CSI node plugin not ready: {ready}/{desired}"),
            format!(
                "{names}: {ready} of {desired} pods Ready on {windows_nodes} Windows nodes; SMB volumes mount only \
                 where it runs: look at `kubectl -n <namespace> describe daemonset` and its pods"
            ),
        )]
    } else if desired < windows_nodes {
        vec![Finding::warning(
            Check::SmbNodeDaemonset,
            format!("SMB CSI node plugin on {desired} of {windows_nodes} Windows nodes"),
            format!(
                "{names} does not run on every Windows node, so SMB volumes cannot mount on the others: check its \
                 nodeSelector and tolerations against the Windows nodes' labels and taints"
            ),
        )]
    } else {
        vec![Finding::ok(
            Check::SmbNodeDaemonset,
            format!("SMB CSI node plugin ready: {ready}/{desired}"),
            format!("{names} runs on the Windows nodes: SMB volumes can be mounted"),
        )]
    }
}

/// DaemonSet names of network plugins that enforce NetworkPolicy on Windows nodes, and the
/// plugin each belongs to. Other plugins (Flannel, the cloud providers' default CNIs on Windows)
/// ignore NetworkPolicy there.
const WINDOWS_POLICY_DATAPLANES: &[(&str, &str)] = &[
    ("calico-node-windows", "Calico for Windows"),
    ("azure-npm-win", "Azure Network Policy Manager"),
    ("antrea-agent-windows", "Antrea"),
];

/// Whether a network plugin that enforces NetworkPolicy runs on the Windows nodes, as far as
/// its DaemonSet's name tells; a warning only when WindowsApps ask for a policy without one.
pub fn network_policy(daemon_sets: &Lookup<Vec<DaemonSetFacts>>, apps: &Lookup<Option<Vec<AppFacts>>>) -> Vec<Finding> {
    if let Some(f) = not_checked(Check::NetworkPolicy, "DaemonSets", daemon_sets) {
        return vec![f];
    }
    let found: Vec<String> = daemon_sets
        .found()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            WINDOWS_POLICY_DATAPLANES
                .iter()
                .find(|(name, _)| d.name.contains(name))
                .map(|(_, plugin)| format!("{plugin} ({}/{})", d.namespace, d.name))
        })
        .collect();
    let asking: Vec<String> = apps
        .found()
        .and_then(|a| a.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.network_policy)
        .map(|a| format!("{}/{}", a.namespace, a.name))
        .collect();
    if !found.is_empty() {
        return vec![Finding::ok(
            Check::NetworkPolicy,
            "NetworkPolicy enforced on Windows nodes",
            format!("{} runs: spec.networkPolicy of WindowsApps takes effect", name_list(&found, 3)),
        )];
    }
    let known = WINDOWS_POLICY_DATAPLANES.iter().map(|(_, p)| *p).collect::<Vec<_>>().join(", ");
    if asking.is_empty() {
        vec![Finding::ok(
            Check::NetworkPolicy,
            "no NetworkPolicy dataplane for Windows found; no WindowsApp asks for a policy",
            format!(
                "none of {known} runs, so a NetworkPolicy would not be enforced on the Windows nodes; install one                  before apps rely on spec.networkPolicy"
            ),
        )]
    } else {
        vec![Finding::warning(
            Check::NetworkPolicy,
            format!("{} WindowsApp(s) set spec.networkPolicy, which nothing enforces on Windows nodes", asking.len()),
            format!(
                "{} ask for a NetworkPolicy but none of {known} runs (as far as DaemonSet names tell): their pods \
                 accept traffic from anywhere; install one of them, or do not rely on the policy",
                name_list(&asking, 3)
            ),
        )]
    }
}
