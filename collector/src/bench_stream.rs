//! Synthetic export streams for benchmarks: the collector's decode benchmark (`benches/decode.rs`),
//! and `examples/gen_stream.rs`, which writes them as an RFC 5655 IPFIX file for
//! `supernetflow replay` and `bench/loopback.sh`.
//!
//! Three shapes, every message generated here (no capture is shipped):
//! - [`Shape::Baseline`]: the stream of shared/BASELINES.md — IPFIX, one template of 15 common
//!   elements (IPv4 addresses, ports, protocol, TCP flags, octets, packets,
//!   flowStart/EndMilliseconds, ingress/egress interface, source/destination AS, ToS), 27 records
//!   a message, template resent every [`TEMPLATE_EVERY`] messages, unique five-tuples.
//! - [`Shape::CiscoV9`]: NetFlow v9 with the 32-field template 313 of the Cisco capture in pmacct's
//!   test 101 (MPLS label stack, IPv4 and IPv6 addresses, sysUptime times, sampler id, VRFs),
//!   24 records a message.
//! - [`Shape::Softflowd`]: IPFIX as softflowd 1.1.0 `-v 10 -A milli` sends it: templates 1024
//!   (IPv4 TCP/UDP) and 1025 (IPv4 ICMP), options template 256 (systemInitTime, sampling), 24 + 2
//!   records a message.
//!
//! Record `i` of a stream always has the same five-tuple, and no two records share one (up to
//! 2^32 records), so aggregating collectors (nfacctd's print plugin) cannot merge them.

use std::io::Write;

/// Messages between two announcements of the template(s), counting the announcing message.
pub const TEMPLATE_EVERY: u64 = 64;
/// Export time of the first message, Unix seconds (2024-01-01T00:00:00Z).
pub const BASE_EXPORT_SECS: u32 = 1_704_067_200;
/// Observation domain / source id of every message.
pub const DOMAIN: u32 = 1;

/// Which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Baseline,
    CiscoV9,
    Softflowd,
}

