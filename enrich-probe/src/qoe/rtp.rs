//! Per-stream RTP statistics: loss from sequence gaps, RFC 3550 interarrival jitter, frame rate
//! from the marker bit and timestamps, stutter (frame gaps) and dropouts (media silence).
//!
//! A stream is one (direction, SSRC) of a flow, as Wireshark's "RTP Streams" counts them. The
//! figures follow Wireshark's RTP stream analysis (`ui/tap-rtp-analysis.c`) on purpose, so that
//! they can be checked against `tshark -z rtp,streams`:
//! - *Lost* = expected − received, with expected = highest − lowest extended sequence number + 1
//!   (RFC 3550 §6.4.1, A.3). Duplicates make it negative, reordering leaves it unchanged.
//! - *Jitter* (RFC 3550 §6.4.1, A.8): `J += (|D| − J) / 16` with `D = (Rj − Ri) − (Sj − Si)`,
//!   arrival `R` and RTP timestamp `S` in the payload type's clock, `i` the previous packet that was
//!   in timestamp order. Reported in ms: the latest J, its maximum and Wireshark's running mean over
//!   "regular" packets (no marker bit, not the first, timestamp in order).
//! - The clock rate is the static payload type's (RFC 3551 §6). Dynamic types (96-127) carry no
//!   rate on the wire; Wireshark then computes no jitter, the tap estimates the rate from the
//!   stream itself (timestamp ticks per second of arrival, snapped to 8, 16, 24, 32, 44.1, 48 or
//!   90 kHz), so its jitter for dynamic types is as exact as that guess.

/// Streams tracked per flow at most; further SSRCs are counted in `untracked` only.
pub const MAX_STREAMS: usize = 16;

/// Packets kept per stream while a dynamic payload type's clock is estimated.
const MAX_PENDING: usize = 64;

/// A media gap of at least this long is a dropout, ns.
pub const DROPOUT_NS: u64 = 1_000_000_000;

/// What the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaKind {
    /// Not known.
    #[default]
    Unknown,
    /// Audio (a clock below 90 kHz, or Zoom's audio type).
    Audio,
    /// Video (a 90 kHz clock, or Zoom's video type).
    Video,
    /// Screen share (Zoom's screen-share types).
    ScreenShare,
}

/// Clock rate of a static RTP payload type (RFC 3551 table 4 and 5), `None` for dynamic or
/// unassigned ones.
pub fn static_clock_rate(pt: u8) -> Option<u32> {
    Some(match pt {
        0 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 13 | 15 | 18 => 8_000,
        6 => 16_000,
        10 | 11 => 44_100,
        16 => 11_025,
        17 => 22_050,
        14 | 25 | 26 | 28 | 31 | 32 | 33 | 34 => 90_000,
        _ => return None,
    })
}

const CLOCKS: [u32; 7] = [8_000, 16_000, 24_000, 32_000, 44_100, 48_000, 90_000];

/// One RTP packet as the estimator needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// SSRC.
    pub ssrc: u32,
}

/// Reads the fixed RTP header (RFC 3550 §5.1) when `p` starts with RTP (not RTCP). `len` is the
/// packet's real length (`p` may be cut short by the snap length): a header extension (§5.3.1)
/// that would run past it means this is not RTP, as Wireshark's heuristic also decides.
pub fn header(p: &[u8], len: usize) -> Option<RtpHeader> {
    let cc = usize::from(*p.first()? & 0x0f);
    if p.first()? & 0x10 != 0 {
        let at = 12 + 4 * cc;
        let words = usize::from(u16::from_be_bytes([*p.get(at + 2)?, *p.get(at + 3)?]));
        if at + 4 + 4 * words > len {
            return None;
        }
    }
    match crate::dpi::rtp::parse_media(p)? {
        crate::dpi::rtp::Media::Rtp { pt, seq, ssrc } => Some(RtpHeader {
            pt,
            marker: p.get(1)? & 0x80 != 0,
            seq,
            ts: u32::from_be_bytes([*p.get(4)?, *p.get(5)?, *p.get(6)?, *p.get(7)?]),
            ssrc,
        }),
        crate::dpi::rtp::Media::Rtcp { .. } => None,
    }
}

