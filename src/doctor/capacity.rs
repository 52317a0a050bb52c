//! Pure: the Windows nodes' room, per Windows build. Windows does not overcommit memory, and
//! Windows pods move slowly (multi-gigabyte images), so a pool whose requests come near its
//! allocatable has no room for a drained node's pods or a rollout's surge pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::facts::{Lookup, NodeFacts, PodRequestFacts};
use super::{Check, Finding, not_checked};
use crate::quantity;

/// Requests above this share of a build's allocatable CPU or memory are a warning.
pub const WARN_PERCENT: u64 = 90;

/// A quantity in thousandths (`500m` -> 500, `2` -> 2000), rounded up; None when unparsable or
/// negative.
pub fn millis(q: &str) -> Option<u64> {
    scaled(q, 3)
}

/// A quantity in whole units (`1Gi` -> 1073741824), rounded up.
pub fn units(q: &str) -> Option<u64> {
    scaled(q, 0)
}

/// `q * 10^shift`, rounded up to a whole number.
fn scaled(q: &str, shift: i32) -> Option<u64> {
    let (n, scale) = quantity::parse(q)?;
    let exp = scale.checked_add(shift)?;
    let v = if exp >= 0 {
        n.checked_mul(10i128.checked_pow(u32::try_from(exp).ok()?)?)?
    } else {
        let d = 10i128.checked_pow(u32::try_from(-exp).ok()?)?;
        (n + d - 1).div_euclid(d)
    };
    u64::try_from(v).ok()
}

/// What the scheduler counts of a pod: the containers' requests summed (a request left out is
/// the limit, as the API server defaults it), or an init container's if larger, plus the
/// RuntimeClass overhead. (CPU millicores, memory bytes.)
pub fn pod_requests(spec: &PodSpec) -> (u64, u64) {
    let of = |c: &Container, name: &str, parse: fn(&str) -> Option<u64>| -> u64 {
        let r = c.resources.as_ref();
        let q = r.and_then(|r| r.requests.as_ref()).and_then(|m| m.get(name));
        let q = q.or_else(|| r.and_then(|r| r.limits.as_ref()).and_then(|m| m.get(name)));
        q.and_then(|q| parse(&q.0)).unwrap_or(0)
    };
    let sum = |name, parse| spec.containers.iter().map(|c| of(c, name, parse)).sum::<u64>();
    let init = |name, parse| spec.init_containers.iter().flatten().map(|c| of(c, name, parse)).max().unwrap_or(0);
    let overhead = |name: &str, parse: fn(&str) -> Option<u64>| {
        spec.overhead.as_ref().and_then(|o| o.get(name)).and_then(|q| parse(&q.0)).unwrap_or(0)
    };
    (
        sum("cpu", millis).max(init("cpu", millis)) + overhead("cpu", millis),
        sum("memory", units).max(init("memory", units)) + overhead("memory", units),
    )
}

/// One build's sums.
#[derive(Default)]
struct Pool {
    usable: usize,
    cpu_allocatable: u64,
    memory_allocatable: u64,
    cpu_requested: u64,
    memory_requested: u64,
}

fn percent(part: u64, whole: u64) -> u64 {
    // No allocatable at all: nothing fits (shown as such), unless nothing is asked for.
    part.saturating_mul(100).checked_div(whole).unwrap_or(if part == 0 { 0 } else { u64::MAX })
}

fn shown_percent(p: u64) -> String {
    if p == u64::MAX { "no allocatable".to_owned() } else { format!("{p} %") }
}

