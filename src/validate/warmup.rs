//! `spec.warmUp` resolved: whether a new image is pulled on the nodes before the Deployment rolls
//! to it (see `build::warmup` and `controller::warmup`).

use super::{ValidationError, defaults};
use crate::api::WindowsAppSpec;

/// The warm-up of an app's image.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmUpSettings {
    /// `spec.warmUp.enabled` as written; None leaves it to the platform's default.
    pub requested: Option<bool>,
    /// Whether the app can be warmed up at all: a Deployment of ordinary containers (not a
    /// `nodeAgent`, not `hostProcess`).
    pub eligible: bool,
    /// Whether it is on: as requested, else the platform's default (`--warm-up`; off offline),
    /// never for an app that is not eligible.
    pub enabled: bool,
    /// How long the warm-up of a new image may take before the app is Stalled.
    pub deadline_seconds: i32,
    /// The image of the warm-up pods' container (`--warm-up-pause-image`).
    pub pause_image: String,
    /// When the warm-up of the current image began (RFC 3339): the operator keeps it on the
    /// DaemonSet; None offline.
    pub started: Option<String>,
}

/// The platform's warm-up default, for apps whose spec does not say (the operator's and
/// `render`'s `--warm-up` and `--warm-up-pause-image`).
#[derive(Debug, Clone, PartialEq)]
pub struct WarmUpDefault {
    /// Warm images up for apps that do not set `spec.warmUp.enabled`.
    pub enabled: bool,
    /// The warm-up pods' container image.
    pub pause_image: String,
}

impl Default for WarmUpDefault {
    fn default() -> Self {
        WarmUpDefault { enabled: false, pause_image: defaults::WARM_UP_PAUSE_IMAGE.to_owned() }
    }
}

impl WarmUpSettings {
    /// Applies the platform's default where the spec does not say.
    pub fn with_platform(&mut self, platform: &WarmUpDefault) {
        self.enabled = self.eligible && self.requested.unwrap_or(platform.enabled);
        platform.pause_image.clone_into(&mut self.pause_image);
    }
}

/// `spec.warmUp.enabled: true` on an app that cannot be warmed up (the CRD's rule, for render).
pub(super) fn check(spec: &WindowsAppSpec, errors: &mut Vec<ValidationError>) {
    if spec.warm_up.as_ref().and_then(|w| w.enabled) != Some(true) {
        return;
    }
    if spec.node_agent.unwrap_or(false) {
        errors.push(ValidationError::WarmUpWith("nodeAgent"));
    }
    if spec.host_process.is_some() {
        errors.push(ValidationError::WarmUpWith("hostProcess"));
    }
}

/// The settings from the spec alone (the platform's default is applied by the operator).
pub(super) fn resolve(spec: &WindowsAppSpec) -> WarmUpSettings {
    let w = spec.warm_up.clone().unwrap_or_default();
    let eligible = !spec.node_agent.unwrap_or(false) && spec.host_process.is_none();
    let requested = w.enabled;
    WarmUpSettings {
        requested,
        eligible,
        enabled: eligible && requested == Some(true),
        deadline_seconds: w.deadline_seconds.unwrap_or(defaults::WARM_UP_DEADLINE_SECONDS),
        pause_image: defaults::WARM_UP_PAUSE_IMAGE.to_owned(),
        started: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{HostProcess, WarmUp};

    fn spec(enabled: Option<bool>) -> WindowsAppSpec {
        WindowsAppSpec {
            image: "registry.example.com/web:1".into(),
            warm_up: enabled.map(|e| WarmUp { enabled: Some(e), deadline_seconds: None }),
            ..WindowsAppSpec::default()
        }
    }

    #[test]
    fn the_spec_wins_over_the_platform_default_and_ineligible_apps_are_never_warmed() {
        let on = WarmUpDefault { enabled: true, pause_image: "pause:1".into() };
        let mut off = resolve(&spec(Some(false)));
        off.with_platform(&on);
        assert!(!off.enabled, "spec.warmUp.enabled: false wins over --warm-up");
        let mut unsaid = resolve(&spec(None));
        assert!(!unsaid.enabled, "offline, the default is off");
        unsaid.with_platform(&on);
        assert!(unsaid.enabled, "the platform's default applies where the spec is silent");
        assert_eq!(unsaid.pause_image, "pause:1");
        assert_eq!(unsaid.deadline_seconds, defaults::WARM_UP_DEADLINE_SECONDS);
        let mut agent = resolve(&WindowsAppSpec { node_agent: Some(true), ..spec(None) });
        agent.with_platform(&on);
        assert!(!agent.enabled, "a node agent is not warmed by the platform's default");
    }

    #[test]
    fn warm_up_asked_of_a_node_agent_or_host_process_app_is_refused() {
        let mut errors = Vec::new();
        check(&WindowsAppSpec { node_agent: Some(true), ..spec(Some(true)) }, &mut errors);
        check(&WindowsAppSpec { host_process: Some(HostProcess::default()), ..spec(Some(true)) }, &mut errors);
        check(&WindowsAppSpec { node_agent: Some(true), ..spec(Some(false)) }, &mut errors);
        assert_eq!(errors, vec![ValidationError::WarmUpWith("nodeAgent"), ValidationError::WarmUpWith("hostProcess")]);
    }
}
