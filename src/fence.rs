//! The write fence: the operator's writes reach the API server only while this replica still
//! leads, judged on the local monotonic clock at the moment each request is about to be sent.
//!
//! Each successful renewal of the Lease opens the fence until the time the renewal was *sent*
//! plus the renew deadline (10 s). A standby takes over only after it has seen the Lease record
//! unchanged for the lease duration (15 s), counted from when it read our last renewal, which the
//! API server wrote after we sent it: so the fence closes at least `lease_duration -
//! renew_deadline` (5 s) before any standby can lead, however long this process was frozen and
//! whatever the renewer thread has noticed yet. Once leadership is lost the fence stays closed.
//! Reads are never fenced.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use thiserror::Error;
use tower::{BoxError, Layer, Service};

use crate::metrics::Metrics;

/// Whether this replica may write now.
pub struct Fence {
    /// Without leader election there is nothing to fence.
    unfenced: bool,
    /// The origin of `until`.
    origin: Instant,
    /// Writes are allowed while now < origin + `until` nanoseconds (0: closed).
    until: AtomicU64,
    /// Leadership was lost or given up: closed for good.
    lost: AtomicBool,
    renew_deadline: Duration,
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("unfenced", &self.unfenced)
            .field("open", &self.open_at(Instant::now()))
            .field("lost", &self.lost.load(Ordering::SeqCst))
            .finish()
    }
}

impl Fence {
    /// A fence for a replica that takes part in leader election: closed until the Lease is
    /// acquired, then open up to `renew_deadline` after each successful renewal was sent.
    pub fn elected(renew_deadline: Duration) -> Self {
        Fence {
            unfenced: false,
            origin: Instant::now(),
            until: AtomicU64::new(0),
            lost: AtomicBool::new(false),
            renew_deadline,
        }
    }

    /// A fence that is always open (`--leader-elect=false`: the only replica).
    pub fn unfenced() -> Self {
        Fence { unfenced: true, ..Fence::elected(Duration::ZERO) }
    }

    /// The Lease was acquired or renewed by an attempt that started at `sent`: writes are allowed
    /// until `sent` + the renew deadline. A renewal never shortens the window (an older
    /// attempt's answer may arrive late), and nothing reopens a lost fence.
    pub fn renewed(&self, sent: Instant) {
        if self.lost.load(Ordering::SeqCst) {
            return;
        }
        let until = sent.saturating_duration_since(self.origin) + self.renew_deadline;
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.until.fetch_max(nanos, Ordering::SeqCst);
    }

    /// Leadership is lost (not renewed in time, another replica holds the Lease) or given up
    /// (released on shutdown): no write from now on.
    pub fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.until.store(0, Ordering::SeqCst);
    }

    /// Whether a write may be sent at `now`.
    pub fn open_at(&self, now: Instant) -> bool {
        if self.unfenced {
            return true;
        }
        if self.lost.load(Ordering::SeqCst) {
            return false;
        }
        let until = self.until.load(Ordering::SeqCst);
        until > 0 && now.saturating_duration_since(self.origin) < Duration::from_nanos(until)
    }

    /// Whether the write `method` `uri` may be sent now.
    pub fn check(&self, method: &http::Method, uri: &http::Uri) -> Result<(), NotLeading> {
        if self.open_at(Instant::now()) {
            Ok(())
        } else {
            Err(NotLeading { request: format!("{method} {}", uri.path()), renew_deadline: self.renew_deadline })
        }
    }
}

/// A write refused by the fence.
#[derive(Debug, Error)]
#[error(
    "refused to send {request}: this replica does not lead (it holds no Lease renewed within the last {renew_deadline:?}, or another replica took it), and only the leader may write; it stops, and the replica that holds the Lease reconciles"
)]
pub struct NotLeading {
    request: String,
    renew_deadline: Duration,
}

/// Pure: whether a request with this method changes something (POST, PUT, PATCH, DELETE).
pub fn is_write(method: &http::Method) -> bool {
    !matches!(*method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS)
}

/// A tower layer that refuses every write while the fence is closed. The check is made when the
/// request's future is first polled, that is right before the inner stack sends it (kube's stack
/// does nothing until then), not when the request was built.
#[derive(Clone)]
pub struct FenceLayer {
    fence: Arc<Fence>,
    metrics: Arc<Metrics>,
}

impl FenceLayer {
    pub fn new(fence: Arc<Fence>, metrics: Arc<Metrics>) -> Self {
        FenceLayer { fence, metrics }
    }
}

impl<S> Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced { inner, fence: self.fence.clone(), metrics: self.metrics.clone() }
    }
}

