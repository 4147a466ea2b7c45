//! The Kafka sink: an idempotent librdkafka producer (bundled librdkafka, via `rdkafka`) with a
//! bounded in-memory queue and an on-disk [spool](super::spool) for when the broker is away.
//!
//! # Flow of a record
//! - **Direct** (the normal case): [`KafkaSink::send`] hands the record to librdkafka (key = the
//!   caller's flow-key hash, value = the payload, header `record_id`). librdkafka batches,
//!   compresses and delivers it; its delivery report is counted (`delivered` / `failed`).
//! - **To the spool** when librdkafka's queue stays full for `queue_full_wait_ms`, when a delivery
//!   fails with a retriable error, or when librdkafka reports that all brokers are down. At that
//!   moment every message still inside librdkafka is purged and its (failed) delivery report puts
//!   it in the spool first, in report order (per partition, hence per key, in send order); only
//!   then does the new record go to the spool. From then on — while the spool is not empty — every
//!   new record goes to the spool too, so the order per key is kept.
//! - **Replay**: while the spool is not empty, each `send`/[`KafkaSink::poll`]/`flush` call moves a
//!   replay step: it reads a batch of up to `replay_batch` entries in spool order, produces them,
//!   and once every one of them has a delivery report, commits the batch in the spool (deleting
//!   spent segments). Failed entries of a batch are produced again (only those, in order) after
//!   `retry_backoff_ms`. No call blocks waiting for the broker: librdkafka keeps reconnecting and
//!   delivers a waiting batch as soon as the broker is back. When the spool is empty the sink goes
//!   back to direct sends. A new sink over a non-empty spool (a restart) starts in spool mode and
//!   replays it.
//!
//! # Delivery guarantee
//! At least once: a record is removed from the spool only after its delivery is confirmed. A record
//! can reach Kafka twice only when the producer could not know whether a first attempt landed
//! (purged while in flight to the broker, or a replayed batch interrupted by a crash before its
//! commit); the `record_id` header lets consumers drop such duplicates. A record is lost only when
//! the spool overflows (`spool_dropped`), is corrupted on disk (`spool_corrupt`), or librdkafka
//! rejects it for good (too large, not authorized: `failed`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, PurgeConfig, ThreadedProducer};
use serde::{Deserialize, Serialize};

use super::spool::{FsyncPolicy, Spool, SpoolConfig, SpoolEntry, SpoolPos};
use super::{Sink, SinkError};

const SINK: &str = "kafka";
/// Name of the header carrying the caller's record id.
pub const RECORD_ID_HEADER: &str = "record_id";

/// Serialization of the records written to Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaFormat {
    /// JSON, one record per message (default).
    #[default]
    Json,
    /// Avro in the Confluent wire format, the schema registered with `schema_registry_url`
    /// (see [`super::avro`]).
    Avro,
}

/// Compression of produced batches (librdkafka `compression.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaCompression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4 (default).
    #[default]
    Lz4,
}

impl KafkaCompression {
    fn as_str(self) -> &'static str {
        match self {
            KafkaCompression::None => "none",
            KafkaCompression::Gzip => "gzip",
            KafkaCompression::Snappy => "snappy",
            KafkaCompression::Lz4 => "lz4",
        }
    }
}

/// When the spool `fdatasync`s (see [`super::spool`] for what each mode risks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpoolFsync {
    /// After every spooled record.
    Always,
    /// At most every `spool_fsync_interval_ms`, and on rotation, flush and shutdown (default).
    #[default]
    Interval,
    /// Never explicitly.
    Never,
}

/// One topic per record kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaTopics {
    /// Router flow records. Default `"snf.flow_records"`.
    pub flow_records: String,
    /// The tap's records. Default `"snf.tap_records"`.
    pub tap_records: String,
    /// Joined SuperFlow records. Default `"snf.super_flows"`.
    pub super_flows: String,
    /// Application sessions. Default `"snf.app_sessions"`.
    pub app_sessions: String,
}

impl Default for KafkaTopics {
    fn default() -> Self {
        KafkaTopics {
            flow_records: "snf.flow_records".into(),
            tap_records: "snf.tap_records".into(),
            super_flows: "snf.super_flows".into(),
            app_sessions: "snf.app_sessions".into(),
        }
    }
}

