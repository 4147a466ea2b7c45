//! `FlowState`: the per-flow counters of ACCOUNTING.md, laid out like `struct flow_state` in
//! `enrich-probe-ebpf/src/probe.h`, and the per-packet rules that fill them.

use super::parse::Parsed;

/// Verdict: new flow, nothing decided yet.
pub const VERDICT_NEW: u8 = 0;
/// Verdict: still classifying, send whole packets up to `snap_len`.
pub const VERDICT_CLASSIFYING: u8 = 1;
/// Verdict: QoE headers wanted, send L4 header + `hdr_payload` bytes.
pub const VERDICT_HEADERS: u8 = 2;
/// Verdict: classified, counters only.
pub const VERDICT_CLASSIFIED: u8 = 3;

/// Per-flow state, field for field and pad for pad as the kernel's `struct flow_state` (240
/// bytes, little-endian). Index `[d]` is the direction: 0 low → high, 1 high → low.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowState {
    /// Packets per direction.
    pub packets: [u64; 2],
    /// IP datagram bytes per direction.
    pub bytes: [u64; 2],
    /// First packet timestamp per direction, ns.
    pub first_ns: [u64; 2],
    /// Latest packet timestamp per direction, ns (never goes backwards).
    pub last_ns: [u64; 2],
    /// OR of the TCP flags bytes.
    pub tcp_flags: [u8; 2],
    /// Padding, as in C.
    pub _pad0: [u8; 2],
    /// TCP segments with RST.
    pub resets: [u32; 2],
    /// Segments starting before the next expected sequence number.
    pub retrans: [u32; 2],
    /// Segments starting after it (a hole).
    pub seq_errors: [u32; 2],
    /// Next expected sequence number.
    pub next_seq: [u32; 2],
    /// `next_seq` is set.
    pub seq_valid: [u8; 2],
    /// Padding, as in C.
    pub _pad1: [u8; 2],
    /// IP datagram length histogram ([`size_bucket`]).
    pub size_hist: [[u32; 8]; 2],
    /// Inter-arrival time histogram ([`iat_bucket`]).
    pub iat_hist: [[u32; 8]; 2],
    /// Direction whose sender is the client.
    pub client_dir: u8,
    /// Written by user space: `VERDICT_*`.
    pub verdict: u8,
    /// Padding, as in C.
    pub _pad2: [u8; 2],
    /// Packets copied to user space for this flow.
    pub sent_to_user: u32,
}

const _: () = assert!(std::mem::size_of::<FlowState>() == 240);

/// Size bucket of an IP datagram length (upper bounds inclusive: 64, 128, 256, 512, 1024, 1514,
/// 9000, larger).
pub fn size_bucket(len: u32) -> usize {
    match len {
        0..=64 => 0,
        65..=128 => 1,
        129..=256 => 2,
        257..=512 => 3,
        513..=1024 => 4,
        1025..=1514 => 5,
        1515..=9000 => 6,
        _ => 7,
    }
}

/// Inter-arrival bucket (upper bounds inclusive: 10 µs, 100 µs, 1 ms, 10 ms, 100 ms, 1 s, 10 s,
/// larger).
pub fn iat_bucket(ns: u64) -> usize {
    match ns {
        0..=10_000 => 0,
        10_001..=100_000 => 1,
        100_001..=1_000_000 => 2,
        1_000_001..=10_000_000 => 3,
        10_000_001..=100_000_000 => 4,
        100_000_001..=1_000_000_000 => 5,
        1_000_000_001..=10_000_000_000 => 6,
        _ => 7,
    }
}

impl FlowState {
    /// A new flow's state; its first packet decides `client_dir` (a TCP SYN-ACK makes the
    /// receiver the client).
    pub fn new_for(p: &Parsed) -> FlowState {
        let mut client_dir = p.dir;
        if p.is_tcp && p.flags & 0x12 == 0x12 {
            client_dir ^= 1;
        }
        FlowState {
            client_dir,
            ..FlowState::default()
        }
    }

