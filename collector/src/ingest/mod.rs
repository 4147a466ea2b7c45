//! Ingest stage: where export messages come from.
//!
//! Every input yields `(exporter address, receive time, message bytes)` in arrival order per
//! exporter; the decoder does the rest. Network inputs hand their messages to the decode loop
//! through one bounded queue of [`Batch`]es.
//!
//! - [`udp`]: NetFlow v5/v9 and IPFIX over UDP.
//! - [`tcp`]: IPFIX over TCP (RFC 7011 §10.4).
//! - [`file`]: captures, raw payload files and IPFIX files.

pub mod file;
pub mod tcp;
pub mod udp;

use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Messages received together, in order, in one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    items: Vec<Item>,
    /// TCP sessions (peer address and port) that ended after the messages of this batch.
    pub closed: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    from: SocketAddr,
    received_ms: i64,
    start: usize,
    end: usize,
    tcp: bool,
}

impl Batch {
    pub fn push(&mut self, from: SocketAddr, received_ms: i64, msg: &[u8], tcp: bool) {
        let start = self.buf.len();
        self.buf.extend_from_slice(msg);
        self.items.push(Item {
            from,
            received_ms,
            start,
            end: self.buf.len(),
            tcp,
        });
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.closed.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
        self.closed.clear();
    }

    /// (exporter, receive time, message, came over TCP)
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, i64, &[u8], bool)> {
        self.items
            .iter()
            .map(|i| (i.from, i.received_ms, &self.buf[i.start..i.end], i.tcp))
    }
}

/// Ingest counters, shared by the receiver threads.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    pub udp_datagrams: AtomicU64,
    pub udp_bytes: AtomicU64,
    /// Datagrams dropped because the decode queue was full.
    pub queue_full_drops: AtomicU64,
    /// Datagrams the kernel dropped before we read them (socket buffer full), from /proc.
    pub kernel_drops: AtomicU64,
    pub tcp_connections_total: AtomicU64,
    pub tcp_connections_open: AtomicU64,
    pub tcp_connections_rejected: AtomicU64,
    pub tcp_messages: AtomicU64,
    /// TCP sessions closed because the stream was not valid IPFIX framing.
    pub tcp_framing_errors: AtomicU64,
}

/// A point-in-time copy of [`IngestMetrics`].
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestSnapshot {
    pub udp_datagrams: u64,
    pub udp_bytes: u64,
    pub queue_full_drops: u64,
    pub kernel_drops: u64,
    pub tcp_connections_total: u64,
    pub tcp_connections_open: u64,
    pub tcp_connections_rejected: u64,
    pub tcp_messages: u64,
    pub tcp_framing_errors: u64,
}

impl IngestMetrics {
    pub fn snapshot(&self) -> IngestSnapshot {
        IngestSnapshot {
            udp_datagrams: self.udp_datagrams.load(Relaxed),
            udp_bytes: self.udp_bytes.load(Relaxed),
            queue_full_drops: self.queue_full_drops.load(Relaxed),
            kernel_drops: self.kernel_drops.load(Relaxed),
            tcp_connections_total: self.tcp_connections_total.load(Relaxed),
            tcp_connections_open: self.tcp_connections_open.load(Relaxed),
            tcp_connections_rejected: self.tcp_connections_rejected.load(Relaxed),
            tcp_messages: self.tcp_messages.load(Relaxed),
            tcp_framing_errors: self.tcp_framing_errors.load(Relaxed),
        }
    }
}
