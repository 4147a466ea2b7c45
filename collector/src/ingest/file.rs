//! Export messages out of files: pcap/pcapng captures of export traffic, raw payload files (one
//! message per file) and IPFIX files (RFC 5655: concatenated IPFIX messages).
//!
//! Captures are read with `pcap-file` and sliced with `etherparse` (Ethernet, 802.1Q, Linux SLL,
//! raw IP; IPv4 fragments reassembled). UDP datagrams whose payload looks like an export message
//! (version 5, 9 or 10 with a consistent length) become messages; IPFIX-over-TCP streams are
//! reassembled and framed by the IPFIX message length (RFC 7011 §10.4.1). Other traffic in the
//! capture (BMP/BGP sessions beside the export) is skipped and counted.

use etherparse::{defrag::IpDefragPool, NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;
use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use thiserror::Error;

/// One export message and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportMessage {
    /// Source of the export traffic; unspecified for raw payload and IPFIX files.
    pub exporter: SocketAddr,
    /// Capture time, UTC ms; `None` for raw payload and IPFIX files.
    pub received_ms: Option<i64>,
    pub payload: Vec<u8>,
}

/// What reading a capture skipped.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct FileStats {
    pub packets: u64,
    /// Frames that are not export traffic (other protocols, BMP/BGP, ...).
    pub skipped_packets: u64,
    /// Frames etherparse could not slice, or unsupported link types.
    pub bad_packets: u64,
    /// TCP stream bytes dropped at a sequence gap.
    pub tcp_gap_bytes: u64,
}

#[derive(Debug, Error)]
pub enum FileError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a readable capture: {reason}")]
    Capture { path: String, reason: String },
}

