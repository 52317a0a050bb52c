//! A move of an app's pods to another Windows Server build (`spec.windows.version` changed): which
//! move the live Deployment is in, and, while it lasts, how many pods of each build are Ready.
//!
//! A Windows container runs only on its own build, so the new pods land on other nodes than the
//! old ones. The build ([`crate::build::workload::rollout_limits`]) keeps every old pod until a
//! new one is Ready; this module tells the resolve step that a move is under way (from the live
//! Deployment: its template names another build, or it still carries
//! [`MIGRATING_FROM_ANNOTATION`] and has not rolled out), and tells the status how far it got
//! (one list of the app's pods per reconcile, only during a move, through [`pods`]).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use tracing::warn;

use super::status::{BuildCounts, MigrationCheck};
use super::{Context, pods};
use crate::api::WindowsVersion;
use crate::build::workload::{MIGRATING_FROM_ANNOTATION, WINDOWS_BUILD_LABEL};
use crate::validate::{BuildMigration, ValidatedApp};

/// Pure: the move the app's live Deployment is in, if any (never for a node agent: its DaemonSet
/// replaces the pods node by node, see the README).
pub fn of_live(live: &Deployment, app: &ValidatedApp) -> Option<BuildMigration> {
    if app.node_agent {
        return None;
    }
    of_deployment(live, app.placement.version)
}

/// Pure: the move the live Deployment `live` is in, for a spec that asks for `wanted`. Its pod
/// template names another build (the spec changed since it was applied), or it names `wanted`
/// while the Deployment still says it comes from another build and has not rolled out (pods of
/// the old build may still run). No move when either side names no build.
pub fn of_deployment(live: &Deployment, wanted: Option<WindowsVersion>) -> Option<BuildMigration> {
    let to = wanted?;
    let template = live
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.node_selector.as_ref())
        .and_then(|s| s.get(WINDOWS_BUILD_LABEL))
        .and_then(|b| WindowsVersion::from_build(b));
    if let Some(from) = template.filter(|b| *b != to) {
        return Some(BuildMigration { from, to });
    }
    let noted = live.metadata.annotations.as_ref().and_then(|a| a.get(MIGRATING_FROM_ANNOTATION))?;
    let from = WindowsVersion::ALL.into_iter().find(|v| v.as_str() == noted)?;
    (from != to && template == Some(to) && !rolled_out(live)).then_some(BuildMigration { from, to })
}

/// Pure: whether the Deployment's controller has observed its spec and runs only pods of its
/// template, all of them available.
fn rolled_out(d: &Deployment) -> bool {
    let Some(s) = &d.status else { return false };
    let wanted = d.spec.replicas.unwrap_or(1);
    s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && s.replicas.unwrap_or(0) == wanted
        && s.updated_replicas.unwrap_or(0) == wanted
        && s.available_replicas.unwrap_or(0) >= wanted
}

