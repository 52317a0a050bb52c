//! `spec.ports` and `spec.service`: unique ports, and the Service's ports resolved against them.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeSet;

use super::{ServicePort, ServiceSettings, ValidationError};
use crate::api::{AppPort, Protocol, ServiceType};

/// Container port names and numbers are unique.
pub fn check_ports(ports: &[AppPort], errors: &mut Vec<ValidationError>) {
    let mut seen_names = BTreeSet::new();
    let mut seen_numbers = BTreeSet::new();
    for p in ports {
        if !seen_names.insert(p.name.clone()) {
            errors.push(ValidationError::DuplicatePort("name", p.name.clone()));
        }
        if !seen_numbers.insert((p.container_port, p.protocol.unwrap_or(Protocol::Tcp) == Protocol::Udp)) {
            errors.push(ValidationError::DuplicatePort("number", p.container_port.to_string()));
        }
    }
}

/// The Service, with each port's target resolved (a named container port, or the number).
pub fn resolve(
    s: &crate::api::AppService,
    container_ports: &[AppPort],
    errors: &mut Vec<ValidationError>,
) -> Option<ServiceSettings> {
    let type_ = s.type_.unwrap_or(ServiceType::ClusterIP);
    if type_ == ServiceType::ClusterIP && s.external_traffic_policy.is_some() {
        errors.push(ValidationError::TrafficPolicyOnClusterIp);
    }
    let ports: Vec<ServicePort> = if s.ports.is_empty() {
        container_ports
            .iter()
            .map(|p| ServicePort {
                name: p.name.clone(),
                port: p.container_port,
                target_port: IntOrString::String(p.name.clone()),
                node_port: None,
                protocol: p.protocol.unwrap_or(Protocol::Tcp),
            })
            .collect()
    } else {
        s.ports
            .iter()
            .map(|p| {
                let target_port = match &p.target_port {
                    Some(IntOrString::String(target)) => {
                        if !container_ports.iter().any(|c| &c.name == target) {
                            errors.push(ValidationError::UnknownTargetPort {
                                port: p.name.clone(),
                                target: target.clone(),
                            });
                        }
                        IntOrString::String(target.clone())
                    }
                    Some(IntOrString::Int(n)) => IntOrString::Int(*n),
                    None if container_ports.iter().any(|c| c.name == p.name) => IntOrString::String(p.name.clone()),
                    None => IntOrString::Int(p.port),
                };
                if type_ == ServiceType::ClusterIP && p.node_port.is_some() {
                    errors.push(ValidationError::NodePortOnClusterIp(p.name.clone()));
                }
                ServicePort {
                    name: p.name.clone(),
                    port: p.port,
                    target_port,
                    node_port: p.node_port,
                    protocol: p.protocol.unwrap_or(Protocol::Tcp),
                }
            })
            .collect()
    };
    if ports.is_empty() {
        errors.push(ValidationError::ServiceWithoutPorts);
        return None;
    }
    Some(ServiceSettings {
        name: s.name.clone(),
        type_,
        ports,
        external_traffic_policy: s.external_traffic_policy,
        annotations: s.annotations.clone(),
    })
}
