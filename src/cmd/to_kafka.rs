//! `--to-kafka`: the flags `collect` and `probe` share to publish their records to the raw
//! topics that `supernetflow mediate` consumes (see [`mediator::scaleout`]).

use anyhow::Context;
use mediator::fanout::{BatchSink, Fanout};
use mediator::join::Partitioner;
use mediator::scaleout::config::{DEFAULT_FLOWS_TOPIC, DEFAULT_TAP_TOPIC};
use mediator::scaleout::ScaleoutConfig;
use mediator::sink::kafka::KafkaMetrics;
use mediator::sink::records::AnyRecord;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where and how to publish raw records.
#[derive(clap::Args, Debug, Clone)]
pub struct ToKafkaArgs {
    /// Publish the records to the raw Kafka topics on these bootstrap brokers (`host:port,...`),
    /// keyed by the canonical flow key, for `supernetflow mediate`.
    #[arg(long, value_name = "BROKERS")]
    pub to_kafka: Option<String>,
    /// Raw topic of router flow records.
    #[arg(long, default_value = DEFAULT_FLOWS_TOPIC, requires = "to_kafka")]
    pub flows_topic: String,
    /// Raw topic of tap records.
    #[arg(long, default_value = DEFAULT_TAP_TOPIC, requires = "to_kafka")]
    pub tap_topic: String,
    /// Partitions of a raw topic created because it is missing (when the other exists, its
    /// count is used). Both topics must have the same count, or start-up stops.
    #[arg(long, default_value_t = 12, requires = "to_kafka")]
    pub partitions: i32,
    /// The producer's partitioner; the mediators must be configured with the same
    /// (scaleout.partitioner).
    #[arg(
        long,
        value_enum,
        default_value = "consistent-random",
        requires = "to_kafka"
    )]
    pub partitioner: PartitionerArg,
    /// On-disk spool of the producer, for while the brokers are away (default:
    /// ./data/spool/raw-flows or ./data/spool/raw-tap).
    #[arg(long, value_name = "DIR", requires = "to_kafka")]
    pub spool_dir: Option<PathBuf>,
    /// Extra librdkafka producer property KEY=VALUE; repeat for several.
    #[arg(
        long = "kafka-property",
        value_name = "KEY=VALUE",
        requires = "to_kafka"
    )]
    pub kafka_property: Vec<String>,
    /// At exit, how long the producer may take to deliver what it holds, seconds (the rest stays
    /// in the spool for the next start).
    #[arg(long, default_value_t = 30, requires = "to_kafka")]
    pub close_timeout_secs: u64,
}

/// `--partitioner`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PartitionerArg {
    /// librdkafka's default: CRC-32 of the key.
    ConsistentRandom,
    /// The Java client's default: murmur2 of the key.
    Murmur2,
}

/// A running raw producer: the Kafka sink on its own fan-out lane.
pub struct RawProducer {
    pub fanout: Fanout<AnyRecord>,
    pub metrics: Arc<KafkaMetrics>,
}

impl ToKafkaArgs {
    /// The producer, when `--to-kafka` is given: checks that the raw topics are co-partitioned
    /// (creating missing ones) and opens the Kafka sink with its spool (`default_spool`, e.g.
    /// "raw-flows", under ./data/spool unless --spool-dir).
    pub fn start(&self, default_spool: &str) -> anyhow::Result<Option<RawProducer>> {
        let Some(brokers) = &self.to_kafka else {
            return Ok(None);
        };
        let cfg = ScaleoutConfig {
            brokers: brokers.clone(),
            flows_topic: self.flows_topic.clone(),
            tap_topic: self.tap_topic.clone(),
            partitions: self.partitions,
            partitioner: match self.partitioner {
                PartitionerArg::ConsistentRandom => Partitioner::ConsistentRandom,
                PartitionerArg::Murmur2 => Partitioner::Murmur2,
            },
            ..ScaleoutConfig::default()
        };
        let mut props = BTreeMap::new();
        for kv in &self.kafka_property {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--kafka-property {kv:?}: not KEY=VALUE"))?;
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
        let spool = self
            .spool_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./data/spool").join(default_spool));
        let (sink, partitions) = mediator::scaleout::producer::raw_sink(&cfg, &spool, &props)
            .with_context(|| format!("--to-kafka {brokers}"))?;
        tracing::info!(
            brokers = %brokers, flows = %self.flows_topic, tap = %self.tap_topic, partitions,
            "Publishing to the raw topics"
        );
        let metrics = sink.metrics().clone();
        let fanout = Fanout::start(
            vec![Box::new(sink) as Box<dyn BatchSink<AnyRecord>>],
            64,
            Duration::from_secs(self.close_timeout_secs),
        )?;
        Ok(Some(RawProducer { fanout, metrics }))
    }
}

impl RawProducer {
    /// Delivers what is queued (or leaves it in the spool) and stops; returns the sink's
    /// counters.
    pub fn close(self) -> anyhow::Result<mediator::sink::kafka::KafkaMetricsSnapshot> {
        let r = self.fanout.close();
        let snap = self.metrics.snapshot();
        tracing::info!(
            delivered = snap.delivered,
            spooled = snap.spooled,
            failed = snap.failed,
            "Raw producer closed"
        );
        r.context("closing the Kafka producer")?;
        Ok(snap)
    }
}
