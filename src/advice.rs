//! Pure: advice on the app container's memory and CPU settings. Windows does not overcommit
//! memory and has no OOM killer that stops one container, so a container without a memory limit,
//! or one that uses more than it requested, takes memory from the node and every pod on it.
//! `render` prints the advice as warnings and the status carries it (`ResourcesAdvised`); it is
//! never a refusal and never changes Ready.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

use crate::build::meta::CONTAINER_NAME;
use crate::conditions::reason;
use crate::quantity;

/// One piece of advice: why (a reason of the `ResourcesAdvised` condition), and what to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub reason: &'static str,
    pub message: String,
}

/// The advice on the app container of `pod` (the pod spec as the operator applies it, so that
/// `spec.podTemplate` overrides count), in the order a person should act on it.
pub fn resources(pod: Option<&PodSpec>) -> Vec<Advice> {
    let Some(pod) = pod else { return Vec::new() };
    let app = pod.containers.iter().find(|c| c.name == CONTAINER_NAME).or_else(|| pod.containers.first());
    let Some(app) = app else { return Vec::new() };
    of(app.resources.as_ref())
}

/// The advice on one container's resources.
pub fn of(resources: Option<&ResourceRequirements>) -> Vec<Advice> {
    let get =
        |map: Option<&std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         name: &str| map.and_then(|m| m.get(name)).map(|q| q.0.clone());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    let mut advice = Vec::new();
    match (get(requests, "memory"), get(limits, "memory")) {
        (_, None) => advice.push(Advice {
            reason: reason::NO_MEMORY_LIMIT,
            message: "the container has no memory limit (spec.resources.limits.memory): Windows does not overcommit memory and has no OOM killer that stops one container, so a container that grows takes the memory of the node and of every pod on it; set limits.memory, and requests.memory to the same".to_owned(),
        }),
        (Some(request), Some(limit)) if below(&request, &limit) => advice.push(Advice {
            reason: reason::MEMORY_REQUEST_BELOW_LIMIT,
            message: format!(
                "requests.memory ({request}) is below limits.memory ({limit}): the scheduler places pods by their requests and Windows does not overcommit memory, so pods that use their limit can exhaust a node the scheduler counts as having room; set requests.memory to {limit}"
            ),
        }),
        _ => {}
    }
    if let (Some(request), Some(limit)) = (get(requests, "cpu"), get(limits, "cpu"))
        && below(&request, &limit)
    {
        advice.push(Advice {
            reason: reason::CPU_REQUEST_BELOW_LIMIT,
            message: format!(
                "requests.cpu ({request}) is below limits.cpu ({limit}): the scheduler places pods by their requests, so pods that use their limit contend for the node's CPU, and slow-starting Windows pods miss their startup probes; set requests.cpu to {limit}"
            ),
        });
    }
    advice
}

/// Whether quantity `a` is less than `b` (unparsable quantities are not compared).
fn below(a: &str, b: &str) -> bool {
    quantity::compare(a, b) == Some(Ordering::Less)
}

/// The advice as one condition message.
pub fn message(advice: &[Advice]) -> String {
    advice.iter().map(|a| a.message.as_str()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn res(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> ResourceRequirements {
        let map = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| kv.iter().map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned()))).collect())
        };
        ResourceRequirements { requests: map(requests), limits: map(limits), ..ResourceRequirements::default() }
    }

    fn reasons(r: Option<&ResourceRequirements>) -> Vec<&'static str> {
        of(r).into_iter().map(|a| a.reason).collect()
    }

    #[test]
    fn no_memory_limit_is_advised_against() {
        assert_eq!(reasons(None), [reason::NO_MEMORY_LIMIT]);
        assert_eq!(reasons(Some(&res(&[("memory", "1Gi")], &[("cpu", "2")]))), [reason::NO_MEMORY_LIMIT]);
    }

    #[test]
    fn requests_below_limits_are_advised_against_by_value() {
        let low = res(&[("memory", "512Mi"), ("cpu", "500m")], &[("memory", "1Gi"), ("cpu", "1")]);
        assert_eq!(reasons(Some(&low)), [reason::MEMORY_REQUEST_BELOW_LIMIT, reason::CPU_REQUEST_BELOW_LIMIT]);
        let msg = message(&of(Some(&low)));
        assert!(msg.contains("set requests.memory to 1Gi") && msg.contains("set requests.cpu to 1"), "{msg}");
        // Equal by value, in other units: nothing to say.
        let equal = res(&[("memory", "1024Mi"), ("cpu", "1000m")], &[("memory", "1Gi"), ("cpu", "1")]);
        assert_eq!(reasons(Some(&equal)), Vec::<&str>::new());
        // Requests left out default to the limits.
        assert_eq!(reasons(Some(&res(&[], &[("memory", "2Gi"), ("cpu", "1")]))), Vec::<&str>::new());
    }

    #[test]
    fn the_app_container_of_the_pod_is_judged() {
        let container = |name: &str, r: ResourceRequirements| Container {
            name: name.into(),
            resources: Some(r),
            ..Container::default()
        };
        let pod = PodSpec {
            containers: vec![
                container("sidecar", res(&[], &[])),
                container(CONTAINER_NAME, res(&[], &[("memory", "1Gi")])),
            ],
            ..PodSpec::default()
        };
        assert_eq!(resources(Some(&pod)), Vec::new(), "the sidecar is not the app");
        assert_eq!(resources(None), Vec::new());
    }
}
