//! Gaming QoE of one UDP game flow from packet timing alone (game protocols are proprietary and
//! mostly encrypted).
//!
//! - *Latency* (request/response): a client packet opens a request; the server's next packet
//!   closes it, and the time between is one sample. A game server answers on its next tick, so a
//!   sample is the network round trip from the tap plus up to one tick interval: an upper bound of
//!   the RTT, tight for request/response protocols and within one tick (e.g. 16-50 ms at 20-60 Hz)
//!   for tick-driven ones. TCP game flows use the TCP RTT instead ([`super::rtt`]).
//! - *Tick rate*: the server → client packet rate at the median inter-arrival time of the window
//!   (1 / median), and its *regularity*: the share of gaps within ±50 % of the median.
//! - *Lag spikes*: server → client gaps above twice the window's median gap and at least 50 ms
//!   above it (the player sees the world freeze).
//! - *Choppy*: a window with a lag spike, or with regularity under 0.8; smooth otherwise.
//! - *Cloud gaming* (a game streamed as video, server → client over 3 Mbit/s): bitrate, frame rate
//!   from RTP frames when the stream is RTP, and a resolution from the bitrate (the providers'
//!   published minimums: 720p needs about 8, 1080p 15, 1440p 25, 2160p 40 Mbit/s), so a rough class,
//!   not a measurement.
//!
//! State per window is bounded: at most [`MAX_GAPS`] gaps and latency samples are kept.

/// Gaps and latency samples kept per window at most.
pub const MAX_GAPS: usize = 4096;

/// The game side of one flow.
#[derive(Debug, Clone, Default)]
pub struct GameFlow {
    pending_req: Option<u64>,
    last_down: Option<u64>,
    win: GameWindow,
}

/// What one window of one or several game flows measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GameWindow {
    /// Request/response latency samples, ns.
    pub latency_ns: Vec<u64>,
    /// Server → client gaps, ns.
    pub gaps_ns: Vec<u64>,
    /// Server → client IP bytes.
    pub down_bytes: u64,
    /// Client → server packets.
    pub up_packets: u64,
}

impl GameFlow {
    /// One packet of the flow: `up` client → server, `ip_len` the IP datagram length.
    pub fn packet(&mut self, now: u64, up: bool, ip_len: u32) {
        if up {
            self.win.up_packets += 1;
            self.pending_req.get_or_insert(now);
            return;
        }
        self.win.down_bytes += u64::from(ip_len);
        if let Some(t) = self.pending_req.take() {
            push(&mut self.win.latency_ns, now.saturating_sub(t));
        }
        if let Some(prev) = self.last_down {
            if now >= prev {
                push(&mut self.win.gaps_ns, now - prev);
            }
        }
        self.last_down = Some(now.max(self.last_down.unwrap_or(0)));
    }

    /// The window since the last call.
    pub fn take_window(&mut self) -> GameWindow {
        std::mem::take(&mut self.win)
    }
}

fn push(v: &mut Vec<u64>, x: u64) {
    if v.len() < MAX_GAPS {
        v.push(x);
    }
}

fn median(v: &[u64]) -> Option<u64> {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied()
}

impl GameWindow {
    /// Adds another flow's window.
    pub fn merge(&mut self, o: &GameWindow) {
        for &x in &o.latency_ns {
            push(&mut self.latency_ns, x);
        }
        for &x in &o.gaps_ns {
            push(&mut self.gaps_ns, x);
        }
        self.down_bytes += o.down_bytes;
        self.up_packets += o.up_packets;
    }

    /// True when nothing was measured.
    pub fn is_empty(&self) -> bool {
        self.latency_ns.is_empty() && self.gaps_ns.is_empty() && self.down_bytes == 0
    }

