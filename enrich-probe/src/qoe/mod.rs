//! Quality of experience: the estimators that turn the packets the tap sees into the QoE blocks
//! of [`schemas::Qoe`] and the RTT, jitter and loss of [`schemas::FlowStats`].
//!
//! Every estimator is fed only what the kernel program sends to user space (the first packets of
//! a flow whole, then the headers of flows whose verdict is "QoE headers": see
//! [`wants_headers`]), so the offline path measures what the live path would.
//!
//! - [`video`]: on-demand and live video (chunks, bitrate → resolution, startup, buffer, stalls).
//! - [`mos`]: conferencing MOS by the ITU-T G.107 E-model from audio loss, jitter and RTT.
//! - [`rtp`]: per RTP stream loss, RFC 3550 jitter, frame rate, stutter and dropouts.
//! - [`rtt`]: TCP RTT from timestamps (passive ping) where both sides send them, else from
//!   data/ACK timing; QUIC RTT from the spin bit.
//! - [`gaming`]: game latency, tick rate and regularity, lag spikes, cloud-gaming bitrate.
//! - [`session`]: application sessions (one client and provider across its flows), their
//!   periodic QoE and Network QoS.
//!
//! # What it costs
//! A flow in the "QoE headers" verdict sends every packet's L4 header plus `hdr_payload` (64)
//! payload bytes to user space: enough for RTP's 12-byte header behind Zoom's encapsulation (at
//! most 8 + 27 bytes), TCP options, and QUIC's first byte. Flows get it when their type needs
//! QoE (video, live, gaming, conferencing, VoIP, or RTP/Zoom media seen), and TCP and QUIC flows
//! while their RTT is measured: until [`FlowQoe`] has `rtt_samples` samples (default 256) or the
//! flow `rtt_max_packets` packets (default 4096), whichever comes first. ACCOUNTING.md states the
//! rule for the kernel side.

pub mod gaming;
pub mod mos;
pub mod rtp;
pub mod rtt;
pub mod session;
pub mod video;

use crate::flow::Parsed;
use rtp::{MediaKind, RtpStreams, RtpWindow};
use rtt::{RttSamples, SpinRtt, TcpRtt, TcpSeg, TsRtt};
use schemas::AppType;

/// App types whose QoE needs every packet's headers.
pub fn qoe_app(t: AppType) -> bool {
    matches!(
        t,
        AppType::VideoStreaming
            | AppType::LiveStreaming
            | AppType::Gaming
            | AppType::CloudGaming
            | AppType::Conferencing
            | AppType::Voip
    )
}

/// What the flow is, as far as the QoE estimators care.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowKind {
    /// App type so far.
    pub app_type: AppType,
    /// The flow is QUIC (a QUIC Initial was seen).
    pub quic: bool,
}

/// The QoE estimators of one flow.
#[derive(Debug, Clone, Default)]
pub struct FlowQoe {
    /// TCP RTT from data/ACK timing (TCP flows).
    pub tcp: Option<Box<TcpRtt>>,
    /// TCP RTT from timestamps (TCP flows that carry the option).
    pub ts: Option<Box<TsRtt>>,
    /// QUIC spin-bit RTT.
    pub spin: Option<SpinRtt>,
    /// RTP streams (UDP flows that carried RTP).
    pub rtp: Option<Box<RtpStreams>>,
    /// Game timing (gaming flows).
    pub game: Option<Box<gaming::GameFlow>>,
    /// When the current window started (0: at the flow's first packet), ns.
    pub window_start_ns: u64,
}

/// What one window of one flow measured.
#[derive(Debug, Clone, Default)]
pub struct FlowWindow {
    /// RTP counters.
    pub rtp: RtpWindow,
    /// RTT samples.
    pub rtt: RttSamples,
    /// Game timing.
    pub game: gaming::GameWindow,
}

impl FlowWindow {
    /// Adds another flow's window.
    pub fn merge(&mut self, o: &FlowWindow) {
        self.rtp.merge(&o.rtp);
        self.rtt.merge(&o.rtt);
        self.game.merge(&o.game);
    }
}

/// The RTP packet in a UDP payload, with its media kind when Zoom's header says it: Zoom's SFU
/// form (UDP 8801: an 8-byte outer header, then the media header) or its peer-to-peer form, else
/// plain RTP. Offsets as in [`crate::dpi::rtp::parse_zoom`].
/// `len` is the UDP payload's real length (`payload` may be cut short by the snap length).
pub fn rtp_in(payload: &[u8], len: usize, sfu: bool) -> Option<(MediaKind, rtp::RtpHeader)> {
    use crate::dpi::rtp::{parse_zoom, ZoomMedia};
    // Plain RTP starts with 0x80-0xbf, never one of Zoom's type bytes.
    if let Some(z) = parse_zoom(payload, sfu) {
        let outer = if sfu { 8 } else { 0 };
        let (kind, off) = match z {
            ZoomMedia::Audio => (MediaKind::Audio, 19),
            ZoomMedia::Video => (MediaKind::Video, 24),
            ZoomMedia::ScreenShare => (MediaKind::ScreenShare, 27),
            ZoomMedia::Rtcp => return None,
        };
        let len = len.checked_sub(outer + off)?;
        return rtp::header(payload.get(outer + off..)?, len).map(|h| (kind, h));
    }
    if sfu {
        return None;
    }
    rtp::header(payload, len).map(|h| (MediaKind::Unknown, h))
}

