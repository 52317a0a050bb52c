//! Pure: what was observed + how the apply went -> the `WindowsApp` status.

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
        Outcome::Applied(obs) => applied(obs),
    };
    WindowsAppStatus {
        observed_generation: generation,
        windows_build,
        replicas,
        available_replicas: available,
        conditions: c::merge(prev_conditions, wanted, generation, now),
        released_claims: released_claims(previous, outcome),
    }
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

fn stalled(r: &'static str, msg: String) -> Vec<Cond> {
    vec![
        Cond::new(c::READY, false, r, msg.clone()),
        Cond::new(c::RECONCILING, false, r, msg.clone()),
        Cond::new(c::STALLED, true, r, msg),
    ]
}

fn applied(obs: &Observations) -> (Vec<Cond>, Option<i32>, Option<i32>) {
    let mut domain = Vec::new();
    // Problems only a person can fix, in the order a person should fix them.
    let mut blockers: Vec<(&'static str, String)> = Vec::new();

    let n = &obs.nodes;
    let d = obs.workload.clone();
    let deadline_passed = d.as_ref().is_some_and(|d| d.progress_deadline_exceeded);
    let available = d.as_ref().is_some_and(|d| d.up_to_date && d.available >= d.desired && d.desired > 0);
    // No node yet is progress while the rollout's deadline runs: the Pending pods are what makes
    // a cluster autoscaler add a node to a pool that scales from zero.
    let mut waiting_for_nodes = None;
    if let Some(rc) = &n.runtime_class_missing {
        let msg = format!(
            "RuntimeClass {rc} (spec.windows.runtimeClassName) does not exist: the API server refuses the pods; create it or remove the field"
        );
        domain.push(Cond::new(c::WINDOWS_NODES, false, reason::RUNTIME_CLASS_MISSING, msg.clone()));
        blockers.push((reason::RUNTIME_CLASS_MISSING, msg));
    } else if n.ready_matching == 0 {
        let untolerated = if n.untolerated.is_empty() {
            String::new()
        } else {
            format!(
                "; Windows nodes with these labels carry taints the pods do not tolerate: {} (add them to spec.windows.tolerations)",
                n.untolerated.join(", ")
            )
        };
        let msg = format!(
            "no Ready, schedulable Windows node with {}{} matches the pods' node selector and tolerations{untolerated}",
            n.wanted,
            n.build.as_ref().map(|b| format!(" (label node.kubernetes.io/windows-build={b})")).unwrap_or_default()
        );
        domain.push(Cond::new(c::WINDOWS_NODES, false, reason::NO_WINDOWS_NODES, msg.clone()));
        if deadline_passed {
            blockers.push((
                reason::NO_WINDOWS_NODES,
                format!("{msg}; none appeared within spec.rollout.progressDeadlineSeconds: add such nodes or change spec.windows"),
            ));
        } else if !available {
            waiting_for_nodes = Some(format!(
                "{msg}; the pods wait Pending, which makes a cluster autoscaler add a node where one is set up; Stalled once spec.rollout.progressDeadlineSeconds passes without progress"
            ));
        }
    } else {
        let names =
            if n.names.len() < n.ready_matching { format!("{}, ...", n.names.join(", ")) } else { n.names.join(", ") };
        let taints = if n.tolerated_taints.is_empty() {
            "untainted".to_owned()
        } else {
            format!("tolerating {}", n.tolerated_taints.join(", "))
        };
        domain.push(Cond::new(
            c::WINDOWS_NODES,
            true,
            reason::NODES_FOUND,
            format!("{} Ready Windows node(s) with {} ({names}); {taints}", n.ready_matching, n.wanted),
        ));
    }

    match &obs.gmsa {
        None => {}
        Some(GmsaCheck::Ready { credspec, warning }) => domain.push(Cond::new(
            c::GMSA_READY,
            true,
            reason::CREDSPEC_FOUND,
            format!(
                "GMSACredentialSpec {credspec} exists, the platform team allows it in this namespace, and the pods' service account is bound to use it{}",
                warning.as_ref().map(|w| format!("; warning: {w}")).unwrap_or_default()
            ),
        )),
        Some(GmsaCheck::NotAllowed { message }) => {
            let msg = format!(
                "{message}; until then the operator creates no gMSA RBAC, no credspec and no workload for this app"
            );
            domain.push(Cond::new(c::GMSA_READY, false, reason::CREDSPEC_NOT_ALLOWED, msg.clone()));
            blockers.push((reason::CREDSPEC_NOT_ALLOWED, msg));
        }
        Some(GmsaCheck::CredSpecMissing { credspec }) => {
            let msg = format!(
                "GMSACredentialSpec {credspec} does not exist; create it (with the annotation {} naming this namespace) or change spec.gmsa.credentialSpecName",
                crate::gmsa_policy::ALLOWED_NAMESPACES
            );
            domain.push(Cond::new(c::GMSA_READY, false, reason::CREDSPEC_MISSING, msg.clone()));
            blockers.push((reason::CREDSPEC_MISSING, msg));
        }
        Some(GmsaCheck::CrdMissing) => {
            let msg =
                "the GMSACredentialSpec CRD (windows.k8s.io) is not installed; install the gMSA webhook and its CRD"
                    .to_owned();
            domain.push(Cond::new(c::GMSA_READY, false, reason::CREDSPEC_CRD_MISSING, msg.clone()));
            blockers.push((reason::CREDSPEC_CRD_MISSING, msg));
        }
    }

    let mut pending_claims = Vec::new();
    if !obs.claims.is_empty() {
        let mut missing: Vec<String> = obs.claims.iter().filter_map(|c| c.missing_secret.clone()).collect();
        missing.sort();
        missing.dedup();
        pending_claims = obs.claims.iter().filter(|c| !c.bound).map(|c| c.claim.clone()).collect();
        pending_claims.sort();
        if !missing.is_empty() {
            let msg = format!(
                "SMB credentials Secret(s) {} not found in the app's namespace; create them (keys username and password)",
                missing.join(", ")
            );
            domain.push(Cond::new(c::STORAGE_READY, false, reason::SECRET_MISSING, msg.clone()));
            blockers.push((reason::SECRET_MISSING, msg));
        } else if !pending_claims.is_empty() {
            domain.push(Cond::new(
                c::STORAGE_READY,
                false,
                reason::CLAIM_PENDING,
                format!("waiting for claim(s) {} to bind", pending_claims.join(", ")),
            ));
        } else {
            domain.push(Cond::new(
                c::STORAGE_READY,
                true,
                reason::CLAIMS_BOUND,
                format!("{} claim(s) bound", obs.claims.len()),
            ));
        }
    }

    if !obs.missing_config_secrets.is_empty() {
        blockers.push((
            reason::SECRET_MISSING,
            format!(
                "Secret(s) {} that spec.config.files[].secretRef names do not exist in the app's namespace; create them with the referenced keys",
                obs.missing_config_secrets.join(", ")
            ),
        ));
    }

    if !obs.rewrites.is_empty() {
        domain.push(Cond::new(
            c::SPEC_APPLIED,
            false,
            reason::REWRITTEN_BY_ADMISSION,
            format!(
                "stored with other values than applied (a mutating admission webhook or policy rewrote them): {}; the operator keeps the stored values and does not re-apply them",
                obs.rewrites.join(", ")
            ),
        ));
    }

    if let Some(d) = &d
        && d.progress_deadline_exceeded
        && n.ready_matching > 0
    {
        let deadline = format!(
            "the rollout made no progress within spec.rollout.progressDeadlineSeconds ({}/{} {} available)",
            d.available,
            d.desired,
            unit(d.kind)
        );
        blockers.push(match &obs.diagnosis {
            Some(diag) => (diag.reason, format!("{deadline}: {}", diag.message)),
            None => {
                (reason::PROGRESS_DEADLINE, format!("{deadline}; check the pods' events (image pull, crash, probes)"))
            }
        });
    }

    let mut conds = Vec::new();
    let (replicas, available) = d.as_ref().map_or((None, None), |d| (Some(d.replicas), Some(d.available)));
    if !blockers.is_empty() {
        let (r, _) = blockers[0];
        let msg = blockers.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
        conds.extend(stalled(r, msg));
    } else {
        let waiting = match &d {
            _ if waiting_for_nodes.is_some() => waiting_for_nodes.clone().map(|m| (reason::WAITING_FOR_NODES, m)),
            None => {
                Some((reason::NEW_GENERATION, "the workload was applied; waiting for it to be observed".to_owned()))
            }
            Some(d) if !d.up_to_date => Some((
                reason::NEW_GENERATION,
                format!("the {} controller has not observed the new spec yet", d.kind.name()),
            )),
            Some(d) if d.kind == WorkloadKind::DaemonSet && d.desired == 0 => Some((
                reason::ROLLING_OUT,
                "the DaemonSet schedules on no node yet: no node matches the pods' node selector and tolerations"
                    .to_owned(),
            )),
            Some(d) if d.updated < d.desired || d.available < d.desired || d.replicas > d.desired => {
                // Counts that change on every pod would be a status write each: the message
                // shows available pods, and updated ones only while an update is half done.
                let updated = if d.updated > 0 && d.updated < d.desired {
                    format!(", {}/{} updated", d.updated, d.desired)
                } else {
                    String::new()
                };
                let progress =
                    format!("rollout in progress: {}/{} {} available{updated}", d.available, d.desired, unit(d.kind));
                Some(match &obs.diagnosis {
                    Some(diag) => (diag.reason, format!("{progress}; {}", diag.message)),
                    None => (reason::ROLLING_OUT, progress),
                })
            }
            Some(_) if !pending_claims.is_empty() => {
                Some((reason::CLAIM_PENDING, format!("waiting for claim(s) {} to bind", pending_claims.join(", "))))
            }
            Some(_) => None,
        };
        match waiting {
            Some((r, msg)) => {
                conds.push(Cond::new(c::READY, false, r, msg.clone()));
                conds.push(Cond::new(c::RECONCILING, true, r, msg));
                conds.push(Cond::new(c::STALLED, false, reason::PROGRESSING, "making progress"));
            }
            None => {
                let avail = d.as_ref().map_or(0, |d| d.available);
                let desired = d.as_ref().map_or(0, |d| d.desired);
                let msg = match d.as_ref().map(|d| d.kind) {
                    Some(WorkloadKind::DaemonSet) => format!(
                        "an available pod on each of the {desired} Windows node(s) with {} that the DaemonSet schedules on",
                        n.wanted
                    ),
                    _ => format!("{avail}/{desired} replicas available on Windows nodes with {}", n.wanted),
                };
                conds.push(Cond::new(c::READY, true, reason::AVAILABLE, msg));
                conds.push(Cond::new(c::RECONCILING, false, reason::RECONCILED, "the cluster matches the spec"));
                conds.push(Cond::new(c::STALLED, false, reason::RECONCILED, "the cluster matches the spec"));
            }
        }
    }
    conds.extend(domain);
    (conds, replicas, available)
}

/// What a workload's counts count.
fn unit(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "replicas",
        WorkloadKind::DaemonSet => "nodes",
    }
}

/// True when two statuses differ only in condition timestamps.
pub fn same_ignoring_time(a: &WindowsAppStatus, b: &WindowsAppStatus) -> bool {
    a.observed_generation == b.observed_generation
        && a.windows_build == b.windows_build
        && a.replicas == b.replicas
        && a.available_replicas == b.available_replicas
        && c::eq_ignoring_time(&a.conditions, &b.conditions)
        && a.released_claims == b.released_claims
}
