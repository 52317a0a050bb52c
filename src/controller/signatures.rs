//! What of a watched object may trigger a reconcile: a hash of the fields the operator reads,
//! so that a change of anything else (heartbeats, narration of a rollout, timestamps) triggers
//! nothing. Pure.

use std::hash::{Hash, Hasher};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::{Resource, ResourceExt};

use super::Watched;
use super::lean::Lean;
use crate::gmsa_policy;

/// Hash of what may change what the operator applies, computed as the app was cached (see
/// [`super::lean_app::meta_signature`]). A status write, the operator's own or anyone's,
/// changes none of it and triggers nothing.
pub fn app_signature(app: &Watched) -> Option<u64> {
    Some(app.signature())
}

/// Annotations that the workload controllers write on the workloads they run (the Deployment's
/// revision, the DaemonSet's template generation): never the operator's, and not drift.
pub fn controller_annotation(key: &str) -> bool {
    key.starts_with("deployment.kubernetes.io/") || key == "deprecated.daemonset.template.generation"
}

/// Hashes what drift detection needs of a workload's metadata: generation, labels, annotations
/// other than its controller's own, deletion. (kube-controller-manager's first sync of a new
/// Deployment writes its revision annotation before its status: hashed, that was a reconcile
/// of every new app with nothing to do or to report.)
pub fn hash_workload_meta(m: &ObjectMeta, h: &mut impl Hasher) {
    (m.generation, &m.labels, m.deletion_timestamp.is_some()).hash(h);
    for entry in m.annotations.iter().flatten().filter(|(k, _)| !controller_annotation(k)) {
        entry.hash(h);
    }
}

/// Hash of what the status reads from a Deployment, plus what drift detection needs (see
/// [`hash_workload_meta`]). Status writes that only move timestamps, counts the status does not
/// show (ready but not yet available, for example) or a condition's reason as a rollout goes
/// along trigger nothing.
pub fn deployment_signature(d: &Deployment) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_workload_meta(&d.metadata, &mut h);
    // No status and an empty one are the same (a new Deployment may come either way).
    let s = d.status.as_ref();
    let count = |f: fn(&k8s_openapi::api::apps::v1::DeploymentStatus) -> Option<i64>| s.and_then(f);
    (
        count(|s| s.observed_generation),
        count(|s| s.replicas.map(i64::from)),
        count(|s| s.updated_replicas.map(i64::from)),
        count(|s| s.available_replicas.map(i64::from)),
    )
        .hash(&mut h);
    // Until the controller has observed the generation, the status reads none of its
    // conditions (kube-controller-manager's first sync of a new Deployment adds Progressing
    // before it records the observation: that write alone would be a reconcile of every new
    // app with nothing to report but "not observed yet").
    let observed = count(|s| s.observed_generation).unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    for c in s.and_then(|s| s.conditions.as_ref()).into_iter().flatten().filter(|_| observed) {
        (&c.type_, &c.status).hash(&mut h);
        // Of the reasons, the status reads only these two; the others (NewReplicaSetCreated,
        // ReplicaSetUpdated, NewReplicaSetAvailable...) narrate a rollout it reports by counts.
        if c.reason.as_deref() == Some("ProgressDeadlineExceeded") || c.type_.as_deref() == Some("ReplicaFailure") {
            (&c.reason, &c.message).hash(&mut h);
        }
    }
    h.finish()
}

/// [`deployment_signature`] of a cached Deployment. One that does not decode (it cannot: the
/// API server sent it) has its resourceVersion as its signature: every change triggers.
pub fn cached_deployment(d: &Lean<Deployment>) -> u64 {
    d.typed().map_or_else(|_| version_signature(d), |d| deployment_signature(&d))
}

/// [`daemon_set_signature`] of a cached DaemonSet (see [`cached_deployment_signature`]).
pub fn cached_daemon_set(d: &Lean<DaemonSet>) -> u64 {
    d.typed().map_or_else(|_| version_signature(d), |d| daemon_set_signature(&d))
}

pub fn version_signature<K: Resource>(o: &K) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    o.meta().resource_version.hash(&mut h);
    h.finish()
}

