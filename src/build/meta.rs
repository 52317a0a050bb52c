//! The one place that makes child names, labels, selectors and owner references.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::{GROUP, RetentionPolicy, VERSION};
use crate::validate::ValidatedApp;

/// Value of `app.kubernetes.io/managed-by` on every child.
pub const MANAGER: &str = "winapp-operator";
/// Label with the owning app's name, on every child.
pub const APP_LABEL: &str = "winapp.dev/app";
/// Label with the owning app's namespace, on every child (cluster-scoped ones are found by it).
pub const NAMESPACE_LABEL: &str = "winapp.dev/namespace";
/// Pod-template annotation holding the checksum of the config files.
pub const CONFIG_CHECKSUM: &str = "winapp.dev/config-checksum";
/// Pod template annotation: a hash of the `resourceVersion`s of the Secrets that config files
/// come from, so that a change of one rolls the pods.
pub const CONFIG_SECRETS_VERSION: &str = "winapp.dev/config-secrets-version";
/// Name of the pod volume that holds the config files from Secrets.
pub const CONFIG_SECRETS_VOLUME: &str = "winapp-config-secrets";
/// Annotation on cluster-scoped children with the UID of the owning app (they cannot carry an
/// owner reference); prune deletes only children that name the current app's UID.
pub const OWNER_UID_ANNOTATION: &str = "winapp.dev/owner-uid";
/// Annotation on every child with the hash of what the operator last applied, so that a field
/// removed from what it applies is noticed.
pub const APPLIED_HASH: &str = "winapp.dev/applied-hash";
/// Annotation on a claim: `Retain` or `Delete`, its volume's `retentionPolicy` when it was
/// applied, read when the volume or the app goes (the spec no longer says by then).
pub const RETENTION_ANNOTATION: &str = "winapp.dev/retention-policy";
/// Annotation on a claim the operator released instead of deleting: `<namespace>/<app>/<volume>`.
pub const RELEASED_FROM_ANNOTATION: &str = "winapp.dev/released-from";
/// Annotation on a released claim: when it was released (RFC 3339).
pub const RELEASED_AT_ANNOTATION: &str = "winapp.dev/released-at";
/// Name of the app's container.
pub const CONTAINER_NAME: &str = "app";
/// Prefix of pod volume names the operator reserves for itself.
pub const RESERVED_VOLUME_PREFIX: &str = "winapp-";
/// Name of the pod volume that holds the config files.
pub const CONFIG_VOLUME: &str = "winapp-config";
/// Labels that select the pods; the escape hatch may not change them.
pub const SELECTOR_KEYS: &[&str] = &["app.kubernetes.io/name", "app.kubernetes.io/instance"];

/// Deployment, Service and (managed) ServiceAccount names.
pub fn workload_name(app: &ValidatedApp) -> String {
    app.name.clone()
}

/// The Service: `spec.service.name`, or the app's name.
pub fn service_name(app: &ValidatedApp) -> String {
    app.service.as_ref().and_then(|s| s.name.clone()).unwrap_or_else(|| app.name.clone())
}

/// The ConfigMap with the config files.
pub fn config_map_name(app: &ValidatedApp) -> String {
    format!("{}-config", app.name)
}

/// The RoleBinding that lets the service account use the credspec.
pub fn gmsa_role_binding_name(app: &ValidatedApp) -> String {
    format!("{}-gmsa", app.name)
}

/// Cluster-scoped names join namespace and name with dots: neither may contain one, so two apps
/// never share a name (a `-` join would make `a-b/c` and `a/b-c` collide).
fn cluster_scoped(namespace: &str, name: &str, suffix: Option<&str>) -> String {
    match suffix {
        Some(s) => format!("winapp.{namespace}.{name}.{s}"),
        None => format!("winapp.{namespace}.{name}"),
    }
}

/// The GMSACredentialSpec the operator generates for an app.
pub fn generated_credspec_name(namespace: &str, name: &str) -> String {
    cluster_scoped(namespace, name, None)
}

/// The ClusterRole that allows `use` of the app's credspec.
pub fn gmsa_cluster_role_name(app: &ValidatedApp) -> String {
    cluster_scoped(&app.namespace, &app.name, Some("gmsa"))
}

/// The static PersistentVolume of an SMB volume.
pub fn persistent_volume_name(app: &ValidatedApp, volume: &str) -> String {
    cluster_scoped(&app.namespace, &app.name, Some(volume))
}

/// The claim of a volume: `<app>.<volume>`. Neither part may contain a dot, so apps `a` with
/// volume `b-c` and `a-b` with volume `c` never share a claim.
pub fn claim_name(app: &ValidatedApp, volume: &str) -> String {
    format!("{}.{}", app.name, volume)
}