    /// The gaming block over `[start_ns, end_ns)`; `rtt` (TCP or spin-bit RTT samples of the
    /// session's flows) stands in for the latency when no UDP request/response was seen;
    /// `frames` are RTP video frames of the window (cloud gaming), `loss` the RTP loss ratio.
    pub fn qoe(
        &self,
        start_ns: u64,
        end_ns: u64,
        rtt: &super::rtt::RttSamples,
        frames: Option<u64>,
        loss: Option<f32>,
    ) -> schemas::GamingQoe {
        let ms = |ns: u64| ns as f32 / 1e6;
        let (lat_min, lat_avg, lat_max) = if self.latency_ns.is_empty() {
            match rtt.min_avg_max_ms() {
                Some((a, b, c)) => (Some(a), Some(b), Some(c)),
                None => (None, None, None),
            }
        } else {
            let n = self.latency_ns.len() as f64;
            let sum: u64 = self.latency_ns.iter().sum();
            (
                self.latency_ns.iter().min().map(|&x| ms(x)),
                Some((sum as f64 / n / 1e6) as f32),
                self.latency_ns.iter().max().map(|&x| ms(x)),
            )
        };
        let med = median(&self.gaps_ns).filter(|&m| m > 0);
        let (mut spikes, mut regular) = (0u32, 0usize);
        let mut jitter = None;
        if let Some(m) = med {
            let thr = (2 * m).max(m + 50_000_000);
            for &g in &self.gaps_ns {
                if g > thr {
                    spikes += 1;
                }
                if g * 2 >= m && g * 2 <= 3 * m {
                    regular += 1;
                }
            }
            // Mean absolute deviation of the gaps from the median tick.
            let dev: f64 = self
                .gaps_ns
                .iter()
                .map(|&g| (g as f64 - m as f64).abs())
                .sum();
            jitter = Some((dev / self.gaps_ns.len() as f64 / 1e6) as f32);
        }
        let regularity = med.map(|_| regular as f32 / self.gaps_ns.len() as f32);
        let secs = end_ns.saturating_sub(start_ns) as f64 / 1e9;
        let kbps = (secs > 0.0).then(|| (self.down_bytes as f64 * 8.0 / 1000.0 / secs) as u32);
        let cloud = kbps.is_some_and(|k| k >= 3_000);
        let height = kbps.filter(|_| cloud).map(|k| match k {
            40_000.. => 2160,
            25_000.. => 1440,
            15_000.. => 1080,
            8_000.. => 720,
            _ => 540,
        });
        schemas::GamingQoe {
            window_start_ms: (start_ns / 1_000_000) as i64,
            window_end_ms: (end_ns / 1_000_000) as i64,
            latency_avg_ms: lat_avg,
            latency_min_ms: lat_min,
            latency_max_ms: lat_max,
            lag_spikes: spikes,
            jitter_ms: jitter,
            loss_ratio: loss,
            tick_rate_hz: med.map(|m| (1e9 / m as f64) as f32),
            tick_regularity: regularity,
            choppy: regularity.map(|r| spikes > 0 || r < 0.8),
            bitrate_kbps: kbps,
            frame_rate: frames
                .filter(|_| cloud && secs > 0.0)
                .map(|f| (f as f64 / secs) as f32),
            height_px: height,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qoe::rtt::RttSamples;

    const MS: u64 = 1_000_000;

    #[test]
    fn tick_rate_spikes_and_latency() {
        let mut g = GameFlow::default();
        let mut t = 0;
        for i in 0..300u64 {
            // 30 Hz server ticks, one 300 ms freeze; the client sends 5 ms before each tick.
            t += if i == 150 { 300 * MS } else { 33 * MS };
            g.packet(t - 5 * MS, true, 80);
            g.packet(t, false, 200);
        }
        let w = g.take_window();
        let q = w.qoe(0, t, &RttSamples::default(), None, None);
        assert_eq!(q.lag_spikes, 1);
        assert!((q.tick_rate_hz.unwrap_or(0.0) - 30.3).abs() < 0.1);
        assert_eq!(q.latency_min_ms, Some(5.0));
        assert_eq!(q.latency_max_ms, Some(5.0));
        assert_eq!(q.choppy, Some(true));
        assert!(q.tick_regularity.unwrap_or(0.0) > 0.99);
        assert_eq!(q.height_px, None);
        let q2 = g
            .take_window()
            .qoe(t, t + 1000 * MS, &RttSamples::default(), None, None);
        assert_eq!(q2.choppy, None);
        assert_eq!(q2.latency_avg_ms, None);
    }
}
