//! The operator's clients of the API server. Each names its replica in the User-Agent (every
//! replica uses the same ServiceAccount, so the API server's audit log tells them apart by it) and
//! counts its requests (`winapp_api_requests`). The reconciles' client also passes every write
//! through the [fence](crate::fence); leader election has a client of its own.

use std::sync::Arc;

use http::HeaderValue;
use kube::Client;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder};
use thiserror::Error;
use tower::buffer::BufferLayer;
use tower::retry::RetryLayer;

use crate::fence::{Fence, FenceLayer};
use crate::metrics::Metrics;

/// Requests that may wait for the fenced stack at once (a queue, not a limit on requests in
/// flight: each is handed on as soon as it is queued).
const QUEUE: usize = 1024;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot find the Kubernetes API ({0}); set KUBECONFIG or run in a pod with a service account")]
    Config(#[source] kube::config::InferConfigError),
    #[error("cannot connect to the Kubernetes API ({0}); set KUBECONFIG or run in a pod with a service account")]
    Client(#[source] kube::Error),
    #[error(
        "the identity {identity:?} cannot be sent in a User-Agent header ({source}); choose an --identity of printable ASCII"
    )]
    UserAgent {
        identity: String,
        #[source]
        source: http::header::InvalidHeaderValue,
    },
}

/// Pure: the User-Agent of this replica's requests, for example
/// `winapp-operator/0.1.0 (web-7d9f-x2k4q)` or, for leader election,
/// `winapp-operator/0.1.0 (web-7d9f-x2k4q) leader-election`.
pub fn user_agent(identity: &str, part: Option<&str>) -> String {
    let base = format!("winapp-operator/{} ({identity})", env!("CARGO_PKG_VERSION"));
    match part {
        Some(part) => format!("{base} {part}"),
        None => base,
    }
}

/// kube's configuration (KUBECONFIG, or the pod's service account) with the User-Agent set.
async fn config(identity: &str, part: Option<&str>) -> Result<kube::Config, ClientError> {
    let mut config = kube::Config::infer().await.map_err(ClientError::Config)?;
    let agent = HeaderValue::from_str(&user_agent(identity, part))
        .map_err(|source| ClientError::UserAgent { identity: identity.to_owned(), source })?;
    config.headers.push((http::header::USER_AGENT, agent));
    Ok(config)
}

/// Counts every request by verb and resource.
fn count(
    metrics: Arc<Metrics>,
) -> tower::util::MapRequestLayer<impl FnMut(http::Request<Body>) -> http::Request<Body> + Clone> {
    tower::util::MapRequestLayer::new(move |req: http::Request<Body>| {
        metrics.api_request(req.method(), req.uri());
        req
    })
}

/// The client of the reconciles, the caches and the events: every write passes the fence.
///
/// kube retries answers 429, 503 and 504 inside its stack, where a retried write would not pass
/// the fence again, possibly minutes later; its retry is turned off and the same policy sits
/// outside the fence instead, so that every attempt is checked. Retrying needs a service that can
/// be cloned: the buffer makes kube's stack one. Must be called on the runtime that uses it.
pub async fn operator(identity: &str, metrics: Arc<Metrics>, fence: Arc<Fence>) -> Result<Client, ClientError> {
    let mut config = config(identity, None).await?;
    config.default_retry = false;
    Ok(ClientBuilder::try_from(config)
        .map_err(ClientError::Client)?
        .with_layer(&FenceLayer::new(fence, metrics.clone()))
        .with_layer(&BufferLayer::new(QUEUE))
        .with_layer(&RetryLayer::new(RetryPolicy::server_retry()))
        .with_layer(&count(metrics))
        .build())
}

/// The client of leader election, on its own thread and connections: the Lease is renewed
/// whatever the reconciles are doing. Its writes are fenced by the Lease's resourceVersion.
pub async fn election(identity: &str, metrics: Arc<Metrics>) -> Result<Client, ClientError> {
    let config = config(identity, Some("leader-election")).await?;
    Ok(ClientBuilder::try_from(config).map_err(ClientError::Client)?.with_layer(&count(metrics)).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_the_replica_and_its_part() {
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(user_agent("op-1", None), format!("winapp-operator/{v} (op-1)"));
        assert_eq!(user_agent("op-1", Some("leader-election")), format!("winapp-operator/{v} (op-1) leader-election"));
        assert!(HeaderValue::from_str(&user_agent("host-42", None)).is_ok());
        assert!(HeaderValue::from_str(&user_agent("bad\nname", None)).is_err());
    }
}
