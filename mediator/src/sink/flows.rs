//! The sinks as lanes of the fan-out ([`crate::fanout`]) for router `FlowRecord`s.
//!
//! - [`ParquetFlows`]: the `flow_records` table; rows go straight from the records to Arrow.
//! - [`KafkaFlows`]: one message per record on the `flow_records` topic, keyed by the canonical
//!   flow-key hash, with the record id in the `record_id` header. JSON (default) is exactly what
//!   `supernetflow decode` prints for the record; Avro is the Confluent wire format
//!   ([`super::avro`]).

use super::avro::{AvroEncoder, AvroError};
use super::kafka::{KafkaFormat, KafkaSink};
use super::parquet::ParquetSink;
use super::Sink;
use crate::fanout::BatchSink;
use schemas::FlowRecord;
use std::time::{Duration, SystemTime};

/// The Parquet sink writing `flow_records`.
pub struct ParquetFlows(pub ParquetSink);

impl BatchSink<FlowRecord> for ParquetFlows {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn ready(&self) -> bool {
        true
    }

    fn write(&mut self, batch: &[FlowRecord]) -> Result<u64, String> {
        let r = self.0.write_flows(batch).map_err(|e| e.to_string())?;
        for x in r.rejected.iter().take(1) {
            tracing::warn!(record_id = ?x.record_id, reason = %x.reason, rejected = r.rejected.len(), "Parquet sink refused records");
        }
        Ok(r.rejected.len() as u64)
    }

    fn tick(&mut self) -> Result<(), String> {
        self.0
            .flush_expired(SystemTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
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

/// The Kafka sink writing `flow_records` as JSON or Avro.
pub struct KafkaFlows {
    sink: KafkaSink,
    topic: String,
    avro: Option<AvroEncoder>,
    buf: Vec<u8>,
}

impl KafkaFlows {
    /// Writes to the sink's configured `flow_records` topic; with `format = "avro"`, registers
    /// the schema first (an unreachable registry or a refused schema is an error).
    pub fn new(sink: KafkaSink) -> Result<Self, AvroError> {
        let topic = sink.config().topics.flow_records.clone();
        let avro = match sink.config().format {
            KafkaFormat::Json => None,
            KafkaFormat::Avro => Some(AvroEncoder::register(
                &sink.config().schema_registry_url,
                &topic,
                schemas::RecordKind::Flow,
                Duration::from_secs(10),
            )?),
        };
        Ok(Self {
            sink,
            topic,
            avro,
            buf: Vec::with_capacity(2048),
        })
    }
}

impl BatchSink<FlowRecord> for KafkaFlows {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn ready(&self) -> bool {
        self.sink.ready()
    }

    fn write(&mut self, batch: &[FlowRecord]) -> Result<u64, String> {
        let mut failed = 0;
        let mut first_error = None;
        for r in batch {
            self.buf.clear();
            let encoded = match &self.avro {
                None => serde_json::to_writer(&mut self.buf, r).map_err(|e| e.to_string()),
                Some(enc) => enc.encode(r, &mut self.buf).map_err(|e| e.to_string()),
            };
            if let Err(e) = encoded {
                failed += 1;
                first_error.get_or_insert(e);
                continue;
            }
            let key = r.flow_key.as_deref().unwrap_or("").as_bytes();
            if let Err(e) = self.sink.send(&self.topic, key, &r.record_id, &self.buf) {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
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
