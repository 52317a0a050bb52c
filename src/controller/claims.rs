//! Claims are user data: the operator deletes one only when its volume says `retentionPolicy:
//! Delete`. Otherwise a claim the app no longer asks for (its volume renamed or removed, or the
//! app deleted) is *released*: the operator's labels, owner-UID annotation and owner reference
//! are removed, and annotations say which app and volume it came from and when; it keeps its
//! volume and data. Adding the volume back *adopts* it again.
//!
//! The patches are JSON Patches built from the claim's metadata, each guarded by a test of its
//! UID, so that they never touch a successor of the same name.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::error::{Error, Result};
use crate::api::ReleasedClaim;
use crate::build::meta;

/// Field manager of the release and adoption patches.
const MANAGER: &str = "winapp.dev/claims";

/// Pure: whether a claim is to be kept when its app no longer asks for it. Its retention
/// annotation says so; a claim without one (applied by a version before retention) is kept
/// unless it is the claim of an SMB share (bound by name to the operator's PersistentVolume,
/// with the data on the share), which goes as before.
pub fn retained(claim: &PersistentVolumeClaim) -> bool {
    let annotation = claim.metadata.annotations.as_ref().and_then(|a| a.get(meta::RETENTION_ANNOTATION));
    match annotation.map(String::as_str) {
        Some("Delete") => false,
        Some(_) => true,
        None => claim.spec.as_ref().and_then(|s| s.storage_class_name.as_deref()) != Some(""),
    }
}

