//! Pure: what Windows nodes say when a pod cannot start for a reason of the node rather than of the
//! app: Container Credential Guard cannot fetch the gMSA's credentials, the Host Network Service
//! cannot set up the pod's network, or the SMB CSI driver is not registered on the node. Each
//! check reads the messages that containerd, hcsshim and the kubelet write (see the unit tests for
//! real-looking ones) and says what to look at on the node.

use super::{ContainerFacts, Diagnosis, PodFacts, contains, on_node};
use crate::conditions::reason;

/// The CSI driver of the app's SMB volumes.
const SMB_DRIVER: &str = crate::build::storage::SMB_DRIVER;

/// The kubelet's words when a volume's CSI driver has not registered on the node.
const NOT_REGISTERED: &str = "not found in the list of registered csi drivers";

/// Where the node logs what Container Credential Guard did.
const CCG_LOG: &str = "Microsoft-Windows-Containers-CCG/Admin";

/// The SMB CSI driver is not registered on the node of a pod that has not started: from the
/// node's CSINode when it was read (the current truth), else from the kubelet's `FailedMount`.
pub(super) fn smb_driver_missing(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    if started(p) {
        return None;
    }
    let node = p.node.as_deref()?;
    let seen = match &p.csi_drivers {
        Some(drivers) if drivers.iter().any(|d| d == SMB_DRIVER) => return None,
        Some(drivers) if drivers.is_empty() => format!("the CSINode of node {node} lists no CSI driver"),
        Some(drivers) => format!("the CSINode of node {node} lists only {}", drivers.join(", ")),
        None => {
            let e = p.events.iter().rev().find(|e| {
                e.reason == "FailedMount" && contains(&e.message, NOT_REGISTERED) && e.message.contains(SMB_DRIVER)
            })?;
            format!("the kubelet says: {}", e.message)
        }
    };
    Some(Diagnosis {
        reason: reason::SMB_DRIVER_NOT_REGISTERED,
        message: format!(
            "pod {} on node {node}: the SMB CSI driver {SMB_DRIVER} is not registered on that node ({seen}), so the app's SMB volumes cannot be mounted and the pod waits in ContainerCreating; check that the driver's Windows node plugin runs there and has registered (kubectl get pods -A -l app=csi-smb-node-win -o wide --field-selector spec.nodeName={node}; its node-driver-registrar's log), or install it (winapp-operator doctor)",
            p.name
        ),
    })
}

/// The pod's network (its sandbox) cannot be set up: the kubelet's `FailedCreatePodSandBox` with
/// a network error (HNS, CNI), or `NetworkNotReady`, for a pod none of whose containers has
/// started (a sandbox that failed once and then came up is not the pod's problem now).
pub(super) fn pod_network_failed(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    if started(p) {
        return None;
    }
    let network =
        |m: &str| ["network for sandbox", "hcn", "hns", "cni", "endpoint", "ip address"].iter().any(|w| contains(m, w));
    let e = p
        .events
        .iter()
        .rev()
        .find(|e| (e.reason == "FailedCreatePodSandBox" && network(&e.message)) || e.reason == "NetworkNotReady")?;
    let node = p.node.as_deref().unwrap_or("its node");
    let hint = if contains(&e.message, "no ip addresses available") || contains(&e.message, "failed to allocate") {
        format!(
            "node {node} has no free pod IP address: stale HNS endpoints keep addresses after pods are gone; drain and restart the node (or its CNI), or give the node pool a larger pod address range"
        )
    } else if ["hcn", "hns"].iter().any(|w| contains(&e.message, w)) {
        format!(
            "the Host Network Service (HNS) on node {node} refused the pod's network endpoint; HNS state often goes stale after a node restart or a CNI upgrade: check the CNI's pods on the node (kubectl get pods -A -o wide --field-selector spec.nodeName={node}), then restart them or drain and reimage the node; the kubelet retries by itself"
        )
    } else {
        format!(
            "the CNI plugin on node {node} cannot set up the pod's network: check the CNI's pods and log on that node (kubectl get pods -A -o wide --field-selector spec.nodeName={node}); the kubelet retries by itself"
        )
    };
    Some(Diagnosis {
        reason: reason::POD_NETWORK_FAILED,
        message: format!("pod {}{}: {}: {}; {hint}", p.name, on_node(p), e.reason, without_ids(&e.message)),
    })
}

