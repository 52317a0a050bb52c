//! The reconcile of one WindowsApp, step by step: admit, resolve, build, pace, apply, prune, observe,
//! report. Each step lives in a module of its own; this one reads like their table of contents.
//! Deletion goes through the finalizer ([`finalizer`]); failures back off ([`error_policy`]).

pub mod admit;
pub mod applier;
pub mod apply;
pub mod claims;
pub mod context;
pub mod credspecs;
pub mod detached;
pub mod diagnose;
pub mod diff;
pub mod echoes;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod index;
pub mod kinds;
pub mod lean;
pub mod lean_app;
pub mod lists;
pub mod memory;
pub mod migration;
pub mod observe;
pub mod pace;
pub mod placement;
pub mod pods;
pub mod prune;
pub mod report;
pub mod resolve;
pub mod secrets;
pub mod shard;
pub mod signatures;
pub mod status;
pub mod strays;
pub mod timing;
pub mod turns;
pub mod warmup;
pub mod watch;
pub mod wiring;
pub mod withdraw;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::{info, instrument, warn};

use self::applier::{Applier, Flow};
pub use self::context::{Context, Settings, Stores, Watched};
use self::error::{Error, Result};
pub use self::finalizer::FINALIZER;
use self::report::Report;
use self::status::Outcome;
pub use self::timing::{Looked, MAX_STALLED_WAIT, Rollout, backoff, next_look, stalled_wait, wait_interval};
use crate::api::{GROUP, VERSION, WindowsApp};
use crate::build::meta::AppKey;
use crate::conditions as c;
use crate::validate::ValidatedApp;

/// [`reconcile`] with its panics caught: a panic ends that reconcile with an error and a retry
/// instead of unwinding through the controller and ending the process (and every other tenant's
/// reconciles with it).
pub async fn reconcile_guarded(guard: Arc<Watched>, ctx: Arc<Context>) -> Result<Action> {
    caught(reconcile(guard, ctx)).await
}

/// Polls `work` where it is (the caller's task and tracing span); a panic in it is an
/// [`Error::Aborted`]. The runtime has one thread, so a task of its own would add an allocation
/// per reconcile and no parallelism.
async fn caught<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(work).catch_unwind().await.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|m| m.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Err(Error::Aborted(format!("panicked: {message}")))
    })
}

/// Entry point of one reconcile.
#[instrument(skip_all, fields(namespace = guard.namespace().unwrap_or_default(), name = guard.name_any()))]
pub async fn reconcile(guard: Arc<Watched>, ctx: Arc<Context>) -> Result<Action> {
    // A reconcile against a cache that is still filling would re-apply every child.
    let _ = ctx.caches_ready.clone().wait_for(|r| *r).await;
    let app = match guard.app() {
        Ok(app) => app,
        Err(invalid) => return undecodable(&ctx, &invalid).await,
    };
    let app = &app;
    let started = Instant::now();
    let key: AppKey = (app.namespace().ok_or(Error::MissingMetadata)?, app.name_any());
    let result = match (app.metadata.deletion_timestamp.is_some(), finalizer::has_finalizer(&app.metadata)) {
        (true, true) => finalizer::cleanup(app, &ctx).await,
        (true, false) => Ok(Action::await_change()),
        (false, _) => reconcile_app(app, &ctx, &key).await,
    };
    ctx.metrics.reconciled(started.elapsed());
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, next = ?result.as_ref().ok(), "reconciled");
    if result.is_ok() {
        ctx.memory.with(&key, |s| s.failures = 0);
    }
    result
}

/// The steps of a reconcile, in order. Any failure lands in the status before it is retried.
async fn reconcile_app(app: &WindowsApp, ctx: &Context, key: &AppKey) -> Result<Action> {
    let mut report = Report::new(app, ctx);

    // 1. Admit: a spec that breaks the CRD's schema (stored while the CRD was looser), the
    //    operator's rules or the platform's policy waits for a change; nothing is applied or
    //    deleted meanwhile, but a workload that uses a power no longer granted.
    let valid = match admit::admit_cached(ctx, app, key) {
        Ok(valid) => valid,
        Err(refused) => {
            let note = withdraw::withdraw(ctx, app, key, &refused.policy).await?;
            report.write(&refused.outcome(note)).await?;
            return Ok(Action::await_change());
        }
    };
    report.windows_build = valid.placement.version.map(|v| v.build().to_owned());

    // 2. Suspend: touch nothing, say so.
    if valid.suspend {
        report.write(&Outcome::Suspended).await?;
        return Ok(Action::await_change());
    }

    // 3-9. Resolve, build, pace, apply, prune, observe, report.
    match converge(app, ctx, key, &valid, &report).await {
        Err(error) => {
            let outcome = Outcome::Failed {
                reason: error.category(),
                message: error.to_string(),
                permanent: error.is_permanent(),
            };
            if let Err(status_error) = report.write(&outcome).await {
                warn!("could not report the failure in the status: {status_error}");
            }
            Err(error)
        }
        ok => ok,
    }
}

