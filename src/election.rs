//! Leader election on a thread of its own: a current-thread runtime and a client of its own take
//! and renew the Lease, so that neither a busy reconcile nor the reconciles' connections can
//! starve the renewals. Each successful renewal opens the [fence](crate::fence) that every write
//! of the operator passes; losing the Lease closes it for good, then tells the operator's runtime.

use std::sync::Arc;

use thiserror::Error;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::client::{self, ClientError};
use crate::fence::Fence;
use crate::lease::{Attempt, LeaseLock, Timing, renew_budget};
use crate::metrics::Metrics;
use crate::server::{Health, Role};

/// Which Lease, and who we are.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub timing: Timing,
}

#[derive(Debug, Error)]
pub enum ElectionError {
    #[error("cannot start the leader election thread ({0}); the machine may be out of threads or memory")]
    Thread(#[source] std::io::Error),
    #[error("cannot start the leader election runtime ({0}); the machine may be out of threads or memory")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the leader election thread stopped unexpectedly; this is a bug of the operator: please report it")]
    Gone,
}

/// Where the election stands, as the operator's runtime sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Candidate,
    Leading,
    /// Not renewed within the renew deadline, or another replica holds the Lease.
    Lost,
    /// Asked to stop before leading, or the Lease was released.
    Done,
}

/// The handle of the election thread.
pub struct Election {
    phase: watch::Receiver<Phase>,
    release: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<Result<(), ElectionError>>>,
}

impl Election {
    /// Starts competing for the Lease on a new thread. `stop` ends the candidacy.
    pub fn start(
        config: ElectionConfig,
        fence: Arc<Fence>,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> Result<Election, ElectionError> {
        let (phase_tx, phase) = watch::channel(Phase::Candidate);
        let (release, release_rx) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("leader-election".into())
            .spawn(move || {
                let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt.block_on(elect(config, fence, health, metrics, stop, phase_tx, release_rx)),
                    Err(e) => Err(ElectionError::Runtime(e)),
                };
                let _ = done_tx.send(result);
            })
            .map_err(ElectionError::Thread)?;
        Ok(Election { phase, release: Some(release), done: Some(done) })
    }

    /// Waits until we lead (true), or were asked to stop first (false).
    pub async fn wait_leading(&mut self) -> Result<bool, ElectionError> {
        let reached = self.phase.wait_for(|p| *p != Phase::Candidate).await.map(|p| *p);
        match reached {
            Ok(Phase::Leading) => Ok(true),
            Ok(_) => Ok(false),
            Err(_) => Err(self.outcome().await.err().unwrap_or(ElectionError::Gone)),
        }
    }

    /// Resolves once leadership is lost (or the election thread is gone, which cannot renew).
    pub async fn lost(&self) {
        let mut phase = self.phase.clone();
        let _ = phase.wait_for(|p| *p == Phase::Lost).await;
    }

    /// Gives the Lease up after the reconciles have finished: the fence closes first, then the
    /// Lease is released so that a standby takes over at once.
    pub async fn release(mut self) -> Result<(), ElectionError> {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        self.outcome().await
    }

    async fn outcome(&mut self) -> Result<(), ElectionError> {
        match self.done.take() {
            Some(done) => done.await.unwrap_or(Err(ElectionError::Gone)),
            None => Ok(()),
        }
    }
}

