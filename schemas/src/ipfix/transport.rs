//! Sending IPFIX messages of one record kind to one collector, over UDP or TCP (RFC 7011 §10):
//! the socket side of the tap's export (`supernetflow probe --export`) and of the mediator's IPFIX
//! sink, written once.
//!
//! - UDP: one message per datagram ([`EncoderConfig::max_message`] keeps it under the MTU),
//!   templates resent by time and/or message count (RFC 7011 §8.4). A datagram the network or the
//!   collector drops is lost; a send error is counted and the batch goes on.
//! - TCP: templates sent once per connection. A broken connection is re-opened (at most once per
//!   [`Exporter::retry_after`]) with the templates sent again, and the batch goes on from the
//!   first record of the message that failed; while the collector is unreachable, sends fail fast
//!   (their records are the caller's to count) until the next retry.
//!
//! Blocking std sockets, with bounded connect and write timeouts: the callers run it on a thread
//! of their own.

use super::encode::{EncoderConfig, EncoderCounters};
use super::registry::RegistryError;
use super::Encoder;
use crate::kind::RecordKind;
use serde::Serialize;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Transport to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// Messages sent.
    pub messages_sent: u64,
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
    /// The collector was unreachable at the last attempt; the next one is not due yet.
    #[error("IPFIX export to {0}: not connected (next attempt in {1:?})")]
    NotConnected(SocketAddr, Duration),
    /// The record registry is broken (a build problem).
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

enum Sock {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

/// Connect timeout of TCP collectors.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Write timeout of TCP collectors (a collector that stops reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings the usual way for a transport: UDP messages under a 1500-byte MTU with templates
/// resent every `refresh_ms` of export time; TCP messages up to 16 KiB, templates once per
/// connection.
pub fn encoder_config(transport: Transport, domain: u32, refresh_ms: i64) -> EncoderConfig {
    match transport {
        Transport::Tcp => EncoderConfig {
            observation_domain: domain,
            max_message: 16_384,
            template_refresh_ms: 0,
            template_refresh_messages: 0,
            reduced_size: false,
        },
        Transport::Udp => EncoderConfig {
            observation_domain: domain,
            template_refresh_ms: refresh_ms,
            ..EncoderConfig::default()
        },
    }
}

/// An IPFIX exporter of one record kind to one collector.
pub struct Exporter {
    to: SocketAddr,
    transport: Transport,
    enc: Encoder,
    sock: Option<Sock>,
    /// Earliest time of the next connection attempt after a failure.
    next_attempt: Option<Instant>,
    /// A socket was opened before (the next one is a reconnection).
    ever_connected: bool,
    /// Wait between connection attempts to an unreachable collector.
    pub retry_after: Duration,
    /// Counters.
    pub counters: ExportCounters,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("to", &self.to)
            .field("transport", &self.transport)
            .field("connected", &self.sock.is_some())
            .finish()
    }
}

fn open(to: SocketAddr, transport: Transport) -> Result<Sock, ExportError> {
    let io = |e| ExportError::Io(to, e);
    Ok(match transport {
        Transport::Tcp => {
            let s = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT).map_err(io)?;
            s.set_nodelay(true).map_err(io)?;
            s.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(io)?;
            Sock::Tcp(s)
        }
        Transport::Udp => {
            let bind = if to.is_ipv4() {
                SocketAddr::from(([0, 0, 0, 0], 0))
            } else {
                SocketAddr::from(([0u16; 8], 0))
            };
            let s = UdpSocket::bind(bind).map_err(io)?;
            s.connect(to).map_err(io)?;
            Sock::Udp(s)
        }
    })
}

impl Exporter {
    /// An exporter of `kind` records to `to`, connected now (a TCP collector that does not
    /// answer is an error).
    pub fn connect(
        kind: RecordKind,
        to: SocketAddr,
        transport: Transport,
        cfg: EncoderConfig,
    ) -> Result<Self, ExportError> {
        let mut x = Self::lazy(kind, to, transport, cfg)?;
        x.ensure_open()?;
        Ok(x)
    }