/// Counters of one stream over a window (reset by [`RtpStream::take_window`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RtpWindow {
    /// Packets received.
    pub received: u64,
    /// Packets expected (extended sequence range covered in the window).
    pub expected: u64,
    /// Sum of the jitter (ms) after each packet, and how many.
    pub jitter_sum_ms: f64,
    /// Packets in `jitter_sum_ms`.
    pub jitter_n: u64,
    /// Video frames completed (marker bit, or a new timestamp).
    pub frames: u64,
    /// Frame gaps over twice the stream's usual frame interval (and at least 100 ms).
    pub stutters: u32,
    /// Media gaps of at least [`DROPOUT_NS`].
    pub dropouts: u32,
    /// Video stream.
    pub video: bool,
    /// Media kinds present: 1 audio, 2 video, 4 screen share.
    pub kinds: u8,
    /// Streams with packets in the window.
    pub streams: u32,
    /// Audio streams with at least [`super::mos::MIN_AUDIO_PACKETS`] packets and a known clock
    /// in the window: the streams the MOS is computed from.
    pub audio_streams: u32,
    /// Largest loss ratio (0 to 1) of those audio streams in the window.
    pub audio_loss_worst: f64,
    /// Largest mean RFC 3550 jitter of those audio streams in the window, ms.
    pub audio_jitter_worst_ms: f64,
}

/// One RTP stream.
#[derive(Debug, Clone, Default)]
pub struct RtpStream {
    /// Direction (0 low → high, 1 high → low, the flow key's).
    pub dir: u8,
    /// SSRC.
    pub ssrc: u32,
    /// Payload type of the latest packet.
    pub pt: u8,
    /// Media kind (from Zoom's header or the clock rate).
    pub kind: MediaKind,
    /// Zoom video and screen-share streams only: the payload type, part of the stream's identity
    /// (Zoom sends its video FEC, payload type 110, under the video's SSRC with a sequence space
    /// of its own; its audio changes payload type within one sequence space).
    pub zoom_pt: Option<u8>,
    /// Packets received.
    pub received: u64,
    max_ext_seq: i64,
    min_ext_seq: i64,
    last_ext_ts: i64,
    last_ts: u32,
    /// Extended timestamp and arrival (ns) of the last in-order packet.
    seq_ts: i64,
    seq_arrival_ns: u64,
    first_arrival_ns: u64,
    first_ext_ts: i64,
    last_arrival_ns: u64,
    /// Clock rate in use (static, or estimated for dynamic types), Hz.
    pub clock_rate: Option<u32>,
    /// Current RFC 3550 jitter, ms.
    pub jitter_ms: f64,
    /// Largest jitter after a regular packet, ms.
    pub max_jitter_ms: f64,
    /// Wireshark's running mean of the jitter over regular packets, ms.
    pub mean_jitter_ms: f64,
    /// Frame interval estimate (EWMA), ns.
    frame_iv_ns: f64,
    last_frame_ns: u64,
    open_ts: Option<u32>,
    closed_ts: Option<u32>,
    /// Frames seen.
    pub frames: u64,
    /// (arrival, extended timestamp, regular) of the packets before a dynamic clock is known.
    pending: Vec<(u64, i64, bool)>,
    win: RtpWindow,
    win_base: i64,
}

