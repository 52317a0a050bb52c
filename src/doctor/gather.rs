//! Reads the [`Facts`] from the API server: the only part of `doctor` that talks to the cluster.
//! Only reads (get and list), never Secrets. Listing nodes must succeed; any other read that is
//! refused becomes a [`Lookup::Forbidden`] or [`Lookup::Failed`], which the checks report.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use k8s_openapi::api::storage::v1::CSIDriver;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};

use super::DoctorError;
use super::addons::{GMSA_CRD, SMB_DRIVER};
use super::capacity;
use super::facts::{
    AdmissionBindingFacts, AdmissionPolicyFacts, AppFacts, ClusterRoleFacts, CrdFacts, CrdVersionFacts, DaemonSetFacts,
    DeploymentFacts, EnvFacts, Facts, GmsaCrdFacts, Lookup, NamespaceGrantFacts, NodeFacts, PodRequestFacts, RoleFacts,
    TaintFacts, WebhookConfigFacts, WebhookFacts,
};
use super::grants::{ALLOW_ANNOTATION, ALLOWED_TAINTS_ANNOTATION};
use super::operator::{NAME_LABEL, OPERATOR_NAME, WINDOWSAPP_CRD};
use crate::api::WindowsApp;
use crate::build::meta::MANAGER;
use crate::build::workload::{OS_LABEL, WINDOWS_BUILD_LABEL};

/// Label of the test fixture CRDs of this repository.
const TEST_FIXTURE_LABEL: &str = "winapp.dev/test-fixture";

/// A client of the cluster to check, and its address for messages.
pub struct Cluster {
    pub client: Client,
    pub url: String,
}

/// A client from `kubeconfig` (default: `KUBECONFIG`, `~/.kube/config`, then the in-cluster
/// account) and `context` (default: the current one), with short timeouts: a pre-flight must not hang.
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Cluster, DoctorError> {
    let options = KubeConfigOptions { context: context.map(str::to_owned), ..KubeConfigOptions::default() };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|e| DoctorError::NoConfig(chain(&e)))?;
            Config::from_custom_kubeconfig(file, &options).await.map_err(|e| DoctorError::NoConfig(chain(&e)))?
        }
        None if context.is_some() => {
            Config::from_kubeconfig(&options).await.map_err(|e| DoctorError::NoConfig(chain(&e)))?
        }
        None => Config::infer().await.map_err(|e| DoctorError::NoConfig(chain(&e)))?,
    };
    let mut config = config;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(DoctorError::Client)?;
    Ok(Cluster { client, url })
}

/// An error and its sources, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

/// A refused read becomes a [`Lookup`]; a failure to reach the API server stops `doctor`.
fn lookup<T>(url: &str, result: Result<T, kube::Error>) -> Result<Lookup<T>, DoctorError> {
    match result {
        Ok(v) => Ok(Lookup::Found(v)),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(Lookup::Forbidden(s.message.clone())),
        Err(kube::Error::Api(s)) => Ok(Lookup::Failed(format!("{} {}", s.code, s.message))),
        Err(e) => Err(DoctorError::Unreachable { url: url.to_owned(), reason: chain(&e) }),
    }
}

/// Reads everything the checks need. Nodes first: without them there is nothing to check.
pub async fn gather(cluster: &Cluster, operator_namespace: Option<&str>) -> Result<Facts, DoctorError> {
    let nodes = nodes(cluster).await?;
    let (gmsa_crd, mutating, validating, smb, daemon_sets, crd, apps, namespaces, deployments, roles) = tokio::join!(
        gmsa_crd(cluster),
        mutating_webhooks(cluster),
        validating_webhooks(cluster),
        smb_csi_driver(cluster),
        daemon_sets(cluster),
        windowsapp_crd(cluster),
        windows_apps(cluster),
        namespaces(cluster),
        operator_deployments(cluster, operator_namespace),
        operator_cluster_roles(cluster),
    );
    let (operator_roles, admission_policies, admission_bindings, pods) = tokio::join!(
        operator_roles(cluster),
        admission_policies(cluster),
        admission_bindings(cluster),
        windows_pods(cluster, &nodes)
    );
    let (namespaces, namespace_grants) = namespaces?;
    Ok(Facts {
        nodes,
        gmsa_crd: gmsa_crd?,
        mutating_webhooks: mutating?,
        validating_webhooks: validating?,
        smb_csi_driver: smb?,
        daemon_sets: daemon_sets?,
        windowsapp_crd: crd?,
        apps: apps?,
        namespaces,
        namespace_grants,
        operator_deployments: deployments?,
        operator_cluster_roles: roles?,
        operator_roles: operator_roles?,
        admission_policies: admission_policies?,
        admission_bindings: admission_bindings?,
        pods: pods?,
    })
}

