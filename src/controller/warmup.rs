//! Image warm-up (`spec.warmUp`): before the Deployment rolls to a new image, the warm-up
//! DaemonSet (`build::warmup`) pulls it on every node the pods may run on; until then the
//! Deployment keeps the image it runs. [`settle`] (resolve step) applies the platform's default
//! and keeps the warm-up's start on the DaemonSet; [`hold`] (after the build) decides, from the
//! cached Deployment and DaemonSet, which image the Deployment gets; [`cold_nodes`] names the
//! nodes that have not pulled the image once the deadline has passed (one pod list).
//!
//! The first creation does not wait: with no pods to keep serving, the new pods pull the image
//! themselves, and the DaemonSet, created with them, keeps the pool's new nodes warm.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::error::{Error, Result};
use super::kinds::{ChildKind, DaemonSets};
use super::pods::pod_ready;
use super::resolve::Resolved;
use super::status::WarmUpCheck;
use super::status::image_warm::TimedOut;
use crate::build::workload::Workload;
use crate::build::{Children, warmup};
use crate::validate::ValidatedApp;

/// Most nodes the Stalled message names.
const COLD_NODES_NAMED: usize = 5;

/// What the warm-up DaemonSet reports of the image it pulls.
#[derive(Debug, Clone, PartialEq)]
pub struct Pulling {
    /// The image its pods pull.
    pub image: Option<String>,
    /// Its controller has observed its current spec.
    pub observed: bool,
    /// Nodes it schedules on.
    pub desired: i32,
    /// Nodes that run a pod of its current spec.
    pub updated: i32,
    /// Nodes whose pod is ready.
    pub ready: i32,
    /// When the warm-up of `image` began, as the DaemonSet's annotation says.
    pub started: Option<Timestamp>,
}

/// Pure: what the warm-up DaemonSet `d` reports.
pub fn pulling(d: &DaemonSet) -> Pulling {
    let s = d.status.clone().unwrap_or_default();
    Pulling {
        image: warmup::pulled_image(d).map(str::to_owned),
        observed: s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0),
        desired: s.desired_number_scheduled,
        updated: s.updated_number_scheduled.unwrap_or(0),
        ready: s.number_ready,
        started: d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(warmup::STARTED_ANNOTATION))
            .and_then(|t| t.parse().ok()),
    }
}