/// A JSON Pointer token (`/` and `~` escaped).
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The labels the operator sets on every child and removes from a released claim (the app's own
/// labels, copied to its children, stay).
fn own_label_keys() -> [&'static str; 6] {
    [
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        meta::APP_LABEL,
        meta::NAMESPACE_LABEL,
    ]
}

/// Annotations of the operator's on a claim, removed on release.
const OWN_ANNOTATIONS: &[&str] = &[meta::OWNER_UID_ANNOTATION, meta::APPLIED_HASH, meta::RETENTION_ANNOTATION];

/// Pure: the JSON Patch that releases the claim with metadata `m` from the app whose UID is
/// `app_uid`: `released_from` and `at` go into the release annotations.
pub fn release_patch(m: &ObjectMeta, app_uid: Option<&str>, released_from: &str, at: &str) -> Value {
    let mut ops = vec![json!({"op": "test", "path": "/metadata/uid", "value": m.uid})];
    let labels = m.labels.clone().unwrap_or_default();
    for key in own_label_keys().into_iter().filter(|k| labels.contains_key(*k)) {
        ops.push(json!({"op": "remove", "path": format!("/metadata/labels/{}", token(key))}));
    }
    // Owner references to the app, last first so that the indexes stay right.
    let refs = m.owner_references.clone().unwrap_or_default();
    for (i, r) in refs.iter().enumerate().rev().filter(|(_, r)| app_uid.is_some_and(|u| r.uid == u)) {
        ops.push(json!({"op": "test", "path": format!("/metadata/ownerReferences/{i}/uid"), "value": r.uid}));
        ops.push(json!({"op": "remove", "path": format!("/metadata/ownerReferences/{i}")}));
    }
    let annotations = m.annotations.clone().unwrap_or_default();
    for key in OWN_ANNOTATIONS.iter().filter(|k| annotations.contains_key(**k)) {
        ops.push(json!({"op": "remove", "path": format!("/metadata/annotations/{}", token(key))}));
    }
    if m.annotations.is_none() {
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    for (key, value) in [(meta::RELEASED_FROM_ANNOTATION, released_from), (meta::RELEASED_AT_ANNOTATION, at)] {
        ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", token(key)), "value": value}));
    }
    Value::Array(ops)
}

/// Pure: whether the existing object `m` named like a claim of the app `namespace/app` is one
/// that the operator released from that app's volume of the same name, and so may adopt.
pub fn adoptable(m: &ObjectMeta, namespace: &str, app: &str) -> bool {
    let Some(volume) = m.name.as_deref().and_then(|n| meta::volume_of_claim(app, n)) else { return false };
    let from = m.annotations.as_ref().and_then(|a| a.get(meta::RELEASED_FROM_ANNOTATION));
    m.namespace.as_deref() == Some(namespace) && from == Some(&meta::released_from(namespace, app, volume))
}

/// Pure: the JSON Patch that takes the release annotations off a claim before it is adopted.
pub fn adopt_patch(m: &ObjectMeta) -> Value {
    let mut ops = vec![json!({"op": "test", "path": "/metadata/uid", "value": m.uid})];
    let annotations = m.annotations.clone().unwrap_or_default();
    for key in [meta::RELEASED_FROM_ANNOTATION, meta::RELEASED_AT_ANNOTATION] {
        if annotations.contains_key(key) {
            ops.push(json!({"op": "remove", "path": format!("/metadata/annotations/{}", token(key))}));
        }
    }
    Value::Array(ops)
}

/// Releases the claim with metadata `claim` of the app `namespace/app` (UID `uid`); returns
/// what the status lists, or None when the claim is gone or was replaced meanwhile.
pub async fn release<K>(
    api: &Api<K>,
    claim: &ObjectMeta,
    namespace: &str,
    app: &str,
    uid: Option<&str>,
) -> Result<Option<ReleasedClaim>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = claim.name.clone().unwrap_or_default();
    let volume = meta::volume_of_claim(app, &name).unwrap_or(&name).to_owned();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let patch = release_patch(claim, uid, &meta::released_from(namespace, app, &volume), &now.0.to_string());
    let ops: json_patch::Patch =
        serde_json::from_value(patch).map_err(|e| Error::Serialize("PersistentVolumeClaim", e))?;
    let params = PatchParams { field_manager: Some(MANAGER.to_owned()), ..PatchParams::default() };
    match api.patch(&name, &params, &Patch::Json::<()>(ops)).await {
        Ok(_) => Ok(Some(ReleasedClaim { claim: name, volume, released_at: now })),
        // Gone, or the UID test failed (a new claim of that name): nothing of ours to release.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 || s.code == 422 => Ok(None),
        Err(source) => Err(Error::Release { name, source }),
    }
}

/// Takes the release annotations off a released claim before the apply adopts it.
pub async fn adopt<K>(api: &Api<K>, m: &ObjectMeta) -> Result<Option<String>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = m.name.clone().unwrap_or_default();
    let patch: json_patch::Patch =
        serde_json::from_value(adopt_patch(m)).map_err(|e| Error::Serialize("PersistentVolumeClaim", e))?;
    let params = PatchParams { field_manager: Some(MANAGER.to_owned()), ..PatchParams::default() };
    match api.patch(&name, &params, &Patch::Json::<()>(patch)).await {
        Ok(o) => Ok(o.meta().resource_version.clone()),
        Err(source) => Err(Error::Apply { kind: "PersistentVolumeClaim", name, source }),
    }
}

