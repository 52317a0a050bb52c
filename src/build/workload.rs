//! The workload: a Deployment, or for node agents a DaemonSet, of pods pinned to Windows nodes,
//! with the escape hatch merged in last.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, Deployment, DeploymentSpec, DeploymentStrategy,
    RollingUpdateDaemonSet, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, KeyToPath, PersistentVolumeClaimVolumeSource, PodOS,
    PodSecurityContext, PodSpec, PodTemplateSpec, ProjectedVolumeSource, SecretProjection, Toleration, Volume,
    VolumeMount, VolumeProjection, WindowsSecurityContextOptions,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

use serde_json::Value;

use super::{BuildError, meta, service::protocol};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{AccessMode, ImagePullPolicy};
use crate::validate::{ConfigSettings, Placement, ValidatedApp, VolumeSource};

/// Node label with the OS.
pub const OS_LABEL: &str = "kubernetes.io/os";
/// Node label with the Windows build.
pub const WINDOWS_BUILD_LABEL: &str = "node.kubernetes.io/windows-build";
/// Annotation of a Deployment whose pods move to another Windows build: the release they come
/// from (`ltsc2019`), for as long as pods of it may run. The operator reads it back to know that a
/// migration is still under way once the Deployment's template names the new build.
pub const MIGRATING_FROM_ANNOTATION: &str = "winapp.dev/migrating-from";

/// The app's pods: one per matching Windows node for a node agent, else `replicas` of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Deployment(Deployment),
    DaemonSet(DaemonSet),
}

impl Workload {
    /// The app's workload.
    pub fn of(app: &ValidatedApp) -> Result<Self, BuildError> {
        Ok(if app.node_agent { Workload::DaemonSet(daemon_set(app)?) } else { Workload::Deployment(deployment(app)?) })
    }

    /// The kind, as the API server names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Workload::Deployment(_) => "Deployment",
            Workload::DaemonSet(_) => "DaemonSet",
        }
    }

    /// The pod template.
    pub fn template(&self) -> &PodTemplateSpec {
        match self {
            Workload::Deployment(d) => &d.spec.template,
            Workload::DaemonSet(d) => &d.spec.template,
        }
    }

    /// The Deployment, when the app is not a node agent.
    pub fn as_deployment(&self) -> Option<&Deployment> {
        match self {
            Workload::Deployment(d) => Some(d),
            Workload::DaemonSet(_) => None,
        }
    }

    /// The DaemonSet, when the app is a node agent.
    pub fn as_daemon_set(&self) -> Option<&DaemonSet> {
        match self {
            Workload::DaemonSet(d) => Some(d),
            Workload::Deployment(_) => None,
        }
    }
}

/// A node agent's DaemonSet: the DaemonSet controller places one pod on every node that the pod
/// template's selector and tolerations admit.
pub fn daemon_set(app: &ValidatedApp) -> Result<DaemonSet, BuildError> {
    Ok(DaemonSet {
        metadata: meta::namespaced(app, meta::workload_name(app)),
        spec: DaemonSetSpec {
            selector: LabelSelector { match_labels: Some(meta::selector_labels(app)), ..LabelSelector::default() },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_surge: Some(app.max_surge.clone()),
                    max_unavailable: Some(app.max_unavailable.clone()),
                }),
            }),
            template: pod_template(app)?,
            ..DaemonSetSpec::default()
        },
        ..DaemonSet::default()
    })
}

/// The app's Deployment. While its pods move to another Windows build, it says from which
/// ([`MIGRATING_FROM_ANNOTATION`]) and rolls with [`rollout_limits`].
pub fn deployment(app: &ValidatedApp) -> Result<Deployment, BuildError> {
    let mut metadata = meta::namespaced(app, meta::workload_name(app));
    if let Some(m) = &app.migration {
        metadata.annotations.get_or_insert_default().insert(MIGRATING_FROM_ANNOTATION.into(), m.from.as_str().into());
    }
    let (max_surge, max_unavailable) = rollout_limits(app);
    Ok(Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: app.replicas,
            selector: LabelSelector { match_labels: Some(meta::selector_labels(app)), ..LabelSelector::default() },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(max_surge),
                    max_unavailable: Some(max_unavailable),
                }),
            }),
            progress_deadline_seconds: Some(app.progress_deadline_seconds),
            template: pod_template(app)?,
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    })
}

