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
use super::parquet::{ParquetSink, ParquetSinkError, WriteReport};
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

/// Records of `batch` grouped by kind, of the kinds `takes` selects.
fn group<'a>(batch: &'a [AnyRecord], takes: &[bool; 4]) -> Grouped<'a> {
    let mut g = Grouped::default();
    for r in batch.iter().filter(|r| takes[r.kind() as usize]) {
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
///
/// With `encode_threads = 2` (the default) the sink is split in two ([`ParquetSink::split`]),
/// each half writing its own files, and a batch's encoding is shared between a scoped thread and
/// the lane's own thread: router flows (`flow_records`) there and the other kinds here when the
/// batch has both (in `run`, the super-flows of those same flows), else the two halves of the
/// batch's records. A small batch ([`PARALLEL_MIN`] records or fewer) is written on the lane's
/// thread only.
pub struct ParquetRecords {
    main: ParquetSink,
    /// The other half, written from a scoped thread.
    second: Option<ParquetSink>,
    /// The tables written (`kinds`), by `RecordKind as usize`.
    takes: [bool; 4],
}

/// Below this many records a batch is not worth a second thread (spawning one costs tens of µs;
/// a record costs a few µs to encode).
pub const PARALLEL_MIN: usize = 256;

impl ParquetRecords {
    /// The sink as a fan-out lane, split per its `encode_threads`, writing its `kinds`.
    pub fn new(sink: ParquetSink) -> Self {
        // `ParquetSink::new` validated the kinds.
        let takes = super::kind_mask(&sink.config().kinds).unwrap_or([true; 4]);
        let (main, second) = if sink.config().encode_threads >= 2 {
            let (main, second) = sink.split();
            (main, Some(second))
        } else {
            (sink, None)
        };
        Self {
            main,
            second,
            takes,
        }
    }

    /// The sink's counters (shared by both halves).
    pub fn metrics(&self) -> std::sync::Arc<super::parquet::ParquetMetrics> {
        self.main.metrics()
    }

    /// Runs `op` on each half, both whatever the first's outcome; the first error.
    fn on_both<T>(
        &mut self,
        mut op: impl FnMut(&mut ParquetSink) -> Result<T, ParquetSinkError>,
    ) -> Result<(), String> {
        let a = op(&mut self.main).map(|_| ());
        let b = self.second.as_mut().map_or(Ok(()), |h| op(h).map(|_| ()));
        a.and(b).map_err(|e| e.to_string())
    }
}

/// Runs `left` on a scoped thread with `a` while `right` runs here with `b`; both on this thread
/// when no thread can be had.
fn on_two_threads(
    a: &mut ParquetSink,
    b: &mut ParquetSink,
    left: impl Fn(&mut ParquetSink) -> Result<u64, String> + Send + Sync,
    right: impl Fn(&mut ParquetSink) -> Result<u64, String>,
) -> Result<u64, String> {
    let parallel = std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("parquet-encode".into())
            .spawn_scoped(s, || left(&mut *a))
            .ok()?;
        let r = right(&mut *b);
        let l = worker
            .join()
            .unwrap_or_else(|_| Err("a Parquet encoding thread panicked".into()));
        Some(l.and_then(|x| r.map(|y| x + y)))
    });
    match parallel {
        Some(r) => r,
        None => Ok(left(a)? + right(b)?),
    }
}

/// Writes `recs` of `kind` with `write` (nothing to write, no call); returns the rows rejected,
/// the first of them logged.
fn write_with<T>(
    sink: &mut ParquetSink,
    kind: RecordKind,
    recs: &[T],
    write: impl FnOnce(&mut ParquetSink, &[T]) -> Result<WriteReport, ParquetSinkError>,
) -> Result<u64, String> {
    if recs.is_empty() {
        return Ok(0);
    }
    let r = write(sink, recs).map_err(|e| e.to_string())?;
    log_rejected(kind, &r);
    Ok(r.rejected.len() as u64)
}

/// Writes one kind through its row form (tap records, sessions), borrowing the records.
fn write_kind<R: Record>(sink: &mut ParquetSink, recs: &[&R]) -> Result<u64, String> {
    write_with(sink, R::KIND, recs, ParquetSink::write_refs)
}

/// Writes super-flows through the direct Arrow path, borrowing the records.
fn write_supers(sink: &mut ParquetSink, recs: &[&SuperFlow]) -> Result<u64, String> {
    write_with(
        sink,
        RecordKind::SuperFlow,
        recs,
        ParquetSink::write_super_refs,
    )
}

