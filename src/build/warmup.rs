//! The image warm-up DaemonSet `<app>-warmup` (`spec.warmUp`): one pod on every node the app's
//! pods may run on, placed as they are, that pulls the app's image by running it as an init
//! container (`cmd /c exit 0`) and then idles in a pause container. Nodes that join the pool get
//! one too, so they pull the image before the app's pods come. The controller holds the
//! Deployment on the image it runs until the DaemonSet has it on every node (see
//! `controller::warmup`); [`hold_image`] is that step, pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, Deployment, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{Affinity, Container, PodSpec, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta;
use crate::validate::ValidatedApp;

/// Annotation on the warm-up DaemonSet: when the warm-up of its image began (RFC 3339); the
/// deadline counts from it, across restarts of the operator.
pub const STARTED_ANNOTATION: &str = "winapp.dev/warm-up-started";
/// The init container that pulls the app's image.
pub const PULL_CONTAINER: &str = "warm-up";
/// The container that keeps the pod (and with it the image) on the node.
pub const PAUSE_CONTAINER: &str = "pause";
/// `app.kubernetes.io/name` of the warm-up pods: not the app's, so that neither its Service,
/// its PodDisruptionBudget, its NetworkPolicy nor its Deployment counts them.
pub const POD_NAME_LABEL: &str = "winapp-warm-up";
/// A no-op in every Windows image: what runs of the app's image.
pub const NO_OP: [&str; 3] = ["cmd", "/c", "exit 0"];

/// The warm-up DaemonSet's name.
pub fn name(app: &ValidatedApp) -> String {
    name_of(&app.name)
}

/// The warm-up DaemonSet's name for the app named `app`.
pub fn name_of(app: &str) -> String {
    format!("{app}-warmup")
}

/// The labels that select the warm-up pods.
pub fn selector_labels(app: &ValidatedApp) -> BTreeMap<String, String> {
    BTreeMap::from([
        (meta::SELECTOR_KEYS[0].to_owned(), POD_NAME_LABEL.to_owned()),
        (meta::SELECTOR_KEYS[1].to_owned(), app.name.clone()),
    ])
}

/// The warm-up DaemonSet of an app whose warm-up is on, placed as `deployment`'s pods are
/// (after the escape hatch: its node selector, node affinity, tolerations and RuntimeClass),
/// pulling `app.image` with their pull secrets and ServiceAccount. None when the warm-up is off.
pub fn daemon_set(app: &ValidatedApp, deployment: &Deployment) -> Option<DaemonSet> {
    if !app.warm_up.enabled {
        return None;
    }
    let base = deployment.spec.template.spec.as_ref()?;
    let mut metadata = meta::namespaced(app, name(app));
    if let Some(started) = &app.warm_up.started {
        metadata.annotations.get_or_insert_with(BTreeMap::new).insert(STARTED_ANNOTATION.into(), started.clone());
    }
    let mut labels = meta::own_labels(app);
    labels.extend(selector_labels(app));
    labels.insert("app.kubernetes.io/component".into(), "warm-up".into());
    Some(DaemonSet {
        metadata,
        spec: DaemonSetSpec {
            selector: LabelSelector { match_labels: Some(selector_labels(app)), ..LabelSelector::default() },
            // Every node pulls at once: the warm-up pods serve nothing.
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_surge: Some(IntOrString::Int(0)),
                    max_unavailable: Some(IntOrString::String("100%".into())),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(pod_spec(app, base)),
            },
            ..DaemonSetSpec::default()
        },
        ..DaemonSet::default()
    })
}

/// The warm-up pod: the app pods' placement and pull credentials, the app's image run once, a
/// pause container, no API token.
fn pod_spec(app: &ValidatedApp, base: &PodSpec) -> PodSpec {
    let pull_policy =
        base.containers.iter().find(|c| c.name == meta::CONTAINER_NAME).and_then(|c| c.image_pull_policy.clone());
    PodSpec {
        os: base.os.clone(),
        node_selector: base.node_selector.clone(),
        affinity: base
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.clone())
            .map(|n| Affinity { node_affinity: Some(n), ..Affinity::default() }),
        tolerations: base.tolerations.clone(),
        runtime_class_name: base.runtime_class_name.clone(),
        service_account_name: base.service_account_name.clone(),
        automount_service_account_token: Some(false),
        image_pull_secrets: base.image_pull_secrets.clone(),
        termination_grace_period_seconds: Some(1),
        init_containers: Some(vec![Container {
            name: PULL_CONTAINER.into(),
            image: Some(app.image.clone()),
            image_pull_policy: pull_policy,
            command: Some(NO_OP.iter().map(|s| (*s).to_owned()).collect()),
            resources: Some(small()),
            ..Container::default()
        }]),
        containers: vec![Container {
            name: PAUSE_CONTAINER.into(),
            image: Some(app.warm_up.pause_image.clone()),
            resources: Some(small()),
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

/// A little CPU and memory, with limits for namespaces whose quota asks for them.
fn small() -> ResourceRequirements {
    let q = |cpu: &str, memory: &str| {
        BTreeMap::from([("cpu".to_owned(), Quantity(cpu.into())), ("memory".to_owned(), Quantity(memory.into()))])
    };
    ResourceRequirements { requests: Some(q("10m", "64Mi")), limits: Some(q("500m", "512Mi")), ..Default::default() }
}

/// The image the warm-up DaemonSet pulls.
pub fn pulled_image(d: &DaemonSet) -> Option<&str> {
    let spec = d.spec.template.spec.as_ref()?;
    spec.init_containers.iter().flatten().find(|c| c.name == PULL_CONTAINER)?.image.as_deref()
}

/// The image the app container of `deployment` runs.
pub fn app_image(deployment: &Deployment) -> Option<&str> {
    let spec = deployment.spec.template.spec.as_ref()?;
    spec.containers.iter().find(|c| c.name == meta::CONTAINER_NAME)?.image.as_deref()
}

/// Keeps `deployment`'s app container on `image` (the one it runs) while the new one warms up.
pub fn hold_image(deployment: &mut Deployment, image: &str) {
    let containers = deployment.spec.template.spec.as_mut().map(|s| &mut s.containers);
    for c in containers.into_iter().flatten().filter(|c| c.name == meta::CONTAINER_NAME) {
        c.image = Some(image.to_owned());
    }
}