/// Configuration of the Kafka sink (`[sinks.kafka]` or wherever the lead puts it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, comma-separated `host:port`. Default `"127.0.0.1:9092"`.
    pub brokers: String,
    /// Topic per record kind. The sink itself takes the topic from the caller.
    pub topics: KafkaTopics,
    /// Record kinds `run` and `mediate` publish, by table name: any of `flow_records`,
    /// `tap_records`, `super_flows`, `app_sessions` (the others are skipped, counted in the
    /// lane's `records_skipped`). Default: all four.
    pub kinds: Vec<String>,
    /// Message format: `json` (default) or `avro` (Confluent wire format; needs
    /// `schema_registry_url`).
    pub format: KafkaFormat,
    /// Schema registry base URL for `format = "avro"`, e.g. `"http://127.0.0.1:8081"`. Subjects:
    /// `<topic>-value`. Default empty.
    pub schema_registry_url: String,
    /// Threads encoding messages in `run` and `mediate` (1 or 2): with 2, a batch of more than
    /// 256 records is encoded in two halves, one on a second thread, then produced in order.
    /// Default `2`.
    pub encode_threads: usize,
    /// Bound of the in-memory queue, in messages (librdkafka `queue.buffering.max.messages`).
    /// Default 100000.
    pub queue_max_messages: u32,
    /// How long `send` waits for room when the in-memory queue is full before it turns to the
    /// spool, in milliseconds. Default 100.
    pub queue_full_wait_ms: u64,
    /// Spool directory. Default `"./data/spool/kafka"`.
    pub spool_dir: PathBuf,
    /// Upper bound of the spool on disk, in bytes; past it the oldest segment is dropped (and
    /// counted in `spool_dropped`). Default 1 GiB (1073741824). At least 1 MiB.
    pub spool_max_bytes: u64,
    /// Size of one spool segment file, in bytes (clamped to a quarter of `spool_max_bytes`).
    /// Default 64 MiB.
    pub spool_segment_bytes: u64,
    /// Spool fsync policy: `always`, `interval` (default) or `never`.
    pub spool_fsync: SpoolFsync,
    /// Interval of the `interval` fsync policy, in milliseconds. Default 1000.
    pub spool_fsync_interval_ms: u64,
    /// Spool entries produced per replay step (clamped to half the queue bound). Default 5000.
    pub replay_batch: u32,
    /// Pause before producing again the entries of a replay batch that failed, in milliseconds.
    /// Default 1000.
    pub retry_backoff_ms: u64,
    /// Delivery timeout: how long librdkafka tries to deliver a message before reporting it failed
    /// (librdkafka `message.timeout.ms`), in milliseconds. Default 30000.
    pub delivery_timeout_ms: u64,
    /// How long librdkafka waits to fill a batch (`linger.ms`), in milliseconds. Default 5.
    pub linger_ms: u64,
    /// Compression: `none`, `gzip`, `snappy` or `lz4` (default). (zstd is not built in.)
    pub compression: KafkaCompression,
    /// Extra librdkafka properties, applied last (they override the settings above; overriding
    /// `enable.idempotence` or `acks` weakens the delivery guarantee). Default empty.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        KafkaSinkConfig {
            brokers: "127.0.0.1:9092".into(),
            topics: KafkaTopics::default(),
            kinds: super::all_kinds(),
            encode_threads: 2,
            format: KafkaFormat::Json,
            schema_registry_url: String::new(),
            queue_max_messages: 100_000,
            queue_full_wait_ms: 100,
            spool_dir: PathBuf::from("./data/spool/kafka"),
            spool_max_bytes: 1 << 30,
            spool_segment_bytes: 64 << 20,
            spool_fsync: SpoolFsync::Interval,
            spool_fsync_interval_ms: 1000,
            replay_batch: 5000,
            retry_backoff_ms: 1000,
            delivery_timeout_ms: 30_000,
            linger_ms: 5,
            compression: KafkaCompression::Lz4,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaSinkConfig {
    /// Checks the configuration; the error says which field is wrong.
    pub fn validate(&self) -> Result<(), SinkError> {
        let bad = |reason: String| Err(SinkError::Config { sink: SINK, reason });
        if self.format == KafkaFormat::Avro && self.schema_registry_url.trim().is_empty() {
            return bad("format = \"avro\" needs schema_registry_url".into());
        }
        if !self.schema_registry_url.is_empty()
            && !self.schema_registry_url.starts_with("http://")
            && !self.schema_registry_url.starts_with("https://")
        {
            return bad(format!(
                "schema_registry_url = {:?} must start with http:// or https://",
                self.schema_registry_url
            ));
        }
        if let Err(reason) = super::kind_mask(&self.kinds) {
            return bad(reason);
        }
        if !(1..=2).contains(&self.encode_threads) {
            return bad(format!(
                "encode_threads = {} is not 1 or 2",
                self.encode_threads
            ));
        }
        if self.brokers.trim().is_empty() {
            return bad("brokers is empty".into());
        }
        if self.queue_max_messages == 0 {
            return bad("queue_max_messages must be at least 1".into());
        }
        if self.spool_max_bytes < 1 << 20 {
            return bad(format!(
                "spool_max_bytes = {} is below the minimum of 1 MiB",
                self.spool_max_bytes
            ));
        }
        if self.spool_segment_bytes < 4096 {
            return bad("spool_segment_bytes must be at least 4096".into());
        }
        if self.replay_batch == 0 {
            return bad("replay_batch must be at least 1".into());
        }
        if self.delivery_timeout_ms == 0 {
            return bad("delivery_timeout_ms must be at least 1".into());
        }
        for (name, topic) in [
            ("flow_records", &self.topics.flow_records),
            ("tap_records", &self.topics.tap_records),
            ("super_flows", &self.topics.super_flows),
            ("app_sessions", &self.topics.app_sessions),
        ] {
            if topic.is_empty() {
                return bad(format!("topics.{name} is empty"));
            }
        }
        Ok(())
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "supernetflow-mediator")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            )
            .set("linger.ms", self.linger_ms.to_string())
            .set("compression.codec", self.compression.as_str())
            .set("message.timeout.ms", self.delivery_timeout_ms.to_string())
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "1000");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    fn spool_config(&self) -> SpoolConfig {
        SpoolConfig {
            dir: self.spool_dir.clone(),
            max_bytes: self.spool_max_bytes,
            segment_bytes: self.spool_segment_bytes.min(self.spool_max_bytes / 4),
            fsync: match self.spool_fsync {
                SpoolFsync::Always => FsyncPolicy::Always,
                SpoolFsync::Interval => {
                    FsyncPolicy::Interval(Duration::from_millis(self.spool_fsync_interval_ms))
                }
                SpoolFsync::Never => FsyncPolicy::Never,
            },
        }
    }
}

