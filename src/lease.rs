//! Leader election on a coordination.k8s.io Lease, so that two replicas never reconcile at once.
//!
//! It follows client-go's rules: a candidate never compares the holder's `renewTime` with its own
//! clock (clocks differ between nodes). It notes when it last *saw the Lease record change* on its
//! own monotonic clock, and takes the Lease over only after `lease_duration` has passed since
//! then. The leader renews every `retry_period`; each attempt is bounded in time, and a leader that
//! has not renewed within `renew_deadline` (shorter than `lease_duration`) gives up leadership
//! before any standby can take over. A 409 on update means our read was stale, not that another
//! replica leads: it is retried.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

/// Timing of the election (client-go's defaults).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a standby waits, after it last saw the record change, before taking over.
    pub lease_duration: Duration,
    /// How long a leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// Pause between attempts.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the Lease (acquired or renewed).
    Leading,
    /// Another replica holds a Lease that has not expired.
    HeldBy(String),
    /// Our copy was stale (HTTP 409): somebody wrote in between. Try again.
    Conflict,
}

/// The part of the Lease that shows whether its holder is alive: any change restarts the clock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub holder: String,
    pub renew_time: Option<String>,
    pub acquire_time: Option<String>,
    pub transitions: i32,
    pub duration_s: i32,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        Record {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration_s: spec.lease_duration_seconds.unwrap_or(0),
        }
    }
}

/// Pure: whether a Lease with `record`, whose record was first seen in this form at `seen`, is
/// held by a live replica other than `me` at local time `now`. The holder's own duration counts
/// when it is longer than ours (a holder configured with a longer lease is not cut short).
pub fn held_by_other(record: &Record, seen: Instant, me: &str, ours: Duration, now: Instant) -> bool {
    if record.holder.is_empty() || record.holder == me {
        return false;
    }
    let theirs = Duration::from_secs(u64::try_from(record.duration_s).unwrap_or(0));
    now.saturating_duration_since(seen) < ours.max(theirs)
}

/// One participant in the election.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The record as last read, and when (local monotonic clock) it was first seen so.
    observed: Mutex<Option<(Record, Instant)>>,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaseLock {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, timing: Timing) -> Self {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            timing,
            observed: Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Notes `record` as read now; returns when it was first seen in this form.
    fn observe(&self, record: &Record) -> Instant {
        let now = Instant::now();
        let Ok(mut o) = self.observed.lock() else { return now };
        match o.as_ref() {
            Some((r, at)) if r == record => *at,
            _ => {
                *o = Some((record.clone(), now));
                now
            }
        }
    }

    /// One attempt to take the Lease if it is free or expired, or to renew it if we hold it.
    /// Optimistic concurrency (resourceVersion) makes two candidates never both win. The caller
    /// bounds it in time.
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let duration_s = i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_s),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&Record::of(&created.spec.unwrap_or_default()));
                    Ok(Attempt::Leading)
                }
                Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Record::of(&spec);
        let seen = self.observe(&record);
        if held_by_other(&record, seen, &self.identity, self.timing.lease_duration, Instant::now()) {
            return Ok(Attempt::HeldBy(record.holder));
        }
        let ours = record.holder == self.identity;
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(duration_s),
            acquire_time: if ours { spec.acquire_time.clone() } else { Some(MicroTime(now)) },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + i32::from(!ours)),
            ..spec
        });
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.observe(&Record::of(&written.spec.unwrap_or_default()));
                Ok(Attempt::Leading)
            }
            Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if we hold it, so a standby need not wait for it to expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Pure: how long the next renewal attempt may take, given the last successful renewal; None
/// once the renew deadline has passed (leadership is lost).
pub fn renew_budget(last_ok: Instant, now: Instant, renew_deadline: Duration) -> Option<Duration> {
    renew_deadline.checked_sub(now.saturating_duration_since(last_ok)).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: &str, duration_s: i32) -> Record {
        Record { holder: holder.into(), renew_time: Some("t".into()), duration_s, ..Record::default() }
    }

    #[test]
    fn expiry_is_timed_on_the_local_clock_from_the_last_observed_change() {
        let seen = Instant::now();
        let d = Duration::from_secs(15);
        // However far the holder's renewTime is from our clock, only local time since we saw
        // the record change counts.
        assert!(held_by_other(&rec("a", 15), seen, "b", d, seen + Duration::from_secs(14)));
        assert!(!held_by_other(&rec("a", 15), seen, "b", d, seen + Duration::from_secs(15)));
        // A holder with a longer lease is honoured.
        assert!(held_by_other(&rec("a", 60), seen, "b", d, seen + Duration::from_secs(59)));
        // Free, or ours: never held by another.
        assert!(!held_by_other(&rec("", 15), seen, "b", d, seen));
        assert!(!held_by_other(&rec("b", 15), seen, "b", d, seen));
        // A negative duration in the record does not extend or panic.
        assert!(!held_by_other(&rec("a", -5), seen, "b", d, seen + Duration::from_secs(16)));
    }

    #[test]
    fn renew_budget_shrinks_to_none_at_the_deadline() {
        let t0 = Instant::now();
        let deadline = Duration::from_secs(10);
        assert_eq!(renew_budget(t0, t0, deadline), Some(deadline));
        assert_eq!(renew_budget(t0, t0 + Duration::from_secs(4), deadline), Some(Duration::from_secs(6)));
        assert_eq!(renew_budget(t0, t0 + Duration::from_secs(10), deadline), None);
        assert_eq!(renew_budget(t0, t0 + Duration::from_secs(11), deadline), None);
    }

    #[test]
    fn the_default_timing_gives_up_before_a_standby_takes_over() {
        let t = Timing::default();
        assert!(t.renew_deadline + t.retry_period <= t.lease_duration);
    }
}
