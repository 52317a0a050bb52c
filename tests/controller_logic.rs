//! The controller's pure logic, without a cluster: the status computed from observations and
//! outcomes (one case per condition and reason), condition bookkeeping, and the retry backoff.
//! The drift check, quantities and lease expiry have unit tests next to their code.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use winapp_operator::api::WindowsAppStatus;
use winapp_operator::conditions::{self as c, Cond};
use winapp_operator::controller::backoff;
use winapp_operator::controller::pace::Turn;
use winapp_operator::controller::status::{
    ClaimCheck, GmsaCheck, NodeCheck, Observations, Outcome, WorkloadCheck, WorkloadKind, compute, same_ignoring_time,
};

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).expect("timestamp"))
}

fn healthy() -> Observations {
    Observations {
        nodes: NodeCheck {
            wanted: "ltsc2022 (10.0.20348)".into(),
            build: Some("10.0.20348".into()),
            ready_matching: 2,
            names: vec!["win-1".into(), "win-2".into()],
            tolerated_taints: vec!["os=windows:NoSchedule".into()],
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
            updated: 2,
            available: 2,
            replicas: 2,
            progress_deadline_exceeded: false,
            ..WorkloadCheck::default()
        }),
        rewrites: vec![],
        diagnosis: None,
        advice: Vec::new(),
        missing_config_secrets: vec![],
        released_claims: vec![],
        adopted_claims: vec![],
        turn: None,
        budget: None,
        migration: None,
        warm_up: None,
    }
}

/// (Ready, Reconciling, Stalled) as (status, reason) each.
fn summary(s: &WindowsAppStatus) -> [(String, String); 3] {
    [c::READY, c::RECONCILING, c::STALLED].map(|t| {
        let x = c::find(&s.conditions, t).unwrap_or_else(|| panic!("{t} is always present"));
        (x.status.clone(), x.reason.clone())
    })
}

fn domain(s: &WindowsAppStatus, t: &str) -> Option<(String, String)> {
    c::find(&s.conditions, t).map(|x| (x.status.clone(), x.reason.clone()))
}

fn run(outcome: &Outcome) -> WindowsAppStatus {
    compute(Some(3), Some("10.0.20348".into()), outcome, None, &at(1000))
}

fn p(status: &str, reason: &str) -> (String, String) {
    (status.to_owned(), reason.to_owned())
}