/// Counters and gauges of the Kafka sink (plain atomics, read with [`KafkaMetrics::snapshot`]).
#[derive(Debug, Default)]
pub struct KafkaMetrics {
    /// Records accepted by `send` (counter).
    pub queued: AtomicU64,
    /// Payload (message value) bytes of the records accepted by `send` (counter).
    pub value_bytes: AtomicU64,
    /// Key bytes of the records accepted by `send` (counter; headers not counted).
    pub key_bytes: AtomicU64,
    /// Messages handed to librdkafka without a delivery report yet (gauge).
    pub in_flight: AtomicU64,
    /// Messages whose delivery the broker confirmed, direct and replayed (counter).
    pub delivered: AtomicU64,
    /// Records given up for good: rejected by librdkafka or the broker with a non-retriable error
    /// (counter).
    pub failed: AtomicU64,
    /// Records written to the spool (counter).
    pub spooled: AtomicU64,
    /// Bytes in the spool not yet delivered (gauge).
    pub spool_bytes: AtomicU64,
    /// Spooled records whose delivery was confirmed (counter; included in `delivered`).
    pub spool_replayed: AtomicU64,
    /// Spooled records dropped because the spool reached its bound (counter).
    pub spool_dropped: AtomicU64,
    /// Spool entries found corrupt (bad CRC, torn tail after a crash) and skipped (counter).
    pub spool_corrupt: AtomicU64,
    /// 1 when the last sign from the broker was good (a delivery, metadata), 0 otherwise (gauge).
    pub broker_up: AtomicU64,
}