    /// An exporter of `kind` records to `to` that connects on its first send (a collector that
    /// is down at start-up is tried again later).
    pub fn lazy(
        kind: RecordKind,
        to: SocketAddr,
        transport: Transport,
        cfg: EncoderConfig,
    ) -> Result<Self, RegistryError> {
        Ok(Exporter {
            to,
            transport,
            enc: Encoder::new(kind, cfg)?,
            sock: None,
            next_attempt: None,
            ever_connected: false,
            retry_after: Duration::from_secs(5),
            counters: ExportCounters::default(),
        })
    }

    /// The collector's address.
    pub fn to(&self) -> SocketAddr {
        self.to
    }

    /// True while the exporter holds a socket (for TCP: a connection).
    pub fn connected(&self) -> bool {
        self.sock.is_some()
    }

    /// Opens the socket now unless it is open (or the retry after a failure is not due yet).
    pub fn try_connect(&mut self) -> Result<(), ExportError> {
        self.ensure_open()
    }

    fn ensure_open(&mut self) -> Result<(), ExportError> {
        if self.sock.is_some() {
            return Ok(());
        }
        if let Some(at) = self.next_attempt {
            let now = Instant::now();
            if now < at {
                return Err(ExportError::NotConnected(self.to, at - now));
            }
        }
        match open(self.to, self.transport) {
            Ok(s) => {
                self.sock = Some(s);
                self.next_attempt = None;
                if self.ever_connected {
                    self.counters.reconnects += 1;
                }
                self.ever_connected = true;
                // A new session knows no templates.
                self.enc.resend_templates();
                Ok(())
            }
            Err(e) => {
                self.next_attempt = Some(Instant::now() + self.retry_after);
                Err(e)
            }
        }
    }

