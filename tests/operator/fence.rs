//! No write without the Lease: a leader frozen (SIGSTOP) past the lease duration, with a
//! reconcile pending, writes nothing once a standby has taken over, as the API server's audit log
//! shows (each replica names itself in its User-Agent).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use serde_json::Value;

use super::{SLOW, apply, ready_now};
use crate::harness::{GROUP_LABEL, Operator, setup};
use crate::support::{self, TestNamespace, wait_for};
use winapp_operator::api::WindowsApp;
use winapp_operator::client::user_agent;

/// One write request as the API server's audit log records it.
#[derive(Debug)]
struct Write {
    received: Timestamp,
    user_agent: String,
    verb: String,
    resource: String,
    name: String,
    code: i64,
}

impl Write {
    fn of(event: &Value) -> Option<Write> {
        let object = &event["objectRef"];
        Some(Write {
            received: event["requestReceivedTimestamp"].as_str()?.parse().ok()?,
            user_agent: event["userAgent"].as_str().unwrap_or_default().to_owned(),
            verb: event["verb"].as_str()?.to_owned(),
            resource: [object["resource"].as_str(), object["subresource"].as_str()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("/"),
            name: object["name"].as_str().unwrap_or_default().to_owned(),
            code: event["responseStatus"]["code"].as_i64().unwrap_or_default(),
        })
    }
}

impl std::fmt::Display for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {} -> {} ({})",
            self.received, self.verb, self.resource, self.name, self.code, self.user_agent
        )
    }
}

/// The audit log of the dev cluster (`scripts/dev-cluster env` exports its path).
fn audit_log() -> PathBuf {
    std::env::var_os("DEV_CLUSTER_AUDIT_LOG").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "DEV_CLUSTER_AUDIT_LOG is not set: eval \"$(scripts/dev-cluster env)\" (a cluster started before the audit log was added needs scripts/dev-cluster down and up)"
        )
    })
}