/// Steps 3 to 9 for an admitted app.
async fn converge(
    app: &WindowsApp,
    ctx: &Context,
    key: &AppKey,
    valid: &ValidatedApp,
    report: &Report<'_>,
) -> Result<Action> {
    // 3. Resolve what the build needs from the cluster: Secrets' versions, the gMSA grant, the
    //    image warm-up's platform default and start.
    let mut resolved = resolve::resolve(ctx, valid)?;
    warmup::settle(ctx, &mut resolved.app)?;

    // 4. Build the children (pure). A gMSA not allowed leaves out its RBAC, credspec and the
    //    workload, so that they are pruned; the pods are judged as they would run anyway.
    let mut children = crate::build::build_with(&resolved.app, resolved.gmsa_grant())?;
    let pod = crate::build::workload::Workload::of(&resolved.app)?.template().spec.clone();

    // 5. The finalizer, before the first child that needs it; the replica count to keep; the
    //    image to keep while a new one warms up on the nodes.
    finalizer::ensure(ctx, &app.metadata, &children).await?;
    resolve::replicas(ctx, &resolved, &mut children).await?;
    let warm_up = warmup::hold(ctx, &resolved, &mut children)?;

    // 6. A change of the pod template that only the operator made waits for its turn.
    let paced = turns::take(ctx, app, key, &resolved, warm_up.as_ref(), &mut children);

    // 7. Apply in rounds; a child owned by someone else stops here.
    let target = apply::Target {
        client: &ctx.client,
        stores: &ctx.stores,
        memory: &ctx.memory,
        echoes: &ctx.stores.echoes,
        app: key,
        shard: ctx.settings.shard.as_deref(),
    };
    let (applied, mut keep) = match (Applier { target, metrics: &ctx.metrics }).apply(children).await? {
        (Flow::Applied(applied), keep) => (applied, keep),
        (Flow::Conflict(foreign), _) => return conflict(ctx, key, foreign, report, app).await,
    };
    events::applied(ctx, app, &applied).await;

    // 8. Prune what the spec no longer asks for (claims to retain are released).
    keep.extend(resolved.held());
    if let Some((kind, name)) = paced.held {
        keep.insert(kind, name);
    }
    let pruned = prune::prune(ctx, &resolved.app, &keep).await?;
    events::pruned(ctx, app, &pruned).await;

    // 9. Observe, report, and say when to look again.
    let workload_written = applied.workload_written;
    let seen = observe::Seen {
        resolved: &resolved,
        pod: pod.as_ref(),
        applied,
        pruned,
        stalled_since: status::stalled_since(app),
        turn: paced.turn,
    };
    let mut observations = observe::observe(ctx, seen).await?;
    observations.warm_up = warmup::observe(ctx, &resolved.app, warm_up).await;
    observations.turn = turns::settle(ctx, key, observations.turn, observations.workload.as_ref());
    look_again(ctx, app, key, report, observations, workload_written).await
}

/// Writes the status of an applied app and says when to look at it again.
async fn look_again(
    ctx: &Context,
    app: &WindowsApp,
    key: &AppKey,
    report: &Report<'_>,
    observations: status::Observations,
    workload_written: bool,
) -> Result<Action> {
    let warm_up_left = observations.warm_up.as_ref().and_then(|w| w.left);
    let rollout =
        observations.workload.as_ref().map(|w| Rollout { observed: w.up_to_date, idle: w.idle, deadline: w.deadline });
    let waiting = matches!(observations.turn, Some(pace::Turn::Waiting { .. }));
    // A new app whose workload was created just now and is not observed yet: the controller's
    // first status update of the workload triggers the next reconcile, which reports the rollout.
    // Until then, and at most `diagnose_after`, the app has no status, which every tool reads as
    // in progress. (An update does write it at once: the old status would say Ready.)
    let first = app.status.is_none();
    let defer = |new: &crate::api::WindowsAppStatus| {
        first
            && workload_written
            && c::find(&new.conditions, c::READY).is_some_and(|r| r.reason == c::reason::NEW_GENERATION)
    };
    let new = report.write_unless(&Outcome::Applied(observations), defer).await?;
    let holds = |t: &str| c::find(&new.conditions, t).is_some_and(|r| r.status == "True");
    if holds(c::STALLED) {
        return Ok(Action::requeue(stalled_wait(ctx.memory.stalled_look(key, app.metadata.generation))));
    }
    ctx.memory.with(key, |s| s.stalled = None);
    let looked = Looked {
        ready: holds(c::READY),
        stalled: false,
        status_deferred: defer(&new),
        controllers_active: ctx.stores.workload_activity.within(ctx.settings.diagnose_after),
        rollout,
    };
    // A warm-up that waits is looked at again by its deadline at the latest.
    let next = next_look(&looked, ctx.settings.diagnose_after).min(warm_up_left.unwrap_or(Duration::MAX));
    // A waiting app is woken when its turn comes; looking again now and then is the safety net.
    Ok(Action::requeue(if waiting { next.min(pace::WAITING_LOOK) } else { next }))
}

