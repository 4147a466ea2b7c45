//! Round-trip time of a flow, as a passive observer in the middle can measure it.
//!
//! - TCP, from data and ACKs: every segment that consumes sequence space (payload, SYN or FIN) is
//!   remembered with its time; an ACK in the other direction whose acknowledgement number equals a
//!   remembered segment's end gives a sample, the time from that segment to the ACK. This is
//!   Wireshark's `tcp.analysis.ack_rtt` rule (`packet-tcp.c`, `tcp_analyze_sequence_number`),
//!   kept the same so that the two can be compared: an ACK that covers several segments measures
//!   from the last one, a retransmitted segment from its first transmission, partly acknowledged
//!   segments are trimmed, and segments already acknowledged are forgotten. The handshake is the
//!   first such sample (SYN → SYN-ACK, then SYN-ACK → ACK). Seen from a tap, a sample is the
//!   round trip from the tap to the acknowledging side and back (the server side for client data,
//!   the client side for server data), including the receiver's delayed-ACK time.
//! - QUIC, from the spin bit (RFC 9000 §17.4, RFC 9312 §3.8.2): the bit flips once per round trip
//!   on short-header packets; the time between two flips seen in the client → server direction is
//!   one end-to-end RTT. Endpoints may disable it (always 0, or random per connection, RFC 9000
//!   §17.4): a flow whose spin bit never flips gives no samples, and flips closer than 1 ms apart
//!   are ignored as reordering.
//!
//! - TCP, from timestamps (RFC 7323), as passive ping (pping, ePPing) does: the first packet
//!   seen in one direction with a new TSval is remembered with its time; the first packet in the
//!   other direction whose TSecr echoes that value (ACK set) gives a sample, the time between the
//!   two. Like a data/ACK sample it is the round trip from the tap to the echoing endpoint and back
//!   (including its delayed-ACK time), but it needs no data: pure ACKs measure too, and
//!   retransmissions and SACK do not confuse it. Each direction measures its own half (client
//!   TSvals echoed by the server: tap → server → tap; server TSvals: tap → client → tap); the
//!   flow's samples pool both halves, as the data/ACK samples do, and each half is also kept on
//!   its own ([`TsRtt::half`]). The end-to-end RTT is the sum of the two halves. Used for the
//!   flow's RTT when both sides send the option ([`TsRtt::both`]); at most [`MAX_TSVALS`] TSvals
//!   remembered per direction (the oldest forgotten first), a TSecr clears the values it
//!   supersedes.
//!
//! State is bounded: at most [`MAX_UNACKED`] remembered segments per direction (beyond that new
//! segments are not remembered, like Wireshark's own limit), and the first [`MAX_SAMPLES`] samples
//! kept for the median.

/// Segments remembered per direction at most.
pub const MAX_UNACKED: usize = 256;
/// Samples kept for the median at most (count, sum, min and max cover all).
pub const MAX_SAMPLES: usize = 1024;

/// TSvals remembered per direction at most (timestamps estimator).
pub const MAX_TSVALS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Unacked {
    seq: u32,
    next: u32,
    ts: u64,
}

/// RTT samples of one flow.
#[derive(Debug, Clone, Default)]
pub struct RttSamples {
    /// Samples taken.
    pub count: u64,
    /// Sum of the samples, ns.
    pub sum_ns: u64,
    /// Smallest, ns.
    pub min_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
    kept: Vec<u64>,
}

impl RttSamples {
    /// Adds one sample.
    pub fn add(&mut self, ns: u64) {
        if self.count == 0 || ns < self.min_ns {
            self.min_ns = ns;
        }
        self.max_ns = self.max_ns.max(ns);
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        if self.kept.len() < MAX_SAMPLES {
            self.kept.push(ns);
        }
    }

    /// (min, avg, max) in ms, when there is a sample.
    pub fn min_avg_max_ms(&self) -> Option<(f32, f32, f32)> {
        (self.count > 0).then(|| {
            (
                self.min_ns as f32 / 1e6,
                (self.sum_ns as f64 / self.count as f64 / 1e6) as f32,
                self.max_ns as f32 / 1e6,
            )
        })
    }

    /// Median of the kept samples, ms (the mean of the two middle ones for an even count).
    pub fn median_ms(&self) -> Option<f64> {
        let mut v = self.kept.clone();
        v.sort_unstable();
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2] as f64 / 1e6),
            _ => Some((v[n / 2 - 1] + v[n / 2]) as f64 / 2e6),
        }
    }

    /// Merges another set's count, sum, min and max (not its kept samples).
    pub fn merge(&mut self, o: &RttSamples) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 || o.min_ns < self.min_ns {
            self.min_ns = o.min_ns;
        }
        self.max_ns = self.max_ns.max(o.max_ns);
        self.count += o.count;
        self.sum_ns = self.sum_ns.saturating_add(o.sum_ns);
    }
}

