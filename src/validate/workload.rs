//! `spec.probes`: the container's probes, with Windows-friendly defaults.

use k8s_openapi::api::core::v1::{Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ResolvedProbes, defaults};
use crate::api::AppPort;

/// Probes as given, with Windows-friendly defaults for unset ones when a port is named `http`:
/// TCP checks (an IIS site may answer 401 or 302 at `/`), and a startup probe that allows
/// ten minutes, since IIS and ASP.NET Framework apps are slow to start.
pub fn resolve_probes(given: Option<&crate::api::Probes>, ports: &[AppPort]) -> ResolvedProbes {
    let given = given.cloned().unwrap_or_default();
    let use_defaults = given.defaults.unwrap_or(true) && ports.iter().any(|p| p.name == defaults::PROBED_PORT);
    let tcp = |period: i32, failures: i32| Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::String(defaults::PROBED_PORT.into()), host: None }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    ResolvedProbes {
        liveness: given.liveness.or_else(|| use_defaults.then(|| tcp(20, 3))),
        readiness: given.readiness.or_else(|| use_defaults.then(|| tcp(10, 3))),
        startup: given.startup.or_else(|| use_defaults.then(|| tcp(10, 60))),
    }
}
