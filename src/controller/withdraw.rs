//! A grant withdrawn stops the pods that use it: when the platform's policy refuses an app, its
//! running workload is checked against the policy in force (see [`crate::policy::live`]) and
//! removed if it uses what is no longer granted. Nothing else of the app is deleted.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::runtime::events::EventType;

use super::Context;
use super::apply;
use super::error::{Error, Result};
use super::events;
use super::kinds::{ChildKind, DaemonSets, Deployments, PersistentVolumes};
use super::lean::Cached;
use crate::api::WindowsApp;
use crate::build::meta::AppKey;
use crate::policy::{Policy, Rule};

/// The rules that some of an app's workloads break, and those workloads.
type Broken<C> = (Vec<Rule>, Vec<Arc<<C as ChildKind>::Cached>>);

/// The rules the cached workloads of kind `C` of the app break, and those workloads.
fn refused<C: ChildKind>(ctx: &Context, app: &AppKey, policy: &Policy) -> Result<Broken<C>> {
    let smb = !PersistentVolumes::children(&ctx.stores, &app.0, &app.1).is_empty();
    let mut rules = Vec::new();
    let mut stale = Vec::new();
    for w in C::children(&ctx.stores, &app.0, &app.1) {
        let object = w.to_json().map_err(|e| Error::Cached(C::KIND, e))?;
        let pod = &object["spec"]["template"]["spec"];
        // A warm-up DaemonSet is on the app's nodes only, and runs nothing there: not a node agent.
        let warm_up = kube::ResourceExt::name_any(w.as_ref()) == crate::build::warmup::name_of(&app.1);
        let broken = crate::policy::live::refused(pod, C::KIND == DaemonSets::KIND && !warm_up, smb, policy);
        if !broken.is_empty() {
            rules.extend(broken);
            stale.push(w);
        }
    }
    Ok((rules, stale))
}

/// Removes the app's workload when it uses what `policy` no longer grants; returns what the
/// status says of it.
pub async fn withdraw(ctx: &Context, app: &WindowsApp, key: &AppKey, policy: &Policy) -> Result<Option<String>> {
    let (deployment_rules, deployments) = refused::<Deployments>(ctx, key, policy)?;
    let (daemon_set_rules, daemon_sets) = refused::<DaemonSets>(ctx, key, policy)?;
    let mut removed: Vec<String> = apply::delete::<Deployments>(&ctx.client, &deployments)
        .await?
        .into_iter()
        .map(|n| format!("Deployment {n}"))
        .collect();
    removed.extend(
        apply::delete::<DaemonSets>(&ctx.client, &daemon_sets).await?.into_iter().map(|n| format!("DaemonSet {n}")),
    );
    if removed.is_empty() {
        return Ok(None);
    }
    for _ in &removed {
        ctx.metrics.child_written("Deleted");
    }
    let rules: BTreeSet<&str> = deployment_rules.iter().chain(&daemon_set_rules).map(|r| r.name()).collect();
    let note = format!(
        "the running pods used what the platform no longer grants (rule {}): removed {}; nothing else was deleted, and the pods run again once the rules are granted or the spec asks for none of them",
        rules.into_iter().collect::<Vec<_>>().join(", "),
        removed.join(", ")
    );
    events::publish(ctx, app, EventType::Warning, "GrantWithdrawn", note.clone()).await;
    Ok(Some(note))
}
