//! The `run` subcommand: logging, the operations endpoint, leader election, and the controller
//! with graceful shutdown on SIGTERM (in-flight reconciles finish, the Lease is released).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use thiserror::Error;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::build::identity;
use crate::controller::{self, Context, watch::Scope};
use crate::lease::LeaseLock;
use crate::metrics::Metrics;
use crate::server::{self, Health};

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
}

/// Why the operator stopped.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot connect to the Kubernetes API ({0}); set KUBECONFIG or run in a pod with a service account")]
    Client(#[source] kube::Error),
    #[error("cannot serve /metrics, /healthz and /readyz on {addr} ({source}); choose another --http-addr")]
    Serve { addr: SocketAddr, source: std::io::Error },
    #[error("leader election on Lease {namespace}/{name} failed: {source}; check the RBAC for leases")]
    Lease { namespace: String, name: String, source: kube::Error },
    #[error("lost the leader Lease (not renewed within {0:?}); exiting so that a single leader reconciles")]
    LostLease(Duration),
}

const LEASE_DURATION: Duration = Duration::from_secs(15);
const LEASE_RENEW: Duration = Duration::from_secs(2);

/// Runs until SIGTERM/SIGINT, or until the Lease is lost.
pub async fn run(config: RunConfig) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Client)?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health { metrics: metrics.clone(), ready: false.into() });

    let (stop_tx, stop_rx) = watch::channel(false);
    let exit_with_parent = config.exit_with_parent;
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown_signal() => {}
            () = parent_gone(exit_with_parent) => info!("parent process exited"),
        }
        info!("shutdown requested; finishing in-flight reconciles");
        let _ = stop_tx.send(true);
    });
    let stopped = |rx: watch::Receiver<bool>| flag_set(rx);

    let addr = config.http_addr;
    let server = tokio::spawn(server::serve(addr, health.clone(), stopped(stop_rx.clone())));

    let lock = config.leader_election.then(|| {
        LeaseLock::new(client.clone(), &config.lease_namespace, &config.lease_name, &config.identity, LEASE_DURATION)
    });
    let lease_err =
        |source| RunError::Lease { namespace: config.lease_namespace.clone(), name: config.lease_name.clone(), source };

    // Stand by until we lead (or are asked to stop).
    if let Some(lock) = &lock {
        health.ready.store(true, Ordering::Relaxed);
        info!(identity = lock.identity(), lease = %config.lease_name, "waiting to become leader");
        loop {
            if *stop_rx.borrow() {
                return finish(server, addr).await;
            }
            match lock.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => warn!("leader election attempt failed: {e}"),
            }
            let mut rx = stop_rx.clone();
            tokio::select! {
                () = tokio::time::sleep(LEASE_RENEW) => {}
                _ = rx.changed() => {}
            }
        }
        info!(identity = lock.identity(), "became leader");
        health.ready.store(false, Ordering::Relaxed);
    }

    // Renew while leading; losing the Lease stops the controller.
    let (lost_tx, lost_rx) = watch::channel(false);
    let renewer = lock.map(|lock| {
        let lock = Arc::new(lock);
        let l = lock.clone();
        let handle = tokio::spawn(async move {
            let mut last_ok = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(LEASE_RENEW).await;
                match l.try_acquire_or_renew().await {
                    Ok(true) => last_ok = tokio::time::Instant::now(),
                    Ok(false) => {
                        error!("another replica holds the Lease");
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Err(e) => warn!("renewing the Lease failed: {e}"),
                }
                if last_ok.elapsed() > LEASE_DURATION - LEASE_RENEW {
                    let _ = lost_tx.send(true);
                    return;
                }
            }
        });
        (lock, handle)
    });

    let credspecs_installed = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(&format!("gmsacredentialspecs.{}", identity::CREDSPEC_GROUP))
        .await
        .map(|c| c.is_some())
        // Not allowed to read CRDs: assume installed; the watch reports if it is not.
        .unwrap_or(true);
    if !credspecs_installed {
        warn!("the GMSACredentialSpec CRD is not installed: gMSA apps will report GMSAReady=False");
    }
    let (ctrl, stores) = controller::watch::controller(&client, &config.scope, credspecs_installed);
    let reporter = Reporter { controller: "winapp-operator".into(), instance: Some(config.identity.clone()) };
    let (caches_tx, caches_ready) = watch::channel(false);
    let ctx = Arc::new(Context {
        caches_ready,
        client: client.clone(),
        stores: stores.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        credspec_resource: identity::credspec_resource(),
        failures: Default::default(),
    });

    // Ready once every cache has synced (the controller drives the watches; reconciles wait
    // for the caches too).
    let h = health.clone();
    tokio::spawn(async move {
        stores.wait_until_ready().await;
        let _ = caches_tx.send(true);
        h.ready.store(true, Ordering::Relaxed);
        info!("caches synced");
    });

    let shutdown = {
        let (stop, lost) = (stop_rx.clone(), lost_rx.clone());
        async move {
            tokio::select! {
                () = flag_set(stop) => {}
                () = flag_set(lost) => {}
            }
        }
    };
    ctrl.graceful_shutdown_on(shutdown)
        .run(controller::reconcile, controller::error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::debug!(object = %obj, "reconcile failed: {e}");
                }
                Err(e) => warn!("controller: {e}"),
            }
        })
        .await;
    info!("controller stopped");

    if let Some((lock, handle)) = renewer {
        handle.abort();
        if *lost_rx.borrow() {
            let _ = finish(server, addr).await;
            return Err(RunError::LostLease(LEASE_DURATION));
        }
        if let Err(e) = lock.release().await {
            warn!("{}", lease_err(e));
        } else {
            info!("released the Lease");
        }
    }
    finish(server, addr).await
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
