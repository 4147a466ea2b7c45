//! Decode stage: export message bytes → `FlowRecord`s, with per-exporter state.
//!
//! The contract is [`Decoder::decode`]: one export message (one UDP datagram, one IPFIX message off a
//! TCP stream or out of a file) from one exporter, in arrival order. The decoder is synchronous and
//! owns all exporter state; the ingest tasks feed it and the sinks take what it returns.
//!
//! - NetFlow v5 is decoded by [`v5`].
//! - NetFlow v9 and IPFIX are walked set by set here ([`sets`]), and each set is parsed by
//!   netgauze-flow-pkt against the template map of its (exporter, observation domain)
//!   ([`templates`]). Walking the sets ourselves is what lets a data set that arrives before its
//!   template be held and decoded later, and keeps one malformed set from costing the whole message.
//! - Field mapping into `FlowRecord` lives in `crate::normalize`.

pub mod fast;
pub mod sets;
pub mod stats;
pub mod templates;
pub mod v5;

use crate::config::DecoderConfig;
use schemas::FlowRecord;
use stats::{DecodeStats, ExporterStats};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use templates::{DomainState, Proto};

/// What a message header tells the decoding of its records.
#[derive(Debug, Clone, Copy)]
pub struct MessageCtx {
    pub proto: Proto,
    pub exporter: IpAddr,
    pub domain: u32,
    pub export_time_ms: i64,
    /// v9 only: the header's sysUptime.
    pub sys_uptime_ms: u32,
    pub sequence: u32,
    pub received_ms: i64,
}

/// One exporter's state: its domains and its counters.
#[derive(Debug, Default)]
pub struct ExporterState {
    pub domains: HashMap<u32, DomainState>,
    pub stats: ExporterStats,
    /// Highest v5 sampling interval seen in a header, for the API.
    pub v5_next_sequence: HashMap<u16, u32>,
}

impl ExporterState {
    pub fn template_count(&self) -> usize {
        self.domains.values().map(DomainState::template_count).sum()
    }
}

/// What one call to [`Decoder::decode`] changed besides emitting records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// A template or the sampling state changed: persist the state.
    pub state_changed: bool,
}

/// The decoder: every exporter's templates, sampling state and counters.
///
/// UDP exporters are keyed by address: a router's datagrams may come from any source port. An
/// IPFIX/TCP session is its own exporter state keyed by the connection (address and port): its
/// templates and sequence numbers belong to that session alone (RFC 7011 §8, §10.4), live as long as
/// it does, and are never persisted.
#[derive(Debug, Default)]
pub struct Decoder {
    pub config: DecoderConfig,
    pub exporters: HashMap<IpAddr, ExporterState>,
    pub totals: DecodeStats,
    /// Open IPFIX/TCP sessions.
    pub tcp_sessions: HashMap<SocketAddr, ExporterState>,
}

impl Decoder {
    pub fn new(config: DecoderConfig) -> Self {
        Self {
            config,
            exporters: HashMap::new(),
            totals: DecodeStats::default(),
            tcp_sessions: HashMap::new(),
        }
    }

    /// Decodes one export message from UDP exporter (or file source) `exporter`, received at
    /// `received_ms` (UTC ms; `None` when unknown, e.g. a raw payload file: the export time stands
    /// in). Records are appended to `out`, including records of earlier held data sets that this
    /// message's templates unlock.
    pub fn decode(
        &mut self,
        exporter: IpAddr,
        received_ms: Option<i64>,
        msg: &[u8],
        out: &mut Vec<FlowRecord>,
    ) -> Outcome {
        if !self.admit(exporter, self.exporters.contains_key(&exporter)) {
            return Outcome::default();
        }
        let state = self.exporters.entry(exporter).or_default();
        decode_message(
            &self.config,
            &mut self.totals,
            state,
            exporter,
            received_ms,
            msg,
            out,
        )
    }

    /// Decodes one IPFIX message read off the TCP session `peer`. Its templates are that
    /// session's own; they need no persistence (an exporter resends them on a new session).
    pub fn decode_tcp(
        &mut self,
        peer: SocketAddr,
        received_ms: Option<i64>,
        msg: &[u8],
        out: &mut Vec<FlowRecord>,
    ) {
        let ip = peer.ip();
        if !self.admit(ip, self.tcp_sessions.contains_key(&peer)) {
            return;
        }
        let state = self.tcp_sessions.entry(peer).or_default();
        decode_message(
            &self.config,
            &mut self.totals,
            state,
            ip,
            received_ms,
            msg,
            out,
        );
    }