/// One TCP segment's header fields as the RTT estimator needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSeg {
    /// Direction (0 low → high, 1 high → low).
    pub dir: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful with ACK).
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Payload length (from the IP lengths).
    pub payload: u32,
}

/// Reads the acknowledgement number of the TCP header at `l4_off` of `frame[..cap]`.
pub fn tcp_ack(frame: &[u8], cap: usize, l4_off: usize) -> Option<u32> {
    let b = frame
        .get(..cap.min(frame.len()))?
        .get(l4_off + 8..l4_off + 12)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads the TCP timestamps option (TSval, TSecr) of the TCP header at `l4_off` of
/// `frame[..cap]`, `hdr` bytes long (the data offset). `None` without the option or when the
/// options were not captured.
pub fn tcp_timestamps(frame: &[u8], cap: usize, l4_off: usize, hdr: usize) -> Option<(u32, u32)> {
    let opts = frame
        .get(..cap.min(frame.len()))?
        .get(l4_off.checked_add(20)?..l4_off.checked_add(hdr)?)?;
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 {
                    return None;
                }
                if kind == 8 && len == 10 {
                    let b = opts.get(i + 2..i + 10)?;
                    return Some((
                        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                    ));
                }
                i += len;
            }
        }
    }
    None
}

/// TCP RTT from timestamps (passive ping's rule, see the module docs).
#[derive(Debug, Clone, Default)]
pub struct TsRtt {
    /// Per direction: TSvals first seen and when, oldest first.
    pending: [std::collections::VecDeque<(u32, u64)>; 2],
    /// Per direction: the last TSval recorded.
    last: [Option<u32>; 2],
    /// Per direction: the option was seen.
    seen: [bool; 2],
    /// Per direction: samples of the half measured by that direction's TSvals.
    halves: [RttSamples; 2],
    /// Samples, both halves.
    pub samples: RttSamples,
    /// Samples in the current window.
    pub window: RttSamples,
}

impl TsRtt {
    /// One segment in direction `dir` at `now` ns carrying the option (`flags` its flags byte).
    pub fn segment(&mut self, dir: u8, flags: u8, tsval: u32, tsecr: u32, now: u64) {
        let d = usize::from(dir & 1);
        self.seen[d] = true;
        // The echo first: it answers the other direction's values.
        if flags & 0x10 != 0 && tsecr != 0 {
            let list = &mut self.pending[d ^ 1];
            let mut rtt = None;
            while let Some(&(v, t)) = list.front() {
                if gt(v, tsecr) {
                    break;
                }
                if v == tsecr {
                    rtt = Some(now.saturating_sub(t));
                }
                list.pop_front();
            }
            if let Some(r) = rtt {
                self.halves[d ^ 1].add(r);
                self.samples.add(r);
                self.window.add(r);
            }
        }
        // A new TSval (later than the last one recorded) is remembered from its first packet.
        if self.last[d].is_none_or(|l| gt(tsval, l)) {
            self.last[d] = Some(tsval);
            let list = &mut self.pending[d];
            if list.len() >= MAX_TSVALS {
                list.pop_front();
            }
            list.push_back((tsval, now));
        }
    }

    /// Both sides sent the timestamps option.
    pub fn both(&self) -> bool {
        self.seen[0] && self.seen[1]
    }

    /// The samples of the half measured by direction `dir`'s TSvals (direction 0: low → high):
    /// from the tap to the endpoint that receives `dir`'s packets and back.
    pub fn half(&self, dir: u8) -> &RttSamples {
        &self.halves[usize::from(dir & 1)]
    }
}

fn gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// TCP RTT from data/ACK timing (Wireshark's `ack_rtt` rule).
#[derive(Debug, Clone, Default)]
pub struct TcpRtt {
    /// Newest first, per direction.
    unacked: [Vec<Unacked>; 2],
    /// Samples.
    pub samples: RttSamples,
    /// Samples in the current window.
    pub window: RttSamples,
}