async fn nodes(cluster: &Cluster) -> Result<Vec<NodeFacts>, DoctorError> {
    let api: Api<Node> = Api::all(cluster.client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items.into_iter().map(node_facts).collect()),
        Err(kube::Error::Api(s)) => {
            Err(DoctorError::NodesRefused { url: cluster.url.clone(), status: format!("{} {}", s.code, s.message) })
        }
        Err(e) => Err(DoctorError::Unreachable { url: cluster.url.clone(), reason: chain(&e) }),
    }
}

fn node_facts(node: Node) -> NodeFacts {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let status = node.status.unwrap_or_default();
    let info = status.node_info.unwrap_or_default();
    let spec = node.spec.unwrap_or_default();
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    NodeFacts {
        name: node.metadata.name.unwrap_or_default(),
        os: labels.get(OS_LABEL).cloned().or_else(|| non_empty(info.operating_system.clone())),
        windows_build: labels.get(WINDOWS_BUILD_LABEL).cloned(),
        ready: status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True"),
        unschedulable: spec.unschedulable.unwrap_or(false),
        taints: spec
            .taints
            .into_iter()
            .flatten()
            .map(|t| TaintFacts { key: t.key, value: t.value, effect: t.effect })
            .collect(),
        container_runtime: info.container_runtime_version,
        kubelet_version: info.kubelet_version,
        os_image: info.os_image,
        allocatable_cpu_millis: status
            .allocatable
            .as_ref()
            .and_then(|a| a.get("cpu"))
            .and_then(|q| capacity::millis(&q.0)),
        allocatable_memory_bytes: status
            .allocatable
            .as_ref()
            .and_then(|a| a.get("memory"))
            .and_then(|q| capacity::units(&q.0)),
    }
}

/// The requests of the pods on Windows nodes that are not done: one list of every namespace's
/// pods (their specs are dropped as they are read).
async fn windows_pods(cluster: &Cluster, nodes: &[NodeFacts]) -> Result<Lookup<Vec<PodRequestFacts>>, DoctorError> {
    let windows: std::collections::BTreeSet<&str> =
        nodes.iter().filter(|n| n.is_windows()).map(|n| n.name.as_str()).collect();
    if windows.is_empty() {
        return Ok(Lookup::Found(Vec::new()));
    }
    let api: Api<Pod> = Api::all(cluster.client.clone());
    let params = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let list = lookup(&cluster.url, api.list(&params).await)?;
    Ok(map(list, |list| {
        list.items
            .into_iter()
            .filter_map(|p| {
                let spec = p.spec?;
                let node = spec.node_name.clone().filter(|n| windows.contains(n.as_str()))?;
                let (cpu_millis, memory_bytes) = capacity::pod_requests(&spec);
                Some(PodRequestFacts { node, cpu_millis, memory_bytes })
            })
            .collect()
    }))
}

async fn gmsa_crd(cluster: &Cluster) -> Result<Lookup<Option<GmsaCrdFacts>>, DoctorError> {
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let crd = lookup(&cluster.url, api.get_opt(GMSA_CRD).await)?;
    Ok(map(crd, |crd| crd.map(|c| GmsaCrdFacts { test_fixture: c.labels().contains_key(TEST_FIXTURE_LABEL) })))
}

/// A webhook configuration: each webhook's name and the resources of its rules.
fn webhook_config(name: Option<String>, hooks: Vec<(String, Option<Vec<RuleWithOperations>>)>) -> WebhookConfigFacts {
    WebhookConfigFacts {
        name: name.unwrap_or_default(),
        webhooks: hooks
            .into_iter()
            .map(|(name, rules)| WebhookFacts {
                name,
                resources: rules.into_iter().flatten().flat_map(|r| r.resources.unwrap_or_default()).collect(),
            })
            .collect(),
    }
}

