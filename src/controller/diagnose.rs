//! Pure: why the pods of an app are not available, from what the Deployment, its pods and their
//! events say. The facts are gathered by [`super::observe`] only for apps whose rollout has stalled
//! for a while, so that a healthy cluster costs no pod or event reads at all.

mod windows;

use std::time::Duration;

use crate::api::WindowsVersion;
use crate::conditions::reason;

/// What the operator knows about the app's pods.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkloadFacts {
    /// The Deployment's `ReplicaFailure` message: the API server refused to create pods.
    pub replica_failure: Option<String>,
    /// Pods that are not Ready (and not terminating), a few at most.
    pub pods: Vec<PodFacts>,
    /// All pods of the app that are not Ready, of which `pods` is a sample.
    pub not_ready: usize,
}

/// One pod that is not Ready.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodFacts {
    pub name: String,
    pub node: Option<String>,
    /// `node.kubernetes.io/windows-build` of the pod's node.
    pub node_build: Option<String>,
    /// The scheduler's message when the pod cannot be scheduled.
    pub unschedulable: Option<String>,
    pub containers: Vec<ContainerFacts>,
    /// The pod's recent events, oldest first.
    pub events: Vec<EventFacts>,
    /// The gMSA credential spec the pod's spec names (`windowsOptions.gmsaCredentialSpecName`).
    pub gmsa: Option<String>,
    /// The CSI drivers registered on the pod's node (its CSINode; empty when it has none), read
    /// only for a pod of an app with SMB volumes that has not started; None when not read.
    pub csi_drivers: Option<Vec<String>>,
}

/// One container (init containers included) of a pod.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerFacts {
    pub name: String,
    pub image: String,
    pub ready: bool,
    pub running: bool,
    /// `state.waiting`: reason and message.
    pub waiting: Option<(String, String)>,
    /// `lastState.terminated`: exit code and reason.
    pub last_exit: Option<(i32, String)>,
    /// `lastState.terminated.message`: for a container that did not start, the runtime's error.
    pub last_message: Option<String>,
    pub restarts: i32,
}

/// One event of a pod.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventFacts {
    pub reason: String,
    pub message: String,
    /// Time since the event last happened.
    pub age: Duration,
}

/// Why the pods are not available, for a person.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    pub reason: &'static str,
    pub message: String,
}

/// Whether `reason` is a problem of the pods that the diagnosis found (a pull in progress is not).
pub fn is_problem(r: &str) -> bool {
    [
        reason::QUOTA_EXCEEDED,
        reason::GMSA_REFUSED,
        reason::PODS_REFUSED,
        reason::IMAGE_OS_MISMATCH,
        reason::UNSCHEDULABLE,
        reason::IMAGE_PULL_FAILED,
        reason::CONTAINER_CONFIG_ERROR,
        reason::CONTAINER_CREATE_FAILED,
        reason::MOUNT_FAILED,
        reason::CRASH_LOOP,
        reason::PROBE_FAILING,
        reason::GMSA_LOGON_FAILED,
        reason::POD_NETWORK_FAILED,
        reason::SMB_DRIVER_NOT_REGISTERED,
    ]
    .contains(&r)
}

/// Pulls that take longer than this get a hint about image size and pre-pulling.
pub const SLOW_PULL: Duration = Duration::from_secs(300);

/// The most important problem of the pods, if any is known. Problems are ranked from "no pod can
/// exist" to "pods exist and are starting", and the first found wins.
pub fn diagnose(f: &WorkloadFacts, namespace: &str) -> Option<Diagnosis> {
    if let Some(msg) = &f.replica_failure {
        return Some(refused(msg));
    }
    // A node's volumes come before its network (the sandbox), the network before the image, and
    // CCG's gMSA logon is a start failure with a cause of its own.
    let ranked: [fn(&PodFacts, &str) -> Option<Diagnosis>; 12] = [
        os_mismatch,
        unschedulable,
        windows::smb_driver_missing,
        windows::pod_network_failed,
        pull_failed,
        config_error,
        windows::gmsa_logon_failed,
        create_failed,
        mount_failed,
        crash_loop,
        probe_failing,
        pulling,
    ];
    for check in ranked {
        let hits: Vec<Diagnosis> = f.pods.iter().filter_map(|p| check(p, namespace)).collect();
        if let Some(first) = hits.first() {
            let of = if f.not_ready > 1 {
                format!(
                    " ({} of the {} pods that are not Ready checked, {} with this problem)",
                    f.pods.len(),
                    f.not_ready,
                    hits.len()
                )
            } else {
                String::new()
            };
            return Some(Diagnosis { reason: first.reason, message: format!("{}{of}", first.message) });
        }
    }
    None
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(needle)
}

