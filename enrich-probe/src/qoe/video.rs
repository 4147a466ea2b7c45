//! Video QoE from packet sizes and timing, for on-demand and live HTTP(S) streaming over TLS or
//! QUIC: nothing is decrypted, only who sent how many bytes when.
//!
//! How it works (the field guide of [`schemas::VideoQoe`] says the same for users):
//!
//! 1. **Chunks** ([`chunks`]): an upstream packet with a large enough payload is a request; the
//!    downstream burst that follows on the same flow is its chunk. Answers above
//!    `chunk_min_bytes` are media. Requests that come after the session sat idle for
//!    `paced_gap_ms` are *paced*: the player waited for room in its buffer (the on/off pattern of
//!    a full buffer, as in Requet, MMSys'19, and Bronzino et al., SIGMETRICS'20).
//! 2. **Startup**: playback is taken to start once `startup_bytes` of media have arrived; the
//!    startup delay runs from the first request to that point.
//! 3. **Bitrate**: at a paced request the player's buffer is at its target `B`
//!    (`buffer_target_s`, per provider, live or on demand), so everything downloaded so far is the
//!    media played plus `B` seconds: `rate = media bits / (played s + B)`. The estimate is renewed
//!    at every paced request and frozen in between, so a slow network cannot drag it down. Before
//!    the first paced request the same formula gives a provisional value for the buffer model;
//!    bitrate and resolution are reported once the estimate has settled (anchored, and half the
//!    buffer target played: while the buffer still fills, the formula underestimates).
//! 4. **Resolution**: the provider's nominal audio bitrate is removed and the video bitrate is
//!    mapped to the nearest rung of the provider's ladder ([`config`], `video_ladders.toml`).
//! 5. **Buffer**: a media clock adds `bits / rate` seconds per media byte and removes wall time
//!    while playing; it is reset to `B` at each paced request (the chunk asked for then lands on
//!    top) and capped at `2 B`. Empty buffer while packets
//!    still flow: a stall, which ends once `resume_s` seconds are buffered again. Empty buffer
//!    and no packet for `session_idle_ms`: paused or ended, not a stall.
//! 6. **Buffer state** (end of each window): Startup before playback; Stalled in a stall;
//!    Filling until the rate has settled (the player fills its buffer after it starts); Steady
//!    while paced requests keep coming (one within `B/2`) or the modelled buffer is above 85 % of
//!    `B`; otherwise Filling or Draining by the modelled buffer's change over the last 20 s (±2 s),
//!    Unknown when empty and silent.
//!
//! Frame rate is not inferred: with whole chunks fetched over encrypted transports nothing in
//! the sizes or times reveals it (60-fps renditions only read as higher bitrates).

pub mod chunks;
pub mod config;
#[cfg(test)]
mod tests;

pub use chunks::{Chunk, ChunkEvent, ChunkTracker};
pub use config::{LadderError, ProviderParams, Rung, VideoConfig, BUILTIN_LADDERS};

use schemas::{BufferState, VideoQoe};
use std::collections::VecDeque;

const NS: f64 = 1e9;

/// One video session: the packets of every member flow of one client and provider.
#[derive(Debug, Clone)]
pub struct VideoSession {
    p: ProviderParams,
    live: bool,
    /// Buffer target in media seconds (on-demand or live value).
    target_s: f64,
    chunks: ChunkTracker,
    /// Model clock: everything before it has been accounted, ns.
    clock_ns: Option<u64>,
    /// Last packet of any member flow, ns.
    last_packet_ns: Option<u64>,
    first_request_ns: Option<u64>,
    /// Media bytes since the first request.
    media_bytes: u64,
    /// Playback start, ns.
    start_ns: Option<u64>,
    /// Seconds of media played.
    played_s: f64,
    /// Media bitrate estimate, bit/s, and whether a paced request anchored it.
    rate_bps: Option<f64>,
    anchored: bool,
    /// Last paced request, ns.
    last_paced_ns: Option<u64>,
    /// Modelled buffer, media seconds.
    buf_s: f64,
    stalled: bool,
    /// Buffer level at the end of recent intervals (for the trend), oldest first.
    history: VecDeque<(u64, f64)>,
    // Per-interval accumulators.
    win_stalls: u32,
    win_stall_ns: u64,
    win_startup_ms: Option<u32>,
}

/// Seconds of buffer history the Filling/Draining trend looks at.
const TREND_NS: u64 = 20_000_000_000;
/// Buffer above this share of the target reads as Steady.
const STEADY_SHARE: f64 = 0.85;
/// Buffer change over the trend window that reads as a trend, media seconds.
const TREND_MIN_S: f64 = 2.0;
/// The modelled buffer never exceeds this multiple of the target.
const BUFFER_CAP: f64 = 2.0;
/// Bitrate below this floor is not mapped (nothing but control traffic yet), bit/s.
const MIN_RATE_BPS: f64 = 1_000.0;