async fn mutating_webhooks(cluster: &Cluster) -> Result<Lookup<Vec<WebhookConfigFacts>>, DoctorError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(cluster.client.clone());
    let list = lookup(&cluster.url, api.list(&ListParams::default()).await)?;
    Ok(map(list, |list| {
        list.items
            .into_iter()
            .map(|c| {
                let hooks = c.webhooks.into_iter().flatten().map(|w| (w.name, w.rules)).collect();
                webhook_config(c.metadata.name, hooks)
            })
            .collect()
    }))
}

async fn validating_webhooks(cluster: &Cluster) -> Result<Lookup<Vec<WebhookConfigFacts>>, DoctorError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(cluster.client.clone());
    let list = lookup(&cluster.url, api.list(&ListParams::default()).await)?;
    Ok(map(list, |list| {
        list.items
            .into_iter()
            .map(|c| {
                let hooks = c.webhooks.into_iter().flatten().map(|w| (w.name, w.rules)).collect();
                webhook_config(c.metadata.name, hooks)
            })
            .collect()
    }))
}

fn map<T, U>(l: Lookup<T>, f: impl FnOnce(T) -> U) -> Lookup<U> {
    match l {
        Lookup::Found(v) => Lookup::Found(f(v)),
        Lookup::Forbidden(m) => Lookup::Forbidden(m),
        Lookup::Failed(m) => Lookup::Failed(m),
    }
}

async fn smb_csi_driver(cluster: &Cluster) -> Result<Lookup<bool>, DoctorError> {
    let api: Api<CSIDriver> = Api::all(cluster.client.clone());
    Ok(map(lookup(&cluster.url, api.get_opt(SMB_DRIVER).await)?, |d| d.is_some()))
}

async fn daemon_sets(cluster: &Cluster) -> Result<Lookup<Vec<DaemonSetFacts>>, DoctorError> {
    let api: Api<DaemonSet> = Api::all(cluster.client.clone());
    let list = lookup(&cluster.url, api.list(&ListParams::default()).await)?;
    Ok(map(list, |list| {
        list.items
            .into_iter()
            .map(|d| {
                let pod = d.spec.template.spec.unwrap_or_default();
                let status = d.status.unwrap_or_default();
                DaemonSetFacts {
                    namespace: d.metadata.namespace.unwrap_or_default(),
                    name: d.metadata.name.unwrap_or_default(),
                    node_selector: pod.node_selector.unwrap_or_default(),
                    images: pod.containers.into_iter().filter_map(|c| c.image).collect(),
                    desired: status.desired_number_scheduled,
                    ready: status.number_ready,
                }
            })
            .collect()
    }))
}

async fn windowsapp_crd(cluster: &Cluster) -> Result<Lookup<Option<CrdFacts>>, DoctorError> {
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let crd = lookup(&cluster.url, api.get_opt(WINDOWSAPP_CRD).await)?;
    let Lookup::Found(Some(crd)) = crd else {
        return Ok(map(crd, |_| None));
    };
    let mut versions = Vec::new();
    for v in crd.spec.versions {
        let schema = match v.schema.and_then(|s| s.open_api_v3_schema) {
            Some(s) => Some(serde_json::to_value(s).map_err(|e| {
                DoctorError::Internal(format!("cannot serialize the installed CRD's schema of {}: {e}", v.name))
            })?),
            None => None,
        };
        versions.push(CrdVersionFacts { name: v.name, served: v.served, storage: v.storage, schema });
    }
    Ok(Lookup::Found(Some(CrdFacts { versions })))
}