    /// Counts one parsed packet at `now` ns (ACCOUNTING.md, "Per-flow state").
    pub fn count(&mut self, p: &Parsed, now: u64) {
        let d = usize::from(p.dir & 1);
        if self.packets[d] == 0 {
            self.first_ns[d] = now;
            self.last_ns[d] = now;
        } else if now >= self.last_ns[d] {
            let b = &mut self.iat_hist[d][iat_bucket(now - self.last_ns[d])];
            *b = b.wrapping_add(1);
            self.last_ns[d] = now;
        }
        // u32 counters wrap like the kernel's; u64 ones cannot overflow in practice.
        self.packets[d] = self.packets[d].wrapping_add(1);
        self.bytes[d] = self.bytes[d].wrapping_add(u64::from(p.ip_len));
        let b = &mut self.size_hist[d][size_bucket(p.ip_len)];
        *b = b.wrapping_add(1);
        if !p.is_tcp {
            return;
        }
        self.tcp_flags[d] |= p.flags;
        if p.flags & 0x04 != 0 {
            self.resets[d] = self.resets[d].wrapping_add(1);
        }
        let len = p
            .payload
            .wrapping_add(u32::from((p.flags >> 1) & 1))
            .wrapping_add(u32::from(p.flags & 1));
        if len == 0 {
            return;
        }
        let end = p.seq.wrapping_add(len);
        if self.seq_valid[d] == 0 {
            self.next_seq[d] = end;
            self.seq_valid[d] = 1;
            return;
        }
        let diff = p.seq.wrapping_sub(self.next_seq[d]) as i32;
        if diff == 0 {
            self.next_seq[d] = end;
        } else if diff < 0 {
            self.retrans[d] = self.retrans[d].wrapping_add(1);
            if (end.wrapping_sub(self.next_seq[d]) as i32) > 0 {
                self.next_seq[d] = end;
            }
        } else {
            self.seq_errors[d] = self.seq_errors[d].wrapping_add(1);
            self.next_seq[d] = end;
        }
    }

    /// Packets in both directions.
    pub fn total_packets(&self) -> u64 {
        self.packets[0] + self.packets[1]
    }

    /// Earliest first-packet time over the directions that have packets, ns.
    pub fn first_seen_ns(&self) -> u64 {
        (0..2)
            .filter(|&d| self.packets[d] > 0)
            .map(|d| self.first_ns[d])
            .min()
            .unwrap_or(0)
    }

    /// Latest packet time over both directions, ns.
    pub fn last_seen_ns(&self) -> u64 {
        self.last_ns[0].max(self.last_ns[1])
    }
}

/// Why a packet goes to user space (the kernel's `enum send_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendReason {
    /// One of the first `first_packets` packets of the flow.
    FirstPackets = 1,
    /// Verdict 1: whole packet up to `snap_len`.
    Classifying = 2,
    /// Verdict 2: L4 header + `hdr_payload` bytes.
    Headers = 3,
}

/// Bytes of each frame user space gets while a flow is new or classifying: a whole MTU-sized
/// frame. A TLS ClientHello is often longer than 512 bytes and a QUIC Initial is at least 1200
/// bytes and decrypts only whole, so a shorter snap leaves flows unclassified (nDPI agreement on
/// the shared captures: 92.1 % at 256 bytes, 94.3 % at 512, 98.2 % whole; see BENCHMARKS.md).
/// Equal to the kernel program's `SNAP_MAX`.
pub const DEFAULT_SNAP_LEN: u32 = 2048;

/// What the kernel program's configuration says about sending (`struct probe_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendConfig {
    /// Packets of a new flow always sent (default 8).
    pub first_packets: u32,
    /// Bytes sent per packet while classifying (default [`DEFAULT_SNAP_LEN`]; the kernel clamps
    /// it to its `SNAP_MAX`, the same 2048).
    pub snap_len: u32,
    /// Payload bytes after the L4 header for verdict 2 (default 64).
    pub hdr_payload: u32,
}

impl Default for SendConfig {
    fn default() -> Self {
        SendConfig {
            first_packets: 8,
            snap_len: DEFAULT_SNAP_LEN,
            hdr_payload: 64,
        }
    }
}

/// The "send to user space?" rule: `before` is the flow's packet count before this packet,
/// `verdict` the flow's verdict. Returns the reason, or `None` for counters only.
pub fn send_rule(before: u64, verdict: u8, first_packets: u32) -> Option<SendReason> {
    if before < u64::from(first_packets) {
        Some(SendReason::FirstPackets)
    } else {
        match verdict {
            VERDICT_CLASSIFYING => Some(SendReason::Classifying),
            VERDICT_HEADERS => Some(SendReason::Headers),
            _ => None,
        }
    }
}

/// How many bytes of the frame are copied for `reason` (before the frame-length bound).
pub fn send_len(reason: SendReason, p: &Parsed, cfg: &SendConfig) -> usize {
    match reason {
        SendReason::Headers => {
            usize::from(p.l4_off) + usize::from(p.l4_hdr) + cfg.hdr_payload as usize
        }
        _ => cfg.snap_len as usize,
    }
}