impl TcpRtt {
    /// One segment at `now` ns.
    pub fn segment(&mut self, s: &TcpSeg, now: u64) {
        let d = usize::from(s.dir & 1);
        let syn_fin = u32::from(s.flags & 0x03 != 0);
        if (s.payload > 0 || syn_fin > 0) && self.unacked[d].len() < MAX_UNACKED {
            let next = s.seq.wrapping_add(s.payload).wrapping_add(syn_fin);
            self.unacked[d].insert(
                0,
                Unacked {
                    seq: s.seq,
                    next,
                    ts: now,
                },
            );
        }
        if s.flags & 0x10 == 0 {
            return;
        }
        let ack = s.ack;
        let mut rtt = None;
        let list = &mut self.unacked[d ^ 1];
        let mut i = 0;
        while i < list.len() {
            let u = &mut list[i];
            if ack == u.next {
                rtt = Some(now.saturating_sub(u.ts));
            } else if gt(ack, u.seq) && !gt(ack, u.next) {
                u.seq = ack;
                i += 1;
                continue;
            } else if gt(u.next, ack) {
                i += 1;
                continue;
            }
            list.remove(i);
        }
        if let Some(r) = rtt {
            self.samples.add(r);
            self.window.add(r);
        }
    }
}

/// QUIC spin-bit RTT.
#[derive(Debug, Clone, Default)]
pub struct SpinRtt {
    last: Option<(bool, u64)>,
    /// Samples.
    pub samples: RttSamples,
    /// Samples in the current window.
    pub window: RttSamples,
}