#[test]
fn every_observation_maps_to_its_condition_and_reason() {
    type Edit = fn(&mut Observations);
    type Pair = (&'static str, &'static str);
    type Case = (&'static str, Edit, [Pair; 3], Option<(&'static str, Pair)>);
    let cases: Vec<Case> = vec![
        ("all good", |_| {}, [("True", "Available"), ("False", "Reconciled"), ("False", "Reconciled")], None),
        (
            // A pool that scales from zero: progress until the rollout's deadline.
            "no matching nodes yet",
            |o| {
                o.nodes.ready_matching = 0;
                if let Some(d) = o.workload.as_mut() {
                    d.available = 0;
                }
            },
            [("False", "WaitingForNodes"), ("True", "WaitingForNodes"), ("False", "Progressing")],
            Some((c::WINDOWS_NODES, ("False", "NoMatchingWindowsNodes"))),
        ),
        (
            "no matching nodes past the deadline",
            |o| {
                o.nodes.ready_matching = 0;
                if let Some(d) = o.workload.as_mut() {
                    d.available = 0;
                    d.progress_deadline_exceeded = true;
                }
            },
            [
                ("False", "NoMatchingWindowsNodes"),
                ("False", "NoMatchingWindowsNodes"),
                ("True", "NoMatchingWindowsNodes"),
            ],
            Some((c::WINDOWS_NODES, ("False", "NoMatchingWindowsNodes"))),
        ),
        (
            // Nodes of the build without its label (a pool scaled from zero): progress, then Stalled.
            "nodes of the build without the build label",
            |o| {
                o.nodes.ready_matching = 0;
                o.nodes.unlabeled = vec!["akswin000003 (kernel 10.0.20348.2227)".into()];
                if let Some(d) = o.workload.as_mut() {
                    d.available = 0;
                }
            },
            [("False", "WindowsBuildLabelMissing"), ("True", "WindowsBuildLabelMissing"), ("False", "Progressing")],
            Some((c::WINDOWS_NODES, ("False", "WindowsBuildLabelMissing"))),
        ),
        (
            "nodes of the build without the build label past the deadline",
            |o| {
                o.nodes.ready_matching = 0;
                o.nodes.unlabeled = vec!["akswin000003".into()];
                if let Some(d) = o.workload.as_mut() {
                    d.available = 0;
                    d.progress_deadline_exceeded = true;
                }
            },
            [
                ("False", "WindowsBuildLabelMissing"),
                ("False", "WindowsBuildLabelMissing"),
                ("True", "WindowsBuildLabelMissing"),
            ],
            Some((c::WINDOWS_NODES, ("False", "WindowsBuildLabelMissing"))),
        ),
        (
            "runtime class missing",
            |o| o.nodes.runtime_class_missing = Some("windows-2022".into()),
            [("False", "RuntimeClassMissing"), ("False", "RuntimeClassMissing"), ("True", "RuntimeClassMissing")],
            Some((c::WINDOWS_NODES, ("False", "RuntimeClassMissing"))),
        ),
        (
            // Nodes cordoned for maintenance while the pods keep running: still Ready.
            "no schedulable nodes, pods available",
            |o| o.nodes.ready_matching = 0,
            [("True", "Available"), ("False", "Reconciled"), ("False", "Reconciled")],
            Some((c::WINDOWS_NODES, ("False", "NoMatchingWindowsNodes"))),
        ),
        (
            "credspec missing",
            |o| o.gmsa = Some(GmsaCheck::CredSpecMissing { credspec: "x".into() }),
            [("False", "CredentialSpecMissing"), ("False", "CredentialSpecMissing"), ("True", "CredentialSpecMissing")],
            Some((c::GMSA_READY, ("False", "CredentialSpecMissing"))),
        ),
        (
            "credspec CRD missing",
            |o| o.gmsa = Some(GmsaCheck::CrdMissing),
            [
                ("False", "CredentialSpecCRDMissing"),
                ("False", "CredentialSpecCRDMissing"),
                ("True", "CredentialSpecCRDMissing"),
            ],
            Some((c::GMSA_READY, ("False", "CredentialSpecCRDMissing"))),
        ),
        (
            // Not allowed by the platform team: the workload is withheld (gone from the cache).
            "credspec not allowed",
            |o| {
                o.gmsa =
                    Some(GmsaCheck::NotAllowed { message: "GMSACredentialSpec x does not allow namespace y".into() });
                o.workload = None;
            },
            [
                ("False", "CredentialSpecNotAllowed"),
                ("False", "CredentialSpecNotAllowed"),
                ("True", "CredentialSpecNotAllowed"),
            ],
            Some((c::GMSA_READY, ("False", "CredentialSpecNotAllowed"))),
        ),
        (
            // Withdrawn while the old pods still run: stalled all the same.
            "credspec not allowed, workload still cached",
            |o| o.gmsa = Some(GmsaCheck::NotAllowed { message: "not allowed".into() }),
            [
                ("False", "CredentialSpecNotAllowed"),
                ("False", "CredentialSpecNotAllowed"),
                ("True", "CredentialSpecNotAllowed"),
            ],
            Some((c::GMSA_READY, ("False", "CredentialSpecNotAllowed"))),
        ),
        (
            "credspec found",
            |o| o.gmsa = Some(GmsaCheck::Ready { credspec: "x".into(), warning: None }),
            [("True", "Available"), ("False", "Reconciled"), ("False", "Reconciled")],
            Some((c::GMSA_READY, ("True", "CredentialSpecFound"))),
        ),
        (
            "secret missing",
            |o| o.claims = vec![ClaimCheck { claim: "a.b".into(), bound: false, missing_secret: Some("s".into()) }],
            [("False", "SecretMissing"), ("False", "SecretMissing"), ("True", "SecretMissing")],
            Some((c::STORAGE_READY, ("False", "SecretMissing"))),
        ),
        (
            "claim pending",
            |o| o.claims = vec![ClaimCheck { claim: "a.b".into(), bound: false, missing_secret: None }],
            [("False", "ClaimPending"), ("True", "ClaimPending"), ("False", "Progressing")],
            Some((c::STORAGE_READY, ("False", "ClaimPending"))),
        ),
        (
            "claims bound",
            |o| o.claims = vec![ClaimCheck { claim: "a.b".into(), bound: true, missing_secret: None }],
            [("True", "Available"), ("False", "Reconciled"), ("False", "Reconciled")],
            Some((c::STORAGE_READY, ("True", "ClaimsBound"))),
        ),
        (
            "deployment not seen yet",
            |o| o.workload = None,
            [("False", "NewGeneration"), ("True", "NewGeneration"), ("False", "Progressing")],
            None,
        ),
        (
            "deployment spec not observed",
            |o| o.workload.as_mut().expect("d").up_to_date = false,
            [("False", "NewGeneration"), ("True", "NewGeneration"), ("False", "Progressing")],
            None,
        ),
        (
            "rolling out",
            |o| o.workload.as_mut().expect("d").available = 1,
            [("False", "RollingOut"), ("True", "RollingOut"), ("False", "Progressing")],
            None,
        ),
        (
            "old pods still there",
            |o| o.workload.as_mut().expect("d").replicas = 3,
            [("False", "RollingOut"), ("True", "RollingOut"), ("False", "Progressing")],
            None,
        ),
        (
            "progress deadline",
            |o| {
                let d = o.workload.as_mut().expect("d");
                d.progress_deadline_exceeded = true;
                d.available = 0;
            },
            [
                ("False", "ProgressDeadlineExceeded"),
                ("False", "ProgressDeadlineExceeded"),
                ("True", "ProgressDeadlineExceeded"),
            ],
            None,
        ),
        (
            "rewritten by admission, still Ready",
            |o| o.rewrites = vec!["Deployment web: .spec.template.spec.containers[0].image".into()],
            [("True", "Available"), ("False", "Reconciled"), ("False", "Reconciled")],
            Some((c::SPEC_APPLIED, ("False", "RewrittenByAdmission"))),
        ),
    ];
    for (name, edit, want, dom) in cases {
        let mut obs = healthy();
        edit(&mut obs);
        let s = run(&Outcome::Applied(obs));
        assert_eq!(summary(&s), want.map(|(a, b)| p(a, b)), "{name}");
        if let Some((t, (st, r))) = dom {
            assert_eq!(domain(&s, t), Some(p(st, r)), "{name}: {t}");
        }
        assert_eq!(s.observed_generation, Some(3), "{name}");
        assert!(s.conditions.iter().all(|x| x.observed_generation == Some(3)), "{name}");
        assert_eq!(domain(&s, c::SPEC_APPLIED).is_some(), name.starts_with("rewritten"), "{name}");
    }
}

