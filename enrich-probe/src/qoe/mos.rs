//! Conferencing MOS: the ITU-T G.107 E-model in the simplified form network monitors use
//! (Cole & Rosenbluth, "Voice over IP performance monitoring", ACM CCR 31(2), 2001), fed with
//! what the tap measures of a call's audio.
//!
//! `R = R0 − Is − Id − Ie,eff + A`, where
//! - `R0 − Is = 93.2`: G.107's default values for everything the tap cannot see (loudness,
//!   circuit noise, sidetone, echo-cancelled terminals; G.107 §7, table 1), `A = 0`;
//! - `Id`: delay impairment from the one-way mouth-to-ear delay `d` (ms), Cole & Rosenbluth's fit
//!   of G.107's `Idte + Idd` with default echo parameters:
//!   `Id = 0.024 d + 0.11 (d − 177.3) H(d − 177.3)` (`H` the unit step);
//! - `Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl)` (G.107 §7.5, `Ppl` in percent), with
//!   `BurstR = 1` (random loss: the tap does not model loss bursts, so bursty loss makes the
//!   estimate optimistic);
//! - MOS from R by G.107 Annex B: `1 + 0.035 R + R (R − 60)(100 − R) · 7·10⁻⁶` for `0 < R < 100`
//!   (clamped to 1 below R ≈ 6.5, where the polynomial dips under 1, so MOS never falls as R
//!   rises), 1 at or below 0, 4.5 at or above 100.
//!
//! The delay `d` is the sum of
//! - the network's one-way delay: half the mean RTT the tap measured on the session's TCP or
//!   QUIC flows in the window (the media's own UDP flows carry no RTT the tap can see; the path to
//!   the provider's servers stands for the media path). Without an RTT sample, no network delay
//!   is counted (the estimate then ignores delay beyond the terminals);
//! - a jitter buffer of twice the measured RFC 3550 interarrival jitter (a common rule for
//!   adaptive playout buffers; the real buffer depends on the client);
//! - the codec's algorithmic delay: 26.5 ms, libopus's default for 20 ms frames (the 20 ms
//!   frame, which is also the packetisation delay, plus 6.5 ms look-ahead).
//!
//! Codec: conferencing audio (WebRTC, Zoom, WhatsApp, Discord, Signal) is Opus-like; the RTP
//! header does not name the codec (dynamic payload types). G.113 Appendix I tabulates no Opus
//! values for the narrowband E-model, so the tap assumes Opus at conferencing bit rates is at
//! least transparent on the narrowband scale (`Ie = 0`, as G.711) and conceals loss as G.711
//! with its Appendix I packet loss concealment does (`Bpl = 25.1`, G.113 Appendix I). Both are
//! assumptions, not measurements. The result is an estimate of listening quality from network
//! impairments only, on the narrowband E-model scale (at most 4.41); it has not been checked
//! against listening tests or POLQA here and is not comparable to them.

use super::rtp::RtpWindow;
use super::rtt::RttSamples;
use serde::Serialize;

/// Audio packets a stream needs in a window for its loss and jitter to enter the MOS: one second
/// of 20-ms audio frames. A window whose audio streams all have fewer gets no MOS.
pub const MIN_AUDIO_PACKETS: u64 = 50;

/// `R0 − Is` with G.107's default values (R = 93.2 with every default).
pub const R_DEFAULT: f64 = 93.2;

/// Codec parameters of the E-model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Codec {
    /// Equipment impairment factor `Ie` (G.113 Appendix I).
    pub ie: f64,
    /// Packet-loss robustness factor `Bpl` (G.113 Appendix I).
    pub bpl: f64,
    /// Algorithmic (frame plus look-ahead) delay, ms.
    pub delay_ms: f64,
}

/// Opus-like conferencing audio: `Ie` 0 and `Bpl` 25.1 as G.711 with packet loss concealment
/// (G.113 Appendix I), Opus's 26.5 ms algorithmic delay at 20 ms frames (RFC 6716).
pub const OPUS_LIKE: Codec = Codec {
    ie: 0.0,
    bpl: 25.1,
    delay_ms: 26.5,
};