    /// Encodes and sends `records` with export time `export_ms` (UTC ms). Records that cannot be
    /// encoded are skipped and counted (their errors are returned, for the caller to log);
    /// a batch whose messages could not be delivered is an error (over TCP after one reconnect).
    pub fn send<R: Serialize>(
        &mut self,
        records: &[R],
        export_ms: i64,
    ) -> Result<Vec<super::encode::EncodeError>, ExportError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let r = self.send_inner(records, export_ms);
        self.counters.encoder = self.enc.counters.clone();
        r
    }

    fn send_inner<R: Serialize>(
        &mut self,
        records: &[R],
        export_ms: i64,
    ) -> Result<Vec<super::encode::EncodeError>, ExportError> {
        self.ensure_open()?;
        let enc = self.enc.encode(records, export_ms);
        for (i, m) in enc.messages.iter().enumerate() {
            if self.write(m).is_ok() {
                continue;
            }
            self.counters.send_failed += 1;
            if self.transport == Transport::Udp {
                // Counted; the datagram is lost like one the network drops.
                continue;
            }
            // TCP: re-open once, and send the rest of the batch again from this message's first
            // record, with its templates.
            self.sock = None;
            self.ensure_open()?;
            let from = enc.first_record.get(i).copied().unwrap_or(records.len());
            let again = self.enc.encode(&records[from..], export_ms);
            for m in &again.messages {
                if let Err(e) = self.write(m) {
                    self.counters.send_failed += 1;
                    self.sock = None;
                    self.next_attempt = Some(Instant::now() + self.retry_after);
                    return Err(e);
                }
            }
            break;
        }
        Ok(enc.errors)
    }

    fn write(&mut self, m: &[u8]) -> Result<(), ExportError> {
        let r = match &mut self.sock {
            Some(Sock::Tcp(s)) => s.write_all(m),
            Some(Sock::Udp(s)) => s.send(m).map(|_| ()),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        };
        r.map_err(|e| ExportError::Io(self.to, e))?;
        self.counters.bytes_sent += m.len() as u64;
        self.counters.messages_sent += 1;
        Ok(())
    }

    /// Flushes and closes the connection; returns the counters.
    pub fn close(mut self) -> ExportCounters {
        if let Some(Sock::Tcp(s)) = &mut self.sock {
            let _ = s.flush();
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        self.counters.encoder = self.enc.counters.clone();
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn tap_records(n: usize) -> Vec<crate::TapRecord> {
        (0..n)
            .map(|i| {
                let mut r = crate::sample::tap_record();
                r.seq = i as u32;
                r.set_record_id();
                r
            })
            .collect()
    }

    /// The set ids of the sets in an IPFIX byte stream (messages back to back).
    fn set_ids(mut b: &[u8]) -> Vec<u16> {
        let mut out = Vec::new();
        while b.len() >= 16 {
            let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
            let (m, rest) = b.split_at(len.min(b.len()));
            let mut s = &m[16..];
            while s.len() >= 4 {
                out.push(u16::from_be_bytes([s[0], s[1]]));
                let l = usize::from(u16::from_be_bytes([s[2], s[3]])).max(4);
                s = &s[l.min(s.len())..];
            }
            b = rest;
        }
        out
    }

    #[test]
    fn udp_messages_fit_the_mtu_and_reach_the_collector() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let to = rx.local_addr().expect("addr");
        let mut x = Exporter::connect(
            RecordKind::Tap,
            to,
            Transport::Udp,
            encoder_config(Transport::Udp, 7, 10_000),
        )
        .expect("exporter");
        let errors = x.send(&tap_records(20), 1_700_000_000_000).expect("send");
        assert!(errors.is_empty());
        let c = x.close();
        assert!(c.messages_sent > 1, "{c:?}");
        let mut buf = [0u8; 65_535];
        let mut bytes = 0;
        for _ in 0..c.messages_sent {
            let n = rx.recv(&mut buf).expect("datagram");
            assert!(n <= 1400, "{n} bytes");
            assert_eq!(&buf[..2], &[0, 10]);
            bytes += n as u64;
        }
        assert_eq!(bytes, c.bytes_sent);
    }

    #[test]
    fn tcp_reconnects_and_resends_templates() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let to = l.local_addr().expect("addr");
        let mut x = Exporter::lazy(
            RecordKind::Tap,
            to,
            Transport::Tcp,
            encoder_config(Transport::Tcp, 0, 0),
        )
        .expect("exporter");
        x.retry_after = Duration::ZERO;
        x.send(&tap_records(3), 1).expect("first session");
        let (mut first, _) = l.accept().expect("accept");
        first
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut got = vec![0u8; 4096];
        let n = first.read(&mut got).expect("read");
        assert_eq!(set_ids(&got[..n]).first(), Some(&2), "templates first");
        // The collector goes away: the next sends fail on the dead connection, then reconnect.
        drop(first);
        let mut ok = false;
        for _ in 0..20 {
            if x.send(&tap_records(3), 2).is_ok() && x.counters.reconnects > 0 {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(ok, "{:?}", x.counters);
        let (mut second, _) = l.accept().expect("second session");
        second
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let n = second.read(&mut got).expect("read");
        assert_eq!(
            set_ids(&got[..n]).first(),
            Some(&2),
            "templates again on the new connection"
        );
    }

    #[test]
    fn an_unreachable_collector_fails_fast_until_the_retry() {
        // A port nobody listens on (bound, then released).
        let to = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("addr");
        let mut x = Exporter::lazy(
            RecordKind::Tap,
            to,
            Transport::Tcp,
            encoder_config(Transport::Tcp, 0, 0),
        )
        .expect("exporter");
        assert!(matches!(
            x.send(&tap_records(1), 1),
            Err(ExportError::Io(..))
        ));
        assert!(matches!(
            x.send(&tap_records(1), 1),
            Err(ExportError::NotConnected(..))
        ));
    }
}
