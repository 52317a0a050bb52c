//! What the operator remembers of each app between reconciles, in one place with one
//! [`AppMemory::forget`]: consecutive failures (backoff), its last write of each child (writes
//! skipped), the schema check passed (not run again for an unchanged app), a node agent's rollout
//! progress (its deadline), how long it has been Stalled (its looks back off). An app's entry goes
//! when the app does: on its deletion (the app watch's delete event, or the finalizer's cleanup),
//! and for safety in a periodic sweep.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::jiff::Timestamp;

use super::pace::Pacer;
use crate::build::meta::AppKey;

/// Which child of an app: kind and name.
pub type ChildKey = (&'static str, String);

/// The operator's last write of a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub hash: Box<str>,
    /// The resourceVersion the cache showed before the write (None: created).
    pub before: Option<Box<str>>,
    /// The resourceVersion the server returned.
    pub after: Option<Box<str>>,
    pub rewrite: Option<Box<str>>,
}

impl Written {
    /// A write: its hash, the resourceVersions before and after it, the field rewritten.
    pub fn of(hash: &str, before: Option<String>, after: Option<String>, rewrite: Option<&str>) -> Self {
        Written {
            hash: hash.into(),
            before: before.map(Into::into),
            after: after.map(Into::into),
            rewrite: rewrite.map(Into::into),
        }
    }
}

/// The last write of each child of an app: a handful, kept as a list (a hash map of four
/// entries takes eight buckets) with boxed strings (no spare capacity).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrittenChildren(Vec<(&'static str, Box<str>, Written)>);

impl WrittenChildren {
    /// The last write of the child `name` of kind `kind`.
    pub fn get(&self, kind: &str, name: &str) -> Option<&Written> {
        self.0.iter().find(|(k, n, _)| *k == kind && &**n == name).map(|e| &e.2)
    }

    /// Records the last write of the child `name` of kind `kind`.
    pub fn insert(&mut self, kind: &'static str, name: &str, w: Written) {
        match self.0.iter_mut().find(|(k, n, _)| *k == kind && &**n == name) {
            Some(e) => e.2 = w,
            None => self.0.push((kind, name.into(), w)),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// When a node agent's DaemonSet last made progress: a change of generation, updated or
/// available pods (the Deployment controller keeps this for Deployments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub counts: (i64, i32, i32),
    pub since: Timestamp,
}

/// A Stalled app's generation, and the looks in a row that found it Stalled at it.
pub type StalledLooks = (Option<i64>, u32);

/// What is remembered of one app.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppState {
    /// Consecutive failed reconciles.
    pub failures: u32,
    /// The last write of each child.
    pub written: WrittenChildren,
    /// The signature of what the passed schema check read (see `admit::schema_signature`).
    pub schema_passed: Option<u64>,
    /// A node agent's rollout progress, while it is not Ready.
    pub progress: Option<Progress>,
    /// While the app is Stalled.
    pub stalled: Option<StalledLooks>,
}

/// Every app's [`AppState`], and the turns of paced rollouts ([`Pacer`]).
#[derive(Debug, Default)]
pub struct AppMemory {
    apps: Mutex<HashMap<AppKey, AppState>>,
    pub pacer: Pacer,
}

impl AppMemory {
    /// A memory whose rollouts of the operator's own changes are paced by `pacer`.
    pub fn with_pacer(pacer: Pacer) -> Self {
        AppMemory { apps: Mutex::default(), pacer }
    }

    /// Runs `f` on the app's state (created when there is none).
    pub fn with<R>(&self, app: &AppKey, f: impl FnOnce(&mut AppState) -> R) -> Option<R> {
        let mut apps = self.apps.lock().ok()?;
        Some(f(apps.entry(app.clone()).or_default()))
    }

    /// Reads the app's state, if there is one.
    pub fn read<R>(&self, app: &AppKey, f: impl FnOnce(&AppState) -> R) -> Option<R> {
        self.apps.lock().ok()?.get(app).map(f)
    }

    /// Forgets everything of the app, its turn of a paced rollout included.
    pub fn forget(&self, app: &AppKey) {
        if let Ok(mut apps) = self.apps.lock() {
            apps.remove(app);
        }
        self.pacer.done(app);
    }

