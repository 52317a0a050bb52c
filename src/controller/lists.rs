//! How the caches that grow with the apps make their first list: a *streaming list* (one watch
//! with `sendInitialEvents`, the API server sends every object as an event, then a bookmark) where
//! the API server serves it, pages of a list otherwise.
//!
//! A streaming list is one request per cache instead of one per page, and it is decoded an object
//! at a time, so a restart neither waits for thousands of round trips nor holds a page of large
//! objects at once. Kubernetes serves it from 1.32 by default except 1.33 (its `WatchList`
//! feature gate was off there), and refuses the parameter where the gate is off: the operator asks
//! once at start, with a watch of WindowsApps that selects none.

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::runtime::watcher;
use tracing::info;

use crate::api::WindowsApp;

/// `--initial-list`: how caches list at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Lists {
    /// Streaming where the API server serves it (asked once at start), pages otherwise.
    #[default]
    Auto,
    /// Always a streaming list (the caches never sync where the API server refuses it).
    Streaming,
    /// Always pages of a list.
    Paged,
}

/// The bookmark annotation that closes a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

impl Lists {
    /// The strategy to use: `Auto` asks the API server, the others are kept.
    pub async fn resolve(self, client: &kube::Client, namespace: Option<&str>) -> Lists {
        match self {
            Lists::Streaming => {
                info!("caches list by streaming (--initial-list streaming)");
                return self;
            }
            Lists::Paged => {
                info!("caches list in pages (--initial-list paged)");
                return self;
            }
            Lists::Auto => {}
        }
        let api: Api<WindowsApp> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let mut tries = 0;
        loop {
            tries += 1;
            match streams(&api).await {
                Ok(()) => {
                    info!("caches list by streaming (the API server sends the initial events of a watch)");
                    return Lists::Streaming;
                }
                // Not an answer about streaming (the CRD not served yet, the network): ask again
                // for a while rather than list in pages for the life of the process.
                Err(Probe::Unanswered(why)) if tries < PROBE_TRIES => {
                    info!("cannot tell yet whether the API server streams lists ({why}); asking again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(Probe::Refused(why) | Probe::Unanswered(why)) => {
                    info!("caches list in pages: the API server does not stream lists ({why})");
                    return Lists::Paged;
                }
            }
        }
    }

    /// A watcher's configuration for a cache that grows with the apps; `page` objects a page when
    /// it lists in pages.
    pub fn config(self, page: u32) -> watcher::Config {
        match self {
            Lists::Streaming => watcher::Config::default().streaming_lists(),
            Lists::Auto | Lists::Paged => watcher::Config::default().page_size(page),
        }
    }
}

/// How often the question is asked when it gets no answer about streaming.
const PROBE_TRIES: u32 = 5;

/// Why a streaming list was not used.
#[derive(Debug)]
enum Probe {
    /// The API server refused the parameters or ignored them.
    Refused(String),
    /// No answer about streaming: an error of another kind.
    Unanswered(String),
}

/// A refusal of the request's parameters (the `WatchList` gate off), or another error.
fn classify(code: u16, message: String) -> Probe {
    match code {
        400 | 422 => Probe::Refused(message),
        _ => Probe::Unanswered(message),
    }
}

/// Whether a streaming list of `api` ends with its bookmark; why if it does not.
async fn streams(api: &Api<WindowsApp>) -> Result<(), Probe> {
    // Selects no object: the answer is the closing bookmark alone.
    let params = WatchParams::streaming_lists().labels("winapp.dev/list-probe=none").timeout(10);
    let mut events = match api.watch(&params, "0").await {
        Ok(events) => events.boxed(),
        Err(kube::Error::Api(status)) => return Err(classify(status.code, status.message.clone())),
        Err(e) => return Err(Probe::Unanswered(e.to_string())),
    };
    let first = tokio::time::timeout(Duration::from_secs(15), events.next())
        .await
        .map_err(|_| Probe::Unanswered("no answer within 15 s".into()))?;
    match first {
        Some(Ok(WatchEvent::Bookmark(b))) if b.metadata.annotations.contains_key(INITIAL_EVENTS_END) => Ok(()),
        Some(Ok(WatchEvent::Error(e))) => Err(classify(e.code, e.message.clone())),
        Some(Ok(_)) => Err(Probe::Refused("the watch sent no bookmark closing its initial events".into())),
        Some(Err(e)) => Err(Probe::Unanswered(e.to_string())),
        None => Err(Probe::Unanswered("the watch ended without an event".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_parameter_lists_in_pages_and_other_errors_ask_again() {
        assert!(matches!(classify(422, "sendInitialEvents is forbidden".into()), Probe::Refused(_)));
        assert!(matches!(classify(400, "bad".into()), Probe::Refused(_)));
        assert!(matches!(classify(404, "not found".into()), Probe::Unanswered(_)));
        assert!(matches!(classify(503, "unavailable".into()), Probe::Unanswered(_)));
    }

    #[test]
    fn each_strategy_configures_the_watcher_as_named() {
        use kube::runtime::watcher::InitialListStrategy;
        let streaming = Lists::Streaming.config(25);
        assert_eq!(streaming.initial_list_strategy, InitialListStrategy::StreamingList);
        let paged = Lists::Paged.config(25);
        assert_eq!(paged.initial_list_strategy, InitialListStrategy::ListWatch);
        assert_eq!(paged.page_size, Some(25));
    }
}
