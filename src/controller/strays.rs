//! Apps that carry the operator's finalizer but no longer match its `--selector` (relabelled to
//! another shard, or to none): the operator no longer reconciles them, yet their deletion waits
//! for the finalizer. They must never strand: whatever `--selector` says, the operator notices
//! the deletion of such an app and cleans up as it would for its own (cluster-scoped children,
//! claims to retain, the finalizer).
//!
//! It watches the complement of its selector, metadata only and without a cache: one watch per
//! requirement of the selector, negated (`shard=a` becomes `shard!=a`), so that every app outside
//! the selector is seen by one of them. Only an app being deleted with the finalizer is acted on;
//! another operator whose selector matches it may do the same at the same time, which is harmless
//! (deletes of what is gone are no-ops, the finalizer's removal is guarded by its version).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use thiserror::Error;
use tracing::{info, warn};

use super::{Context, FINALIZER};
use crate::api::WindowsApp;

/// A label selector the operator cannot negate.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "cannot read the label selector {0:?}: write requirements such as key=value, key!=value, key, !key, key in (a,b), key notin (a,b), separated by commas"
)]
pub struct BadSelector(pub String);

/// The requirements of a selector, split at the commas between them (not those in `(...)`).
fn requirements(selector: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(selector[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(selector[start..].trim());
    out.into_iter().filter(|r| !r.is_empty()).collect()
}

/// Pure: one selector per requirement of `selector`, each matching exactly the objects that
/// requirement excludes; together they match every object `selector` does not.
pub fn complements(selector: &str) -> Result<Vec<String>, BadSelector> {
    let bad = || BadSelector(selector.to_owned());
    requirements(selector)
        .into_iter()
        .map(|r| {
            let words: Vec<&str> = r.split_whitespace().collect();
            if let [key, op, rest @ ..] = words.as_slice()
                && (*op == "in" || *op == "notin")
            {
                let values = rest.join(" ");
                let negated = if *op == "in" { "notin" } else { "in" };
                return Ok(format!("{key} {negated} {values}"));
            }
            if let Some((key, value)) = r.split_once("!=") {
                return Ok(format!("{}={}", key.trim(), value.trim()));
            }
            if let Some((key, value)) = r.split_once("==").or_else(|| r.split_once('=')) {
                return Ok(format!("{}!={}", key.trim(), value.trim()));
            }
            if let Some(key) = r.strip_prefix('!') {
                return Ok(key.trim().to_owned());
            }
            if r.contains(char::is_whitespace) || r.contains(['(', ')']) {
                return Err(bad());
            }
            Ok(format!("!{r}"))
        })
        .collect()
}

/// Watches the apps outside `selector` (in `namespace`, or all) and cleans up those deleted with
/// the operator's finalizer. Runs until the process stops.
pub async fn follow(ctx: Arc<Context>, namespace: Option<String>, selector: String) {
    let selectors = match complements(&selector) {
        Ok(s) => s,
        Err(e) => {
            warn!("{e}; apps that leave the operator's selector are not cleaned up when deleted");
            return;
        }
    };
    let in_flight: Arc<Mutex<BTreeSet<(String, String)>>> = Arc::default();
    let watches = selectors.into_iter().map(|labels| {
        let api: Api<PartialObjectMeta<WindowsApp>> = match &namespace {
            Some(ns) => Api::namespaced(ctx.client.clone(), ns),
            None => Api::all(ctx.client.clone()),
        };
        watcher(api, watcher::Config::default().labels(&labels).any_semantic()).default_backoff().touched_objects()
    });
    let mut events = futures::stream::select_all(watches.map(Box::pin));
    while let Some(event) = events.next().await {
        let Ok(app) = event else { continue };
        let m = app.metadata;
        let deleting = m.deletion_timestamp.is_some() && m.finalizers.iter().flatten().any(|f| f == FINALIZER);
        let (Some(ns), Some(name)) = (m.namespace.clone(), m.name.clone()) else { continue };
        if !deleting || !in_flight.lock().is_ok_and(|mut s| s.insert((ns.clone(), name.clone()))) {
            continue;
        }
        let (ctx, in_flight) = (ctx.clone(), in_flight.clone());
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(5);
            loop {
                match super::finalizer::release_deleted(&ctx, &m).await {
                    Ok(deleted) => {
                        info!(
                            namespace = ns,
                            name, deleted, "cleaned up an app outside the selector that was deleted with the finalizer"
                        );
                        break;
                    }
                    Err(e) => {
                        warn!(
                            namespace = ns,
                            name, "cleaning up an app outside the selector failed, retrying in {wait:?}: {e}"
                        );
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(300));
                    }
                }
            }
            if let Ok(mut s) = in_flight.lock() {
                s.remove(&(ns, name));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_requirement_is_negated_into_a_selector_of_its_own() {
        let cases: &[(&str, &[&str])] = &[
            ("shard=a", &["shard!=a"]),
            ("shard==a", &["shard!=a"]),
            ("shard!=a", &["shard=a"]),
            ("winapp.dev/test-group", &["!winapp.dev/test-group"]),
            ("!winapp.dev/test-group", &["winapp.dev/test-group"]),
            ("env in (a, b),tier notin (x)", &["env notin (a, b)", "tier in (x)"]),
            (" shard = a , team ", &["shard!=a", "!team"]),
        ];
        for (selector, want) in cases {
            let want: Vec<String> = want.iter().map(|w| (*w).to_owned()).collect();
            assert_eq!(complements(selector), Ok(want), "{selector}");
        }
        assert!(complements("a b c").is_err());
        assert_eq!(complements(""), Ok(vec![]), "no selector: every app is in scope");
    }
}
