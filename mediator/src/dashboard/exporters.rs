//! Exporter health: the collector's per-exporter counters, sampled about once a second, turned
//! into activity, rates and a health word.
//!
//! The collector knows counters, not time; the dashboard lane samples them on its tick and
//! remembers when each exporter's message count last grew. Health:
//!
//! | health | when |
//! |---|---|
//! | `idle` | no message for `exporter_idle_secs` (default 60) |
//! | `warning` | decode errors, or records lost to sequence gaps, in the last [`HEALTH_WINDOW_SECS`] |
//! | `ok` | otherwise |
//!
//! An exporter that leaves the collector's list (an IPFIX/TCP session that closed) leaves the table.

use super::rates::RATE_WINDOW_SECS;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Seconds over which errors and losses make an exporter `warning`.
pub const HEALTH_WINDOW_SECS: i64 = 60;

/// One exporter's counters as the collector reports them (since start), supplied by the process
/// that embeds the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterCounters {
    /// Exporter address.
    pub address: IpAddr,
    /// `udp` or `tcp` (one IPFIX/TCP session).
    pub transport: String,
    /// The TCP session's peer port.
    pub port: Option<u16>,
    /// Export messages decoded.
    pub messages: u64,
    /// Flow records decoded.
    pub flow_records: u64,
    /// Decode errors.
    pub errors: u64,
    /// Sequence-number gaps, and the records they imply were lost.
    pub sequence_gaps: u64,
    pub lost_estimate: u64,
    /// Templates held (all domains).
    pub templates: u32,
    /// The exporter's sampling interval (1 in N) where one is in force.
    pub sampling_interval: Option<u32>,
    /// The last decode error.
    pub last_error: Option<String>,
}

type Key = (IpAddr, String, Option<u16>);

#[derive(Debug)]
struct Track {
    latest: ExporterCounters,
    /// Wall clock when its message count last grew (or when first seen with messages).
    last_active_ms: Option<i64>,
    /// (wall ms, flow records, errors, lost estimate), one per sample, the last minute.
    samples: VecDeque<(i64, u64, u64, u64)>,
}

/// One exporter as the summary shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExporterRow {
    pub address: IpAddr,
    pub transport: String,
    pub port: Option<u16>,
    /// `ok`, `warning` or `idle` (see the module documentation).
    pub health: &'static str,
    /// Why it is not `ok`.
    pub reasons: Vec<String>,
    /// Seconds since its last message; `null` before any.
    pub idle_secs: Option<u64>,
    /// Flow records per second over the last seconds.
    pub records_per_s: f64,
    pub messages: u64,
    pub flow_records: u64,
    pub errors: u64,
    pub sequence_gaps: u64,
    pub lost_estimate: u64,
    pub templates: u32,
    pub sampling_interval: Option<u32>,
    pub last_error: Option<String>,
}

/// The exporters seen in the collector's latest list.
#[derive(Debug)]
pub struct Exporters {
    map: HashMap<Key, Track>,
    idle_ms: i64,
}

impl Exporters {
    /// An exporter with no message for `idle_secs` is `idle`.
    pub fn new(idle_secs: u64) -> Self {
        Self {
            map: HashMap::new(),
            idle_ms: idle_secs.saturating_mul(1000).min(i64::MAX as u64) as i64,
        }
    }

    /// Takes the collector's current list (at wall-clock `now_ms`).
    pub fn observe(&mut self, now_ms: i64, list: Vec<ExporterCounters>) {
        let mut seen: Vec<Key> = Vec::with_capacity(list.len());
        for c in list {
            let key = (c.address, c.transport.clone(), c.port);
            seen.push(key.clone());
            match self.map.get_mut(&key) {
                Some(t) => {
                    if c.messages > t.latest.messages {
                        t.last_active_ms = Some(now_ms);
                    }
                    t.samples
                        .push_back((now_ms, c.flow_records, c.errors, c.lost_estimate));
                    while t
                        .samples
                        .front()
                        .is_some_and(|s| now_ms - s.0 > HEALTH_WINDOW_SECS * 1000)
                    {
                        t.samples.pop_front();
                    }
                    t.latest = c;
                }
                None => {
                    // New to the list, hence to the collector, whose counters started at zero
                    // with it: what it already counts happened since the previous sample.
                    let t = Track {
                        last_active_ms: (c.messages > 0).then_some(now_ms),
                        samples: VecDeque::from([
                            (now_ms - 1000, 0, 0, 0),
                            (now_ms, c.flow_records, c.errors, c.lost_estimate),
                        ]),
                        latest: c,
                    };
                    self.map.insert(key, t);
                }
            }
        }
        self.map.retain(|k, _| seen.contains(k));
    }