/// On the app's deletion: releases its claims to retain (listed from the API server, not the
/// cache, which may lag). The others go by garbage collection (their owner reference).
pub async fn release_all(
    client: &kube::Client,
    namespace: &str,
    app: &str,
    uid: Option<&str>,
) -> Result<Vec<ReleasedClaim>> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&meta::children_selector(namespace, app));
    let list = api.list(&lp).await.map_err(|source| Error::List { kind: "PersistentVolumeClaim", source })?;
    let mut released = Vec::new();
    for claim in list.items.iter().filter(|c| retained(c) && c.metadata.deletion_timestamp.is_none()) {
        released.extend(release(&api, &claim.metadata, namespace, app, uid).await?);
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PersistentVolumeClaimSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn claim(annotations: &[(&str, &str)], class: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("web.cache".into()),
                namespace: Some("shop".into()),
                uid: Some("c-1".into()),
                labels: Some(
                    [
                        ("app.kubernetes.io/managed-by", "winapp-operator"),
                        ("winapp.dev/app", "web"),
                        ("winapp.dev/namespace", "shop"),
                        ("cost-centre", "42"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                ),
                annotations: Some(annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
                owner_references: Some(vec![
                    OwnerReference { uid: "other".into(), ..OwnerReference::default() },
                    OwnerReference { uid: "app-1".into(), controller: Some(true), ..OwnerReference::default() },
                ]),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: class.map(str::to_owned),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        }
    }

    #[test]
    fn a_claim_is_retained_unless_its_volume_says_delete_or_it_is_an_smb_shares() {
        assert!(retained(&claim(&[("winapp.dev/retention-policy", "Retain")], Some(""))));
        assert!(!retained(&claim(&[("winapp.dev/retention-policy", "Delete")], Some("azurefile"))));
        // Applied before retention existed: a class's claim is kept, an SMB share's is not.
        assert!(retained(&claim(&[], Some("azurefile"))));
        assert!(retained(&claim(&[], None)), "the default class");
        assert!(!retained(&claim(&[], Some(""))));
    }

    #[test]
    fn the_release_patch_removes_what_ties_the_claim_to_the_app_and_says_where_it_came_from() {
        let c = claim(&[("winapp.dev/owner-uid", "app-1"), ("winapp.dev/applied-hash", "h"), ("team", "x")], None);
        let patch = release_patch(&c.metadata, Some("app-1"), "shop/web/cache", "2026-12-05T10:00:00Z");
        // Applied to the claim as the API server would.
        let mut doc = serde_json::to_value(&c).expect("json");
        let ops: json_patch::Patch = serde_json::from_value(patch).expect("a JSON Patch");
        json_patch::patch(&mut doc, &ops).expect("the patch applies");
        let m = &doc["metadata"];
        assert_eq!(m["labels"], json!({"cost-centre": "42"}), "the app's own labels stay");
        assert_eq!(m["ownerReferences"], json!([{"apiVersion": "", "kind": "", "name": "", "uid": "other"}]));
        assert_eq!(
            m["annotations"],
            json!({"team": "x", "winapp.dev/released-from": "shop/web/cache", "winapp.dev/released-at": "2026-12-05T10:00:00Z"})
        );
        // A claim of another UID (a successor of the same name) fails the test.
        let mut other = serde_json::to_value(&c).expect("json");
        other["metadata"]["uid"] = json!("c-2");
        assert!(json_patch::patch(&mut other, &ops).is_err());
        // No annotations at all: the map is created first.
        let mut bare = claim(&[], None);
        bare.metadata.annotations = None;
        let mut doc = serde_json::to_value(&bare).expect("json");
        let ops: json_patch::Patch =
            serde_json::from_value(release_patch(&bare.metadata, None, "shop/web/cache", "t")).expect("patch");
        json_patch::patch(&mut doc, &ops).expect("applies");
        assert_eq!(doc["metadata"]["annotations"]["winapp.dev/released-from"], "shop/web/cache");
        assert_eq!(doc["metadata"]["ownerReferences"].as_array().map(Vec::len), Some(2), "no app UID: none removed");
    }

    #[test]
    fn only_the_same_apps_same_volume_adopts_a_released_claim() {
        let released = |from: &str| {
            let mut c = claim(&[("winapp.dev/released-from", from), ("winapp.dev/released-at", "t")], None);
            c.metadata.labels = None;
            c.metadata
        };
        assert!(adoptable(&released("shop/web/cache"), "shop", "web"));
        assert!(!adoptable(&released("shop/web/logs"), "shop", "web"), "another volume's claim");
        assert!(!adoptable(&released("bank/web/cache"), "shop", "web"), "another namespace's app");
        assert!(!adoptable(&released("shop/web/cache"), "shop", "api"), "another app");
        let mut foreign = released("x");
        foreign.annotations = None;
        assert!(!adoptable(&foreign, "shop", "web"), "never released by the operator");
        let mut doc = serde_json::to_value(ObjectMeta { ..released("shop/web/cache") }).expect("json");
        let mut wrapped = json!({"metadata": doc.take()});
        let ops: json_patch::Patch = serde_json::from_value(adopt_patch(&released("shop/web/cache"))).expect("patch");
        json_patch::patch(&mut wrapped, &ops).expect("applies");
        assert!(wrapped["metadata"]["annotations"].as_object().is_some_and(|a| a.is_empty()), "{wrapped}");
    }
}