    /// Forgets the apps for which `keep` is false.
    pub fn retain(&self, keep: impl Fn(&AppKey) -> bool) {
        if let Ok(mut apps) = self.apps.lock() {
            apps.retain(|k, _| keep(k));
        }
        self.pacer.retain(keep);
    }

    /// Apps remembered (the gauge `winapp_remembered_apps`).
    pub fn len(&self) -> usize {
        self.apps.lock().map(|a| a.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a look at a Stalled app at `generation`; returns how many looks in a row found it
    /// Stalled (1 after a change of generation).
    pub fn stalled_look(&self, app: &AppKey, generation: Option<i64>) -> u32 {
        self.with(app, |s| {
            let looks = match s.stalled {
                Some((g, n)) if g == generation => n.saturating_add(1),
                _ => 1,
            };
            s.stalled = Some((generation, looks));
            looks
        })
        .unwrap_or(1)
    }

    /// Records a failed reconcile; returns how many in a row failed.
    pub fn failed(&self, app: &AppKey) -> u32 {
        self.with(app, |s| {
            s.failures = s.failures.saturating_add(1);
            s.failures
        })
        .unwrap_or(1)
    }

    /// Records a DaemonSet's `counts` of the app; returns how long they have not changed. An
    /// app seen for the first time counts from `seed`, else from `now`.
    pub fn progress(
        &self,
        app: &AppKey,
        counts: (i64, i32, i32),
        seed: Option<Timestamp>,
        now: Timestamp,
    ) -> std::time::Duration {
        self.with(app, |s| {
            let p = s.progress.get_or_insert(Progress { counts, since: seed.unwrap_or(now) });
            if p.counts != counts {
                *p = Progress { counts, since: now };
            }
            now.duration_since(p.since).try_into().unwrap_or_default()
        })
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> AppKey {
        ("shop".to_owned(), name.to_owned())
    }

    #[test]
    fn everything_of_an_app_goes_with_one_forget() {
        let m = AppMemory::default();
        let web = key("web");
        m.failed(&web);
        m.stalled_look(&web, Some(2));
        m.with(&web, |s| {
            s.schema_passed = Some(7);
            s.written.insert("Service", "web", Written { hash: "h".into(), before: None, after: None, rewrite: None });
            s.written.insert("Service", "web", Written { hash: "i".into(), before: None, after: None, rewrite: None });
            assert_eq!((s.written.len(), s.written.get("Service", "web").map(|w| &*w.hash)), (1, Some("i")));
            assert_eq!(s.written.get("ConfigMap", "web"), None);
        });
        m.failed(&key("api"));
        assert_eq!(m.len(), 2);
        m.forget(&web);
        assert_eq!(m.read(&web, |s| s.clone()), None);
        assert_eq!(m.len(), 1);
        m.retain(|k| k.1 != "api");
        assert!(m.is_empty());
    }

    #[test]
    fn looks_at_a_stalled_app_count_until_its_generation_changes() {
        let m = AppMemory::default();
        let web = key("web");
        assert_eq!([1, 2, 3].map(|_| m.stalled_look(&web, Some(4))), [1, 2, 3]);
        assert_eq!(m.stalled_look(&web, Some(5)), 1, "a new generation starts again");
        assert_eq!([m.failed(&web), m.failed(&web)], [1, 2]);
    }

    #[test]
    fn a_daemon_sets_progress_counts_from_its_last_change() {
        let m = AppMemory::default();
        let web = key("agent");
        let t = |s: &str| s.parse::<Timestamp>().expect("a timestamp");
        let seed = Some(t("2026-01-01T00:00:00Z"));
        assert_eq!(m.progress(&web, (1, 0, 0), seed, t("2026-01-01T00:01:00Z")).as_secs(), 60);
        assert_eq!(m.progress(&web, (1, 0, 0), None, t("2026-01-01T00:02:00Z")).as_secs(), 120);
        assert_eq!(m.progress(&web, (1, 1, 0), None, t("2026-01-01T00:02:30Z")).as_secs(), 0, "progress");
    }
}
