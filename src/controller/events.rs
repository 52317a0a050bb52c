//! Events on WindowsApps: what a person should see in `kubectl describe` (children created,
//! pruned, released, adopted; a rollout complete; every Stalled reason and pod problem as a
//! Warning, once when it appears). Publishing never fails a reconcile: a failure is logged.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

use super::Context;
use super::applier::ApplyReport;
use super::diagnose;
use super::prune::Pruned;
use crate::api::{ReleasedClaim, WindowsApp, WindowsAppStatus};
use crate::conditions::{self as c, reason};

/// Longest event note (the API server's limit is 1 KiB).
const NOTE_MAX: usize = 1000;

/// Publishes an event on the app.
pub async fn publish(ctx: &Context, app: &WindowsApp, type_: EventType, reason: &str, note: String) {
    publish_to(ctx, &app.object_ref(&()), type_, reason, note).await;
}

/// Publishes an event on any object.
pub async fn publish_to(ctx: &Context, reference: &ObjectReference, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, NOTE_MAX)),
        action: "Reconcile".into(),
        secondary: None,
    };
    // Normal events (Created, RolloutComplete) happen once per change: a throwaway recorder sends
    // them without keeping a copy (2 per app, about 10 MB at 1,000 apps converging at once).
    let published = match type_ {
        EventType::Normal => Recorder::new(ctx.client.clone(), ctx.reporter.clone()).publish(&ev, reference).await,
        EventType::Warning => ctx.recorder.publish(&ev, reference).await,
    };
    if let Err(e) = published {
        warn!("could not publish event {reason}: {e}");
    }
}

/// The events of applying: children created, claims adopted, fields rewritten by admission.
pub async fn applied(ctx: &Context, app: &WindowsApp, report: &ApplyReport) {
    if !report.created.is_empty() {
        publish(ctx, app, EventType::Normal, "Created", format!("created {}", report.created.join(", "))).await;
    }
    if !report.adopted.is_empty() {
        let note = format!(
            "adopted PersistentVolumeClaim(s) {} again: released earlier from this app's volume(s) of the same name, with their data",
            report.adopted.join(", ")
        );
        publish(ctx, app, EventType::Normal, "Adopted", note).await;
    }
    for r in report.rewrites.iter().filter(|(_, new)| *new).map(|(r, _)| r) {
        let note = format!(
            "{} {}: {} is stored with another value than the operator applied (a mutating admission webhook or policy rewrote it); the operator keeps it and does not re-apply",
            r.kind, r.name, r.path
        );
        publish(ctx, app, EventType::Warning, reason::REWRITTEN_BY_ADMISSION, note).await;
    }
}

/// The events of pruning: children deleted, claims released.
pub async fn pruned(ctx: &Context, app: &WindowsApp, pruned: &Pruned) {
    if !pruned.deleted.is_empty() {
        publish(ctx, app, EventType::Normal, "Pruned", format!("deleted {}", pruned.deleted.join(", "))).await;
    }
    if !pruned.released.is_empty() {
        publish(ctx, app, EventType::Normal, "Released", released_note(&pruned.released)).await;
    }
}

/// The note of claims released.
pub fn released_note(released: &[ReleasedClaim]) -> String {
    let list: Vec<String> = released.iter().map(|r| format!("{} (volume {})", r.claim, r.volume)).collect();
    format!(
        "kept PersistentVolumeClaim(s) {} with their data (retentionPolicy Retain), released from the app: delete them when they are no longer needed, or add the volume back to adopt them",
        list.join(", ")
    )
}

/// The events of a status's transitions: Ready, Stalled, a pod problem, a failure retried, a
/// drain blocked.
pub async fn transitions(ctx: &Context, app: &WindowsApp, previous: Option<&WindowsAppStatus>, new: &WindowsAppStatus) {
    let was = |t: &str| previous.and_then(|p| c::find(&p.conditions, t)).map(|x| (x.status.clone(), x.reason.clone()));
    for cond in &new.conditions {
        if was(&cond.type_).as_ref() == Some(&(cond.status.clone(), cond.reason.clone())) {
            continue;
        }
        let (type_, reason) = match (cond.type_.as_str(), cond.status.as_str()) {
            (c::READY, "True") => (EventType::Normal, "RolloutComplete"),
            (c::STALLED, "True") => (EventType::Warning, cond.reason.as_str()),
            // A node drain waits on the app's PodDisruptionBudget.
            (c::NODE_DRAIN_ALLOWED, "False") => (EventType::Warning, cond.reason.as_str()),
            // A problem of the pods: progress until the rollout's deadline, but worth a Warning.
            (c::RECONCILING, "True") if diagnose::is_problem(&cond.reason) => {
                ctx.metrics.pod_problem(&cond.reason);
                (EventType::Warning, cond.reason.as_str())
            }
            // A transient failure: retried, but a person may want to know.
            (c::RECONCILING, "True") if cond.reason.ends_with("Failed") => (EventType::Warning, cond.reason.as_str()),
            _ => continue,
        };
        publish(ctx, app, type_, reason, cond.message.clone()).await;
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
