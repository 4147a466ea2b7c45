//! Outputs of the mediator ("sinks"). Each sink takes already-serialized records one at a time.

pub mod avro;
pub mod ipfix;
pub mod kafka;
pub mod parquet;
pub mod records;
pub mod spool;

use std::time::Duration;

/// Errors a sink reports to its caller.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink's configuration is invalid or asks for something not supported.
    #[error("{sink} sink configuration: {reason}")]
    Config {
        /// Which sink.
        sink: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The record was not accepted and was not kept anywhere (counted as failed by the sink).
    #[error("{sink} sink rejected record {record_id} for {topic}: {reason}")]
    Rejected {
        /// Which sink.
        sink: &'static str,
        /// Destination topic (or table).
        topic: String,
        /// The caller's record id.
        record_id: String,
        /// Why.
        reason: String,
    },
    /// The on-disk spool failed (the record may be lost).
    #[error("{sink} sink spool: {source}")]
    Spool {
        /// Which sink.
        sink: &'static str,
        /// The spool's error.
        #[source]
        source: spool::SpoolError,
    },
    /// `flush` ran out of time with records still undelivered (they stay queued or spooled).
    #[error(
        "{sink} sink flush timed out after {waited:?}: {in_flight} in flight, {spooled} spooled"
    )]
    FlushTimeout {
        /// Which sink.
        sink: &'static str,
        /// How long flush waited.
        waited: Duration,
        /// Records still handed to the client library without a delivery report.
        in_flight: u64,
        /// Records still in the spool.
        spooled: u64,
    },
}

/// A destination for serialized records.
///
/// The caller owns the sink from one thread (`&mut self`); a sink may run threads of its own.
/// `send` must not block for long: a sink that cannot deliver now keeps the record (memory queue,
/// spool) or returns an error, and `flush` is where the caller waits.
pub trait Sink: Send {
    /// Short name for logs and metrics ("kafka").
    fn name(&self) -> &str;

    /// True when the sink can deliver now (e.g. the broker is reachable). A sink that is not ready
    /// still accepts records when it can keep them.
    fn ready(&self) -> bool;

    /// Hands one record to the sink.
    ///
    /// - `topic`: destination (Kafka topic) for this record's kind.
    /// - `key`: partitioning key, the record's canonical flow-key hash as a string.
    /// - `record_id`: unique id of the record, carried along (Kafka header `record_id`) so that a
    ///   consumer can drop the duplicates an at-least-once delivery may produce.
    /// - `payload`: the serialized record (JSON by default).
    ///
    /// `Ok` means the sink has taken responsibility for the record (queued or spooled), not that
    /// it was delivered.
    fn send(
        &mut self,
        topic: &str,
        key: &[u8],
        record_id: &str,
        payload: &[u8],
    ) -> Result<(), SinkError>;

    /// Waits up to `timeout` until every record sent so far is delivered (for Kafka: also the
    /// spool replayed). Also does periodic housekeeping; call it now and then when idle.
    fn flush(&mut self, timeout: Duration) -> Result<(), SinkError>;
}

/// Every table name, the default of the Parquet and Kafka sinks' `kinds`.
pub fn all_kinds() -> Vec<String> {
    schemas::RecordKind::ALL
        .iter()
        .map(|k| k.table_name().to_owned())
        .collect()
}

/// The `kinds` key of a sink (table names: `flow_records`, `tap_records`, `super_flows`,
/// `app_sessions`) as a mask indexed by `RecordKind as usize`. An error names the value that is
/// not a table, or says the list is empty.
pub fn kind_mask(names: &[String]) -> Result<[bool; 4], String> {
    let mut mask = [false; 4];
    for n in names {
        match schemas::RecordKind::parse(n) {
            Some(k) => mask[k as usize] = true,
            None => {
                return Err(format!(
                    "kinds: {n:?} is not one of flow_records, tap_records, super_flows, \
                     app_sessions"
                ))
            }
        }
    }
    if !mask.contains(&true) {
        return Err("kinds: empty (leave the sink out of sinks.enabled instead)".into());
    }
    Ok(mask)
}
