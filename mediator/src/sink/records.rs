//! The sinks as lanes of the fan-out ([`crate::fanout`]) for every record kind the mediator
//! publishes ([`AnyRecord`]): router flows, tap records, super-flows and application sessions.
//!
//! - [`ParquetRecords`]: one table per kind (`flow_records`, `tap_records`, `super_flows`,
//!   `app_sessions`); router flows and super-flows take the direct Arrow path, the others their
//!   row form. Records are borrowed from the batch, never copied.
//! - [`KafkaRecords`]: one message per record on the kind's topic, keyed by the canonical
//!   flow-key hash (sessions: the session id), with the record id in the `record_id` header. JSON
//!   (default) is the record's serde form — for a router flow exactly what `supernetflow decode`
//!   prints; Avro is the Confluent wire format ([`super::avro`]), one subject per topic.

use super::avro::{AvroEncoder, AvroError};
use super::kafka::{KafkaFormat, KafkaSink};
use super::parquet::ParquetSink;
use super::Sink;
use crate::fanout::BatchSink;
use schemas::{AppSession, FlowRecord, Record, RecordKind, SuperFlow, TapRecord};
use std::time::{Duration, SystemTime};

/// Any record the mediator publishes.
///
/// Every kind is behind one pointer. Router flows are shared (`Arc`): `run` and `mediate` hand the
/// same record to the join, which holds it while it waits for the tap side and embeds it in the
/// super-flow, so it is not copied for `flow_records`.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyRecord {
    /// A router's flow, as the collector decoded it.
    Flow(std::sync::Arc<FlowRecord>),
    /// A tap's record, as the tap exported it.
    Tap(Box<TapRecord>),
    /// A router flow joined with the tap's view of it.
    Super(Box<SuperFlow>),
    /// An application session.
    Session(Box<AppSession>),
}

impl AnyRecord {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            AnyRecord::Flow(_) => RecordKind::Flow,
            AnyRecord::Tap(_) => RecordKind::Tap,
            AnyRecord::Super(_) => RecordKind::SuperFlow,
            AnyRecord::Session(_) => RecordKind::AppSession,
        }
    }
}

/// Records of `batch` grouped by kind, each group in batch order.
#[derive(Default)]
struct Grouped<'a> {
    flows: Vec<&'a FlowRecord>,
    taps: Vec<&'a TapRecord>,
    supers: Vec<&'a SuperFlow>,
    sessions: Vec<&'a AppSession>,
}

fn group(batch: &[AnyRecord]) -> Grouped<'_> {
    let mut g = Grouped::default();
    for r in batch {
        match r {
            AnyRecord::Flow(f) => g.flows.push(f),
            AnyRecord::Tap(t) => g.taps.push(t),
            AnyRecord::Super(s) => g.supers.push(s),
            AnyRecord::Session(s) => g.sessions.push(s),
        }
    }
    g
}

/// The Parquet sink writing one table per kind.
pub struct ParquetRecords(pub ParquetSink);

impl ParquetRecords {
    /// Writes one kind through its row form (tap records, sessions), borrowing the records.
    fn write_kind<R: Record>(&mut self, recs: &[&R]) -> Result<u64, String> {
        if recs.is_empty() {
            return Ok(0);
        }
        let r = self.0.write_refs(recs).map_err(|e| e.to_string())?;
        log_rejected(R::KIND, &r);
        Ok(r.rejected.len() as u64)
    }

    /// Writes super-flows through the direct Arrow path, borrowing the records.
    fn write_supers(&mut self, recs: &[&SuperFlow]) -> Result<u64, String> {
        if recs.is_empty() {
            return Ok(0);
        }
        let r = self.0.write_super_refs(recs).map_err(|e| e.to_string())?;
        log_rejected(RecordKind::SuperFlow, &r);
        Ok(r.rejected.len() as u64)
    }
}

fn log_rejected(kind: RecordKind, r: &super::parquet::WriteReport) {
    for x in r.rejected.iter().take(1) {
        tracing::warn!(kind = %kind, record_id = ?x.record_id, reason = %x.reason, rejected = r.rejected.len(), "Parquet sink refused records");
    }
}

impl BatchSink<AnyRecord> for ParquetRecords {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn ready(&self) -> bool {
        true
    }

    fn write(&mut self, batch: &[AnyRecord]) -> Result<u64, String> {
        // The common case, a batch of router flows only, goes to Arrow without copies.
        if batch.iter().all(|r| matches!(r, AnyRecord::Flow(_))) {
            let flows: Vec<&FlowRecord> = batch
                .iter()
                .filter_map(|r| match r {
                    AnyRecord::Flow(f) => Some(f.as_ref()),
                    _ => None,
                })
                .collect();
            return self.write_flows(&flows);
        }
        let g = group(batch);
        let mut rejected = self.write_flows(&g.flows)?;
        rejected += self.write_kind(&g.taps)?;
        rejected += self.write_supers(&g.supers)?;
        rejected += self.write_kind(&g.sessions)?;
        Ok(rejected)
    }