#[test]
fn a_gmsa_not_allowed_says_which_annotation_to_set_and_what_is_withheld() {
    let mut obs = healthy();
    obs.workload = None;
    let why = "GMSACredentialSpec reports-gmsa does not allow namespace team-a: the platform team must add team-a to the annotation winapp.dev/allowed-namespaces on the GMSACredentialSpec reports-gmsa";
    obs.gmsa = Some(GmsaCheck::NotAllowed { message: why.into() });
    let s = run(&Outcome::Applied(obs));
    for t in [c::GMSA_READY, c::STALLED, c::READY] {
        let msg = &c::find(&s.conditions, t).expect("condition").message;
        assert!(msg.starts_with(why), "{t}: {msg}");
        assert!(msg.contains("no gMSA RBAC, no credspec and no workload"), "{t} says what is withheld: {msg}");
    }
}

#[test]
fn the_first_blocker_names_the_reason_and_every_blocker_is_in_the_message() {
    let mut obs = healthy();
    obs.nodes.ready_matching = 0;
    obs.nodes.untolerated = vec!["dedicated=gpu:NoSchedule (win-3)".into()];
    if let Some(d) = obs.workload.as_mut() {
        d.available = 0;
        d.progress_deadline_exceeded = true;
    }
    obs.gmsa = Some(GmsaCheck::CredSpecMissing { credspec: "reports".into() });
    let s = run(&Outcome::Applied(obs));
    let stalled = c::find(&s.conditions, c::STALLED).expect("Stalled");
    assert_eq!(stalled.reason, "NoMatchingWindowsNodes");
    assert!(stalled.message.contains("node.kubernetes.io/windows-build=10.0.20348"), "{}", stalled.message);
    assert!(stalled.message.contains("GMSACredentialSpec reports does not exist"), "{}", stalled.message);
    assert!(
        stalled.message.contains("dedicated=gpu:NoSchedule (win-3)"),
        "names the untolerated taint: {}",
        stalled.message
    );
    let nodes =
        c::find(&run(&Outcome::Applied(healthy())).conditions, c::WINDOWS_NODES).expect("nodes").message.clone();
    assert!(nodes.contains("(win-1, win-2); tolerating os=windows:NoSchedule"), "{nodes}");
}

#[test]
fn nodes_without_the_build_label_are_named_with_the_command_that_labels_them() {
    let mut obs = healthy();
    obs.nodes.ready_matching = 0;
    obs.nodes.unlabeled = vec!["akswin000003 (kernel 10.0.20348.2227)".into(), "akswin000004".into()];
    if let Some(d) = obs.workload.as_mut() {
        d.available = 0;
    }
    let s = run(&Outcome::Applied(obs));
    let ready = &c::find(&s.conditions, c::READY).expect("Ready").message;
    for words in [
        "akswin000003 (kernel 10.0.20348.2227), akswin000004 run that build without the label",
        "kubectl label node akswin000003 akswin000004 node.kubernetes.io/windows-build=10.0.20348",
        "cluster autoscaler's node template",
        "the pods wait Pending",
    ] {
        assert!(ready.contains(words), "{words:?} in {ready}");
    }
}

#[test]
fn outcomes_other_than_applied_map_to_their_reasons() {
    let cases = [
        (
            Outcome::Invalid("spec.x: bad".into()),
            [("False", "InvalidSpec"), ("False", "InvalidSpec"), ("True", "InvalidSpec")],
        ),
        (
            Outcome::NotAllowed { reason: "OverrideNotAllowed", message: "spec.podTemplate.spec.hostPID: ...".into() },
            [("False", "OverrideNotAllowed"), ("False", "OverrideNotAllowed"), ("True", "OverrideNotAllowed")],
        ),
        (
            Outcome::NotAllowed { reason: "NotAllowed", message: "spec.hostProcess: ...".into() },
            [("False", "NotAllowed"), ("False", "NotAllowed"), ("True", "NotAllowed")],
        ),
        (
            Outcome::Conflict("Service web exists".into()),
            [("False", "ChildConflict"), ("False", "ChildConflict"), ("True", "ChildConflict")],
        ),
        (
            Outcome::Failed {
                reason: "ApplyFailed",
                message: "PersistentVolumeClaim a.b: spec: Forbidden".into(),
                permanent: true,
            },
            [("False", "ApplyFailed"), ("False", "ApplyFailed"), ("True", "ApplyFailed")],
        ),
        (
            Outcome::Failed { reason: "ApplyFailed", message: "timed out".into(), permanent: false },
            [("False", "ApplyFailed"), ("True", "ApplyFailed"), ("False", "ApplyFailed")],
        ),
        (Outcome::Suspended, [("False", "Suspended"), ("False", "Suspended"), ("False", "Suspended")]),
    ];
    for (outcome, want) in cases {
        let s = run(&outcome);
        assert_eq!(summary(&s), want.map(|(a, b)| p(a, b)), "{outcome:?}");
    }
    let failed = run(&Outcome::Failed { reason: "ApplyFailed", message: "spec: Forbidden".into(), permanent: true });
    assert!(c::find(&failed.conditions, c::STALLED).is_some_and(|x| x.message.contains("Forbidden")));
}

