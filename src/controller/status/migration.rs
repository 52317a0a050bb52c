//! Pure: what the status says of a move to another Windows Server build. While it goes, Ready
//! is False and Reconciling True with how many new pods are Ready and that the old build's pods
//! keep serving; when the new build's pods make no progress within the rollout's deadline (no
//! nodes of that build, an image that does not run there), Stalled with `BuildMigrationStalled`,
//! what keeps serving, and the two ways out.

use super::{Observations, WorkloadCheck};
use crate::api::WindowsVersion;
use crate::conditions::reason;

/// Ready pods (not terminating) of each side of a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BuildCounts {
    /// Of the build moved to.
    pub new_ready: usize,
    /// Of the build moved from.
    pub old_ready: usize,
}

/// A move of the app's pods from one Windows build to another, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationCheck {
    pub from: WindowsVersion,
    pub to: WindowsVersion,
    /// None when the pods could not be read.
    pub counts: Option<BuildCounts>,
}

impl MigrationCheck {
    fn release(v: WindowsVersion) -> String {
        format!("{} ({})", v.as_str(), v.build())
    }

    /// `1 of 2 new pods Ready; 2 ltsc2019 pods keep serving`
    fn progress(&self, desired: i32) -> String {
        match self.counts {
            Some(c) if c.old_ready == 0 => {
                format!("{} of {desired} new pod(s) Ready; no {} pod is Ready", c.new_ready, self.from.as_str())
            }
            Some(c) => format!(
                "{} of {desired} new pod(s) Ready; {} {} pod(s) keep serving until they are",
                c.new_ready,
                c.old_ready,
                self.from.as_str()
            ),
            None => format!("the {} pods keep serving until the new ones are Ready", self.from.as_str()),
        }
    }

    /// What keeps serving while the move is stalled.
    fn serving(&self) -> String {
        match self.counts {
            Some(c) if c.old_ready == 0 => {
                format!("no {} pod is Ready either (the app is down; look at its pods)", self.from.as_str())
            }
            Some(c) => format!("the {} {} pod(s) keep serving", c.old_ready, self.from.as_str()),
            None => format!("the {} pods keep serving", self.from.as_str()),
        }
    }
}

/// Stalled: the new build's pods made no progress within `spec.rollout.progressDeadlineSeconds`.
/// The reason is `BuildMigrationStalled`; the message says why (no Ready nodes of the build, or
/// what the new pods report), what keeps serving, and what to do.
pub(super) fn stalled(obs: &Observations) -> Option<(&'static str, String)> {
    let m = obs.migration.as_ref()?;
    // A deadline the Deployment reports for a spec it has not observed is the previous move's
    // (sent back while stalled), and new pods all Ready are no stall.
    let done = |d: &WorkloadCheck| m.counts.is_some_and(|c| c.new_ready >= usize::try_from(d.desired).unwrap_or(0));
    let d = obs.workload.as_ref().filter(|d| d.progress_deadline_exceeded && d.up_to_date && !done(d))?;
    let to = MigrationCheck::release(m.to);
    let why = if obs.nodes.ready_matching == 0 {
        format!(
            "no Ready Windows nodes of {to} that the pods may use appeared within spec.rollout.progressDeadlineSeconds"
        )
    } else {
        let new_ready = m.counts.map_or_else(|| "too few".to_owned(), |c| c.new_ready.to_string());
        let pods = match &obs.diagnosis {
            Some(diag) => format!(" ({}: {})", diag.reason, diag.message),
            None => "; look at their events (image pull, crash, probes)".to_owned(),
        };
        format!("{new_ready} of {} new pod(s) Ready within spec.rollout.progressDeadlineSeconds{pods}", d.desired)
    };
    let fix = if obs.nodes.ready_matching == 0 { "add nodes of that build" } else { "fix the new pods" };
    Some((
        reason::BUILD_MIGRATION_STALLED,
        format!(
            "migrating from {} to {} stalled: {why}; {}; {fix} or set spec.windows.version back to {}",
            m.from.as_str(),
            m.to.as_str(),
            m.serving(),
            m.from.as_str()
        ),
    ))
}