impl RtpStream {
    fn new(dir: u8, h: &RtpHeader, kind: MediaKind, now: u64) -> RtpStream {
        let mut s = RtpStream {
            dir,
            ssrc: h.ssrc,
            pt: h.pt,
            kind,
            received: 1,
            max_ext_seq: i64::from(h.seq),
            min_ext_seq: i64::from(h.seq),
            last_ext_ts: i64::from(h.ts),
            last_ts: h.ts,
            seq_ts: i64::from(h.ts),
            seq_arrival_ns: now,
            first_arrival_ns: now,
            first_ext_ts: i64::from(h.ts),
            last_arrival_ns: now,
            clock_rate: static_clock_rate(h.pt),
            win_base: i64::from(h.seq),
            ..RtpStream::default()
        };
        s.win.received = 1;
        if s.clock_rate.is_none() {
            s.pending.push((now, i64::from(h.ts), !h.marker));
        }
        s.set_kind();
        s.frame(h, now);
        s
    }

    fn set_kind(&mut self) {
        if self.kind == MediaKind::Unknown {
            if let Some(r) = self.clock_rate {
                self.kind = if r == 90_000 {
                    MediaKind::Video
                } else {
                    MediaKind::Audio
                };
            }
        }
    }

    /// Expected − received over the stream's life (Wireshark's "Lost"; negative with duplicates).
    pub fn lost(&self) -> i64 {
        self.expected() - self.received as i64
    }

    /// Packets expected from the sequence numbers.
    pub fn expected(&self) -> i64 {
        self.max_ext_seq - self.min_ext_seq + 1
    }

    /// Estimates a dynamic payload type's clock from timestamp ticks per second of arrival.
    fn guess_clock(&mut self, ext_ts: i64, now: u64) -> bool {
        if self.clock_rate.is_some() || self.received < 8 {
            return false;
        }
        let secs = now.saturating_sub(self.first_arrival_ns) as f64 / 1e9;
        let ticks = (ext_ts - self.first_ext_ts) as f64;
        if secs < 0.1 || ticks <= 0.0 {
            return false;
        }
        let rate = ticks / secs;
        let best = CLOCKS
            .iter()
            .copied()
            .min_by(|a, b| {
                let da = (rate / f64::from(*a)).ln().abs();
                let db = (rate / f64::from(*b)).ln().abs();
                da.total_cmp(&db)
            })
            .unwrap_or(90_000);
        // Within a factor 1.5 of a known clock, else leave it unknown.
        if (rate / f64::from(best)).ln().abs() < 0.4 {
            self.clock_rate = Some(best);
            self.set_kind();
            return true;
        }
        false
    }

    fn packet(&mut self, h: &RtpHeader, now: u64) {
        // Extended sequence number: the nearest to the last one (RFC 3550 A.1's cycle count,
        // without its probation: the tap cannot hold packets back).
        let ext_seq =
            self.max_ext_seq + i64::from(h.seq.wrapping_sub(self.max_ext_seq as u16) as i16);
        self.max_ext_seq = self.max_ext_seq.max(ext_seq);
        self.min_ext_seq = self.min_ext_seq.min(ext_seq);
        let ext_ts = self.last_ext_ts + i64::from(h.ts.wrapping_sub(self.last_ts) as i32);
        self.last_ext_ts = ext_ts;
        self.last_ts = h.ts;
        self.received += 1;
        self.win.received += 1;
        self.pt = h.pt;
        if now.saturating_sub(self.last_arrival_ns) >= DROPOUT_NS {
            self.win.dropouts += 1;
        }
        self.last_arrival_ns = self.last_arrival_ns.max(now);
        if self.clock_rate.is_none() {
            self.clock_rate = static_clock_rate(h.pt);
            self.set_kind();
        }
        let regular = !h.marker && h.pt != 13 && h.pt != 19;
        if self.clock_rate.is_some() {
            self.jitter_step(ext_ts, now, regular, self.received - 1);
        } else {
            // Until a dynamic type's clock is known, keep the packets' timing (bounded) and
            // compute their jitter once it is, as if it had been known from the start.
            if self.pending.len() < MAX_PENDING {
                self.pending.push((now, ext_ts, regular));
            }
            if self.guess_clock(ext_ts, now) {
                self.replay();
            }
        }
        self.frame(h, now);
    }

