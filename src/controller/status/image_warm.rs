//! Pure: the ImageWarm condition of an app with `spec.warmUp`, and what the warm-up holds up (a
//! rollout that waits for it) or blocks (a warm-up past its deadline).

use std::time::Duration;

use crate::conditions::{self as c, Cond, reason};

/// The warm-up of the app's image, as observed (see `controller::warmup`).
#[derive(Debug, Clone, PartialEq)]
pub struct WarmUpCheck {
    /// The image the spec names.
    pub image: String,
    /// The image the Deployment keeps running while `image` warms up; None when it gets `image`.
    pub holding: Option<String>,
    /// Nodes the warm-up DaemonSet schedules on.
    pub desired: i32,
    /// Of those, the nodes whose warm-up pod has pulled `image` and is ready.
    pub pulled: i32,
    /// Time left before the deadline, while holding.
    pub left: Option<Duration>,
    /// The deadline passed while holding.
    pub timed_out: Option<TimedOut>,
}

/// A warm-up past `spec.warmUp.deadlineSeconds`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedOut {
    pub deadline_seconds: i32,
    /// The nodes whose warm-up pod has not pulled the image, sorted (a few of them).
    pub cold_nodes: Vec<String>,
}

/// What the warm-up says of the app: its condition, and a blocker or what the app waits for.
pub struct Judgement {
    pub condition: Cond,
    pub blocker: Option<(&'static str, String)>,
    pub waiting: Option<(&'static str, String)>,
}

/// ImageWarm: True once every node has the image; while the Deployment waits for it, the app
/// waits with reason WarmingImage; past the deadline it is Stalled.
pub fn judge(w: &WarmUpCheck) -> Judgement {
    let progress = if w.desired == 0 {
        format!("the warm-up DaemonSet schedules on no node yet, so no node has pulled image {}", w.image)
    } else {
        format!("image {} pulled on {} of {} node(s)", w.image, w.pulled.min(w.desired), w.desired)
    };
    if let (Some(running), Some(t)) = (&w.holding, &w.timed_out) {
        let nodes =
            if t.cold_nodes.is_empty() { String::new() } else { format!(" (not on {})", t.cold_nodes.join(", ")) };
        let msg = format!(
            "{progress}{nodes} within spec.warmUp.deadlineSeconds ({} s): the Deployment keeps running {running}; read the events of the warm-up pods (kubectl describe pods -l app.kubernetes.io/name=winapp-warm-up in the app's namespace): fix the pull (image, registry credentials) or the nodes (room, disk), or raise the deadline",
            t.deadline_seconds
        );
        return Judgement {
            condition: Cond::new(c::IMAGE_WARM, false, reason::WARM_UP_DEADLINE, msg.clone()),
            blocker: Some((reason::WARM_UP_DEADLINE, msg)),
            waiting: None,
        };
    }
    if let Some(running) = &w.holding {
        let msg = format!("{progress}; the Deployment keeps running {running} until every node has it");
        return Judgement {
            condition: Cond::new(c::IMAGE_WARM, false, reason::WARMING_IMAGE, msg.clone()),
            blocker: None,
            waiting: Some((reason::WARMING_IMAGE, msg)),
        };
    }
    let warm = w.desired > 0 && w.pulled >= w.desired;
    let condition = if warm {
        Cond::new(c::IMAGE_WARM, true, reason::IMAGE_PULLED, progress)
    } else {
        // The first pods of a new app pull the image themselves; a node that joined the pool
        // pulls it before the app's pods come.
        Cond::new(c::IMAGE_WARM, false, reason::WARMING_IMAGE, format!("{progress}; the pods already run it"))
    };
    Judgement { condition, blocker: None, waiting: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(holding: Option<&str>, desired: i32, pulled: i32) -> WarmUpCheck {
        WarmUpCheck {
            image: "web:2".into(),
            holding: holding.map(str::to_owned),
            desired,
            pulled,
            left: None,
            timed_out: None,
        }
    }

    #[test]
    fn a_held_rollout_waits_and_says_how_many_nodes_have_the_image() {
        let j = judge(&check(Some("web:1"), 3, 2));
        assert!(!j.condition.status);
        assert_eq!(j.condition.reason, reason::WARMING_IMAGE);
        assert_eq!(
            j.waiting.map(|w| w.1).as_deref(),
            Some("image web:2 pulled on 2 of 3 node(s); the Deployment keeps running web:1 until every node has it")
        );
        assert!(j.blocker.is_none());
    }

    #[test]
    fn a_warm_image_is_true_and_holds_nothing() {
        let j = judge(&check(None, 3, 3));
        assert_eq!((j.condition.status, j.condition.reason), (true, reason::IMAGE_PULLED));
        assert_eq!(j.condition.message, "image web:2 pulled on 3 of 3 node(s)");
        assert!(j.waiting.is_none() && j.blocker.is_none());
        let first = judge(&check(None, 3, 1));
        assert_eq!((first.condition.status, first.condition.reason), (false, reason::WARMING_IMAGE));
        assert!(first.waiting.is_none(), "pods that run the image already wait for nothing");
    }

    #[test]
    fn past_the_deadline_the_app_is_stalled_naming_the_cold_nodes() {
        let mut w = check(Some("web:1"), 3, 1);
        w.timed_out = Some(TimedOut { deadline_seconds: 60, cold_nodes: vec!["win-a".into(), "win-b".into()] });
        let j = judge(&w);
        let (r, msg) = j.blocker.expect("a blocker");
        assert_eq!(r, reason::WARM_UP_DEADLINE);
        assert!(msg.starts_with("image web:2 pulled on 1 of 3 node(s) (not on win-a, win-b) within spec.warmUp.deadlineSeconds (60 s): the Deployment keeps running web:1"), "{msg}");
        assert_eq!(j.condition.reason, reason::WARM_UP_DEADLINE);
    }
}