/// The same for a node agent's DaemonSet.
pub fn daemon_set_signature(d: &DaemonSet) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_workload_meta(&d.metadata, &mut h);
    if let Some(s) = &d.status {
        (
            s.observed_generation,
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.updated_number_scheduled,
            s.number_available,
            s.number_ready,
            s.number_misscheduled,
        )
            .hash(&mut h);
    }
    h.finish()
}

/// Hash of what the status reads from a PodDisruptionBudget (its controller's counts and the
/// generation it observed), plus what drift detection needs (see [`hash_workload_meta`]): its
/// condition's timestamps and `disruptedPods` trigger nothing.
pub fn disruption_budget_signature(b: &PodDisruptionBudget) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_workload_meta(&b.metadata, &mut h);
    if let Some(s) = &b.status {
        (s.observed_generation, s.disruptions_allowed, s.current_healthy, s.desired_healthy, s.expected_pods)
            .hash(&mut h);
    }
    h.finish()
}

/// [`disruption_budget_signature`] of a cached PodDisruptionBudget (see [`cached_deployment`]).
pub fn cached_disruption_budget(b: &Lean<PodDisruptionBudget>) -> u64 {
    b.typed().map_or_else(|_| version_signature(b), |b| disruption_budget_signature(&b))
}

/// Hash of what matters about a node for placement: labels, taints, readiness. Heartbeats
/// change none of these, so they do not trigger reconciles.
pub fn node_signature(node: &Node) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node.labels().hash(&mut h);
    if let Some(spec) = &node.spec {
        spec.unschedulable.hash(&mut h);
        for t in spec.taints.iter().flatten() {
            (&t.key, &t.value, &t.effect).hash(&mut h);
        }
    }
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    ready.hash(&mut h);
    Some(h.finish())
}

/// The Namespace annotations by which the platform team grants its apps powers (see
/// [`crate::policy`] and [`crate::gmsa_policy`]).
const GRANT_ANNOTATIONS: &[&str] = &[
    crate::policy::ALLOW_ANNOTATION,
    crate::policy::ALLOWED_TAINTS_ANNOTATION,
    gmsa_policy::GMSA_ACCOUNTS,
    gmsa_policy::GMSA_CCG_PLUGINS,
];

