//! When to look at an app again, if no watch triggers it first: pure functions of what the
//! reconcile saw. The watches report every change the status shows; the requeues are for what
//! they cannot (a safety net, a rollout due a diagnosis, a Stalled app's rare looks, backoff).

use std::time::Duration;

/// Longest wait between two looks at a rollout in progress (see [`wait_interval`]).
pub const RESYNC: Duration = Duration::from_secs(300);
/// Requeue interval of an app that waits only for what its watches report: a Ready app, or a
/// workload its controller has not observed yet. A safety net against a missed event, not a
/// poll: at 5 minutes, every app of a run longer than that was looked at again once per 5
/// minutes for nothing (at 3,000 apps 1.5 reconciles per app beyond the watch triggers).
pub const SAFETY_NET: Duration = Duration::from_secs(1800);
/// Requeue interval while waiting for what no watch reports.
pub const WAIT: Duration = Duration::from_secs(10);

/// Pure: when to look again at a rollout that is in progress, `idle` since it last progressed.
/// Its progress triggers a reconcile by itself (the workload is watched); the requeue is for
/// what no watch reports: the moment the pods are due a diagnosis, and then ever more rarely
/// (as long again as the rollout has been idle), and for a DaemonSet the operator's deadline.
pub fn wait_interval(idle: Duration, diagnose_after: Duration, deadline: Option<Duration>) -> Duration {
    let mut next = if idle < diagnose_after { diagnose_after - idle } else { idle };
    if let Some(d) = deadline.filter(|d| idle < *d) {
        next = next.min(d - idle);
    }
    next.clamp(MIN_WAIT, RESYNC)
}

/// Where a rollout stands, for [`next_look`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    /// The workload's controller has observed the generation applied.
    pub observed: bool,
    /// How long the rollout has made no progress.
    pub idle: Duration,
    /// The operator's own deadline (node agents).
    pub deadline: Option<Duration>,
}

/// What [`next_look`] decides from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Looked {
    /// The status says Ready.
    pub ready: bool,
    /// The status says Stalled.
    pub stalled: bool,
    /// A new app whose first status waits for its workload to be observed.
    pub status_deferred: bool,
    /// A workload controller changed a workload of the operator within `diagnose_after`.
    pub controllers_active: bool,
    /// The workload's rollout, when it is cached.
    pub rollout: Option<Rollout>,
}

/// Pure: when to reconcile an app again if no watch triggers it first. The watches report every
/// change the status shows; this is for what they cannot:
/// - Ready: a safety net, [`SAFETY_NET`];
/// - Stalled, or no workload to watch: [`WAIT`] (a missing Secret has no watch);
/// - a new app whose first status waits for its workload to be observed: while the workload
///   controllers are at work (`controllers_active`: one changed a workload of the operator
///   within `diagnose_after`), the watch brings that observation, and [`SAFETY_NET`] is the
///   safety net; when none has been seen at work, `diagnose_after`, so that the app has a status by
///   then even if no controller acts. (A timer of `diagnose_after` for every new app cost a
///   reconcile per app while kube-controller-manager's queue was longer than that.)
/// - a rollout the controller has observed: when its pods are due a diagnosis (see
///   [`wait_interval`]);
/// - a generation the controller has not observed yet: nothing to diagnose before it does, and
///   its observation comes through the watch; only a node agent's deadline, else [`SAFETY_NET`].
///   (Looking every `diagnose_after` instead cost a reconcile per app and half-minute while the
///   controllers' queue was long.)
pub fn next_look(l: &Looked, diagnose_after: Duration) -> Duration {
    let Looked { ready, stalled, status_deferred, controllers_active, rollout } = *l;
    match rollout {
        _ if ready => SAFETY_NET,
        _ if stalled => WAIT,
        // The workload just written is often not in the cache yet (None).
        _ if status_deferred && controllers_active && !rollout.is_some_and(|r| r.observed) => rollout
            .and_then(|r| r.deadline.filter(|d| r.idle < *d).map(|d| (d - r.idle).clamp(MIN_WAIT, RESYNC)))
            .unwrap_or(SAFETY_NET),
        _ if status_deferred => diagnose_after.clamp(MIN_WAIT, RESYNC),
        Some(r) if r.observed => wait_interval(r.idle, diagnose_after, r.deadline),
        Some(r) => r.deadline.filter(|d| r.idle < *d).map_or(SAFETY_NET, |d| (d - r.idle).clamp(MIN_WAIT, RESYNC)),
        None => WAIT,
    }
}

/// Longest wait of a Stalled app between two looks when nothing it waits for changes.
pub const MAX_STALLED_WAIT: Duration = Duration::from_secs(300);

/// Pure: how long a Stalled app waits before it is looked at again, its `looks`-th look in a
/// row that finds it Stalled at the same generation: [`WAIT`], doubling each look, at most
/// [`MAX_STALLED_WAIT`]. The watches wake it at once when what it waits for changes (its spec,
/// a Secret it references, a credspec, nodes, its Namespace's grants); the looks are for what no
/// watch reports (an object in the way, a quota), and cost nothing but a reconcile from the
/// caches. (Looked at every 10 s, a few hundred Stalled apps kept the queue busy.)
pub fn stalled_wait(looks: u32) -> Duration {
    let doublings = looks.clamp(1, 16) - 1;
    WAIT.saturating_mul(1 << doublings).min(MAX_STALLED_WAIT)
}

/// Shortest requeue of a rollout in progress.
const MIN_WAIT: Duration = Duration::from_secs(2);

/// Pure: the delay before retrying after the `n`th consecutive failure: 5 s doubling, at most
/// [`RESYNC`].
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << n.clamp(1, 7).saturating_sub(1))).min(RESYNC)
}
