//! The operations endpoint: `/metrics`, `/healthz`, `/readyz` and `/leaderz` on one port.
//!
//! - `/readyz` (readiness): 200 once the process has reached the API server and taken its role,
//!   standby or leader; it stays 200 across a change of role (no flip when a standby becomes
//!   leader and syncs its caches) and turns 503 only on shutdown.
//! - `/healthz` (liveness): 200 unless the process cannot make progress: it leads but its caches
//!   have not synced within [`SYNC_DEADLINE`] (for example the WindowsApp CRD is missing or a watch
//!   is refused), so a restart, or another replica, may do better.
//! - `/leaderz` (for scripts and people): 200 when this replica leads with synced caches and is
//!   reconciling; 503 otherwise, with the role in the body.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// How long a new leader may take to sync its caches before `/healthz` fails (default).
pub const SYNC_DEADLINE: Duration = Duration::from_secs(120);

/// The role of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Not yet in touch with the API server.
    Starting = 0,
    /// Waiting for the Lease.
    Standby = 1,
    /// Leading; the caches are filling.
    Syncing = 2,
    /// Leading with synced caches: reconciling.
    Leading = 3,
    /// Shutting down.
    Stopping = 4,
}

impl Role {
    fn from_u8(v: u8) -> Role {
        match v {
            1 => Role::Standby,
            2 => Role::Syncing,
            3 => Role::Leading,
            4 => Role::Stopping,
            _ => Role::Starting,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Standby => "standby: another replica leads",
            Role::Syncing => "leader: caches syncing",
            Role::Leading => "leader: caches synced, reconciling",
            Role::Stopping => "stopping",
        }
    }
}

/// What the endpoints report.
pub struct Health {
    pub metrics: Arc<Metrics>,
    sync_deadline: Duration,
    role: AtomicU8,
    /// When the role last changed.
    since: Mutex<Instant>,
}

/// Pure: the answers of the three probes (ready, healthy, leading) for a role held for `held`.
pub fn probes(role: Role, held: Duration, sync_deadline: Duration) -> (bool, bool, bool) {
    let ready = matches!(role, Role::Standby | Role::Syncing | Role::Leading);
    let healthy = !(role == Role::Syncing && held > sync_deadline);
    let leading = role == Role::Leading;
    (ready, healthy, leading)
}

impl Health {
    pub fn new(metrics: Arc<Metrics>, sync_deadline: Duration) -> Self {
        Health { metrics, sync_deadline, role: AtomicU8::new(Role::Starting as u8), since: Mutex::new(Instant::now()) }
    }

    pub fn set(&self, role: Role) {
        self.metrics.set_leader(role == Role::Leading);
        if self.role.swap(role as u8, Ordering::SeqCst) != role as u8
            && let Ok(mut s) = self.since.lock()
        {
            *s = Instant::now();
        }
    }

    pub fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::SeqCst))
    }

    fn state(&self) -> (Role, (bool, bool, bool)) {
        let role = self.role();
        let held = self.since.lock().map(|s| s.elapsed()).unwrap_or_default();
        (role, probes(role, held, self.sync_deadline))
    }
}

fn answer(ok: bool, body: String) -> (StatusCode, String) {
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    match h.metrics.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn healthz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    let (role, (_, healthy, _)) = h.state();
    if healthy {
        answer(true, "ok".into())
    } else {
        answer(
            false,
            format!(
                "{}: caches not synced within {}s; check the operator's log",
                role.describe(),
                SYNC_DEADLINE.as_secs()
            ),
        )
    }
}

async fn readyz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    let (role, (ready, _, _)) = h.state();
    answer(ready, if ready { "ok".into() } else { role.describe().into() })
}

async fn leaderz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    let (role, (_, _, leading)) = h.state();
    answer(leading, role.describe().into())
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/leaderz", get(leaderz))
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = SYNC_DEADLINE;

    #[test]
    fn readiness_never_flips_when_a_standby_becomes_leader() {
        let s = Duration::from_secs(1);
        for role in [Role::Standby, Role::Syncing, Role::Leading] {
            assert!(probes(role, s, D).0, "{role:?} must be ready");
        }
        assert!(!probes(Role::Starting, s, D).0);
        assert!(!probes(Role::Stopping, s, D).0);
    }

    #[test]
    fn liveness_fails_only_when_a_leader_cannot_sync_in_time() {
        assert!(probes(Role::Syncing, SYNC_DEADLINE, D).1);
        assert!(!probes(Role::Syncing, SYNC_DEADLINE + Duration::from_secs(1), D).1);
        assert!(probes(Role::Standby, Duration::from_secs(3600), D).1);
        assert!(probes(Role::Leading, Duration::from_secs(3600), D).1);
    }

    #[test]
    fn leaderz_is_ok_only_for_a_synced_leader() {
        let s = Duration::from_secs(1);
        assert!(probes(Role::Leading, s, D).2);
        for role in [Role::Starting, Role::Standby, Role::Syncing, Role::Stopping] {
            assert!(!probes(role, s, D).2);
        }
    }
}