#[test]
fn resource_advice_is_a_condition_of_its_own_and_leaves_ready_alone() {
    let advice = winapp_operator::advice::of(None);
    assert_eq!(advice.len(), 1, "no memory limit: {advice:?}");
    let mut obs = healthy();
    obs.advice = advice;
    let s = run(&Outcome::Applied(obs));
    assert_eq!(summary(&s), summary(&run(&Outcome::Applied(healthy()))), "Ready, Reconciling, Stalled unchanged");
    let advised = c::find(&s.conditions, c::RESOURCES_ADVISED).expect("ResourcesAdvised");
    assert_eq!((advised.status.as_str(), advised.reason.as_str()), ("True", "NoMemoryLimit"));
    assert!(advised.message.contains("set limits.memory"), "says what to set: {}", advised.message);
    let plain = run(&Outcome::Applied(healthy()));
    assert!(c::find(&plain.conditions, c::RESOURCES_ADVISED).is_none(), "no advice, no condition");
}

#[test]
fn a_paced_change_of_the_operators_leaves_ready_and_reconciling_alone_and_says_so_apart() {
    let mut waiting = healthy();
    waiting.turn = Some(Turn::Waiting { rolling: 10, limit: 10 });
    let s = run(&Outcome::Applied(waiting));
    // GitOps tools read Ready/Reconciling: the app's own spec is in force, so they are not held up.
    assert_eq!(summary(&s), [p("True", "Available"), p("False", "Reconciled"), p("False", "Reconciled")]);
    assert_eq!(domain(&s, c::POD_TEMPLATE_CURRENT), Some(p("False", "WaitingForRolloutTurn")));
    let msg = &c::find(&s.conditions, c::POD_TEMPLATE_CURRENT).expect("condition").message;
    assert!(msg.contains("--max-operator-rollouts") && msg.contains("at most 10"), "{msg}");

    let mut rolling = healthy();
    rolling.turn = Some(Turn::Rolling);
    assert_eq!(domain(&run(&Outcome::Applied(rolling)), c::POD_TEMPLATE_CURRENT), Some(p("False", "RollingOut")));
    assert_eq!(domain(&run(&Outcome::Applied(healthy())), c::POD_TEMPLATE_CURRENT), None, "absent otherwise");
}

#[test]
fn suspend_and_failures_keep_the_last_known_replicas_and_readiness() {
    let ready = run(&Outcome::Applied(healthy()));
    let suspended = compute(Some(4), None, &Outcome::Suspended, Some(&ready), &at(2000));
    assert_eq!(c::find(&suspended.conditions, c::READY).map(|x| x.status.as_str()), Some("True"));
    assert_eq!((suspended.replicas, suspended.available_replicas), (Some(2), Some(2)));
    let failed = compute(
        Some(4),
        None,
        &Outcome::Failed { reason: "DeleteFailed", message: "x".into(), permanent: false },
        Some(&ready),
        &at(2000),
    );
    assert_eq!((failed.replicas, failed.available_replicas), (Some(2), Some(2)));
}

#[test]
fn transition_times_move_only_when_a_status_flips() {
    let first = run(&Outcome::Applied(healthy()));
    let mut rolling = healthy();
    rolling.workload.as_mut().expect("d").available = 1;
    let second = compute(Some(3), None, &Outcome::Applied(rolling), Some(&first), &at(2000));
    let time = |s: &WindowsAppStatus, t: &str| c::find(&s.conditions, t).map(|x| x.last_transition_time.clone());
    assert_eq!(time(&second, c::READY), Some(at(2000)), "Ready flipped");
    assert_eq!(time(&second, c::STALLED), Some(at(1000)), "Stalled stayed False");
    assert_eq!(time(&second, c::WINDOWS_NODES), Some(at(1000)), "unchanged domain condition");
}

#[test]
fn merge_keeps_times_of_unchanged_statuses_and_stamps_the_generation() {
    let previous = vec![Condition {
        type_: "Ready".into(),
        status: "False".into(),
        reason: "RollingOut".into(),
        message: "m".into(),
        observed_generation: Some(1),
        last_transition_time: at(10),
    }];
    let same = c::merge(&previous, vec![Cond::new(c::READY, false, "NewGeneration", "other")], Some(2), &at(20));
    assert_eq!(same[0].last_transition_time, at(10));
    assert_eq!((same[0].reason.as_str(), same[0].observed_generation), ("NewGeneration", Some(2)));
    let flipped = c::merge(&previous, vec![Cond::new(c::READY, true, "Available", "ok")], Some(2), &at(20));
    assert_eq!(flipped[0].last_transition_time, at(20));
    let new = c::merge(&previous, vec![Cond::new(c::STALLED, false, "Reconciled", "ok")], Some(2), &at(20));
    assert_eq!(new[0].last_transition_time, at(20));
}