/// The election thread: stands by until it leads, then renews until the Lease is lost or the
/// operator asks to release it (a dropped handle counts as such a request).
async fn elect(
    config: ElectionConfig,
    fence: Arc<Fence>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    phase: watch::Sender<Phase>,
    release: oneshot::Receiver<()>,
) -> Result<(), ElectionError> {
    let client = client::election(&config.identity, metrics).await?;
    let lock = LeaseLock::new(client, &config.namespace, &config.name, &config.identity, config.timing);
    info!(identity = lock.identity(), lease = %config.name, "waiting to become leader");
    let Some(acquired) = stand_by(&lock, &fence, &health, stop).await else {
        let _ = phase.send(Phase::Done);
        return Ok(());
    };
    info!(identity = lock.identity(), "became leader");
    let _ = phase.send(Phase::Leading);
    tokio::select! {
        () = keep_leading(&lock, &fence, acquired) => {
            let _ = phase.send(Phase::Lost);
        }
        _ = release => {
            fence.lose();
            match tokio::time::timeout(config.timing.renew_deadline, lock.release()).await {
                Ok(Ok(())) => info!("released the Lease"),
                Ok(Err(e)) => warn!(
                    "releasing the Lease {}/{} failed: {e}; a standby takes over when it expires",
                    config.namespace, config.name
                ),
                Err(_) => warn!("releasing the Lease timed out; a standby takes over when it expires"),
            }
            let _ = phase.send(Phase::Done);
        }
    }
    Ok(())
}

/// Tries for the Lease every retry period until we hold it (when the winning attempt started) or
/// are asked to stop (None). Each attempt is bounded in time; the role turns Standby once the API
/// server answered.
async fn stand_by(lock: &LeaseLock, fence: &Fence, health: &Health, stop: watch::Receiver<bool>) -> Option<Instant> {
    let timing = lock.timing();
    let mut last_holder = String::new();
    loop {
        if *stop.borrow() {
            return None;
        }
        let sent = Instant::now();
        match tokio::time::timeout(timing.renew_deadline, lock.try_acquire_or_renew()).await {
            Ok(Ok(Attempt::Leading)) => {
                fence.renewed(sent.into_std());
                return Some(sent);
            }
            Ok(Ok(Attempt::HeldBy(holder))) => {
                health.set(Role::Standby);
                if holder != last_holder {
                    info!(leader = %holder, "another replica leads; standing by");
                    last_holder = holder;
                }
            }
            Ok(Ok(Attempt::Conflict)) => health.set(Role::Standby),
            Ok(Err(e)) => warn!("leader election attempt failed: {e}"),
            Err(_) => warn!("leader election attempt timed out after {:?}", timing.renew_deadline),
        }
        let mut rx = stop.clone();
        tokio::select! {
            () = tokio::time::sleep(timing.retry_period) => {}
            _ = rx.changed() => {}
        }
    }
}

/// Renews the Lease every retry period, opening the fence from each successful attempt's start
/// (the first is the one that `acquired` it). Returns once the Lease has not been renewed within
/// the renew deadline, or another replica holds it; the fence is closed for good before it returns.
async fn keep_leading(lock: &LeaseLock, fence: &Fence, acquired: Instant) {
    let timing = lock.timing();
    let mut last_ok = acquired;
    loop {
        tokio::time::sleep(timing.retry_period).await;
        let sent = Instant::now();
        let Some(budget) = renew_budget(last_ok, sent, timing.renew_deadline) else { break };
        match tokio::time::timeout(budget, lock.try_acquire_or_renew()).await {
            Ok(Ok(Attempt::Leading)) => {
                // The Lease was written after `sent`: a standby cannot take over before
                // `sent` + lease_duration on any clock that runs at about our pace.
                last_ok = sent;
                fence.renewed(sent.into_std());
            }
            Ok(Ok(Attempt::HeldBy(holder))) => {
                fence.lose();
                error!(leader = %holder, "another replica holds the Lease; stopping");
                return;
            }
            Ok(Ok(Attempt::Conflict)) => tracing::debug!("the Lease changed while renewing it; retrying"),
            Ok(Err(e)) => warn!("renewing the Lease failed: {e}"),
            Err(_) => warn!("renewing the Lease timed out"),
        }
        if renew_budget(last_ok, Instant::now(), timing.renew_deadline).is_none() {
            break;
        }
    }
    fence.lose();
    error!("could not renew the Lease within {:?}; stopping so that a single leader reconciles", timing.renew_deadline);
}
