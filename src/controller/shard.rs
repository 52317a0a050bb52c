//! Shards that split memory as well as work: an operator run with `--shard NAME` (beside its
//! `--selector` and `--lease-name`) puts the label `winapp.dev/shard=NAME` on every child it
//! applies, and its child caches watch only children with that label. Without it, every shard
//! cached every child in the cluster that carries the managed-by label.
//!
//! An app relabelled into another shard is adopted by the new shard's first reconcile: its
//! children are missing from that shard's caches, so each is looked up on the API server, found
//! to be the app's own (its app labels) and applied again with the new shard's label; the old
//! shard's watch then sees it leave. The app's watch selects disjoint apps in each shard, so no
//! app is reconciled by two shards (an overlap of selectors would make them relabel its
//! children back and forth).

use kube::Resource;
use thiserror::Error;

/// The label with the shard's name, on every child of a sharded operator.
pub const SHARD_LABEL: &str = "winapp.dev/shard";

/// A `--shard` value that cannot be a label value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "--shard {0:?} cannot be a label value: use at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit"
)]
pub struct BadShard(pub String);

/// Pure: the shard's name, if it can be a label value (and is not empty).
pub fn parse(name: &str) -> Result<String, BadShard> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let ok = name.len() <= 63
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(name.to_owned()) } else { Err(BadShard(name.to_owned())) }
}

/// Pure: the label selector of the children's watches: the managed-by label, and the shard's
/// label when the operator is a shard.
pub fn child_selector(manager: &str, shard: Option<&str>) -> String {
    let managed = format!("app.kubernetes.io/managed-by={manager}");
    match shard {
        Some(shard) => format!("{managed},{SHARD_LABEL}={shard}"),
        None => managed,
    }
}

/// Puts the shard's label on a child about to be applied (nothing without a shard).
pub fn label<K: Resource>(child: &mut K, shard: Option<&str>) {
    if let Some(shard) = shard {
        child.meta_mut().labels.get_or_insert_with(Default::default).insert(SHARD_LABEL.to_owned(), shard.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn a_shard_is_a_label_value() {
        for good in ["a", "shard-1", "eu.west_2", &"x".repeat(63)] {
            assert_eq!(parse(good).as_deref(), Ok(good));
        }
        for bad in ["", "-a", "a-", "a b", "a/b", &"x".repeat(64)] {
            assert_eq!(parse(bad), Err(BadShard(bad.to_owned())), "{bad:?}");
        }
        assert!(BadShard("a b".into()).to_string().contains("at most 63"));
    }

    #[test]
    fn a_shard_watches_only_its_children_and_labels_what_it_applies() {
        assert_eq!(child_selector("winapp-operator", None), "app.kubernetes.io/managed-by=winapp-operator");
        assert_eq!(
            child_selector("winapp-operator", Some("b")),
            "app.kubernetes.io/managed-by=winapp-operator,winapp.dev/shard=b"
        );
        let mut cm = ConfigMap::default();
        label(&mut cm, None);
        assert_eq!(cm.metadata.labels, None);
        label(&mut cm, Some("b"));
        label(&mut cm, Some("c"));
        let labels = cm.metadata.labels.unwrap_or_default();
        assert_eq!(labels.get(SHARD_LABEL).map(String::as_str), Some("c"), "the shard applying it wins");
        assert_eq!(labels.len(), 1);
    }
}