    /// One packet's RFC 3550 jitter update against the previous in-order packet; `n` is the
    /// number of packets before it (Wireshark divides its running mean by that).
    fn jitter_step(&mut self, ext_ts: i64, now: u64, regular: bool, n: u64) {
        let Some(rate) = self.clock_rate else {
            return;
        };
        let in_time = ext_ts >= self.seq_ts;
        let nominal_ms = (ext_ts - self.seq_ts) as f64 / (f64::from(rate) / 1000.0);
        let arrival_ms = (now as f64 - self.seq_arrival_ns as f64) / 1e6;
        let d = (arrival_ms - nominal_ms).abs();
        self.jitter_ms += (d - self.jitter_ms) / 16.0;
        self.win.jitter_sum_ms += self.jitter_ms;
        self.win.jitter_n += 1;
        // Wireshark's max and "mean" (over regular packets, divided by packets so far).
        if in_time && regular && n > 0 {
            self.max_jitter_ms = self.max_jitter_ms.max(self.jitter_ms);
            let n = n as f64;
            self.mean_jitter_ms = (self.mean_jitter_ms * (n - 1.0) + self.jitter_ms) / n;
        }
        if in_time {
            self.seq_ts = ext_ts;
            self.seq_arrival_ns = now;
        }
    }

    /// The clock just became known: the jitter of the packets kept so far, from the first.
    fn replay(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let Some(&(t0, ts0, _)) = pending.first() else {
            return;
        };
        if pending.len() as u64 != self.received {
            // Some were not kept: start from the latest packet instead.
            if let Some(&(t, ts, _)) = pending.last() {
                (self.seq_arrival_ns, self.seq_ts) = (t, ts);
            }
            return;
        }
        (self.seq_arrival_ns, self.seq_ts) = (t0, ts0);
        (self.jitter_ms, self.max_jitter_ms, self.mean_jitter_ms) = (0.0, 0.0, 0.0);
        for (i, &(t, ts, regular)) in pending.iter().enumerate().skip(1) {
            self.jitter_step(ts, t, regular, i as u64);
        }
    }

    /// Frames: a video frame ends at the marker bit (RFC 6184 §5.1, RFC 7741 §4.1) or, without
    /// one, when a packet of a later timestamp comes.
    fn frame(&mut self, h: &RtpHeader, now: u64) {
        if let Some(done) = self.closed_ts {
            if (h.ts.wrapping_sub(done) as i32) <= 0 {
                return; // a late packet of a frame already counted
            }
        }
        if let Some(t) = self.open_ts {
            if t != h.ts {
                self.frame_done(t, now);
            }
        }
        if h.marker {
            self.frame_done(h.ts, now);
            self.open_ts = None;
        } else {
            self.open_ts = Some(h.ts);
        }
    }

    fn frame_done(&mut self, ts: u32, now: u64) {
        self.closed_ts = Some(ts);
        self.frames += 1;
        self.win.frames += 1;
        if self.last_frame_ns != 0 {
            let gap = now.saturating_sub(self.last_frame_ns) as f64;
            if self.frame_iv_ns > 0.0 && gap > (2.0 * self.frame_iv_ns).max(100e6) {
                self.win.stutters += 1;
            }
            if gap > 0.0 && gap < 1e9 {
                self.frame_iv_ns = if self.frame_iv_ns == 0.0 {
                    gap
                } else {
                    self.frame_iv_ns + (gap - self.frame_iv_ns) / 8.0
                };
            }
        }
        self.last_frame_ns = now;
    }