    /// An IPFIX/TCP session ended: its templates are gone with it (RFC 7011 §8.1), and data
    /// still held for templates that never came is counted as undecoded.
    pub fn tcp_closed(&mut self, peer: SocketAddr) {
        if let Some(mut ex) = self.tcp_sessions.remove(&peer) {
            let n = drain_held(&mut ex);
            self.totals.undecoded_sets += n;
        }
    }

    /// Allow-list and exporter cap; counts what it refuses.
    fn admit(&mut self, ip: IpAddr, known: bool) -> bool {
        if !self.config.allows(ip) {
            self.totals.dropped_not_allowed += 1;
            return false;
        }
        if !known && self.exporters.len() + self.tcp_sessions.len() >= self.config.max_exporters {
            self.totals.dropped_exporter_cap += 1;
            return false;
        }
        true
    }

    /// Expires held data sets older than the hold time (counted as undecoded) and UDP templates
    /// not refreshed within their lifetime. Call it periodically with the current time.
    pub fn expire(&mut self, now_ms: i64) {
        let hold = self.config.hold_ms;
        let lifetime = self.config.template_lifetime_ms;
        let udp = self.exporters.values_mut().map(|ex| (ex, lifetime));
        // TCP session templates live as long as the session.
        let tcp = self.tcp_sessions.values_mut().map(|ex| (ex, 0));
        for (ex, lifetime) in udp.chain(tcp) {
            let mut expired_sets = 0u64;
            let mut expired_templates = 0u64;
            for dom in ex.domains.values_mut() {
                if hold > 0 {
                    let before = dom.held.len();
                    dom.held.retain(|h| now_ms - h.ctx.received_ms <= hold);
                    expired_sets += (before - dom.held.len()) as u64;
                }
                if lifetime > 0 {
                    let stale: Vec<(Proto, u16)> = dom
                        .raw
                        .iter()
                        .filter(|(_, t)| now_ms - t.refreshed_ms > lifetime)
                        .map(|(k, _)| *k)
                        .collect();
                    for (proto, id) in stale {
                        dom.remove_template(proto, id);
                        expired_templates += 1;
                    }
                }
            }
            ex.stats.undecoded_sets += expired_sets;
            ex.stats.templates_expired += expired_templates;
            self.totals.undecoded_sets += expired_sets;
            self.totals.templates_expired += expired_templates;
        }
    }

    /// Ends the input (a file, or the service shutting down): whatever is still held will never
    /// be decoded and is counted in `undecoded_sets`.
    pub fn finish(&mut self) {
        for ex in self
            .exporters
            .values_mut()
            .chain(self.tcp_sessions.values_mut())
        {
            self.totals.undecoded_sets += drain_held(ex);
        }
    }
}

/// Drops an exporter's held data sets, counting them in its stats; returns how many.
fn drain_held(ex: &mut ExporterState) -> u64 {
    let n: u64 = ex
        .domains
        .values_mut()
        .map(|d| d.held.drain(..).count() as u64)
        .sum();
    ex.stats.undecoded_sets += n;
    n
}

/// One message against one exporter's state.
fn decode_message(
    config: &DecoderConfig,
    totals: &mut DecodeStats,
    state: &mut ExporterState,
    exporter: IpAddr,
    received_ms: Option<i64>,
    msg: &[u8],
    out: &mut Vec<FlowRecord>,
) -> Outcome {
    let before = out.len();
    let mut stats = DecodeStats::default();
    let version = msg.get(0..2).map(|v| u16::from_be_bytes([v[0], v[1]]));
    let outcome = match version {
        None => {
            stats.errors += 1;
            stats.short_messages += 1;
            Outcome::default()
        }
        Some(5) => {
            sets::decode_v5(config, exporter, state, received_ms, msg, out, &mut stats);
            Outcome::default()
        }
        Some(v @ (9 | 10)) => {
            let proto = if v == 9 { Proto::V9 } else { Proto::Ipfix };
            sets::decode_v9_ipfix(
                config,
                proto,
                exporter,
                state,
                received_ms,
                msg,
                out,
                &mut stats,
            )
        }
        Some(other) => {
            stats.errors += 1;
            stats.unsupported_version += 1;
            state
                .stats
                .note_error(format!("unsupported export version {other}"));
            Outcome::default()
        }
    };
    debug_assert_eq!(stats.flow_records as usize, out.len() - before);
    state.stats.add(&stats);
    totals.add(&stats);
    outcome
}

#[cfg(test)]
mod tests;
