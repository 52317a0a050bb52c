//! Pure: the app's PodDisruptionBudget and the node drains it holds up -> `status.disruption`
//! and the NodeDrainAllowed condition (present, False, only while a drain waits on the app).
//!
//! A refused eviction leaves no trace on the pod or the budget (the `DisruptionTarget` condition
//! marks pods whose eviction was allowed), so a blocked drain is read from its two halves: the
//! budget allows no eviction (`disruptionsAllowed` 0) while pods of the app run on a cordoned
//! node, which is what `kubectl drain` (and a pool upgrade) does first.

use crate::api::DisruptionStatus;
use crate::conditions::{self as c, Cond, reason};

/// Most nodes `status.disruption.blockingDrainOf` lists.
pub const MAX_BLOCKED_NODES: usize = 16;

/// The app's PodDisruptionBudget as the cache holds it, and where its pods run while it allows
/// no eviction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BudgetCheck {
    /// The PodDisruptionBudget's name.
    pub name: String,
    /// `disruptionsAllowed`, once the disruption controller has observed the budget's generation.
    pub allowed: Option<i32>,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_pods: i32,
    /// Cordoned nodes that run pods of the app (not terminating), with how many, by node name:
    /// read only when [`pods_worth_reading`].
    pub cordoned: Vec<(String, usize)>,
}

/// Whether to list the app's pods to see where they run: only a budget that allows no eviction
/// can hold up a drain, and only a cordoned Windows node is being drained. A Ready app costs no
/// such read.
pub fn pods_worth_reading(allowed: Option<i32>, cordoned_windows_nodes: usize) -> bool {
    allowed == Some(0) && cordoned_windows_nodes > 0
}

/// The cordoned nodes whose drain waits on the app's budget, sorted.
pub fn blocked_drains(b: &BudgetCheck) -> Vec<String> {
    if b.allowed != Some(0) {
        return Vec::new();
    }
    let mut nodes: Vec<String> = b.cordoned.iter().filter(|(_, pods)| *pods > 0).map(|(n, _)| n.clone()).collect();
    nodes.sort();
    nodes
}

/// `status.disruption`: None while the app has no budget, or its controller has not observed it.
pub fn status(b: Option<&BudgetCheck>) -> Option<DisruptionStatus> {
    let b = b?;
    let mut blocking_drain_of = blocked_drains(b);
    blocking_drain_of.truncate(MAX_BLOCKED_NODES);
    Some(DisruptionStatus { budget: b.name.clone(), allowed: b.allowed?, blocking_drain_of })
}

/// NodeDrainAllowed, False with reason DrainBlocked while a drain waits on the app; None otherwise.
pub fn condition(b: Option<&BudgetCheck>) -> Option<Cond> {
    let b = b?;
    let nodes = blocked_drains(b);
    if nodes.is_empty() {
        return None;
    }
    let pods: usize = b.cordoned.iter().filter(|(n, _)| nodes.contains(n)).map(|(_, p)| p).sum();
    let mut shown = nodes.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if nodes.len() > 5 {
        shown.push_str(&format!(" and {} more", nodes.len() - 5));
    }
    let msg = format!(
        "a drain of node(s) {shown} waits on this app: {pods} of its pods run there (cordoned) and its PodDisruptionBudget {} allows no eviction now ({} of {} pods healthy, {} must stay healthy); the drain goes on once another pod of the app is available: if none becomes available, Ready and WindowsNodesAvailable say why (often no other Windows node of the build with room)",
        b.name, b.current_healthy, b.expected_pods, b.desired_healthy
    );
    Some(Cond::new(c::NODE_DRAIN_ALLOWED, false, reason::DRAIN_BLOCKED, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(allowed: Option<i32>, cordoned: &[(&str, usize)]) -> BudgetCheck {
        BudgetCheck {
            name: "web".into(),
            allowed,
            current_healthy: 2,
            desired_healthy: 2,
            expected_pods: 3,
            cordoned: cordoned.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect(),
        }
    }

    #[test]
    fn a_drain_is_blocked_only_by_a_budget_at_zero_over_pods_on_a_cordoned_node() {
        assert!(pods_worth_reading(Some(0), 1));
        assert!(!pods_worth_reading(Some(1), 1), "a budget that allows an eviction blocks nothing");
        assert!(!pods_worth_reading(Some(0), 0), "no node is being drained");
        assert!(!pods_worth_reading(None, 1), "not observed yet");

        let blocked = budget(Some(0), &[("win-2", 1), ("win-1", 2)]);
        assert_eq!(blocked_drains(&blocked), ["win-1", "win-2"]);
        let cond = condition(Some(&blocked)).expect("a condition");
        assert_eq!((cond.type_, cond.status, cond.reason), (c::NODE_DRAIN_ALLOWED, false, reason::DRAIN_BLOCKED));
        assert!(cond.message.contains("win-1, win-2") && cond.message.contains("3 of its pods"), "{}", cond.message);
        assert!(cond.message.contains("2 of 3 pods healthy, 2 must stay healthy"), "{}", cond.message);
        let s = status(Some(&blocked)).expect("a status");
        assert_eq!((s.budget.as_str(), s.allowed, s.blocking_drain_of.len()), ("web", 0, 2));

        for free in [budget(Some(1), &[("win-1", 1)]), budget(Some(0), &[]), budget(Some(0), &[("win-1", 0)])] {
            assert_eq!(condition(Some(&free)), None, "{free:?}");
            assert!(status(Some(&free)).is_some_and(|s| s.blocking_drain_of.is_empty()));
        }
        assert_eq!(status(Some(&budget(None, &[]))), None, "not observed yet");
        assert_eq!((status(None), condition(None)), (None, None));
    }

    #[test]
    fn many_nodes_are_listed_up_to_a_bound() {
        let nodes: Vec<(String, usize)> = (0..20).map(|i| (format!("win-{i:02}"), 1)).collect();
        let b = BudgetCheck { allowed: Some(0), cordoned: nodes, ..budget(Some(0), &[]) };
        assert_eq!(status(Some(&b)).map(|s| s.blocking_drain_of.len()), Some(MAX_BLOCKED_NODES));
        let msg = condition(Some(&b)).expect("a condition").message;
        assert!(msg.contains("win-04 and 15 more"), "{msg}");
    }
}
