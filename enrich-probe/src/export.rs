//! Sending tap records to a collector as IPFIX ([`schemas::ipfix`]: the enterprise elements and
//! the encoder live with the record model, so the collector side decodes with the same registry).
//!
//! Over TCP (the default: RFC 7011 §10.4, reliable, templates sent once per connection) or UDP
//! (templates resent every 10 s of export time; a datagram the collector's socket drops is lost,
//! which its drop counters show). A broken TCP connection is re-opened once per send, with the
//! templates sent again; records of a send that fails after that are counted as failed.

use schemas::ipfix::{encode::EncoderCounters, Encoder, EncoderConfig};
use schemas::{RecordKind, TapRecord};
use serde::Serialize;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// Transport to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// IPFIX over TCP.
    Tcp,
    /// IPFIX over UDP.
    Udp,
}

/// Counters of an exporter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportCounters {
    /// The encoder's counters (messages, records, templates, failures).
    pub encoder: EncoderCounters,
    /// Bytes of IPFIX messages sent.
    pub bytes_sent: u64,
    /// Messages that could not be sent.
    pub send_failed: u64,
    /// TCP connections re-opened after a failure.
    pub reconnects: u64,
}

/// Why the exporter could not start or send.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Connecting or sending failed.
    #[error("IPFIX export to {0}: {1}")]
    Io(SocketAddr, #[source] std::io::Error),
    /// The record registry is broken (a build problem).
    #[error(transparent)]
    Registry(#[from] schemas::ipfix::registry::RegistryError),
}

enum Sock {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

/// An IPFIX exporter of tap records to one collector.
pub struct IpfixExporter {
    to: SocketAddr,
    transport: Transport,
    enc: Encoder,
    sock: Sock,
    /// Counters.
    pub counters: ExportCounters,
}

impl std::fmt::Debug for IpfixExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpfixExporter")
            .field("to", &self.to)
            .field("transport", &self.transport)
            .finish()
    }
}

fn open(to: SocketAddr, transport: Transport) -> Result<Sock, ExportError> {
    let io = |e| ExportError::Io(to, e);
    Ok(match transport {
        Transport::Tcp => {
            let s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).map_err(io)?;
            s.set_nodelay(true).map_err(io)?;
            s.set_write_timeout(Some(Duration::from_secs(10)))
                .map_err(io)?;
            Sock::Tcp(s)
        }
        Transport::Udp => {
            let bind: SocketAddr = if to.is_ipv4() {
                "0.0.0.0:0"
                    .parse()
                    .map_err(|_| io(std::io::ErrorKind::InvalidInput.into()))?
            } else {
                "[::]:0"
                    .parse()
                    .map_err(|_| io(std::io::ErrorKind::InvalidInput.into()))?
            };
            let s = UdpSocket::bind(bind).map_err(io)?;
            s.connect(to).map_err(io)?;
            Sock::Udp(s)
        }
    })
}

impl IpfixExporter {
    /// Connects (TCP) or prepares (UDP) an exporter to `to`, with `domain` as observation domain.
    pub fn new(to: SocketAddr, transport: Transport, domain: u32) -> Result<Self, ExportError> {
        let cfg = match transport {
            Transport::Tcp => EncoderConfig {
                observation_domain: domain,
                max_message: 16_384,
                template_refresh_ms: 0,
            },
            Transport::Udp => EncoderConfig {
                observation_domain: domain,
                ..EncoderConfig::default()
            },
        };
        Ok(IpfixExporter {
            to,
            transport,
            enc: Encoder::new(RecordKind::Tap, cfg)?,
            sock: open(to, transport)?,
            counters: ExportCounters::default(),
        })
    }

    /// Encodes and sends `records` with export time `export_ms` (UTC ms). Records that cannot be
    /// encoded are counted and logged, not sent; a send that fails after one reconnect is an error.
    pub fn send(&mut self, records: &[TapRecord], export_ms: i64) -> Result<(), ExportError> {
        if records.is_empty() {
            return Ok(());
        }
        let enc = self.enc.encode(records, export_ms);
        for e in enc.errors.iter().take(3) {
            tracing::warn!(error = %e, "Tap record not exported");
        }
        for (i, m) in enc.messages.iter().enumerate() {
            let Err(e) = self.write(m) else {
                continue;
            };
            if self.transport == Transport::Udp {
                self.counters.send_failed += 1;
                continue;
            }
            // TCP: a new session knows no templates. Re-open once, and send the rest of the
            // batch again from this message's first record, with its templates.
            tracing::warn!(error = %e, to = %self.to, "IPFIX/TCP send failed; reconnecting");
            self.counters.reconnects += 1;
            self.sock = open(self.to, self.transport)?;
            self.enc.resend_templates();
            let from = enc.first_record.get(i).copied().unwrap_or(records.len());
            let again = self.enc.encode(&records[from..], export_ms);
            for m in &again.messages {
                if let Err(e) = self.write(m) {
                    self.counters.send_failed += 1;
                    self.counters.encoder = self.enc.counters.clone();
                    return Err(e);
                }
            }
            break;
        }
        self.counters.encoder = self.enc.counters.clone();
        Ok(())
    }

    fn write(&mut self, m: &[u8]) -> Result<(), ExportError> {
        let r = match &mut self.sock {
            Sock::Tcp(s) => s.write_all(m),
            Sock::Udp(s) => s.send(m).map(|_| ()),
        };
        r.map_err(|e| ExportError::Io(self.to, e))?;
        self.counters.bytes_sent += m.len() as u64;
        Ok(())
    }

    /// Flushes and closes the connection; returns the counters.
    pub fn close(mut self) -> ExportCounters {
        if let Sock::Tcp(s) = &mut self.sock {
            let _ = s.flush();
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        self.counters.encoder = self.enc.counters.clone();
        self.counters
    }
}