impl VideoSession {
    /// A session of `provider` (nDPI-style lower-case id, e.g. `youtube`), live or on demand.
    pub fn new(cfg: &VideoConfig, provider: Option<&str>, live: bool) -> Self {
        let p = cfg.params(provider);
        let target_s = if live {
            p.live_buffer_target_s
        } else {
            p.buffer_target_s
        };
        VideoSession {
            chunks: ChunkTracker::new(
                p.request_min_payload,
                p.tcp_request_min_payload,
                p.chunk_min_bytes,
                p.paced_gap_ms,
            ),
            p,
            live,
            target_s,
            clock_ns: None,
            last_packet_ns: None,
            first_request_ns: None,
            media_bytes: 0,
            start_ns: None,
            played_s: 0.0,
            rate_bps: None,
            anchored: false,
            last_paced_ns: None,
            buf_s: 0.0,
            stalled: false,
            history: VecDeque::new(),
            win_stalls: 0,
            win_stall_ns: 0,
            win_startup_ms: None,
        }
    }

    /// Live stream (as given at creation).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The chunk tracker (reconstructed chunks, for inspection and tests).
    pub fn chunks(&self) -> &ChunkTracker {
        &self.chunks
    }

    /// Current media bitrate estimate (audio + video), bit/s.
    pub fn media_rate_bps(&self) -> Option<f64> {
        self.rate_bps
    }

    /// First request of the session, ns.
    pub fn first_request_ns(&self) -> Option<u64> {
        self.first_request_ns
    }

    /// Estimated playback start, ns.
    pub fn playback_start_ns(&self) -> Option<u64> {
        self.start_ns
    }

    /// Modelled buffer, media seconds.
    pub fn buffer_s(&self) -> f64 {
        self.buf_s
    }

    /// One packet of a member flow: `flow` tells flows apart (the canonical key hash), `up` is
    /// client → server, `ip_len` the IP datagram length, `payload_len` the L4 payload length from
    /// the IP lengths (not the captured bytes). Packets come in capture order.
    pub fn packet(&mut self, ts_ns: u64, flow: u64, up: bool, ip_len: u32, payload_len: u32) {
        // Captures stitched from several sources can go backwards: never move the clock back.
        let ts_ns = ts_ns.max(self.clock_ns.unwrap_or(0));
        self.advance(ts_ns);
        self.last_packet_ns = Some(ts_ns);
        match self.chunks.packet(ts_ns, flow, up, ip_len, payload_len) {
            ChunkEvent::None => {}
            ChunkEvent::Request { paced } => {
                if self.first_request_ns.is_none() {
                    self.first_request_ns = Some(ts_ns);
                }
                if paced && self.start_ns.is_some() && !self.stalled {
                    self.anchor();
                    self.last_paced_ns = Some(ts_ns);
                }
            }
            ChunkEvent::Media(bytes) => self.media(ts_ns, bytes),
        }
    }

    /// The QoE of `[start_ns, end_ns)`; called in time order once every packet before `end_ns`
    /// has been given.
    pub fn interval(&mut self, start_ns: u64, end_ns: u64) -> VideoQoe {
        let end = end_ns.max(self.clock_ns.unwrap_or(0));
        self.advance(end);
        if !self.anchored {
            self.provisional_rate();
        }
        let video_kbps = self.video_kbps();
        let rung = video_kbps.and_then(|k| self.p.rung_for(k));
        let state = self.state(end);
        self.history.push_back((end, self.buf_s));
        while self
            .history
            .front()
            .is_some_and(|(t, _)| end.saturating_sub(*t) > TREND_NS)
        {
            self.history.pop_front();
        }
        let out = VideoQoe {
            window_start_ms: (start_ns / 1_000_000) as i64,
            window_end_ms: (end_ns / 1_000_000) as i64,
            resolution: rung.map(|(_, r)| format!("{}p", r.height)),
            height_px: rung.map(|(_, r)| r.height),
            bitrate_kbps: video_kbps.map(|k| k.round() as u32),
            startup_delay_ms: self.win_startup_ms.take(),
            stalls: self.win_stalls,
            stall_ms: (self.win_stall_ns / 1_000_000).min(u64::from(u32::MAX)) as u32,
            buffer_state: state,
        };
        self.win_stalls = 0;
        self.win_stall_ns = 0;
        out
    }

    /// Video bitrate: the media estimate minus the provider's audio, at least half the media.
    /// Only once settled: a paced request anchored the rate and half the buffer target has been
    /// played (before that the buffer is still filling and the formula underestimates).
    fn video_kbps(&self) -> Option<f64> {
        if !self.settled() {
            return None;
        }
        let r = self.rate_bps.filter(|r| *r >= MIN_RATE_BPS)? / 1000.0;
        Some((r - f64::from(self.p.audio_kbps)).max(r / 2.0))
    }

