//! One function per condition of an applied app, each saying its domain condition (if any),
//! what it blocks (a problem only a person can fix) or what it waits for; [`applied`] combines
//! them into Ready, Reconciling and Stalled.

use super::super::pace::Turn;
use super::{GmsaCheck, Observations, WorkloadCheck, WorkloadKind, migration, stalled};
use crate::conditions::{self as c, Cond, reason};

/// What one condition says of an applied app.
#[derive(Default)]
struct Judged {
    /// Its own condition (WindowsNodesAvailable, GMSAReady, StorageReady, SpecApplied).
    condition: Option<Cond>,
    /// A problem only a person can fix: the app is Stalled with it.
    blocker: Option<(&'static str, String)>,
    /// What the app waits for while it makes progress.
    waiting: Option<(&'static str, String)>,
}

impl Judged {
    fn condition(condition: Cond) -> Self {
        Judged { condition: Some(condition), ..Judged::default() }
    }

    /// A condition that is also a blocker, with the same message.
    fn blocking(type_: &'static str, reason: &'static str, msg: String) -> Self {
        Judged {
            condition: Some(Cond::new(type_, false, reason, msg.clone())),
            blocker: Some((reason, msg)),
            waiting: None,
        }
    }
}

/// The status's conditions after a successful apply, and the replica counts.
pub(super) fn applied(obs: &Observations) -> (Vec<Cond>, Option<i32>, Option<i32>) {
    let d = obs.workload.as_ref();
    // Problems only a person can fix, in the order a person should fix them.
    let moved = Judged { blocker: migration::stalled(obs), ..Judged::default() };
    let judged = [
        nodes(obs),
        gmsa(obs),
        storage(obs),
        config_secrets(obs),
        spec_applied(obs),
        deadline(obs),
        warm_up(obs),
        moved,
    ];
    let blockers: Vec<&(&'static str, String)> = judged.iter().filter_map(|j| j.blocker.as_ref()).collect();
    let waiting_for_nodes = judged.iter().find_map(|j| j.waiting.clone());
    let mut conds = match blockers.first() {
        Some((r, _)) => stalled(r, blockers.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ")),
        None => match waiting_for_nodes.or_else(|| migration::progress(obs)).or_else(|| rollout(obs)) {
            Some((r, msg)) => vec![
                Cond::new(c::READY, false, r, msg.clone()),
                Cond::new(c::RECONCILING, true, r, msg),
                Cond::new(c::STALLED, false, reason::PROGRESSING, "making progress"),
            ],
            None => ready(obs),
        },
    };
    conds.extend(judged.into_iter().filter_map(|j| j.condition));
    conds.extend(pod_template(obs));
    conds.extend(resources(obs));
    conds.extend(super::drain::condition(obs.budget.as_ref()));
    (conds, d.map(|d| d.replicas), d.map(|d| d.available))
}

/// PodTemplateCurrent, only while the operator's change to the pod template (an upgrade's new
/// default, a platform-wide pod annotation) is paced: it waits for its turn, the running pods
/// untouched (Ready and Reconciling say what they said, so that GitOps tools do not wait on it),
/// or rolls out now.
fn pod_template(obs: &Observations) -> Option<Cond> {
    let msg = match obs.turn? {
        Turn::Waiting { rolling, limit } => (
            reason::WAITING_FOR_ROLLOUT_TURN,
            format!(
                "the operator changed the pod template (its upgrade or a platform-wide setting, not this app's spec); {rolling} app(s) roll out such a change now, at most {limit} at once (--max-operator-rollouts): the running pods stay until this app's turn"
            ),
        ),
        Turn::Rolling => (
            reason::ROLLING_OUT,
            "the operator's change to the pod template rolls out now, paced with other apps' (--max-operator-rollouts)"
                .to_owned(),
        ),
    };
    Some(Cond::new(c::POD_TEMPLATE_CURRENT, false, msg.0, msg.1))
}

/// ResourcesAdvised, only when there is advice on the container's memory or CPU settings: the
/// first piece's reason, every piece in the message. Advice, not a blocker: Ready is unchanged.
fn resources(obs: &Observations) -> Option<Cond> {
    let first = obs.advice.first()?;
    Some(Cond::new(c::RESOURCES_ADVISED, true, first.reason, crate::advice::message(&obs.advice)))
}

/// WindowsNodesAvailable: Ready Windows nodes of the build that the pods can run on. No node yet
/// is progress while the rollout's deadline runs: the Pending pods are what makes a cluster
/// autoscaler add a node to a pool that scales from zero.
fn nodes(obs: &Observations) -> Judged {
    let n = &obs.nodes;
    let d = obs.workload.as_ref();
    if let Some(rc) = &n.runtime_class_missing {
        let msg = format!(
            "RuntimeClass {rc} (spec.windows.runtimeClassName) does not exist: the API server refuses the pods; create it or remove the field"
        );
        return Judged::blocking(c::WINDOWS_NODES, reason::RUNTIME_CLASS_MISSING, msg);
    }
    if n.ready_matching == 0 && !n.unlabeled.is_empty() {
        return unlabeled(obs);
    }
    if n.ready_matching == 0 {
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
        let mut judged = Judged::condition(Cond::new(c::WINDOWS_NODES, false, reason::NO_WINDOWS_NODES, msg.clone()));
        if obs.migration.is_some() {
            // A move to another build says itself what it waits for (status::migration).
            return judged;
        }
        if d.is_some_and(|d| d.progress_deadline_exceeded) {
            judged.blocker = Some((
                reason::NO_WINDOWS_NODES,
                format!(
                    "{msg}; none appeared within spec.rollout.progressDeadlineSeconds: add such nodes or change spec.windows"
                ),
            ));
        } else if !d.is_some_and(available) {
            judged.waiting = Some((
                reason::WAITING_FOR_NODES,
                format!(
                    "{msg}; the pods wait Pending, which makes a cluster autoscaler add a node where one is set up; Stalled once spec.rollout.progressDeadlineSeconds passes without progress"
                ),
            ));
        }
        return judged;
    }
    let names =
        if n.names.len() < n.ready_matching { format!("{}, ...", n.names.join(", ")) } else { n.names.join(", ") };
    let taints = if n.tolerated_taints.is_empty() {
        "untainted".to_owned()
    } else {
        format!("tolerating {}", n.tolerated_taints.join(", "))
    };
    let msg = format!("{} Ready Windows node(s) with {} ({names}); {taints}", n.ready_matching, n.wanted);
    Judged::condition(Cond::new(c::WINDOWS_NODES, true, reason::NODES_FOUND, msg))
}

/// No node carries the build label the pods select, but Windows nodes of that build lack the
/// label: progress while the rollout's deadline runs (a person, or the node pool's settings, may
/// label them soon; until then the pods wait Pending), Stalled with the same reason after it.
fn unlabeled(obs: &Observations) -> Judged {
    let n = &obs.nodes;
    let d = obs.workload.as_ref();
    let build = n.build.as_deref().unwrap_or("?");
    let names: Vec<&str> = n.unlabeled.iter().map(|u| u.split(' ').next().unwrap_or(u)).collect();
    let msg = format!(
        "no Ready Windows node carries the label node.kubernetes.io/windows-build={build} that the pods select ({}), but Windows node(s) {} run that build without the label (a node pool scaled from zero, or a node image that does not set it); label them (kubectl label node {} node.kubernetes.io/windows-build={build}) and set the label in the node pool's settings (and in the cluster autoscaler's node template of a pool that scales from zero) so that new nodes get it",
        n.wanted,
        n.unlabeled.join(", "),
        names.join(" ")
    );
    let mut judged = Judged::condition(Cond::new(c::WINDOWS_NODES, false, reason::BUILD_LABEL_MISSING, msg.clone()));
    if d.is_some_and(|d| d.progress_deadline_exceeded) {
        judged.blocker = Some((
            reason::BUILD_LABEL_MISSING,
            format!("{msg}; the pods found no node within spec.rollout.progressDeadlineSeconds"),
        ));
    } else if !d.is_some_and(available) {
        judged.waiting =
            Some((reason::BUILD_LABEL_MISSING, format!("{msg}; the pods wait Pending until a node has the label")));
    }
    judged
}

/// ImageWarm, with `spec.warmUp` (see [`super::image_warm`]).
fn warm_up(obs: &Observations) -> Judged {
    let Some(w) = &obs.warm_up else { return Judged::default() };
    let j = super::image_warm::judge(w);
    Judged { condition: Some(j.condition), blocker: j.blocker, waiting: j.waiting }
}

/// Whether the workload has rolled out and is available.
fn available(d: &WorkloadCheck) -> bool {
    d.up_to_date && d.available >= d.desired && d.desired > 0
}

/// GMSAReady: the credspec exists, the platform team allows it, the pods may use it.
fn gmsa(obs: &Observations) -> Judged {
    match &obs.gmsa {
        None => Judged::default(),
        Some(GmsaCheck::Ready { credspec, warning }) => Judged::condition(Cond::new(
            c::GMSA_READY,
            true,
            reason::CREDSPEC_FOUND,
            format!(
                "GMSACredentialSpec {credspec} exists, the platform team allows it in this namespace, and the pods' service account is bound to use it{}",
                warning.as_ref().map(|w| format!("; warning: {w}")).unwrap_or_default()
            ),
        )),
        Some(GmsaCheck::NotAllowed { message }) => Judged::blocking(
            c::GMSA_READY,
            reason::CREDSPEC_NOT_ALLOWED,
            format!(
                "{message}; until then the operator creates no gMSA RBAC, no credspec and no workload for this app"
            ),
        ),
        Some(GmsaCheck::CredSpecMissing { credspec }) => Judged::blocking(
            c::GMSA_READY,
            reason::CREDSPEC_MISSING,
            format!(
                "GMSACredentialSpec {credspec} does not exist; create it (with the annotation {} naming this namespace) or change spec.gmsa.credentialSpecName",
                crate::gmsa_policy::ALLOWED_NAMESPACES
            ),
        ),
        Some(GmsaCheck::CrdMissing) => Judged::blocking(
            c::GMSA_READY,
            reason::CREDSPEC_CRD_MISSING,
            "the GMSACredentialSpec CRD (windows.k8s.io) is not installed; install the gMSA webhook and its CRD"
                .to_owned(),
        ),
    }
}

/// The app's claims that are not bound yet, sorted.
fn pending_claims(obs: &Observations) -> Vec<String> {
    let mut pending: Vec<String> = obs.claims.iter().filter(|c| !c.bound).map(|c| c.claim.clone()).collect();
    pending.sort();
    pending
}

/// StorageReady: every claim bound, and the SMB credentials Secrets there.
fn storage(obs: &Observations) -> Judged {
    if obs.claims.is_empty() {
        return Judged::default();
    }
    let mut missing: Vec<String> = obs.claims.iter().filter_map(|c| c.missing_secret.clone()).collect();
    missing.sort();
    missing.dedup();
    let pending = pending_claims(obs);
    if !missing.is_empty() {
        let msg = format!(
            "SMB credentials Secret(s) {} not found in the app's namespace; create them (keys username and password)",
            missing.join(", ")
        );
        Judged::blocking(c::STORAGE_READY, reason::SECRET_MISSING, msg)
    } else if !pending.is_empty() {
        let msg = format!("waiting for claim(s) {} to bind", pending.join(", "));
        Judged::condition(Cond::new(c::STORAGE_READY, false, reason::CLAIM_PENDING, msg))
    } else {
        let msg = format!("{} claim(s) bound", obs.claims.len());
        Judged::condition(Cond::new(c::STORAGE_READY, true, reason::CLAIMS_BOUND, msg))
    }
}

/// The Secrets config files come from (no condition of their own: a blocker).
fn config_secrets(obs: &Observations) -> Judged {
    if obs.missing_config_secrets.is_empty() {
        return Judged::default();
    }
    let msg = format!(
        "Secret(s) {} that spec.config.files[].secretRef names do not exist in the app's namespace; create them with the referenced keys",
        obs.missing_config_secrets.join(", ")
    );
    Judged { blocker: Some((reason::SECRET_MISSING, msg)), ..Judged::default() }
}

/// SpecApplied (only when False): fields an admission webhook or policy rewrote.
fn spec_applied(obs: &Observations) -> Judged {
    if obs.rewrites.is_empty() {
        return Judged::default();
    }
    Judged::condition(Cond::new(
        c::SPEC_APPLIED,
        false,
        reason::REWRITTEN_BY_ADMISSION,
        format!(
            "stored with other values than applied (a mutating admission webhook or policy rewrote them): {}; the operator keeps the stored values and does not re-apply them",
            obs.rewrites.join(", ")
        ),
    ))
}

/// A rollout past its deadline on nodes that exist: a blocker, with the pods' diagnosis.
fn deadline(obs: &Observations) -> Judged {
    let past = |d: &&WorkloadCheck| d.progress_deadline_exceeded && obs.nodes.ready_matching > 0;
    // A move to another build that stalls says so itself (status::migration).
    let Some(d) = obs.workload.as_ref().filter(past).filter(|_| obs.migration.is_none()) else {
        return Judged::default();
    };
    let deadline = format!(
        "the rollout made no progress within spec.rollout.progressDeadlineSeconds ({}/{} {} available)",
        d.available,
        d.desired,
        unit(d.kind)
    );
    let blocker = match &obs.diagnosis {
        Some(diag) => (diag.reason, format!("{deadline}: {}", diag.message)),
        None => (reason::PROGRESS_DEADLINE, format!("{deadline}; check the pods' events (image pull, crash, probes)")),
    };
    Judged { blocker: Some(blocker), ..Judged::default() }
}

/// What a rollout that is not done waits for (None once it is done and the claims are bound).
fn rollout(obs: &Observations) -> Option<(&'static str, String)> {
    let Some(d) = &obs.workload else {
        return Some((reason::NEW_GENERATION, "the workload was applied; waiting for it to be observed".to_owned()));
    };
    if !d.up_to_date {
        return Some((
            reason::NEW_GENERATION,
            format!("the {} controller has not observed the new spec yet", d.kind.name()),
        ));
    }
    if d.kind == WorkloadKind::DaemonSet && d.desired == 0 {
        let msg = "the DaemonSet schedules on no node yet: no node matches the pods' node selector and tolerations";
        return Some((reason::ROLLING_OUT, msg.to_owned()));
    }
    if d.updated < d.desired || d.available < d.desired || d.replicas > d.desired {
        // Counts that change on every pod would be a status write each: the message shows
        // available pods, and updated ones only while an update is half done.
        let updated = if d.updated > 0 && d.updated < d.desired {
            format!(", {}/{} updated", d.updated, d.desired)
        } else {
            String::new()
        };
        let progress =
            format!("rollout in progress: {}/{} {} available{updated}", d.available, d.desired, unit(d.kind));
        return Some(match &obs.diagnosis {
            Some(diag) => (diag.reason, format!("{progress}; {}", diag.message)),
            None => (reason::ROLLING_OUT, progress),
        });
    }
    let pending = pending_claims(obs);
    (!pending.is_empty())
        .then(|| (reason::CLAIM_PENDING, format!("waiting for claim(s) {} to bind", pending.join(", "))))
}

/// Ready: every child applied, the workload rolled out and available.
fn ready(obs: &Observations) -> Vec<Cond> {
    let d = obs.workload.as_ref();
    let (avail, desired) = (d.map_or(0, |d| d.available), d.map_or(0, |d| d.desired));
    let msg = match d.map(|d| d.kind) {
        Some(WorkloadKind::DaemonSet) => format!(
            "an available pod on each of the {desired} Windows node(s) with {} that the DaemonSet schedules on",
            obs.nodes.wanted
        ),
        _ => format!("{avail}/{desired} replicas available on Windows nodes with {}", obs.nodes.wanted),
    };
    vec![
        Cond::new(c::READY, true, reason::AVAILABLE, msg),
        Cond::new(c::RECONCILING, false, reason::RECONCILED, "the cluster matches the spec"),
        Cond::new(c::STALLED, false, reason::RECONCILED, "the cluster matches the spec"),
    ]
}

/// What a workload's counts count.
fn unit(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "replicas",
        WorkloadKind::DaemonSet => "nodes",
    }
}
