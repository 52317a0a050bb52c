//! Applies an app's children in three rounds, each child of a round at once (a new app's first
//! reconcile then waits for the slowest child of each round instead of the sum of them all):
//! 1. everything but the gMSA RoleBinding and the workload: none of these needs another to exist
//!    first (the API server takes a claim before its volume, a ClusterRole before the credspec
//!    it names); a new app's workload is looked up meanwhile (see [`apply::look_up`]);
//! 2. the gMSA RoleBinding, after its ClusterRole (the API server lets the operator bind it only
//!    once it can read the role's rules and finds that the operator holds them);
//! 3. the workload, so that its pods find their ServiceAccount, RBAC and config in place.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;

use super::apply::{self, Applied, ChildOutcome, Foreign, LookedUp, Target};
use super::error::Result;
use super::kinds::{self, ChildKind, Round, Visitor};
use crate::build::Children;
use crate::metrics::Metrics;

/// How applying went, short of an error.
#[derive(Debug)]
pub enum Flow {
    /// Every child is applied.
    Applied(ApplyReport),
    /// A child's name is taken by an object that is not the app's: nothing after it is applied.
    Conflict(Foreign),
}

/// What applying did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// `Kind name` of each child created.
    pub created: Vec<String>,
    /// Claims adopted again (released earlier from a volume of the same name).
    pub adopted: Vec<String>,
    /// Whether the workload was written (its cached copy may predate the write).
    pub workload_written: bool,
    /// Fields stored with other values than applied, and whether each was found just now.
    pub rewrites: Vec<(apply::Rewrite, bool)>,
}

/// The names of the children to keep, per kind: what was applied, and what the operator holds
/// while it cannot tell whether a gMSA is allowed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keep(BTreeMap<&'static str, BTreeSet<String>>);

impl Keep {
    /// Keeps the child `name` of `kind`.
    pub fn insert(&mut self, kind: &'static str, name: String) {
        self.0.entry(kind).or_default().insert(name);
    }

    /// Keeps what `other` keeps too.
    pub fn extend(&mut self, other: Keep) {
        for (kind, names) in other.0 {
            self.0.entry(kind).or_default().extend(names);
        }
    }

    /// Whether the child `name` of `kind` is kept.
    pub fn contains(&self, kind: &str, name: &str) -> bool {
        self.0.get(kind).is_some_and(|n| n.contains(name))
    }
}

/// Applies one app's children (see the module docs).
pub struct Applier<'a> {
    pub target: Target<'a>,
    pub metrics: &'a Metrics,
}

/// One child's apply, boxed so that children of different kinds go together.
type ChildFuture<'a> = BoxFuture<'a, Result<ChildOutcome>>;
/// A workload's apply, waiting for what its look-up found.
type Pending<'a> = Box<dyn FnOnce(Option<LookedUp>) -> ChildFuture<'a> + Send + 'a>;

/// The children of each round, as futures (the workload's waiting for its look-up).
struct Rounds<'a> {
    target: Target<'a>,
    children: Children,
    first: Vec<ChildFuture<'a>>,
    second: Vec<ChildFuture<'a>>,
    lookups: Vec<BoxFuture<'a, Result<Option<LookedUp>>>>,
    workload: Vec<Pending<'a>>,
    keep: Keep,
}

impl<'a> Visitor for Rounds<'a> {
    fn visit<C: ChildKind>(&mut self) {
        let t = self.target;
        for object in C::take(&mut self.children) {
            let name = kube::ResourceExt::name_any(&object);
            self.keep.insert(C::KIND, name.clone());
            match C::ROUND {
                Round::First => self.first.push(Box::pin(apply::apply::<C>(t, object, None))),
                Round::Second => self.second.push(Box::pin(apply::apply::<C>(t, object, None))),
                Round::Workload => {
                    self.lookups.push(Box::pin(async move { apply::look_up::<C>(t, &name).await }));
                    self.workload.push(Box::new(move |found| Box::pin(apply::apply::<C>(t, object, found))));
                }
            }
        }
    }
}

impl<'a> Applier<'a> {
    /// Applies `children` in rounds; returns what was applied and the names to keep, or the
    /// first child whose name is taken. Every result is looked at in apply order: the first
    /// error or foreign object wins.
    pub async fn apply(&self, children: Children) -> Result<(Flow, Keep)> {
        let mut rounds = Rounds {
            target: self.target,
            children,
            first: Vec::new(),
            second: Vec::new(),
            lookups: Vec::new(),
            workload: Vec::new(),
            keep: Keep::default(),
        };
        kinds::each(&mut rounds);
        let Rounds { first, second, lookups, workload, keep, .. } = rounds;
        let mut report = ApplyReport::default();
        let (first, found) = futures::join!(futures::future::join_all(first), futures::future::join_all(lookups));
        if let Some(conflict) = self.note(first, &mut report, false)? {
            return Ok((Flow::Conflict(conflict), keep));
        }
        if let Some(conflict) = self.note(futures::future::join_all(second).await, &mut report, false)? {
            return Ok((Flow::Conflict(conflict), keep));
        }
        let mut third = Vec::new();
        for (pending, found) in workload.into_iter().zip(found) {
            third.push(pending(found?));
        }
        if let Some(conflict) = self.note(futures::future::join_all(third).await, &mut report, true)? {
            return Ok((Flow::Conflict(conflict), keep));
        }
        Ok((Flow::Applied(report), keep))
    }

    /// Notes the results of one round in `report`; returns the first foreign object, if any.
    fn note(
        &self,
        results: Vec<Result<ChildOutcome>>,
        report: &mut ApplyReport,
        workload: bool,
    ) -> Result<Option<Foreign>> {
        for result in results {
            let (kind, name, done) = match result? {
                ChildOutcome::Applied { kind, name, done } => (kind, name, done),
                ChildOutcome::Foreign(f) => return Ok(Some(f)),
            };
            if done.applied != Applied::Unchanged {
                self.metrics.child_written(kind);
            }
            // The warm-up DaemonSet goes in the workload's round; it is not the workload.
            if workload && name != crate::build::warmup::name_of(&self.target.app.1) {
                report.workload_written = done.applied != Applied::Unchanged;
            }
            if done.applied == Applied::Created {
                report.created.push(format!("{kind} {name}"));
            }
            if done.adopted {
                report.adopted.push(name);
            }
            if let Some(r) = done.rewrite {
                report.rewrites.push((r, done.new_rewrite));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_names_are_per_kind() {
        let mut keep = Keep::default();
        keep.insert("Service", "web".into());
        assert!(keep.contains("Service", "web"));
        assert!(!keep.contains("Deployment", "web"));
        assert!(!keep.contains("Service", "api"));
    }
}
