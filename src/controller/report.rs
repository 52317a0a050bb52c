//! Writes an app's status (skipped when only timestamps would change) and publishes the events of
//! its transitions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::Context;
use super::apply::FIELD_MANAGER;
use super::error::{Error, Result};
use super::events;
use super::status::{self, Outcome};
use crate::api::{GROUP, VERSION, WindowsApp, WindowsAppStatus};
use crate::conditions as c;
use crate::metrics::AppGauges;

/// The status of one app, as this reconcile reports it.
pub struct Report<'a> {
    app: &'a WindowsApp,
    ctx: &'a Context,
    /// The Windows build the pods are pinned to, once the spec is admitted.
    pub windows_build: Option<String>,
}

impl<'a> Report<'a> {
    pub fn new(app: &'a WindowsApp, ctx: &'a Context) -> Self {
        Report { app, ctx, windows_build: None }
    }

    /// Computes and writes the status after `outcome`; returns the status now in force.
    pub async fn write(&self, outcome: &Outcome) -> Result<WindowsAppStatus> {
        self.write_unless(outcome, |_| false).await
    }

    /// [`Report::write`], except when `skip` says the new status is not worth a write.
    pub async fn write_unless(
        &self,
        outcome: &Outcome,
        skip: impl Fn(&WindowsAppStatus) -> bool,
    ) -> Result<WindowsAppStatus> {
        let (app, ctx) = (self.app, self.ctx);
        let previous = app.status.as_ref();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let new = status::compute(app.metadata.generation, self.windows_build.clone(), outcome, previous, &now);
        let gauges = c::find(&new.conditions, c::READY).map(|r| AppGauges {
            ready: r.status.clone(),
            stalled: c::find(&new.conditions, c::STALLED).filter(|s| s.status == "True").map(|s| s.reason.clone()),
            drain_blocked: c::find(&new.conditions, c::NODE_DRAIN_ALLOWED).is_some_and(|d| d.status == "False"),
        });
        ctx.metrics.set_app(ObjectRef::from_obj(app), gauges);
        if previous.is_some_and(|p| status::same_ignoring_time(p, &new)) || skip(&new) {
            return Ok(new);
        }
        events::transitions(ctx, app, previous, &new).await;
        let ns = app.namespace().ok_or(Error::MissingMetadata)?;
        let api: Api<WindowsApp> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": "WindowsApp", "status": new});
        api.patch_status(&app.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(Error::Status)?;
        ctx.metrics.status_written();
        Ok(new)
    }
}
