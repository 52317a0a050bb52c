//! An operator restarted with a change of every app's pods (here the platform's
//! `--pod-annotation`, as a new default of an upgrade would be) rolls it out on at most
//! `--max-operator-rollouts` apps at a time, on the real Deployment controller and KWOK nodes,
//! and every app gets it in the end.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};

use super::{SLOW, apply, ready_now};
use crate::harness::{GROUP_LABEL, Operator};
use crate::support::{TestNamespace, client, wait_for};
use winapp_operator::api::WindowsApp;

const APPS: usize = 6;
const LIMIT: usize = 2;
const ANNOTATION: &str = "platform.example.com/log-tier";

/// Whether the Deployment has not finished rolling out its current template.
fn rolling(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let Some(s) = &d.status else { return true };
    s.observed_generation < d.metadata.generation
        || s.updated_replicas.unwrap_or(0) < want
        || s.available_replicas.unwrap_or(0) < want
        || s.replicas.unwrap_or(0) > want
}

fn has_annotation(d: &Deployment) -> bool {
    d.spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .is_some_and(|a| a.get(ANNOTATION).map(String::as_str) == Some("gold"))
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn an_operator_restarted_with_a_change_of_every_pod_rolls_it_out_a_few_apps_at_a_time() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "paced").await;
    let group = format!("paced-{}", ns.name());
    let selector = format!("{GROUP_LABEL}={group}");
    let lease = format!("winapp-test-{}", ns.name());
    let limit = LIMIT.to_string();
    let mut op =
        Operator::start_with("paced", &lease, &selector, crate::harness::setup(), &["--max-operator-rollouts", &limit]);
    op.wait_leading().await;
    for i in 0..APPS {
        let yaml = format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: app-{i}, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n  image: registry.example.com/web:1\n  replicas: 2\n  windows: {{version: ltsc2022}}\n"
        );
        apply(ns.name(), &yaml);
    }
    let apps: Api<WindowsApp> = ns.api();
    for i in 0..APPS {
        wait_for(&apps, &format!("app-{i}"), "Ready", SLOW, ready_now).await.expect("converged");
    }
    op.stop();

    // The platform team adds an annotation to every pod: the operator's change, not the apps'.
    let annotation = format!("{ANNOTATION}=gold");
    let extra = ["--max-operator-rollouts", limit.as_str(), "--pod-annotation", annotation.as_str()];
    let mut op = Operator::start_with("paced-2", &lease, &selector, crate::harness::setup(), &extra);
    let deployments: Api<Deployment> = ns.api();
    let started = Instant::now();
    let (mut most, mut samples, mut waiting_seen) = (0, 0, false);
    loop {
        let list = deployments.list(&ListParams::default()).await.expect("list deployments").items;
        // Changed but not rolled out yet: the rollouts in flight.
        let in_flight = list.iter().filter(|d| has_annotation(d) && rolling(d)).count();
        most = most.max(in_flight);
        samples += 1;
        let waiting = apps.list(&ListParams::default()).await.expect("list apps").items.iter().any(|a| {
            a.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| c.type_ == "PodTemplateCurrent" && c.reason == "WaitingForRolloutTurn")
            })
        });
        waiting_seen |= waiting;
        if list.len() == APPS && list.iter().all(|d| has_annotation(d) && !rolling(d)) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(240), "not every app got the change:\n{}", op.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "paced rollout: {APPS} apps, at most {most} rolling at once (limit {LIMIT}), {samples} samples, {:?}",
        started.elapsed()
    );
    assert!(most <= LIMIT, "{most} Deployments rolled the operator's change at once; the limit is {LIMIT}");
    assert!(most >= 1 && waiting_seen, "some app waited for its turn and said so");
    for i in 0..APPS {
        wait_for(&apps, &format!("app-{i}"), "Ready", SLOW, ready_now).await.expect("Ready after the change");
    }
    op.stop();
    ns.cleanup().await;
}