/// The service of [`FenceLayer`].
pub struct Fenced<S> {
    inner: S,
    fence: Arc<Fence>,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<http::Request<B>> for Fenced<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !is_write(req.method()) {
            let read = self.inner.call(req);
            return Box::pin(async move { read.await.map_err(Into::into) });
        }
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let write = self.inner.call(req);
        let (fence, metrics) = (self.fence.clone(), self.metrics.clone());
        Box::pin(async move {
            if let Err(refused) = fence.check(&method, &uri) {
                metrics.fenced_write(&method, &uri);
                tracing::warn!("{refused}");
                return Err(refused.into());
            }
            write.await.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(10);

    #[test]
    fn an_elected_fence_is_closed_until_the_lease_is_acquired() {
        let fence = Fence::elected(DEADLINE);
        assert!(!fence.open_at(Instant::now()));
        assert!(fence.check(&http::Method::POST, &http::Uri::from_static("/x")).is_err());
    }

    #[test]
    fn a_renewal_opens_the_fence_for_the_renew_deadline_from_when_it_was_sent() {
        let fence = Fence::elected(DEADLINE);
        let sent = Instant::now();
        fence.renewed(sent);
        assert!(fence.open_at(sent));
        assert!(fence.open_at(sent + Duration::from_millis(9_999)));
        // Counted from the send, not from when the answer came back: a slow answer does not
        // stretch the window towards the standby's takeover.
        assert!(!fence.open_at(sent + DEADLINE));
        assert!(!fence.open_at(sent + Duration::from_secs(60)));
    }

    #[test]
    fn later_renewals_extend_and_late_answers_of_older_ones_do_not_shorten() {
        let fence = Fence::elected(DEADLINE);
        let t0 = Instant::now();
        fence.renewed(t0 + Duration::from_secs(4));
        fence.renewed(t0);
        assert!(fence.open_at(t0 + Duration::from_secs(13)));
        assert!(!fence.open_at(t0 + Duration::from_secs(14)));
    }

    #[test]
    fn a_lost_fence_stays_closed_whatever_renewal_arrives_after() {
        let fence = Fence::elected(DEADLINE);
        let t0 = Instant::now();
        fence.renewed(t0);
        fence.lose();
        assert!(!fence.open_at(t0));
        fence.renewed(t0 + Duration::from_secs(1));
        assert!(!fence.open_at(t0 + Duration::from_secs(1)));
        let refused = fence.check(&http::Method::PATCH, &http::Uri::from_static("/x")).err().map(|e| e.to_string());
        let refused = refused.unwrap_or_default();
        assert!(refused.contains("this replica does not lead"), "{refused}");
    }

    #[test]
    fn without_leader_election_the_fence_is_always_open() {
        let fence = Fence::unfenced();
        assert!(fence.open_at(Instant::now() + Duration::from_secs(3600)));
        fence.lose();
        assert!(fence.check(&http::Method::POST, &http::Uri::from_static("/x")).is_ok());
    }

    #[test]
    fn the_window_closes_before_a_standby_can_take_over() {
        let t = crate::lease::Timing::default();
        // The standby waits lease_duration after it read our last renewal; we stop writing
        // renew_deadline after sending it. The difference is the margin for a write checked
        // just before the fence closed to reach the API server.
        assert!(t.lease_duration >= t.renew_deadline + Duration::from_secs(5));
    }

    #[test]
    fn only_writes_are_fenced() {
        for m in [http::Method::POST, http::Method::PUT, http::Method::PATCH, http::Method::DELETE] {
            assert!(is_write(&m), "{m}");
        }
        for m in [http::Method::GET, http::Method::HEAD, http::Method::OPTIONS] {
            assert!(!is_write(&m), "{m}");
        }
    }

    /// A service that counts the requests it was asked to send (when its future is polled).
    #[derive(Clone, Default)]
    struct Sent(Arc<AtomicU64>);

    impl Service<http::Request<()>> for Sent {
        type Response = ();
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let sent = self.0.clone();
            Box::pin(async move {
                sent.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    fn request(method: http::Method) -> http::Request<()> {
        let mut req = http::Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = http::Uri::from_static("/apis/apps/v1/namespaces/ns/deployments/web");
        req
    }

    #[tokio::test]
    async fn the_layer_refuses_writes_checked_when_sent_and_passes_reads() {
        let fence = Arc::new(Fence::elected(DEADLINE));
        let metrics = Arc::new(Metrics::default());
        let sent = Sent::default();
        let mut svc = FenceLayer::new(fence.clone(), metrics.clone()).layer(sent.clone());
        // Closed: the read goes out, the write does not.
        svc.call(request(http::Method::GET)).await.ok();
        let refused = svc.call(request(http::Method::PATCH)).await;
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("PATCH /apis/apps/v1/namespaces/ns/deployments/web"), "{message}");
        assert!(message.contains("does not lead"), "{message}");
        assert_eq!(sent.0.load(Ordering::SeqCst), 1);
        // Open: writes go out.
        fence.renewed(Instant::now());
        assert!(svc.call(request(http::Method::DELETE)).await.is_ok());
        assert_eq!(sent.0.load(Ordering::SeqCst), 2);
        // A write made while open but sent after the fence closed is refused.
        let late = svc.call(request(http::Method::PUT));
        fence.lose();
        assert!(late.await.is_err());
        assert_eq!(sent.0.load(Ordering::SeqCst), 2);
        let text = metrics.encode().unwrap_or_default();
        assert!(text.contains("winapp_fenced_writes_total{verb=\"patch\",resource=\"deployments\"} 1"), "{text}");
        assert!(text.contains("winapp_fenced_writes_total{verb=\"update\",resource=\"deployments\"} 1"), "{text}");
    }
}
