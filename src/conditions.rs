//! Condition types and reasons (the vocabulary of `status.conditions`), and the rules for
//! updating a condition list: `lastTransitionTime` moves only when `status` flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// True when every child is applied and the Deployment has rolled out and is available.
pub const READY: &str = "Ready";
/// True while work is in progress (new generation, rollout running).
pub const RECONCILING: &str = "Reconciling";
/// True when the app cannot progress without a change by a person.
pub const STALLED: &str = "Stalled";
/// Ready Windows nodes of the requested build exist.
pub const WINDOWS_NODES: &str = "WindowsNodesAvailable";
/// The credspec exists and the service account may use it.
pub const GMSA_READY: &str = "GMSAReady";
/// Every claim is bound.
pub const STORAGE_READY: &str = "StorageReady";
/// Present (False) only when the API server stores a child with other values than applied.
pub const SPEC_APPLIED: &str = "SpecApplied";
/// Present only while the operator's own change to the pod template is paced (see
/// `controller::pace`): False with WaitingForRolloutTurn or RollingOut.
pub const POD_TEMPLATE_CURRENT: &str = "PodTemplateCurrent";

/// Present (True) only when the app container's memory or CPU settings are advised against (see
/// `advice`): never a refusal, and Ready does not depend on it.
pub const RESOURCES_ADVISED: &str = "ResourcesAdvised";
/// Present (False) only while a node drain waits on the app: its PodDisruptionBudget allows no
/// eviction and pods of the app run on a cordoned node.
pub const NODE_DRAIN_ALLOWED: &str = "NodeDrainAllowed";

/// Present only with `spec.warmUp`: True once the image the spec names is pulled on every node
/// the pods may run on (see `controller::warmup`).
pub const IMAGE_WARM: &str = "ImageWarm";

/// Reasons, PascalCase, one per situation a person may need to act on.
pub mod reason {
    pub const AVAILABLE: &str = "Available";
    pub const RECONCILED: &str = "Reconciled";
    pub const PROGRESSING: &str = "Progressing";
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const WAITING_FOR_ROLLOUT_TURN: &str = "WaitingForRolloutTurn";
    pub const NEW_GENERATION: &str = "NewGeneration";
    pub const SUSPENDED: &str = "Suspended";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// `spec.podTemplate` overrides something the platform's policy does not allow.
    pub const OVERRIDE_NOT_ALLOWED: &str = "OverrideNotAllowed";
    /// The spec asks for a power beyond its namespace (HostProcess, a pod on every node, another
    /// pool's taint, a RuntimeClass, an SMB PersistentVolume) that the platform has not granted.
    pub const NOT_ALLOWED: &str = "NotAllowed";
    pub const NO_WINDOWS_NODES: &str = "NoMatchingWindowsNodes";
    pub const NODES_FOUND: &str = "NodesFound";
    pub const WAITING_FOR_NODES: &str = "WaitingForNodes";
    pub const RUNTIME_CLASS_MISSING: &str = "RuntimeClassMissing";
    pub const CREDSPEC_MISSING: &str = "CredentialSpecMissing";
    pub const CREDSPEC_CRD_MISSING: &str = "CredentialSpecCRDMissing";
    pub const CREDSPEC_FOUND: &str = "CredentialSpecFound";
    /// The platform team has not allowed the app's gMSA in its namespace (see `gmsa_policy`).
    pub const CREDSPEC_NOT_ALLOWED: &str = "CredentialSpecNotAllowed";
    pub const SECRET_MISSING: &str = "SecretMissing";
    pub const CLAIM_PENDING: &str = "ClaimPending";
    pub const CLAIMS_BOUND: &str = "ClaimsBound";
    pub const PROGRESS_DEADLINE: &str = "ProgressDeadlineExceeded";
    pub const CHILD_CONFLICT: &str = "ChildConflict";
    pub const APPLY_FAILED: &str = "ApplyFailed";
    pub const REWRITTEN_BY_ADMISSION: &str = "RewrittenByAdmission";
    /// A node drain waits: the app's PodDisruptionBudget allows no eviction of its pods there.
    pub const DRAIN_BLOCKED: &str = "DrainBlocked";
    /// A move to another Windows build made no progress within the rollout's deadline: the old
    /// build's pods keep serving (see `controller::migration`).
    pub const BUILD_MIGRATION_STALLED: &str = "BuildMigrationStalled";
    // Why the pods are not available (see controller::diagnose).
    pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";
    pub const GMSA_REFUSED: &str = "GMSAWebhookRefused";
    pub const PODS_REFUSED: &str = "PodsRefused";
    pub const IMAGE_OS_MISMATCH: &str = "ImageOSMismatch";
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    pub const IMAGE_PULL_FAILED: &str = "ImagePullFailed";
    pub const CONTAINER_CONFIG_ERROR: &str = "ContainerConfigError";
    pub const CONTAINER_CREATE_FAILED: &str = "ContainerCreateFailed";
    pub const MOUNT_FAILED: &str = "MountFailed";
    pub const CRASH_LOOP: &str = "CrashLoopBackOff";
    pub const PROBE_FAILING: &str = "ProbeFailing";
    pub const PULLING_IMAGE: &str = "PullingImage";
    // What Windows nodes report (see controller::diagnose::windows and controller::placement).
    /// Container Credential Guard could not fetch the gMSA's credentials: the container does not start.
    pub const GMSA_LOGON_FAILED: &str = "GMSALogonFailed";
    /// The node's CNI and Host Network Service cannot set up the pod's network (its sandbox).
    pub const POD_NETWORK_FAILED: &str = "PodNetworkFailed";
    /// The SMB CSI driver is not registered on the pod's node (its CSINode does not list it).
    pub const SMB_DRIVER_NOT_REGISTERED: &str = "SMBDriverNotRegistered";
    /// Windows nodes of the build lack the `node.kubernetes.io/windows-build` label the pods select.
    pub const BUILD_LABEL_MISSING: &str = "WindowsBuildLabelMissing";
    // The image warm-up (see controller::warmup).
    /// Every node the pods may run on has pulled the image.
    pub const IMAGE_PULLED: &str = "ImagePulled";
    /// Nodes are pulling the image; the Deployment keeps its running image meanwhile.
    pub const WARMING_IMAGE: &str = "WarmingImage";
    /// The pull did not finish on every node within `spec.warmUp.deadlineSeconds`.
    pub const WARM_UP_DEADLINE: &str = "WarmUpDeadlineExceeded";
    // Advice on the container's resources (see crate::advice).
    pub const NO_MEMORY_LIMIT: &str = "NoMemoryLimit";
    pub const MEMORY_REQUEST_BELOW_LIMIT: &str = "MemoryRequestBelowLimit";
    pub const CPU_REQUEST_BELOW_LIMIT: &str = "CpuRequestBelowLimit";

