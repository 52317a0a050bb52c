//! A checked `WindowsApp` -> [`ValidatedApp`]: what the checks resolved, the rest of the spec
//! copied over, and every default filled in.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{
    ConfigSettings, GmsaSettings, PROPAGATE_ANNOTATIONS, Placement, ServiceAccountChoice, ServiceSettings,
    ShutdownSettings, ValidatedApp, VolumeSettings, defaults, propagates, workload,
};
use crate::api::{WindowsApp, WindowsAppSpec};

/// What the checks of [`super::validate_with`] resolved.
pub struct Checked {
    pub name: String,
    pub namespace: String,
    /// The container's command when `spec.logging` wraps it.
    pub command: Option<Vec<String>>,
    pub shutdown: ShutdownSettings,
    pub disruption: super::DisruptionPolicy,
    pub service_account: ServiceAccountChoice,
    pub placement: Placement,
    pub service: Option<ServiceSettings>,
    pub config: Option<ConfigSettings>,
    pub gmsa: Option<GmsaSettings>,
    pub volumes: Vec<VolumeSettings>,
    pub host_process_user: Option<String>,
    pub pod_labels: BTreeMap<String, String>,
    pub pod_annotations: BTreeMap<String, String>,
    pub pod_spec_overrides: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The app that passed every check, with its defaults resolved.
pub fn validated(app: &WindowsApp, checked: Checked) -> ValidatedApp {
    let spec = &app.spec;
    let node_agent = spec.node_agent.unwrap_or(false);
    let probes = workload::resolve_probes(spec.probes.as_deref(), &spec.ports);
    let rollout = spec.rollout.clone().unwrap_or_default();
    ValidatedApp {
        uid: app.metadata.uid.clone(),
        suspend: spec.suspend.unwrap_or(false),
        image: spec.image.clone(),
        image_pull_policy: spec.image_pull_policy,
        image_pull_secrets: spec.image_pull_secrets.clone(),
        command: checked.command.unwrap_or_else(|| spec.command.clone()),
        args: spec.args.clone(),
        env: spec.env.clone(),
        env_from: spec.env_from.clone(),
        node_agent,
        replicas: replicas(spec, node_agent),
        replicas_explicit: spec.replicas.is_some(),
        resources: spec.resources.clone(),
        ports: spec.ports.clone(),
        probes,
        max_surge: rollout.max_surge.unwrap_or_else(|| {
            if node_agent { IntOrString::Int(0) } else { IntOrString::String(defaults::MAX_SURGE.into()) }
        }),
        max_unavailable: rollout.max_unavailable.unwrap_or(IntOrString::Int(if node_agent {
            defaults::NODE_AGENT_MAX_UNAVAILABLE
        } else {
            defaults::MAX_UNAVAILABLE
        })),
        progress_deadline_seconds: rollout.progress_deadline_seconds.unwrap_or(defaults::PROGRESS_DEADLINE_SECONDS),
        shutdown: checked.shutdown,
        disruption: checked.disruption,
        service_account: checked.service_account,
        api_access: spec.api_access.unwrap_or(false),
        placement: checked.placement,
        migration: None,
        service: checked.service,
        network_policy: spec.network_policy.clone(),
        config: checked.config,
        gmsa: checked.gmsa,
        host_process_user: checked.host_process_user,
        volumes: checked.volumes,
        prometheus: prometheus(spec),
        pod_labels: checked.pod_labels,
        propagated_labels: propagated_labels(app),
        propagated_annotations: propagated_annotations(app),
        pod_annotations: checked.pod_annotations,
        pod_spec_overrides: checked.pod_spec_overrides,
        warm_up: super::warmup::resolve(spec),
        name: checked.name,
        namespace: checked.namespace,
    }
}

/// The replica count the operator applies: none when an HPA owns it or for a node agent.
fn replicas(spec: &WindowsAppSpec, node_agent: bool) -> Option<i32> {
    if spec.autoscaled.unwrap_or(false) || node_agent {
        None
    } else {
        Some(spec.replicas.unwrap_or(defaults::REPLICAS))
    }
}

/// Prometheus scrape port and path, when monitoring asks for them.
fn prometheus(spec: &WindowsAppSpec) -> Option<(i32, String)> {
    spec.monitoring.as_ref().and_then(|m| m.prometheus.as_ref()).map(|p| {
        (
            p.port.unwrap_or(defaults::PROMETHEUS_PORT),
            p.path.clone().unwrap_or_else(|| defaults::PROMETHEUS_PATH.into()),
        )
    })
}

/// The app's labels that its children and pods carry too.
fn propagated_labels(app: &WindowsApp) -> BTreeMap<String, String> {
    app.labels().iter().filter(|(k, _)| propagates(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The app's annotations named in [`PROPAGATE_ANNOTATIONS`] that propagate.
fn propagated_annotations(app: &WindowsApp) -> BTreeMap<String, String> {
    let wanted: Vec<&str> = app
        .annotations()
        .get(PROPAGATE_ANNOTATIONS)
        .map(|list| list.split(',').map(str::trim).filter(|k| !k.is_empty()).collect())
        .unwrap_or_default();
    app.annotations()
        .iter()
        .filter(|(k, _)| wanted.contains(&k.as_str()) && propagates(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
