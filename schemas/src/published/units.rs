//! Units of the numeric fields, by field name: the small table the field guide, the JSON Schema's
//! `x-unit` and the timestamp types of Avro and Arrow read.
//!
//! Every field whose name ends in `_ms` must be listed as a timestamp or a duration (the shape check
//! reports one that is not), so that a new time field cannot silently become the wrong type.

/// The unit of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// What the guide and `x-unit` show.
    pub label: &'static str,
    /// An absolute time in UTC milliseconds: Avro `timestamp-millis`, Arrow `Timestamp(ms, "+00:00")`.
    pub timestamp: bool,
}

/// Label of absolute times.
pub const UTC_MS: &str = "ms since Unix epoch (UTC)";

/// Absolute times, UTC milliseconds.
const TIMESTAMPS: &[&str] = &[
    "export_time_ms",
    "received_time_ms",
    "flow_start_ms",
    "flow_end_ms",
    "first_seen_ms",
    "last_seen_ms",
    "window_start_ms",
    "window_end_ms",
    "ts_ms",
    "start_ms",
    "last_ms",
];

/// Durations and time differences, milliseconds.
const DURATIONS_MS: &[&str] = &[
    "clock_skew_ms",
    "startup_delay_ms",
    "stall_ms",
    "rtt_avg_ms",
    "rtt_min_ms",
    "rtt_max_ms",
    "jitter_ms",
    "latency_avg_ms",
    "latency_min_ms",
    "latency_max_ms",
];

/// Other units, by exact field name.
const OTHER: &[(&str, &str)] = &[
    ("octets", "bytes"),
    ("octets_exported", "bytes"),
    ("local_bytes", "bytes"),
    ("other_bytes", "bytes"),
    ("total_bytes", "bytes"),
    ("router_octets", "bytes"),
    ("packets", "packets"),
    ("packets_exported", "packets"),
    ("local_packets", "packets"),
    ("other_packets", "packets"),
    ("total_packets", "packets"),
    ("router_packets", "packets"),
    ("detection_packets", "packets"),
    ("sampling_interval", "packets (1 in N)"),
    ("local_rate", "bytes/s"),
    ("other_rate", "bytes/s"),
    ("bitrate_kbps", "kbit/s"),
    ("height_px", "pixels"),
    ("frame_rate", "frames/s"),
    ("loss_ratio", "ratio 0..1"),
    ("confidence", "ratio 0..1"),
    ("mos", "MOS 1..5"),
    ("src_mask", "bits"),
    ("dst_mask", "bits"),
    ("tcp_resets", "count"),
    ("tcp_retrans", "count"),
    ("tcp_seq_errors", "count"),
    ("stalls", "count"),
    ("lag_spikes", "count"),
    ("stutter_events", "count"),
    ("dropouts", "count"),
    ("member_flows", "count"),
    ("matched_tap_records", "count"),
    ("router_flow_records", "count"),
];

/// The unit of the field `name`, if it has one.
pub fn unit_of(name: &str) -> Option<Unit> {
    if TIMESTAMPS.contains(&name) {
        return Some(Unit {
            label: UTC_MS,
            timestamp: true,
        });
    }
    if DURATIONS_MS.contains(&name) {
        return Some(Unit {
            label: "ms",
            timestamp: false,
        });
    }
    OTHER
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, label)| Unit {
            label,
            timestamp: false,
        })
}
