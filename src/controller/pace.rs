//! Operator upgrades do not roll the fleet at once. A change of an app's pod template that comes
//! from the operator (a new default, a platform-wide pod annotation) and not from the app (its
//! spec, the Secrets its config files come from) rolls out on at most `--max-operator-rollouts`
//! apps at a time; the others keep their running pods and wait for a turn. The app's own changes
//! are never delayed.
//!
//! Which is which is read from three annotations the operator keeps on each workload (metadata:
//! writing them rolls no pod):
//! - [`TEMPLATE_HASH`]: a hash of the pod template the operator last applied;
//! - [`INPUTS`]: a hash of what the app gave it (its generation, the Secrets' versions);
//! - [`PACED`]: set while the template was last changed by the operator; a restarted operator
//!   counts such a rollout, if it is not done, against the limit.
//!
//! A template that differs while the inputs are the same is the operator's change. A paced
//! rollout keeps its turn until it completes: a bad default then stops after the first few apps
//! instead of reaching them all.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;

use futures::channel::mpsc::UnboundedSender;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::build::meta::AppKey;

/// Hash of the pod template the operator last applied.
pub const TEMPLATE_HASH: &str = "winapp.dev/template-hash";
/// Hash of the app's inputs (generation, Secrets' versions) when the template was applied.
pub const INPUTS: &str = "winapp.dev/inputs";
/// Present while the last template change came from the operator, not the app.
pub const PACED: &str = "winapp.dev/paced-rollout";

/// How often an app waiting for its turn is looked at again without being woken.
pub const WAITING_LOOK: std::time::Duration = std::time::Duration::from_secs(300);

/// Whose change the desired pod template is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// There is no workload yet.
    New,
    /// The template is what is running.
    Unchanged,
    /// The app changed (its spec, or a Secret its config files come from).
    App,
    /// Only the operator's side changed: the change is paced.
    Operator,
}

/// What the cached workload says of the last apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks<'a> {
    pub template: Option<&'a str>,
    pub inputs: Option<&'a str>,
    pub paced: Option<&'a str>,
}

impl<'a> Marks<'a> {
    /// The marks in a workload's JSON.
    pub fn of(workload: &'a Value) -> Marks<'a> {
        let a = &workload["metadata"]["annotations"];
        Marks { template: a[TEMPLATE_HASH].as_str(), inputs: a[INPUTS].as_str(), paced: a[PACED].as_str() }
    }
}

/// Pure: whose change `want_template` is, against the cached workload's marks (None without a
/// workload). `templates_differ` compares the templates themselves, for a workload written
/// before the operator kept the marks.
pub fn cause(
    want_template: &str,
    want_inputs: &str,
    have: Option<Marks<'_>>,
    templates_differ: impl FnOnce() -> bool,
) -> Cause {
    let Some(have) = have else { return Cause::New };
    let same_template = match have.template {
        Some(t) => t == want_template,
        None => !templates_differ(),
    };
    if same_template {
        Cause::Unchanged
    } else if have.inputs.is_some_and(|i| i != want_inputs) {
        Cause::App
    } else {
        // Same inputs, or a workload from before the marks: only the operator can have changed.
        Cause::Operator
    }
}

/// A short hash of a JSON value.
pub fn hash(value: &Value) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    Sha256::digest(&bytes).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Pure: the hash of the app's inputs: its generation and the versions of the Secrets its
/// config files come from.
pub fn inputs(generation: Option<i64>, secret_versions: &std::collections::BTreeMap<String, String>) -> String {
    hash(&serde_json::json!({"generation": generation, "secrets": secret_versions}))
}

/// The app's turn, as the status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The operator's change to the pod template waits: `rolling` apps roll theirs now.
    Waiting { rolling: usize, limit: usize },
    /// The operator's change to the pod template rolls out now.
    Rolling,
}

/// Turns for paced rollouts, shared by every reconcile (part of the per-app memory: an app's
/// forget gives its turn back).
#[derive(Debug, Default)]
pub struct Pacer {
    /// Paced rollouts at once; 0: no limit.
    limit: usize,
    state: Mutex<State>,
    /// Asks for a reconcile of an app whose turn came.
    wake: Option<UnboundedSender<AppKey>>,
}

#[derive(Debug, Default)]
struct State {
    rolling: BTreeSet<AppKey>,
    /// In the order they asked.
    waiting: VecDeque<AppKey>,
}

