//! A periodically refreshed, shareable view of the running collector: what the HTTP API's
//! `/api/v1/exporters` and `/metrics` show.
//!
//! The decode loop owns the decoder and never shares it; once a second (and at exit) it copies the
//! counters and template lists into a [`StatusSnapshot`] behind an `Arc`, which readers clone
//! cheaply. Ingest counters are atomics and are read live.

use crate::decode::stats::DecodeStats;
use crate::decode::templates::Proto;
use crate::decode::{Decoder, ExporterState};
use crate::ingest::IngestMetrics;
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// Shared between the decode loop (writer) and any number of readers.
#[derive(Debug, Default)]
pub struct Status {
    /// Receive-side counters (live).
    pub ingest: Arc<IngestMetrics>,
    snapshot: Mutex<Arc<StatusSnapshot>>,
}

/// The decoder's counters and exporters at one moment.
#[derive(Debug, Default, Clone, Serialize)]
pub struct StatusSnapshot {
    /// When this snapshot was taken, UTC ms (0: the collector has not started yet).
    pub updated_ms: i64,
    /// Totals over every exporter.
    pub totals: DecodeStats,
    /// One entry per UDP exporter (by address) and per open IPFIX/TCP session.
    pub exporters: Vec<ExporterView>,
    /// Successful and failed saves of the template state file.
    pub state_saves: u64,
    pub state_save_errors: u64,
}

/// One exporter as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ExporterView {
    /// Exporter address.
    pub address: std::net::IpAddr,
    /// `udp` (or a file source) or `tcp` (one IPFIX/TCP session).
    pub transport: &'static str,
    /// The TCP session's peer port (`null` for UDP).
    pub port: Option<u16>,
    /// Counters of this exporter.
    pub stats: DecodeStats,
    /// The last decode error, if any.
    pub last_error: Option<String>,
    /// Its templates, per observation domain / source id.
    pub templates: Vec<TemplateView>,
}

/// One template of one exporter domain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct TemplateView {
    /// Observation domain (IPFIX) or source id (NetFlow v9).
    pub domain: u32,
    /// `v9` or `ipfix`.
    pub protocol: &'static str,
    pub template_id: u16,
    /// An options template.
    pub options: bool,
    /// Fields, scope fields included.
    pub field_count: u16,
    /// Receive time of its last (re)announcement, UTC ms.
    pub refreshed_ms: i64,
    /// Sampling interval (1 in N) in force in this domain for records without a sampler id.
    pub sampling_interval: Option<u32>,
}

impl Status {
    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<StatusSnapshot> {
        match self.snapshot.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Copies the decoder's state into a new snapshot (decode loop only).
    pub fn publish(&self, d: &Decoder, now_ms: i64, state_saves: u64, state_save_errors: u64) {
        let mut exporters: Vec<ExporterView> = d
            .exporters
            .iter()
            .map(|(a, s)| view(*a, "udp", None, s))
            .chain(
                d.tcp_sessions
                    .iter()
                    .map(|(p, s)| view(p.ip(), "tcp", Some(p.port()), s)),
            )
            .collect();
        exporters.sort_by_key(|e| (e.address, e.port));
        let snap = Arc::new(StatusSnapshot {
            updated_ms: now_ms,
            totals: d.totals.clone(),
            exporters,
            state_saves,
            state_save_errors,
        });
        match self.snapshot.lock() {
            Ok(mut g) => *g = snap,
            Err(p) => *p.into_inner() = snap,
        }
    }
}

fn view(
    address: std::net::IpAddr,
    transport: &'static str,
    port: Option<u16>,
    s: &ExporterState,
) -> ExporterView {
    let mut templates: Vec<TemplateView> = s
        .domains
        .iter()
        .flat_map(|(domain, ds)| {
            ds.raw.iter().map(move |((proto, id), raw)| TemplateView {
                domain: *domain,
                protocol: match proto {
                    Proto::V9 => "v9",
                    Proto::Ipfix => "ipfix",
                },
                template_id: *id,
                options: raw.options,
                field_count: raw.field_count,
                refreshed_ms: raw.refreshed_ms,
                sampling_interval: ds.sampling.default,
            })
        })
        .collect();
    templates.sort();
    ExporterView {
        address,
        transport,
        port,
        stats: s.stats.counters.clone(),
        last_error: s.stats.last_error.clone(),
        templates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DecoderConfig;

    #[test]
    fn snapshot_lists_exporters_and_templates() {
        let mut d = Decoder::new(DecoderConfig::default());
        let mut out = Vec::new();
        // A minimal IPFIX message: one template (id 256, two fields) and one data record.
        let mut msg = vec![0, 10, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7];
        msg.extend([0, 2, 0, 16, 1, 0, 0, 2, 0, 8, 0, 4, 0, 12, 0, 4]);
        msg.extend([1, 0, 0, 12, 10, 0, 0, 1, 10, 0, 0, 2]);
        let len = msg.len() as u16;
        msg[2..4].copy_from_slice(&len.to_be_bytes());
        let ip: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
        d.decode(ip, Some(1_000), &msg, &mut out);
        assert_eq!(out.len(), 1);
        let st = Status::default();
        assert_eq!(st.snapshot().updated_ms, 0);
        st.publish(&d, 5, 1, 0);
        let s = st.snapshot();
        assert_eq!(s.exporters.len(), 1);
        let e = &s.exporters[0];
        assert_eq!((e.address, e.transport), (ip, "udp"));
        assert_eq!(e.stats.flow_records, 1);
        assert_eq!(e.templates.len(), 1);
        assert_eq!(
            (
                e.templates[0].domain,
                e.templates[0].template_id,
                e.templates[0].field_count
            ),
            (7, 256, 2)
        );
        assert_eq!(s.totals.flow_records, 1);
    }
}