/// Container Credential Guard cannot fetch the gMSA's credentials (pods with a credential spec
/// only): the container does not start and the runtime carries CCG's error. A running container
/// got its logon, whatever an older event says.
pub(super) fn gmsa_logon_failed(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    let credspec = p.gmsa.as_deref()?;
    if p.containers.iter().any(|c| c.running) {
        return None;
    }
    let from_container = p.containers.iter().find_map(|c| ccg_message(c).map(str::to_owned));
    let msg = from_container.or_else(|| {
        p.events.iter().rev().find(|e| e.reason == "Failed" && ccg_says(&e.message)).map(|e| e.message.clone())
    })?;
    let reach = [
        "domain either does not exist",
        "0x54b",
        "rpc server is unavailable",
        "0xc0020017",
        "no logon servers",
        "0xc000005e",
    ];
    let hint = if reach.iter().any(|w| contains(&msg, w)) {
        "the node cannot reach a domain controller of the gMSA's domain: check that the node resolves the domain (its DNS servers must answer the domain's SRV records, over TCP too) and reaches the DCs (TCP/UDP 53, 88, 389, 445, 464; TCP 135, 9389 and 49152-65535)"
    } else {
        "the account that fetches the gMSA's password is refused, or may not retrieve it: on a node that is not domain-joined, check the credential spec's HostAccountConfig (the CCG plugin and where its PluginInput says the account's credentials are, for example a Key Vault secret DOMAIN\\user:password, and the node's access to it), and that the gMSA's PrincipalsAllowedToRetrieveManagedPassword includes that account (or, domain-joined, the node)"
    };
    Some(Diagnosis {
        reason: reason::GMSA_LOGON_FAILED,
        message: format!(
            "pod {}{}: Container Credential Guard cannot fetch the credentials of the gMSA of credential spec {credspec}, so the container does not start: {}; {hint}; the node's event log {CCG_LOG} names the failing step",
            p.name,
            on_node(p),
            without_ids(&msg)
        ),
    })
}

/// Whether a container of the pod has run: its sandbox and volumes were set up.
fn started(p: &PodFacts) -> bool {
    p.containers.iter().any(|c| c.running || c.last_exit.is_some())
}

/// The runtime's error of a container that did not start, when it is Container Credential
/// Guard's.
fn ccg_message(c: &ContainerFacts) -> Option<&str> {
    let waiting = c.waiting.as_ref().map(|(_, m)| m.as_str());
    [waiting, c.last_message.as_deref()].into_iter().flatten().find(|m| ccg_says(m))
}

/// Whether a runtime error is one that Container Credential Guard causes: a container's compute
/// system not created because the gMSA logon failed.
fn ccg_says(msg: &str) -> bool {
    let signs = [
        "domain either does not exist or could not be contacted",
        "(0x54b)",
        "the rpc server is unavailable",
        "0xc0020017",
        "external credentials",
        "container credential guard",
        "attempted logon is invalid",
        "0xc000006d",
        "no logon servers",
        "0xc000005e",
        "0xc0000022",
        "user name or password is incorrect",
    ];
    signs.iter().any(|s| contains(msg, s))
}

