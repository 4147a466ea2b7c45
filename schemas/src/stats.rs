//! `FlowStats`: the Network QoS block.
//!
//! A superset of Netify's `flow_stats` fields, under Netify's names where Netify has the field, so
//! that Netify users find their columns. Two differences, both deliberate:
//! - Netify's `local_*`/`other_*` byte and packet counters are deltas since its previous update;
//!   here every counter is cumulative since the flow's first packet, like `total_*`, so that
//!   `local_bytes + other_bytes == total_bytes` holds in each record.
//! - Netify nests the TCP counters (`tcp.resets`, `tcp.retrans`, `tcp.seq_errors`); here they are
//!   flat (`tcp_resets`, `tcp_retrans`, `tcp_seq_errors`), one column each.
//!
//! "Local" is the client side of the flow (the side that opened it), "other" the server side.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Network QoS of a flow (or, in an application session, aggregated over its member flows).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FlowStats {
    /// The tap's digest of the flow (Netify: SHA-1 of the flow's identity, 40 hex digits; our tap:
    /// the canonical flow key hash, 16 hex digits). Empty when aggregated over several flows.
    pub digest: String,
    /// Bytes sent by the client (local) side, cumulative.
    pub local_bytes: u64,
    /// Bytes sent by the server (other) side, cumulative.
    pub other_bytes: u64,
    /// Packets sent by the client side, cumulative.
    pub local_packets: u64,
    /// Packets sent by the server side, cumulative.
    pub other_packets: u64,
    /// Rate sent by the client side over the last stats interval, bytes per second.
    pub local_rate: f64,
    /// Rate sent by the server side over the last stats interval, bytes per second.
    pub other_rate: f64,
    /// Bytes in both directions, cumulative (`local_bytes + other_bytes`).
    pub total_bytes: u64,
    /// Packets in both directions, cumulative (`local_packets + other_packets`).
    pub total_packets: u64,
    /// TCP segments with RST seen (Netify `tcp.resets`); 0 for other protocols.
    pub tcp_resets: u32,
    /// TCP retransmissions seen, both directions (Netify `tcp.retrans`).
    pub tcp_retrans: u32,
    /// TCP sequence anomalies seen: out-of-order or missing segments (Netify `tcp.seq_errors`).
    pub tcp_seq_errors: u32,
    /// Packets the tap inspected before it classified the flow (Netify `detection_packets`).
    pub detection_packets: u32,
    /// Average round-trip time, ms; `null` when not measurable. TCP: from the TCP timestamps
    /// option where both sides send it (passive ping's rule: a TSval's first packet to the first
    /// packet echoing it in TSecr), else from data/ACK timing (Wireshark's `ack_rtt` rule), else
    /// the handshake (SYN → SYN-ACK). Each TCP sample is the round trip from the tap to one
    /// endpoint and back, including that endpoint's delayed-ACK time; samples of both directions
    /// are pooled (for a tap beside the client, the server half dominates the average and the
    /// maximum, the client half the minimum). On the TLS/HTTP test captures, data/ACK medians
    /// are within 5 % of tshark's `ack_rtt` on every flow, and timestamp medians per half within
    /// 5 % of the same rule applied to tshark's decode of the option, on every half. QUIC: time
    /// between spin-bit flips seen from the client (end to end; absent when the endpoints do not
    /// spin).
    pub rtt_avg_ms: Option<f32>,
    /// Smallest round-trip time seen, ms (same samples as `rtt_avg_ms`).
    pub rtt_min_ms: Option<f32>,
    /// Largest round-trip time seen, ms (same samples as `rtt_avg_ms`).
    pub rtt_max_ms: Option<f32>,
    /// Inter-arrival jitter (RFC 3550 style smoothed variation), ms.
    pub jitter_ms: Option<f32>,
    /// Packet loss ratio, 0 to 1 (from TCP retransmissions, RTP sequence gaps or QUIC packet
    /// numbers).
    pub loss_ratio: Option<f32>,
}