/// Pure: the Ready pods (not terminating) of each side of `m`, by the build their node selector
/// asks for.
pub fn count(pods: &[Pod], m: BuildMigration) -> BuildCounts {
    let mut counts = BuildCounts::default();
    for p in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && ready(p)) {
        let build = p.spec.as_ref().and_then(|s| s.node_selector.as_ref()).and_then(|s| s.get(WINDOWS_BUILD_LABEL));
        match build.map(String::as_str) {
            Some(b) if b == m.to.build() => counts.new_ready += 1,
            Some(b) if b == m.from.build() => counts.old_ready += 1,
            _ => {}
        }
    }
    counts
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The move the app is in, with its Ready pods of each build (one list of the app's pods); the
/// counts are None when the list fails (the status then names the move without them).
pub async fn observe(ctx: &Context, app: &ValidatedApp) -> Option<MigrationCheck> {
    let m = app.migration?;
    let counts = match pods::all(ctx, app).await {
        Ok(list) => Some(count(&list, m)),
        Err(e) => {
            warn!("could not read the pods to tell how far the move to {} got: {e}", m.to.as_str());
            None
        }
    };
    Some(MigrationCheck { from: m.from, to: m.to, counts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use WindowsVersion::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use std::collections::BTreeMap;

    fn deployment(build: &str, noted: Option<&str>, status: Option<(i32, i32, i32)>) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.generation = Some(2);
        if let Some(n) = noted {
            d.metadata.annotations = Some(BTreeMap::from([(MIGRATING_FROM_ANNOTATION.into(), n.into())]));
        }
        let mut spec = DeploymentSpec { replicas: Some(2), ..DeploymentSpec::default() };
        spec.template.spec = Some(PodSpec {
            node_selector: Some(BTreeMap::from([(WINDOWS_BUILD_LABEL.into(), build.into())])),
            ..PodSpec::default()
        });
        d.spec = spec;
        d.status = status.map(|(replicas, updated, available)| DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        });
        d
    }

    #[test]
    fn a_move_starts_when_the_template_names_another_build() {
        let live = deployment("10.0.17763", None, Some((2, 2, 2)));
        assert_eq!(of_deployment(&live, Some(Ltsc2022)), Some(BuildMigration { from: Ltsc2019, to: Ltsc2022 }));
        assert_eq!(of_deployment(&live, Some(Ltsc2019)), None, "same build");
        assert_eq!(of_deployment(&live, None), None, "no build asked for");
        let unknown = deployment("10.0.99999", None, Some((2, 2, 2)));
        assert_eq!(of_deployment(&unknown, Some(Ltsc2022)), None, "a build the operator does not know");
    }

    #[test]
    fn a_move_lasts_until_only_new_pods_run_all_available() {
        let to = Some(Ltsc2022);
        let moving = Some(BuildMigration { from: Ltsc2019, to: Ltsc2022 });
        // 3 pods (2 old, 1 new surging), then 1 old and 2 new not all available, then done.
        assert_eq!(of_deployment(&deployment("10.0.20348", Some("ltsc2019"), Some((3, 1, 2))), to), moving);
        assert_eq!(of_deployment(&deployment("10.0.20348", Some("ltsc2019"), Some((3, 2, 2))), to), moving);
        assert_eq!(of_deployment(&deployment("10.0.20348", Some("ltsc2019"), Some((2, 2, 1))), to), moving);
        assert_eq!(of_deployment(&deployment("10.0.20348", Some("ltsc2019"), None), to), moving, "not observed");
        assert_eq!(of_deployment(&deployment("10.0.20348", Some("ltsc2019"), Some((2, 2, 2))), to), None);
        // The controller has not observed the new template yet.
        let mut unobserved = deployment("10.0.20348", Some("ltsc2019"), Some((2, 2, 2)));
        unobserved.metadata.generation = Some(3);
        assert_eq!(of_deployment(&unobserved, to), moving);
        // Without the note, or with a note of the same build, no move.
        assert_eq!(of_deployment(&deployment("10.0.20348", None, Some((3, 1, 2))), to), None);
        assert_eq!(of_deployment(&deployment("10.0.20348", Some("ltsc2022"), Some((3, 1, 2))), to), None);
        // Sent back mid-way: the move is now from the template's build to the spec's.
        assert_eq!(
            of_deployment(&deployment("10.0.20348", Some("ltsc2019"), Some((3, 1, 2))), Some(Ltsc2019)),
            Some(BuildMigration { from: Ltsc2022, to: Ltsc2019 })
        );
    }

    fn pod(build: &str, ready: bool, terminating: bool) -> Pod {
        let mut p = Pod::default();
        if terminating {
            p.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        }
        p.spec = Some(PodSpec {
            node_selector: Some(BTreeMap::from([(WINDOWS_BUILD_LABEL.into(), build.into())])),
            ..PodSpec::default()
        });
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        p
    }

    #[test]
    fn ready_pods_are_counted_by_the_build_they_ask_for() {
        let pods = [
            pod("10.0.17763", true, false),
            pod("10.0.17763", true, true),
            pod("10.0.17763", false, false),
            pod("10.0.20348", true, false),
            pod("10.0.20348", false, false),
            pod("10.0.26100", true, false),
        ];
        let counts = count(&pods, BuildMigration { from: Ltsc2019, to: Ltsc2022 });
        assert_eq!(counts, BuildCounts { new_ready: 1, old_ready: 1 });
    }
}
