//! The admission fence of `config/admission`, live on the dev cluster, acting as the operator's own
//! ServiceAccount (a token of winapp-system/winapp-operator under `config/rbac`): what is not the
//! operator's own is refused with a message that says what and why, what is its own passes, the
//! way the operator writes it (server-side apply that creates, merge patches, deletes with a UID
//! precondition), and its Lease and Events are not touched by the fence.
//!
//! Destructive requests on objects of the cluster (`cluster-admin`) are server-side dry runs:
//! admission runs, nothing is stored.

mod support;

use std::path::PathBuf;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::{TestNamespace, kubectl, unique_name};

const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const FENCE: &str = "ValidatingAdmissionPolicy 'winapp-operator-fence'";

/// The CRDs, the operator's RBAC and the fence, as `config/default` installs them; and a client
/// that authenticates as the operator's ServiceAccount.
async fn operator_client() -> Client {
    let root = env!("CARGO_MANIFEST_DIR");
    support::client().await;
    let fixture = format!("{root}/tests/fixtures/gmsacredentialspecs.windows.k8s.io.yaml");
    kubectl(&["apply", "--server-side", "-f", &fixture], None).unwrap_or_else(|e| panic!("{e}"));
    kubectl(&["wait", "--for=condition=Established", "crd/gmsacredentialspecs.windows.k8s.io"], None)
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = kubectl(&["create", "namespace", "winapp-system"], None);
    kubectl(&["apply", "--server-side", "-k", &format!("{root}/config/rbac")], None).unwrap_or_else(|e| panic!("{e}"));
    let path = PathBuf::from(root).join("target/test-fence").join(unique_name("kubeconfig"));
    support::write_operator_kubeconfig(&path, "20m");
    support::install_fence(&path);
    let kubeconfig = Kubeconfig::read_from(&path).expect("the operator's kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    let _ = std::fs::remove_file(&path);
    Client::try_from(config).expect("the operator's client")
}

fn credspecs(client: &Client) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "windows.k8s.io".into(),
        version: "v1".into(),
        api_version: "windows.k8s.io/v1".into(),
        kind: "GMSACredentialSpec".into(),
        plural: "gmsacredentialspecs".into(),
    };
    Api::all_with(client.clone(), &ar)
}

fn from<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("test object: {e}"))
}

/// The labels of the operator's children of app `app` in `ns` (src/build/meta.rs).
fn own_labels(ns: &str, app: &str) -> Value {
    json!({MANAGED_BY: "winapp-operator", "winapp.dev/app": app, "winapp.dev/namespace": ns,
           "app.kubernetes.io/name": app, "app.kubernetes.io/instance": app})
}

fn cluster_role(name: &str, labels: Value, rules: Value) -> ClusterRole {
    from(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name, "labels": labels}, "rules": rules}))
}

fn use_credspec(credspec: &str) -> Value {
    json!([{"apiGroups": ["windows.k8s.io"], "resources": ["gmsacredentialspecs"], "resourceNames": [credspec], "verbs": ["use"]}])
}

fn role_binding(ns: &str, name: &str, labels: Value, role: (&str, &str), subject_ns: &str) -> RoleBinding {
    from(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1},
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": subject_ns}]}))
}

fn persistent_volume(name: &str, labels: Value) -> PersistentVolume {
    from(json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name, "labels": labels},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                         "csi": {"driver": "smb.csi.k8s.io", "volumeHandle": name}}}))
}

fn credspec(name: &str, labels: Value) -> DynamicObject {
    from(
        json!({"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec", "metadata": {"name": name, "labels": labels},
                "credspec": {"CmsPlugins": ["ActiveDirectory"]}}),
    )
}

/// The message of a 403, or a panic naming what was let through.
fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 => {
            let short: String = s.message.chars().take(400).collect();
            eprintln!("refused, as it should be: {what}: {short}");
            s.message
        }
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

/// A refusal by the fence (not by RBAC), whose message contains each of `words`.
fn fenced<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>, words: &[&str]) {
    let message = refused(what, result);
    assert!(message.contains(FENCE), "{what}: refused, but not by the fence: {message}");
    for w in words {
        assert!(message.contains(w), "{what}: the message does not say {w:?}: {message}");
    }
}

fn ok<T>(what: &str, result: Result<T, kube::Error>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: the operator's own write was refused: {e}"))
}

fn dry_run() -> DeleteParams {
    DeleteParams { dry_run: true, ..DeleteParams::default() }
}