/// The Deployment's rolling update limits (maxSurge, maxUnavailable): the app's, except while its
/// pods move to another Windows build. Then no old pod goes before a new one is Ready
/// (maxUnavailable 0) and new pods come at least one at a time (maxSurge 1 when it was 0): the
/// old build's pods keep serving until the new build's are Ready, and keep serving if they never
/// are (no nodes of the new build, an image that does not run there). Not for an app with a
/// single-attach claim (ReadWriteOnce): a new pod on another node could not mount it while an
/// old one holds it, so its own limits apply (its old pod goes first).
pub fn rollout_limits(app: &ValidatedApp) -> (IntOrString, IntOrString) {
    let single_attach = app.volumes.iter().any(|v| {
        matches!(&v.source, VolumeSource::Claim { access_modes, .. }
            if access_modes.iter().all(|m| matches!(m, AccessMode::ReadWriteOnce | AccessMode::ReadWriteOncePod)))
    });
    if app.migration.is_none() || single_attach {
        return (app.max_surge.clone(), app.max_unavailable.clone());
    }
    let surge = if is_zero(&app.max_surge) { IntOrString::Int(1) } else { app.max_surge.clone() };
    (surge, IntOrString::Int(0))
}

/// A count or percentage of zero (`0`, `0%`).
fn is_zero(v: &IntOrString) -> bool {
    match v {
        IntOrString::Int(n) => *n <= 0,
        IntOrString::String(s) => s.trim_end_matches('%').trim().parse::<f64>().is_ok_and(|n| n <= 0.0),
    }
}

/// The pod template: labels, annotations (config checksum, Prometheus), and the pod spec.
pub fn pod_template(app: &ValidatedApp) -> Result<PodTemplateSpec, BuildError> {
    // Inherited, then the pod template's own, then the operator's (the selector always wins).
    let mut labels = app.propagated_labels.clone();
    labels.extend(app.pod_labels.clone());
    labels.extend(meta::own_labels(app));
    let mut annotations = app.propagated_annotations.clone();
    annotations.extend(app.pod_annotations.clone());
    if let Some(config) = &app.config {
        annotations.insert(meta::CONFIG_CHECKSUM.into(), config.checksum.clone());
        if !config.secret_versions.is_empty() {
            annotations.insert(meta::CONFIG_SECRETS_VERSION.into(), crate::validate::checksum(&config.secret_versions));
        }
    }
    if let Some((port, path)) = &app.prometheus {
        annotations.insert("prometheus.io/scrape".into(), "true".into());
        annotations.insert("prometheus.io/port".into(), port.to_string());
        annotations.insert("prometheus.io/path".into(), path.clone());
    }
    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(with_overrides(pod_spec(app), app.pod_spec_overrides.as_ref())?),
    })
}

/// The generated pod spec, before the escape hatch: Windows placement, identity, one container.
fn pod_spec(app: &ValidatedApp) -> PodSpec {
    let placement = &app.placement;
    let (volumes, mounts) = volumes_and_mounts(app);
    PodSpec {
        os: Some(PodOS { name: "windows".into() }),
        node_selector: Some(node_selector(placement)),
        tolerations: non_empty(&tolerations(placement)),
        // Its scheduling (node selector, tolerations) is added at admission.
        runtime_class_name: placement.runtime_class_name.clone(),
        service_account_name: Some(app.service_account.name().to_owned()),
        // The pod's setting wins over the ServiceAccount's: no API token unless asked for.
        automount_service_account_token: Some(app.api_access),
        image_pull_secrets: non_empty(&app.image_pull_secrets),
        host_network: app.host_process_user.as_ref().map(|_| true),
        security_context: windows_options(app)
            .map(|w| PodSecurityContext { windows_options: Some(w), ..PodSecurityContext::default() }),
        containers: vec![container(app, &mounts)],
        volumes: non_empty(&volumes),
        termination_grace_period_seconds: Some(app.shutdown.grace_period_seconds),
        ..PodSpec::default()
    }
}