    /// Every reason, for the test that keeps the README's table complete.
    pub const ALL: &[&str] = &[
        AVAILABLE,
        RECONCILED,
        PROGRESSING,
        ROLLING_OUT,
        NEW_GENERATION,
        SUSPENDED,
        INVALID_SPEC,
        OVERRIDE_NOT_ALLOWED,
        NOT_ALLOWED,
        NO_WINDOWS_NODES,
        NODES_FOUND,
        WAITING_FOR_NODES,
        RUNTIME_CLASS_MISSING,
        CREDSPEC_MISSING,
        CREDSPEC_CRD_MISSING,
        CREDSPEC_FOUND,
        CREDSPEC_NOT_ALLOWED,
        SECRET_MISSING,
        CLAIM_PENDING,
        CLAIMS_BOUND,
        PROGRESS_DEADLINE,
        CHILD_CONFLICT,
        APPLY_FAILED,
        REWRITTEN_BY_ADMISSION,
        DRAIN_BLOCKED,
        BUILD_MIGRATION_STALLED,
        QUOTA_EXCEEDED,
        GMSA_REFUSED,
        PODS_REFUSED,
        IMAGE_OS_MISMATCH,
        UNSCHEDULABLE,
        IMAGE_PULL_FAILED,
        CONTAINER_CONFIG_ERROR,
        CONTAINER_CREATE_FAILED,
        MOUNT_FAILED,
        CRASH_LOOP,
        PROBE_FAILING,
        PULLING_IMAGE,
        GMSA_LOGON_FAILED,
        POD_NETWORK_FAILED,
        SMB_DRIVER_NOT_REGISTERED,
        BUILD_LABEL_MISSING,
        IMAGE_PULLED,
        WARMING_IMAGE,
        WARM_UP_DEADLINE,
        NO_MEMORY_LIMIT,
        MEMORY_REQUEST_BELOW_LIMIT,
        CPU_REQUEST_BELOW_LIMIT,
    ];
}

/// A condition before the bookkeeping fields are filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn new(type_: &'static str, status: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Cond { type_, status, reason, message: message.into() }
    }
}

/// The new condition list: `wanted` in order, keeping `lastTransitionTime` of a previous
/// condition of the same type and status, and `now` where the status flipped or is new.
pub fn merge(previous: &[Condition], wanted: Vec<Cond>, generation: Option<i64>, now: &Time) -> Vec<Condition> {
    wanted
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let last = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
            Condition {
                type_: c.type_.to_owned(),
                status: status.to_owned(),
                reason: c.reason.to_owned(),
                message: c.message,
                observed_generation: generation,
                last_transition_time: last,
            }
        })
        .collect()
}

/// Equal but for `lastTransitionTime`: a status patch that only moves timestamps is skipped.
pub fn eq_ignoring_time(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

/// The condition of a type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