/// A copy of [`KafkaMetrics`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct KafkaMetricsSnapshot {
    /// See [`KafkaMetrics::queued`].
    pub queued: u64,
    /// See [`KafkaMetrics::value_bytes`].
    pub value_bytes: u64,
    /// See [`KafkaMetrics::key_bytes`].
    pub key_bytes: u64,
    /// See [`KafkaMetrics::in_flight`].
    pub in_flight: u64,
    /// See [`KafkaMetrics::delivered`].
    pub delivered: u64,
    /// See [`KafkaMetrics::failed`].
    pub failed: u64,
    /// See [`KafkaMetrics::spooled`].
    pub spooled: u64,
    /// See [`KafkaMetrics::spool_bytes`].
    pub spool_bytes: u64,
    /// See [`KafkaMetrics::spool_replayed`].
    pub spool_replayed: u64,
    /// See [`KafkaMetrics::spool_dropped`].
    pub spool_dropped: u64,
    /// See [`KafkaMetrics::spool_corrupt`].
    pub spool_corrupt: u64,
    /// See [`KafkaMetrics::broker_up`].
    pub broker_up: u64,
}

impl KafkaMetrics {
    /// Reads every counter (each atomically, not all at one instant).
    pub fn snapshot(&self) -> KafkaMetricsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        KafkaMetricsSnapshot {
            queued: g(&self.queued),
            value_bytes: g(&self.value_bytes),
            key_bytes: g(&self.key_bytes),
            in_flight: g(&self.in_flight),
            delivered: g(&self.delivered),
            failed: g(&self.failed),
            spooled: g(&self.spooled),
            spool_bytes: g(&self.spool_bytes),
            spool_replayed: g(&self.spool_replayed),
            spool_dropped: g(&self.spool_dropped),
            spool_corrupt: g(&self.spool_corrupt),
            broker_up: g(&self.broker_up),
        }
    }
}

/// What a delivery report belongs to.
#[derive(Debug)]
enum Tag {
    /// A record sent directly.
    Direct,
    /// Slot `slot` of replay generation `gen`.
    Replay { gen: u64, slot: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Pending,
    Delivered,
    /// Failed with a retriable error: produce again.
    Retry,
    /// Failed for good (counted in `failed`).
    Abandoned,
}

#[derive(Debug, Default)]
struct ReplayAcks {
    gen: u64,
    states: Vec<SlotState>,
    pending: usize,
}

/// State shared with librdkafka's callbacks (they run on the producer's polling thread).
#[derive(Debug, Default)]
struct Shared {
    metrics: Arc<KafkaMetrics>,
    /// Set by a retriable failure of a direct message or "all brokers down": the sender must turn
    /// to the spool.
    divert: AtomicBool,
    /// Direct messages inside librdkafka without a delivery report.
    direct_in_flight: AtomicU64,
    /// Direct messages that failed retriably, in report order, waiting to be spooled.
    failed: Mutex<Vec<SpoolEntry>>,
    replay: Mutex<ReplayAcks>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (plain pushes/stores).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn dec(a: &AtomicU64) {
    let _ = a.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        Some(v.saturating_sub(1))
    });
}

/// Errors after which retrying cannot help: the record is given up and counted in `failed`.
fn is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as E;
    matches!(
        code,
        E::MessageSizeTooLarge
            | E::InvalidMessageSize
            | E::InvalidMessage
            | E::InvalidRecord
            | E::InvalidTopic
            | E::TopicAuthorizationFailed
            | E::ClusterAuthorizationFailed
            | E::InvalidArgument
            | E::UnsupportedForMessageFormat
            | E::PolicyViolation
    )
}

fn error_code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