/// Pure: when the warm-up of `image` began: the DaemonSet's word when it pulls that image
/// already, else now (a new image starts a new warm-up), to the second.
pub fn started(pulling: Option<&Pulling>, image: &str, now: Timestamp) -> Timestamp {
    pulling
        .filter(|p| p.image.as_deref() == Some(image))
        .and_then(|p| p.started)
        .unwrap_or_else(|| Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// Pure: the warm-up of `image`, and which image the Deployment gets. It keeps `running` (the
/// image it runs now) while the DaemonSet has not reported every scheduled pod updated and ready
/// with `image`; it gets `image` at once when it does not exist yet (`running` None) or runs it
/// already. Past `deadline` since `started`, the warm-up is timed out (the nodes are named
/// later, from the pods).
pub fn decide(
    image: &str,
    running: Option<&str>,
    pulling: Option<&Pulling>,
    started: Timestamp,
    now: Timestamp,
    deadline: Duration,
) -> WarmUpCheck {
    let current = pulling.filter(|p| p.image.as_deref() == Some(image) && p.observed);
    let (desired, pulled) = match (pulling, current) {
        (_, Some(p)) => (p.desired, p.ready.min(p.updated)),
        (Some(p), None) => (p.desired, 0),
        (None, None) => (0, 0),
    };
    let warm = current.is_some_and(|p| p.updated >= p.desired && p.ready >= p.desired);
    let holding = match running {
        Some(r) if r != image && !warm => Some(r.to_owned()),
        _ => None,
    };
    let elapsed = Duration::from_secs(u64::try_from(now.as_second() - started.as_second()).unwrap_or(0));
    let (left, timed_out) = match &holding {
        Some(_) if elapsed >= deadline => {
            (None, Some(TimedOut { deadline_seconds: secs(deadline), cold_nodes: Vec::new() }))
        }
        Some(_) => (Some(deadline - elapsed), None),
        None => (None, None),
    };
    WarmUpCheck { image: image.to_owned(), holding, desired, pulled, left, timed_out }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// Resolve step: the platform's default where the spec does not say, and when the warm-up of the
/// app's image began (kept on the DaemonSet, so that the deadline survives a restart).
pub fn settle(ctx: &Context, app: &mut ValidatedApp) -> Result<()> {
    app.warm_up.with_platform(&ctx.settings.warm_up);
    if !app.warm_up.enabled {
        return Ok(());
    }
    let pulling = cached_daemon_set(ctx, app)?.map(|d| pulling(&d));
    app.warm_up.started = Some(started(pulling.as_ref(), &app.image, Timestamp::now()).to_string());
    Ok(())
}

/// After the build: the warm-up of the app's image, and the Deployment in `children` kept on the
/// image it runs while the new one warms up. None without warm-up.
pub fn hold(ctx: &Context, resolved: &Resolved, children: &mut Children) -> Result<Option<WarmUpCheck>> {
    let Some(Workload::Deployment(deployment)) = &mut children.workload else { return Ok(None) };
    let (app, running) = (&resolved.app, resolved.live.as_ref());
    if !app.warm_up.enabled {
        return Ok(None);
    }
    let pulling = cached_daemon_set(ctx, app)?.map(|d| pulling(&d));
    let now = Timestamp::now();
    let started = app.warm_up.started.as_deref().and_then(|t| t.parse().ok()).unwrap_or(now);
    let deadline = Duration::from_secs(u64::try_from(app.warm_up.deadline_seconds).unwrap_or(0));
    let running_image = running.and_then(warmup::app_image);
    let check = decide(&app.image, running_image, pulling.as_ref(), started, now, deadline);
    if let Some(image) = &check.holding {
        warmup::hold_image(deployment, image);
    }
    Ok(Some(check))
}

/// Pure: the pacing's inputs of the workload (see `super::pace`), with the image a warm-up holds
/// back: the rollout that follows its release is then the app's change, never paced as the
/// operator's own. Without a hold, the inputs are as they were.
pub fn inputs(inputs: String, warm_up: Option<&WarmUpCheck>) -> String {
    match warm_up.and_then(|w| w.holding.as_deref()) {
        Some(held) => super::pace::hash(&serde_json::json!({"inputs": inputs, "warmUpHolds": held})),
        None => inputs,
    }
}

/// Observe step: the warm-up decided before the apply, with the nodes that have not pulled the
/// image once its deadline has passed.
pub async fn observe(ctx: &Context, app: &ValidatedApp, warm_up: Option<WarmUpCheck>) -> Option<WarmUpCheck> {
    let mut check = warm_up?;
    if let Some(t) = check.timed_out.as_mut() {
        t.cold_nodes = cold_nodes(ctx, app).await.unwrap_or_else(|e| {
            // The names are a help, not a step: without them the status gives the counts.
            tracing::warn!("could not read the warm-up pods to name the nodes without the image: {e}");
            Vec::new()
        });
    }
    Some(check)
}

/// The app's warm-up DaemonSet, as cached.
fn cached_daemon_set(ctx: &Context, app: &ValidatedApp) -> Result<Option<DaemonSet>> {
    let key = ObjectRef::new(&warmup::name(app)).within(&app.namespace);
    DaemonSets::store(&ctx.stores)
        .and_then(|s| s.get(&key))
        .map(|c| c.typed().map_err(|e| Error::Cached(DaemonSets::KIND, e)))
        .transpose()
}

/// Once the deadline has passed: the nodes whose warm-up pod has not pulled `image` and is not
/// ready, sorted, a few of them (one list of the warm-up pods).
pub async fn cold_nodes(ctx: &Context, app: &ValidatedApp) -> std::result::Result<Vec<String>, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &app.namespace);
    let selector = warmup::selector_labels(app).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    let mut nodes: Vec<String> =
        list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && !pod_ready(p)).map(node_of).collect();
    nodes.sort();
    nodes.dedup();
    if nodes.len() > COLD_NODES_NAMED {
        let more = nodes.len() - COLD_NODES_NAMED;
        nodes.truncate(COLD_NODES_NAMED);
        nodes.push(format!("{more} more"));
    }
    Ok(nodes)
}

