//! `spec.disruption`: the app's PodDisruptionBudget, checked as the CRD's rules check it (for
//! `render`), plus what the schema cannot see: a `minAvailable` that is all of `replicas`.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ValidationError;
use crate::api::WindowsAppSpec;

/// What the app's PodDisruptionBudget is to be, before the replica count is known (the operator
/// keeps a running count when `spec.replicas` is unset: see `build::disruption`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum DisruptionPolicy {
    /// `enabled: false`, or a node agent: no budget.
    Off,
    /// Nothing set: `maxUnavailable: 1` when more than one pod may run, else no budget.
    #[default]
    Default,
    MaxUnavailable(IntOrString),
    MinAvailable(IntOrString),
}

fn invalid(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError::InvalidDisruption { field, message: message.into() }
}

/// The percentage of `s` (`25%` -> 25), if it is one.
fn percent(s: &str) -> Option<u32> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `maxUnavailable`: at least 1, or 1% to 100%.
fn check_max_unavailable(v: &IntOrString, errors: &mut Vec<ValidationError>) {
    let ok = match v {
        IntOrString::Int(n) => *n >= 1,
        IntOrString::String(s) => percent(s).is_some_and(|p| (1..=100).contains(&p)),
    };
    if !ok {
        errors.push(invalid(
            "maxUnavailable",
            "must be a number of at least 1 or a percentage from 1% to 100%: a budget that allows no eviction makes every drain of a node that runs one of the pods wait forever (enabled: false turns the budget off)",
        ));
    }
}

/// `minAvailable`: 0 or more, or 0% to 99%, and below an explicit `replicas`.
fn check_min_available(v: &IntOrString, spec: &WindowsAppSpec, errors: &mut Vec<ValidationError>) {
    match v {
        IntOrString::Int(n) if *n < 0 => errors.push(invalid("minAvailable", "must not be negative")),
        IntOrString::Int(n) => {
            let autoscaled = spec.autoscaled.unwrap_or(false);
            if let Some(replicas) = spec.replicas.filter(|r| *r > 0 && !autoscaled && *n >= *r) {
                errors.push(invalid(
                    "minAvailable",
                    format!(
                        "{n} of {replicas} replica(s) allows no eviction: every drain of a node that runs one of the pods would wait forever; set it below spec.replicas, or use maxUnavailable"
                    ),
                ));
            }
        }
        IntOrString::String(s) if percent(s).is_some_and(|p| p < 100) => {}
        IntOrString::String(_) => errors.push(invalid(
            "minAvailable",
            "must be a number or a percentage from 0% to 99%: 100% allows no eviction, and every drain of a node that runs one of the pods would wait forever",
        )),
    }
}