/// A child's name is taken by an object that is not the app's: Stalled, looked at again ever
/// more rarely (the object in the way is someone else's, usually not watched).
async fn conflict(
    ctx: &Context,
    key: &AppKey,
    foreign: apply::Foreign,
    report: &Report<'_>,
    app: &WindowsApp,
) -> Result<Action> {
    let msg = format!(
        "{} {} already exists and is not managed by this WindowsApp; delete or rename it, or rename the app",
        foreign.kind, foreign.name
    );
    report.write(&Outcome::Conflict(msg)).await?;
    Ok(Action::requeue(stalled_wait(ctx.memory.stalled_look(key, app.metadata.generation))))
}

/// An object that does not decode as a WindowsApp (stored under an older or looser schema):
/// reported by an event and otherwise left alone, except that its deletion always completes:
/// its cluster-scoped children are removed, its claims released and the finalizer with them.
async fn undecodable(ctx: &Context, invalid: &kube::core::error_boundary::InvalidObject) -> Result<Action> {
    let m = &invalid.metadata;
    if m.namespace.is_none() || m.name.is_none() {
        return Err(Error::MissingMetadata);
    }
    if m.deletion_timestamp.is_some() {
        if finalizer::has_finalizer(m) {
            let deleted = finalizer::release_deleted(ctx, m).await?;
            info!(deleted, "deleted an undecodable WindowsApp: removed its cluster-scoped children and the finalizer");
        }
        return Ok(Action::await_change());
    }
    warn!("cannot decode this WindowsApp, leaving it alone until it changes: {}", invalid.error);
    let reference = ObjectReference {
        api_version: Some(format!("{GROUP}/{VERSION}")),
        kind: Some("WindowsApp".into()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        ..ObjectReference::default()
    };
    let note = format!("the object does not match the WindowsApp schema: {}; fix or re-apply it", invalid.error);
    events::publish_to(ctx, &reference, EventType::Warning, "InvalidObject", note).await;
    Ok(Action::await_change())
}

/// Failed reconciles requeue with per-app exponential backoff (see [`backoff`]).
pub fn error_policy(app: Arc<Watched>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(error.category());
    let key = (app.namespace().unwrap_or_default(), app.name_any());
    let delay = backoff(ctx.memory.failed(&key));
    warn!(
        namespace = key.0,
        name = key.1,
        category = error.category(),
        retry_in_s = delay.as_secs(),
        "reconcile failed: {error}"
    );
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reconcile_that_panics_is_an_error_to_retry_not_a_crash() {
        let out: Result<()> = caught(async { panic!("a bug in {}", "build") }).await;
        let Err(error) = out else { panic!("a panic must come back as an error") };
        assert!(matches!(&error, Error::Aborted(m) if m == "panicked: a bug in build"), "{error}");
        assert!(!error.is_permanent(), "retried with backoff");
        let out: Result<()> = caught(async { panic!("static") }).await;
        assert!(matches!(&out, Err(Error::Aborted(m)) if m == "panicked: static"), "{out:?}");
        assert_eq!(caught(async { Ok(7) }).await.ok(), Some(7), "a result comes back as it is");
    }

    #[tokio::test]
    async fn a_caught_reconcile_logs_in_the_controllers_span() {
        use tracing::Instrument;
        let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
        let span = tracing::info_span!("reconciling object", object = "WindowsApp/shop/web");
        let seen = caught(async { Ok(tracing::Span::current().metadata().map(|m| m.name())) }).instrument(span).await;
        assert_eq!(seen.ok().flatten(), Some("reconciling object"), "the span that names the app");
    }
}