    /// The window since the last call, and starts a new one.
    pub fn take_window(&mut self) -> RtpWindow {
        let mut w = std::mem::take(&mut self.win);
        w.expected = u64::try_from(self.max_ext_seq - self.win_base + 1).unwrap_or(0);
        if w.received == 0 {
            w.expected = 0;
        }
        // Zoom's video FEC (payload type 110) counts for loss, not for frames or media.
        let fec = self.zoom_pt == Some(110);
        w.video = !fec && matches!(self.kind, MediaKind::Video | MediaKind::ScreenShare);
        if self.kind == MediaKind::Audio
            && w.received >= super::mos::MIN_AUDIO_PACKETS
            && w.jitter_n > 0
        {
            w.audio_streams = 1;
            w.audio_loss_worst =
                w.expected.saturating_sub(w.received) as f64 / w.expected.max(1) as f64;
            w.audio_jitter_worst_ms = w.jitter_sum_ms / w.jitter_n as f64;
        }
        if w.received > 0 && !fec {
            w.streams = 1;
            w.kinds = match self.kind {
                MediaKind::Audio => 1,
                MediaKind::Video => 2,
                MediaKind::ScreenShare => 4,
                MediaKind::Unknown => 0,
            };
        }
        self.win_base = self.max_ext_seq + 1;
        w
    }
}

/// The RTP streams of one flow.
#[derive(Debug, Clone, Default)]
pub struct RtpStreams {
    /// Tracked streams, in order of first packet.
    pub streams: Vec<RtpStream>,
    /// Packets of SSRCs beyond [`MAX_STREAMS`].
    pub untracked: u64,
}

impl RtpStreams {
    /// One RTP packet of the flow in direction `dir` at `now` ns; `kind` from Zoom's header when
    /// known.
    pub fn packet(&mut self, dir: u8, h: &RtpHeader, kind: MediaKind, now: u64) {
        let n = self.streams.len();
        let zoom_pt = matches!(kind, MediaKind::Video | MediaKind::ScreenShare).then_some(h.pt);
        match self
            .streams
            .iter_mut()
            .find(|s| s.ssrc == h.ssrc && s.dir == dir && s.zoom_pt == zoom_pt)
        {
            Some(s) => {
                if s.kind == MediaKind::Unknown {
                    s.kind = kind;
                }
                s.packet(h, now);
            }
            None if n < MAX_STREAMS => {
                let mut s = RtpStream::new(dir, h, kind, now);
                s.zoom_pt = zoom_pt;
                self.streams.push(s)
            }
            None => self.untracked += 1,
        }
    }

    /// Loss ratio over the flow's streams (lost / expected, clamped at 0), when any were seen.
    pub fn loss_ratio(&self) -> Option<f32> {
        let (mut exp, mut lost) = (0i64, 0i64);
        for s in &self.streams {
            exp += s.expected();
            lost += s.lost();
        }
        (exp > 0).then(|| (lost.max(0) as f64 / exp as f64) as f32)
    }

    /// Packet-weighted mean of the streams' mean jitter, ms (streams with a known clock).
    pub fn jitter_ms(&self) -> Option<f32> {
        let (mut sum, mut n) = (0.0, 0u64);
        for s in self.streams.iter().filter(|s| s.clock_rate.is_some()) {
            sum += s.mean_jitter_ms * s.received as f64;
            n += s.received;
        }
        (n > 0).then(|| (sum / n as f64) as f32)
    }

    /// Every stream's window, merged into one.
    pub fn take_window(&mut self) -> RtpWindow {
        let mut out = RtpWindow::default();
        for s in &mut self.streams {
            out.merge(&s.take_window());
        }
        out
    }
}

impl RtpWindow {
    /// Adds another window's counters (frames only from video streams).
    pub fn merge(&mut self, w: &RtpWindow) {
        self.received += w.received;
        self.expected += w.expected;
        self.jitter_sum_ms += w.jitter_sum_ms;
        self.jitter_n += w.jitter_n;
        if w.video {
            self.frames += w.frames;
            self.stutters += w.stutters;
            self.video = true;
        }
        self.dropouts += w.dropouts;
        self.kinds |= w.kinds;
        self.streams += w.streams;
        self.audio_streams += w.audio_streams;
        self.audio_loss_worst = self.audio_loss_worst.max(w.audio_loss_worst);
        self.audio_jitter_worst_ms = self.audio_jitter_worst_ms.max(w.audio_jitter_worst_ms);
    }
}

#[cfg(test)]
#[path = "rtp_tests.rs"]
mod tests;