struct Ctx {
    shared: Arc<Shared>,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        match error_code(&error) {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                self.shared.divert.store(true, Ordering::Release);
                if self.shared.metrics.broker_up.swap(0, Ordering::AcqRel) == 1 {
                    tracing::warn!(%reason, "kafka: all brokers down; records go to the spool");
                } else {
                    tracing::debug!(%reason, "kafka: all brokers still down");
                }
            }
            Some(RDKafkaErrorCode::BrokerTransportFailure) => {
                tracing::debug!(%reason, "kafka: transport failure");
            }
            _ => tracing::warn!(error = %error, %reason, "kafka client error"),
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Tag>;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: Box<Tag>) {
        let m = &self.shared.metrics;
        dec(&m.in_flight);
        let outcome = match result {
            Ok(_) => {
                m.delivered.fetch_add(1, Ordering::Relaxed);
                m.broker_up.store(1, Ordering::Relaxed);
                SlotState::Delivered
            }
            Err((e, _)) => {
                let code = error_code(e);
                if code.is_some_and(is_permanent) {
                    m.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "kafka: record rejected for good");
                    SlotState::Abandoned
                } else {
                    if !matches!(
                        code,
                        Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
                    ) {
                        m.broker_up.store(0, Ordering::Relaxed);
                    }
                    SlotState::Retry
                }
            }
        };
        match *tag {
            Tag::Direct => {
                if outcome == SlotState::Retry {
                    if let Err((_, msg)) = result {
                        let headers = msg
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| (h.key.to_owned(), h.value.unwrap_or(&[]).to_vec()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        lock(&self.shared.failed).push(SpoolEntry {
                            topic: msg.topic().to_owned(),
                            key: msg.key().unwrap_or(&[]).to_vec(),
                            headers,
                            payload: msg.payload().unwrap_or(&[]).to_vec(),
                        });
                    }
                    self.shared.divert.store(true, Ordering::Release);
                }
                dec(&self.shared.direct_in_flight);
            }
            Tag::Replay { gen, slot } => {
                if outcome == SlotState::Delivered {
                    m.spool_replayed.fetch_add(1, Ordering::Relaxed);
                }
                let mut acks = lock(&self.shared.replay);
                if acks.gen == gen {
                    if let Some(s) = acks.states.get_mut(slot) {
                        if *s == SlotState::Pending {
                            *s = outcome;
                            acks.pending = acks.pending.saturating_sub(1);
                        }
                    }
                }
            }
        }
    }
}

/// A batch of spool entries being replayed.
struct ReplayBatch {
    gen: u64,
    entries: Vec<SpoolEntry>,
    /// Spool position after the batch's last entry.
    last: SpoolPos,
    /// When failed entries may be produced again.
    retry_at: Option<Instant>,
    /// When the batch (or its retry) was produced.
    sent_at: Instant,
    /// Retry rounds so far.
    failed_rounds: u32,
}

/// The Kafka sink. See the module documentation.
pub struct KafkaSink {
    cfg: KafkaSinkConfig,
    producer: Option<ThreadedProducer<Ctx>>,
    shared: Arc<Shared>,
    spool: Spool,
    /// While true, new records go to the spool.
    spool_mode: bool,
    replay: Option<ReplayBatch>,
    gen: u64,
}

fn build_producer(
    cfg: &KafkaSinkConfig,
    shared: &Arc<Shared>,
) -> Result<ThreadedProducer<Ctx>, SinkError> {
    cfg.client_config()
        .create_with_context(Ctx {
            shared: Arc::clone(shared),
        })
        .map_err(|e| SinkError::Config {
            sink: SINK,
            reason: format!("creating the librdkafka producer for {}: {e}", cfg.brokers),
        })
}

fn spool_err(source: super::spool::SpoolError) -> SinkError {
    SinkError::Spool { sink: SINK, source }
}

impl KafkaSink {
    /// Validates the configuration, opens the spool (a non-empty one from a previous run is
    /// replayed) and creates the producer. Blocks up to 2 s for a first metadata request, only to
    /// set `broker_up`; an absent broker is not an error.
    pub fn new(cfg: KafkaSinkConfig) -> Result<KafkaSink, SinkError> {
        cfg.validate()?;
        let spool = Spool::open(cfg.spool_config()).map_err(spool_err)?;
        let shared = Arc::new(Shared::default());
        let producer = build_producer(&cfg, &shared)?;
        let up = producer
            .client()
            .fetch_metadata(
                None,
                Duration::from_millis(cfg.delivery_timeout_ms.min(2000)),
            )
            .is_ok_and(|md| !md.brokers().is_empty());
        shared
            .metrics
            .broker_up
            .store(u64::from(up), Ordering::Relaxed);
        let spool_mode = !spool.is_empty();
        if spool_mode {
            tracing::info!(
                entries = spool.pending_entries(),
                bytes = spool.pending_bytes(),
                dir = %spool.dir().display(),
                "kafka: replaying the spool left by a previous run"
            );
        }
        let sink = KafkaSink {
            cfg,
            producer: Some(producer),
            shared,
            spool,
            spool_mode,
            replay: None,
            gen: 0,
        };
        sink.update_gauges();
        Ok(sink)
    }

    /// The metrics (shared; clone the `Arc` to read them from another thread).
    pub fn metrics(&self) -> &Arc<KafkaMetrics> {
        &self.shared.metrics
    }

    /// The configuration in force.
    pub fn config(&self) -> &KafkaSinkConfig {
        &self.cfg
    }

    /// True while new records go to the spool (broker away or spool not yet replayed).
    pub fn spooling(&self) -> bool {
        self.spool_mode
    }