/// Reads every export message of one file, in order.
pub fn read_file(path: &Path, stats: &mut FileStats) -> Result<Vec<ExportMessage>, FileError> {
    let io = |source| FileError::Io {
        path: path.display().to_string(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let cap = |reason: String| FileError::Capture {
        path: path.display().to_string(),
        reason,
    };
    let magic = bytes
        .get(0..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    match magic {
        Some(0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1) => {
            read_pcap(&bytes[..], stats).map_err(cap)
        }
        Some(0x0a0d_0d0a) => read_pcapng(&bytes[..], stats).map_err(|e| cap(e.to_string())),
        _ => {
            let ipfix_file = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("ipfix"));
            Ok(split_raw(&bytes, ipfix_file))
        }
    }
}

/// A raw payload file holds one message (bytes past the message's own length are not part of
/// it, as in a UDP datagram); an IPFIX file (RFC 5655) holds several back to back.
fn split_raw(bytes: &[u8], ipfix_file: bool) -> Vec<ExportMessage> {
    let exporter = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    let one = |payload: &[u8]| ExportMessage {
        exporter,
        received_ms: None,
        payload: payload.to_vec(),
    };
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 16 && rest[0..2] == [0, 10] {
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len < 16 || len > rest.len() {
            break;
        }
        out.push(one(&rest[..len]));
        rest = &rest[len..];
        if !ipfix_file {
            return out;
        }
    }
    if !rest.is_empty() {
        // Not (or no longer) an IPFIX stream: hand the rest over as one message; the decoder
        // counts what it cannot read.
        out.push(one(rest));
    }
    out
}

/// Legacy pcap through `pcap-parser`, which (unlike pcap-file) accepts real captures whose
/// sub-second field is out of range (pmacct test 403 has such records).
fn read_pcap(bytes: &[u8], stats: &mut FileStats) -> Result<Vec<ExportMessage>, String> {
    let cap = pcap_parser::PcapCapture::from_file(bytes).map_err(|e| format!("{e:?}"))?;
    let link = DataLink::from(cap.header.network.0 as u32);
    let nanos = cap.header.is_nanosecond_precision();
    let mut x = Extractor::default();
    for b in &cap.blocks {
        let frac_ms = if nanos {
            b.ts_usec / 1_000_000
        } else {
            b.ts_usec / 1000
        };
        let ms = i64::from(b.ts_sec) * 1000 + i64::from(frac_ms);
        x.packet(link, b.data, ms, stats);
    }
    Ok(x.out)
}

fn read_pcapng(
    r: impl Read,
    stats: &mut FileStats,
) -> Result<Vec<ExportMessage>, pcap_file::PcapError> {
    let mut reader = PcapNgReader::new(r)?;
    // Per interface: link type and ticks per second (if_tsresol, default 10^6).
    let mut ifaces: Vec<(DataLink, u64)> = Vec::new();
    let mut x = Extractor::default();
    while let Some(block) = reader.next_block() {
        match block? {
            Block::SectionHeader(_) => ifaces.clear(),
            Block::InterfaceDescription(idb) => {
                let mut per_sec = 1_000_000u64;
                for o in &idb.options {
                    if let InterfaceDescriptionOption::IfTsResol(r) = o {
                        per_sec = if r & 0x80 != 0 {
                            1u64.checked_shl(u32::from(r & 0x7f)).unwrap_or(1_000_000)
                        } else {
                            10u64.checked_pow(u32::from(*r)).unwrap_or(1_000_000)
                        };
                    }
                }
                ifaces.push((idb.linktype, per_sec));
            }
            Block::EnhancedPacket(epb) => {
                // pcap-file hands the raw 64-bit tick count over as nanoseconds.
                let ticks = epb.timestamp.as_nanos() as u64;
                let (link, per_sec) = ifaces
                    .get(epb.interface_id as usize)
                    .copied()
                    .unwrap_or((DataLink::ETHERNET, 1_000_000));
                let ms = (u128::from(ticks) * 1000 / u128::from(per_sec.max(1))) as i64;
                x.packet(link, &epb.data, ms, stats);
            }
            Block::SimplePacket(spb) => {
                let link = ifaces.first().map(|i| i.0).unwrap_or(DataLink::ETHERNET);
                x.packet(link, &spb.data, 0, stats);
            }
            _ => {}
        }
    }
    Ok(x.out)
}

type StreamKey = (SocketAddr, SocketAddr);

#[derive(Default)]
struct TcpStream {
    next_seq: Option<u32>,
    buf: Vec<u8>,
    /// Decided at the stream's first payload: does it carry IPFIX?
    ipfix: Option<bool>,
}

#[derive(Default)]
struct Extractor {
    out: Vec<ExportMessage>,
    defrag: IpDefragPool<(), ()>,
    tcp: HashMap<StreamKey, TcpStream>,
}

impl Extractor {
    fn packet(&mut self, link: DataLink, data: &[u8], ms: i64, stats: &mut FileStats) {
        stats.packets += 1;
        let sliced = match link {
            DataLink::ETHERNET => SlicedPacket::from_ethernet(data),
            DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data),
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data),
            DataLink::NULL | DataLink::LOOP if data.len() > 4 => SlicedPacket::from_ip(&data[4..]),
            _ => {
                stats.bad_packets += 1;
                return;
            }
        };
        let Ok(p) = sliced else {
            stats.bad_packets += 1;
            return;
        };
        let (src, dst) = match &p.net {
            Some(NetSlice::Ipv4(v4)) => (
                IpAddr::V4(v4.header().source_addr()),
                IpAddr::V4(v4.header().destination_addr()),
            ),
            Some(NetSlice::Ipv6(v6)) => (
                IpAddr::V6(v6.header().source_addr()),
                IpAddr::V6(v6.header().destination_addr()),
            ),
            None => {
                stats.skipped_packets += 1;
                return;
            }
        };
        // Reassemble IP fragments (large IPFIX messages over UDP).
        match self.defrag.process_sliced_packet(&p, (), ()) {
            Ok(Some(whole)) => {
                if whole.ip_number == etherparse::IpNumber::UDP && whole.payload.len() >= 8 {
                    let sport = u16::from_be_bytes([whole.payload[0], whole.payload[1]]);
                    self.udp(SocketAddr::new(src, sport), &whole.payload[8..], ms, stats);
                } else {
                    stats.skipped_packets += 1;
                }
                return;
            }
            Ok(None) => {}
            Err(_) => {
                stats.bad_packets += 1;
                return;
            }
        }
        if p.is_ip_payload_fragmented() {
            return; // a fragment waiting for the rest
        }
        match &p.transport {
            Some(TransportSlice::Udp(u)) => self.udp(
                SocketAddr::new(src, u.source_port()),
                u.payload(),
                ms,
                stats,
            ),
            Some(TransportSlice::Tcp(t)) => {
                let key = (
                    SocketAddr::new(src, t.source_port()),
                    SocketAddr::new(dst, t.destination_port()),
                );
                self.tcp_segment(key, t.sequence_number(), t.syn(), t.payload(), ms, stats)
            }
            _ => stats.skipped_packets += 1,
        }
    }

    fn udp(&mut self, from: SocketAddr, payload: &[u8], ms: i64, stats: &mut FileStats) {
        if looks_like_export(payload) {
            self.out.push(ExportMessage {
                exporter: from,
                received_ms: Some(ms),
                payload: payload.to_vec(),
            });
        } else {
            stats.skipped_packets += 1;
        }
    }

    fn tcp_segment(
        &mut self,
        key: StreamKey,
        seq: u32,
        syn: bool,
        payload: &[u8],
        ms: i64,
        stats: &mut FileStats,
    ) {
        let s = self.tcp.entry(key).or_default();
        if syn {
            *s = TcpStream {
                next_seq: Some(seq.wrapping_add(1)),
                ..TcpStream::default()
            };
            return;
        }
        if payload.is_empty() {
            return;
        }
        let expected = *s.next_seq.get_or_insert(seq);
        let ahead = seq.wrapping_sub(expected) as i32;
        let data = if ahead == 0 {
            payload
        } else if ahead < 0 {
            // Retransmission, maybe overlapping new data.
            let dup = ahead.unsigned_abs() as usize;
            if dup >= payload.len() {
                return;
            }
            &payload[dup..]
        } else {
            // A gap: what is buffered can no longer be framed.
            stats.tcp_gap_bytes += s.buf.len() as u64 + ahead as u64;
            s.buf.clear();
            s.ipfix = None;
            payload
        };
        s.next_seq = Some(seq.wrapping_add(payload.len() as u32));
        if s.ipfix.is_none() && s.buf.is_empty() {
            s.ipfix = Some(data.len() >= 2 && data[0..2] == [0, 10]);
        }
        if s.ipfix != Some(true) {
            stats.skipped_packets += 1;
            return;
        }
        s.buf.extend_from_slice(data);
        // Frame IPFIX messages by their length field.
        let mut used = 0;
        while s.buf.len() - used >= 4 {
            let len = usize::from(u16::from_be_bytes([s.buf[used + 2], s.buf[used + 3]]));
            if s.buf[used..used + 2] != [0, 10] || len < 16 {
                stats.tcp_gap_bytes += (s.buf.len() - used) as u64;
                used = s.buf.len();
                s.ipfix = None;
                break;
            }
            if s.buf.len() - used < len {
                break;
            }
            self.out.push(ExportMessage {
                exporter: key.0,
                received_ms: Some(ms),
                payload: s.buf[used..used + len].to_vec(),
            });
            used += len;
        }
        s.buf.drain(..used);
    }
}

/// Version 5, 9 or 10 with a length that fits the datagram.
pub fn looks_like_export(p: &[u8]) -> bool {
    if p.len() < 4 {
        return false;
    }
    match u16::from_be_bytes([p[0], p[1]]) {
        5 => {
            // A bad count with whole records behind the header is still v5 (decoded, and counted).
            let count = usize::from(u16::from_be_bytes([p[2], p[3]]));
            p.len() >= 24 + 48 * count || (p.len() > 24 && (p.len() - 24) % 48 == 0)
        }
        9 => p.len() >= 20,
        10 => {
            let len = usize::from(u16::from_be_bytes([p[2], p[3]]));
            p.len() >= 16 && len >= 16 && len <= p.len()
        }
        _ => false,
    }
}