/// Windows nodes, of the app's release when it names one, with the extra labels asked for.
fn node_selector(placement: &Placement) -> BTreeMap<String, String> {
    let mut node_selector = placement.node_selector.clone();
    node_selector.insert(OS_LABEL.into(), "windows".into());
    if let Some(v) = placement.version {
        node_selector.insert(WINDOWS_BUILD_LABEL.into(), v.build().into());
    }
    node_selector
}

/// The Windows pool taints (NoSchedule), then the extra tolerations asked for.
fn tolerations(placement: &Placement) -> Vec<Toleration> {
    let mut tolerations: Vec<Toleration> = placement
        .pool_taints
        .iter()
        .map(|t| Toleration {
            key: Some(t.key.clone()),
            operator: Some("Equal".into()),
            value: Some(t.value.clone()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        })
        .collect();
    tolerations.extend(placement.tolerations.iter().cloned());
    tolerations
}

/// The pod's volumes and the container's mounts: the config files first, then the app's volumes.
fn volumes_and_mounts(app: &ValidatedApp) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some(config) = &app.config {
        if !config.files.is_empty() || !config.generated.is_empty() {
            volumes.push(Volume {
                name: meta::CONFIG_VOLUME.into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: meta::config_map_name(app),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            });
        }
        if !config.secret_files.is_empty() {
            volumes.push(config_secrets_volume(config));
        }
        mounts.extend(config_mounts(config));
    }
    for v in &app.volumes {
        volumes.push(Volume {
            name: v.name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: meta::claim_name(app, &v.name),
                read_only: v.read_only.then_some(true),
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: v.mount_path.clone(),
            read_only: v.read_only.then_some(true),
            ..VolumeMount::default()
        });
    }
    (volumes, mounts)
}

/// The config files from Secrets: one projected volume with a source per Secret, each key at the
/// file's name.
fn config_secrets_volume(config: &ConfigSettings) -> Volume {
    let mut by_secret: BTreeMap<&str, Vec<KeyToPath>> = BTreeMap::new();
    for (file, (secret, key)) in &config.secret_files {
        by_secret.entry(secret).or_default().push(KeyToPath {
            key: key.clone(),
            path: file.clone(),
            ..KeyToPath::default()
        });
    }
    let sources = by_secret
        .into_iter()
        .map(|(secret, items)| VolumeProjection {
            secret: Some(SecretProjection {
                name: secret.to_owned(),
                items: Some(items),
                ..SecretProjection::default()
            }),
            ..VolumeProjection::default()
        })
        .collect();
    Volume {
        name: meta::CONFIG_SECRETS_VOLUME.into(),
        projected: Some(ProjectedVolumeSource { sources: Some(sources), ..ProjectedVolumeSource::default() }),
        ..Volume::default()
    }
}

/// One subPath mount per config file, by file name, so the rest of the directory stays the image's;
/// the files the operator writes at their own paths.
fn config_mounts(config: &ConfigSettings) -> Vec<VolumeMount> {
    let inline = config.files.keys().map(|f| (f, meta::CONFIG_VOLUME));
    let secret = config.secret_files.keys().map(|f| (f, meta::CONFIG_SECRETS_VOLUME));
    let mut all: Vec<(&String, &str)> = inline.chain(secret).collect();
    all.sort();
    let at_mount_path =
        all.into_iter().map(|(file, volume)| (meta::config_file_path(&config.mount_path, file), file, volume));
    let generated = config.generated.iter().map(|(key, (path, _))| (path.clone(), key, meta::CONFIG_VOLUME));
    at_mount_path
        .chain(generated)
        .map(|(path, file, volume)| VolumeMount {
            name: volume.into(),
            mount_path: path,
            sub_path: Some(file.clone()),
            read_only: Some(true),
            ..VolumeMount::default()
        })
        .collect()
}