/// The ReplicaSet could not create pods: quota, the gMSA webhook, another admission check.
fn refused(msg: &str) -> Diagnosis {
    if contains(msg, "exceeded quota") {
        Diagnosis {
            reason: reason::QUOTA_EXCEEDED,
            message: format!(
                "a ResourceQuota of the namespace refuses the pods: {msg}; raise the quota (kubectl describe resourcequota) or lower spec.replicas or spec.resources"
            ),
        }
    } else if contains(msg, "gmsa") {
        Diagnosis {
            reason: reason::GMSA_REFUSED,
            message: format!(
                "the gMSA admission webhook refuses the pods: {msg}; check that spec.gmsa.credentialSpecName names an existing GMSACredentialSpec and that the webhook runs (winapp-operator doctor)"
            ),
        }
    } else if contains(msg, "limitrange") || contains(msg, "maximum cpu") || contains(msg, "maximum memory") {
        Diagnosis {
            reason: reason::PODS_REFUSED,
            message: format!(
                "a LimitRange of the namespace refuses the pods: {msg}; change spec.resources to fit it (kubectl describe limitrange)"
            ),
        }
    } else {
        Diagnosis {
            reason: reason::PODS_REFUSED,
            message: format!(
                "the API server refuses to create the pods: {msg}; an admission webhook or policy rejects them: change the app or ask the cluster's administrators"
            ),
        }
    }
}

/// The image is built for another Windows build than the node runs.
fn os_mismatch(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    let says =
        |m: &str| contains(m, "operating system does not match") || contains(m, "no matching manifest for windows");
    let from_container = p
        .containers
        .iter()
        .find_map(|c| c.waiting.as_ref().filter(|(_, m)| says(m)).map(|(_, m)| (c.image.clone(), m.clone())));
    let found = from_container
        .or_else(|| p.events.iter().find(|e| says(&e.message)).map(|e| (image_of(p, &e.message), e.message.clone())))?;
    let (image, msg) = found;
    let node = p.node.as_deref().unwrap_or("its node");
    let build = match p.node_build.as_deref() {
        Some(b) => match WindowsVersion::from_build(b) {
            Some(v) => format!("Windows build {b} ({})", v.as_str()),
            None => format!("Windows build {b}"),
        },
        None => "another Windows build".to_owned(),
    };
    let tag = p.node_build.as_deref().and_then(WindowsVersion::from_build).map(|v| v.as_str());
    let hint = match tag {
        Some(t) => format!(
            "use an image built for {t} (for example a :{t} tag) or set spec.windows.version to the image's build"
        ),
        None => "use an image built for the node's Windows build or set spec.windows.version to the image's build"
            .to_owned(),
    };
    Some(Diagnosis {
        reason: reason::IMAGE_OS_MISMATCH,
        message: format!(
            "pod {}: image {image} does not match node {node}, which runs {build} (process-isolated Windows containers need the same build as the host: {msg}); {hint}",
            p.name
        ),
    })
}

/// The image a message names, or the first container's.
fn image_of(p: &PodFacts, msg: &str) -> String {
    p.containers
        .iter()
        .find(|c| msg.contains(&c.image))
        .or(p.containers.first())
        .map_or_else(|| "?".to_owned(), |c| c.image.clone())
}

fn unschedulable(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    let msg = p.unschedulable.as_ref()?;
    let hint = if contains(msg, "untolerated taint") {
        "the Windows nodes carry a taint the pods do not tolerate: add it to spec.windows.tolerations"
    } else if contains(msg, "insufficient") {
        "no matching node has room: lower spec.resources requests, or add Windows nodes"
    } else if contains(msg, "didn't match pod's node affinity/selector") {
        "no node has the labels the pods select: check spec.windows.version and spec.windows.nodeSelector against the nodes' labels"
    } else if contains(msg, "persistentvolumeclaim") || contains(msg, "volume node affinity") {
        "a claim of the app is not bound or its volume is not reachable from the Windows nodes"
    } else {
        "see the scheduler's reason above"
    };
    Some(Diagnosis {
        reason: reason::UNSCHEDULABLE,
        message: format!("pod {} cannot be scheduled: {msg}; {hint}", p.name),
    })
}

fn waiting<'a>(p: &'a PodFacts, reasons: &[&str]) -> Option<(&'a ContainerFacts, &'a str)> {
    p.containers
        .iter()
        .find_map(|c| c.waiting.as_ref().filter(|(r, _)| reasons.contains(&r.as_str())).map(|(_, m)| (c, m.as_str())))
}

fn on_node(p: &PodFacts) -> String {
    p.node.as_ref().map(|n| format!(" on node {n}")).unwrap_or_default()
}