/// WindowsApps of all namespaces, read as plain objects so that one the current schema cannot
/// decode still counts. `None` when the CRD is not installed (404).
async fn windows_apps(cluster: &Cluster) -> Result<Lookup<Option<Vec<AppFacts>>>, DoctorError> {
    let api: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &ApiResource::erase::<WindowsApp>(&()));
    let list = match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Lookup::Found(None)),
        other => lookup(&cluster.url, other)?,
    };
    Ok(map(list, |list| {
        Some(
            list.items
                .into_iter()
                .map(|a| AppFacts {
                    host_process: a.data.get("spec").and_then(|s| s.get("hostProcess")).is_some_and(|h| !h.is_null()),
                    network_policy: a
                        .data
                        .get("spec")
                        .and_then(|s| s.get("networkPolicy"))
                        .is_some_and(|n| !n.is_null()),
                    windows_version: a
                        .data
                        .pointer("/spec/windows/version")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                    namespace: a.metadata.namespace.unwrap_or_default(),
                    name: a.metadata.name.unwrap_or_default(),
                })
                .collect(),
        )
    }))
}

/// Labels of namespaces, by name.
type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

/// Labels of namespaces, by name; and the namespaces that grant their apps powers of the
/// operator's policy by annotation. One list, metadata only.
async fn namespaces(
    cluster: &Cluster,
) -> Result<(Lookup<NamespaceLabels>, Lookup<Vec<NamespaceGrantFacts>>), DoctorError> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let list = lookup(&cluster.url, api.list_metadata(&ListParams::default()).await)?;
    let grants = map(list.clone(), |list| {
        list.items
            .iter()
            .filter_map(|n| {
                let a = n.metadata.annotations.as_ref()?;
                let (allow, allowed_taints) =
                    (a.get(ALLOW_ANNOTATION).cloned(), a.get(ALLOWED_TAINTS_ANNOTATION).cloned());
                (allow.is_some() || allowed_taints.is_some()).then(|| NamespaceGrantFacts {
                    namespace: n.metadata.name.clone().unwrap_or_default(),
                    allow,
                    allowed_taints,
                })
            })
            .collect()
    });
    let labels = map(list, |list| {
        list.items
            .into_iter()
            .map(|n| (n.metadata.name.unwrap_or_default(), n.metadata.labels.unwrap_or_default()))
            .collect()
    });
    Ok((labels, grants))
}

/// The operator's objects carry `app.kubernetes.io/name=winapp-operator`; an app's children carry
/// their app's name there and `managed-by=winapp-operator`, so an app named like the operator is left out.
fn operator_selector() -> String {
    format!("{NAME_LABEL}={OPERATOR_NAME},app.kubernetes.io/managed-by!={MANAGER}")
}

async fn operator_deployments(
    cluster: &Cluster,
    namespace: Option<&str>,
) -> Result<Lookup<Vec<DeploymentFacts>>, DoctorError> {
    let api: Api<Deployment> = match namespace {
        Some(ns) => Api::namespaced(cluster.client.clone(), ns),
        None => Api::all(cluster.client.clone()),
    };
    let list = lookup(&cluster.url, api.list(&ListParams::default().labels(&operator_selector())).await)?;
    Ok(map(list, |list| list.items.into_iter().map(deployment_facts).collect()))
}

