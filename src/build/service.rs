//! The Service in front of the pods.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};

use super::meta;
use crate::api::{Protocol, ServiceType, TrafficPolicy};
use crate::validate::ValidatedApp;

/// The Service, when the app asks for one.
pub fn service(app: &ValidatedApp) -> Option<Service> {
    let s = app.service.as_ref()?;
    let mut metadata = meta::namespaced(app, meta::service_name(app));
    if !s.annotations.is_empty() {
        metadata.annotations.get_or_insert_default().extend(s.annotations.clone());
    }
    Some(Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(
                match s.type_ {
                    ServiceType::ClusterIP => "ClusterIP",
                    ServiceType::NodePort => "NodePort",
                    ServiceType::LoadBalancer => "LoadBalancer",
                }
                .into(),
            ),
            selector: Some(meta::selector_labels(app)),
            ports: Some(
                s.ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(p.name.clone()),
                        port: p.port,
                        target_port: Some(p.target_port.clone()),
                        node_port: p.node_port,
                        protocol: Some(protocol(p.protocol).into()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            external_traffic_policy: s.external_traffic_policy.map(|t| {
                match t {
                    TrafficPolicy::Cluster => "Cluster",
                    TrafficPolicy::Local => "Local",
                }
                .into()
            }),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The core/v1 spelling of a protocol.
pub fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}