    fn tick(&mut self) -> Result<(), String> {
        self.0
            .flush_expired(SystemTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Commits every open file: a row is durable (and visible) once its file is renamed.
    fn sync(&mut self, _timeout: Duration) -> Result<(), String> {
        self.0.commit_open().map(|_| ()).map_err(|e| e.to_string())
    }

    fn close(self: Box<Self>, _timeout: Duration) -> Result<(), String> {
        let m = self.0.close().map_err(|e| e.to_string())?;
        tracing::info!(
            rows = m.rows_committed,
            files = m.files_committed,
            "Parquet sink closed"
        );
        Ok(())
    }
}

impl ParquetRecords {
    fn write_flows(&mut self, flows: &[&FlowRecord]) -> Result<u64, String> {
        if flows.is_empty() {
            return Ok(0);
        }
        let r = self.0.write_flow_refs(flows).map_err(|e| e.to_string())?;
        log_rejected(RecordKind::Flow, &r);
        Ok(r.rejected.len() as u64)
    }
}

/// Topic and Avro encoder of one kind.
struct Lane {
    topic: String,
    avro: Option<AvroEncoder>,
}

/// The Kafka sink writing each kind to its topic, as JSON or Avro.
pub struct KafkaRecords {
    sink: KafkaSink,
    lanes: [Lane; 4],
    buf: Vec<u8>,
}

fn lane_index(kind: RecordKind) -> usize {
    match kind {
        RecordKind::Flow => 0,
        RecordKind::Tap => 1,
        RecordKind::SuperFlow => 2,
        RecordKind::AppSession => 3,
    }
}

impl KafkaRecords {
    /// Writes to the sink's configured topics; with `format = "avro"`, registers each kind's
    /// schema under `<topic>-value` first (an unreachable registry or a refused schema is an
    /// error).
    pub fn new(sink: KafkaSink) -> Result<Self, AvroError> {
        let t = &sink.config().topics;
        let lane = |topic: &String, kind: RecordKind| -> Result<Lane, AvroError> {
            let avro = match sink.config().format {
                KafkaFormat::Json => None,
                KafkaFormat::Avro => Some(AvroEncoder::register(
                    &sink.config().schema_registry_url,
                    topic,
                    kind,
                    Duration::from_secs(10),
                )?),
            };
            Ok(Lane {
                topic: topic.clone(),
                avro,
            })
        };
        let lanes = [
            lane(&t.flow_records, RecordKind::Flow)?,
            lane(&t.tap_records, RecordKind::Tap)?,
            lane(&t.super_flows, RecordKind::SuperFlow)?,
            lane(&t.app_sessions, RecordKind::AppSession)?,
        ];
        Ok(Self {
            sink,
            lanes,
            buf: Vec::with_capacity(2048),
        })
    }

    /// The Kafka sink's counters.
    pub fn metrics(&self) -> &std::sync::Arc<super::kafka::KafkaMetrics> {
        self.sink.metrics()
    }

    fn send_one<R: Record + serde::Serialize>(&mut self, r: &R) -> Result<(), String> {
        let lane = &self.lanes[lane_index(R::KIND)];
        self.buf.clear();
        match &lane.avro {
            None => serde_json::to_writer(&mut self.buf, r).map_err(|e| e.to_string())?,
            Some(enc) => enc.encode(r, &mut self.buf).map_err(|e| e.to_string())?,
        }
        let key = r.message_key().unwrap_or("").as_bytes();
        self.sink
            .send(&lane.topic, key, r.record_id(), &self.buf)
            .map_err(|e| e.to_string())
    }
}

impl BatchSink<AnyRecord> for KafkaRecords {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn ready(&self) -> bool {
        self.sink.ready()
    }

    fn write(&mut self, batch: &[AnyRecord]) -> Result<u64, String> {
        let mut failed = 0;
        let mut first_error = None;
        for r in batch {
            let sent = match r {
                AnyRecord::Flow(f) => self.send_one(f.as_ref()),
                AnyRecord::Tap(t) => self.send_one(t.as_ref()),
                AnyRecord::Super(s) => self.send_one(s.as_ref()),
                AnyRecord::Session(s) => self.send_one(s.as_ref()),
            };
            if let Err(e) = sent {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            tracing::warn!(error = %e, failed, "Kafka sink refused records");
        }
        Ok(failed)
    }

    fn tick(&mut self) -> Result<(), String> {
        self.sink.poll().map_err(|e| e.to_string())
    }

    /// Waits for the broker's delivery reports. While the broker is away the records are in the
    /// spool, fsynced, which is durable too (replayed in order when it is back): only records
    /// still inside librdkafka without a report when the time runs out make this an error.
    fn sync(&mut self, timeout: Duration) -> Result<(), String> {
        // In spool mode every record is in the spool (what librdkafka holds then is a replay
        // batch, still in the spool until confirmed): syncing the spool is enough, no waiting.
        let timeout = if self.sink.spooling() {
            Duration::ZERO
        } else {
            timeout
        };
        match self.sink.flush(timeout) {
            Ok(()) => Ok(()),
            Err(super::SinkError::FlushTimeout { in_flight, .. })
                if in_flight == 0 || self.sink.spooling() =>
            {
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn close(mut self: Box<Self>, timeout: Duration) -> Result<(), String> {
        // What is not delivered within the timeout stays in the spool for the next start.
        let r = self.sink.flush(timeout).map_err(|e| e.to_string());
        let m = self.sink.metrics().snapshot();
        tracing::info!(
            delivered = m.delivered,
            spooled_pending = m.spool_bytes,
            failed = m.failed,
            "Kafka sink closed"
        );
        r
    }
}