impl Shape {
    pub fn parse(s: &str) -> Option<Shape> {
        match s {
            "baseline" => Some(Shape::Baseline),
            "cisco-v9" => Some(Shape::CiscoV9),
            "softflowd" => Some(Shape::Softflowd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shape::Baseline => "baseline",
            Shape::CiscoV9 => "cisco-v9",
            Shape::Softflowd => "softflowd",
        }
    }

    /// Flow records in each message.
    pub fn records_per_message(self) -> usize {
        match self {
            Shape::Baseline => 27,
            Shape::CiscoV9 => 24,
            Shape::Softflowd => 26,
        }
    }

    pub fn is_ipfix(self) -> bool {
        self != Shape::CiscoV9
    }
}

/// (element id, length) lists of the templates.
const BASELINE_TEMPLATE: [(u16, u16); 15] = [
    (8, 4),   // sourceIPv4Address
    (12, 4),  // destinationIPv4Address
    (7, 2),   // sourceTransportPort
    (11, 2),  // destinationTransportPort
    (4, 1),   // protocolIdentifier
    (6, 2),   // tcpControlBits
    (1, 4),   // octetDeltaCount (reduced size)
    (2, 4),   // packetDeltaCount (reduced size)
    (152, 8), // flowStartMilliseconds
    (153, 8), // flowEndMilliseconds
    (10, 4),  // ingressInterface
    (14, 4),  // egressInterface
    (16, 4),  // bgpSourceAsNumber
    (17, 4),  // bgpDestinationAsNumber
    (5, 1),   // ipClassOfService
];
const BASELINE_TID: u16 = 256;

/// Template 313 of pmacct test 101 (NetFlow v9, Cisco), field for field.
const CISCO_TEMPLATE: [(u16, u16); 32] = [
    (70, 3),
    (71, 3),
    (72, 3),
    (73, 3),
    (74, 3),
    (75, 3),
    (10, 4),
    (14, 4),
    (1, 4),
    (2, 4),
    (21, 4),
    (22, 4),
    (47, 4),
    (140, 16),
    (27, 16),
    (28, 16),
    (31, 3),
    (91, 1),
    (64, 4),
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (46, 1),
    (89, 1),
    (61, 1),
    (5, 1),
    (4, 1),
    (6, 1),
    (48, 2),
    (234, 4),
    (235, 4),
];
const CISCO_TID: u16 = 313;

/// softflowd 1.1.0 `-v 10 -A milli`, IPv4 TCP/UDP.
const SFD_V4_TEMPLATE: [(u16, u16); 16] = [
    (8, 4),
    (12, 4),
    (152, 8),
    (153, 8),
    (1, 4),
    (2, 4),
    (10, 4),
    (14, 4),
    (61, 1),
    (136, 1),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (60, 1),
    (5, 1),
];
/// softflowd 1.1.0, IPv4 ICMP.
const SFD_ICMP_TEMPLATE: [(u16, u16); 14] = [
    (8, 4),
    (12, 4),
    (152, 8),
    (153, 8),
    (1, 4),
    (2, 4),
    (10, 4),
    (14, 4),
    (61, 1),
    (136, 1),
    (32, 2),
    (4, 1),
    (60, 1),
    (5, 1),
];
/// softflowd 1.1.0 options template 256: scope meteringProcessId; systemInitTimeMilliseconds,
/// selectorAlgorithm, samplingPacketInterval, samplingPacketSpace... as sent.
const SFD_OPTIONS_TEMPLATE: [(u16, u16); 6] =
    [(143, 4), (160, 8), (305, 4), (306, 4), (304, 2), (82, 16)];
const SFD_V4_TID: u16 = 1024;
const SFD_ICMP_TID: u16 = 1025;
const SFD_OPTIONS_TID: u16 = 256;
const SFD_ICMP_PER_MESSAGE: usize = 2;

/// A generator of one stream.
#[derive(Debug, Clone)]
pub struct StreamGen {
    pub shape: Shape,
    /// Messages generated so far.
    pub messages: u64,
    /// Flow records generated so far (the next record's index).
    pub records: u64,
    /// IPFIX: data records sent in the domain so far (the header's sequence number).
    sequence: u32,
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}
/// Writes the low `len` bytes of `v`, big-endian.
fn put_n(b: &mut Vec<u8>, v: u64, len: u16) {
    let bytes = v.to_be_bytes();
    let len = usize::from(len);
    if len > 8 {
        b.resize(b.len() + len - 8, 0);
    }
    b.extend_from_slice(&bytes[8 - len.min(8)..]);
}

fn template_record(b: &mut Vec<u8>, tid: u16, fields: &[(u16, u16)]) {
    put_u16(b, tid);
    put_u16(b, fields.len() as u16);
    for (id, len) in fields {
        put_u16(b, *id);
        put_u16(b, *len);
    }
}

/// Starts a set; returns where its length goes.
fn open_set(b: &mut Vec<u8>, id: u16) -> usize {
    let at = b.len();
    put_u16(b, id);
    put_u16(b, 0);
    at
}
fn close_set(b: &mut [u8], at: usize) {
    let len = (b.len() - at) as u16;
    b[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// The five-tuple and counters of record `i`: unique (src, dst, sport, dport) per `i`.
struct Flow {
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
    proto: u8,
    octets: u64,
    packets: u64,
    start_ms: i64,
    end_ms: i64,
    input: u32,
    output: u32,
}

fn flow(i: u64, export_ms: i64) -> Flow {
    // 10.0.0.0/8 sources carry the low 24 bits of i, the source port the next 16.
    let src = 0x0a00_0000 | (i as u32 & 0x00ff_ffff);
    let hi = (i >> 24) as u32;
    let dst = 0xc0a8_0000 | ((i as u32).wrapping_mul(2_654_435_761) >> 16);
    let sport = 1024u16.wrapping_add(hi as u16);
    let dport = [443u16, 80, 53, 8080, 22, 123][(i % 6) as usize];
    let proto = if dport == 53 || dport == 123 { 17 } else { 6 };
    let packets = 1 + i % 97;
    let octets = packets * (40 + i % 1400);
    let end_ms = export_ms - (i % 1000) as i64;
    let start_ms = end_ms - (i % 60_000) as i64;
    Flow {
        src,
        dst,
        sport,
        dport,
        proto,
        octets,
        packets,
        start_ms,
        end_ms,
        input: 1 + (i % 48) as u32,
        output: 1 + (i % 12) as u32,
    }
}

impl StreamGen {
    pub fn new(shape: Shape) -> Self {
        StreamGen {
            shape,
            messages: 0,
            records: 0,
            sequence: 0,
        }
    }

    /// Appends the next export message to `out` (cleared first); returns its flow records.
    pub fn next_message(&mut self, out: &mut Vec<u8>) -> usize {
        out.clear();
        let announce = self.messages % TEMPLATE_EVERY == 0;
        let export_secs = BASE_EXPORT_SECS + (self.messages / 4096) as u32;
        let export_ms = i64::from(export_secs) * 1000;
        let n = self.shape.records_per_message();
        match self.shape {
            Shape::Baseline | Shape::Softflowd => {
                // IPFIX header; length patched at the end.
                put_u16(out, 10);
                put_u16(out, 0);
                put_u32(out, export_secs);
                put_u32(out, self.sequence);
                put_u32(out, DOMAIN);
                if announce {
                    let at = open_set(out, 2);
                    if self.shape == Shape::Baseline {
                        template_record(out, BASELINE_TID, &BASELINE_TEMPLATE);
                    } else {
                        template_record(out, SFD_V4_TID, &SFD_V4_TEMPLATE);
                        template_record(out, SFD_ICMP_TID, &SFD_ICMP_TEMPLATE);
                    }
                    close_set(out, at);
                    if self.shape == Shape::Softflowd {
                        let at = open_set(out, 3);
                        put_u16(out, SFD_OPTIONS_TID);
                        put_u16(out, SFD_OPTIONS_TEMPLATE.len() as u16);
                        put_u16(out, 1); // scope field count
                        for (id, len) in SFD_OPTIONS_TEMPLATE {
                            put_u16(out, id);
                            put_u16(out, len);
                        }
                        close_set(out, at);
                        let at = open_set(out, SFD_OPTIONS_TID);
                        put_u32(out, 1); // meteringProcessId
                        put_n(out, (export_ms - 3_600_000) as u64, 8); // systemInitTimeMilliseconds
                        put_u32(out, 1); // samplingPacketInterval
                        put_u32(out, 0); // samplingPacketSpace
                        put_u16(out, 1); // selectorAlgorithm: systematic count-based
                        out.extend_from_slice(&[0u8; 16]); // interfaceName
                        close_set(out, at);
                    }
                }
                if self.shape == Shape::Baseline {
                    let at = open_set(out, BASELINE_TID);
                    for _ in 0..n {
                        let f = flow(self.records, export_ms);
                        self.baseline_record(out, &f);
                        self.records += 1;
                    }
                    close_set(out, at);
                } else {
                    let at = open_set(out, SFD_V4_TID);
                    for _ in 0..n - SFD_ICMP_PER_MESSAGE {
                        let f = flow(self.records, export_ms);
                        self.softflowd_record(out, &f, false);
                        self.records += 1;
                    }
                    close_set(out, at);
                    let at = open_set(out, SFD_ICMP_TID);
                    for _ in 0..SFD_ICMP_PER_MESSAGE {
                        let f = flow(self.records, export_ms);
                        self.softflowd_record(out, &f, true);
                        self.records += 1;
                    }
                    close_set(out, at);
                }
                let len = out.len() as u16;
                out[2..4].copy_from_slice(&len.to_be_bytes());
                self.sequence = self.sequence.wrapping_add(n as u32);
            }
            Shape::CiscoV9 => {
                let uptime_ms: u32 = 86_400_000 + (self.messages as u32).wrapping_mul(7);
                let sets = if announce { 2 } else { 1 };
                put_u16(out, 9);
                put_u16(out, (n + sets - 1) as u16); // count: template records + data records
                put_u32(out, uptime_ms);
                put_u32(out, export_secs);
                put_u32(out, self.messages as u32); // v9 counts packets
                put_u32(out, DOMAIN);
                if announce {
                    let at = open_set(out, 0);
                    template_record(out, CISCO_TID, &CISCO_TEMPLATE);
                    close_set(out, at);
                }
                let at = open_set(out, CISCO_TID);
                for _ in 0..n {
                    let f = flow(self.records, export_ms);
                    let v6 = self.records % 4 == 3;
                    let back = |ms: i64| uptime_ms.wrapping_sub((export_ms - ms) as u32);
                    for (id, len) in CISCO_TEMPLATE {
                        let v: u64 = match id {
                            70 => 0x01_0001 | (u64::from(f.input) << 4),
                            71 => 0x00_0101,
                            72..=75 => 0,
                            10 => u64::from(f.input),
                            14 => u64::from(f.output),
                            1 => f.octets,
                            2 => f.packets,
                            21 => u64::from(back(f.end_ms)),
                            22 => u64::from(back(f.start_ms)),
                            47 => 0x0a00_00fe,
                            140 | 64 | 31 => 0,
                            27 | 28 => {
                                // 16 bytes: the v6 form of the addresses, or zeros.
                                if v6 {
                                    let a = if id == 27 { f.src } else { f.dst };
                                    out.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                                    out.extend_from_slice(&[0; 8]);
                                    put_u32(out, a);
                                } else {
                                    out.extend_from_slice(&[0; 16]);
                                }
                                continue;
                            }
                            91 => 32,
                            8 => u64::from(if v6 { 0 } else { f.src }),
                            12 => u64::from(if v6 { 0 } else { f.dst }),
                            7 => u64::from(f.sport),
                            11 => u64::from(f.dport),
                            46 => 1,
                            89 => 0x40,
                            61 => 0,
                            5 => 0,
                            4 => u64::from(f.proto),
                            6 => 0x18,
                            48 => 1,
                            234 | 235 => 0x6000_0000 | (self.records % 3),
                            _ => 0,
                        };
                        put_n(out, v, len);
                    }
                    self.records += 1;
                }
                close_set(out, at);
            }
        }
        self.messages += 1;
        n
    }

    fn baseline_record(&self, out: &mut Vec<u8>, f: &Flow) {
        put_u32(out, f.src);
        put_u32(out, f.dst);
        put_u16(out, f.sport);
        put_u16(out, f.dport);
        out.push(f.proto);
        put_u16(out, if f.proto == 6 { 0x1b } else { 0 });
        put_u32(out, f.octets as u32);
        put_u32(out, f.packets as u32);
        put_n(out, f.start_ms as u64, 8);
        put_n(out, f.end_ms as u64, 8);
        put_u32(out, f.input);
        put_u32(out, f.output);
        put_u32(out, 64_500 + (f.input % 10));
        put_u32(out, 15_169 + (f.output % 3));
        out.push(0);
    }

    fn softflowd_record(&self, out: &mut Vec<u8>, f: &Flow, icmp: bool) {
        put_u32(out, f.src);
        put_u32(out, f.dst);
        put_n(out, f.start_ms as u64, 8);
        put_n(out, f.end_ms as u64, 8);
        put_u32(out, f.octets as u32);
        put_u32(out, f.packets as u32);
        put_u32(out, 0);
        put_u32(out, 0);
        out.push(0); // flowDirection
        out.push(1 + (f.packets % 5) as u8); // flowEndReason
        if icmp {
            put_u16(out, 0x0800); // icmpTypeCodeIPv4: echo request
            out.push(1);
        } else {
            put_u16(out, f.sport);
            put_u16(out, f.dport);
            out.push(f.proto);
            out.push(if f.proto == 6 { 0x1b } else { 0 });
        }
        out.push(4); // ipVersion
        out.push(0); // ipClassOfService
    }
}

/// `count` consecutive messages of a stream, with the records they carry.
pub fn messages(shape: Shape, count: usize) -> (Vec<Vec<u8>>, u64) {
    let mut g = StreamGen::new(shape);
    let mut out = Vec::with_capacity(count);
    let mut records = 0u64;
    for _ in 0..count {
        let mut m = Vec::with_capacity(4096);
        records += g.next_message(&mut m) as u64;
        out.push(m);
    }
    (out, records)
}

/// Writes at least `records` flow records of an IPFIX stream as an RFC 5655 file (messages back
/// to back). Returns (messages, records) written.
pub fn write_ipfix_file(
    shape: Shape,
    records: u64,
    w: &mut impl Write,
) -> std::io::Result<(u64, u64)> {
    if !shape.is_ipfix() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "an IPFIX file holds IPFIX messages only",
        ));
    }
    let mut g = StreamGen::new(shape);
    let mut m = Vec::with_capacity(4096);
    while g.records < records {
        g.next_message(&mut m);
        w.write_all(&m)?;
    }
    Ok((g.messages, g.records))
}

