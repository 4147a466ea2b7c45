//! Video QoE from packet sizes and timing (contract placeholder: the estimator replaces the
//! bodies; the signatures below are what the `qoe` command and the session layer call).

use schemas::{BufferState, VideoQoe};

/// Settings of the video estimator (ladders per provider come from a data file).
#[derive(Debug, Clone, Default)]
pub struct VideoConfig {}

/// One video session: the packets of every member flow of one client and provider.
#[derive(Debug, Clone)]
pub struct VideoSession {
    live: bool,
}

impl VideoSession {
    /// A session of `provider` (nDPI-style lower-case id, e.g. `youtube`), live or on demand.
    pub fn new(_cfg: &VideoConfig, _provider: Option<&str>, live: bool) -> Self {
        VideoSession { live }
    }

    /// One packet of a member flow: `flow` tells flows apart (the canonical key hash), `up` is
    /// client → server, `ip_len` the IP datagram length, `payload_len` the L4 payload length from
    /// the IP lengths (not the captured bytes). Packets come in capture order.
    pub fn packet(&mut self, _ts_ns: u64, _flow: u64, _up: bool, _ip_len: u32, _payload_len: u32) {}

    /// The QoE of `[start_ns, end_ns)`; called in time order once every packet before `end_ns`
    /// has been given.
    pub fn interval(&mut self, start_ns: u64, end_ns: u64) -> VideoQoe {
        let _ = self.live;
        VideoQoe {
            window_start_ms: (start_ns / 1_000_000) as i64,
            window_end_ms: (end_ns / 1_000_000) as i64,
            resolution: None,
            height_px: None,
            bitrate_kbps: None,
            startup_delay_ms: None,
            stalls: 0,
            stall_ms: 0,
            buffer_state: BufferState::Unknown,
        }
    }
}