/// Per Windows build: the allocatable CPU and memory of its Ready, schedulable nodes against the
/// requests of the pods on all its nodes (those on cordoned nodes too: they need room when their
/// node is drained). A warning above [`WARN_PERCENT`].
pub fn capacity(nodes: &[NodeFacts], pods: &Lookup<Vec<PodRequestFacts>>) -> Vec<Finding> {
    if let Some(f) = not_checked(Check::Capacity, "pods (their requests)", pods) {
        return vec![f];
    }
    let Some(pods) = pods.found() else { return Vec::new() };
    let mut build_of: BTreeMap<&str, &str> = BTreeMap::new();
    let mut pools: BTreeMap<&str, Pool> = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.is_windows()) {
        let build = n.windows_build.as_deref().unwrap_or("");
        build_of.insert(&n.name, build);
        let pool = pools.entry(build).or_default();
        if n.usable() {
            pool.usable += 1;
            pool.cpu_allocatable += n.allocatable_cpu_millis.unwrap_or(0);
            pool.memory_allocatable += n.allocatable_memory_bytes.unwrap_or(0);
        }
    }
    for p in pods {
        if let Some(pool) = build_of.get(p.node.as_str()).and_then(|b| pools.get_mut(b)) {
            pool.cpu_requested += p.cpu_millis;
            pool.memory_requested += p.memory_bytes;
        }
    }
    pools.into_iter().map(|(build, pool)| finding(build, &pool)).collect()
}

fn finding(build: &str, pool: &Pool) -> Finding {
    let gib = |b: u64| format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30));
    let cores = |m: u64| format!("{:.1}", m as f64 / 1000.0);
    let (cpu, memory) =
        (percent(pool.cpu_requested, pool.cpu_allocatable), percent(pool.memory_requested, pool.memory_allocatable));
    let label = if build.is_empty() {
        "Windows nodes without a build label".to_owned()
    } else {
        format!("Windows build {}", super::nodes::describe_build(Some(build)))
    };
    let sums = format!(
        "{} usable node(s): CPU {} of {} cores requested ({}), memory {} of {} ({})",
        pool.usable,
        cores(pool.cpu_requested),
        cores(pool.cpu_allocatable),
        shown_percent(cpu),
        gib(pool.memory_requested),
        gib(pool.memory_allocatable),
        shown_percent(memory),
    );
    if cpu > WARN_PERCENT || memory > WARN_PERCENT {
        Finding::warning(
            Check::Capacity,
            format!("{label}: requests above {WARN_PERCENT} % of allocatable"),
            format!(
                "{sums}. Windows does not overcommit memory and Windows pods start slowly: a drained node's pods or a rollout's surge pods may find no room and wait Pending; add nodes to this pool or lower the apps' requests"
            ),
        )
    } else {
        Finding::ok(Check::Capacity, format!("{label}: room for requests"), sums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn quantities_in_millis_and_units() {
        assert_eq!(millis("500m"), Some(500));
        assert_eq!(millis("2"), Some(2000));
        assert_eq!(millis("0.1"), Some(100));
        assert_eq!(millis("1u"), Some(1), "rounded up");
        assert_eq!(units("1Gi"), Some(1 << 30));
        assert_eq!(units("1.5G"), Some(1_500_000_000));
        assert_eq!(units("-1"), None);
        assert_eq!(units("lots"), None);
    }

    #[test]
    fn a_pods_requests_count_limits_init_containers_and_overhead() {
        let c = |requests: &[(&str, &str)], limits: &[(&str, &str)]| {
            let map = |kv: &[(&str, &str)]| {
                Some(kv.iter().map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned()))).collect())
            };
            Container {
                resources: Some(ResourceRequirements {
                    requests: map(requests),
                    limits: map(limits),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }
        };
        let spec = PodSpec {
            containers: vec![
                c(&[("cpu", "500m")], &[("memory", "1Gi")]),
                c(&[("cpu", "250m"), ("memory", "512Mi")], &[]),
            ],
            init_containers: Some(vec![c(&[("cpu", "2")], &[])]),
            overhead: Some([("memory".to_owned(), Quantity("100Mi".into()))].into()),
            ..PodSpec::default()
        };
        assert_eq!(pod_requests(&spec), (2000, (1 << 30) + (512 << 20) + (100 << 20)));
    }
}
