//! Building the published records from a flow: [`schemas::TapRecord`] and the Netify-style
//! `flow_stats` line ([`FlowStatsEvent`]).

use crate::classify::platform::{client_agent, client_os};
use crate::classify::signatures::Signatures;
use crate::flow::{Entry, TwinKey};
use crate::pipeline::FlowUser;
use schemas::{AppPlatform, FlowStats, Qoe, RecordState, TapKey, TapRecord};
use serde::{Deserialize, Serialize};

/// One `flow_stats` line: Netify's periodic per-flow update, with the Network QoS block under
/// `flow` (field names as in [`schemas::FlowStats`]). Distinguished from tap records in a mixed
/// JSON-lines stream by `"type": "flow_stats"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowStatsEvent {
    /// Always `flow_stats`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Tap that wrote it.
    pub tap_id: String,
    /// Capture time of the update, UTC ms.
    pub timestamp_ms: i64,
    /// Canonical flow key hash (16 hex digits), as in the tap record.
    pub flow_key: String,
    /// The counters.
    pub flow: FlowStats,
}

/// The tap's key of a flow whose client sends in direction `client_dir`.
pub fn tap_key(k: &TwinKey, client_dir: u8) -> TapKey {
    let c = client_dir;
    let (ca, cp) = k.sender(c);
    let (sa, sp) = k.sender(c ^ 1);
    let mut key = TapKey {
        flow_key: String::new(),
        protocol: k.protocol,
        client_addr: ca,
        client_port: cp,
        server_addr: sa,
        server_port: sp,
        vlan: (k.scope != 0).then_some(k.scope as u16),
    };
    key.set_flow_key();
    key
}

/// The canonical key hash of a flow (what `flow_key` prints in hex).
pub fn flow_hash(k: &TwinKey) -> u64 {
    tap_key(k, 0).canonical().hash64()
}

fn key_of(k: &TwinKey, e: &Entry<FlowUser>) -> TapKey {
    tap_key(k, e.state.client_dir)
}

fn ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

/// The Network QoS block of a flow; rates are over the time since `stats_mark` (the last
/// `flow_stats`), or the flow's life before the first. RTT from the QoE estimators (TCP data/ACK
/// timing, QUIC spin bit), else the handshake; jitter and loss from the flow's RTP streams when it
/// carries media, else loss from TCP retransmissions.
pub fn stats_of(flow_key: &str, e: &Entry<FlowUser>, now_ns: u64) -> FlowStats {
    let s = &e.state;
    let c = usize::from(s.client_dir & 1);
    let o = c ^ 1;
    let (mark_bytes, mark_ns) = e.user.stats_mark;
    let from = if mark_ns == 0 {
        s.first_seen_ns()
    } else {
        mark_ns
    };
    let secs = now_ns.saturating_sub(from) as f64 / 1e9;
    let rate = |d: usize| {
        if secs > 0.0 {
            s.bytes[d].saturating_sub(mark_bytes[d]) as f64 / secs
        } else {
            0.0
        }
    };
    let packets = s.packets[0] + s.packets[1];
    let retrans = s.retrans[0].saturating_add(s.retrans[1]);
    let is_tcp = s.tcp_flags[0] | s.tcp_flags[1] != 0 || e.user.syn_ns.is_some();
    let hs = e.user.rtt_ns.map(|n| n as f32 / 1e6);
    let (rtt_min, rtt_avg, rtt_max) = match e.user.qoe.rtt().and_then(|r| r.min_avg_max_ms()) {
        Some((a, b, c)) => (Some(a), Some(b), Some(c)),
        None => (hs, hs, hs),
    };
    let media = e.user.qoe.media(
        e.user.dpi.rtp_packets > 0 || e.user.dpi.zoom_media(),
        e.user.class.app_type,
    );
    let loss = match media.and_then(|m| m.loss_ratio()) {
        Some(l) => Some(l),
        None => (is_tcp && packets > 0).then(|| retrans as f32 / packets as f32),
    };
    FlowStats {
        digest: flow_key.to_string(),
        local_bytes: s.bytes[c],
        other_bytes: s.bytes[o],
        local_packets: s.packets[c],
        other_packets: s.packets[o],
        local_rate: rate(c),
        other_rate: rate(o),
        total_bytes: s.bytes[0] + s.bytes[1],
        total_packets: packets,
        tcp_resets: s.resets[0].saturating_add(s.resets[1]),
        tcp_retrans: retrans,
        tcp_seq_errors: s.seq_errors[0].saturating_add(s.seq_errors[1]),
        detection_packets: e.user.detection_packets,
        rtt_avg_ms: rtt_avg,
        rtt_min_ms: rtt_min,
        rtt_max_ms: rtt_max,
        jitter_ms: media.and_then(|m| m.jitter_ms()),
        loss_ratio: loss,
    }
}

/// The `flow_stats` line of a flow at capture time `now_ns`.
pub fn flow_stats(tap_id: &str, k: &TwinKey, e: &Entry<FlowUser>, now_ns: u64) -> FlowStatsEvent {
    let key = key_of(k, e);
    FlowStatsEvent {
        kind: "flow_stats".into(),
        tap_id: tap_id.to_string(),
        timestamp_ms: ms(now_ns),
        flow: stats_of(&key.flow_key, e, now_ns),
        flow_key: key.flow_key,
    }
}

/// The final tap record of a flow (state `end`, sequence 0: the offline path reports each flow
/// once, when it ends).
pub fn tap_record(tap_id: &str, sigs: &Signatures, k: &TwinKey, e: &Entry<FlowUser>) -> TapRecord {
    let key = key_of(k, e);
    let u = &e.user;
    let cl = &u.class;
    let provider = cl.provider.and_then(|i| sigs.providers.get(i));
    let app = AppPlatform {
        app_type: cl.app_type,
        provider: provider.map(|p| p.id.clone()),
        app_name: provider.map(|p| p.app_name.clone().unwrap_or_else(|| p.name.clone())),
        client_os: client_os(&u.dpi),
        client_agent: client_agent(&u.dpi),
        sni: u.dpi.sni.clone(),
        dns_name: u.dns_name.clone().or_else(|| u.dpi.dns_qname.clone()),
        http_host: u.dpi.http_host.clone(),
        tls_fingerprint: u.dpi.ja4.clone(),
        alpn: u.dpi.alpn.clone(),
        detection_method: cl.method,
        confidence: cl.confidence,
        detection_packets: u.detection_packets,
    };
    let last = e.state.last_seen_ns();
    let mut r = TapRecord {
        schema_version: schemas::SCHEMA_VERSION,
        record_id: String::new(),
        tap_id: tap_id.to_string(),
        state: RecordState::End,
        seq: 0,
        first_seen_ms: ms(e.state.first_seen_ns()),
        last_seen_ms: ms(last),
        app,
        stats: stats_of(&key.flow_key, e, last),
        qoe: Qoe::default(),
        session_id: u.session.as_ref().map(|(_, id)| id.clone()),
        key,
    };
    r.set_record_id();
    r
}