/// The CSI volumeHandle of an SMB volume: unique across the cluster.
pub fn smb_volume_handle(app: &ValidatedApp, volume: &str) -> String {
    format!("winapp/{}/{}/{}", app.namespace, app.name, volume)
}

/// Where a config file is mounted: `<mountPath>\<file>`.
pub fn config_file_path(mount_path: &str, file: &str) -> String {
    format!("{}\\{}", mount_path.trim_end_matches('\\'), file)
}

/// Labels that select the app's pods.
pub fn selector_labels(app: &ValidatedApp) -> BTreeMap<String, String> {
    BTreeMap::from([(SELECTOR_KEYS[0].to_owned(), app.name.clone()), (SELECTOR_KEYS[1].to_owned(), app.name.clone())])
}

/// Labels on every child (and the pods).
pub fn labels(app: &ValidatedApp) -> BTreeMap<String, String> {
    let mut l = app.propagated_labels.clone();
    l.extend(own_labels(app));
    l
}

/// The operator's own labels: the selector, managed-by, and which app a child belongs to.
pub fn own_labels(app: &ValidatedApp) -> BTreeMap<String, String> {
    let mut l = selector_labels(app);
    l.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
    l.insert("app.kubernetes.io/part-of".into(), app.name.clone());
    l.insert(APP_LABEL.into(), app.name.clone());
    l.insert(NAMESPACE_LABEL.into(), app.namespace.clone());
    l
}

/// Which app: namespace and name (the key of everything the operator keeps per app).
pub type AppKey = (String, String);

/// Pure: the app (namespace, name) that labels with the operator's managed-by label name: the
/// one reading of the labels [`own_labels`] writes.
pub fn labelled_app(labels: &BTreeMap<String, String>) -> Option<(&str, &str)> {
    if labels.get("app.kubernetes.io/managed-by").map(String::as_str) != Some(MANAGER) {
        return None;
    }
    Some((labels.get(NAMESPACE_LABEL)?, labels.get(APP_LABEL)?))
}

/// Whether `labels` are those of the app `namespace/name`'s children.
pub fn is_ours(labels: &BTreeMap<String, String>, namespace: &str, name: &str) -> bool {
    labelled_app(labels) == Some((namespace, name))
}

/// Label selector (`k=v,...`) that finds every child of an app, namespaced or not.
pub fn children_selector(namespace: &str, name: &str) -> String {
    format!("app.kubernetes.io/managed-by={MANAGER},{APP_LABEL}={name},{NAMESPACE_LABEL}={namespace}")
}

/// The controller owner reference to the app, when its UID is known.
pub fn owner_reference(app: &ValidatedApp) -> Option<OwnerReference> {
    app.uid.as_ref().map(|uid| OwnerReference {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: "WindowsApp".into(),
        name: app.name.clone(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Metadata of a namespaced child: labels and the owner reference.
pub fn namespaced(app: &ValidatedApp, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(app.namespace.clone()),
        labels: Some(labels(app)),
        annotations: (!app.propagated_annotations.is_empty()).then(|| app.propagated_annotations.clone()),
        owner_references: owner_reference(app).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Metadata of the claim of a volume from a StorageClass: as [`namespaced`], but a claim to
/// retain is tied to the app by the owner-UID annotation instead of an owner reference, so that
/// garbage collection never deletes it; both carry their retention policy.
pub fn claim(app: &ValidatedApp, name: String, retention: RetentionPolicy) -> ObjectMeta {
    let mut m = namespaced(app, name);
    if retention == RetentionPolicy::Retain {
        m.owner_references = None;
    }
    let a = m.annotations.get_or_insert_with(Default::default);
    if let Some(uid) = &app.uid {
        a.insert(OWNER_UID_ANNOTATION.to_owned(), uid.clone());
    }
    a.insert(RETENTION_ANNOTATION.to_owned(), retention.as_str().to_owned());
    m
}

/// The value of [`RELEASED_FROM_ANNOTATION`] for a claim of `app`'s `volume`.
pub fn released_from(namespace: &str, app: &str, volume: &str) -> String {
    format!("{namespace}/{app}/{volume}")
}

/// The volume whose claim `claim` is, for an app named `app` (see [`claim_name`]).
pub fn volume_of_claim<'a>(app: &str, claim: &'a str) -> Option<&'a str> {
    claim.strip_prefix(app)?.strip_prefix('.')
}

/// Metadata of a cluster-scoped child: labels and the owner-UID annotation (a namespaced owner
/// cannot own it; the finalizer removes it).
pub fn cluster(app: &ValidatedApp, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels: Some(labels(app)),
        annotations: {
            let mut a = app.propagated_annotations.clone();
            if let Some(uid) = &app.uid {
                a.insert(OWNER_UID_ANNOTATION.to_owned(), uid.clone());
            }
            (!a.is_empty()).then_some(a)
        },
        ..ObjectMeta::default()
    }
}
