//! Pure: what was observed + how the apply went -> the `WindowsApp` status. One function per
//! condition in [`conditions`], and their combiner.

mod conditions;
pub mod drain;
pub mod image_warm;
mod migration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ReleasedClaim, WindowsAppStatus};
use crate::conditions::{self as c, Cond, reason};

/// Ready Windows nodes that the pods may land on.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeCheck {
    /// `ltsc2022 (10.0.20348)`, or `any build`.
    pub wanted: String,
    /// The build label value, if pinned.
    pub build: Option<String>,
    pub ready_matching: usize,
    /// Some of those nodes, by name.
    pub names: Vec<String>,
    /// The NoSchedule/NoExecute taints of those nodes (all tolerated), `key=value:effect`.
    pub tolerated_taints: Vec<String>,
    /// Taints that keep the pods off Ready Windows nodes with the right labels,
    /// `key=value:effect (node)`.
    pub untolerated: Vec<String>,
    /// `spec.windows.runtimeClassName`, when no such RuntimeClass exists.
    pub runtime_class_missing: Option<String>,
    /// Ready Windows nodes of the pinned build that the pods would select but for the
    /// `node.kubernetes.io/windows-build` label they lack, `name (kernel ...)`, a few at most.
    pub unlabeled: Vec<String>,
}

/// Whether the gMSA credspec can be used.
#[derive(Debug, Clone, PartialEq)]
pub enum GmsaCheck {
    /// It exists (or is generated) and the platform team allows it in the app's namespace;
    /// `warning` when the allowing entry is looser than it should be.
    Ready {
        credspec: String,
        warning: Option<String>,
    },
    /// The platform team has not allowed it: the message says which annotation to set where.
    NotAllowed {
        message: String,
    },
    CredSpecMissing {
        credspec: String,
    },
    CrdMissing,
}

/// One claim of the app.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimCheck {
    pub claim: String,
    pub bound: bool,
    /// The SMB Secret the volume references, when it does not exist.
    pub missing_secret: Option<String>,
}

/// Which workload runs the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    /// A node agent: one pod per matching node.
    DaemonSet,
}

impl WorkloadKind {
    fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

/// The workload as the cache holds it. For a DaemonSet, the counts are of nodes: desired is the
/// nodes it schedules on, updated and available the nodes whose pod is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkloadCheck {
    pub kind: WorkloadKind,
    pub up_to_date: bool,
    pub desired: i32,
    pub updated: i32,
    pub available: i32,
    pub replicas: i32,
    pub progress_deadline_exceeded: bool,
    /// How long the rollout has made no progress (zero when unknown).
    pub idle: std::time::Duration,
    /// The deadline the operator keeps itself (a DaemonSet's); None when the workload keeps it.
    pub deadline: Option<std::time::Duration>,
}

pub use super::diagnose::Diagnosis;
pub use drain::BudgetCheck;
pub use image_warm::WarmUpCheck;
pub use migration::{BuildCounts, MigrationCheck};

/// Everything the status is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    pub nodes: NodeCheck,
    pub gmsa: Option<GmsaCheck>,
    pub claims: Vec<ClaimCheck>,
    /// None when the workload is not in the cache yet.
    pub workload: Option<WorkloadCheck>,
    /// Fields the API server stores with another value than applied (admission rewrote them),
    /// one `Kind name: path` each.
    pub rewrites: Vec<String>,
    /// Why the pods are not available, when the rollout is stuck and the pods tell.
    pub diagnosis: Option<Diagnosis>,
    /// Secrets that config files come from and that do not exist.
    pub missing_config_secrets: Vec<String>,
    /// Claims this reconcile released (their volume was renamed or removed; Retain).
    pub released_claims: Vec<ReleasedClaim>,
    /// Claims this reconcile adopted again (a released claim's volume came back).
    pub adopted_claims: Vec<String>,
    /// The operator's change to the pod template, while it waits for its turn or rolls out
    /// (see [`super::pace`]).
    pub turn: Option<super::pace::Turn>,
    /// Advice on the app container's memory and CPU settings (see [`crate::advice`]).
    pub advice: Vec<crate::advice::Advice>,
    /// The app's PodDisruptionBudget, while it has one in the cache.
    pub budget: Option<BudgetCheck>,
    /// A move of the pods to another Windows build, while it lasts.
    pub migration: Option<MigrationCheck>,
    /// The warm-up of the app's image, with `spec.warmUp`.
    pub warm_up: Option<WarmUpCheck>,
}

/// Most released claims the status lists (the newest).
pub const MAX_RELEASED_CLAIMS: usize = 16;

/// The released claims the status lists: the previous ones, less those adopted again, plus
/// those released now (a claim released again moves to the end), the newest
/// [`MAX_RELEASED_CLAIMS`].
fn released_claims(previous: Option<&WindowsAppStatus>, outcome: &Outcome) -> Vec<ReleasedClaim> {
    let mut list: Vec<ReleasedClaim> = previous.map(|p| p.released_claims.clone()).unwrap_or_default();
    if let Outcome::Applied(obs) = outcome {
        list.retain(|r| {
            !obs.adopted_claims.contains(&r.claim) && !obs.released_claims.iter().any(|n| n.claim == r.claim)
        });
        list.extend(obs.released_claims.iter().cloned());
    }
    let excess = list.len().saturating_sub(MAX_RELEASED_CLAIMS);
    list.drain(..excess);
    list
}