    /// Every exporter, by address, transport and port.
    pub fn view(&self, now_ms: i64) -> Vec<ExporterRow> {
        let mut rows: Vec<ExporterRow> = self
            .map
            .values()
            .map(|t| {
                let c = &t.latest;
                let idle_ms = t.last_active_ms.map(|a| now_ms.saturating_sub(a).max(0));
                // Rate: flow records over the samples of the last RATE_WINDOW_SECS.
                let recent = t
                    .samples
                    .iter()
                    .find(|s| now_ms - s.0 <= RATE_WINDOW_SECS as i64 * 1000);
                let records_per_s = match (recent, t.samples.back()) {
                    (Some(a), Some(b)) if b.0 > a.0 => {
                        (b.1.saturating_sub(a.1)) as f64 * 1000.0 / (b.0 - a.0) as f64
                    }
                    _ => 0.0,
                };
                let oldest = t.samples.front();
                let new_errors = oldest.map_or(0, |o| c.errors.saturating_sub(o.2));
                let new_lost = oldest.map_or(0, |o| c.lost_estimate.saturating_sub(o.3));
                let mut reasons = Vec::new();
                let idle = idle_ms.is_none_or(|i| i >= self.idle_ms);
                if idle {
                    reasons.push(match idle_ms {
                        Some(i) => format!("no message for {} s", i / 1000),
                        None => "no message yet".to_string(),
                    });
                }
                if new_errors > 0 {
                    reasons.push(format!(
                        "{new_errors} decode errors in the last {HEALTH_WINDOW_SECS} s"
                    ));
                }
                if new_lost > 0 {
                    reasons.push(format!(
                        "about {new_lost} records lost (sequence gaps) in the last {HEALTH_WINDOW_SECS} s"
                    ));
                }
                let health = if idle {
                    "idle"
                } else if new_errors > 0 || new_lost > 0 {
                    "warning"
                } else {
                    "ok"
                };
                ExporterRow {
                    address: c.address,
                    transport: c.transport.clone(),
                    port: c.port,
                    health,
                    reasons,
                    idle_secs: idle_ms.map(|i| (i / 1000) as u64),
                    records_per_s,
                    messages: c.messages,
                    flow_records: c.flow_records,
                    errors: c.errors,
                    sequence_gaps: c.sequence_gaps,
                    lost_estimate: c.lost_estimate,
                    templates: c.templates,
                    sampling_interval: c.sampling_interval,
                    last_error: c.last_error.clone(),
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            (a.address, &a.transport, a.port).cmp(&(b.address, &b.transport, b.port))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(messages: u64, flow_records: u64, errors: u64, lost: u64) -> ExporterCounters {
        ExporterCounters {
            address: "192.0.2.1".parse().expect("addr"),
            transport: "udp".into(),
            port: None,
            messages,
            flow_records,
            errors,
            sequence_gaps: u64::from(lost > 0),
            lost_estimate: lost,
            templates: 2,
            sampling_interval: None,
            last_error: None,
        }
    }

    #[test]
    fn health_follows_activity_errors_and_loss() {
        let mut e = Exporters::new(60);
        let t0 = 1_700_000_000_000;
        e.observe(t0, vec![c(10, 100, 0, 0)]);
        for s in 1..=10 {
            e.observe(
                t0 + s * 1000,
                vec![c(10 + s as u64, 100 + 50 * s as u64, 0, 0)],
            );
        }
        let r = &e.view(t0 + 10_000)[0];
        assert_eq!((r.health, r.idle_secs), ("ok", Some(0)));
        assert_eq!(r.records_per_s, 50.0);

        // Loss appears: warning, for a minute.
        e.observe(t0 + 11_000, vec![c(22, 700, 0, 30)]);
        let r = &e.view(t0 + 11_000)[0];
        assert_eq!(r.health, "warning", "{r:?}");
        assert!(r.reasons[0].contains("30 records lost"), "{r:?}");

        // Then silence: idle after 60 s without a message.
        for s in 12..=80 {
            e.observe(t0 + s * 1000, vec![c(22, 700, 0, 30)]);
        }
        let r = &e.view(t0 + 80_000)[0];
        assert_eq!(r.health, "idle", "{r:?}");
        assert_eq!(r.idle_secs, Some(69));
        assert_eq!(r.records_per_s, 0.0);

        // It leaves the list (a closed TCP session): it leaves the table.
        e.observe(t0 + 81_000, vec![]);
        assert!(e.view(t0 + 81_000).is_empty());
    }

    #[test]
    fn what_a_new_exporter_already_counts_is_recent() {
        let mut e = Exporters::new(60);
        e.observe(0, vec![c(5, 100, 2, 0)]);
        let r = &e.view(0)[0];
        assert_eq!(r.health, "warning", "{r:?}");
        assert_eq!(r.records_per_s, 100.0);
    }

    #[test]
    fn an_exporter_without_messages_is_idle() {
        let mut e = Exporters::new(60);
        e.observe(0, vec![c(0, 0, 0, 0)]);
        let r = &e.view(0)[0];
        assert_eq!((r.health, r.idle_secs), ("idle", None));
    }
}
