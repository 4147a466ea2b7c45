//! Counters of `supernetflow mediate` (plain atomics, read by the HTTP API and the report).

use crate::join::JoinMetrics;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Counters (since start) and gauges (now) of the consumer side of a mediator.
#[derive(Debug, Default)]
pub struct ScaleoutMetrics {
    /// Router flow records consumed from the flows topic (counter).
    pub flows_consumed: AtomicU64,
    /// Tap records consumed from the tap topic (counter).
    pub taps_consumed: AtomicU64,
    /// Messages of the flows topic that are not a FlowRecord in JSON (counter; skipped).
    pub flows_invalid: AtomicU64,
    /// Messages of the tap topic that are not a TapRecord in JSON (counter; skipped).
    pub taps_invalid: AtomicU64,
    /// Partition assignments received (counter).
    pub assignments: AtomicU64,
    /// Partition revocations handled (counter).
    pub revocations: AtomicU64,
    /// Router records the join emitted early because their partition was revoked (counter).
    pub revoke_flushed: AtomicU64,
    /// Offset commits that succeeded (counter).
    pub commits: AtomicU64,
    /// Offset commits the broker refused (counter).
    pub commit_errors: AtomicU64,
    /// Commits skipped because the sinks could not make the outputs durable in time (counter).
    pub commits_skipped: AtomicU64,
    /// Consumer errors reported by librdkafka (counter).
    pub consumer_errors: AtomicU64,
    /// Partitions of each raw topic assigned to this mediator now (gauge).
    pub assigned_partitions: AtomicU64,
    /// Partition count of the raw topics (gauge).
    pub topic_partitions: AtomicU64,
    /// The join's metrics as of the last tick.
    pub join: Mutex<JoinMetrics>,
}

/// A copy of [`ScaleoutMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct ScaleoutSnapshot {
    pub flows_consumed: u64,
    pub taps_consumed: u64,
    pub flows_invalid: u64,
    pub taps_invalid: u64,
    pub assignments: u64,
    pub revocations: u64,
    pub revoke_flushed: u64,
    pub commits: u64,
    pub commit_errors: u64,
    pub commits_skipped: u64,
    pub consumer_errors: u64,
    pub assigned_partitions: u64,
    pub topic_partitions: u64,
    pub join: JoinMetrics,
}

impl ScaleoutMetrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> ScaleoutSnapshot {
        let g = |a: &AtomicU64| a.load(Relaxed);
        ScaleoutSnapshot {
            flows_consumed: g(&self.flows_consumed),
            taps_consumed: g(&self.taps_consumed),
            flows_invalid: g(&self.flows_invalid),
            taps_invalid: g(&self.taps_invalid),
            assignments: g(&self.assignments),
            revocations: g(&self.revocations),
            revoke_flushed: g(&self.revoke_flushed),
            commits: g(&self.commits),
            commit_errors: g(&self.commit_errors),
            commits_skipped: g(&self.commits_skipped),
            consumer_errors: g(&self.consumer_errors),
            assigned_partitions: g(&self.assigned_partitions),
            topic_partitions: g(&self.topic_partitions),
            join: self.join(),
        }
    }

    /// The join metrics of the last tick.
    pub fn join(&self) -> JoinMetrics {
        self.join.lock().map(|g| *g).unwrap_or_default()
    }
}
