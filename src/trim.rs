//! Gives the memory that the allocator holds free back to the system once the operator is idle.
//!
//! glibc's malloc keeps what is freed for later use, in each thread's arena: a burst of work (a
//! restart filling the caches, a thousand apps applied at once) leaves the transient memory of
//! its decodes, builds and applies resident long after the objects are gone. At 1,000 converged
//! apps that was a third of the operator's heap. `malloc_trim` hands every free page of every
//! arena back; it runs once after each burst, when reconciles have stopped for a couple of seconds.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;

/// How often the reconcile counter is read: a burst is over when it did not move in one period.
const PERIOD: Duration = Duration::from_secs(2);

/// Runs for the life of the process: after each burst of reconciles, one trim.
pub async fn when_idle(metrics: Arc<Metrics>) {
    let (mut last, mut trimmed) = (u64::MAX, u64::MAX);
    loop {
        tokio::time::sleep(PERIOD).await;
        let now = metrics.reconciles_run();
        if burst_over(last, now, trimmed) {
            release();
            trimmed = now;
        }
        last = now;
    }
}

/// Whether to trim now: the counter stood still for a period (`last` = `now`) and no trim
/// followed this count yet.
fn burst_over(last: u64, now: u64, trimmed: u64) -> bool {
    now == last && now != trimmed
}

/// Returns the allocator's free pages to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() {
    // SAFETY: malloc_trim takes no pointer and has no precondition; it walks glibc's own arenas
    // under their locks and releases whole free pages only.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl's) return free memory as they go.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}

#[cfg(test)]
mod tests {
    use super::burst_over;

    #[test]
    fn one_trim_after_each_burst_and_none_while_it_runs() {
        let samples = [0, 0, 0, 5, 9, 9, 9, 9, 12, 12];
        let (mut last, mut trimmed, mut at) = (u64::MAX, u64::MAX, vec![]);
        for (i, now) in samples.into_iter().enumerate() {
            if burst_over(last, now, trimmed) {
                trimmed = now;
                at.push(i);
            }
            last = now;
        }
        assert_eq!(at, vec![1, 5, 9]);
    }
}
