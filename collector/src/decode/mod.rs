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

pub mod sets;
pub mod stats;
pub mod templates;
pub mod v5;

use crate::config::DecoderConfig;
use schemas::FlowRecord;
use stats::{DecodeStats, ExporterStats};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
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
#[derive(Debug, Default)]
pub struct Decoder {
    pub config: DecoderConfig,
    pub exporters: HashMap<IpAddr, ExporterState>,
    pub totals: DecodeStats,
    /// Exporters with an IPFIX/TCP session: their templates live as long as the session
    /// (RFC 7011 §8), not for the UDP template lifetime.
    pub tcp_exporters: HashSet<IpAddr>,
}

impl Decoder {
    pub fn new(config: DecoderConfig) -> Self {
        Self {
            config,
            exporters: HashMap::new(),
            totals: DecodeStats::default(),
            tcp_exporters: HashSet::new(),
        }
    }

    /// Marks `exporter` as speaking IPFIX over TCP.
    pub fn note_tcp(&mut self, exporter: IpAddr) {
        if !self.tcp_exporters.contains(&exporter) {
            self.tcp_exporters.insert(exporter);
        }
    }

    /// An IPFIX/TCP session ended: its templates are gone with it (RFC 7011 §8.1).
    pub fn tcp_closed(&mut self, exporter: IpAddr) {
        self.tcp_exporters.remove(&exporter);
        if let Some(ex) = self.exporters.get_mut(&exporter) {
            for dom in ex.domains.values_mut() {
                let ids: Vec<_> = dom
                    .raw
                    .keys()
                    .filter(|(p, _)| *p == Proto::Ipfix)
                    .copied()
                    .collect();
                for (p, id) in ids {
                    dom.remove_template(p, id);
                }
            }
        }
    }

    /// Decodes one export message from `exporter`, received at `received_ms` (UTC ms; `None` when
    /// unknown, e.g. a raw payload file: the export time stands in). Records are appended to `out`,
    /// including records of earlier held data sets that this message's templates unlock.
    pub fn decode(
        &mut self,
        exporter: IpAddr,
        received_ms: Option<i64>,
        msg: &[u8],
        out: &mut Vec<FlowRecord>,
    ) -> Outcome {
        if !self.config.allows(exporter) {
            self.totals.dropped_not_allowed += 1;
            return Outcome::default();
        }
        if !self.exporters.contains_key(&exporter)
            && self.exporters.len() >= self.config.max_exporters
        {
            self.totals.dropped_exporter_cap += 1;
            return Outcome::default();
        }
        let Some(version) = msg.get(0..2).map(|v| u16::from_be_bytes([v[0], v[1]])) else {
            self.totals.errors += 1;
            self.totals.short_messages += 1;
            return Outcome::default();
        };
        let state = self.exporters.entry(exporter).or_default();
        let before = out.len();
        let mut stats = DecodeStats::default();
        let outcome = match version {
            5 => {
                sets::decode_v5(
                    &self.config,
                    exporter,
                    state,
                    received_ms,
                    msg,
                    out,
                    &mut stats,
                );
                Outcome::default()
            }
            9 => sets::decode_v9_ipfix(
                &self.config,
                Proto::V9,
                exporter,
                state,
                received_ms,
                msg,
                out,
                &mut stats,
            ),
            10 => sets::decode_v9_ipfix(
                &self.config,
                Proto::Ipfix,
                exporter,
                state,
                received_ms,
                msg,
                out,
                &mut stats,
            ),
            other => {
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
        self.totals.add(&stats);
        outcome
    }

    /// Expires held data sets older than the hold time (counted as undecoded) and templates not
    /// refreshed within their lifetime. Call it periodically with the current time.
    pub fn expire(&mut self, now_ms: i64) {
        let hold = self.config.hold_ms;
        let lifetime = self.config.template_lifetime_ms;
        for (ip, ex) in self.exporters.iter_mut() {
            let lifetime = if self.tcp_exporters.contains(ip) {
                0
            } else {
                lifetime
            };
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

    /// Ends a finite input (a file): whatever is still held will never be decoded.
    pub fn finish(&mut self) {
        for ex in self.exporters.values_mut() {
            let n: u64 = ex
                .domains
                .values_mut()
                .map(|d| d.held.drain(..).count() as u64)
                .sum();
            ex.stats.undecoded_sets += n;
            self.totals.undecoded_sets += n;
        }
    }
}

#[cfg(test)]
mod tests;
