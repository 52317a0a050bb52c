//! Errors of the reconcile, each with a bounded `category()` for metrics and event reasons.

use thiserror::Error;

use crate::build::BuildError;

#[derive(Debug, Error)]
pub enum Error {
    #[error("applying {kind} {name} failed: {source}; the operator retries with backoff")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind} {name} failed: {source}; the operator retries with backoff")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing {kind} for cleanup failed: {source}; the operator retries with backoff")]
    List {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of the WindowsApp failed: {0}; the operator retries with backoff")]
    Status(#[source] kube::Error),
    #[error("building the children failed: {0}")]
    Build(#[from] BuildError),
    #[error("serializing {0} failed: {1}")]
    Serialize(&'static str, #[source] serde_json::Error),
    #[error(
        "reading the cached {0} failed: {1}; this is a bug of the operator: please report it with the object's YAML"
    )]
    Cached(&'static str, #[source] serde_json::Error),
    #[error("adding the finalizer failed: {0}; the operator retries with backoff")]
    AddFinalizer(#[source] kube::Error),
    #[error(
        "releasing the PersistentVolumeClaim {name} failed: {source}; the claim is kept (nothing is deleted) and the operator retries with backoff"
    )]
    Release {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the WindowsApp has no namespace or name")]
    MissingMetadata,
    #[error("removing the finalizer failed: {0}; the operator retries with backoff")]
    RemoveFinalizer(#[source] kube::Error),
    #[error(
        "the reconcile stopped before its end ({0}); this is a bug of the operator: please report it with the operator's log; the operator retries with backoff"
    )]
    Aborted(String),
}

/// The HTTP status of an API error, if it is one.
fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl Error {
    /// A bounded label for metrics and the reason of Warning events.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Apply { .. } => crate::conditions::reason::APPLY_FAILED,
            Error::Delete { .. } => "DeleteFailed",
            Error::Release { .. } => "ReleaseFailed",
            Error::List { .. } => "ListFailed",
            Error::Status(_) => "StatusFailed",
            Error::Build(_) => "BuildFailed",
            Error::Serialize(..) => "SerializeFailed",
            Error::Cached(..) => "CacheReadFailed",
            Error::MissingMetadata => "MissingMetadata",
            Error::Aborted(_) => "ReconcileAborted",
            Error::AddFinalizer(_) | Error::RemoveFinalizer(_) => "FinalizerFailed",
        }
    }

    /// True when retrying cannot help until a person acts: the API server refused the request
    /// as invalid (400, 422: for example an immutable field) or forbidden (403), or the spec
    /// cannot be built. Other failures (timeouts, conflicts, 5xx) are transient.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Apply { source, .. }
            | Error::Delete { source, .. }
            | Error::Release { source, .. }
            | Error::List { source, .. }
            | Error::Status(source)
            | Error::AddFinalizer(source)
            | Error::RemoveFinalizer(source) => matches!(api_code(source), Some(400 | 403 | 422)),
            Error::Build(_) | Error::Serialize(..) | Error::Cached(..) | Error::MissingMetadata => true,
            Error::Aborted(_) => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
