//! Application QoE: how well the application goes, per application type.
//!
//! [`Qoe`] holds one optional block per family of application types; the tap fills the block that
//! matches the flow's [`crate::AppType`] and leaves the others `null`. Every block carries the window
//! it was measured over (30 s by default), so that blocks from different reports line up in time.
//! QoE of encrypted traffic is inferred from packet sizes and timing, not read from the payload.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Application QoE, one optional block per application family.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Qoe {
    /// Video QoE (app types `video_streaming`, `live_streaming`).
    pub video: Option<VideoQoe>,
    /// Gaming QoE (app type `gaming`).
    pub gaming: Option<GamingQoe>,
    /// Conferencing and voice QoE (app types `conferencing`, `voip`).
    pub conferencing: Option<ConferencingQoe>,
}

impl Qoe {
    /// True when no block is filled.
    pub fn is_empty(&self) -> bool {
        self.video.is_none() && self.gaming.is_none() && self.conferencing.is_none()
    }
}

/// Playback buffer state of a video player at the end of the window, inferred from the download
/// pattern (requests and the bursts that answer them) and a modelled buffer; never read from the
/// player. On the Requet YouTube sessions it matched the state read from the player's own buffer
/// health in 92 % of playing seconds (rules set after looking at those sessions: in-sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BufferState {
    /// Not enough data to tell: no media request yet, or the buffer ran out with no traffic at all
    /// (the player was paused or closed, or the title ended).
    #[default]
    Unknown,
    /// Between the first media request and the estimated start of playback.
    Startup,
    /// Buffer growing: just after playback started (until the bitrate estimate settles), or the
    /// modelled buffer rose by 2 s or more over the last 20 s.
    Filling,
    /// Full buffer: the player's requests come in the on/off rhythm of a full buffer (one after an
    /// idle pause within half the buffer target), or the modelled buffer is above 85 % of it.
    Steady,
    /// Buffer shrinking: downloads slower than playback, or none left to do (end of the title);
    /// the modelled buffer fell by 2 s or more over the last 20 s.
    Draining,
    /// Modelled buffer empty while the client still exchanges packets: playback stalled
    /// (rebuffering).
    Stalled,
}

/// Video QoE over one window, inferred from packet sizes and timing of the session's flows (TLS,
/// QUIC: nothing is decrypted). Chunks are the downstream bursts between the client's requests;
/// the media bitrate comes from requests paced by a full buffer; the resolution maps that bitrate
/// through a per-provider ladder (`enrich-probe/video_ladders.toml`). How it was measured against
/// ground truth: BENCHMARKS.md, "Video QoE against Requet".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VideoQoe {
    /// Start of the measurement window, UTC ms.
    pub window_start_ms: i64,
    /// End of the measurement window, UTC ms.
    pub window_end_ms: i64,
    /// Video resolution label (e.g. `1080p`, `720p`, `2160p`): the provider ladder's rung nearest
    /// to `bitrate_kbps` on a log scale. A bitrate class, not a measurement: the bitrate of one
    /// resolution varies several-fold with content complexity. On Requet's two 720p YouTube sessions
    /// (still-picture-like titles, 250-310 kbit/s of video) the shipped ladder read 240p and 360p;
    /// with the ladder scaled to one title, the other read 720p in 86 % of seconds. `null` until
    /// the bitrate has settled (half the buffer target played, 60 s for YouTube on demand).
    pub resolution: Option<String>,
    /// Video height in pixels of `resolution` (e.g. 1080).
    pub height_px: Option<u16>,
    /// Estimated video bitrate of the title being played, kbit/s: media bits downloaded divided by
    /// (seconds played + the provider's buffer target), renewed at each request paced by a full
    /// buffer, minus the provider's nominal audio bitrate. On Requet's two sessions the median
    /// agreed within 3 % with the title's average (all bytes over the title's length); `null`
    /// until it has settled.
    pub bitrate_kbps: Option<u32>,
    /// Startup delay, ms: from the session's first media request to the estimated start of
    /// playback (when the provider's `startup_bytes` of media have arrived); only in the window
    /// where playback started. On Requet the start fell within 120 ms of the player's; the player's
    /// own startup clock starts 0.5-0.7 s earlier (page and player loading), which this misses.
    pub startup_delay_ms: Option<u32>,
    /// Stalls (rebuffering events) that began in the window: the modelled buffer ran empty while
    /// the client still exchanged packets. No false stall over Requet's 1,198 s of playback; recall
    /// is unmeasured there (the two sessions have no rebuffering) and rests on synthetic tests.
    pub stalls: u32,
    /// Stalled time in the window, ms (same model as `stalls`).
    pub stall_ms: u32,
    /// Buffer state at the end of the window.
    pub buffer_state: BufferState,
}