/// Flow records in each of a sequence of export messages (v5, v9, IPFIX), in order: data records
/// are counted against the templates seen earlier in the sequence (per exporter key, domain and
/// template id); data sets of unknown templates are estimated at 50 bytes a record. Options data
/// records are not flow records and are not counted.
pub fn count_records<'a, K: std::hash::Hash + Eq + Copy>(
    msgs: impl IntoIterator<Item = (K, &'a [u8])>,
) -> Vec<u32> {
    use std::collections::HashMap;
    // (exporter, domain, version, template id) -> (options, fixed record length, variable fields)
    type Shape = (bool, usize, bool);
    let mut templates: HashMap<(K, u32, u16, u16), Shape> = HashMap::new();
    let be16 = |b: &[u8], at: usize| -> Option<usize> {
        b.get(at..at + 2)
            .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
    };
    let mut counts = Vec::new();
    for (key, m) in msgs {
        let version = be16(m, 0).unwrap_or(0);
        let (hdr, domain_at) = match version {
            5 => {
                counts.push(be16(m, 2).unwrap_or(0) as u32);
                continue;
            }
            9 => (20, 16),
            10 => (16, 12),
            _ => {
                counts.push(0);
                continue;
            }
        };
        let end = if version == 10 {
            be16(m, 2).unwrap_or(0).min(m.len())
        } else {
            m.len()
        };
        let domain = m
            .get(domain_at..domain_at + 4)
            .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
            .unwrap_or(0);
        let mut n = 0u32;
        let mut off = hdr;
        while off + 4 <= end {
            let (Some(id), Some(len)) = (be16(m, off), be16(m, off + 2)) else {
                break;
            };
            if len < 4 || off + len > end {
                break;
            }
            let set = &m[off..off + len];
            off += len;
            let options = matches!((version, id), (10, 3) | (9, 1));
            if matches!((version, id), (10, 2) | (10, 3) | (9, 0) | (9, 1)) {
                let mut p = 4;
                while p + 4 <= set.len() {
                    let tid = be16(set, p).unwrap_or(0) as u16;
                    let (mut fixed, mut var) = (0usize, false);
                    if version == 9 && options {
                        let (sl, ol) =
                            (be16(set, p + 2).unwrap_or(0), be16(set, p + 4).unwrap_or(0));
                        let mut q = p + 6;
                        while q + 4 <= (p + 6 + sl + ol).min(set.len()) {
                            fixed += be16(set, q + 2).unwrap_or(0);
                            q += 4;
                        }
                        p += 6 + sl + ol;
                    } else {
                        let count = be16(set, p + 2).unwrap_or(0);
                        let mut q = p + if options && count > 0 { 6 } else { 4 };
                        for _ in 0..count {
                            let (Some(fid), Some(flen)) = (be16(set, q), be16(set, q + 2)) else {
                                break;
                            };
                            if flen == 65535 {
                                var = true;
                                fixed += 1;
                            } else {
                                fixed += flen;
                            }
                            q += if version == 10 && fid & 0x8000 != 0 {
                                8
                            } else {
                                4
                            };
                        }
                        if count == 0 && p + 4 >= set.len() {
                            break;
                        }
                        p = q;
                    }
                    if tid >= 256 && fixed > 0 {
                        templates.insert((key, domain, version as u16, tid), (options, fixed, var));
                    }
                }
            } else if id >= 256 {
                let body = set.len() - 4;
                n += match templates
                    .get(&(key, domain, version as u16, id as u16))
                    .copied()
                {
                    Some((true, _, _)) => 0,
                    Some((false, fixed, false)) => (body / fixed) as u32,
                    // Variable-length or unknown: an estimate.
                    Some((false, fixed, true)) => (body / fixed.max(50)).max(1) as u32,
                    None => (body / 50).max(1) as u32,
                };
            }
        }
        counts.push(n);
    }
    counts
}

