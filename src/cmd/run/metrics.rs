//! The Prometheus metrics of `run`: HELP texts, and the refresh that copies the live counters
//! (collector status, sink lanes, Kafka and Parquet sinks) into the API's recorder before each
//! scrape. Names follow the Prometheus conventions (`snf_` prefix, base units, `_total` on
//! counters) and pass `promtool check metrics` (an end-to-end test runs it).

use collector::status::Status;
use collector::DecodeStats;
use mediator::fanout::LaneMetrics;
use mediator::join::JoinMetrics;
use mediator::scaleout::metrics::ScaleoutSnapshot;
use mediator::scaleout::ScaleoutMetrics;
use mediator::sink::ipfix::IpfixMetrics;
use mediator::sink::kafka::KafkaMetrics;
use mediator::sink::parquet::ParquetMetrics;
use metrics::{counter, describe_counter, describe_gauge, gauge};
use std::sync::Arc;

/// Everything the metrics read (`run` has a collector and its mediation stage; `mediate` has
/// its consumer instead).
#[derive(Clone)]
pub struct Sources {
    pub status: Option<Arc<Status>>,
    pub lanes: Vec<(&'static str, Arc<LaneMetrics>)>,
    pub kafka: Option<Arc<KafkaMetrics>>,
    pub parquet: Option<Arc<ParquetMetrics>>,
    pub ipfix: Option<IpfixMetrics>,
    pub stage: Option<Arc<super::mediate::StageMetrics>>,
    pub scaleout: Option<Arc<ScaleoutMetrics>>,
}

/// A counter or gauge of `mediate`'s consumer: (metric, labels, field, help).
type ScaleoutValue = (
    &'static str,
    &'static [(&'static str, &'static str)],
    fn(&ScaleoutSnapshot) -> u64,
    &'static str,
);

/// `mediate`'s consumer counters (one HELP per name: the first of each name carries it).
const SCALEOUT_COUNTERS: &[ScaleoutValue] = &[
    (
        "snf_scaleout_consumed_records_total",
        &[("topic", "flows")],
        |s| s.flows_consumed,
        "Records consumed from a raw topic (flows: router flow records; tap: tap records).",
    ),
    (
        "snf_scaleout_consumed_records_total",
        &[("topic", "tap")],
        |s| s.taps_consumed,
        "",
    ),
    (
        "snf_scaleout_invalid_records_total",
        &[("topic", "flows")],
        |s| s.flows_invalid,
        "Messages of a raw topic that are not its record in JSON (skipped).",
    ),
    (
        "snf_scaleout_invalid_records_total",
        &[("topic", "tap")],
        |s| s.taps_invalid,
        "",
    ),
    (
        "snf_scaleout_rebalances_total",
        &[("event", "assign")],
        |s| s.assignments,
        "Partition assignments and revocations handled.",
    ),
    (
        "snf_scaleout_rebalances_total",
        &[("event", "revoke")],
        |s| s.revocations,
        "",
    ),
    (
        "snf_scaleout_revoke_flushed_total",
        &[],
        |s| s.revoke_flushed,
        "Router records emitted early because their partition was revoked.",
    ),
    (
        "snf_scaleout_commits_total",
        &[],
        |s| s.commits,
        "Offset commits that succeeded.",
    ),
    (
        "snf_scaleout_commit_errors_total",
        &[],
        |s| s.commit_errors,
        "Offset commits the broker refused.",
    ),
    (
        "snf_scaleout_commits_skipped_total",
        &[],
        |s| s.commits_skipped,
        "Commits skipped because the sinks could not confirm the outputs durable in time.",
    ),
    (
        "snf_scaleout_consumer_errors_total",
        &[],
        |s| s.consumer_errors,
        "Errors the Kafka consumer reported.",
    ),
];

/// `mediate`'s consumer gauges.
const SCALEOUT_GAUGES: &[ScaleoutValue] = &[
    (
        "snf_scaleout_assigned_partitions",
        &[],
        |s| s.assigned_partitions,
        "Partitions of each raw topic assigned to this mediator.",
    ),
    (
        "snf_scaleout_topic_partitions",
        &[],
        |s| s.topic_partitions,
        "Partition count of the raw topics.",
    ),
];

/// A counter or gauge read from the join's metrics: (metric, field, help).
type JoinValue = (&'static str, fn(&JoinMetrics) -> u64, &'static str);

/// The join's counters.
const JOIN_COUNTERS: &[JoinValue] = &[
    (
        "snf_join_router_records_total",
        |j| j.router_records,
        "Router flow records taken by the join.",
    ),
    (
        "snf_join_tap_records_total",
        |j| j.tap_records,
        "Tap records taken by the join.",
    ),
    (
        "snf_join_router_no_key_total",
        |j| j.router_no_key,
        "Router records without a usable flow key, emitted unmatched at once.",
    ),
    (
        "snf_join_matched_total",
        |j| j.emitted_matched,
        "Super-flows emitted matched.",
    ),
    (
        "snf_join_partial_total",
        |j| j.emitted_partial,
        "Super-flows emitted partial.",
    ),
    (
        "snf_join_unmatched_total",
        |j| j.emitted_unmatched,
        "Super-flows emitted unmatched.",
    ),
    (
        "snf_join_grace_expired_total",
        |j| j.router_grace_expired,
        "Router records emitted when their grace ran out.",
    ),
    (
        "snf_join_no_tap_total",
        |j| j.router_no_tap,
        "Router records emitted unmatched on arrival because no tap record had arrived for max(grace_ms, tap_ttl_ms).",
    ),
    (
        "snf_join_cap_emitted_total",
        |j| j.router_cap_emitted,
        "Router records emitted early because max_pending_routers was reached.",
    ),
    (
        "snf_join_entries_evicted_total",
        |j| j.entries_evicted,
        "Keys evicted because max_entries was reached.",
    ),
    (
        "snf_join_router_flushed_total",
        |j| j.router_flushed,
        "Router records emitted by a flush (shutdown or revocation).",
    ),
    (
        "snf_join_tap_expired_total",
        |j| j.tap_expired,
        "Tap summaries forgotten after tap_ttl_ms without a report.",
    ),
    (
        "snf_join_tap_never_joined_total",
        |j| j.tap_never_joined,
        "Tap summaries forgotten without any router record joined.",
    ),
    (
        "snf_join_tap_late_total",
        |j| j.tap_late,
        "Tap records that arrived after the grace of the router records they would have completed.",
    ),
];

/// The join's gauges.
const JOIN_GAUGES: &[JoinValue] = &[
    ("snf_join_entries", |j| j.entries, "Keys held by the join."),
    (
        "snf_join_tap_flows",
        |j| j.tap_flows,
        "Tap flow summaries held.",
    ),
    (
        "snf_join_pending_router_records",
        |j| j.pending_routers,
        "Router records waiting for the tap side.",
    ),
    (
        "snf_join_state_bytes",
        |j| j.state_bytes,
        "Bytes of join state (computed from capacities).",
    ),
];

/// A counter read from the decode stats: (metric, field, help).
type StatCounter = (&'static str, fn(&DecodeStats) -> u64, &'static str);

/// Per-exporter counters.
const EXPORTER_COUNTERS: &[StatCounter] = &[
    (
        "snf_collector_messages_total",
        |s| s.messages,
        "Export messages received from the exporter.",
    ),
    (
        "snf_collector_flow_records_total",
        |s| s.flow_records,
        "Flow records decoded.",
    ),
    (
        "snf_collector_options_records_total",
        |s| s.options_records,
        "Options data records decoded.",
    ),
    (
        "snf_collector_template_records_total",
        |s| s.templates + s.options_templates,
        "Template and options template records received.",
    ),
    (
        "snf_collector_decode_errors_total",
        |s| s.errors,
        "Decode errors (malformed header, set, template or record).",
    ),
    (
        "snf_collector_undecoded_sets_total",
        |s| s.undecoded_sets,
        "Data sets whose template never arrived.",
    ),
    (
        "snf_collector_sequence_gaps_total",
        |s| s.sequence_gaps,
        "Sequence-number gaps seen.",
    ),
    (
        "snf_collector_lost_records_estimated_total",
        |s| s.lost_estimate,
        "Records (v5, IPFIX) or messages (v9) the sequence gaps imply were lost.",
    ),
];

/// Collector-wide counters from the totals.
const TOTAL_COUNTERS: &[StatCounter] = &[
    (
        "snf_collector_templates_expired_total",
        |s| s.templates_expired,
        "Templates dropped for not being refreshed within their lifetime.",
    ),
    (
        "snf_collector_templates_rejected_total",
        |s| s.templates_rejected_cap,
        "Templates refused because the exporter reached its template cap.",
    ),
    (
        "snf_collector_held_sets_overflow_total",
        |s| s.held_sets_overflow,
        "Held data sets dropped because the hold queue was full.",
    ),
    (
        "snf_collector_messages_not_allowed_total",
        |s| s.dropped_not_allowed,
        "Messages dropped from exporters outside the allow-list.",
    ),
    (
        "snf_collector_messages_exporter_cap_total",
        |s| s.dropped_exporter_cap,
        "Messages dropped from new exporters past the exporter cap.",
    ),
    (
        "snf_collector_clock_skew_records_total",
        |s| s.clock_skew_records,
        "Records whose times were shifted for exporter clock skew.",
    ),
];

/// Registers the HELP texts (once, against the API's recorder).
pub fn describe() {
    for (name, _, help) in EXPORTER_COUNTERS.iter().chain(TOTAL_COUNTERS) {
        describe_counter!(*name, *help);
    }
    describe_gauge!(
        "snf_collector_exporters",
        "Exporters (UDP addresses and open IPFIX/TCP sessions) known to the decoder."
    );
    describe_gauge!(
        "snf_collector_templates",
        "Templates the exporter has announced and that are in force."
    );
    describe_counter!(
        "snf_collector_state_saves_total",
        "Saves of the template state file."
    );
    describe_counter!(
        "snf_collector_state_save_errors_total",
        "Failed saves of the template state file."
    );
    describe_counter!("snf_ingest_udp_datagrams_total", "UDP datagrams received.");
    describe_counter!("snf_ingest_udp_bytes_total", "UDP payload bytes received.");
    describe_counter!(
        "snf_ingest_queue_full_drops_total",
        "Received messages dropped because the decode queue was full."
    );
    describe_counter!(
        "snf_ingest_kernel_drops_total",
        "Datagrams the kernel dropped on the UDP sockets (socket buffer full)."
    );
    describe_counter!(
        "snf_ingest_tcp_connections_total",
        "IPFIX/TCP connections accepted."
    );
    describe_gauge!(
        "snf_ingest_tcp_connections_open",
        "IPFIX/TCP connections open now."
    );
    describe_counter!(
        "snf_ingest_tcp_connections_rejected_total",
        "IPFIX/TCP connections refused at the connection cap."
    );
    describe_counter!(
        "snf_ingest_tcp_messages_total",
        "IPFIX messages read from TCP sessions."
    );
    describe_counter!(
        "snf_ingest_tcp_framing_errors_total",
        "TCP sessions closed for a framing error."
    );
    describe_gauge!(
        "snf_sink_queued_batches",
        "Batches waiting in the sink's queue."
    );
    describe_gauge!(
        "snf_sink_queue_capacity_batches",
        "Capacity of the sink's queue, in batches."
    );
    describe_counter!(
        "snf_sink_records_in_total",
        "Records handed to the sink's queue."
    );
    describe_counter!(
        "snf_sink_records_written_total",
        "Records the sink accepted."
    );
    describe_counter!(
        "snf_sink_records_failed_total",
        "Records the sink refused (not kept anywhere)."
    );
    describe_counter!(
        "snf_sink_records_skipped_total",
        "Records of kinds the sink is configured not to take (its kinds key)."
    );
    describe_counter!(
        "snf_sink_blocked_sends_total",
        "Batches that found the sink's queue full, so that the decode loop waited."
    );
    describe_gauge!(
        "snf_sink_blocked_seconds",
        "Cumulative time the decode loop waited for room in the sink's queue."
    );
    describe_counter!(
        "snf_sink_errors_total",
        "Failed writes and housekeeping calls of the sink."
    );
    describe_gauge!("snf_sink_ready", "1 when the sink can deliver now.");
    describe_counter!(
        "snf_kafka_records_queued_total",
        "Records accepted by the Kafka sink."
    );
    describe_counter!(
        "snf_kafka_value_bytes_total",
        "Payload (message value) bytes of the records accepted by the Kafka sink."
    );
    describe_counter!(
        "snf_kafka_key_bytes_total",
        "Key bytes of the records accepted by the Kafka sink (headers not counted)."
    );
    describe_gauge!(
        "snf_kafka_in_flight_messages",
        "Messages handed to librdkafka without a delivery report yet."
    );
    describe_counter!(
        "snf_kafka_delivered_total",
        "Messages whose delivery the broker confirmed (direct and replayed)."
    );
    describe_counter!(
        "snf_kafka_failed_total",
        "Records given up for good (non-retriable errors)."
    );
    describe_counter!(
        "snf_kafka_spooled_total",
        "Records written to the on-disk spool."
    );
    describe_gauge!(
        "snf_kafka_spool_bytes",
        "Bytes in the spool not yet delivered."
    );
    describe_counter!(
        "snf_kafka_spool_replayed_total",
        "Spooled records whose delivery was confirmed."
    );
    describe_counter!(
        "snf_kafka_spool_dropped_total",
        "Spooled records dropped because the spool reached its bound."
    );
    describe_counter!(
        "snf_kafka_spool_corrupt_total",
        "Spool entries found corrupt and skipped."
    );
    describe_gauge!(
        "snf_kafka_broker_up",
        "1 when the last sign from the broker was good."
    );
    describe_counter!(
        "snf_parquet_rows_written_total",
        "Rows handed to open Parquet files."
    );
    describe_counter!(
        "snf_parquet_rows_committed_total",
        "Rows in committed (visible) Parquet files."
    );
    describe_counter!(
        "snf_parquet_rows_rejected_total",
        "Rows skipped (no partition time, wrong type)."
    );
    describe_counter!(
        "snf_parquet_rows_lost_total",
        "Rows in files abandoned after a write error."
    );
    describe_counter!(
        "snf_parquet_files_committed_total",
        "Parquet files renamed to their final name."
    );
    describe_counter!(
        "snf_parquet_committed_bytes_total",
        "Bytes of the committed Parquet files."
    );
    describe_counter!(
        "snf_parquet_tmp_files_discarded_total",
        "Leftover temporary files of an earlier run deleted at start-up."
    );
    describe_counter!(
        "snf_parquet_write_errors_total",
        "Failed Parquet file operations."
    );
    describe_gauge!("snf_parquet_open_files", "Parquet files open now.");
    for (name, _, help) in JOIN_COUNTERS {
        describe_counter!(*name, *help);
    }
    for (name, _, help) in JOIN_GAUGES {
        describe_gauge!(*name, *help);
    }
    describe_counter!(
        "snf_ipfix_records_sent_total",
        "Data records the IPFIX sink sent to the collector."
    );
    describe_counter!(
        "snf_ipfix_records_failed_total",
        "Records the IPFIX sink could not send to the collector (not encodable, or the collector unreachable)."
    );
    describe_counter!(
        "snf_ipfix_messages_sent_total",
        "IPFIX messages sent to the collector."
    );
    describe_counter!(
        "snf_ipfix_sent_bytes_total",
        "Bytes of IPFIX messages sent to the collector."
    );
    describe_counter!(
        "snf_ipfix_templates_sent_total",
        "Template records sent to the collector (first use and refreshes)."
    );
    describe_counter!(
        "snf_ipfix_send_errors_total",
        "Failed sends and connection attempts to the collector."
    );
    describe_counter!(
        "snf_ipfix_reconnects_total",
        "Connections to the collector re-opened after a failure (TCP)."
    );
    describe_gauge!(
        "snf_ipfix_connected_exporters",
        "Exporters (one per record kind) with an open socket to the collector."
    );
    describe_counter!(
        "snf_mediate_tap_records_total",
        "Tap records received as IPFIX and decoded."
    );
    describe_counter!(
        "snf_mediate_tap_invalid_total",
        "Records with Super-NetFlow's IPFIX elements (tap marker or record kind) that did not decode (not published)."
    );
    describe_counter!(
        "snf_mediate_relayed_records_total",
        "Super-flows received as IPFIX (another run's IPFIX sink) and published as they came."
    );
    describe_counter!(
        "snf_mediate_sessions_total",
        "Application session reports received as IPFIX (from taps), published with their router QoS."
    );
    describe_counter!(
        "snf_mediate_sessions_early_total",
        "Session reports published before the join's grace ran out because too many were held."
    );
    describe_counter!(
        "snf_mediate_blocked_sends_total",
        "Batches the decode loop waited to hand to the mediation stage."
    );
    describe_gauge!(
        "snf_mediate_blocked_seconds",
        "Cumulative time the decode loop waited for the mediation stage."
    );
    for (name, _, _, help) in SCALEOUT_COUNTERS {
        if !help.is_empty() {
            describe_counter!(*name, *help);
        }
    }
    for (name, _, _, help) in SCALEOUT_GAUGES {
        describe_gauge!(*name, *help);
    }
    describe_gauge!(
        "snf_build_info",
        "Always 1; the labels say which build runs."
    );
}

/// Copies every live value into the recorder in force.
pub fn refresh(s: &Sources) {
    gauge!("snf_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    if let Some(status) = &s.status {
        let snap = status.snapshot();
        gauge!("snf_collector_exporters").set(snap.exporters.len() as f64);
        for e in &snap.exporters {
            let exporter = match e.port {
                Some(p) => format!("{}:{p}", e.address),
                None => e.address.to_string(),
            };
            for (name, f, _) in EXPORTER_COUNTERS {
                counter!(*name, "exporter" => exporter.clone(), "transport" => e.transport)
                    .absolute(f(&e.stats));
            }
            gauge!("snf_collector_templates", "exporter" => exporter.clone(), "transport" => e.transport)
                .set(e.templates.len() as f64);
        }
        for (name, f, _) in TOTAL_COUNTERS {
            counter!(*name).absolute(f(&snap.totals));
        }
        counter!("snf_collector_state_saves_total").absolute(snap.state_saves);
        counter!("snf_collector_state_save_errors_total").absolute(snap.state_save_errors);
        let i = status.ingest.snapshot();
        counter!("snf_ingest_udp_datagrams_total").absolute(i.udp_datagrams);
        counter!("snf_ingest_udp_bytes_total").absolute(i.udp_bytes);
        counter!("snf_ingest_queue_full_drops_total").absolute(i.queue_full_drops);
        counter!("snf_ingest_kernel_drops_total").absolute(i.kernel_drops);
        counter!("snf_ingest_tcp_connections_total").absolute(i.tcp_connections_total);
        gauge!("snf_ingest_tcp_connections_open").set(i.tcp_connections_open as f64);
        counter!("snf_ingest_tcp_connections_rejected_total").absolute(i.tcp_connections_rejected);
        counter!("snf_ingest_tcp_messages_total").absolute(i.tcp_messages);
        counter!("snf_ingest_tcp_framing_errors_total").absolute(i.tcp_framing_errors);
    }
    for (sink, m) in &s.lanes {
        let l = m.snapshot();
        let sink = *sink;
        gauge!("snf_sink_queued_batches", "sink" => sink).set(l.queued_batches as f64);
        gauge!("snf_sink_queue_capacity_batches", "sink" => sink).set(l.queue_capacity as f64);
        counter!("snf_sink_records_in_total", "sink" => sink).absolute(l.records_in);
        counter!("snf_sink_records_written_total", "sink" => sink).absolute(l.records_written);
        counter!("snf_sink_records_failed_total", "sink" => sink).absolute(l.records_failed);
        counter!("snf_sink_records_skipped_total", "sink" => sink).absolute(l.records_skipped);
        counter!("snf_sink_blocked_sends_total", "sink" => sink).absolute(l.blocked_sends);
        gauge!("snf_sink_blocked_seconds", "sink" => sink).set(l.blocked_seconds);
        counter!("snf_sink_errors_total", "sink" => sink).absolute(l.errors);
        gauge!("snf_sink_ready", "sink" => sink).set(if l.ready { 1.0 } else { 0.0 });
    }
    if let Some(k) = &s.kafka {
        let k = k.snapshot();
        counter!("snf_kafka_records_queued_total").absolute(k.queued);
        counter!("snf_kafka_value_bytes_total").absolute(k.value_bytes);
        counter!("snf_kafka_key_bytes_total").absolute(k.key_bytes);
        gauge!("snf_kafka_in_flight_messages").set(k.in_flight as f64);
        counter!("snf_kafka_delivered_total").absolute(k.delivered);
        counter!("snf_kafka_failed_total").absolute(k.failed);
        counter!("snf_kafka_spooled_total").absolute(k.spooled);
        gauge!("snf_kafka_spool_bytes").set(k.spool_bytes as f64);
        counter!("snf_kafka_spool_replayed_total").absolute(k.spool_replayed);
        counter!("snf_kafka_spool_dropped_total").absolute(k.spool_dropped);
        counter!("snf_kafka_spool_corrupt_total").absolute(k.spool_corrupt);
        gauge!("snf_kafka_broker_up").set(k.broker_up as f64);
    }
    for c in s.ipfix.iter().flat_map(|m| m.iter()) {
        let c = c.snapshot();
        counter!("snf_ipfix_records_sent_total", "collector" => c.collector.clone())
            .absolute(c.records_sent);
        counter!("snf_ipfix_records_failed_total", "collector" => c.collector.clone())
            .absolute(c.records_failed);
        counter!("snf_ipfix_messages_sent_total", "collector" => c.collector.clone())
            .absolute(c.messages_sent);
        counter!("snf_ipfix_sent_bytes_total", "collector" => c.collector.clone())
            .absolute(c.bytes_sent);
        counter!("snf_ipfix_templates_sent_total", "collector" => c.collector.clone())
            .absolute(c.templates_sent);
        counter!("snf_ipfix_send_errors_total", "collector" => c.collector.clone())
            .absolute(c.send_errors);
        counter!("snf_ipfix_reconnects_total", "collector" => c.collector.clone())
            .absolute(c.reconnects);
        gauge!("snf_ipfix_connected_exporters", "collector" => c.collector.clone())
            .set(c.connected as f64);
    }
    let j = match (&s.stage, &s.scaleout) {
        (Some(st), _) => Some(st.join()),
        (None, Some(so)) => Some(so.join()),
        (None, None) => None,
    };
    if let Some(j) = j {
        for (name, f, _) in JOIN_COUNTERS {
            counter!(*name).absolute(f(&j));
        }
        for (name, f, _) in JOIN_GAUGES {
            gauge!(*name).set(f(&j) as f64);
        }
    }
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(st) = &s.stage {
        counter!("snf_mediate_tap_records_total").absolute(st.tap_records.load(Relaxed));
        counter!("snf_mediate_tap_invalid_total").absolute(st.tap_invalid.load(Relaxed));
        counter!("snf_mediate_relayed_records_total").absolute(st.relayed.load(Relaxed));
        counter!("snf_mediate_sessions_total").absolute(st.tap_sessions.load(Relaxed));
        counter!("snf_mediate_sessions_early_total").absolute(st.sessions_early.load(Relaxed));
        counter!("snf_mediate_blocked_sends_total").absolute(st.blocked_sends.load(Relaxed));
        gauge!("snf_mediate_blocked_seconds").set(st.blocked_ns.load(Relaxed) as f64 / 1e9);
    }
    if let Some(so) = &s.scaleout {
        let snap = so.snapshot();
        let labels = |l: &[(&'static str, &'static str)]| -> Vec<metrics::Label> {
            l.iter().map(|(k, v)| metrics::Label::new(*k, *v)).collect()
        };
        for (name, l, f, _) in SCALEOUT_COUNTERS {
            counter!(*name, labels(l)).absolute(f(&snap));
        }
        for (name, l, f, _) in SCALEOUT_GAUGES {
            gauge!(*name, labels(l)).set(f(&snap) as f64);
        }
    }
    if let Some(p) = &s.parquet {
        let p = p.snapshot();
        counter!("snf_parquet_rows_written_total").absolute(p.rows_written);
        counter!("snf_parquet_rows_committed_total").absolute(p.rows_committed);
        counter!("snf_parquet_rows_rejected_total").absolute(p.rows_rejected);
        counter!("snf_parquet_rows_lost_total").absolute(p.rows_lost);
        counter!("snf_parquet_files_committed_total").absolute(p.files_committed);
        counter!("snf_parquet_committed_bytes_total").absolute(p.bytes_committed);
        counter!("snf_parquet_tmp_files_discarded_total").absolute(p.tmp_files_discarded);
        counter!("snf_parquet_write_errors_total").absolute(p.write_errors);
        gauge!("snf_parquet_open_files").set(p.open_files as f64);
    }
}