impl SpinRtt {
    /// One UDP payload from the client at `now` ns (only 1-RTT short-header packets count).
    pub fn client_packet(&mut self, payload: &[u8], now: u64) {
        let Some(&b) = payload.first() else {
            return;
        };
        // Short header: form bit 0, fixed bit 1 (RFC 9000 §17.3.1).
        if b & 0xc0 != 0x40 {
            return;
        }
        let spin = b & 0x20 != 0;
        match self.last {
            Some((prev, at)) if prev != spin => {
                let dt = now.saturating_sub(at);
                // The first flip only starts the clock.
                if at != 0 && dt >= 1_000_000 {
                    self.samples.add(dt);
                    self.window.add(dt);
                }
                self.last = Some((spin, now));
            }
            Some(_) => {}
            None => self.last = Some((spin, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn seg(dir: u8, seq: u32, ack: u32, flags: u8, payload: u32) -> TcpSeg {
        TcpSeg {
            dir,
            seq,
            ack,
            flags,
            payload,
        }
    }

    #[test]
    fn handshake_and_data() {
        let mut r = TcpRtt::default();
        r.segment(&seg(0, 100, 0, 0x02, 0), 0);
        r.segment(&seg(1, 500, 101, 0x12, 0), 30 * MS);
        r.segment(&seg(0, 101, 501, 0x10, 0), 31 * MS);
        // Two data segments, one delayed ACK for both: measured from the second.
        r.segment(&seg(0, 101, 501, 0x18, 100), 40 * MS);
        r.segment(&seg(0, 201, 501, 0x18, 100), 41 * MS);
        r.segment(&seg(1, 501, 301, 0x10, 0), 71 * MS);
        let s = &r.samples;
        assert_eq!(s.count, 3);
        assert_eq!((s.min_ns, s.max_ns), (MS, 30 * MS));
        assert_eq!(s.median_ms(), Some(30.0));
        assert!(r.unacked[0].is_empty());
    }

    #[test]
    fn partial_ack_trims_and_retransmission_measures_from_first() {
        let mut r = TcpRtt::default();
        r.segment(&seg(0, 1000, 0, 0x10, 1000), 0);
        r.segment(&seg(1, 1, 1500, 0x10, 0), 10 * MS); // partial: no sample
        assert_eq!(r.samples.count, 0);
        assert_eq!(r.unacked[0][0].seq, 1500);
        r.segment(&seg(0, 1500, 0, 0x10, 500), 300 * MS); // retransmission of the rest
        r.segment(&seg(1, 1, 2000, 0x10, 0), 320 * MS);
        // Both copies end at 2000: the oldest (t = 0) is measured last, as Wireshark does.
        assert_eq!(r.samples.count, 1);
        assert_eq!(r.samples.max_ns, 320 * MS);
    }

    #[test]
    fn ack_without_flag_and_wrap() {
        let mut r = TcpRtt::default();
        r.segment(&seg(0, u32::MAX - 9, 0, 0x10, 20), 0);
        r.segment(&seg(1, 1, 10, 0x00, 0), MS); // no ACK flag
        assert_eq!(r.samples.count, 0);
        r.segment(&seg(1, 1, 10, 0x10, 0), 2 * MS);
        assert_eq!(r.samples.count, 1);
    }

    #[test]
    fn bounded() {
        let mut r = TcpRtt::default();
        for i in 0..1000u32 {
            r.segment(&seg(0, i * 10, 0, 0x10, 10), u64::from(i));
        }
        assert_eq!(r.unacked[0].len(), MAX_UNACKED);
    }

    fn ts_frame(tsval: u32, tsecr: u32) -> Vec<u8> {
        // 20-byte TCP header, then NOP NOP and the 10-byte timestamps option.
        let mut f = vec![0u8; 20];
        f[12] = 8 << 4;
        f.extend_from_slice(&[1, 1, 8, 10]);
        f.extend_from_slice(&tsval.to_be_bytes());
        f.extend_from_slice(&tsecr.to_be_bytes());
        f
    }

    #[test]
    fn timestamps_option_parsed_and_bounded() {
        let f = ts_frame(7, 9);
        assert_eq!(tcp_timestamps(&f, f.len(), 0, 32), Some((7, 9)));
        // Cut short by the snap, or no room for options: none.
        assert_eq!(tcp_timestamps(&f, 28, 0, 32), None);
        assert_eq!(tcp_timestamps(&f, f.len(), 0, 20), None);
        // A zero-length option never loops; end-of-options stops.
        let mut bad = vec![0u8; 20];
        bad.extend_from_slice(&[3, 0, 1, 1]);
        assert_eq!(tcp_timestamps(&bad, bad.len(), 0, 24), None);
        let mut eol = vec![0u8; 20];
        eol.extend_from_slice(&[0, 8, 10, 0]);
        assert_eq!(tcp_timestamps(&eol, eol.len(), 0, 24), None);
    }

    #[test]
    fn timestamps_first_tsval_to_first_echo() {
        let mut r = TsRtt::default();
        // Client (dir 0) SYN: TSval 100, no echo; server SYN-ACK echoes it 30 ms later.
        r.segment(0, 0x02, 100, 0, 0);
        r.segment(1, 0x12, 5000, 100, 30 * MS);
        // The client's ACK echoes the server's value 1 ms later (the client half).
        r.segment(0, 0x10, 101, 5000, 31 * MS);
        // Two packets with the same TSval: measured from the first one.
        r.segment(0, 0x18, 110, 5000, 40 * MS);
        r.segment(0, 0x18, 110, 5000, 45 * MS);
        // Two echoes of 110: only the first counts.
        r.segment(1, 0x10, 5001, 110, 70 * MS);
        r.segment(1, 0x10, 5002, 110, 80 * MS);
        assert!(r.both());
        assert_eq!(r.half(0).count, 2);
        assert_eq!((r.half(0).min_ns, r.half(0).max_ns), (30 * MS, 30 * MS));
        assert_eq!(r.half(1).count, 1);
        assert_eq!(r.half(1).min_ns, MS);
        assert_eq!(r.samples.count, 3);
        // Value 101 was superseded by the echo of 110: nothing left to match.
        assert!(r.pending[0].is_empty());
    }

    #[test]
    fn timestamps_bounded_and_wrap() {
        let mut r = TsRtt::default();
        for i in 0..1000u32 {
            r.segment(
                0,
                0x10,
                (u32::MAX - 500).wrapping_add(i),
                0,
                u64::from(i) * MS,
            );
        }
        assert_eq!(r.pending[0].len(), MAX_TSVALS);
        // An echo of the newest value (past the wrap) measures from its packet.
        let newest = (u32::MAX - 500).wrapping_add(999);
        r.segment(1, 0x10, 1, newest, 1005 * MS);
        assert_eq!(r.samples.count, 1);
        assert_eq!(r.samples.min_ns, 6 * MS);
        assert!(r.pending[0].is_empty());
        assert!(r.both());
    }

    #[test]
    fn spin_bit() {
        let mut s = SpinRtt::default();
        let mut t = 0;
        for i in 0..20 {
            // Flips every 40 ms, four packets per half period.
            for _ in 0..4 {
                t += 10 * MS;
                let spin = (t / (40 * MS)) % 2 == 1;
                s.client_packet(&[0x40 | if spin { 0x20 } else { 0 }, i], t);
            }
        }
        assert!(s.samples.count >= 15);
        assert_eq!(s.samples.min_ns, 40 * MS);
        assert_eq!(s.samples.max_ns, 40 * MS);
        let mut n = SpinRtt::default();
        for i in 0..10 {
            n.client_packet(&[0x40, 1], i * MS);
            n.client_packet(&[0xc0, 1], i * MS); // long header ignored
        }
        assert_eq!(n.samples.count, 0);
    }
}