/// A message without the runtime's 64-hex-digit sandbox and container IDs, which change at every
/// retry: with them the status would change (and be written) at every look.
pub(super) fn without_ids(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 32 {
            out.push_str("<id>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for ch in msg.chars() {
        if ch.is_ascii_hexdigit() {
            run.push(ch);
        } else {
            flush(&mut run, &mut out);
            out.push(ch);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::super::{EventFacts, WorkloadFacts, diagnose};
    use super::*;
    use std::time::Duration;

    const SANDBOX: &str = "5116e17bcca6eca60e876b16bd5c06a5e12a955d950508f99eded0bf89849a0f";

    fn event(reason: &str, message: &str) -> EventFacts {
        EventFacts { reason: reason.into(), message: message.into(), age: Duration::from_secs(30) }
    }

    fn creating() -> ContainerFacts {
        ContainerFacts {
            name: "app".into(),
            image: "registry.example.com/web:1-ltsc2022".into(),
            waiting: Some(("ContainerCreating".into(), String::new())),
            ..ContainerFacts::default()
        }
    }

    fn pod(containers: Vec<ContainerFacts>, events: Vec<EventFacts>) -> PodFacts {
        PodFacts {
            name: "web-5d8-abcde".into(),
            node: Some("akswin22000001".into()),
            node_build: Some("10.0.20348".into()),
            containers,
            events,
            ..PodFacts::default()
        }
    }

    fn one(p: PodFacts) -> Option<Diagnosis> {
        diagnose(&WorkloadFacts { replica_failure: None, not_ready: 1, pods: vec![p] }, "shop")
    }

    #[test]
    fn ids_go_other_hex_stays() {
        let msg = format!("failed to setup network for sandbox \"{SANDBOX}\": HNS failed (0x803b0010)");
        assert_eq!(without_ids(&msg), "failed to setup network for sandbox \"<id>\": HNS failed (0x803b0010)");
        assert_eq!(without_ids("deadbeef cafe"), "deadbeef cafe");
    }

    #[test]
    fn an_smb_driver_missing_from_the_nodes_csinode_is_named_with_the_node() {
        let mut p = pod(vec![creating()], vec![]);
        p.csi_drivers = Some(vec!["disk.csi.azure.com".into(), "file.csi.azure.com".into()]);
        let d = one(p.clone()).expect("a diagnosis");
        assert_eq!(d.reason, reason::SMB_DRIVER_NOT_REGISTERED);
        assert!(d.message.contains("node akswin22000001"), "{}", d.message);
        assert!(d.message.contains("lists only disk.csi.azure.com, file.csi.azure.com"), "{}", d.message);
        assert!(d.message.contains("csi-smb-node-win"), "{}", d.message);
        // No CSINode: no driver registered at all.
        p.csi_drivers = Some(vec![]);
        assert!(one(p.clone()).expect("a diagnosis").message.contains("lists no CSI driver"));
        // Registered: not this reason, whatever an older event says.
        p.csi_drivers = Some(vec![SMB_DRIVER.into()]);
        p.events = vec![event(
            "FailedMount",
            "MountVolume.MountDevice failed for volume \"data\" : kubernetes.io/csi: attacher.MountDevice failed to create newCsiDriverClient: driver name smb.csi.k8s.io not found in the list of registered CSI drivers",
        )];
        assert_eq!(one(p).map(|d| d.reason), Some(reason::MOUNT_FAILED));
    }

    #[test]
    fn an_smb_driver_missing_is_read_from_the_kubelets_event_when_the_csinode_was_not() {
        let failed = event(
            "FailedMount",
            "MountVolume.MountDevice failed for volume \"winapp.shop.web.data\" : kubernetes.io/csi: attacher.MountDevice failed to create newCsiDriverClient: driver name smb.csi.k8s.io not found in the list of registered CSI drivers",
        );
        let d = one(pod(vec![creating()], vec![failed.clone()])).expect("a diagnosis");
        assert_eq!(d.reason, reason::SMB_DRIVER_NOT_REGISTERED);
        assert!(d.message.contains("the kubelet says: MountVolume.MountDevice failed"), "{}", d.message);
        // Another driver's registration is a mount failure, not this reason.
        let other = event("FailedMount", &failed.message.replace("smb.csi.k8s.io", "disk.csi.azure.com"));
        assert_eq!(one(pod(vec![creating()], vec![other])).map(|d| d.reason), Some(reason::MOUNT_FAILED));
        // A pod whose containers started has its volumes: the CSINode is not the problem.
        let mut running = pod(vec![ContainerFacts { running: true, ..creating() }], vec![]);
        running.csi_drivers = Some(vec![]);
        assert_eq!(one(running), None);
    }

    #[test]
    fn hns_endpoint_errors_are_a_network_failure_with_the_node_and_no_sandbox_id() {
        let hcn = format!(
            "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox \"{SANDBOX}\": plugin type=\"azure-vnet\" name=\"azure\" failed (add): hcnCreateEndpoint failed in Win32: The object already exists. (0x1392) {{\"Success\":false,\"Error\":\"The object already exists. \",\"ErrorCode\":2147947410}}"
        );
        let d = one(pod(vec![creating()], vec![event("FailedCreatePodSandBox", &hcn)])).expect("a diagnosis");
        assert_eq!(d.reason, reason::POD_NETWORK_FAILED);
        assert!(d.message.contains("on node akswin22000001"), "{}", d.message);
        assert!(d.message.contains("hcnCreateEndpoint failed in Win32: The object already exists"), "{}", d.message);
        assert!(d.message.contains("Host Network Service (HNS)"), "{}", d.message);
        assert!(!d.message.contains(SANDBOX), "the sandbox ID changes at every retry: {}", d.message);
        // The next retry's sandbox has another ID: the same status message.
        let again = hcn.replace(SANDBOX, &SANDBOX.replace('5', "7"));
        let d2 = one(pod(vec![creating()], vec![event("FailedCreatePodSandBox", &again)])).expect("a diagnosis");
        assert_eq!(d.message, d2.message);

        let ipam = format!(
            "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox \"{SANDBOX}\": plugin type=\"win-overlay\" failed (add): failed to allocate for range 0: no IP addresses available in range set: 10.244.3.1-10.244.3.254"
        );
        let d = one(pod(vec![creating()], vec![event("FailedCreatePodSandBox", &ipam)])).expect("a diagnosis");
        assert!(d.message.contains("no free pod IP address"), "{}", d.message);
        let not_ready = "network is not ready: container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized";
        let d = one(pod(vec![creating()], vec![event("NetworkNotReady", not_ready)])).expect("a diagnosis");
        assert_eq!(d.reason, reason::POD_NETWORK_FAILED);
        assert!(d.message.contains("CNI plugin on node akswin22000001"), "{}", d.message);
        // A sandbox that failed once and then came up: the pod's problem is elsewhere now.
        let came_up = ContainerFacts { running: true, waiting: None, ..creating() };
        assert_eq!(one(pod(vec![came_up], vec![event("FailedCreatePodSandBox", &hcn)])), None);
        // A sandbox that fails for another reason (its pause image) is not a network failure.
        let pause = "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox image \"mcr.microsoft.com/oss/kubernetes/pause:3.9\": failed to pull image";
        assert_eq!(one(pod(vec![creating()], vec![event("FailedCreatePodSandBox", pause)])), None);
    }

    fn start_error(msg: &str) -> ContainerFacts {
        ContainerFacts {
            waiting: Some((
                "CrashLoopBackOff".into(),
                "back-off 40s restarting failed container=app pod=web-5d8-abcde_shop(1b2c)".into(),
            )),
            last_exit: Some((128, "StartError".into())),
            last_message: Some(msg.into()),
            restarts: 3,
            ..creating()
        }
    }

    #[test]
    fn ccg_errors_of_a_gmsa_pod_are_a_gmsa_logon_failure_not_a_crash_loop() {
        let id = SANDBOX;
        let domain = format!(
            "failed to create containerd task: failed to create shim task: hcs::CreateComputeSystem {id}: The specified domain either does not exist or could not be contacted.: unknown"
        );
        let mut p = pod(vec![start_error(&domain)], vec![]);
        // Without a credential spec the same words are a crash loop (the runtime's own failure).
        assert_eq!(one(p.clone()).map(|d| d.reason), Some(reason::CRASH_LOOP));
        p.gmsa = Some("webapp01".into());
        let d = one(p).expect("a diagnosis");
        assert_eq!(d.reason, reason::GMSA_LOGON_FAILED);
        assert!(d.message.contains("credential spec webapp01"), "{}", d.message);
        assert!(d.message.contains("The specified domain either does not exist"), "{}", d.message);
        assert!(d.message.contains("reach a domain controller"), "{}", d.message);
        assert!(d.message.contains(CCG_LOG), "{}", d.message);
        assert!(!d.message.contains(id), "{}", d.message);

        // A refused logon of the plugin's account, from the kubelet's Failed event.
        let logon = "Error: failed to create containerd task: failed to create shim task: hcs::CreateComputeSystem app: The attempted logon is invalid. This is either due to a bad username or authentication information. (0xc000006d): unknown";
        let mut p = pod(vec![creating()], vec![event("Failed", logon)]);
        p.gmsa = Some("webapp01".into());
        let d = one(p.clone()).expect("a diagnosis");
        assert_eq!(d.reason, reason::GMSA_LOGON_FAILED);
        assert!(d.message.contains("PrincipalsAllowedToRetrieveManagedPassword"), "{}", d.message);
        assert!(d.message.contains("HostAccountConfig"), "{}", d.message);
        // The same event on a pod whose container now runs: its logon succeeded since.
        p.containers = vec![ContainerFacts { running: true, waiting: None, ..creating() }];
        assert_eq!(one(p), None);

        // RPC to CCG, and a start error of another kind on a gMSA pod.
        let rpc = "failed to create containerd task: failed to create shim task: hcs::CreateComputeSystem app: The RPC server is unavailable.: unknown";
        let mut p = pod(vec![start_error(rpc)], vec![]);
        p.gmsa = Some("webapp01".into());
        assert_eq!(one(p.clone()).map(|d| d.reason), Some(reason::GMSA_LOGON_FAILED));
        p.containers = vec![start_error(
            "failed to create containerd task: failed to create shim task: hcs::CreateComputeSystem app: The directory name is invalid.: unknown",
        )];
        assert_eq!(one(p).map(|d| d.reason), Some(reason::CRASH_LOOP));
    }
}