#[test]
fn equal_ignoring_time_means_no_status_write() {
    let a = run(&Outcome::Applied(healthy()));
    let later = compute(Some(3), Some("10.0.20348".into()), &Outcome::Applied(healthy()), None, &at(5000));
    assert!(same_ignoring_time(&a, &later), "only timestamps differ");
    let mut other = healthy();
    other.workload.as_mut().expect("d").available = 1;
    let changed = compute(Some(3), Some("10.0.20348".into()), &Outcome::Applied(other), Some(&a), &at(5000));
    assert!(!same_ignoring_time(&a, &changed));
    let next_generation =
        compute(Some(4), Some("10.0.20348".into()), &Outcome::Applied(healthy()), Some(&a), &at(5000));
    assert!(!same_ignoring_time(&a, &next_generation), "a new generation is written");
}

#[test]
fn backoff_doubles_from_five_seconds_up_to_five_minutes() {
    let secs: Vec<u64> = (0..10).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(secs, vec![5, 5, 10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
}

#[test]
fn long_failure_messages_are_cut_at_a_character_boundary() {
    let message = "é".repeat(3000);
    let s = run(&Outcome::Failed { reason: "ApplyFailed", message, permanent: true });
    let stalled = c::find(&s.conditions, c::STALLED).expect("Stalled");
    assert!(stalled.message.len() < winapp_operator::controller::status::MAX_FAILURE_MESSAGE + 100);
    assert!(stalled.message.ends_with("(the operator's log has the whole message)"), "{}", stalled.message);
    let short = run(&Outcome::Failed { reason: "ApplyFailed", message: "spec: Forbidden".into(), permanent: true });
    assert_eq!(c::find(&short.conditions, c::STALLED).map(|x| x.message.as_str()), Some("spec: Forbidden"));
}

mod diagnosis {
    use std::time::Duration;

    use super::{healthy, run, summary};
    use winapp_operator::controller::diagnose::{
        ContainerFacts, Diagnosis, EventFacts, PodFacts, SLOW_PULL, WorkloadFacts, diagnose,
    };
    use winapp_operator::controller::status::Outcome;

    fn container(waiting: Option<(&str, &str)>) -> ContainerFacts {
        ContainerFacts {
            name: "app".into(),
            image: "registry.example.com/web:1-ltsc2019".into(),
            waiting: waiting.map(|(r, m)| (r.into(), m.into())),
            ..ContainerFacts::default()
        }
    }

    fn pod(name: &str, containers: Vec<ContainerFacts>, events: Vec<EventFacts>) -> PodFacts {
        PodFacts {
            name: name.into(),
            node: Some("win-1".into()),
            node_build: Some("10.0.20348".into()),
            containers,
            events,
            ..PodFacts::default()
        }
    }

    fn event(reason: &str, message: &str, age_s: u64) -> EventFacts {
        EventFacts { reason: reason.into(), message: message.into(), age: Duration::from_secs(age_s) }
    }

    fn facts(pods: Vec<PodFacts>) -> WorkloadFacts {
        WorkloadFacts { replica_failure: None, not_ready: pods.len(), pods }
    }

    fn reason_of(f: &WorkloadFacts) -> Option<&'static str> {
        diagnose(f, "shop").map(|d| d.reason)
    }

    #[test]
    fn each_failure_has_its_reason() {
        let cases: Vec<(WorkloadFacts, Option<&str>)> = vec![
            (facts(vec![pod("a", vec![container(None)], vec![])]), None),
            (
                facts(vec![pod("a", vec![container(Some(("ImagePullBackOff", "not found")))], vec![])]),
                Some("ImagePullFailed"),
            ),
            (
                facts(vec![pod(
                    "a",
                    vec![container(Some((
                        "CreateContainerError",
                        "The container operating system does not match the host operating system.",
                    )))],
                    vec![],
                )]),
                Some("ImageOSMismatch"),
            ),
            (
                facts(vec![pod("a", vec![container(Some(("CrashLoopBackOff", "back-off")))], vec![])]),
                Some("CrashLoopBackOff"),
            ),
            (
                facts(vec![pod(
                    "a",
                    vec![container(Some(("CreateContainerConfigError", "secret \"db\" not found")))],
                    vec![],
                )]),
                Some("ContainerConfigError"),
            ),
            (
                facts(vec![pod(
                    "a",
                    vec![container(Some(("ContainerCreating", "")))],
                    vec![event("FailedMount", "MountVolume.SetUp failed", 5)],
                )]),
                Some("MountFailed"),
            ),
            (
                facts(vec![pod(
                    "a",
                    vec![container(Some(("ContainerCreating", "")))],
                    vec![event("Pulling", "Pulling image \"x\"", 5)],
                )]),
                Some("PullingImage"),
            ),
            (
                // Pulled after Pulling: not pulling any more.
                facts(vec![pod(
                    "a",
                    vec![container(Some(("ContainerCreating", "")))],
                    vec![event("Pulling", "Pulling image \"x\"", 50), event("Pulled", "Successfully pulled", 5)],
                )]),
                None,
            ),
            (
                facts(vec![pod(
                    "a",
                    vec![ContainerFacts { running: true, ..container(None) }],
                    vec![event("Unhealthy", "Readiness probe failed: 500", 3)],
                )]),
                Some("ProbeFailing"),
            ),
            (
                facts(vec![PodFacts {
                    unschedulable: Some("0/3 nodes are available: 3 Insufficient cpu.".into()),
                    ..pod("a", vec![], vec![])
                }]),
                Some("Unschedulable"),
            ),
            (
                WorkloadFacts {
                    replica_failure: Some("pods \"x\" is forbidden: exceeded quota: q".into()),
                    ..WorkloadFacts::default()
                },
                Some("QuotaExceeded"),
            ),
            (
                WorkloadFacts {
                    replica_failure: Some(
                        "admission webhook denied: service account 'a' is not authorized to 'use' gMSA cred spec 'b'"
                            .into(),
                    ),
                    ..WorkloadFacts::default()
                },
                Some("GMSAWebhookRefused"),
            ),
            (
                WorkloadFacts { replica_failure: Some("denied by policy".into()), ..WorkloadFacts::default() },
                Some("PodsRefused"),
            ),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            assert_eq!(reason_of(f), *want, "case {i}: {f:?}");
        }
    }

    #[test]
    fn the_worst_problem_wins_and_the_count_is_told() {
        let crash = pod("a", vec![container(Some(("CrashLoopBackOff", "")))], vec![]);
        let pull = pod("b", vec![container(Some(("ErrImagePull", "unauthorized")))], vec![]);
        let mut f = facts(vec![crash, pull.clone(), pull]);
        f.not_ready = 5;
        let d = diagnose(&f, "shop").expect("a diagnosis");
        assert_eq!(d.reason, "ImagePullFailed");
        assert!(d.message.contains("3 of the 5 pods that are not Ready checked, 2 with this problem"), "{}", d.message);
        // Refused creations come before anything the pods say.
        f.replica_failure = Some("exceeded quota: q".into());
        assert_eq!(reason_of(&f), Some("QuotaExceeded"));
    }

    #[test]
    fn messages_say_what_to_do() {
        let mismatch = facts(vec![pod(
            "web-1",
            vec![container(Some((
                "CreateContainerError",
                "hcs: The container operating system does not match the host operating system.",
            )))],
            vec![],
        )]);
        let d = diagnose(&mismatch, "shop").expect("diagnosis");
        for w in [
            "registry.example.com/web:1-ltsc2019",
            "win-1",
            "10.0.20348 (ltsc2022)",
            ":ltsc2022 tag",
            "spec.windows.version",
        ] {
            assert!(d.message.contains(w), "{w:?} in {}", d.message);
        }
        let crash = facts(vec![pod(
            "web-1",
            vec![ContainerFacts {
                last_exit: Some((-1073741510, "Error".into())),
                restarts: 7,
                ..container(Some(("CrashLoopBackOff", "")))
            }],
            vec![],
        )]);
        let d = diagnose(&crash, "shop").expect("diagnosis");
        assert!(d.message.contains("exit code -1073741510, Error"), "{}", d.message);
        assert!(d.message.contains("7 restarts"), "{}", d.message);
        assert!(d.message.contains("kubectl logs -n shop web-1 -c app --previous"), "{}", d.message);
        let slow = |age| {
            facts(vec![pod(
                "p",
                vec![container(Some(("ContainerCreating", "")))],
                vec![event("Pulling", "Pulling image \"x\"", age)],
            )])
        };
        let quick = diagnose(&slow(30), "shop").expect("diagnosis").message;
        let long = diagnose(&slow(SLOW_PULL.as_secs() + 61), "shop").expect("diagnosis").message;
        assert!(quick.contains("for less than a minute") && !quick.contains("pre-pull"), "{quick}");
        assert!(long.contains("for 6 minutes") && long.contains("pre-pull"), "{long}");
    }

    #[test]
    fn the_status_carries_the_diagnosis_and_stalls_only_past_the_deadline() {
        let mut obs = healthy();
        if let Some(d) = obs.workload.as_mut() {
            d.available = 0;
        }
        obs.diagnosis = Some(Diagnosis { reason: "ImagePullFailed", message: "cannot pull image x".into() });
        let s = run(&Outcome::Applied(obs.clone()));
        let want = |a: &str, b: &str, c: &str, d: &str, e: &str, f: &str| {
            [(a.to_owned(), b.to_owned()), (c.to_owned(), d.to_owned()), (e.to_owned(), f.to_owned())]
        };
        assert_eq!(summary(&s), want("False", "ImagePullFailed", "True", "ImagePullFailed", "False", "Progressing"));
        let ready = winapp_operator::conditions::find(&s.conditions, "Ready").expect("Ready");
        assert!(
            ready.message.contains("0/2 replicas available") && ready.message.contains("cannot pull image x"),
            "{}",
            ready.message
        );
        if let Some(d) = obs.workload.as_mut() {
            d.progress_deadline_exceeded = true;
        }
        let s = run(&Outcome::Applied(obs));
        assert_eq!(
            summary(&s),
            want("False", "ImagePullFailed", "False", "ImagePullFailed", "True", "ImagePullFailed")
        );
    }
}

/// After a drain: the Deployment had rolled out, its pods were evicted and recreated on another
/// node, where they cannot start. The operator keeps the deadline the Deployment does not keep
/// then (`observe::rescheduled`), and the status says what the pods say: progress until the
/// deadline, Stalled with the pod's reason after it.
#[test]
fn pods_rescheduled_after_a_drain_stall_past_the_deadline_with_the_pods_reason() {
    use winapp_operator::controller::diagnose::{ContainerFacts, EventFacts, PodFacts, WorkloadFacts, diagnose};
    use winapp_operator::controller::observe::rescheduled;

    let on_new_node = |name: &str, waiting: Option<(&str, &str)>, unschedulable: Option<&str>, events| PodFacts {
        name: name.into(),
        node: unschedulable.is_none().then(|| "win-2".into()),
        node_build: unschedulable.is_none().then(|| "10.0.20348".into()),
        unschedulable: unschedulable.map(Into::into),
        containers: vec![ContainerFacts {
            name: "app".into(),
            image: "registry.example.com/web:1-ltsc2022".into(),
            waiting: waiting.map(|(r, m): (&str, &str)| (r.into(), m.into())),
            ..ContainerFacts::default()
        }],
        events,
        ..PodFacts::default()
    };
    let pulling = on_new_node(
        "web-7d9-x1",
        Some(("ContainerCreating", "")),
        None,
        vec![EventFacts {
            reason: "Pulling".into(),
            message: "Pulling image \"registry.example.com/web:1-ltsc2022\"".into(),
            age: Duration::from_secs(1200),
        }],
    );
    let pending = on_new_node(
        "web-7d9-x2",
        None,
        Some("0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient memory."),
        vec![],
    );
    let judge = |pods: Vec<PodFacts>, idle_s: u64| {
        let facts = WorkloadFacts { replica_failure: None, not_ready: pods.len(), pods };
        let mut obs = healthy();
        let drained = WorkloadCheck { available: 0, ..obs.workload.clone().expect("workload") };
        obs.workload = Some(rescheduled(drained, Some(Duration::from_secs(idle_s)), Duration::from_secs(900)));
        obs.diagnosis = diagnose(&facts, "shop");
        summary(&run(&Outcome::Applied(obs)))
    };
    let p = |s: &str, r: &str| (s.to_owned(), r.to_owned());
    // Within the deadline: progress, with the pods' reason.
    assert_eq!(
        judge(vec![pulling.clone(), pending.clone()], 300),
        [p("False", "Unschedulable"), p("True", "Unschedulable"), p("False", "Progressing")]
    );
    // Past it: Stalled with the same reason.
    assert_eq!(
        judge(vec![pulling.clone(), pending], 900),
        [p("False", "Unschedulable"), p("False", "Unschedulable"), p("True", "Unschedulable")]
    );
    // A pull that never ends on the new node.
    assert_eq!(
        judge(vec![pulling], 1000),
        [p("False", "PullingImage"), p("False", "PullingImage"), p("True", "PullingImage")]
    );
}

#[test]
fn node_agent_status_counts_nodes() {
    let ready_msg =
        |s: &WindowsAppStatus| c::find(&s.conditions, c::READY).map(|x| x.message.clone()).unwrap_or_default();
    let agent = |edit: fn(&mut WorkloadCheck)| {
        let mut obs = healthy();
        let mut d = WorkloadCheck {
            kind: WorkloadKind::DaemonSet,
            up_to_date: true,
            desired: 3,
            updated: 3,
            available: 3,
            replicas: 3,
            progress_deadline_exceeded: false,
            ..WorkloadCheck::default()
        };
        edit(&mut d);
        obs.workload = Some(d);
        run(&Outcome::Applied(obs))
    };

    // Ready when every node the DaemonSet schedules on runs an available, updated pod.
    let s = agent(|_| {});
    assert_eq!(summary(&s)[0], p("True", "Available"));
    assert!(ready_msg(&s).contains("each of the 3 Windows node(s)"), "{}", ready_msg(&s));

    // A node still rolling: progress, counted in nodes.
    let s = agent(|d| d.updated = 2);
    assert_eq!(summary(&s), [p("False", "RollingOut"), p("True", "RollingOut"), p("False", "Progressing")]);
    assert!(ready_msg(&s).contains("3/3 nodes available, 2/3 updated"), "{}", ready_msg(&s));

    // Scheduled on no node yet, although nodes match: not Ready (an empty DaemonSet is no agent).
    let s = agent(|d| {
        d.desired = 0;
        d.updated = 0;
        d.available = 0;
        d.replicas = 0;
    });
    assert_eq!(summary(&s)[1], p("True", "RollingOut"));
    assert!(ready_msg(&s).contains("schedules on no node"), "{}", ready_msg(&s));

    // The operator's own deadline for a DaemonSet: Stalled, with the nodes counted.
    let s = agent(|d| {
        d.available = 1;
        d.progress_deadline_exceeded = true;
    });
    assert_eq!(summary(&s)[2], p("True", "ProgressDeadlineExceeded"));
    assert!(ready_msg(&s).contains("1/3 nodes available"), "{}", ready_msg(&s));
}

#[test]
fn a_rollout_in_progress_is_looked_at_again_ever_more_rarely() {
    use std::time::Duration;
    use winapp_operator::controller::wait_interval;
    let s = Duration::from_secs;
    // First when the pods are due a diagnosis, then as long again as the rollout has been idle.
    assert_eq!(wait_interval(s(0), s(30), None), s(30));
    assert_eq!(wait_interval(s(20), s(30), None), s(10));
    assert_eq!(wait_interval(s(30), s(30), None), s(30));
    assert_eq!(wait_interval(s(120), s(30), None), s(120));
    // Never more often than every 2 s, never less often than every 5 minutes.
    assert_eq!(wait_interval(s(29), s(30), None), s(2));
    assert_eq!(wait_interval(s(3600), s(30), None), s(300));
    // A DaemonSet's deadline (kept by the operator) is looked at when it passes.
    assert_eq!(wait_interval(s(100), s(30), Some(s(130))), s(30));
    assert_eq!(wait_interval(s(200), s(30), Some(s(130))), s(200));
}

#[test]
fn a_rollout_the_controller_has_not_observed_waits_for_the_watch() {
    use std::time::Duration;
    use winapp_operator::controller::{Looked, Rollout};
    let s = Duration::from_secs;
    // (ready, stalled, status deferred, controllers active, the rollout) as `Looked` says them.
    let next_look = |ready, stalled, status_deferred, controllers_active, rollout, diagnose_after| {
        let looked = Looked { ready, stalled, status_deferred, controllers_active, rollout };
        winapp_operator::controller::next_look(&looked, diagnose_after)
    };
    let observed = |idle| Some(Rollout { observed: true, idle: s(idle), deadline: None });
    let unobserved =
        |idle, deadline: Option<u64>| Some(Rollout { observed: false, idle: s(idle), deadline: deadline.map(s) });
    // Ready: the safety net; Stalled or no workload: soon again.
    assert_eq!(next_look(true, false, false, false, observed(0), s(30)), s(1800));
    assert_eq!(next_look(false, true, false, false, observed(0), s(30)), s(10));
    assert_eq!(next_look(false, false, false, false, None, s(30)), s(10));
    // Observed: the diagnosis schedule.
    assert_eq!(next_look(false, false, false, false, observed(10), s(30)), s(20));
    // Not observed: the watch brings the observation; only a node agent's deadline is timed...
    assert_eq!(next_look(false, false, false, false, unobserved(45, None), s(30)), s(1800));
    assert_eq!(next_look(false, false, false, false, unobserved(45, Some(100)), s(30)), s(55));
    assert_eq!(next_look(false, false, false, false, unobserved(150, Some(100)), s(30)), s(1800));
    // ...but a new app whose status waits for that observation has one within diagnose_after.
    assert_eq!(next_look(false, false, true, false, unobserved(0, None), s(30)), s(30));
    assert_eq!(next_look(false, false, true, false, None, s(45)), s(45));
    // While the workload controllers are at work, that observation comes through the watch;
    // a node agent's deadline still counts.
    assert_eq!(next_look(false, false, true, true, unobserved(0, None), s(30)), s(1800));
    assert_eq!(next_look(false, false, true, true, unobserved(0, Some(100)), s(30)), s(100));
    // The workload just created is often not in the cache yet: the same.
    assert_eq!(next_look(false, false, true, true, None, s(30)), s(1800));
    // Observed already: the diagnosis schedule.
    assert_eq!(next_look(false, false, true, true, observed(0), s(30)), s(30));
}

#[test]
fn a_stalled_app_is_looked_at_ever_more_rarely_up_to_five_minutes() {
    use std::time::Duration;
    use winapp_operator::controller::{MAX_STALLED_WAIT, stalled_wait};
    let waits: Vec<u64> = (1..=7).map(|n| stalled_wait(n).as_secs()).collect();
    assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
    assert_eq!(stalled_wait(0), Duration::from_secs(10), "the first look waits the shortest");
    assert_eq!(stalled_wait(u32::MAX), MAX_STALLED_WAIT, "no overflow");
    // 300 Stalled apps at rest: at most one look per app every 5 minutes once backed off.
    let looks_per_hour: u64 = 3600 / MAX_STALLED_WAIT.as_secs();
    assert!(looks_per_hour <= 12);
}

#[test]
fn a_drain_held_up_by_the_budget_shows_in_status_and_a_condition_and_ready_stays() {
    use winapp_operator::controller::status::BudgetCheck;
    let budget = |allowed: i32, cordoned: Vec<(String, usize)>| BudgetCheck {
        name: "web".into(),
        allowed: Some(allowed),
        current_healthy: 2,
        desired_healthy: 2,
        expected_pods: 3,
        cordoned,
    };
    let mut obs = healthy();
    obs.budget = Some(budget(0, vec![("win-1".into(), 1)]));
    let s = run(&Outcome::Applied(obs.clone()));
    assert_eq!(summary(&s)[0], p("True", c::reason::AVAILABLE), "the app still serves");
    assert_eq!(domain(&s, c::NODE_DRAIN_ALLOWED), Some(p("False", c::reason::DRAIN_BLOCKED)));
    let d = s.disruption.as_ref().expect("status.disruption");
    assert_eq!((d.budget.as_str(), d.allowed, d.blocking_drain_of.clone()), ("web", 0, vec!["win-1".to_owned()]));

    // The drain moves on: the budget allows an eviction again, the condition goes.
    obs.budget = Some(budget(1, Vec::new()));
    let later = compute(Some(3), Some("10.0.20348".into()), &Outcome::Applied(obs), Some(&s), &at(1100));
    assert_eq!(domain(&later, c::NODE_DRAIN_ALLOWED), None);
    assert!(later.disruption.as_ref().is_some_and(|d| d.allowed == 1 && d.blocking_drain_of.is_empty()));
    assert!(!same_ignoring_time(&s, &later));
    // An app without a budget reports none.
    assert_eq!(run(&Outcome::Applied(healthy())).disruption, None);
}