/// What [`send_paced`] sent.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct SendStats {
    pub messages: u64,
    pub records: u64,
    pub bytes: u64,
    /// Messages the kernel refused (not counted in `messages`/`records`).
    pub send_errors: u64,
    pub elapsed_s: f64,
    /// Batch size used (messages per sendmmsg call, at most).
    pub batch: usize,
}

/// How [`send_paced`] paces and stops.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Flow records per second; `None` sends as fast as the socket takes them.
    pub rate: Option<f64>,
    /// Passes over the message list (ignored when `duration` is set).
    pub repeat: u64,
    /// Loop over the messages until this many seconds of the schedule have passed.
    pub duration: Option<f64>,
    /// Messages per sendmmsg call at most; the batch is also held to about 1 ms of the rate, so
    /// the stream stays smooth at low rates.
    pub max_batch: usize,
}

/// Sends `msgs` (payload, flow records) to `to` with sendmmsg(2) in batches, paced by cumulative
/// schedule (no drift: each batch leaves when the records before it are due).
pub fn send_paced(
    sock: &std::net::UdpSocket,
    to: std::net::SocketAddr,
    msgs: &[(&[u8], u32)],
    pace: Pace,
) -> std::io::Result<SendStats> {
    use std::os::unix::io::AsRawFd;
    use std::time::{Duration, Instant};
    let mut st = SendStats::default();
    if msgs.is_empty() {
        return Ok(st);
    }
    let avg_records =
        (msgs.iter().map(|m| u64::from(m.1)).sum::<u64>() as f64 / msgs.len() as f64).max(1.0);
    let batch = match pace.rate {
        Some(r) => ((r / avg_records / 1000.0).ceil() as usize).clamp(1, pace.max_batch.max(1)),
        None => pace.max_batch.max(1),
    };
    st.batch = batch;
    let addr = socket2::SockAddr::from(to);
    let fd = sock.as_raw_fd();
    let total_passes = if pace.duration.is_some() {
        u64::MAX
    } else {
        pace.repeat
    };
    let records_limit = match (pace.duration, pace.rate) {
        (Some(d), Some(r)) => Some((d * r).round() as u64),
        _ => None,
    };
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(batch);
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(batch);
    let start = Instant::now();
    let mut sched_records = 0u64; // records handed to the kernel or refused: the schedule
    let mut pass = 0u64;
    let mut i = 0usize;
    'outer: while pass < total_passes {
        if let Some(d) = pace.duration {
            if pace.rate.is_none() && start.elapsed().as_secs_f64() >= d {
                break;
            }
        }
        if let Some(lim) = records_limit {
            if sched_records >= lim {
                break;
            }
        }
        // The next batch: up to `batch` messages, not past the end of the list.
        let j = (i + batch).min(msgs.len());
        let chunk = &msgs[i..j];
        if let Some(rate) = pace.rate {
            let due = Duration::from_secs_f64(sched_records as f64 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        iov.clear();
        hdrs.clear();
        for (p, _) in chunk {
            iov.push(libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            });
        }
        for iv in iov.iter_mut().take(chunk.len()) {
            // SAFETY: zeroed msghdr is a valid empty header; pointers set below outlive the call.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = addr.len();
            h.msg_hdr.msg_iov = iv as *mut libc::iovec;
            h.msg_hdr.msg_iovlen = 1;
            hdrs.push(h);
        }
        let mut done = 0usize;
        while done < hdrs.len() {
            // SAFETY: hdrs[done..] are initialised mmsghdrs pointing at live buffers.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs.as_mut_ptr().add(done),
                    (hdrs.len() - done) as libc::c_uint,
                    0,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    _ if e.raw_os_error() == Some(libc::ENOBUFS)
                        || e.raw_os_error() == Some(libc::ECONNREFUSED) =>
                    {
                        // One message refused: skip it, count it.
                        st.send_errors += 1;
                        sched_records += u64::from(chunk[done].1);
                        done += 1;
                    }
                    _ => return Err(e),
                }
                continue;
            }
            for (p, n) in &chunk[done..done + r as usize] {
                st.messages += 1;
                st.records += u64::from(*n);
                st.bytes += p.len() as u64;
                sched_records += u64::from(*n);
            }
            done += r as usize;
        }
        i = j;
        if i == msgs.len() {
            i = 0;
            pass += 1;
        }
        if records_limit.is_none() && pace.duration.is_none() && pass >= total_passes {
            break 'outer;
        }
    }
    st.elapsed_s = start.elapsed().as_secs_f64();
    Ok(st)
}