/// Gaming QoE over one window, from packet timing (game protocols are mostly encrypted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GamingQoe {
    /// Start of the measurement window, UTC ms.
    pub window_start_ms: i64,
    /// End of the measurement window, UTC ms.
    pub window_end_ms: i64,
    /// Average latency to the game server (round trip), ms. UDP: time from a client packet to the
    /// server's next packet (the round trip from the tap plus up to one server tick: an upper bound,
    /// within one tick interval); TCP: data/ACK round trips; QUIC: spin bit.
    pub latency_avg_ms: Option<f32>,
    /// Smallest latency sample in the window, ms (closest to the network round trip).
    pub latency_min_ms: Option<f32>,
    /// Largest latency sample in the window, ms.
    pub latency_max_ms: Option<f32>,
    /// Lag spikes: server → client gaps above twice the window's median gap and at least 50 ms
    /// above it (the game world freezes for the player). Exact count on what the tap saw.
    pub lag_spikes: u32,
    /// Jitter of the server's updates: mean absolute deviation of the server → client gaps from
    /// their median, ms.
    pub jitter_ms: Option<f32>,
    /// Packet loss ratio, 0 to 1, where the game traffic carries sequence numbers the tap reads
    /// (RTP); `null` otherwise.
    pub loss_ratio: Option<f32>,
    /// Server tick rate: 1 / median server → client gap, Hz (exact for one update per tick).
    pub tick_rate_hz: Option<f32>,
    /// Tick regularity: share of server → client gaps within ±50 % of the median gap, 0 to 1.
    pub tick_regularity: Option<f32>,
    /// Choppy window (a lag spike, or tick regularity under 0.8); `false` is smooth; `null`
    /// without server traffic.
    pub choppy: Option<bool>,
    /// Server → client bitrate over the window, kbit/s (IP bytes; exact on what the tap saw).
    pub bitrate_kbps: Option<u32>,
    /// Cloud gaming (server → client over 3 Mbit/s): video frames per second, from RTP frames when
    /// the stream is RTP (marker bit / timestamps); `null` otherwise.
    pub frame_rate: Option<f32>,
    /// Cloud gaming: video height estimated from the bitrate (720p from about 8 Mbit/s, 1080p 15,
    /// 1440p 25, 2160p 40, else 540): a class, not a measurement; `null` for non-cloud games.
    pub height_px: Option<u16>,
}

/// Conferencing and voice QoE over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConferencingQoe {
    /// Start of the measurement window, UTC ms.
    pub window_start_ms: i64,
    /// End of the measurement window, UTC ms.
    pub window_end_ms: i64,
    /// Media jitter: mean over the window's RTP packets of the RFC 3550 §6.4.1 interarrival
    /// jitter of their stream, ms, in the payload type's clock (static types: RFC 3551; dynamic
    /// types: estimated from the stream's timestamp rate). Per stream it agrees with Wireshark's
    /// RTP stream analysis within 5 % where Wireshark knows the clock.
    pub jitter_ms: Option<f32>,
    /// Media packet loss ratio, 0 to 1: (expected − received) / expected over the window's RTP
    /// streams, expected from the extended sequence numbers (RFC 3550 §6.4.1); exact on the packets
    /// the tap saw (equal to Wireshark's "Lost" per stream); duplicates are not loss.
    pub loss_ratio: Option<f32>,
    /// Received video frame rate, frames per second: frames end at the RTP marker bit, or at a new
    /// timestamp on streams without markers; `null` for audio-only sessions.
    pub frame_rate: Option<f32>,
    /// Stutter events: video frame gaps over twice the stream's usual frame interval and over
    /// 100 ms.
    pub stutter_events: u32,
    /// Dropouts: media silences of a second or more on a stream (audio or video).
    pub dropouts: u32,
    /// Estimated listening-quality MOS of the call's audio, 1 (bad) to 4.5, from network
    /// impairments only, by the ITU-T G.107 E-model in the simplified form of Cole & Rosenbluth
    /// (2001): R = 93.2 (G.107 defaults) − Id − Ie,eff, MOS from R by G.107 Annex B (4.41 at
    /// best). Inputs: the loss ratio and the mean RFC 3550 jitter of the window's worst audio
    /// stream (each taken from the worst stream; streams of 50 packets or more); the one-way
    /// delay = half the mean RTT the tap measured in the window on the session's TCP/QUIC flows
    /// (in a tap record: on that flow, so none on a UDP media flow; without one no network
    /// delay is counted) + a jitter buffer of twice the jitter + 26.5 ms codec delay (Opus,
    /// 20 ms frames). The codec is assumed, not read from the wire: Opus-like,
    /// with Ie 0 and Bpl 25.1 (G.711 with packet loss concealment, ITU-T G.113 Appendix I), loss
    /// taken as random (BurstR 1, so bursty loss scores too high). An estimate for trends and
    /// comparisons between calls, not a measurement: not checked against listening tests, not
    /// comparable to POLQA or to the clients' own scores. `null` when no audio stream had 50
    /// packets in the window (video-only or short windows, or media the tap cannot decode).
    pub mos: Option<f32>,
    /// Media types of the window's streams: `audio`, `video`, `screen_share` (Zoom's media
    /// header says which; otherwise a 90 kHz RTP clock is video and anything else audio).
    #[serde(default)]
    pub media: Vec<String>,
    /// RTP streams (direction and SSRC) active in the window.
    #[serde(default)]
    pub streams: u32,
}

/// One point of an application session's QoE time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QoeSample {
    /// When the sample was taken (the end of its window), UTC ms.
    pub ts_ms: i64,
    /// Flow key of the member flow the sample was measured on, when it came from one flow.
    pub flow_key: Option<String>,
    /// The QoE blocks measured.
    pub qoe: Qoe,
}
