//! The raw producers' sink: the Kafka sink ([`KafkaSink`]: idempotent producer, delivery
//! reports, on-disk spool) writing router flows to the flows topic and tap records to the tap
//! topic, as JSON (each record's serde form), keyed by the canonical flow key (16 hex digits),
//! with the producers' partitioner set explicitly so that the mediators know it.

use super::config::ScaleoutConfig;
use super::ScaleoutError;
use crate::sink::kafka::{KafkaFormat, KafkaSink, KafkaSinkConfig, KafkaTopics};
use crate::sink::records::KafkaRecords;
use std::collections::BTreeMap;
use std::path::Path;

/// The Kafka sink configuration of a raw producer: the defaults of `[sinks.kafka]`, the raw
/// topics, JSON, the partitioner, the spool in `spool_dir`, and `properties` (librdkafka) last.
pub fn raw_sink_config(
    cfg: &ScaleoutConfig,
    spool_dir: &Path,
    properties: &BTreeMap<String, String>,
) -> KafkaSinkConfig {
    let mut props = BTreeMap::new();
    props.insert(
        "partitioner".to_string(),
        cfg.partitioner.librdkafka_name().to_string(),
    );
    props.insert("client.id".to_string(), "supernetflow-raw".to_string());
    props.extend(properties.iter().map(|(k, v)| (k.clone(), v.clone())));
    KafkaSinkConfig {
        brokers: cfg.brokers.clone(),
        topics: KafkaTopics {
            flow_records: cfg.flows_topic.clone(),
            tap_records: cfg.tap_topic.clone(),
            ..KafkaTopics::default()
        },
        format: KafkaFormat::Json,
        spool_dir: spool_dir.to_path_buf(),
        properties: props,
        ..KafkaSinkConfig::default()
    }
}

/// Checks that the raw topics are co-partitioned (creating missing ones), then opens the sink.
pub fn raw_sink(
    cfg: &ScaleoutConfig,
    spool_dir: &Path,
    properties: &BTreeMap<String, String>,
) -> Result<(KafkaRecords, i32), ScaleoutError> {
    cfg.validate().map_err(ScaleoutError::Config)?;
    let partitions = super::topics::ensure_copartitioned(
        &cfg.brokers,
        &cfg.flows_topic,
        &cfg.tap_topic,
        cfg.partitions,
    )?;
    let sink = KafkaSink::new(raw_sink_config(cfg, spool_dir, properties))
        .map_err(|e| ScaleoutError::Sink(e.to_string()))?;
    let records = KafkaRecords::new(sink).map_err(|e| ScaleoutError::Sink(e.to_string()))?;
    Ok((records, partitions))
}
