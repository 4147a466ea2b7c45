//! NetFlow v5, decoded by the project (netgauze-flow-pkt has no v5).
//!
//! Layout (Cisco "NetFlow Export Datagram Format", version 5): a 24-byte header followed by `count`
//! fixed 48-byte records.
//!
//! ```text
//! header: version(2) count(2) sysUptime_ms(4) unix_secs(4) unix_nsecs(4) flow_sequence(4)
//!         engine_type(1) engine_id(1) sampling(2: mode in the top 2 bits, interval in the low 14)
//! record: srcaddr(4) dstaddr(4) nexthop(4) input(2) output(2) dPkts(4) dOctets(4) first(4) last(4)
//!         srcport(2) dstport(2) pad1(1) tcp_flags(1) prot(1) tos(1) src_as(2) dst_as(2)
//!         src_mask(1) dst_mask(1) pad2(2)
//! ```

use thiserror::Error;

pub const HEADER_LEN: usize = 24;
pub const RECORD_LEN: usize = 48;
/// Cisco caps a v5 datagram at 30 records.
pub const MAX_RECORDS: u16 = 30;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum V5Error {
    #[error("NetFlow v5 message of {len} bytes is shorter than its 24-byte header")]
    ShortHeader { len: usize },
    #[error("NetFlow v5 header says {count} records, more than the 30 allowed")]
    TooManyRecords { count: u16 },
    #[error(
        "NetFlow v5 header says {count} records ({need} bytes) but the message has {len} bytes"
    )]
    Truncated { count: u16, need: usize, len: usize },
}

/// The v5 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V5Header {
    pub count: u16,
    pub sys_uptime_ms: u32,
    pub unix_secs: u32,
    pub unix_nsecs: u32,
    pub flow_sequence: u32,
    pub engine_type: u8,
    pub engine_id: u8,
    pub sampling_mode: u8,
    pub sampling_interval: u16,
}

impl V5Header {
    /// Export time in UTC ms.
    pub fn export_time_ms(&self) -> i64 {
        i64::from(self.unix_secs) * 1000 + i64::from(self.unix_nsecs / 1_000_000)
    }

    /// Converts a sysUptime-relative time (ms) to UTC ms. The difference is taken modulo 2^32 and read
    /// as signed, so uptime wrap-around and small "future" offsets both come out right.
    pub fn absolute_ms(&self, uptime_ms: u32) -> i64 {
        let back = self.sys_uptime_ms.wrapping_sub(uptime_ms) as i32;
        self.export_time_ms() - i64::from(back)
    }
}

