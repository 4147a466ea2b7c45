//! Sending the tap's records to a collector as IPFIX: tap records, and application session
//! reports on a socket of their own (their own transport session, so the two kinds' template ids
//! cannot clash). The elements, the encoder and the sockets live with the record model
//! ([`schemas::ipfix`], [`schemas::ipfix::transport`]), so the collector side decodes with the
//! same registry and the mediator's IPFIX sink sends the same way.
//!
//! Integer enterprise elements use reduced-size encoding (RFC 7011 §6.2, a value that fits half
//! its element's width is sent in half), and a session's QoE series travels packed
//! ([`schemas::ipfix::series`]).
//!
//! Over TCP (the default: RFC 7011 §10.4, reliable, templates sent once per connection) or UDP
//! (templates resent every 10 s of export time; a datagram the collector's socket drops is lost,
//! which its drop counters show). A broken TCP connection is re-opened once per send, with the
//! templates sent again; records of a send that fails after that are counted as failed.

use schemas::ipfix::transport::{encoder_config, Exporter};
use schemas::{AppSession, RecordKind, TapRecord};
use std::net::SocketAddr;

pub use schemas::ipfix::transport::{ExportCounters, ExportError, Transport};

/// An IPFIX exporter of a tap's records to one collector.
#[derive(Debug)]
pub struct IpfixExporter {
    taps: Exporter,
    sessions: Exporter,
}

/// The counters of both kinds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExportReport {
    /// Tap records.
    pub taps: ExportCounters,
    /// Application session reports.
    pub sessions: ExportCounters,
}

impl IpfixExporter {
    /// Connects (TCP) or prepares (UDP) an exporter to `to`, with `domain` as observation domain.
    pub fn new(to: SocketAddr, transport: Transport, domain: u32) -> Result<Self, ExportError> {
        let mut cfg = encoder_config(transport, domain, 10_000);
        // The tap's counters are mostly small: send them in the octets they need (RFC 7011 §6.2).
        cfg.reduced_size = true;
        let mut taps = Exporter::connect(RecordKind::Tap, to, transport, cfg.clone())?;
        // The session socket opens with its first report (most flows belong to no session).
        let mut sessions = Exporter::lazy(RecordKind::AppSession, to, transport, cfg)?;
        // A probe replaying a capture retries a dropped connection at once.
        taps.retry_after = std::time::Duration::ZERO;
        sessions.retry_after = std::time::Duration::ZERO;
        Ok(IpfixExporter { taps, sessions })
    }

    /// Encodes and sends tap `records` with export time `export_ms` (UTC ms). Records that cannot
    /// be encoded are counted and logged, not sent; a send that fails after one reconnect is an
    /// error.
    pub fn send(&mut self, records: &[TapRecord], export_ms: i64) -> Result<(), ExportError> {
        let errors = self.taps.send(records, export_ms)?;
        for e in errors.iter().take(3) {
            tracing::warn!(error = %e, "Tap record not exported");
        }
        Ok(())
    }

    /// Encodes and sends application session reports, like [`IpfixExporter::send`].
    pub fn send_sessions(
        &mut self,
        records: &[AppSession],
        export_ms: i64,
    ) -> Result<(), ExportError> {
        let errors = self.sessions.send(records, export_ms)?;
        for e in errors.iter().take(3) {
            tracing::warn!(error = %e, "Session report not exported");
        }
        Ok(())
    }

    /// Flushes and closes the connections; returns the counters.
    pub fn close(self) -> ExportReport {
        ExportReport {
            taps: self.taps.close(),
            sessions: self.sessions.close(),
        }
    }
}
