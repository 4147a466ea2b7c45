//! Chunk reconstruction: a chunk is the downstream burst that answers one upstream request on one
//! flow (HTTP/1.1, HTTP/2 over TLS, HTTP/3 or gQUIC streams alike: only sizes and times are used).
//!
//! A request is an upstream packet whose L4 payload reaches `request_min_payload` on UDP (QUIC
//! ACK-only packets stay far below it; an encrypted GET with its headers is several hundred bytes)
//! or `tcp_request_min_payload` on TCP (pure ACKs carry no payload, and an HPACK-compressed HTTP/2
//! GET in a TLS record can be under 100 bytes). The transport is told from the header overhead
//! `ip_len - payload_len`: 28 (IPv4) or 48 (IPv6) is UDP, anything else TCP. The chunk runs until
//! the next request on the same flow. It counts as media once its
//! downstream payload reaches `chunk_min_bytes`; smaller answers (manifests, beacons, player
//! API calls) are left out of the media totals.

use std::collections::{HashMap, VecDeque};

/// A reconstructed chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Flow that carried it.
    pub flow: u64,
    /// Time of the request, ns.
    pub request_ns: u64,
    /// Last downstream byte seen, ns (the request time while nothing came back).
    pub last_ns: u64,
    /// Downstream L4 payload bytes.
    pub bytes: u64,
    /// The request came after the session had been idle for `paced_gap_ms`: the player waited
    /// for room in its buffer rather than downloading back to back.
    pub paced: bool,
}

/// What one packet did to the media accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkEvent {
    /// Nothing the player model needs.
    None,
    /// A request opened a chunk.
    Request {
        /// See [`Chunk::paced`].
        paced: bool,
    },
    /// Media bytes arrived (the first event of a chunk carries all its bytes so far).
    Media(u64),
}

/// Per-session chunk tracker.
#[derive(Debug, Clone)]
pub struct ChunkTracker {
    request_min_payload: u32,
    tcp_request_min_payload: u32,
    chunk_min_bytes: u64,
    paced_gap_ns: u64,
    open: HashMap<u64, Chunk>,
    /// Last downstream media byte of the session, ns.
    last_media_ns: Option<u64>,
    /// Completed media chunks, most recent last (bounded).
    done: VecDeque<Chunk>,
    /// Media chunks completed so far.
    pub completed: u64,
}

/// Completed chunks kept for inspection.
const KEEP: usize = 256;
/// Open chunks kept per session (a client does not hold more flows to one provider).
const MAX_OPEN: usize = 64;

impl ChunkTracker {
    /// A tracker with the provider's thresholds.
    pub fn new(
        request_min_payload: u32,
        tcp_request_min_payload: u32,
        chunk_min_bytes: u64,
        paced_gap_ms: u64,
    ) -> Self {
        ChunkTracker {
            request_min_payload,
            tcp_request_min_payload,
            chunk_min_bytes,
            paced_gap_ns: paced_gap_ms.saturating_mul(1_000_000),
            open: HashMap::new(),
            last_media_ns: None,
            done: VecDeque::new(),
            completed: 0,
        }
    }

    /// One packet of a member flow (`ip_len` only tells TCP from UDP).
    pub fn packet(
        &mut self,
        ts_ns: u64,
        flow: u64,
        up: bool,
        ip_len: u32,
        payload_len: u32,
    ) -> ChunkEvent {
        if up {
            let udp = matches!(ip_len.saturating_sub(payload_len), 28 | 48);
            let min = if udp {
                self.request_min_payload
            } else {
                self.tcp_request_min_payload
            };
            if payload_len < min.max(1) {
                return ChunkEvent::None;
            }
            if let Some(prev) = self.open.remove(&flow) {
                self.finish(prev);
            }
            let paced = match self.last_media_ns {
                Some(last) => ts_ns.saturating_sub(last) >= self.paced_gap_ns && !self.busy(ts_ns),
                None => false,
            };
            if self.open.len() >= MAX_OPEN {
                // Drop the stalest open chunk rather than grow without bound.
                if let Some((&k, _)) = self.open.iter().min_by_key(|(_, c)| c.last_ns) {
                    if let Some(c) = self.open.remove(&k) {
                        self.finish(c);
                    }
                }
            }
            self.open.insert(
                flow,
                Chunk {
                    flow,
                    request_ns: ts_ns,
                    last_ns: ts_ns,
                    bytes: 0,
                    paced,
                },
            );
            return ChunkEvent::Request { paced };
        }
        if payload_len == 0 {
            return ChunkEvent::None;
        }
        let Some(c) = self.open.get_mut(&flow) else {
            return ChunkEvent::None;
        };
        let before = c.bytes;
        c.bytes = c.bytes.saturating_add(u64::from(payload_len));
        c.last_ns = c.last_ns.max(ts_ns);
        if c.bytes < self.chunk_min_bytes {
            return ChunkEvent::None;
        }
        self.last_media_ns = Some(self.last_media_ns.map_or(ts_ns, |l| l.max(ts_ns)));
        if before < self.chunk_min_bytes {
            ChunkEvent::Media(c.bytes)
        } else {
            ChunkEvent::Media(u64::from(payload_len))
        }
    }

    /// A media chunk is still receiving data (its last byte is recent).
    fn busy(&self, now: u64) -> bool {
        self.open.values().any(|c| {
            c.bytes >= self.chunk_min_bytes && now.saturating_sub(c.last_ns) < self.paced_gap_ns
        })
    }

    fn finish(&mut self, c: Chunk) {
        if c.bytes >= self.chunk_min_bytes {
            self.completed += 1;
            if self.done.len() >= KEEP {
                self.done.pop_front();
            }
            self.done.push_back(c);
        }
    }

    /// The media chunks completed so far (at most the last 256), oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Chunk> {
        self.done.iter()
    }

    /// The media chunks still open (their next request has not come yet).
    pub fn open_media(&self) -> impl Iterator<Item = &Chunk> {
        self.open
            .values()
            .filter(move |c| c.bytes >= self.chunk_min_bytes)
    }
}