    fn state(&self, now: u64) -> BufferState {
        if self.first_request_ns.is_none() {
            return BufferState::Unknown;
        }
        if self.start_ns.is_none() {
            return BufferState::Startup;
        }
        if self.stalled {
            return BufferState::Stalled;
        }
        if self.buf_s <= 0.0 {
            // Empty and silent: paused or ended (a stalled player keeps asking).
            return BufferState::Unknown;
        }
        if !self.settled() {
            // Players fill their buffer to the target after they start.
            return BufferState::Filling;
        }
        let half_target_ns = (self.target_s * NS / 2.0) as u64;
        let pacing = self
            .last_paced_ns
            .is_some_and(|t| now.saturating_sub(t) <= half_target_ns);
        if pacing || self.buf_s >= STEADY_SHARE * self.target_s {
            // On/off requests: the player waits for room in a full buffer.
            return BufferState::Steady;
        }
        let past = self
            .history
            .iter()
            .find(|(t, _)| now.saturating_sub(*t) <= TREND_NS)
            .map(|(_, b)| *b);
        match past {
            Some(b) if self.buf_s - b >= TREND_MIN_S => BufferState::Filling,
            Some(b) if b - self.buf_s >= TREND_MIN_S => BufferState::Draining,
            Some(_) => BufferState::Steady,
            None => BufferState::Filling,
        }
    }

    /// The rate estimate has settled: a paced request anchored it and half the buffer target
    /// has been played.
    fn settled(&self) -> bool {
        self.anchored && self.played_s >= self.target_s / 2.0
    }

    /// Media bytes arrived at `ts`.
    fn media(&mut self, ts: u64, bytes: u64) {
        self.media_bytes = self.media_bytes.saturating_add(bytes);
        match self.start_ns {
            None => {
                if self.media_bytes >= self.p.startup_bytes {
                    self.start_ns = Some(ts);
                    let first = self.first_request_ns.unwrap_or(ts);
                    let ms = ts.saturating_sub(first) / 1_000_000;
                    self.win_startup_ms = Some(ms.min(u64::from(u32::MAX)) as u32);
                    self.provisional_rate();
                    // What was downloaded before the start is in the buffer.
                    self.buf_s = self.seconds_of(self.media_bytes).min(self.target_s);
                }
            }
            Some(_) => {
                // The chunk a paced request asked for lands on top of a buffer at its target;
                // the cap only bounds a wrong rate.
                self.buf_s = (self.buf_s + self.seconds_of(bytes)).min(BUFFER_CAP * self.target_s);
                if self.stalled && self.buf_s >= self.p.resume_s {
                    self.stalled = false;
                }
            }
        }
    }

    /// Media seconds that `bytes` hold at the current rate (the cheapest rung before any rate).
    fn seconds_of(&self, bytes: u64) -> f64 {
        let floor = (f64::from(self.p.rungs.first().map_or(100, |r| r.kbps))
            + f64::from(self.p.audio_kbps))
            * 1000.0;
        let rate = self.rate_bps.unwrap_or(floor).max(MIN_RATE_BPS);
        bytes as f64 * 8.0 / rate
    }

    /// `rate = media bits / (played + B)`, provisional (not anchored) before a paced request.
    fn provisional_rate(&mut self) {
        if self.start_ns.is_some() {
            self.rate_bps = Some(self.media_bytes as f64 * 8.0 / (self.played_s + self.target_s));
        }
    }

    /// A paced request: the buffer is at its target; renew the rate.
    fn anchor(&mut self) {
        self.rate_bps = Some(self.media_bytes as f64 * 8.0 / (self.played_s + self.target_s));
        self.anchored = true;
        self.buf_s = self.target_s;
    }

    /// Plays the media clock forward to `to` ns.
    fn advance(&mut self, to: u64) {
        let Some(from) = self.clock_ns else {
            self.clock_ns = Some(to);
            return;
        };
        if to <= from {
            return;
        }
        self.clock_ns = Some(to);
        if self.start_ns.is_none() {
            return;
        }
        let dt_ns = to - from;
        if self.stalled {
            self.win_stall_ns = self.win_stall_ns.saturating_add(dt_ns);
            // A stall that went silent is a player that gave up or was closed.
            if self.idle_at(to) {
                self.stalled = false;
            }
            return;
        }
        let dt = dt_ns as f64 / NS;
        if self.buf_s > 0.0 && self.buf_s >= dt {
            self.buf_s -= dt;
            self.played_s += dt;
            return;
        }
        // The buffer runs out inside this step.
        let left = self.buf_s.max(0.0);
        self.played_s += left;
        self.buf_s = 0.0;
        let empty_at = from.saturating_add((left * NS) as u64).min(to);
        if !self.idle_at(empty_at) && !self.idle_at(to) {
            self.stalled = true;
            self.win_stalls += 1;
            self.win_stall_ns = self.win_stall_ns.saturating_add(to - empty_at);
        }
    }

    /// No packet for `session_idle_ms` at `t`.
    fn idle_at(&self, t: u64) -> bool {
        let idle = self.p.session_idle_ms.saturating_mul(1_000_000);
        self.last_packet_ns
            .is_none_or(|last| t.saturating_sub(last) >= idle)
    }
}
