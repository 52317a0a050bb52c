//! `spec.shutdown`: the grace period and the pre-stop action, resolved with their defaults and
//! checked against each other and against `spec.podTemplate`.
//!
//! `podTemplate` may set the grace period or the app container's preStop hook instead of
//! `shutdown` (apps did before `shutdown` existed): then it wins over the default. Setting the
//! same one in both places is refused, as nobody could tell which is meant.

use serde_json::{Map, Value};

use super::{ValidationError, defaults};
use crate::api::{PreStop, WindowsAppSpec};
use crate::build::meta;

/// What runs before the container is told to stop.
#[derive(Debug, Clone, PartialEq)]
pub enum PreStopAction {
    /// An exec hook, as given.
    Command(Vec<String>),
    /// Wait `delay_seconds`, stop `site` (None: every site), wait up to `drain_seconds`.
    Iis { site: Option<String>, delay_seconds: i64, drain_seconds: i64 },
}

/// The resolved `spec.shutdown`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShutdownSettings {
    /// `terminationGracePeriodSeconds` (a `podTemplate` value, merged last, wins over the default).
    pub grace_period_seconds: i64,
    pub pre_stop: Option<PreStopAction>,
}

/// `spec.shutdown`, with its defaults and checks.
pub fn shutdown(spec: &WindowsAppSpec, errors: &mut Vec<ValidationError>) -> ShutdownSettings {
    let given = spec.shutdown.clone().unwrap_or_default();
    let overrides = spec.pod_template.as_ref().and_then(|t| t.spec.as_ref());
    let template_grace = overrides.and_then(|o| o.get("terminationGracePeriodSeconds")).and_then(Value::as_i64);
    if given.grace_period_seconds.is_some() && template_grace.is_some() {
        errors.push(ValidationError::ShutdownSetTwice {
            template: "terminationGracePeriodSeconds",
            shutdown: "gracePeriodSeconds",
        });
    }
    if given.pre_stop.is_some() && overrides.is_some_and(app_container_has_pre_stop) {
        errors.push(ValidationError::ShutdownSetTwice {
            template: "containers[app].lifecycle.preStop",
            shutdown: "preStop",
        });
    }
    let grace_period_seconds = given.grace_period_seconds.unwrap_or(defaults::GRACE_PERIOD_SECONDS);
    let pre_stop = given.pre_stop.as_ref().and_then(|p| pre_stop(p, errors));
    // The grace period the pods get: podTemplate's, merged last, or this one.
    let effective = template_grace.unwrap_or(grace_period_seconds);
    if let Some(PreStopAction::Iis { delay_seconds, drain_seconds, .. }) = &pre_stop
        && delay_seconds + drain_seconds >= effective
    {
        errors.push(ValidationError::DrainPastGracePeriod {
            delay: *delay_seconds,
            drain: *drain_seconds,
            grace: effective,
        });
    }
    ShutdownSettings { grace_period_seconds, pre_stop }
}

fn pre_stop(p: &PreStop, errors: &mut Vec<ValidationError>) -> Option<PreStopAction> {
    match (p.command.is_empty(), &p.iis) {
        (false, None) => Some(PreStopAction::Command(p.command.clone())),
        (true, Some(iis)) => Some(PreStopAction::Iis {
            site: iis.site.clone(),
            delay_seconds: iis.delay_seconds.unwrap_or(defaults::IIS_DELAY_SECONDS),
            drain_seconds: iis.drain_seconds,
        }),
        _ => {
            errors.push(ValidationError::PreStopOneOf);
            None
        }
    }
}

/// Whether `podTemplate.spec` gives the app's container a preStop hook.
fn app_container_has_pre_stop(overrides: &Map<String, Value>) -> bool {
    let Some(Value::Array(containers)) = overrides.get("containers") else { return false };
    containers.iter().any(|c| {
        c.get("name").and_then(Value::as_str) == Some(meta::CONTAINER_NAME)
            && c.pointer("/lifecycle/preStop").is_some_and(|p| !p.is_null())
    })
}