/// One v5 flow record, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V5Record {
    pub src_addr: [u8; 4],
    pub dst_addr: [u8; 4],
    pub next_hop: [u8; 4],
    pub input: u16,
    pub output: u16,
    pub packets: u32,
    pub octets: u32,
    pub first: u32,
    pub last: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp_flags: u8,
    pub protocol: u8,
    pub tos: u8,
    pub src_as: u16,
    pub dst_as: u16,
    pub src_mask: u8,
    pub dst_mask: u8,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn ip4(b: &[u8], at: usize) -> [u8; 4] {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

/// A decoded v5 message, and what was wrong with its header if anything.
pub type Decoded = (V5Header, Vec<V5Record>, Option<V5Error>);

/// Decodes a v5 message. Every length is checked before any read. A header whose record count
/// disagrees with the message length is reported, and the whole records that are there are
/// decoded (as tshark does).
pub fn decode(msg: &[u8]) -> Result<Decoded, V5Error> {
    if msg.len() < HEADER_LEN {
        return Err(V5Error::ShortHeader { len: msg.len() });
    }
    let count = be16(msg, 2);
    let fit = (msg.len() - HEADER_LEN) / RECORD_LEN;
    let problem = if count > MAX_RECORDS {
        Some(V5Error::TooManyRecords { count })
    } else if usize::from(count) > fit {
        Some(V5Error::Truncated {
            count,
            need: HEADER_LEN + usize::from(count) * RECORD_LEN,
            len: msg.len(),
        })
    } else {
        None
    };
    let n = if problem.is_some() {
        fit.min(usize::from(MAX_RECORDS))
    } else {
        usize::from(count)
    };
    let need = HEADER_LEN + n * RECORD_LEN;
    let sampling = be16(msg, 22);
    let header = V5Header {
        count: n as u16,
        sys_uptime_ms: be32(msg, 4),
        unix_secs: be32(msg, 8),
        unix_nsecs: be32(msg, 12),
        flow_sequence: be32(msg, 16),
        engine_type: msg[20],
        engine_id: msg[21],
        sampling_mode: (sampling >> 14) as u8,
        sampling_interval: sampling & 0x3fff,
    };
    let records = msg[HEADER_LEN..need]
        .chunks_exact(RECORD_LEN)
        .map(|r| V5Record {
            src_addr: ip4(r, 0),
            dst_addr: ip4(r, 4),
            next_hop: ip4(r, 8),
            input: be16(r, 12),
            output: be16(r, 14),
            packets: be32(r, 16),
            octets: be32(r, 20),
            first: be32(r, 24),
            last: be32(r, 28),
            src_port: be16(r, 32),
            dst_port: be16(r, 34),
            tcp_flags: r[37],
            protocol: r[38],
            tos: r[39],
            src_as: be16(r, 40),
            dst_as: be16(r, 42),
            src_mask: r[44],
            dst_mask: r[45],
        })
        .collect();
    Ok((header, records, problem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(count: u16) -> Vec<u8> {
        let mut m = vec![0u8; HEADER_LEN + usize::from(count) * RECORD_LEN];
        m[0..2].copy_from_slice(&5u16.to_be_bytes());
        m[2..4].copy_from_slice(&count.to_be_bytes());
        m[4..8].copy_from_slice(&10_000u32.to_be_bytes()); // uptime 10 s
        m[8..12].copy_from_slice(&1_600_000_000u32.to_be_bytes());
        m[12..16].copy_from_slice(&500_000_000u32.to_be_bytes());
        m[22..24].copy_from_slice(&(0x4000u16 | 100).to_be_bytes());
        for i in 0..usize::from(count) {
            let r = &mut m[HEADER_LEN + i * RECORD_LEN..][..RECORD_LEN];
            r[0..4].copy_from_slice(&[10, 0, 0, 1]);
            r[16..20].copy_from_slice(&3u32.to_be_bytes());
            r[20..24].copy_from_slice(&180u32.to_be_bytes());
            r[24..28].copy_from_slice(&4_000u32.to_be_bytes());
            r[28..32].copy_from_slice(&9_000u32.to_be_bytes());
            r[38] = 6;
        }
        m
    }

    #[test]
    fn decodes_header_and_records() {
        let (h, recs, problem) = decode(&message(2)).expect("valid message");
        assert_eq!(problem, None);
        assert_eq!(h.count, 2);
        assert_eq!(h.sampling_mode, 1);
        assert_eq!(h.sampling_interval, 100);
        assert_eq!(h.export_time_ms(), 1_600_000_000_500);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].packets, 3);
        assert_eq!(recs[0].octets, 180);
        assert_eq!(h.absolute_ms(recs[0].first), 1_600_000_000_500 - 6_000);
        assert_eq!(h.absolute_ms(recs[0].last), 1_600_000_000_500 - 1_000);
    }

    #[test]
    fn uptime_wrap_and_future_offsets() {
        let (mut h, _, _) = decode(&message(0)).expect("valid");
        h.sys_uptime_ms = 5; // uptime wrapped just after the flow started at 2^32 - 10
        assert_eq!(h.absolute_ms(u32::MAX - 9), h.export_time_ms() - 15);
        h.sys_uptime_ms = 1_000; // a flow stamped 20 ms "after" the export
        assert_eq!(h.absolute_ms(1_020), h.export_time_ms() + 20);
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(decode(&[0, 5]), Err(V5Error::ShortHeader { len: 2 }));
        let mut m = message(2);
        m.truncate(HEADER_LEN + RECORD_LEN);
        let (h, recs, problem) = decode(&m).expect("header is readable");
        assert!(matches!(problem, Some(V5Error::Truncated { .. })));
        assert_eq!((h.count, recs.len()), (1, 1));
        let mut m = message(1);
        m[2..4].copy_from_slice(&55582u16.to_be_bytes());
        let (_, recs, problem) = decode(&m).expect("header is readable");
        assert_eq!(problem, Some(V5Error::TooManyRecords { count: 55582 }));
        assert_eq!(recs.len(), 1);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let _ = decode(&bytes);
        }
    }
}