/// Hash of a namespace's grant annotations: other changes of a namespace trigger nothing.
pub fn grants_signature(namespace: &PartialObjectMeta<Namespace>) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for key in GRANT_ANNOTATIONS {
        namespace.annotations().get(*key).hash(&mut h);
    }
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "shop", "annotations": {"winapp.dev/applied-hash": "abc"},
                "ownerReferences": [{"apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp", "name": "web", "uid": "u-1", "controller": true}],
                "managedFields": [{"manager": "winapp-operator", "operation": "Apply"}]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "web:1", "env": [{"name": "A", "value": "1"}]}],
                             "nodeSelector": {"kubernetes.io/os": "windows"}}
                }
            },
            "status": {"replicas": 2, "availableReplicas": 1}
        }))
        .expect("a valid Deployment")
    }

    #[test]
    fn a_cached_workload_compares_as_the_object_the_api_server_returned() {
        let original = deployment();
        let cached: Lean<Deployment> =
            serde_json::from_value(serde_json::to_value(&original).expect("serializable")).expect("decodes");
        assert!(cached.metadata.managed_fields.is_none());
        // The JSON the comparison reads is the original's, managedFields aside, and the
        // signature is the typed object's.
        let mut want = serde_json::to_value(&original).expect("serializable");
        want["metadata"].as_object_mut().expect("metadata").remove("managedFields");
        assert_eq!(cached.to_json().expect("encodes"), want);
        assert_eq!(cached_deployment(&cached), deployment_signature(&original));
    }

    fn with_progressing(reason: &str, status: &str) -> Deployment {
        let mut d = deployment();
        let s = d.status.get_or_insert_with(Default::default);
        s.conditions = Some(vec![k8s_openapi::api::apps::v1::DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            ..Default::default()
        }]);
        d
    }

    #[test]
    fn a_deployment_triggers_on_what_the_status_reads_not_on_narration() {
        let created = with_progressing("NewReplicaSetCreated", "True");
        let updated = with_progressing("ReplicaSetUpdated", "True");
        assert_eq!(deployment_signature(&created), deployment_signature(&updated));
        let stuck = with_progressing("ProgressDeadlineExceeded", "False");
        assert_ne!(deployment_signature(&updated), deployment_signature(&stuck));
        let mut available = updated.clone();
        available.status.as_mut().expect("status").available_replicas = Some(2);
        assert_ne!(deployment_signature(&updated), deployment_signature(&available));
        let mut observed = updated.clone();
        observed.status.as_mut().expect("status").observed_generation = Some(4);
        assert_ne!(deployment_signature(&updated), deployment_signature(&observed));
    }

    #[test]
    fn conditions_of_a_generation_not_observed_yet_trigger_nothing() {
        let mut created = deployment();
        created.metadata.generation = Some(1);
        created.status = None;
        let mut first_sync = with_progressing("NewReplicaSetCreated", "True");
        first_sync.metadata.generation = Some(1);
        let st = first_sync.status.as_mut().expect("status");
        (st.observed_generation, st.replicas, st.available_replicas) = (None, None, None);
        assert_eq!(deployment_signature(&created), deployment_signature(&first_sync));
        let mut observed = first_sync.clone();
        observed.status.as_mut().expect("status").observed_generation = Some(1);
        assert_ne!(deployment_signature(&first_sync), deployment_signature(&observed));
        // Once observed, a condition's change counts.
        let mut stuck = observed.clone();
        stuck.status.as_mut().expect("status").conditions =
            with_progressing("ProgressDeadlineExceeded", "False").status.and_then(|s| s.conditions);
        assert_ne!(deployment_signature(&observed), deployment_signature(&stuck));
    }

    #[test]
    fn a_budget_triggers_on_its_counts_not_on_its_condition_times() {
        use k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus;
        let with = |allowed: i32, healthy: i32, since: &str| {
            let mut b = PodDisruptionBudget::default();
            b.metadata.generation = Some(1);
            b.status = Some(PodDisruptionBudgetStatus {
                observed_generation: Some(1),
                disruptions_allowed: Some(allowed),
                current_healthy: Some(healthy),
                desired_healthy: Some(2),
                expected_pods: Some(3),
                conditions: Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                    type_: "DisruptionAllowed".into(),
                    status: "True".into(),
                    reason: "SufficientPods".into(),
                    message: String::new(),
                    observed_generation: Some(1),
                    last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        since.parse().expect("a time"),
                    ),
                }]),
                ..Default::default()
            });
            disruption_budget_signature(&b)
        };
        assert_eq!(with(1, 3, "2026-01-01T00:00:00Z"), with(1, 3, "2026-01-01T00:05:00Z"));
        assert_ne!(with(1, 3, "2026-01-01T00:00:00Z"), with(0, 2, "2026-01-01T00:00:00Z"));
    }

    #[test]
    fn a_workload_controllers_own_annotations_trigger_nothing_and_others_do() {
        let d = deployment();
        let mut revised = d.clone();
        let a = revised.metadata.annotations.get_or_insert_with(Default::default);
        a.insert("deployment.kubernetes.io/revision".into(), "1".into());
        assert_eq!(deployment_signature(&d), deployment_signature(&revised));
        let mut edited = revised.clone();
        edited.metadata.annotations.get_or_insert_with(Default::default).insert("team".into(), "x".into());
        assert_ne!(deployment_signature(&revised), deployment_signature(&edited));
        let mut hash_changed = d.clone();
        hash_changed
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(crate::build::meta::APPLIED_HASH.into(), "another".into());
        assert_ne!(deployment_signature(&d), deployment_signature(&hash_changed));
        let ds = |annotations: &[(&str, &str)]| {
            let mut ds = DaemonSet::default();
            ds.metadata.annotations =
                Some(annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
            daemon_set_signature(&ds)
        };
        assert_eq!(ds(&[]), ds(&[("deprecated.daemonset.template.generation", "2")]));
        assert_ne!(ds(&[]), ds(&[("team", "x")]));
    }
}