/// What one MOS estimate was computed from (printed by `supernetflow qoe` beside the MOS).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MosInputs {
    /// Audio streams with at least [`MIN_AUDIO_PACKETS`] packets in the window.
    pub audio_streams: u32,
    /// Loss ratio of the worst of those streams, 0 to 1.
    pub loss_ratio: f64,
    /// Mean RFC 3550 jitter of the most jittery of those streams, ms.
    pub jitter_ms: f64,
    /// Mean RTT of the session's TCP/QUIC flows in the window, ms (`None`: none measured).
    pub rtt_ms: Option<f64>,
    /// One-way delay assumed: RTT / 2 + 2 × jitter + codec delay, ms.
    pub delay_ms: f64,
    /// Delay impairment `Id`.
    pub id: f64,
    /// Effective equipment impairment `Ie,eff`.
    pub ie_eff: f64,
    /// Transmission rating `R`.
    pub r: f64,
    /// MOS (G.107 Annex B).
    pub mos: f64,
}

/// Delay impairment `Id` of a one-way delay `d_ms` (Cole & Rosenbluth's fit of G.107).
pub fn delay_impairment(d_ms: f64) -> f64 {
    let d = d_ms.max(0.0);
    0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 }
}

/// Effective equipment impairment `Ie,eff` of `codec` at a random loss ratio `loss` (0 to 1).
pub fn loss_impairment(loss: f64, codec: &Codec) -> f64 {
    let ppl = (loss.clamp(0.0, 1.0)) * 100.0;
    // BurstR = 1: random loss.
    codec.ie + (95.0 - codec.ie) * ppl / (ppl + codec.bpl)
}

/// Transmission rating `R` at one-way delay `d_ms` and loss ratio `loss` (0 to 1).
pub fn r_factor(d_ms: f64, loss: f64, codec: &Codec) -> f64 {
    R_DEFAULT - delay_impairment(d_ms) - loss_impairment(loss, codec)
}

/// MOS (1 to 4.5) from `R` by G.107 Annex B, held at 1 where the polynomial dips below it.
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
    }
}

/// One-way mouth-to-ear delay assumed, ms: half the RTT (when measured), a jitter buffer of
/// twice the jitter, the codec's algorithmic delay.
pub fn one_way_delay_ms(rtt_ms: Option<f64>, jitter_ms: f64, codec: &Codec) -> f64 {
    rtt_ms.map_or(0.0, |r| r.max(0.0) / 2.0) + 2.0 * jitter_ms.max(0.0) + codec.delay_ms
}

/// The MOS estimate of a window: its worst audio stream's loss and jitter (streams with at
/// least [`MIN_AUDIO_PACKETS`] packets) and the window's RTT; `None` without such a stream.
pub fn estimate(rtp: &RtpWindow, rtt: &RttSamples) -> Option<MosInputs> {
    if rtp.audio_streams == 0 {
        return None;
    }
    let codec = OPUS_LIKE;
    let rtt_ms = rtt.min_avg_max_ms().map(|(_, avg, _)| f64::from(avg));
    let delay_ms = one_way_delay_ms(rtt_ms, rtp.audio_jitter_worst_ms, &codec);
    let id = delay_impairment(delay_ms);
    let ie_eff = loss_impairment(rtp.audio_loss_worst, &codec);
    let r = R_DEFAULT - id - ie_eff;
    Some(MosInputs {
        audio_streams: rtp.audio_streams,
        loss_ratio: rtp.audio_loss_worst,
        jitter_ms: rtp.audio_jitter_worst_ms,
        rtt_ms,
        delay_ms,
        id,
        ie_eff,
        r,
        mos: mos_from_r(r),
    })
}

#[cfg(test)]
#[path = "mos_tests.rs"]
mod tests;
