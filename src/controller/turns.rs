//! Step 6 of a reconcile: whether the workload may be applied now, or its pod template change
//! (the operator's, not the app's) waits for a turn (see [`super::pace`]). Marks the workload
//! with what the next reconcile needs to tell whose change a template is.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

use super::Context;
use super::diff::first_difference;
use super::kinds::{ChildKind, DaemonSets, Deployments};
use super::pace::{self, Cause, INPUTS, Marks, PACED, TEMPLATE_HASH, Turn};
use super::resolve::Resolved;
use super::status::{WarmUpCheck, WorkloadCheck};
use crate::api::WindowsApp;
use crate::build::Children;
use crate::build::meta::AppKey;
use crate::build::workload::Workload;

/// The workload's turn.
#[derive(Debug, Default)]
pub struct Paced {
    /// What the status says of it (None: nothing paced).
    pub turn: Option<Turn>,
    /// A workload held back (kind, name): it is neither applied nor pruned.
    pub held: Option<(&'static str, String)>,
}

/// The cached workload of `kind` named `name`, as JSON.
fn cached(ctx: &Context, workload: &Workload, namespace: &str, name: &str) -> Option<Value> {
    match workload {
        Workload::Deployment(_) => {
            let store = Deployments::store(&ctx.stores)?;
            store.get(&ObjectRef::new(name).within(namespace))?.to_json().ok()
        }
        Workload::DaemonSet(_) => {
            let store = DaemonSets::store(&ctx.stores)?;
            store.get(&ObjectRef::new(name).within(namespace))?.to_json().ok()
        }
    }
}

/// Pure: whether a workload's rollout is done, from its JSON (spec and status).
pub fn rollout_done(workload: &Value) -> bool {
    let (spec, status) = (&workload["spec"], &workload["status"]);
    let observed = status["observedGeneration"].as_i64() >= workload["metadata"]["generation"].as_i64();
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    if !status["desiredNumberScheduled"].is_null() {
        let desired = n(&status["desiredNumberScheduled"]);
        return observed && n(&status["updatedNumberScheduled"]) >= desired && n(&status["numberAvailable"]) >= desired;
    }
    let desired = spec["replicas"].as_i64().unwrap_or(1);
    observed
        && n(&status["updatedReplicas"]) >= desired
        && n(&status["availableReplicas"]) >= desired
        && n(&status["replicas"]) <= desired
}

/// Decides the workload's turn and marks it (see the module docs).
pub fn take(
    ctx: &Context,
    app: &WindowsApp,
    key: &AppKey,
    resolved: &Resolved,
    warm_up: Option<&WarmUpCheck>,
    children: &mut Children,
) -> Paced {
    let pacer = &ctx.memory.pacer;
    let Some(workload) = children.workload.as_mut() else {
        pacer.done(key);
        return Paced::default();
    };
    let template = serde_json::to_value(workload.template()).unwrap_or_default();
    let want_template = pace::hash(&template);
    let secrets = resolved.app.config.as_ref().map(|c| c.secret_versions.clone()).unwrap_or_default();
    // The image a warm-up holds back is an input: its release is the app's change, not the operator's.
    let want_inputs = super::warmup::inputs(pace::inputs(app.metadata.generation, &secrets), warm_up);
    let name = workload_name(workload);
    let have = cached(ctx, workload, &key.0, &name);
    let marks = have.as_ref().map(Marks::of);
    let differ = || have.as_ref().is_none_or(|h| first_difference(&template, &h["spec"]["template"]).is_some());
    let (turn, paced) = match pace::cause(&want_template, &want_inputs, marks, differ) {
        Cause::New | Cause::App => {
            pacer.done(key);
            (None, false)
        }
        Cause::Unchanged => {
            // A paced rollout found in progress (this operator restarted) keeps counting.
            let paced = marks.and_then(|m| m.paced) == Some(want_template.as_str());
            if paced && have.as_ref().is_some_and(|h| !rollout_done(h)) {
                pacer.adopt(key);
            }
            (pacer.rolling(key).then_some(Turn::Rolling), paced)
        }
        Cause::Operator if pacer.start(key) => (Some(Turn::Rolling), true),
        Cause::Operator => {
            let (rolling, _) = pacer.counts();
            let kind = workload.kind();
            children.workload = None;
            return Paced { turn: Some(Turn::Waiting { rolling, limit: pacer.limit() }), held: Some((kind, name)) };
        }
    };
    mark(workload, &want_template, &want_inputs, paced);
    Paced { turn, held: None }
}

fn workload_name(w: &Workload) -> String {
    match w {
        Workload::Deployment(d) => d.name_any(),
        Workload::DaemonSet(d) => d.name_any(),
    }
}

/// Puts the marks on the workload's metadata (they roll no pod).
fn mark(workload: &mut Workload, template: &str, inputs: &str, paced: bool) {
    let annotations: &mut BTreeMap<String, String> = match workload {
        Workload::Deployment(d) => d.annotations_mut(),
        Workload::DaemonSet(d) => d.annotations_mut(),
    };
    annotations.insert(TEMPLATE_HASH.into(), template.into());
    annotations.insert(INPUTS.into(), inputs.into());
    if paced {
        annotations.insert(PACED.into(), template.into());
    }
}

/// After the workload was observed: a paced rollout that is done gives its turn to the next app;
/// one past its deadline keeps it (a bad change stops there). Returns the turn the status shows.
pub fn settle(ctx: &Context, key: &AppKey, turn: Option<Turn>, workload: Option<&WorkloadCheck>) -> Option<Turn> {
    if turn != Some(Turn::Rolling) {
        return turn;
    }
    let done = workload
        .is_some_and(|w| w.up_to_date && w.updated >= w.desired && w.available >= w.desired && w.replicas <= w.desired);
    if done {
        ctx.memory.pacer.done(key);
        return None;
    }
    turn
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rollout_is_done_when_observed_updated_and_available() {
        let d = |generation: i64, observed: i64, updated: i64, available: i64, replicas: i64| {
            json!({"metadata": {"generation": generation}, "spec": {"replicas": 2},
                "status": {"observedGeneration": observed, "updatedReplicas": updated, "availableReplicas": available, "replicas": replicas}})
        };
        assert!(rollout_done(&d(3, 3, 2, 2, 2)));
        assert!(!rollout_done(&d(3, 2, 2, 2, 2)), "not observed");
        assert!(!rollout_done(&d(3, 3, 1, 2, 3)), "half updated, old pod still there");
        assert!(!rollout_done(&d(3, 3, 2, 1, 2)), "not available");
        let ds = json!({"metadata": {"generation": 2}, "spec": {},
            "status": {"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert!(!rollout_done(&ds), "a node agent with a pod not available");
    }
}
