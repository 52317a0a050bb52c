//! The `run` subcommand: logging, the operations endpoint, leader election (on its own thread,
//! see [`crate::election`]), and the controller with graceful shutdown on SIGTERM (in-flight
//! reconciles finish, the Lease is released). Every write passes the [fence](crate::fence).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often what is kept per app is checked against the apps that still exist.
const SWEEP: Duration = Duration::from_secs(60);

use futures::StreamExt;
use kube::Client;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::build::meta::AppKey;
use crate::client::ClientError;
use crate::controller::pace::Pacer;
use crate::controller::{self, Context, watch::Scope};
use crate::election::{Election, ElectionConfig, ElectionError};
use crate::fence::Fence;
use crate::lease::Timing;
use crate::metrics::{Metrics, Sample};
use crate::server::{self, Health, Role};

/// Settings of `run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub scope: Scope,
    pub http_addr: SocketAddr,
    pub leader_election: bool,
    pub lease_namespace: String,
    pub lease_name: String,
    pub identity: String,
    /// Shut down gracefully once the parent process is gone.
    pub exit_with_parent: bool,
    /// Reconciles that may run at once.
    pub concurrency: u16,
    /// How long a new leader may take to sync its caches before `/healthz` fails.
    pub sync_deadline: Duration,
    /// How long a rollout may make no progress before the operator reads the pods to say why.
    pub diagnose_after: Duration,
    /// How long the triggers of one app are gathered into one reconcile (the burst of watch
    /// events that follows applying its children).
    pub debounce: Duration,
    /// What `spec.podTemplate` may override: the rules the platform team allows.
    pub pod_policy: crate::policy::Policy,
    /// Paced rollouts of the operator's own changes at once (0: no limit).
    pub max_operator_rollouts: usize,
    /// Annotations on every app's pods.
    pub pod_annotations: std::collections::BTreeMap<String, String>,
    /// The image warm-up of apps whose spec does not say.
    pub warm_up: crate::validate::WarmUpDefault,
}

/// Why the operator stopped.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot serve /metrics, /healthz and /readyz on {addr} ({source}); choose another --http-addr")]
    Serve { addr: SocketAddr, source: std::io::Error },
    #[error("leader election on Lease {namespace}/{name} failed: {source}")]
    Lease { namespace: String, name: String, source: ElectionError },
    #[error(
        "lost the leader Lease (not renewed within {0:?}, or another replica took it); exiting so that a single leader reconciles"
    )]
    LostLease(Duration),
}

/// Runs until SIGTERM/SIGINT, or until the Lease is lost.
pub async fn run(config: RunConfig) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    let timing = Timing::default();
    let fence =
        Arc::new(if config.leader_election { Fence::elected(timing.renew_deadline) } else { Fence::unfenced() });
    let client = crate::client::operator(&config.identity, metrics.clone(), fence.clone()).await?;
    let health = Arc::new(Health::new(metrics.clone(), config.sync_deadline));
    let stop = stop_on_signal(config.exit_with_parent);
    let addr = config.http_addr;
    let server = tokio::spawn(server::serve(addr, health.clone(), flag_set(stop.clone())));

    // 1. Stand by until we lead (or are asked to stop). The election runs on a thread of its
    //    own, and renews the Lease there while we lead, opening the fence of our writes.
    let election = if config.leader_election {
        match elect(&config, timing, fence, &health, &metrics, &stop).await? {
            Some(election) => Some(election),
            None => {
                health.set(Role::Stopping);
                return finish(server, addr).await;
            }
        }
    } else {
        None
    };
    health.set(Role::Syncing);

    // 2. The controller, its caches and the tasks beside it.
    let controller = controller(&config, &client, &metrics, &health, stop).await;

    // 3. Reconcile until asked to stop, or until the Lease is lost.
    let lost = async {
        match &election {
            Some(e) => e.lost().await,
            None => futures::future::pending().await,
        }
    };
    tokio::select! {
        () = controller => info!("controller stopped"),
        () = lost => {
            // The fence already refuses our writes; dropping the controller also cancels the
            // in-flight reconciles.
            health.set(Role::Stopping);
            server.abort();
            return Err(RunError::LostLease(timing.renew_deadline));
        }
    }
    health.set(Role::Stopping);

    // 4. Hand the Lease over at once rather than let a standby wait for it to expire.
    if let Some(e) = election
        && let Err(source) = e.release().await
    {
        warn!("{}", lease_error(&config, source));
    }
    finish(server, addr).await
}

/// A flag that turns true on SIGTERM/SIGINT (or when the parent exits, if asked to follow it).
fn stop_on_signal(exit_with_parent: bool) -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown_signal() => {}
            () = parent_gone(exit_with_parent) => info!("parent process exited"),
        }
        info!("shutdown requested; finishing in-flight reconciles");
        let _ = stop_tx.send(true);
    });
    stop_rx
}

fn lease_error(config: &RunConfig, source: ElectionError) -> RunError {
    RunError::Lease { namespace: config.lease_namespace.clone(), name: config.lease_name.clone(), source }
}

/// Starts the election and waits until this replica leads (Some) or is asked to stop (None).
async fn elect(
    config: &RunConfig,
    timing: Timing,
    fence: Arc<Fence>,
    health: &Arc<Health>,
    metrics: &Arc<Metrics>,
    stop: &watch::Receiver<bool>,
) -> Result<Option<Election>, RunError> {
    let election_config = ElectionConfig {
        namespace: config.lease_namespace.clone(),
        name: config.lease_name.clone(),
        identity: config.identity.clone(),
        timing,
    };
    let mut election = Election::start(election_config, fence, health.clone(), metrics.clone(), stop.clone())
        .map_err(|e| lease_error(config, e))?;
    let leading = election.wait_leading().await.map_err(|e| lease_error(config, e))?;
    Ok(leading.then_some(election))
}