/// Writes router flows through the direct Arrow path, borrowing the records.
fn write_flows(sink: &mut ParquetSink, flows: &[&FlowRecord]) -> Result<u64, String> {
    write_with(sink, RecordKind::Flow, flows, ParquetSink::write_flow_refs)
}

/// Writes every kind but router flows.
fn write_others(sink: &mut ParquetSink, g: &Grouped<'_>) -> Result<u64, String> {
    let mut rejected = write_kind(sink, &g.taps)?;
    rejected += write_supers(sink, &g.supers)?;
    rejected += write_kind(sink, &g.sessions)?;
    Ok(rejected)
}

fn log_rejected(kind: RecordKind, r: &WriteReport) {
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

    fn takes(&self, r: &AnyRecord) -> bool {
        self.takes[r.kind() as usize]
    }

    fn write(&mut self, batch: &[AnyRecord]) -> Result<u64, String> {
        let g = group(batch, &self.takes);
        let others = g.taps.len() + g.supers.len() + g.sessions.len();
        let main = &mut self.main;
        let Some(second) = self
            .second
            .as_mut()
            .filter(|_| g.flows.len() + others > PARALLEL_MIN)
        else {
            return Ok(write_flows(main, &g.flows)? + write_others(main, &g)?);
        };
        if !g.flows.is_empty() && others > 0 {
            // flow_records there, the rest here.
            on_two_threads(
                second,
                main,
                |s| write_flows(s, &g.flows),
                |m| write_others(m, &g),
            )
        } else if others == 0 {
            // Router flows only: half each.
            let (x, y) = g.flows.split_at(g.flows.len() / 2);
            on_two_threads(second, main, |s| write_flows(s, x), |m| write_flows(m, y))
        } else {
            // No router flows: half the super-flows there, the rest here.
            let (x, y) = g.supers.split_at(g.supers.len() / 2);
            on_two_threads(
                second,
                main,
                |s| write_supers(s, x),
                |m| Ok(write_kind(m, &g.taps)? + write_supers(m, y)? + write_kind(m, &g.sessions)?),
            )
        }
    }

    fn tick(&mut self) -> Result<(), String> {
        let now = SystemTime::now();
        self.on_both(|h| h.flush_expired(now))
    }

    /// Commits every open file: a row is durable (and visible) once its file is renamed.
    fn sync(&mut self, _timeout: Duration) -> Result<(), String> {
        self.on_both(ParquetSink::commit_open)
    }

    fn close(self: Box<Self>, _timeout: Duration) -> Result<(), String> {
        let Self { main, second, .. } = *self;
        // Both halves commit what they hold, whatever the other's outcome.
        let b = second.map(|f| f.close()).transpose();
        let a = main.close();
        let m = match (a, b) {
            (Ok(m), Ok(_)) => m,
            (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
        };
        tracing::info!(
            rows = m.rows_committed,
            files = m.files_committed,
            "Parquet sink closed"
        );
        Ok(())
    }
}

/// Topic and Avro encoder of one kind.
struct Lane {
    topic: String,
    avro: Option<AvroEncoder>,
}

/// The Kafka sink writing each kind to its topic, as JSON or Avro.
///
/// With `encode_threads = 2` (the default) a batch of more than [`PARALLEL_MIN`] records is
/// encoded in two halves, one on a scoped thread, before its messages are produced in batch
/// order from the lane's thread (encoding is most of the lane's work; librdkafka batches,
/// compresses and sends on threads of its own).
pub struct KafkaRecords {
    sink: KafkaSink,
    lanes: [Lane; 4],
    /// The kinds published (`kinds`), by `RecordKind as usize`.
    takes: [bool; 4],
    threads: usize,
}

/// Where one record's encoded message lies in its half's buffer, or why it has none.
type Encoded = Result<std::ops::Range<usize>, String>;

fn encode_with<R: Record + serde::Serialize>(
    lane: &Lane,
    r: &R,
    scratch: &mut Vec<u8>,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    match &lane.avro {
        // serde_json's bytes, written faster (`schemas::json`).
        None => schemas::json::write(buf, r).map_err(|e| e.to_string()),
        Some(enc) => {
            // The Avro writer starts its output afresh.
            enc.encode(r, scratch).map_err(|e| e.to_string())?;
            buf.extend_from_slice(scratch);
            Ok(())
        }
    }
}

/// Encodes `recs` one after the other into one buffer.
fn encode_all(lanes: &[Lane; 4], recs: &[&AnyRecord]) -> (Vec<u8>, Vec<Encoded>) {
    let mut buf = Vec::with_capacity(recs.len() * 1024);
    let mut scratch = Vec::new();
    let mut out = Vec::with_capacity(recs.len());
    for r in recs {
        let start = buf.len();
        let lane = &lanes[lane_index(r.kind())];
        let done = match r {
            AnyRecord::Flow(f) => encode_with(lane, f.as_ref(), &mut scratch, &mut buf),
            AnyRecord::Tap(t) => encode_with(lane, t.as_ref(), &mut scratch, &mut buf),
            AnyRecord::Super(s) => encode_with(lane, s.as_ref(), &mut scratch, &mut buf),
            AnyRecord::Session(s) => encode_with(lane, s.as_ref(), &mut scratch, &mut buf),
        };
        out.push(match done {
            Ok(()) => Ok(start..buf.len()),
            Err(e) => {
                buf.truncate(start);
                Err(e)
            }
        });
    }
    (buf, out)
}

/// A record's message key and id.
fn key_and_id(r: &AnyRecord) -> (&str, &str) {
    fn of<R: Record>(r: &R) -> (&str, &str) {
        (r.message_key().unwrap_or(""), r.record_id())
    }
    match r {
        AnyRecord::Flow(f) => of(f.as_ref()),
        AnyRecord::Tap(t) => of(t.as_ref()),
        AnyRecord::Super(s) => of(s.as_ref()),
        AnyRecord::Session(s) => of(s.as_ref()),
    }
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
    /// Writes the sink's `kinds` to their configured topics; with `format = "avro"`, registers
    /// each of those kinds' schema under `<topic>-value` first (an unreachable registry or a refused schema is an
    /// error).
    pub fn new(sink: KafkaSink) -> Result<Self, AvroError> {
        let t = &sink.config().topics;
        // `KafkaSink::new` validated the kinds.
        let takes = super::kind_mask(&sink.config().kinds).unwrap_or([true; 4]);
        let lane = |topic: &String, kind: RecordKind| -> Result<Lane, AvroError> {
            let avro = match sink.config().format {
                KafkaFormat::Json => None,
                // Kinds the sink does not publish register nothing.
                KafkaFormat::Avro if !takes[kind as usize] => None,
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
        let threads = sink.config().encode_threads;
        Ok(Self {
            sink,
            lanes,
            takes,
            threads,
        })
    }

    /// Produces the encoded messages of `recs` in order; returns the failures.
    fn send_encoded(
        &mut self,
        recs: &[&AnyRecord],
        (buf, encoded): (Vec<u8>, Vec<Encoded>),
        first_error: &mut Option<String>,
    ) -> u64 {
        let mut failed = 0;
        for (r, e) in recs.iter().zip(encoded) {
            let lane = &self.lanes[lane_index(r.kind())];
            let (key, id) = key_and_id(r);
            let sent = e.and_then(|range| {
                self.sink
                    .send(&lane.topic, key.as_bytes(), id, &buf[range])
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = sent {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
        failed
    }

    /// The Kafka sink's counters.
    pub fn metrics(&self) -> &std::sync::Arc<super::kafka::KafkaMetrics> {
        self.sink.metrics()
    }
}

impl BatchSink<AnyRecord> for KafkaRecords {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn ready(&self) -> bool {
        self.sink.ready()
    }

    fn takes(&self, r: &AnyRecord) -> bool {
        self.takes[r.kind() as usize]
    }

    fn write(&mut self, batch: &[AnyRecord]) -> Result<u64, String> {
        let mut failed = 0;
        let mut first_error = None;
        let takes = self.takes;
        let recs: Vec<&AnyRecord> = batch.iter().filter(|r| takes[r.kind() as usize]).collect();
        // Encoded first (in two halves on two threads when the batch is large), then produced
        // in batch order from this thread.
        let half = if self.threads >= 2 && recs.len() > PARALLEL_MIN {
            recs.len() / 2
        } else {
            0
        };
        let (x, y) = recs.split_at(half);
        let lanes = &self.lanes;
        let (ex, ey) = std::thread::scope(|s| {
            let worker = (!x.is_empty())
                .then(|| {
                    std::thread::Builder::new()
                        .name("kafka-encode".into())
                        .spawn_scoped(s, || encode_all(lanes, x))
                        .ok()
                })
                .flatten();
            let ey = encode_all(lanes, y);
            let ex = match worker {
                Some(h) => h.join().unwrap_or_else(|_| {
                    let e = Err("the encoding thread panicked".to_owned());
                    (Vec::new(), vec![e; x.len()])
                }),
                None => encode_all(lanes, x),
            };
            (ex, ey)
        });
        failed += self.send_encoded(x, ex, &mut first_error);
        failed += self.send_encoded(y, ey, &mut first_error);
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