/// Pure: the node a warm-up pod is for: where it runs, or, not scheduled yet, the node its
/// DaemonSet made it for (the `metadata.name` field of its node affinity).
pub fn node_of(p: &Pod) -> String {
    let spec = p.spec.as_ref();
    if let Some(node) = spec.and_then(|s| s.node_name.clone()) {
        return node;
    }
    let meant = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref())
        .and_then(|r| {
            r.node_selector_terms
                .iter()
                .flat_map(|t| t.match_fields.iter().flatten())
                .find(|f| f.key == "metadata.name")
                .and_then(|f| f.values.iter().flatten().next().cloned())
        });
    match meant {
        Some(node) => format!("{node} (its pod is not scheduled)"),
        None => format!("pod {} (not scheduled)", p.metadata.name.as_deref().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("a timestamp")
    }

    fn ds(image: &str, observed: bool, desired: i32, updated: i32, ready: i32) -> Pulling {
        Pulling { image: Some(image.into()), observed, desired, updated, ready, started: Some(at(0)) }
    }

    /// The image the Deployment gets.
    fn gets(running: Option<&str>, pulling: Option<&Pulling>) -> String {
        let check = decide("web:2", running, pulling, at(0), at(10), HOUR);
        check.holding.unwrap_or(check.image)
    }

    #[test]
    fn the_deployment_keeps_its_image_until_every_node_has_pulled_the_new_one() {
        // The DaemonSet is not there yet, still pulls the old image, or has not observed the new.
        assert_eq!(gets(Some("web:1"), None), "web:1");
        assert_eq!(gets(Some("web:1"), Some(&ds("web:1", true, 3, 3, 3))), "web:1");
        assert_eq!(gets(Some("web:1"), Some(&ds("web:2", false, 3, 3, 3))), "web:1");
        // Pulling: updated pods not ready yet, or old pods still counted as ready.
        assert_eq!(gets(Some("web:1"), Some(&ds("web:2", true, 3, 3, 2))), "web:1");
        assert_eq!(gets(Some("web:1"), Some(&ds("web:2", true, 3, 0, 3))), "web:1");
        // Every scheduled pod updated and ready: the Deployment rolls.
        assert_eq!(gets(Some("web:1"), Some(&ds("web:2", true, 3, 3, 3))), "web:2");
        // A DaemonSet that schedules on no node has nothing to wait for.
        assert_eq!(gets(Some("web:1"), Some(&ds("web:2", true, 0, 0, 0))), "web:2");
    }

    #[test]
    fn a_new_deployment_or_one_that_runs_the_image_already_waits_for_nothing() {
        assert_eq!(gets(None, None), "web:2", "the first creation does not wait");
        assert_eq!(gets(Some("web:2"), Some(&ds("web:2", true, 4, 3, 3))), "web:2", "a new node pulls it meanwhile");
        let check = decide("web:2", Some("web:2"), Some(&ds("web:2", true, 4, 4, 3)), at(0), at(9999), HOUR);
        assert_eq!((check.desired, check.pulled, check.timed_out), (4, 3, None), "no deadline without a hold");
    }

    #[test]
    fn the_deadline_counts_from_the_start_of_the_warm_up() {
        let p = ds("web:2", true, 3, 3, 1);
        let check = decide("web:2", Some("web:1"), Some(&p), at(0), at(600), HOUR);
        assert_eq!((check.pulled, check.left), (1, Some(Duration::from_secs(3000))));
        assert!(check.timed_out.is_none());
        let late = decide("web:2", Some("web:1"), Some(&p), at(0), at(3600), HOUR);
        assert_eq!(late.holding.as_deref(), Some("web:1"), "the old pods keep serving past the deadline");
        assert_eq!(late.timed_out.map(|t| t.deadline_seconds), Some(3600));
    }

    #[test]
    fn the_release_of_a_held_image_is_the_apps_change() {
        let holding = decide("web:2", Some("web:1"), None, at(0), at(1), HOUR);
        let released = decide("web:2", Some("web:1"), Some(&ds("web:2", true, 1, 1, 1)), at(0), at(1), HOUR);
        assert_ne!(inputs("g2".into(), Some(&holding)), "g2");
        assert_eq!(inputs("g2".into(), Some(&released)), "g2");
        assert_eq!(inputs("g2".into(), None), "g2", "apps without warm-up keep their inputs");
    }

    #[test]
    fn a_pod_not_scheduled_is_named_by_the_node_its_daemon_set_made_it_for() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-warmup-x"},
            "spec": {"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["win-3"]}]}]}}}}
        }))
        .expect("a pod");
        assert_eq!(node_of(&pod), "win-3 (its pod is not scheduled)");
        let mut running = pod.clone();
        running.spec.as_mut().expect("spec").node_name = Some("win-3".into());
        assert_eq!(node_of(&running), "win-3");
        let mut bare = pod;
        bare.spec.as_mut().expect("spec").affinity = None;
        assert_eq!(node_of(&bare), "pod web-warmup-x (not scheduled)");
    }

    #[test]
    fn a_new_image_starts_a_new_warm_up() {
        let p = ds("web:2", true, 3, 3, 3);
        assert_eq!(started(Some(&p), "web:2", at(500)), at(0), "the DaemonSet's start is kept");
        assert_eq!(started(Some(&p), "web:3", at(500)), at(500), "another image starts now");
        assert_eq!(started(None, "web:2", at(500)), at(500));
    }
}
