//! The GMSACredentialSpec cache. The CRD is the gMSA webhook's and may be installed or removed
//! while the operator runs: discovery is asked every [`CRD_POLL`], and the cache is swapped in or
//! out. It holds every credspec (the platform team's annotations on its own decide which
//! namespaces may use them), as they come.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{info, warn};

use super::wiring::slim;
use crate::build::identity;

/// The GMSACredentialSpec cache: present while the CRD is installed. The CRD may be installed
/// or removed while the operator runs; [`follow_credspec_crd`] notices either within
/// [`CRD_POLL`] and swaps the cache in or out.
#[derive(Clone)]
pub struct CredSpecs {
    pub(super) slot: Arc<RwLock<Option<Store<DynamicObject>>>>,
    pub(super) settled: tokio::sync::watch::Receiver<bool>,
}

impl CredSpecs {
    /// The cache, when the CRD is installed and the cache has synced.
    pub fn get(&self) -> Option<Store<DynamicObject>> {
        self.slot.read().ok().and_then(|s| s.clone())
    }

    /// Waits for the first answer on whether the CRD is installed (and its cache, if it is).
    pub async fn settled(&self) {
        let _ = self.settled.clone().wait_for(|s| *s).await;
    }
}

/// How often the operator asks discovery whether the GMSACredentialSpec CRD is installed.
pub const CRD_POLL: Duration = Duration::from_secs(30);
/// How soon it asks again after discovery failed.
const CRD_RETRY: Duration = Duration::from_secs(5);
/// How long the first check waits for the credspec cache before reconciles start anyway.
const CRD_SETTLE: Duration = Duration::from_secs(30);

pub type Events = futures::channel::mpsc::UnboundedSender<Result<DynamicObject, watcher::Error>>;

/// Follows the GMSACredentialSpec CRD through discovery (which any authenticated client may
/// read): starts the credspec watch when the CRD appears, stops it when the CRD goes, and sends
/// on `changed` each time so that the apps are checked again.
pub async fn follow_credspec_crd(
    client: Client,
    slot: Arc<RwLock<Option<Store<DynamicObject>>>>,
    settled: tokio::sync::watch::Sender<bool>,
    events: Events,
    changed: futures::channel::mpsc::UnboundedSender<()>,
) {
    let ar = identity::credspec_resource();
    let group_version = format!("{}/{}", ar.group, ar.version);
    let mut running: Option<(tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>)> = None;
    loop {
        let installed = match client.list_api_group_resources(&group_version).await {
            Ok(list) => Some(list.resources.iter().any(|r| r.name == ar.plural)),
            Err(kube::Error::Api(s)) if s.code == 404 => Some(false),
            Err(e) => {
                warn!("cannot tell whether the GMSACredentialSpec CRD is installed ({e}); asking again");
                None
            }
        };
        match (installed, running.is_some()) {
            (Some(true), false) => {
                let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
                let store = writer.as_reader();
                let stream = watcher(
                    Api::<DynamicObject>::all_with(client.clone(), &ar),
                    watcher::Config::default().any_semantic(),
                )
                .default_backoff()
                .modify(slim)
                .reflect(writer)
                .touched_objects();
                let tx = events.clone();
                let watch = tokio::spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while let Some(ev) = stream.next().await {
                        if tx.unbounded_send(ev).is_err() {
                            return;
                        }
                    }
                });
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let (s, c) = (slot.clone(), changed.clone());
                let ready = tokio::spawn(async move {
                    let _ = store.wait_until_ready().await;
                    if let Ok(mut slot) = s.write() {
                        *slot = Some(store);
                    }
                    info!("the GMSACredentialSpec CRD is installed; credspecs are watched");
                    let _ = c.unbounded_send(());
                    let _ = ready_tx.send(());
                });
                running = Some((watch, ready));
                if !*settled.borrow() {
                    let _ = tokio::time::timeout(CRD_SETTLE, ready_rx).await;
                }
            }
            (Some(false), true) => {
                if let Some((watch, ready)) = running.take() {
                    watch.abort();
                    ready.abort();
                }
                if let Ok(mut slot) = slot.write() {
                    *slot = None;
                }
                warn!("the GMSACredentialSpec CRD was removed; gMSA apps report it");
                let _ = changed.unbounded_send(());
            }
            (Some(false), false) if !*settled.borrow() => {
                warn!("the GMSACredentialSpec CRD is not installed: gMSA apps report GMSAReady=False until it is");
            }
            _ => {}
        }
        let _ = settled.send(true);
        tokio::time::sleep(if installed.is_some() { CRD_POLL } else { CRD_RETRY }).await;
    }
}
