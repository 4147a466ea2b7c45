//! UDP listeners for NetFlow v5/v9 and IPFIX.
//!
//! Each listen address gets one or more SO_REUSEPORT sockets with a large receive buffer; each
//! socket has a receiver thread that drains datagrams in batches into the bounded decode queue.
//! When the queue is full the batch is dropped and counted (`queue_full_drops`): ingest never
//! blocks silently. What the kernel drops before we read is read from /proc/net/udp{,6}.

use super::{Batch, IngestMetrics};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Datagrams handed over per batch at most.
const BATCH: usize = 64;
const MAX_DATAGRAM: usize = 65_536;

/// Binds one UDP socket with SO_REUSEPORT and the requested receive buffer.
pub fn bind(addr: SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(false).ok();
    }
    // Ask for the size; without CAP_NET_ADMIN the kernel caps it at net.core.rmem_max.
    if s.set_recv_buffer_size(recv_buffer).is_err() {
        tracing::warn!(
            requested = recv_buffer,
            "Could not set the UDP receive buffer"
        );
    }
    s.bind(&addr.into())?;
    let u: UdpSocket = s.into();
    u.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(u)
}

/// The socket's inode, to find its drop counter in /proc/net/udp.
pub fn inode(sock: &UdpSocket) -> Option<u64> {
    std::fs::metadata(format!("/proc/self/fd/{}", sock.as_raw_fd()))
        .ok()
        .map(|m| m.ino())
}

/// Sum of the kernel's drop counters for these socket inodes (last column of /proc/net/udp{,6}).
pub fn kernel_drops(inodes: &[u64]) -> u64 {
    let mut total = 0;
    for f in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(ino), Some(drops)) = (cols.get(9), cols.last()) else {
                continue;
            };
            if ino.parse::<u64>().is_ok_and(|i| inodes.contains(&i)) {
                total += drops.parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

/// Receives until `shutdown`; batches go to `tx`.
pub fn receive_loop(
    sock: UdpSocket,
    tx: SyncSender<Batch>,
    metrics: Arc<IngestMetrics>,
    shutdown: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut batch = Batch::default();
    while !shutdown.load(Relaxed) {
        // Block (with timeout) for the first datagram, then drain without blocking.
        let first = sock.recv_from(&mut buf);
        match first {
            Ok((n, from)) => batch.push(from, now_ms(), &buf[..n], false),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "UDP receive failed");
                continue;
            }
        }
        sock.set_nonblocking(true).ok();
        while batch.len() < BATCH {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => batch.push(from, now_ms(), &buf[..n], false),
                Err(_) => break,
            }
        }
        sock.set_nonblocking(false).ok();
        metrics.udp_datagrams.fetch_add(batch.len() as u64, Relaxed);
        metrics.udp_bytes.fetch_add(batch.bytes() as u64, Relaxed);
        match tx.try_send(std::mem::take(&mut batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(b)) => {
                metrics.queue_full_drops.fetch_add(b.len() as u64, Relaxed);
                batch = b;
                batch.clear();
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
    drain(&sock, &mut buf, &tx, &metrics);
}

/// On shutdown: hands over what is still queued in the socket, so that a stopping collector
/// decodes (and counts) everything the kernel had accepted. Blocking sends: the decode loop runs
/// until every receiver has finished.
fn drain(sock: &UdpSocket, buf: &mut [u8], tx: &SyncSender<Batch>, metrics: &IngestMetrics) {
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    // Bounded, for exporters that keep sending while we stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let mut batch = Batch::default();
        while batch.len() < BATCH {
            match sock.recv_from(buf) {
                Ok((n, from)) => batch.push(from, now_ms(), &buf[..n], false),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        metrics.udp_datagrams.fetch_add(batch.len() as u64, Relaxed);
        metrics.udp_bytes.fetch_add(batch.bytes() as u64, Relaxed);
        if tx.send(batch).is_err() {
            return;
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