/// The controller over its caches, with the tasks beside it: the metrics' sampler, the follower
/// of apps that left the selector, the sweep of deleted apps from memory, and the readiness flip
/// once the caches are synced. The GMSACredentialSpec CRD is followed while running: installed or
/// removed later, it is noticed without a restart. Resolves when the controller has stopped.
async fn controller(
    config: &RunConfig,
    client: &Client,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
    stop: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + use<> {
    let watch_secrets = may_watch_secrets(client, config.scope.namespace.as_deref()).await;
    log_settings(config, watch_secrets);
    // An app whose turn of a paced rollout comes is reconciled at once.
    let (wake, woken) = futures::channel::mpsc::unbounded::<AppKey>();
    let pacer = Pacer::new(config.max_operator_rollouts, Some(wake));
    let memory = Arc::new(controller::memory::AppMemory::with_pacer(pacer));
    let scope = Scope {
        lists: config.scope.lists.resolve(client, config.scope.namespace.as_deref()).await,
        ..config.scope.clone()
    };
    let (ctrl, stores) = controller::watch::controller(client, &scope, watch_secrets, metrics, &memory);
    let ctrl = ctrl.reconcile_on(woken.map(|(namespace, name)| ObjectRef::new(&name).within(&namespace)));
    let sampled = (stores.clone(), memory.clone());
    metrics.sample_caches_with(Box::new(move || Sample {
        caches: sampled.0.sizes(),
        remembered_apps: sampled.1.len(),
        rollouts: sampled.1.pacer.counts(),
    }));
    let reporter = Reporter { controller: "winapp-operator".into(), instance: Some(config.identity.clone()) };
    let (caches_tx, caches_ready) = watch::channel(false);
    let settings = controller::Settings {
        diagnose_after: config.diagnose_after,
        policy: config.pod_policy.clone(),
        pod_annotations: config.pod_annotations.clone(),
        warm_up: config.warm_up.clone(),
        shard: config.scope.shard.clone(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        stores.clone(),
        reporter,
        metrics.clone(),
        caches_ready,
        memory,
        settings,
    ));
    // Apps that left the selector still get their deletion handled (controller::strays).
    if let Some(selector) = config.scope.selector.clone() {
        tokio::spawn(controller::strays::follow(ctx.clone(), config.scope.namespace.clone(), selector));
    }
    let (apps, c) = (ctrl.store(), ctx.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SWEEP).await;
            c.forget_deleted(&apps);
        }
    });
    let h = health.clone();
    tokio::spawn(async move {
        stores.wait_until_ready().await;
        let _ = caches_tx.send(true);
        h.set(Role::Leading);
        info!("caches synced");
    });
    let runtime_config =
        kube::runtime::controller::Config::default().concurrency(config.concurrency).debounce(config.debounce);
    ctrl.with_config(runtime_config)
        .graceful_shutdown_on(flag_set(stop))
        .run(controller::reconcile_guarded, controller::error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::debug!(object = %obj, "reconcile failed: {e}");
                }
                // An app deleted between its trigger and its turn: nothing to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(object = %obj, "gone before its reconcile");
                }
                Err(e) => warn!("controller: {e}"),
            }
        })
}

/// Says at start what the operator may see and what the platform granted every app.
fn log_settings(config: &RunConfig, watch_secrets: bool) {
    if watch_secrets {
        info!("watching Secret metadata: a change of a Secret that config files come from rolls the pods");
    } else {
        info!(
            "may not list and watch Secrets (config/components/secret-check grants it): config files from Secrets are mounted, but a change of such a Secret does not roll the pods"
        );
    }
    if let Some(shard) = &config.scope.shard {
        info!(
            shard,
            "a shard: every child applied carries winapp.dev/shard={shard}, and only children with it are cached"
        );
    }
    let allowed: Vec<&str> = config.pod_policy.allowed().map(crate::policy::Rule::name).collect();
    let taints: Vec<String> = config.pod_policy.taints().map(ToString::to_string).collect();
    info!(
        allowed = ?allowed,
        taints = ?taints,
        "the platform's policy grants every app these rules (--allow) and taints (--allow-taint); Namespaces may grant more (winapp.dev/allow, winapp.dev/allowed-taints)"
    );
}

async fn finish(server: tokio::task::JoinHandle<std::io::Result<()>>, addr: SocketAddr) -> Result<(), RunError> {
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(RunError::Serve { addr, source }),
        Err(_) => Ok(()),
    }
}

/// Resolves when the flag becomes true; never, if its sender is gone without setting it.
async fn flag_set(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        futures::future::pending::<()>().await;
    }
}

/// Resolves when the parent process has exited (the process is re-parented); never when
/// `enabled` is false or on platforms without parent ids.
async fn parent_gone(enabled: bool) {
    #[cfg(unix)]
    if enabled {
        let parent = std::os::unix::process::parent_id();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if std::os::unix::process::parent_id() != parent {
                return;
            }
        }
    }
    futures::future::pending::<()>().await;
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Whether the operator may list and watch Secrets (metadata) where it watches WindowsApps; asked
/// once at start with SelfSubjectAccessReviews, which every authenticated user may create.
async fn may_watch_secrets(client: &Client, namespace: Option<&str>) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let reviews: kube::Api<SelfSubjectAccessReview> = kube::Api::all(client.clone());
    for verb in ["list", "watch"] {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: namespace.map(str::to_owned),
                    resource: Some("secrets".into()),
                    verb: Some(verb.into()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        match reviews.create(&Default::default(), &review).await {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => return false,
            Err(e) => {
                warn!("cannot ask whether the operator may watch Secrets: {e}");
                return false;
            }
        }
    }
    true
}