/// The pod's Windows security options: the gMSA credential spec, or the HostProcess account.
fn windows_options(app: &ValidatedApp) -> Option<WindowsSecurityContextOptions> {
    match (&app.gmsa, &app.host_process_user) {
        (None, None) => None,
        (gmsa, host) => Some(WindowsSecurityContextOptions {
            gmsa_credential_spec_name: gmsa.as_ref().map(|g| g.credential_spec_name.clone()),
            host_process: host.as_ref().map(|_| true),
            run_as_user_name: host.clone(),
            ..WindowsSecurityContextOptions::default()
        }),
    }
}

/// The app's one container, with its mounts.
fn container(app: &ValidatedApp, mounts: &[VolumeMount]) -> Container {
    Container {
        name: meta::CONTAINER_NAME.into(),
        image: Some(app.image.clone()),
        image_pull_policy: app.image_pull_policy.map(|p| {
            match p {
                ImagePullPolicy::Always => "Always",
                ImagePullPolicy::IfNotPresent => "IfNotPresent",
                ImagePullPolicy::Never => "Never",
            }
            .into()
        }),
        command: non_empty(&app.command),
        args: non_empty(&app.args),
        env: non_empty(&app.env),
        env_from: non_empty(&app.env_from),
        ports: non_empty(
            &app.ports
                .iter()
                .map(|p| ContainerPort {
                    name: Some(p.name.clone()),
                    container_port: p.container_port,
                    protocol: p.protocol.map(|x| protocol(x).into()),
                    ..ContainerPort::default()
                })
                .collect::<Vec<_>>(),
        ),
        resources: app.resources.clone(),
        liveness_probe: app.probes.liveness.clone(),
        readiness_probe: app.probes.readiness.clone(),
        startup_probe: app.probes.startup.clone(),
        volume_mounts: non_empty(mounts),
        lifecycle: super::shutdown::lifecycle(app.shutdown.pre_stop.as_ref()),
        ..Container::default()
    }
}

fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// Lists merged entry by entry, keyed by the named field, rather than replaced.
const KEYED_LISTS: &[(&str, &str)] = &[
    ("containers", "name"),
    ("initContainers", "name"),
    ("volumes", "name"),
    ("imagePullSecrets", "name"),
    ("env", "name"),
    ("volumeMounts", "mountPath"),
    ("ports", "containerPort"),
    ("tolerations", "key"),
];

/// Merges the escape hatch over the generated pod spec.
fn with_overrides(spec: PodSpec, overrides: Option<&serde_json::Map<String, Value>>) -> Result<PodSpec, BuildError> {
    let Some(overrides) = overrides else { return Ok(spec) };
    let mut base = serde_json::to_value(spec).map_err(BuildError::PodTemplateMerge)?;
    merge(&mut base, &Value::Object(overrides.clone()));
    serde_json::from_value(base).map_err(BuildError::PodTemplateMerge)
}

/// JSON merge patch (RFC 7386: objects merge, `null` deletes, other values replace), except the
/// [`KEYED_LISTS`], whose entries merge by key and new entries are appended.
pub fn merge(base: &mut Value, over: &Value) {
    let (Value::Object(b), Value::Object(o)) = (&mut *base, over) else {
        *base = over.clone();
        return;
    };
    for (k, ov) in o {
        if ov.is_null() {
            b.remove(k);
            continue;
        }
        let key_field = KEYED_LISTS.iter().find(|(list, _)| list == k).map(|(_, key)| *key);
        match (b.get_mut(k), key_field, ov) {
            (Some(Value::Array(items)), Some(key), Value::Array(new_items)) => {
                for new in new_items {
                    let existing = new.get(key).and_then(|id| items.iter_mut().find(|i| i.get(key) == Some(id)));
                    match existing {
                        Some(item) => merge(item, new),
                        None => items.push(new.clone()),
                    }
                }
            }
            (Some(bv), _, _) => merge(bv, ov),
            (None, _, _) => {
                b.insert(k.clone(), ov.clone());
            }
        }
    }
}
