//! Which Secrets exist, and at which `resourceVersion`, from a watch of their metadata: the
//! operator never reads a Secret's data, and no longer asks the API server about each Secret an
//! app references on every reconcile (a Stalled app with 16 SMB volumes made 16 GETs a look).
//!
//! Kept only when the operator may list and watch Secrets (config/components/secret-check); the
//! index holds a namespace, a name and a version per Secret, nothing else.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;

/// What the index knows of one Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// It exists, at this `resourceVersion`.
    Exists(String),
    /// It does not exist.
    Missing,
    /// The index has not listed yet: the operator cannot tell.
    Unknown,
}

#[derive(Debug, Default)]
struct State {
    live: HashMap<(String, String), String>,
    /// While the watch lists afresh: the new index, swapped in when the list is complete.
    relisting: Option<HashMap<(String, String), String>>,
    listed: bool,
}

/// The Secrets' versions, kept by the metadata watch (see [`SecretIndex::observe`]).
#[derive(Debug, Default)]
pub struct SecretIndex(Mutex<State>);

fn key(s: &PartialObjectMeta<Secret>) -> Option<((String, String), String)> {
    let m = &s.metadata;
    Some(((m.namespace.clone()?, m.name.clone()?), m.resource_version.clone().unwrap_or_default()))
}

impl SecretIndex {
    /// Follows one event of the Secrets' metadata watch.
    pub fn observe(&self, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        let Ok(mut state) = self.0.lock() else { return };
        match event {
            watcher::Event::Apply(s) => {
                if let Some((k, rv)) = key(s) {
                    state.live.insert(k, rv);
                }
            }
            watcher::Event::Delete(s) => {
                if let Some((k, _)) = key(s) {
                    state.live.remove(&k);
                }
            }
            watcher::Event::Init => state.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(s) => {
                if let Some((k, rv)) = key(s) {
                    state.relisting.get_or_insert_with(HashMap::new).insert(k, rv);
                }
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = state.relisting.take() {
                    state.live = fresh;
                }
                state.listed = true;
            }
        }
    }

    /// What is known of the Secret `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Known {
        let Ok(state) = self.0.lock() else { return Known::Unknown };
        if !state.listed {
            return Known::Unknown;
        }
        match state.live.get(&(namespace.to_owned(), name.to_owned())) {
            Some(rv) => Known::Exists(rv.clone()),
            None => Known::Missing,
        }
    }

    /// Whether the first list is complete.
    pub fn listed(&self) -> bool {
        self.0.lock().is_ok_and(|s| s.listed)
    }

    /// Secrets known.
    pub fn len(&self) -> usize {
        self.0.lock().map(|s| s.live.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(ns: &str, name: &str, rv: &str) -> PartialObjectMeta<Secret> {
        let mut s = PartialObjectMeta::<Secret>::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s.metadata.resource_version = Some(rv.into());
        s
    }

    #[test]
    fn secrets_are_unknown_until_listed_then_exist_or_are_missing() {
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        let index = SecretIndex::default();
        assert_eq!(index.get("a", "creds"), Known::Unknown);
        for e in [Init, InitApply(secret("a", "creds", "1")), InitApply(secret("b", "creds", "2")), InitDone] {
            index.observe(&e);
        }
        assert_eq!(index.get("a", "creds"), Known::Exists("1".into()));
        assert_eq!(index.get("a", "other"), Known::Missing);
        index.observe(&Apply(secret("a", "creds", "5")));
        assert_eq!(index.get("a", "creds"), Known::Exists("5".into()));
        index.observe(&Delete(secret("b", "creds", "2")));
        assert_eq!(index.get("b", "creds"), Known::Missing);
        // A relist drops what went meanwhile, once complete.
        index.observe(&Init);
        index.observe(&InitApply(secret("c", "x", "9")));
        assert_eq!(index.get("a", "creds"), Known::Exists("5".into()), "answers as before until the list is done");
        index.observe(&InitDone);
        assert_eq!((index.get("a", "creds"), index.get("c", "x")), (Known::Missing, Known::Exists("9".into())));
        assert_eq!(index.len(), 1);
    }
}