    /// Housekeeping without sending: moves the spool replay on, spools failed records, rebuilds
    /// the producer after a fatal error, syncs the spool. `send` and `flush` do this too; call it
    /// about once a second when no records come.
    pub fn poll(&mut self) -> Result<(), SinkError> {
        // A fatal error (e.g. an idempotent producer whose producer id a restarted broker does not
        // know) leaves librdkafka's producer unusable: build a new one.
        if let Some((code, reason)) = self.producer()?.client().fatal_error() {
            tracing::error!(?code, %reason, "kafka: fatal producer error; rebuilding the producer");
            self.rebuild_producer()?;
        }
        if !self.spool_mode && self.shared.divert.load(Ordering::Acquire) {
            self.divert()?;
        }
        if self.spool_mode {
            self.shared.divert.store(false, Ordering::Release);
            self.absorb_failed()?;
            self.replay_step()?;
        }
        self.spool.sync_if_due().map_err(spool_err)?;
        self.update_gauges();
        Ok(())
    }

    fn producer(&self) -> Result<&ThreadedProducer<Ctx>, SinkError> {
        self.producer.as_ref().ok_or_else(|| SinkError::Config {
            sink: SINK,
            reason: "producer is gone (rebuild failed)".into(),
        })
    }

    fn rebuild_producer(&mut self) -> Result<(), SinkError> {
        // Dropping purges everything in it: direct records come back through `failed`, replay
        // slots are marked for retry.
        self.producer = None;
        self.producer = Some(build_producer(&self.cfg, &self.shared)?);
        if !self.spool_mode {
            self.shared.divert.store(true, Ordering::Release);
        }
        if let Some(b) = self.replay.as_mut() {
            b.retry_at = Some(Instant::now());
        }
        Ok(())
    }