/// Every write in the audit log and its rotated backups (`audit-<time>.log` next to it).
fn writes(log: &Path) -> Vec<Write> {
    let dir = log.parent().unwrap_or(Path::new("."));
    let stem = log.file_stem().and_then(|s| s.to_str()).unwrap_or("audit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(stem) && n.ends_with(".log")))
        .collect();
    files.sort();
    assert!(files.contains(&log.to_path_buf()), "no audit log at {}", log.display());
    files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter_map(|e| Write::of(&e))
        .collect()
}

fn spec(name: &str, group: &str, tag: u32) -> String {
    format!(
        "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: {name}, labels: {{{GROUP_LABEL}: {group}}}}}\nspec:\n  image: registry.example.com/web:{tag}\n  windows: {{version: ltsc2022}}\n"
    )
}

async fn wait_image(deployments: &Api<Deployment>, name: &str, tag: u32) {
    let image = format!("registry.example.com/web:{tag}");
    wait_for(deployments, name, &format!("image {image}"), SLOW, |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.template.spec.as_ref()?.containers.first()?.image.clone()).as_deref()
            == Some(image.as_str())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn a_leader_frozen_past_its_lease_writes_nothing_after_a_standby_took_over() {
    let log = audit_log();
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "frozen").await;
    let group = format!("frozen-{}", ns.name());
    let selector = format!("{GROUP_LABEL}={group}");
    let lease = format!("winapp-test-{}", ns.name());
    let (id_a, id_b) = (format!("frozen-a-{}", ns.name()), format!("frozen-b-{}", ns.name()));
    // A gathers the events of an app for 3 s before reconciling it: time to freeze it with a
    // reconcile pending.
    let mut a = Operator::start_with(&id_a, &lease, &selector, setup(), &["--debounce-ms", "3000"]);
    a.wait_leading().await;
    let b = Operator::start_with(&id_b, &lease, &selector, setup(), &[]);
    b.wait_ready().await;
    assert!(!b.leading().await, "b stands by while a leads");

    let apps: Api<WindowsApp> = ns.api();
    let deployments: Api<Deployment> = ns.api();
    apply(ns.name(), &spec("web", &group, 1));
    wait_for(&apps, "web", "Ready under a", SLOW, ready_now).await;

    // A change that a must apply, and a frozen before it does.
    apply(ns.name(), &spec("web", &group, 2));
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.signal("STOP");
    let frozen = Instant::now();

    // b takes over once the Lease has not changed for its duration, applies the pending change,
    // and then one more.
    while !b.leading().await {
        assert!(frozen.elapsed() < Duration::from_secs(90), "b never took over; b's log:\n{}", b.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took_over = frozen.elapsed();
    wait_image(&deployments, "web", 2).await;
    apply(ns.name(), &spec("web", &group, 3));
    wait_image(&deployments, "web", 3).await;

    // a resumes with its reconcile of image 2 due, and finds it no longer leads.
    a.signal("CONT");
    let resumed = Instant::now();
    while a.exited().is_none() {
        assert!(
            resumed.elapsed() < Duration::from_secs(30),
            "a did not exit after losing the Lease:\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = a.exited();
    // Anything a sent on resuming has been answered by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(status.is_some_and(|s| !s.success()), "a exits with an error after losing the Lease: {status:?}");
    let a_log = a.log_text();
    assert!(
        a_log.contains("could not renew the Lease") || a_log.contains("another replica holds the Lease"),
        "a says why it stopped:\n{a_log}"
    );

    // The audit log: when the API server received b's acquisition of the Lease, and what a sent.
    let all = writes(&log);
    let (ua_a, ua_b_election) = (user_agent(&id_a, None), user_agent(&id_b, Some("leader-election")));
    let takeover = all
        .iter()
        .filter(|w| w.user_agent == ua_b_election && w.resource == "leases" && w.name == lease && w.code == 200)
        .map(|w| w.received)
        .min()
        .unwrap_or_else(|| panic!("no successful write of the Lease by {ua_b_election:?} in {}", log.display()));
    let of_a = |w: &&Write| w.user_agent.starts_with(&ua_a);
    let (before, after): (Vec<&Write>, Vec<&Write>) = all.iter().filter(of_a).partition(|w| w.received < takeover);
    // A renewal that a had sent just before it froze may reach the API server late: its stale
    // resourceVersion makes the server refuse it (409), so it changes nothing.
    let (refused_renewals, after): (Vec<&Write>, Vec<&Write>) =
        after.into_iter().partition(|w| w.user_agent == user_agent(&id_a, Some("leader-election")) && w.code == 409);
    let by_b_after = all.iter().filter(|w| w.user_agent == user_agent(&id_b, None) && w.received >= takeover).count();
    let acquired = Api::<Lease>::namespaced(client.clone(), "winapp-system")
        .get(&lease)
        .await
        .ok()
        .and_then(|l| l.spec?.acquire_time)
        .map(|t| t.0.to_string());
    let refused: Vec<&str> = a_log
        .lines()
        .filter_map(|l| {
            l.split_once("winapp_operator::fence: ").map(|(_, m)| m.split_once(": this").map_or(m, |(r, _)| r))
        })
        .collect();
    println!(
        "b led {took_over:?} after a was frozen; the API server received b's acquisition at {takeover} (Lease acquireTime {acquired:?})\n\
         writes by a: {} before the takeover, {} after (and {} stale renewals refused); writes by b after it: {by_b_after}\n\
         writes a's fence refused after it resumed: {}\n{}",
        before.len(),
        after.len(),
        refused_renewals.len(),
        refused.len(),
        refused.join("\n"),
    );
    assert!(!before.is_empty(), "the audit log shows a's writes while it led (user agent {ua_a:?})");
    assert!(by_b_after > 0, "the audit log shows b's writes after the takeover");
    assert!(
        after.is_empty(),
        "a wrote after b took the Lease at {takeover}:\n{}\na's log:\n{a_log}",
        after.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    );
    // What b wrote stays: a did not put image 2 back.
    let image = deployments.get("web").await.ok().and_then(|d| d.spec.template.spec?.containers.first()?.image.clone());
    assert_eq!(image.as_deref(), Some("registry.example.com/web:3"), "b's change stays");
    ns.cleanup().await;
    drop(b);
}
