//! Scale-out through Kafka: collectors and taps publish their raw records to two topics keyed by
//! the canonical flow key (co-partitioned), and `supernetflow mediate` instances form one
//! consumer group over both, each joining the partitions it owns.
//!
//! ```text
//! collect --to-kafka ─► snf.raw.flows ─┐  (same partition count, same key bytes, same partitioner)
//! probe   --to-kafka ─► snf.raw.tap  ──┴─► consumer group "supernetflow-mediate"
//!                                            ├─ mediate #1: partitions {0..5} of both ─► join ─► sinks
//!                                            └─ mediate #2: partitions {6..11} of both ─► join ─► sinks
//! ```
//!
//! # Delivery
//! - Producers ([`producer`]) are the Kafka sink: idempotent, at least once, spooled to disk while
//!   the broker is away. Topics carry each record's serde JSON (the same bytes `decode` / `probe`
//!   print), key = the 16 hex digits of the flow key, header `record_id`.
//! - A mediator ([`consumer`], [`engine`]) commits an offset only after every output of every
//!   record before it is durable in its sinks. At a revocation it emits the revoked partitions'
//!   waiting router records (settled with what the tap sent so far), waits for the sinks and
//!   commits what it consumed before the group moves on: the next owner starts right after, so a
//!   rebalance neither loses nor repeats a router record. Tap partitions are committed rewound to
//!   the oldest tap report the join may still use, so the next owner rebuilds the tap summaries
//!   (tap records are inputs: reading them twice changes no output). The cost of a rebalance is
//!   the enrichment of the router records flushed early (settled with what the tap had sent so
//!   far; counted in `snf_scaleout_revoke_flushed_total`). A crash (no revocation) re-reads from
//!   the last commit: at least once, duplicates recognisable by `record_id`.
//!
//! # Layout
//! - [`config`]: [`ScaleoutConfig`], the `[scaleout]` section.
//! - [`topics`]: the co-partitioning check (and creation of missing topics).
//! - [`producer`]: the raw producers' Kafka sink.
//! - [`engine`]: join + fan-out + offsets, without Kafka (unit-tested).
//! - [`consumer`]: the consumer group and its rebalance callback.
//! - [`metrics`]: the counters ([`ScaleoutMetrics`]).

pub mod config;
pub mod consumer;
pub mod engine;
pub mod metrics;
pub mod producer;
pub mod topics;

pub use config::ScaleoutConfig;
pub use metrics::ScaleoutMetrics;

/// Errors of the scale-out pieces.
#[derive(Debug, thiserror::Error)]
pub enum ScaleoutError {
    /// A bad `[scaleout]` value.
    #[error("scaleout: {0}")]
    Config(String),
    /// The raw topics' partition counts differ: the two sides of a flow would not meet.
    #[error(
        "the raw topics are not co-partitioned: {flows_topic} has {flows} partitions, \
         {tap_topic} has {tap}; they must have the same count (recreate one, or add partitions \
         to the smaller before any record is produced)"
    )]
    PartitionMismatch {
        /// The flows topic.
        flows_topic: String,
        /// Its partition count.
        flows: i32,
        /// The tap topic.
        tap_topic: String,
        /// Its partition count.
        tap: i32,
    },
    /// A Kafka client call failed.
    #[error("kafka: {0}")]
    Kafka(String),
    /// A sink failed (its thread stopped, or it could not start).
    #[error("sink: {0}")]
    Sink(String),
    /// The mediator cannot go on (e.g. an assignment that is not co-partitioned).
    #[error("{0}")]
    Fatal(String),
}