/// Deletes, as admin, the cluster-scoped objects a test created, also when it fails midway.
struct Cleanup(Vec<(&'static str, String)>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (kind, name) in &self.0 {
            let _ = kubectl(&["delete", kind, name, "--ignore-not-found", "--wait=false"], None);
        }
    }
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn the_operator_cannot_touch_what_is_not_its_own() {
    let op = operator_client().await;
    let admin = support::client().await;
    let ns = TestNamespace::new(&admin, "fence-foreign").await;
    let n = ns.name();
    let app = "web";
    let own_role = format!("winapp.{n}.{app}.gmsa");
    let foreign_pv = unique_name("foreign-pv");
    let lookalike_pv = format!("winapp.{n}.{app}.data");
    let foreign_role = format!("winapp.{n}.other.gmsa");
    let _cleanup = Cleanup(vec![
        ("clusterrole", own_role.clone()),
        ("clusterrole", foreign_role.clone()),
        ("pv", foreign_pv.clone()),
        ("pv", lookalike_pv.clone()),
    ]);
    let roles: Api<ClusterRole> = Api::all(op.clone());
    let pvs: Api<PersistentVolume> = Api::all(op.clone());
    let bindings: Api<RoleBinding> = Api::namespaced(op.clone(), n);

    // cluster-admin: patching it is refused (RBAC's escalation check already refuses an update of
    // a role whose rules the operator does not hold; deleting it needs no such rights, and only the
    // fence stands in the way).
    let patch = json!({"metadata": {"labels": {"touched": "by-the-operator"}}});
    refused(
        "patch ClusterRole cluster-admin",
        roles.patch("cluster-admin", &PatchParams::default(), &Patch::Merge(&patch)).await,
    );
    fenced(
        "delete ClusterRole cluster-admin (dry run)",
        roles.delete("cluster-admin", &dry_run()).await,
        &["may not delete ClusterRole cluster-admin", "winapp.<namespace>.<app>.gmsa"],
    );
    fenced(
        "delete ClusterRole winapp-operator (its own RBAC; dry run)",
        roles.delete("winapp-operator", &dry_run()).await,
        &["may not delete ClusterRole winapp-operator"],
    );

    // PersistentVolumes it did not create: another name; its own name scheme but not its label.
    let admin_pvs: Api<PersistentVolume> = Api::all(admin.clone());
    admin_pvs
        .create(&PostParams::default(), &persistent_volume(&foreign_pv, json!({})))
        .await
        .expect("admin creates a PV");
    fenced(
        "delete a PersistentVolume of someone else",
        pvs.delete(&foreign_pv, &DeleteParams::default()).await,
        &[&format!("may not delete PersistentVolume {foreign_pv}"), "winapp.<namespace>.<app>.<volume>"],
    );
    admin_pvs.create(&PostParams::default(), &persistent_volume(&lookalike_pv, json!({}))).await.expect("admin PV");
    fenced(
        "delete an unlabelled PersistentVolume named like its own",
        pvs.delete(&lookalike_pv, &DeleteParams::default()).await,
        &["existing object does not carry the label app.kubernetes.io/managed-by=winapp-operator"],
    );
    // Adopting it by adding the label is an update of an object that was not its own.
    let adopt = json!({"metadata": {"labels": own_labels(n, app)}});
    fenced(
        "label someone's PersistentVolume as its own",
        pvs.patch(&lookalike_pv, &PatchParams::default(), &Patch::Merge(&adopt)).await,
        &[&format!("may not change PersistentVolume {lookalike_pv}"), "did not create it"],
    );
    assert!(admin_pvs.get(&lookalike_pv).await.expect("still there").labels().get(MANAGED_BY).is_none());

    // New objects must carry its label, and its name.
    fenced(
        "create an unlabelled PersistentVolume",
        pvs.create(&PostParams::default(), &persistent_volume(&format!("winapp.{n}.{app}.new"), json!({}))).await,
        &["the new object lacks the label app.kubernetes.io/managed-by=winapp-operator"],
    );
    fenced(
        "create a GMSACredentialSpec of another name",
        credspecs(&op).create(&PostParams::default(), &credspec("webapp01", own_labels(n, app))).await,
        &["may not create GMSACredentialSpec webapp01", "winapp.<namespace>.<app>"],
    );

    // ClusterRoles: only the gMSA `use` of named credspecs, even under its own name and label.
    fenced(
        "create a ClusterRole of its own name that reads nodes",
        roles
            .create(
                &PostParams::default(),
                &cluster_role(
                    &own_role,
                    own_labels(n, app),
                    json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]),
                ),
            )
            .await,
        &["grant only `use` of named GMSACredentialSpecs"],
    );
    let admin_roles: Api<ClusterRole> = Api::all(admin.clone());
    admin_roles
        .create(&PostParams::default(), &cluster_role(&foreign_role, json!({}), use_credspec("webapp01")))
        .await
        .expect("admin creates a ClusterRole");
    let relabel = json!({"metadata": {"labels": own_labels(n, "other")}});
    fenced(
        "label someone's ClusterRole as its own",
        roles.patch(&foreign_role, &PatchParams::default(), &Patch::Merge(&relabel)).await,
        &["did not create it"],
    );

    // RoleBindings: to `edit` (RBAC refuses this too: the operator does not hold edit's rights),
    // and to a role whose rights it does hold, its own ClusterRole: only the fence stops that.
    refused(
        "bind edit",
        bindings
            .create(&PostParams::default(), &role_binding(n, "to-edit", json!({}), ("ClusterRole", "edit"), n))
            .await,
    );
    refused(
        "bind edit under its own name and label",
        bindings
            .create(
                &PostParams::default(),
                &role_binding(n, "web-gmsa", own_labels(n, app), ("ClusterRole", "edit"), n),
            )
            .await,
    );
    fenced(
        "bind the operator's own ClusterRole",
        bindings
            .create(
                &PostParams::default(),
                &role_binding(n, "web-gmsa", own_labels(n, app), ("ClusterRole", "winapp-operator"), n),
            )
            .await,
        &["it binds ClusterRole winapp-operator", &format!("only the ClusterRole winapp.{n}.<app>.gmsa")],
    );
    fenced(
        "bind the operator's own ClusterRole under another name",
        bindings
            .create(
                &PostParams::default(),
                &role_binding(n, "copy-of-operator", own_labels(n, app), ("ClusterRole", "winapp-operator"), n),
            )
            .await,
        &["<app>-gmsa"],
    );
    // Its own gMSA role, but to a ServiceAccount of another namespace, or from another app's binding.
    ok(
        "create its gMSA ClusterRole",
        roles
            .create(&PostParams::default(), &cluster_role(&own_role, own_labels(n, app), use_credspec("webapp01")))
            .await,
    );
    fenced(
        "bind its gMSA role to another namespace's ServiceAccount",
        bindings
            .create(
                &PostParams::default(),
                &role_binding(n, "web-gmsa", own_labels(n, app), ("ClusterRole", &own_role), "kube-system"),
            )
            .await,
        &["binds only ServiceAccounts of the namespace"],
    );
    fenced(
        "bind app web's gMSA role from app api's binding",
        bindings
            .create(
                &PostParams::default(),
                &role_binding(n, "api-gmsa", own_labels(n, "api"), ("ClusterRole", &own_role), n),
            )
            .await,
        &[&format!("winapp.{n}.<app>.gmsa")],
    );
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn the_operator_writes_its_own_objects_as_it_does_when_reconciling() {
    let op = operator_client().await;
    let admin = support::client().await;
    let ns = TestNamespace::new(&admin, "fence-own").await;
    let n = ns.name();
    let app = "web";
    let role_name = format!("winapp.{n}.{app}.gmsa");
    let pv_name = format!("winapp.{n}.{app}.data");
    let credspec_name = format!("winapp.{n}.{app}");
    let binding_name = format!("{app}-gmsa");
    let _cleanup = Cleanup(vec![
        ("clusterrole", role_name.clone()),
        ("pv", pv_name.clone()),
        ("gmsacredentialspec", credspec_name.clone()),
    ]);
    let roles: Api<ClusterRole> = Api::all(op.clone());
    let pvs: Api<PersistentVolume> = Api::all(op.clone());
    let specs = credspecs(&op);
    let bindings: Api<RoleBinding> = Api::namespaced(op.clone(), n);
    let apply = PatchParams::apply("winapp.dev/operator").force();
    let labels = own_labels(n, app);

    // Server-side apply that creates, in the operator's order: credspec and ClusterRole, then the
    // RoleBinding; and a PersistentVolume.
    ok(
        "apply its credspec",
        specs.patch(&credspec_name, &apply, &Patch::Apply(&credspec(&credspec_name, labels.clone()))).await,
    );
    let role = cluster_role(&role_name, labels.clone(), use_credspec(&credspec_name));
    ok("apply its ClusterRole", roles.patch(&role_name, &apply, &Patch::Apply(&role)).await);
    let binding = role_binding(n, &binding_name, labels.clone(), ("ClusterRole", &role_name), n);
    ok("apply its RoleBinding", bindings.patch(&binding_name, &apply, &Patch::Apply(&binding)).await);
    ok(
        "apply its PersistentVolume",
        pvs.patch(&pv_name, &apply, &Patch::Apply(&persistent_volume(&pv_name, labels.clone()))).await,
    );
    // Applied again with a changed label (an app's propagated label): an update.
    let mut changed = labels.clone();
    changed["cost-centre"] = json!("42");
    ok(
        "re-apply its PersistentVolume",
        pvs.patch(&pv_name, &apply, &Patch::Apply(&persistent_volume(&pv_name, changed.clone()))).await,
    );
    ok(
        "re-apply its ClusterRole",
        roles
            .patch(
                &role_name,
                &apply,
                &Patch::Apply(&cluster_role(&role_name, changed.clone(), use_credspec(&credspec_name))),
            )
            .await,
    );
    // JSON merge patches.
    let annotate = json!({"metadata": {"annotations": {"winapp.dev/owner-uid": "0000"}}});
    ok("merge-patch its ClusterRole", roles.patch(&role_name, &PatchParams::default(), &Patch::Merge(&annotate)).await);
    ok(
        "merge-patch its RoleBinding",
        bindings.patch(&binding_name, &PatchParams::default(), &Patch::Merge(&annotate)).await,
    );
    ok(
        "merge-patch its credspec",
        specs.patch(&credspec_name, &PatchParams::default(), &Patch::Merge(&annotate)).await,
    );
    // But not to disown what it owns.
    let disown = json!({"metadata": {"labels": {MANAGED_BY: null}}});
    fenced(
        "take its label off its PersistentVolume",
        pvs.patch(&pv_name, &PatchParams::default(), &Patch::Merge(&disown)).await,
        &["the new object lacks the label"],
    );

    // Its Lease and its Events are not the fence's business.
    let leases: Api<Lease> = Api::namespaced(op.clone(), "winapp-system");
    let lease_name = unique_name("fence-lease");
    let lease: Lease = from(
        json!({"metadata": {"name": lease_name}, "spec": {"holderIdentity": "fence-test", "leaseDurationSeconds": 15}}),
    );
    let created = ok("create its Lease", leases.create(&PostParams::default(), &lease).await);
    let mut renewed = created.clone();
    renewed.spec.get_or_insert_default().lease_duration_seconds = Some(16);
    ok("update its Lease", leases.replace(&lease_name, &PostParams::default(), &renewed).await);
    let _ = kubectl(&["delete", "lease", &lease_name, "-n", "winapp-system"], None);
    let events: Api<Event> = Api::namespaced(op.clone(), n);
    let event: Event = from(json!({
        "metadata": {"name": unique_name("fence-event")},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "winapp.dev/operator",
        "reportingInstance": "fence-test", "action": "Reconcile", "reason": "Created", "type": "Normal",
        "note": "the fence lets the operator's events through",
        "regarding": {"apiVersion": "v1", "kind": "ServiceAccount", "name": "default", "namespace": n},
    }));
    ok("create an Event", events.create(&PostParams::default(), &event).await);

    // Deletes with a UID precondition, as prune and cleanup do.
    let uid_of = |uid: Option<String>| DeleteParams {
        preconditions: Some(Preconditions { uid, resource_version: None }),
        ..DeleteParams::background()
    };
    let b = ok("get its RoleBinding", bindings.get(&binding_name).await);
    ok("delete its RoleBinding", bindings.delete(&binding_name, &uid_of(b.uid())).await);
    let r = ok("get its ClusterRole", roles.get(&role_name).await);
    ok("delete its ClusterRole", roles.delete(&role_name, &uid_of(r.uid())).await);
    let p = ok("get its PersistentVolume", pvs.get(&pv_name).await);
    ok("delete its PersistentVolume", pvs.delete(&pv_name, &uid_of(p.uid())).await);
    let c = ok("get its credspec", specs.get(&credspec_name).await);
    ok("delete its credspec", specs.delete(&credspec_name, &uid_of(c.uid())).await);
    ns.cleanup().await;
}
