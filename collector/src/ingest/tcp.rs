//! IPFIX over TCP (RFC 7011 §10.4): one thread per exporter connection, messages framed by the
//! header's length field. TCP is flow-controlled, so a full decode queue back-pressures the
//! exporter instead of dropping. Templates learned over a session end with it (RFC 7011 §8.1).

use super::{udp::now_ms, Batch, IngestMetrics};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Accepts exporters until `shutdown`, at most `max_conns` at once.
pub fn accept_loop(
    listener: TcpListener,
    max_conns: usize,
    tx: SyncSender<Batch>,
    metrics: Arc<IngestMetrics>,
    shutdown: Arc<AtomicBool>,
) {
    while !shutdown.load(Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if metrics.tcp_connections_open.load(Relaxed) as usize >= max_conns {
                    metrics.tcp_connections_rejected.fetch_add(1, Relaxed);
                    tracing::warn!(%peer, max_conns, "IPFIX/TCP exporter refused: connection cap reached");
                    continue;
                }
                metrics.tcp_connections_total.fetch_add(1, Relaxed);
                metrics.tcp_connections_open.fetch_add(1, Relaxed);
                let (tx, m, s) = (tx.clone(), metrics.clone(), shutdown.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("ipfix-tcp-{peer}"))
                    .spawn(move || {
                        session(stream, peer, &tx, &m, &s);
                        m.tcp_connections_open.fetch_sub(1, Relaxed);
                    });
                if let Err(e) = spawned {
                    metrics.tcp_connections_open.fetch_sub(1, Relaxed);
                    tracing::warn!(error = %e, "Could not start an IPFIX/TCP session thread");
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => {
                tracing::warn!(error = %e, "IPFIX/TCP accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn session(
    mut stream: TcpStream,
    peer: SocketAddr,
    tx: &SyncSender<Batch>,
    metrics: &IngestMetrics,
    shutdown: &AtomicBool,
) {
    stream.set_nonblocking(false).ok();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok();
    let mut msg = Vec::with_capacity(65_536);
    loop {
        match read_message(&mut stream, &mut msg, shutdown) {
            Ok(true) => {
                metrics.tcp_messages.fetch_add(1, Relaxed);
                let mut b = Batch::default();
                b.push(peer, now_ms(), &msg, true);
                if tx.send(b).is_err() {
                    return;
                }
            }
            Ok(false) => break,
            Err(e) => {
                metrics.tcp_framing_errors.fetch_add(1, Relaxed);
                tracing::warn!(%peer, error = %e, "Closing IPFIX/TCP session");
                break;
            }
        }
    }
    let mut b = Batch::default();
    b.closed.push(peer);
    let _ = tx.send(b);
}

/// Reads one IPFIX message into `msg`. `Ok(false)` at end of stream or shutdown.
fn read_message(
    s: &mut TcpStream,
    msg: &mut Vec<u8>,
    shutdown: &AtomicBool,
) -> std::io::Result<bool> {
    msg.clear();
    msg.resize(4, 0);
    if !read_full(s, &mut msg[..4], shutdown, true)? {
        return Ok(false);
    }
    let version = u16::from_be_bytes([msg[0], msg[1]]);
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    if version != 10 || len < 16 {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("not an IPFIX message header (version {version}, length {len})"),
        ));
    }
    msg.resize(len, 0);
    if !read_full(s, &mut msg[4..], shutdown, false)? {
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "stream ended inside a message",
        ));
    }
    Ok(true)
}

fn read_full(
    s: &mut TcpStream,
    buf: &mut [u8],
    shutdown: &AtomicBool,
    at_boundary: bool,
) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        if shutdown.load(Relaxed) {
            return Ok(false);
        }
        match s.read(&mut buf[got..]) {
            Ok(0) if got == 0 && at_boundary => return Ok(false),
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