/// Reconciling: how far the move got, once the Deployment has observed the new template.
pub(super) fn progress(obs: &Observations) -> Option<(&'static str, String)> {
    let m = obs.migration.as_ref()?;
    let d = obs.workload.as_ref().filter(|d| d.up_to_date)?;
    let head = format!("migrating from {} to {}", m.from.as_str(), m.to.as_str());
    if obs.nodes.ready_matching == 0 {
        return Some((
            reason::WAITING_FOR_NODES,
            format!(
                "{head}: no Ready Windows node of {} that the pods may use yet (the new pods wait Pending, which makes a cluster autoscaler add one where it is set up); {}; Stalled if none is Ready within spec.rollout.progressDeadlineSeconds",
                MigrationCheck::release(m.to),
                m.progress(d.desired)
            ),
        ));
    }
    let progress = format!("{head}: {}", m.progress(d.desired));
    Some(match &obs.diagnosis {
        Some(diag) => (diag.reason, format!("{progress}; {}", diag.message)),
        None => (reason::ROLLING_OUT, progress),
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::super::{Diagnosis, NodeCheck, Outcome, WorkloadCheck, WorkloadKind, compute};
    use super::*;
    use crate::conditions::{self as c};

    fn observations(ready_nodes: usize, counts: Option<BuildCounts>, deadline: bool) -> Observations {
        Observations {
            nodes: NodeCheck {
                wanted: "ltsc2022 (10.0.20348)".into(),
                build: Some("10.0.20348".into()),
                ready_matching: ready_nodes,
                names: (0..ready_nodes).map(|i| format!("win2022-{i}")).collect(),
                tolerated_taints: vec![],
                untolerated: vec![],
                runtime_class_missing: None,
                unlabeled: vec![],
            },
            gmsa: None,
            claims: vec![],
            workload: Some(WorkloadCheck {
                kind: WorkloadKind::Deployment,
                up_to_date: true,
                desired: 2,
                updated: 1,
                available: 2,
                replicas: 3,
                progress_deadline_exceeded: deadline,
                ..WorkloadCheck::default()
            }),
            rewrites: vec![],
            diagnosis: None,
            missing_config_secrets: vec![],
            released_claims: vec![],
            adopted_claims: vec![],
            turn: None,
            advice: vec![],
            budget: None,
            warm_up: None,
            migration: Some(MigrationCheck { from: WindowsVersion::Ltsc2019, to: WindowsVersion::Ltsc2022, counts }),
        }
    }

    /// (type, status, reason, message) of Ready and Stalled.
    fn ready_and_stalled(obs: Observations) -> Vec<(String, String, String, String)> {
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let status = compute(Some(2), None, &Outcome::Applied(obs), None, &now);
        [c::READY, c::STALLED]
            .iter()
            .filter_map(|t| c::find(&status.conditions, t))
            .map(|x| (x.type_.clone(), x.status.clone(), x.reason.clone(), x.message.clone()))
            .collect()
    }

    #[test]
    fn a_move_in_progress_says_how_many_new_pods_are_ready_and_what_keeps_serving() {
        let got = ready_and_stalled(observations(2, Some(BuildCounts { new_ready: 1, old_ready: 2 }), false));
        assert_eq!((got[0].1.as_str(), got[0].2.as_str()), ("False", "RollingOut"));
        assert_eq!(
            got[0].3,
            "migrating from ltsc2019 to ltsc2022: 1 of 2 new pod(s) Ready; 2 ltsc2019 pod(s) keep serving until they are"
        );
        assert_eq!(got[1].1, "False", "not Stalled while it progresses");
        let none = ready_and_stalled(observations(2, Some(BuildCounts { new_ready: 1, old_ready: 0 }), false));
        assert_eq!(none[0].3, "migrating from ltsc2019 to ltsc2022: 1 of 2 new pod(s) Ready; no ltsc2019 pod is Ready");
    }

    #[test]
    fn no_nodes_of_the_new_build_waits_then_stalls_with_the_old_pods_serving() {
        let counts = Some(BuildCounts { new_ready: 0, old_ready: 2 });
        let waiting = ready_and_stalled(observations(0, counts, false));
        assert_eq!((waiting[0].2.as_str(), waiting[1].1.as_str()), ("WaitingForNodes", "False"));
        assert!(waiting[0].3.contains("no Ready Windows node of ltsc2022 (10.0.20348)"), "{}", waiting[0].3);
        assert!(waiting[0].3.contains("2 ltsc2019 pod(s) keep serving"), "{}", waiting[0].3);

        let stalled = ready_and_stalled(observations(0, counts, true));
        assert_eq!((stalled[1].1.as_str(), stalled[1].2.as_str()), ("True", "BuildMigrationStalled"));
        assert_eq!(
            stalled[1].3,
            "migrating from ltsc2019 to ltsc2022 stalled: no Ready Windows nodes of ltsc2022 (10.0.20348) that the pods may use appeared within spec.rollout.progressDeadlineSeconds; the 2 ltsc2019 pod(s) keep serving; add nodes of that build or set spec.windows.version back to ltsc2019"
        );
        assert_eq!(stalled[0].2, "BuildMigrationStalled", "Ready says the same");
    }

    #[test]
    fn new_pods_that_fail_stall_the_move_with_what_they_report() {
        let mut obs = observations(2, Some(BuildCounts { new_ready: 0, old_ready: 2 }), true);
        obs.diagnosis = Some(Diagnosis {
            reason: reason::IMAGE_OS_MISMATCH,
            message: "pod web-1: image web:2 does not match node win2022-1".into(),
        });
        let got = ready_and_stalled(obs);
        assert_eq!((got[1].1.as_str(), got[1].2.as_str()), ("True", "BuildMigrationStalled"));
        assert!(
            got[1].3.starts_with("migrating from ltsc2019 to ltsc2022 stalled: 0 of 2 new pod(s) Ready within spec.rollout.progressDeadlineSeconds (ImageOSMismatch: pod web-1: image web:2 does not match node win2022-1); the 2 ltsc2019 pod(s) keep serving; fix the new pods or set spec.windows.version back to ltsc2019"),
            "{}",
            got[1].3
        );
        // Only one blocker: not also ProgressDeadlineExceeded or the diagnosis on its own.
        assert!(!got[1].3.contains("; the rollout made no progress"), "{}", got[1].3);
    }

    #[test]
    fn a_deadline_of_a_spec_not_yet_observed_or_new_pods_all_ready_is_no_stall() {
        // Sent back while stalled: the Deployment still reports the previous move's deadline.
        let mut obs = observations(2, Some(BuildCounts { new_ready: 2, old_ready: 0 }), true);
        obs.workload.as_mut().expect("workload").up_to_date = false;
        assert_eq!(ready_and_stalled(obs)[1].1, "False");
        let obs = observations(2, Some(BuildCounts { new_ready: 2, old_ready: 0 }), true);
        assert_eq!(ready_and_stalled(obs)[1].1, "False");
    }

    #[test]
    fn old_pods_not_ready_are_not_said_to_serve() {
        let got = ready_and_stalled(observations(0, Some(BuildCounts { new_ready: 0, old_ready: 0 }), true));
        assert!(got[1].3.contains("no ltsc2019 pod is Ready either"), "{}", got[1].3);
        let unknown = ready_and_stalled(observations(0, None, true));
        assert!(unknown[1].3.contains("the ltsc2019 pods keep serving"), "{}", unknown[1].3);
    }
}