fn pull_failed(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    let (c, msg) = waiting(p, &["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"])?;
    let msg = if msg.is_empty() {
        p.events.iter().rev().find(|e| e.reason == "Failed" && e.message.contains(&c.image)).map_or("", |e| &e.message)
    } else {
        msg
    };
    Some(Diagnosis {
        reason: reason::IMAGE_PULL_FAILED,
        message: format!(
            "pod {}{}: cannot pull image {}: {msg}; check the image name and tag, that the registry is reachable from the Windows nodes, and imagePullSecrets for a private registry",
            p.name,
            on_node(p),
            c.image
        ),
    })
}

fn config_error(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    let (c, msg) = waiting(p, &["CreateContainerConfigError"])?;
    Some(Diagnosis {
        reason: reason::CONTAINER_CONFIG_ERROR,
        message: format!(
            "pod {}: container {} cannot be configured: {msg}; create the Secret or ConfigMap it references, or fix spec.env",
            p.name, c.name
        ),
    })
}

fn create_failed(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    let (c, msg) = waiting(p, &["CreateContainerError", "RunContainerError", "StartError"])?;
    Some(Diagnosis {
        reason: reason::CONTAINER_CREATE_FAILED,
        message: format!(
            "pod {}{}: the runtime cannot start container {}: {msg}; check spec.command, the image's entrypoint and the node's containerd log",
            p.name,
            on_node(p),
            c.name
        ),
    })
}

fn mount_failed(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    let e = p.events.iter().rev().find(|e| e.reason == "FailedMount" || e.reason == "FailedAttachVolume")?;
    let smb = contains(&e.message, "smb") || contains(&e.message, "access is denied");
    let hint = if smb {
        "for SMB: check the credentials Secret (username as DOMAIN\\user, password), the share's permissions for that account, and that the SMB CSI node plugin runs on the node (winapp-operator doctor)"
    } else {
        "check the claim's StorageClass and that its CSI driver runs on the Windows nodes (winapp-operator doctor)"
    };
    Some(Diagnosis {
        reason: reason::MOUNT_FAILED,
        message: format!("pod {}{}: a volume cannot be mounted: {}; {hint}", p.name, on_node(p), e.message),
    })
}

fn crash_loop(p: &PodFacts, namespace: &str) -> Option<Diagnosis> {
    let (c, _) = waiting(p, &["CrashLoopBackOff"])?;
    let exit = c
        .last_exit
        .as_ref()
        .map(|(code, why)| {
            let why = if why.is_empty() { String::new() } else { format!(", {why}") };
            format!(" (last exit code {code}{why})")
        })
        .unwrap_or_default();
    Some(Diagnosis {
        reason: reason::CRASH_LOOP,
        message: format!(
            "pod {}: container {} keeps exiting{exit}, {} restarts; read its output with kubectl logs -n {namespace} {} -c {} --previous",
            p.name, c.name, c.restarts, p.name, c.name
        ),
    })
}

fn probe_failing(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    if !p.containers.iter().any(|c| c.running && !c.ready) {
        return None;
    }
    let e = p.events.iter().rev().find(|e| e.reason == "Unhealthy")?;
    Some(Diagnosis {
        reason: reason::PROBE_FAILING,
        message: format!(
            "pod {}: {}; Windows apps such as IIS can take long to start: raise the probe's initialDelaySeconds or failureThreshold, or fix the path and port",
            p.name, e.message
        ),
    })
}

/// Not a failure: the image is still being pulled (Windows images are large).
fn pulling(p: &PodFacts, _: &str) -> Option<Diagnosis> {
    let pull = p.events.iter().rev().find(|e| e.reason == "Pulling")?;
    let pulled = p.events.iter().rev().any(|e| e.reason == "Pulled" && e.age <= pull.age);
    if pulled || !p.containers.iter().any(|c| c.waiting.is_some()) {
        return None;
    }
    let hint = if pull.age >= SLOW_PULL {
        "; Windows base images are several GB: pre-pull them on the nodes (or use a node image that has them) to start faster"
    } else {
        ""
    };
    Some(Diagnosis {
        reason: reason::PULLING_IMAGE,
        message: format!("pod {}{}: {} for {}{hint}", p.name, on_node(p), pull.message, minutes(pull.age)),
    })
}

/// Whole minutes, so that the status message (and with it the status) changes once a minute at
/// most while a pull goes on.
fn minutes(d: Duration) -> String {
    match d.as_secs() / 60 {
        0 => "less than a minute".to_owned(),
        1 => "1 minute".to_owned(),
        m => format!("{m} minutes"),
    }
}
