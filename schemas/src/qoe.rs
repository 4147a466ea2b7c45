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

/// Playback buffer state of a video player, as inferred from the download pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BufferState {
    /// Not enough data to tell.
    #[default]
    Unknown,
    /// Before first frame: the player fills its initial buffer.
    Startup,
    /// Downloading faster than playing: the buffer grows.
    Filling,
    /// On/off download pattern of a full buffer.
    Steady,
    /// Downloading slower than playing: the buffer shrinks.
    Draining,
    /// Buffer empty: playback stalled (rebuffering).
    Stalled,
}

/// Video QoE over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VideoQoe {
    /// Start of the measurement window, UTC ms.
    pub window_start_ms: i64,
    /// End of the measurement window, UTC ms.
    pub window_end_ms: i64,
    /// Video resolution label (e.g. `1080p`, `720p`, `2160p`).
    pub resolution: Option<String>,
    /// Video height in pixels (e.g. 1080).
    pub height_px: Option<u16>,
    /// Estimated media bitrate over the window, kbit/s.
    pub bitrate_kbps: Option<u32>,
    /// Time from the first request to playback start, ms; only in the window where playback started.
    pub startup_delay_ms: Option<u32>,
    /// Number of stalls (rebuffering events) in the window.
    pub stalls: u32,
    /// Total stall time in the window, ms.
    pub stall_ms: u32,
    /// Buffer state at the end of the window.
    pub buffer_state: BufferState,
}

/// Gaming QoE over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GamingQoe {
    /// Start of the measurement window, UTC ms.
    pub window_start_ms: i64,
    /// End of the measurement window, UTC ms.
    pub window_end_ms: i64,
    /// Average latency to the game server (round-trip), ms.
    pub latency_avg_ms: Option<f32>,
    /// Smallest latency in the window, ms.
    pub latency_min_ms: Option<f32>,
    /// Largest latency in the window, ms.
    pub latency_max_ms: Option<f32>,
    /// Lag spikes: latency excursions above the tap's spike threshold (default: twice the window's
    /// median and at least 50 ms above it).
    pub lag_spikes: u32,
    /// Jitter of the game traffic, ms.
    pub jitter_ms: Option<f32>,
    /// Packet loss ratio, 0 to 1.
    pub loss_ratio: Option<f32>,
}

/// Conferencing and voice QoE over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConferencingQoe {
    /// Start of the measurement window, UTC ms.
    pub window_start_ms: i64,
    /// End of the measurement window, UTC ms.
    pub window_end_ms: i64,
    /// Media jitter (RFC 3550 inter-arrival jitter), ms.
    pub jitter_ms: Option<f32>,
    /// Media packet loss ratio, 0 to 1 (RTP sequence gaps or RTCP reports).
    pub loss_ratio: Option<f32>,
    /// Received video frame rate, frames per second; `null` for audio-only sessions.
    pub frame_rate: Option<f32>,
    /// Stutter events: frame-rate drops or frame gaps the viewer would notice.
    pub stutter_events: u32,
    /// Dropouts: media gaps of a second or more (audio or video).
    pub dropouts: u32,
    /// Estimated mean opinion score, 1 (bad) to 5 (excellent) (ITU-T G.107 E-model), where computed.
    pub mos: Option<f32>,
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
