//! `spec.warmUp`: pull a new image on the nodes that will run it before the pods roll to it, so
//! that a rollout of a Windows image of several gigabytes does not wait on the pull pod by pod.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Image warm-up before a rollout. When the image changes, a DaemonSet `<app>-warmup` with the
/// app's placement pulls it on every node the pods may run on (its pod runs the new image's
/// `cmd /c exit 0` as an init container, then a pause container), and the Deployment keeps
/// running the old image until every scheduled warm-up pod is ready. The DaemonSet stays, so
/// nodes that join the pool pull the image too. Not for a `nodeAgent` or `hostProcess` app.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WarmUp {
    /// Warm the image up before a rollout. Default: the operator's `--warm-up` (off unless the
    /// platform turns it on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Seconds the warm-up of a new image may take before the app is Stalled (reason
    /// `WarmUpDeadlineExceeded`, naming the nodes that have not pulled it); the old pods keep
    /// serving meanwhile. Default 1800. 60 to 86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 86400))]
    pub deadline_seconds: Option<i32>,
}