impl FlowQoe {
    /// One packet user space received: `frame[..cap]` the bytes, `p` what the accounting parsed,
    /// `up` client → server, `now` its time.
    pub fn packet(
        &mut self,
        p: &Parsed,
        frame: &[u8],
        cap: usize,
        up: bool,
        now: u64,
        kind: FlowKind,
    ) {
        if p.is_tcp {
            if let Some(ack) = rtt::tcp_ack(frame, cap, usize::from(p.l4_off)) {
                self.tcp.get_or_insert_with(Default::default).segment(
                    &TcpSeg {
                        dir: p.dir,
                        seq: p.seq,
                        ack,
                        flags: p.flags,
                        payload: p.payload,
                    },
                    now,
                );
            }
            let (off, hdr) = (usize::from(p.l4_off), usize::from(p.l4_hdr));
            if let Some((tsval, tsecr)) = rtt::tcp_timestamps(frame, cap, off, hdr) {
                self.ts
                    .get_or_insert_with(Default::default)
                    .segment(p.dir, p.flags, tsval, tsecr, now);
            }
        } else if p.key.protocol == 17 {
            let (lo, hi) = (p.key.low_port, p.key.high_port);
            let payload = p.payload(frame, cap);
            if kind.quic {
                if up {
                    self.spin
                        .get_or_insert_with(Default::default)
                        .client_packet(payload, now);
                }
            } else if ![53, 5353, 5355, 137, 1900].contains(&lo.min(hi)) {
                let sfu = lo == 8801 || hi == 8801;
                let len = p.l4_len.saturating_sub(u32::from(p.l4_hdr)) as usize;
                if let Some((k, h)) = rtp_in(payload, len, sfu) {
                    self.rtp
                        .get_or_insert_with(Default::default)
                        .packet(p.dir, &h, k, now);
                }
            }
        }
        if kind.app_type.is_gaming() {
            self.game
                .get_or_insert_with(Default::default)
                .packet(now, up, p.ip_len);
        }
    }

    /// The timestamps estimator, when it is the flow's RTT: both sides send the option and it
    /// has a sample.
    fn ts_used(&self) -> Option<&TsRtt> {
        self.ts
            .as_deref()
            .filter(|t| t.both() && t.samples.count > 0)
    }

    /// RTT samples of the flow (TCP timestamps where both sides send them, else TCP data/ACK,
    /// else QUIC spin bit).
    pub fn rtt(&self) -> Option<&RttSamples> {
        if let Some(t) = self.ts_used() {
            return Some(&t.samples);
        }
        match (&self.tcp, &self.spin) {
            (Some(t), _) if t.samples.count > 0 => Some(&t.samples),
            (_, Some(s)) if s.samples.count > 0 => Some(&s.samples),
            _ => None,
        }
    }

    /// RTP streams worth reporting: the flow carried RTP the DPI recognised (`media`), or it is
    /// conferencing or voice.
    pub fn media(&self, media: bool, app_type: AppType) -> Option<&RtpStreams> {
        let r = self.rtp.as_deref()?;
        (media || matches!(app_type, AppType::Conferencing | AppType::Voip)).then_some(r)
    }

    /// The window since the last call, and starts a new one at `now` ns.
    pub fn take_window(&mut self, now: u64) -> FlowWindow {
        self.window_start_ns = now;
        let mut w = FlowWindow::default();
        if let Some(r) = &mut self.rtp {
            w.rtp = r.take_window();
        }
        let ts = self.ts_used().is_some();
        if let Some(t) = &mut self.tcp {
            w.rtt = std::mem::take(&mut t.window);
        }
        if let Some(t) = &mut self.ts {
            let tw = std::mem::take(&mut t.window);
            if ts {
                w.rtt = tw;
            }
        }
        if let Some(s) = &mut self.spin {
            w.rtt.merge(&std::mem::take(&mut s.window));
        }
        if let Some(g) = &mut self.game {
            w.game = g.take_window();
        }
        w
    }

    /// RTT samples so far (to stop measuring once there are enough).
    pub fn rtt_count(&self) -> u64 {
        self.tcp.as_ref().map_or(0, |t| t.samples.count)
            + self.spin.as_ref().map_or(0, |s| s.samples.count)
    }
}

/// Whether a classified flow should send its headers (verdict 2) rather than nothing (verdict 3):
/// its type needs QoE, it carried media, or its RTT is still being measured.
pub fn wants_headers(
    app_type: AppType,
    media: bool,
    rtt_flow: bool,
    q: &FlowQoe,
    packets: u64,
    rtt_samples: u64,
    rtt_max_packets: u64,
) -> bool {
    qoe_app(app_type)
        || media
        || (rtt_flow && q.rtt_count() < rtt_samples && packets < rtt_max_packets)
}