    /// Turns to the spool: purges what librdkafka holds, waits for those reports (which put the
    /// records in `failed`), spools them in order.
    fn divert(&mut self) -> Result<(), SinkError> {
        let producer = self.producer()?;
        producer.purge(PurgeConfig::default().queue().inflight());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.shared.direct_in_flight.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                tracing::error!(
                    left = self.shared.direct_in_flight.load(Ordering::Acquire),
                    "kafka: purged records not reported within 10 s; they may be spooled out of order"
                );
                break;
            }
            producer.poll(Duration::from_millis(10));
        }
        self.spool_mode = true;
        self.shared.divert.store(false, Ordering::Release);
        tracing::info!("kafka: spooling records to disk until the broker takes them again");
        self.absorb_failed()
    }

    /// Spools the direct records whose delivery failed.
    fn absorb_failed(&mut self) -> Result<(), SinkError> {
        let failed = std::mem::take(&mut *lock(&self.shared.failed));
        for entry in &failed {
            self.spool_entry(entry)?;
        }
        Ok(())
    }

    fn spool_entry(&mut self, entry: &SpoolEntry) -> Result<(), SinkError> {
        let m = &self.shared.metrics;
        match self.spool.append(entry) {
            Ok(dropped) => {
                m.spooled.fetch_add(1, Ordering::Relaxed);
                m.spool_dropped.fetch_add(dropped, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                m.failed.fetch_add(1, Ordering::Relaxed);
                Err(spool_err(e))
            }
        }
    }

    fn produce(
        producer: &ThreadedProducer<Ctx>,
        shared: &Shared,
        entry: &SpoolEntry,
        tag: Tag,
    ) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(entry.headers.len());
        for (k, v) in &entry.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        shared.metrics.in_flight.fetch_add(1, Ordering::AcqRel);
        let rec = BaseRecord::with_opaque_to(&entry.topic, Box::new(tag))
            .key(&entry.key[..])
            .payload(&entry.payload[..])
            .headers(headers);
        producer.send(rec).map_err(|(e, _)| {
            dec(&shared.metrics.in_flight);
            e
        })
    }

    /// One non-blocking step of the spool replay.
    fn replay_step(&mut self) -> Result<(), SinkError> {
        // Watchdog: librdkafka's idempotent producer can keep a message in flight past
        // `message.timeout.ms` after the broker restarted empty (seen with tansu). A batch silent
        // for twice the delivery timeout gets a new producer (which fails what the old one held).
        let wedged = self.replay.as_ref().is_some_and(|b| {
            lock(&self.shared.replay).pending > 0
                && b.sent_at.elapsed()
                    > Duration::from_millis(self.cfg.delivery_timeout_ms.saturating_mul(2))
        });
        if wedged {
            tracing::warn!("kafka: replay batch without delivery reports; rebuilding the producer");
            self.rebuild_producer()?;
            if let Some(b) = self.replay.as_mut() {
                b.sent_at = Instant::now();
            }
        }
        if let Some(batch) = self.replay.as_mut() {
            let mut acks = lock(&self.shared.replay);
            if acks.pending > 0 {
                return Ok(());
            }
            let retry: Vec<usize> = acks
                .states
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == SlotState::Retry)
                .map(|(i, _)| i)
                .collect();
            if retry.is_empty() {
                drop(acks);
                let last = batch.last;
                self.replay = None;
                self.spool.commit(last).map_err(spool_err)?;
                return Ok(());
            }
            let now = Instant::now();
            match batch.retry_at {
                None => {
                    batch.retry_at = Some(now + Duration::from_millis(self.cfg.retry_backoff_ms));
                    return Ok(());
                }
                Some(t) if now < t => return Ok(()),
                Some(_) => {}
            }
            batch.failed_rounds += 1;
            if batch.failed_rounds % 2 == 0 {
                // Two rounds without success: a fresh producer (new producer id) gets past an
                // idempotence state the broker no longer knows (a broker restarted empty).
                drop(acks);
                tracing::warn!(
                    rounds = batch.failed_rounds,
                    "kafka: replay keeps failing; rebuilding the producer"
                );
                self.rebuild_producer()?;
                return Ok(());
            }
            self.gen += 1;
            batch.gen = self.gen;
            batch.retry_at = None;
            batch.sent_at = now;
            acks.gen = self.gen;
            for &i in &retry {
                acks.states[i] = SlotState::Pending;
            }
            acks.pending = retry.len();
            drop(acks);
            let Some(producer) = self.producer.as_ref() else {
                return Ok(());
            };
            tracing::debug!(
                entries = retry.len(),
                "kafka: producing failed replay entries again"
            );
            for i in retry {
                let tag = Tag::Replay {
                    gen: batch.gen,
                    slot: i,
                };
                if Self::produce(producer, &self.shared, &batch.entries[i], tag).is_err() {
                    let mut acks = lock(&self.shared.replay);
                    acks.states[i] = SlotState::Retry;
                    acks.pending = acks.pending.saturating_sub(1);
                }
            }
            return Ok(());
        }
        if !self.spool.has_unread() {
            // Back to direct sends only once the broker showed it is there (a delivery): an
            // empty spool during an outage keeps taking the new records.
            if self.spool.is_empty()
                && lock(&self.shared.failed).is_empty()
                && self.shared.metrics.broker_up.load(Ordering::Acquire) == 1
            {
                self.spool_mode = false;
                tracing::info!("kafka: spool replayed; back to direct sends");
            }
            return Ok(());
        }
        // A new batch.
        let max =
            (self.cfg.replay_batch as usize).min((self.cfg.queue_max_messages as usize / 2).max(1));
        let mut entries = Vec::with_capacity(max.min(65_536));
        let mut last = None;
        let mut bytes = 0usize;
        while entries.len() < max && bytes < 32 << 20 {
            match self.spool.read_next().map_err(spool_err)? {
                Some((e, pos)) => {
                    bytes += e.payload.len() + e.key.len() + 64;
                    entries.push(e);
                    last = Some(pos);
                }
                None => break,
            }
        }
        self.shared
            .metrics
            .spool_corrupt
            .store(self.spool.corrupt_entries(), Ordering::Relaxed);
        let Some(last) = last else {
            // Only corrupt entries were left: nothing to deliver.
            return Ok(());
        };
        self.gen += 1;
        let gen = self.gen;
        {
            let mut acks = lock(&self.shared.replay);
            acks.gen = gen;
            acks.states = vec![SlotState::Pending; entries.len()];
            acks.pending = entries.len();
        }
        let producer = self.producer()?;
        for (i, e) in entries.iter().enumerate() {
            if Self::produce(producer, &self.shared, e, Tag::Replay { gen, slot: i }).is_err() {
                let mut acks = lock(&self.shared.replay);
                acks.states[i] = SlotState::Retry;
                acks.pending = acks.pending.saturating_sub(1);
            }
        }
        self.replay = Some(ReplayBatch {
            gen,
            entries,
            last,
            retry_at: None,
            sent_at: Instant::now(),
            failed_rounds: 0,
        });
        Ok(())
    }

    fn update_gauges(&self) {
        let m = &self.shared.metrics;
        m.spool_bytes
            .store(self.spool.pending_bytes(), Ordering::Relaxed);
        m.spool_corrupt
            .store(self.spool.corrupt_entries(), Ordering::Relaxed);
    }

    fn send_direct(
        &mut self,
        topic: &str,
        key: &[u8],
        record_id: &str,
        payload: &[u8],
    ) -> Result<(), SinkError> {
        let producer = self.producer()?;
        let shared = &self.shared;
        let start = Instant::now();
        let wait = Duration::from_millis(self.cfg.queue_full_wait_ms);
        let reason = loop {
            let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
                key: RECORD_ID_HEADER,
                value: Some(record_id),
            });
            shared.direct_in_flight.fetch_add(1, Ordering::AcqRel);
            shared.metrics.in_flight.fetch_add(1, Ordering::AcqRel);
            let rec = BaseRecord::with_opaque_to(topic, Box::new(Tag::Direct))
                .key(key)
                .payload(payload)
                .headers(headers);
            let err = match producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((e, _)) => e,
            };
            dec(&shared.direct_in_flight);
            dec(&shared.metrics.in_flight);
            match error_code(&err) {
                Some(RDKafkaErrorCode::QueueFull) if start.elapsed() < wait => {
                    producer.poll(Duration::from_millis(1));
                }
                Some(code) if is_permanent(code) => {
                    shared.metrics.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(SinkError::Rejected {
                        sink: SINK,
                        topic: topic.to_owned(),
                        record_id: record_id.to_owned(),
                        reason: err.to_string(),
                    });
                }
                _ => break err,
            }
        };
        tracing::debug!(error = %reason, "kafka: direct send refused; turning to the spool");
        self.divert()?;
        self.spool_entry(&SpoolEntry {
            topic: topic.to_owned(),
            key: key.to_vec(),
            headers: vec![(RECORD_ID_HEADER.to_owned(), record_id.as_bytes().to_vec())],
            payload: payload.to_vec(),
        })
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &str {
        SINK
    }

    fn ready(&self) -> bool {
        self.producer.is_some() && self.shared.metrics.broker_up.load(Ordering::Relaxed) == 1
    }

    fn send(
        &mut self,
        topic: &str,
        key: &[u8],
        record_id: &str,
        payload: &[u8],
    ) -> Result<(), SinkError> {
        let m = &self.shared.metrics;
        m.queued.fetch_add(1, Ordering::Relaxed);
        m.value_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        m.key_bytes.fetch_add(key.len() as u64, Ordering::Relaxed);
        self.poll()?;
        if self.spool_mode {
            return self.spool_entry(&SpoolEntry {
                topic: topic.to_owned(),
                key: key.to_vec(),
                headers: vec![(RECORD_ID_HEADER.to_owned(), record_id.as_bytes().to_vec())],
                payload: payload.to_vec(),
            });
        }
        self.send_direct(topic, key, record_id, payload)
    }

    fn flush(&mut self, timeout: Duration) -> Result<(), SinkError> {
        let start = Instant::now();
        loop {
            self.poll()?;
            let in_flight = self.shared.metrics.in_flight.load(Ordering::Acquire);
            if !self.spool_mode && in_flight == 0 {
                self.spool.sync().map_err(spool_err)?;
                return Ok(());
            }
            if start.elapsed() >= timeout {
                self.spool.sync().map_err(spool_err)?;
                return Err(SinkError::FlushTimeout {
                    sink: SINK,
                    waited: start.elapsed(),
                    in_flight,
                    spooled: self.spool.pending_entries(),
                });
            }
            let producer = self.producer()?;
            producer.poll(Duration::from_millis(5));
        }
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        // Dropping the producer purges what it still holds; the reports of direct records put them
        // in `failed`, which goes to the spool for the next run. An unfinished replay batch stays
        // uncommitted and is replayed again next time.
        self.producer = None;
        if let Err(e) = self.absorb_failed() {
            tracing::error!(error = %e, "kafka: could not spool undelivered records at shutdown");
        }
        if let Err(e) = self.spool.sync() {
            tracing::error!(error = %e, "kafka: spool sync at shutdown failed");
        }
    }
}
