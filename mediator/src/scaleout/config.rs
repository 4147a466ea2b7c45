//! The `[scaleout]` section: the raw topics, and how `supernetflow mediate` consumes them.

use crate::join::Partitioner;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The raw topics the collectors and taps publish to, and the mediators' consumer group.
///
/// ```toml
/// [scaleout]
/// brokers = "127.0.0.1:9092"
/// flows_topic = "snf.raw.flows"
/// tap_topic = "snf.raw.tap"
/// group_id = "supernetflow-mediate"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScaleoutConfig {
    /// Bootstrap brokers of the raw topics, comma-separated `host:port`. Default
    /// `"127.0.0.1:9092"`.
    pub brokers: String,
    /// Topic of the routers' flow records (`supernetflow collect --to-kafka`). Default
    /// `"snf.raw.flows"`.
    pub flows_topic: String,
    /// Topic of the taps' records (`supernetflow probe --to-kafka`). Default `"snf.raw.tap"`.
    pub tap_topic: String,
    /// Partitions of a raw topic created because it does not exist yet (by a producer or a
    /// mediator at start). A missing topic gets the partition count of the other one when that
    /// exists. Both topics must have the same count: every process checks at start and refuses
    /// to run when they differ. Default `12`.
    pub partitions: i32,
    /// The producers' partitioner, `consistent_random` (librdkafka's default) or `murmur2` (the
    /// Java client's). Our producers set it; the mediator needs it to know which keys a revoked
    /// partition holds. Default `"consistent_random"`.
    pub partitioner: Partitioner,
    /// Consumer group of the mediators. Default `"supernetflow-mediate"`.
    pub group_id: String,
    /// Consumer session timeout (librdkafka `session.timeout.ms`): how long a silent mediator
    /// keeps its partitions, ms. The heartbeat interval is a third of it. Default `10000`.
    pub session_timeout_ms: u64,
    /// Seconds between offset commits while running (each waits for the sinks to make the
    /// outputs durable first). A router record still waiting in the join holds its partition's
    /// commit back, so a crash re-reads it (and may repeat the outputs since the last commit);
    /// revocations and SIGTERM always commit exactly what was emitted. 0: commit only at
    /// revocations and shutdown. Default `30`.
    pub commit_interval_secs: u64,
    /// How long the sinks may take to make the outputs durable before a commit, seconds. When
    /// they cannot (the Kafka sink's records still inside librdkafka), the commit is skipped and
    /// counted: the next owner re-reads, so outputs may repeat, never go missing. Default `30`.
    pub sync_timeout_secs: u64,
    /// Also write the raw records a mediator consumes to the sinks (`flow_records`,
    /// `tap_records`), as `run` does. Default `false` (super-flows only).
    pub publish_raw: bool,
    /// Extra librdkafka properties of the consumer, applied last. Default empty.
    pub consumer_properties: BTreeMap<String, String>,
}

/// Default raw topic of router flow records.
pub const DEFAULT_FLOWS_TOPIC: &str = "snf.raw.flows";
/// Default raw topic of tap records.
pub const DEFAULT_TAP_TOPIC: &str = "snf.raw.tap";

impl Default for ScaleoutConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            flows_topic: DEFAULT_FLOWS_TOPIC.into(),
            tap_topic: DEFAULT_TAP_TOPIC.into(),
            partitions: 12,
            partitioner: Partitioner::ConsistentRandom,
            group_id: "supernetflow-mediate".into(),
            session_timeout_ms: 10_000,
            commit_interval_secs: 30,
            sync_timeout_secs: 30,
            publish_raw: false,
            consumer_properties: BTreeMap::new(),
        }
    }
}

impl ScaleoutConfig {
    /// Checks the values; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("brokers is empty".into());
        }
        if self.flows_topic.is_empty() || self.tap_topic.is_empty() {
            return Err("flows_topic and tap_topic must be set".into());
        }
        if self.flows_topic == self.tap_topic {
            return Err(format!(
                "flows_topic and tap_topic are both {:?}: they must differ",
                self.flows_topic
            ));
        }
        if self.partitions < 1 {
            return Err(format!(
                "partitions = {} must be at least 1",
                self.partitions
            ));
        }
        if self.group_id.is_empty() {
            return Err("group_id is empty".into());
        }
        if self.session_timeout_ms < 1000 {
            return Err(format!(
                "session_timeout_ms = {} is below 1000",
                self.session_timeout_ms
            ));
        }
        Ok(())
    }
}
