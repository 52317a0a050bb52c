//! The app's NetworkPolicy: ingress to its ports from the sources the spec names, nothing else.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{meta, service::protocol};
use crate::api::Protocol;
use crate::validate::ValidatedApp;

/// The NetworkPolicy, when the spec asks for one. It selects the app's pods and allows ingress
/// to their declared ports from the app's namespace (unless turned off) and the named sources.
/// An app without ports, or with no source, gets a policy that denies all ingress.
pub fn network_policy(app: &ValidatedApp) -> Option<NetworkPolicy> {
    let np = app.network_policy.as_ref()?;
    let mut from = Vec::new();
    if np.allow_same_namespace.unwrap_or(true) {
        from.push(NetworkPolicyPeer { pod_selector: Some(LabelSelector::default()), ..NetworkPolicyPeer::default() });
    }
    for source in &np.from {
        from.push(NetworkPolicyPeer {
            namespace_selector: source.namespace_selector.clone(),
            pod_selector: source.pod_selector.clone(),
            ..NetworkPolicyPeer::default()
        });
    }
    let ports: Vec<NetworkPolicyPort> = app
        .ports
        .iter()
        .map(|p| NetworkPolicyPort {
            port: Some(IntOrString::Int(p.container_port)),
            protocol: Some(protocol(p.protocol.unwrap_or(Protocol::Tcp)).to_owned()),
            ..NetworkPolicyPort::default()
        })
        .collect();
    let ingress = if from.is_empty() || ports.is_empty() {
        None
    } else {
        Some(vec![NetworkPolicyIngressRule { from: Some(from), ports: Some(ports) }])
    };
    Some(NetworkPolicy {
        metadata: meta::namespaced(app, meta::workload_name(app)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(meta::selector_labels(app)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress,
            egress: None,
        }),
    })
}