fn deployment_facts(d: Deployment) -> DeploymentFacts {
    let status = d.status.unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let condition = |t: &str| conditions.iter().find(|c| c.type_.as_deref() == Some(t));
    let available = condition("Available").is_some_and(|c| c.status.as_deref() == Some("True"));
    let message = if available {
        None
    } else {
        condition("Available").or_else(|| condition("Progressing")).and_then(|c| c.message.clone())
    };
    let pod = d.spec.template.spec.clone().unwrap_or_default();
    // The operator's container: the one that runs `winapp-operator run`, else the first.
    let container = pod
        .containers
        .iter()
        .find(|c| c.args.iter().chain(&c.command).flatten().any(|a| a == "run"))
        .or_else(|| pod.containers.first());
    let (args, env) = match container {
        Some(c) => (
            c.command.iter().chain(&c.args).flatten().cloned().collect(),
            c.env
                .iter()
                .flatten()
                .map(|e| EnvFacts {
                    name: e.name.clone(),
                    value: match &e.value_from {
                        Some(_) => None,
                        None => Some(e.value.clone().unwrap_or_default()),
                    },
                })
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    DeploymentFacts {
        namespace: d.metadata.namespace.unwrap_or_default(),
        name: d.metadata.name.unwrap_or_default(),
        replicas: d.spec.replicas.unwrap_or(1),
        available_replicas: status.available_replicas.unwrap_or(0),
        available,
        message,
        service_account: pod.service_account_name.unwrap_or_default(),
        args,
        env,
    }
}

/// The ClusterRole `winapp-operator` and any labelled as the operator's (the Helm chart names
/// them after the release).
async fn operator_cluster_roles(cluster: &Cluster) -> Result<Lookup<Vec<ClusterRoleFacts>>, DoctorError> {
    let api: Api<ClusterRole> = Api::all(cluster.client.clone());
    let labelled = lookup(&cluster.url, api.list(&ListParams::default().labels(&operator_selector())).await)?;
    let named = lookup(&cluster.url, api.get_opt(OPERATOR_NAME).await)?;
    let mut roles: Vec<ClusterRole> = match (labelled, named) {
        (Lookup::Found(list), Lookup::Found(named)) => list.items.into_iter().chain(named).collect(),
        (Lookup::Found(list), _) => list.items,
        (_, Lookup::Found(named)) => named.into_iter().collect(),
        (refused, _) => return Ok(map(refused, |_| Vec::new())),
    };
    roles.sort_by_key(|r| r.name_any());
    roles.dedup_by_key(|r| r.name_any());
    Ok(Lookup::Found(
        roles
            .into_iter()
            .map(|r| ClusterRoleFacts { name: r.name_any(), rules: r.rules.unwrap_or_default() })
            .collect(),
    ))
}

/// Roles labelled as the operator's, in every namespace.
async fn operator_roles(cluster: &Cluster) -> Result<Lookup<Vec<RoleFacts>>, DoctorError> {
    let api: Api<Role> = Api::all(cluster.client.clone());
    let list = lookup(&cluster.url, api.list(&ListParams::default().labels(&operator_selector())).await)?;
    Ok(map(list, |list| {
        list.items
            .into_iter()
            .map(|r| RoleFacts {
                namespace: r.metadata.namespace.unwrap_or_default(),
                name: r.metadata.name.unwrap_or_default(),
                rules: r.rules.unwrap_or_default(),
            })
            .collect()
    }))
}

/// A list that is `None` when the API server does not serve the kind (404).
fn served<T>(url: &str, result: Result<T, kube::Error>) -> Result<Lookup<Option<T>>, DoctorError> {
    match result {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Lookup::Found(None)),
        other => Ok(map(lookup(url, other)?, Some)),
    }
}

/// Every ValidatingAdmissionPolicy (few in a cluster): the operator's fence among them.
async fn admission_policies(cluster: &Cluster) -> Result<Lookup<Option<Vec<AdmissionPolicyFacts>>>, DoctorError> {
    let api: Api<ValidatingAdmissionPolicy> = Api::all(cluster.client.clone());
    let list = served(&cluster.url, api.list(&ListParams::default()).await)?;
    Ok(map(list, |list| {
        list.map(|list| {
            list.items
                .into_iter()
                .map(|p| {
                    let operator_labelled = p.labels().get(NAME_LABEL).is_some_and(|v| v == OPERATOR_NAME);
                    let spec = p.spec.unwrap_or_default();
                    AdmissionPolicyFacts {
                        name: p.metadata.name.unwrap_or_default(),
                        operator_labelled,
                        match_conditions: spec.match_conditions.into_iter().flatten().map(|c| c.expression).collect(),
                        resources: spec
                            .match_constraints
                            .and_then(|m| m.resource_rules)
                            .into_iter()
                            .flatten()
                            .flat_map(|r| r.resources.unwrap_or_default())
                            .collect(),
                    }
                })
                .collect()
        })
    }))
}

async fn admission_bindings(cluster: &Cluster) -> Result<Lookup<Option<Vec<AdmissionBindingFacts>>>, DoctorError> {
    let api: Api<ValidatingAdmissionPolicyBinding> = Api::all(cluster.client.clone());
    let list = served(&cluster.url, api.list(&ListParams::default()).await)?;
    Ok(map(list, |list| {
        list.map(|list| {
            list.items
                .into_iter()
                .map(|b| {
                    let spec = b.spec;
                    AdmissionBindingFacts {
                        name: b.metadata.name.unwrap_or_default(),
                        policy_name: spec.policy_name,
                        actions: spec.validation_actions,
                    }
                })
                .collect()
        })
    }))
}