/// How the reconcile went.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "one short-lived value per reconcile")]
pub enum Outcome {
    /// Every child was applied (or already matched).
    Applied(Observations),
    /// `spec.suspend` is true: nothing was applied.
    Suspended,
    /// The spec failed validation.
    Invalid(String),
    /// The spec asks for what the platform's policy does not allow (and nothing else is wrong
    /// with it): `reason` is `NotAllowed` for the spec's own fields, `OverrideNotAllowed` when
    /// only `spec.podTemplate` overrides are refused.
    NotAllowed { reason: &'static str, message: String },
    /// A child with our name exists and is not ours.
    Conflict(String),
    /// A step failed (an apply the API server refused, a failed delete...): `reason` is the
    /// error's category; `permanent` when retrying cannot help until a person acts.
    Failed { reason: &'static str, message: String, permanent: bool },
}

/// The status for `generation` after `outcome`, keeping transition times from `previous`.
pub fn compute(
    generation: Option<i64>,
    windows_build: Option<String>,
    outcome: &Outcome,
    previous: Option<&WindowsAppStatus>,
    now: &Time,
) -> WindowsAppStatus {
    let prev_conditions: &[Condition] = previous.map_or(&[], |p| &p.conditions);
    let (wanted, replicas, available) = match outcome {
        Outcome::Invalid(msg) => (stalled(reason::INVALID_SPEC, format!("the spec is invalid: {msg}")), None, None),
        Outcome::NotAllowed { reason: r, message } => (stalled(r, message.clone()), None, None),
        Outcome::Conflict(msg) => (stalled(reason::CHILD_CONFLICT, msg.clone()), None, None),
        Outcome::Failed { reason: r, message, permanent } => {
            let message = &bounded(message);
            let conds = if *permanent {
                stalled(r, message.clone())
            } else {
                vec![
                    Cond::new(c::READY, false, r, message.clone()),
                    Cond::new(c::RECONCILING, true, r, message.clone()),
                    Cond::new(c::STALLED, false, r, "the operator retries with backoff"),
                ]
            };
            (conds, previous.and_then(|p| p.replicas), previous.and_then(|p| p.available_replicas))
        }
        Outcome::Suspended => {
            let msg = "spec.suspend is true: the operator applies and deletes nothing until it is false";
            let ready = c::find(prev_conditions, c::READY).map_or_else(
                || Cond::new(c::READY, false, reason::SUSPENDED, msg),
                |p| Cond::new(c::READY, p.status == "True", reason::SUSPENDED, msg),
            );
            (
                vec![
                    ready,
                    Cond::new(c::RECONCILING, false, reason::SUSPENDED, msg),
                    Cond::new(c::STALLED, false, reason::SUSPENDED, msg),
                ],
                previous.and_then(|p| p.replicas),
                previous.and_then(|p| p.available_replicas),
            )
        }
        Outcome::Applied(obs) => conditions::applied(obs),
    };
    WindowsAppStatus {
        observed_generation: generation,
        windows_build,
        replicas,
        available_replicas: available,
        conditions: c::merge(prev_conditions, wanted, generation, now),
        released_claims: released_claims(previous, outcome),
        // Only an applied app's budget is observed; otherwise the last report stands.
        disruption: match outcome {
            Outcome::Applied(obs) => drain::status(obs.budget.as_ref()),
            _ => previous.and_then(|p| p.disruption.clone()),
        },
    }
}

/// Pure: when the app was last reported Stalled at its current generation (its Ready condition's
/// transition), if it is Stalled. A node agent's deadline (the operator's) counts from there
/// across a restart of the operator.
pub fn stalled_since(app: &crate::api::WindowsApp) -> Option<k8s_openapi::jiff::Timestamp> {
    let s = app.status.as_ref()?;
    let stalled = c::find(&s.conditions, c::STALLED).is_some_and(|c| c.status == "True");
    let ready = c::find(&s.conditions, c::READY)?;
    (stalled && ready.status == "False" && s.observed_generation == app.metadata.generation)
        .then_some(ready.last_transition_time.0)
}

/// Longest failure message kept in a condition (API server messages can carry whole diffs).
pub const MAX_FAILURE_MESSAGE: usize = 1024;

/// `message` cut to [`MAX_FAILURE_MESSAGE`] bytes at a character boundary, marked when cut.
fn bounded(message: &str) -> String {
    if message.len() <= MAX_FAILURE_MESSAGE {
        return message.to_owned();
    }
    let mut cut = MAX_FAILURE_MESSAGE;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} [...] (the operator's log has the whole message)", &message[..cut])
}

pub(super) fn stalled(r: &'static str, msg: String) -> Vec<Cond> {
    vec![
        Cond::new(c::READY, false, r, msg.clone()),
        Cond::new(c::RECONCILING, false, r, msg.clone()),
        Cond::new(c::STALLED, true, r, msg),
    ]
}

/// True when two statuses differ only in condition timestamps.
pub fn same_ignoring_time(a: &WindowsAppStatus, b: &WindowsAppStatus) -> bool {
    a.observed_generation == b.observed_generation
        && a.windows_build == b.windows_build
        && a.replicas == b.replicas
        && a.available_replicas == b.available_replicas
        && c::eq_ignoring_time(&a.conditions, &b.conditions)
        && a.released_claims == b.released_claims
        && a.disruption == b.disruption
}