impl Pacer {
    /// A pacer of `limit` rollouts at once (0: unlimited) that reconciles a waiting app through
    /// `wake` when its turn comes.
    pub fn new(limit: usize, wake: Option<UnboundedSender<AppKey>>) -> Self {
        Pacer { limit, state: Mutex::default(), wake }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Asks for a turn for `app`: true if it rolls now (it had the turn, or one is free), false
    /// when it must wait (it is then queued).
    pub fn start(&self, app: &AppKey) -> bool {
        let Ok(mut s) = self.state.lock() else { return true };
        if self.limit == 0 || s.rolling.contains(app) || s.rolling.len() < self.limit {
            s.waiting.retain(|a| a != app);
            s.rolling.insert(app.clone());
            return true;
        }
        if !s.waiting.contains(app) {
            s.waiting.push_back(app.clone());
        }
        false
    }

    /// Counts a paced rollout found in progress (after a restart) whatever the limit.
    pub fn adopt(&self, app: &AppKey) {
        if let Ok(mut s) = self.state.lock() {
            s.waiting.retain(|a| a != app);
            s.rolling.insert(app.clone());
        }
    }

    /// The app no longer rolls a paced change (done, changed by its team, or deleted), nor waits
    /// for one: a turn it held goes to the first app waiting, which is woken to take it (the turn
    /// is its own meanwhile: an app asking later does not jump the queue).
    pub fn done(&self, app: &AppKey) {
        let next = {
            let Ok(mut s) = self.state.lock() else { return };
            s.waiting.retain(|a| a != app);
            if !s.rolling.remove(app) {
                return;
            }
            let next = s.waiting.pop_front();
            if let Some(next) = &next {
                s.rolling.insert(next.clone());
            }
            next
        };
        if let (Some(next), Some(wake)) = (next, &self.wake) {
            let _ = wake.unbounded_send(next);
        }
    }

    /// Forgets the apps for which `keep` is false (deleted ones), as [`Pacer::done`] does.
    pub fn retain(&self, keep: impl Fn(&AppKey) -> bool) {
        let gone: Vec<AppKey> = match self.state.lock() {
            Ok(s) => s.rolling.iter().chain(&s.waiting).filter(|a| !keep(a)).cloned().collect(),
            Err(_) => return,
        };
        for app in gone {
            self.done(&app);
        }
    }

    /// Whether the app holds a turn.
    pub fn rolling(&self, app: &AppKey) -> bool {
        self.state.lock().is_ok_and(|s| s.rolling.contains(app))
    }

    /// Apps rolling a paced change now, and apps waiting for a turn.
    pub fn counts(&self) -> (usize, usize) {
        self.state.lock().map(|s| (s.rolling.len(), s.waiting.len())).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> AppKey {
        ("shop".into(), n.into())
    }

    #[test]
    fn the_cause_of_a_template_change_is_read_from_the_marks() {
        let marks = |t, i| Some(Marks { template: Some(t), inputs: Some(i), paced: None });
        assert_eq!(cause("t1", "i1", None, || true), Cause::New);
        assert_eq!(cause("t1", "i1", marks("t1", "i1"), || true), Cause::Unchanged, "same template");
        assert_eq!(cause("t2", "i2", marks("t1", "i1"), || true), Cause::App, "the app changed");
        assert_eq!(cause("t2", "i1", marks("t1", "i1"), || true), Cause::Operator, "only the operator changed");
        // A workload written before the marks: the templates themselves are compared.
        let bare = Some(Marks::default());
        assert_eq!(cause("t1", "i1", bare, || false), Cause::Unchanged);
        assert_eq!(cause("t1", "i1", bare, || true), Cause::Operator);
    }

    #[test]
    fn inputs_change_with_the_generation_and_the_secrets_versions() {
        let mut secrets = std::collections::BTreeMap::new();
        let first = inputs(Some(1), &secrets);
        assert_eq!(first, inputs(Some(1), &secrets));
        assert_ne!(first, inputs(Some(2), &secrets));
        secrets.insert("web-config".into(), "41".into());
        assert_ne!(first, inputs(Some(1), &secrets));
    }

    #[test]
    fn at_most_the_limit_rolls_and_a_finished_turn_wakes_the_first_waiting() {
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        let pacer = Pacer::new(2, Some(tx));
        assert!(pacer.start(&key("a")) && pacer.start(&key("b")));
        assert!(pacer.start(&key("a")), "a turn held is kept");
        assert!(!pacer.start(&key("c")) && !pacer.start(&key("d")) && !pacer.start(&key("c")));
        assert_eq!(pacer.counts(), (2, 2), "c queued once");
        pacer.done(&key("a"));
        assert_eq!(rx.try_recv().ok(), Some(key("c")), "the first waiting is woken");
        assert!(!pacer.start(&key("d")), "d is still behind c");
        assert!(pacer.start(&key("c")), "the turn was kept for c");
        assert_eq!(pacer.counts(), (2, 1));
        pacer.done(&key("d"));
        assert_eq!(pacer.counts(), (2, 0), "a waiting app that gave up leaves the queue");
        assert!(rx.try_recv().is_err(), "and wakes nobody: it held no turn");
    }

    #[test]
    fn adopted_rollouts_count_whatever_the_limit_and_zero_means_no_limit() {
        let pacer = Pacer::new(1, None);
        pacer.adopt(&key("a"));
        pacer.adopt(&key("b"));
        assert_eq!(pacer.counts(), (2, 0));
        assert!(!pacer.start(&key("c")));
        let free = Pacer::new(0, None);
        assert!((0..100).all(|i| free.start(&key(&i.to_string()))));
    }
}