/// Checks `spec.disruption` and resolves what the budget is to be.
pub fn disruption(spec: &WindowsAppSpec, errors: &mut Vec<ValidationError>) -> DisruptionPolicy {
    let node_agent = spec.node_agent.unwrap_or(false);
    let Some(d) = &spec.disruption else {
        return if node_agent { DisruptionPolicy::Off } else { DisruptionPolicy::Default };
    };
    let before = errors.len();
    if d.max_unavailable.is_some() && d.min_available.is_some() {
        errors.push(invalid("minAvailable", "set one of maxUnavailable and minAvailable, not both"));
    }
    let off = d.enabled == Some(false);
    if off && (d.max_unavailable.is_some() || d.min_available.is_some()) {
        errors.push(invalid(
            "enabled",
            "enabled: false means no PodDisruptionBudget: remove maxUnavailable and minAvailable, or remove enabled",
        ));
    }
    if node_agent && (d.max_unavailable.is_some() || d.min_available.is_some()) {
        let field = if d.max_unavailable.is_some() { "maxUnavailable" } else { "minAvailable" };
        errors.push(invalid(
            field,
            "a nodeAgent gets no PodDisruptionBudget: kubectl drain --ignore-daemonsets never evicts DaemonSet pods, so a budget would not hold; remove it",
        ));
    }
    if let Some(v) = &d.max_unavailable {
        check_max_unavailable(v, errors);
    }
    if let Some(v) = &d.min_available {
        check_min_available(v, spec, errors);
    }
    match (&d.max_unavailable, &d.min_available) {
        _ if errors.len() > before || off || node_agent => DisruptionPolicy::Off,
        (Some(v), _) => DisruptionPolicy::MaxUnavailable(v.clone()),
        (None, Some(v)) => DisruptionPolicy::MinAvailable(v.clone()),
        (None, None) => DisruptionPolicy::Default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Disruption;

    fn spec(replicas: Option<i32>, node_agent: bool, d: Disruption) -> WindowsAppSpec {
        WindowsAppSpec {
            image: "x".into(),
            replicas,
            node_agent: node_agent.then_some(true),
            disruption: Some(d),
            ..WindowsAppSpec::default()
        }
    }

    fn check(s: &WindowsAppSpec) -> (DisruptionPolicy, Vec<String>) {
        let mut errors = Vec::new();
        let policy = disruption(s, &mut errors);
        (policy, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn budgets_that_allow_no_eviction_are_refused_with_the_field() {
        let max = |v: IntOrString| Disruption { max_unavailable: Some(v), ..Disruption::default() };
        let min = |v: IntOrString| Disruption { min_available: Some(v), ..Disruption::default() };
        let refused = [
            (spec(Some(3), false, max(IntOrString::Int(0))), "spec.disruption.maxUnavailable: must be"),
            (spec(Some(3), false, max(IntOrString::String("0%".into()))), "spec.disruption.maxUnavailable"),
            (spec(Some(3), false, max(IntOrString::String("1".into()))), "spec.disruption.maxUnavailable"),
            (spec(Some(3), false, max(IntOrString::String("101%".into()))), "spec.disruption.maxUnavailable"),
            (spec(Some(3), false, min(IntOrString::String("100%".into()))), "spec.disruption.minAvailable"),
            (spec(Some(3), false, min(IntOrString::Int(-1))), "spec.disruption.minAvailable: must not"),
            (spec(Some(3), false, min(IntOrString::Int(3))), "spec.disruption.minAvailable: 3 of 3 replica(s)"),
            (spec(None, true, max(IntOrString::Int(1))), "spec.disruption.maxUnavailable: a nodeAgent"),
            (
                spec(
                    Some(3),
                    false,
                    Disruption { enabled: Some(false), min_available: Some(IntOrString::Int(1)), ..Default::default() },
                ),
                "spec.disruption.enabled: enabled: false",
            ),
            (
                spec(
                    Some(3),
                    false,
                    Disruption {
                        max_unavailable: Some(IntOrString::Int(1)),
                        min_available: Some(IntOrString::Int(1)),
                        ..Default::default()
                    },
                ),
                "spec.disruption.minAvailable: set one of",
            ),
        ];
        for (s, want) in refused {
            let (policy, errors) = check(&s);
            assert_eq!(policy, DisruptionPolicy::Off, "{:?}", s.disruption);
            assert!(errors.iter().any(|e| e.starts_with(want)), "{:?}: {errors:?}", s.disruption);
        }
    }

    #[test]
    fn what_is_asked_for_or_the_default_is_resolved() {
        let cases = [
            (spec(Some(3), false, Disruption::default()), DisruptionPolicy::Default),
            (spec(Some(3), false, Disruption { enabled: Some(false), ..Default::default() }), DisruptionPolicy::Off),
            (
                spec(
                    Some(4),
                    false,
                    Disruption { max_unavailable: Some(IntOrString::String("25%".into())), ..Default::default() },
                ),
                DisruptionPolicy::MaxUnavailable(IntOrString::String("25%".into())),
            ),
            (
                spec(Some(3), false, Disruption { min_available: Some(IntOrString::Int(2)), ..Default::default() }),
                DisruptionPolicy::MinAvailable(IntOrString::Int(2)),
            ),
            // Not checked against a count the app does not fix (the operator keeps the running one).
            (
                spec(None, false, Disruption { min_available: Some(IntOrString::Int(2)), ..Default::default() }),
                DisruptionPolicy::MinAvailable(IntOrString::Int(2)),
            ),
            (spec(None, true, Disruption::default()), DisruptionPolicy::Off),
        ];
        for (s, want) in cases {
            let (policy, errors) = check(&s);
            assert!(errors.is_empty(), "{:?}: {errors:?}", s.disruption);
            assert_eq!(policy, want, "{:?}", s.disruption);
        }
        let (policy, _) = check(&WindowsAppSpec { disruption: None, ..spec(Some(2), false, Disruption::default()) });
        assert_eq!(policy, DisruptionPolicy::Default);
    }
}
