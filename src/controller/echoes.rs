//! The operator's own writes of children, until the watch brings each back: that event shows
//! the child exactly as the reconcile that wrote it left it, so it triggers nothing.

use std::collections::HashMap;
use std::sync::Mutex;

/// Which object: kind, namespace (empty for cluster-scoped objects) and name.
type EchoKey = (String, String, String);

/// The `resourceVersion`s that the operator's own writes of children produced, until the watch
/// brings each back. That event shows the child exactly as the reconcile that wrote it left it:
/// reconciling the app again for it would find nothing to do, so [`Echoes::is_echo`] lets the
/// watch drop it. Any other change of the child (a status update, someone's edit, a deletion)
/// has another `resourceVersion` and triggers as before.
///
/// At most one entry per child, and only between a write and its watch event (a write that the
/// watch has already delivered is not recorded; see [`Echoes::expect`]).
#[derive(Debug, Default)]
pub struct Echoes(Mutex<HashMap<EchoKey, String>>);

impl Echoes {
    /// Records that the operator's write left `kind` `namespace/name` at `resource_version`,
    /// unless `cached_rv` (what the watch has delivered so far) shows that version already: its
    /// event has then been seen, and an entry would wait for an event that never comes.
    pub fn expect(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        resource_version: &str,
        cached_rv: Option<&str>,
    ) {
        if cached_rv == Some(resource_version) {
            return;
        }
        if let Ok(mut m) = self.0.lock() {
            m.insert(
                (kind.to_owned(), namespace.unwrap_or_default().to_owned(), name.to_owned()),
                resource_version.to_owned(),
            );
        }
    }

    /// Whether a watch event of `kind` `namespace/name` at `resource_version` is the echo of
    /// the operator's own write. The entry is forgotten either way: the next event is news.
    pub fn is_echo(&self, kind: &str, namespace: Option<&str>, name: &str, resource_version: Option<&str>) -> bool {
        let Ok(mut m) = self.0.lock() else { return false };
        if m.is_empty() {
            return false;
        }
        let key = (kind.to_owned(), namespace.unwrap_or_default().to_owned(), name.to_owned());
        m.remove(&key).is_some_and(|rv| Some(rv.as_str()) == resource_version)
    }

    /// Forgets the entry of a deleted object.
    pub fn forget(&self, kind: &str, namespace: Option<&str>, name: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&(kind.to_owned(), namespace.unwrap_or_default().to_owned(), name.to_owned()));
        }
    }

    /// How many writes await their watch event.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or_default()
    }

    /// Whether no write awaits its watch event.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_event_of_the_written_version_is_an_echo() {
        let e = Echoes::default();
        e.expect("Service", Some("shop"), "web", "7", Some("3"));
        // Another object, or the same name of another kind or namespace: not an echo.
        assert!(!e.is_echo("Service", Some("shop"), "api", Some("7")));
        assert!(!e.is_echo("ConfigMap", Some("shop"), "web", Some("7")));
        assert!(!e.is_echo("Service", Some("bank"), "web", Some("7")));
        assert!(e.is_echo("Service", Some("shop"), "web", Some("7")));
        // Once: the same version again (a relist) and any later one are news.
        assert!(!e.is_echo("Service", Some("shop"), "web", Some("7")));
        e.expect("Service", Some("shop"), "web", "9", None);
        assert!(!e.is_echo("Service", Some("shop"), "web", Some("8")), "someone else's change came first");
        assert!(!e.is_echo("Service", Some("shop"), "web", Some("9")), "the entry went with the first event");
        assert!(e.is_empty());
    }

    #[test]
    fn a_write_the_watch_has_delivered_already_is_not_awaited() {
        let e = Echoes::default();
        e.expect("Deployment", Some("shop"), "web", "7", Some("7"));
        assert!(e.is_empty());
        e.expect("ClusterRole", None, "winapp-shop-web", "5", None);
        assert_eq!(e.len(), 1);
        e.forget("ClusterRole", None, "winapp-shop-web");
        assert!(e.is_empty());
    }
}
