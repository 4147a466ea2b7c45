//! A session's QoE time series (`qoe_series`) packed into one `octetArray` element.
//!
//! Sent as JSON text the series cost ~300 bytes per sample (the keys, the `null`s of the blocks
//! not measured, 13-digit times), and a long report was cut at the string limit. Packed, a sample
//! costs ~10-30 bytes and a report's whole series fits one element. The packing is exact: every
//! field comes back with the value it was sent with (floats as their `float32` bits, absent
//! values absent), so the decoder rebuilds the same [`QoeSample`]s.
//!
//! # Format (version 1)
//! Integers are LEB128 varints (unsigned) or zigzag varints (signed); floats are `float32`
//! big-endian; strings are a varint length and UTF-8.
//!
//! ```text
//! u8      format version (1)
//! varint  number of samples
//! per sample:
//!   u8      present parts: bit 0 flow_key, bit 1 video, bit 2 gaming, bit 3 conferencing
//!   zigzag  ts_ms − the previous sample's ts_ms (0 before the first)
//!   string  flow_key                                   (bit 0)
//!   per block present, in the order video, gaming, conferencing:
//!     zigzag  ts_ms − window_end_ms
//!     zigzag  window_start_ms − the previous sample's ts_ms (the first sample: − window_end_ms)
//!     varint  which optional fields are present (bit i: the i-th `Option` field in the order
//!             the block declares them)
//!     the fields in declaration order: the present optional ones and every plain one
//!     (u16/u32 as varints, f32 as 4 bytes, bool as 1 byte, buffer_state as its code 0-5,
//!     media as a varint count and strings)
//! ```
//!
//! Contiguous windows (a window starting where the previous sample's ended, ending at its sample's
//! time) cost one byte each for the two window times.

use crate::qoe::{BufferState, ConferencingQoe, GamingQoe, Qoe, QoeSample, VideoQoe};

/// The format version written first.
pub const VERSION: u8 = 1;

/// Why packed bytes do not unpack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("packed QoE series at byte {at}: {what}")]
pub struct SeriesError {
    /// Offset of the problem.
    pub at: usize,
    /// What is wrong.
    pub what: String,
}

/// Packs `samples` (format version 1).
pub fn pack(samples: &[QoeSample]) -> Vec<u8> {
    let mut w = Vec::with_capacity(8 + samples.len() * 16);
    w.push(VERSION);
    uvar(&mut w, samples.len() as u64);
    let mut prev: Option<i64> = None;
    for s in samples {
        let q = &s.qoe;
        let flags = u8::from(s.flow_key.is_some())
            | u8::from(q.video.is_some()) << 1
            | u8::from(q.gaming.is_some()) << 2
            | u8::from(q.conferencing.is_some()) << 3;
        w.push(flags);
        zvar(&mut w, s.ts_ms.wrapping_sub(prev.unwrap_or(0)));
        if let Some(k) = &s.flow_key {
            string(&mut w, k);
        }
        let window = |w: &mut Vec<u8>, start: i64, end: i64| {
            zvar(w, s.ts_ms.wrapping_sub(end));
            zvar(w, start.wrapping_sub(prev.unwrap_or(end)));
        };
        if let Some(v) = &q.video {
            let VideoQoe {
                window_start_ms,
                window_end_ms,
                resolution,
                height_px,
                bitrate_kbps,
                startup_delay_ms,
                stalls,
                stall_ms,
                buffer_state,
            } = v;
            window(&mut w, *window_start_ms, *window_end_ms);
            uvar(
                &mut w,
                bits(&[
                    resolution.is_some(),
                    height_px.is_some(),
                    bitrate_kbps.is_some(),
                    startup_delay_ms.is_some(),
                ]),
            );
            if let Some(r) = resolution {
                string(&mut w, r);
            }
            for n in [
                height_px.map(u32::from),
                *bitrate_kbps,
                *startup_delay_ms,
                Some(*stalls),
                Some(*stall_ms),
            ]
            .into_iter()
            .flatten()
            {
                uvar(&mut w, u64::from(n));
            }
            w.push(buffer_code(*buffer_state));
        }
        if let Some(g) = &q.gaming {
            let GamingQoe {
                window_start_ms,
                window_end_ms,
                latency_avg_ms,
                latency_min_ms,
                latency_max_ms,
                lag_spikes,
                jitter_ms,
                loss_ratio,
                tick_rate_hz,
                tick_regularity,
                choppy,
                bitrate_kbps,
                frame_rate,
                height_px,
            } = g;
            window(&mut w, *window_start_ms, *window_end_ms);
            uvar(
                &mut w,
                bits(&[
                    latency_avg_ms.is_some(),
                    latency_min_ms.is_some(),
                    latency_max_ms.is_some(),
                    jitter_ms.is_some(),
                    loss_ratio.is_some(),
                    tick_rate_hz.is_some(),
                    tick_regularity.is_some(),
                    choppy.is_some(),
                    bitrate_kbps.is_some(),
                    frame_rate.is_some(),
                    height_px.is_some(),
                ]),
            );
            for f in [latency_avg_ms, latency_min_ms, latency_max_ms]
                .into_iter()
                .flatten()
            {
                w.extend_from_slice(&f.to_be_bytes());
            }
            uvar(&mut w, u64::from(*lag_spikes));
            for f in [jitter_ms, loss_ratio, tick_rate_hz, tick_regularity]
                .into_iter()
                .flatten()
            {
                w.extend_from_slice(&f.to_be_bytes());
            }
            if let Some(c) = choppy {
                w.push(u8::from(*c));
            }
            if let Some(b) = bitrate_kbps {
                uvar(&mut w, u64::from(*b));
            }
            if let Some(f) = frame_rate {
                w.extend_from_slice(&f.to_be_bytes());
            }
            if let Some(h) = height_px {
                uvar(&mut w, u64::from(*h));
            }
        }
        if let Some(c) = &q.conferencing {
            let ConferencingQoe {
                window_start_ms,
                window_end_ms,
                jitter_ms,
                loss_ratio,
                frame_rate,
                stutter_events,
                dropouts,
                mos,
                media,
                streams,
            } = c;
            window(&mut w, *window_start_ms, *window_end_ms);
            uvar(
                &mut w,
                bits(&[
                    jitter_ms.is_some(),
                    loss_ratio.is_some(),
                    frame_rate.is_some(),
                    mos.is_some(),
                ]),
            );
            for f in [jitter_ms, loss_ratio, frame_rate].into_iter().flatten() {
                w.extend_from_slice(&f.to_be_bytes());
            }
            uvar(&mut w, u64::from(*stutter_events));
            uvar(&mut w, u64::from(*dropouts));
            if let Some(m) = mos {
                w.extend_from_slice(&m.to_be_bytes());
            }
            uvar(&mut w, media.len() as u64);
            for m in media {
                string(&mut w, m);
            }
            uvar(&mut w, u64::from(*streams));
        }
        prev = Some(s.ts_ms);
    }
    w
}

/// Unpacks what [`pack`] wrote.
pub fn unpack(b: &[u8]) -> Result<Vec<QoeSample>, SeriesError> {
    let mut r = Reader { b, at: 0 };
    let v = r.u8()?;
    if v != VERSION {
        return Err(r.err(format!("format version {v}, expected {VERSION}")));
    }
    let n = r.uvar()?;
    // Every sample takes at least two bytes: a count beyond that is corrupt.
    if n > (b.len() as u64) / 2 {
        return Err(r.err(format!("{n} samples in {} bytes", b.len())));
    }
    let mut out = Vec::with_capacity(n as usize);
    let mut prev: Option<i64> = None;
    for _ in 0..n {
        let flags = r.u8()?;
        if flags >> 4 != 0 {
            return Err(r.err(format!("unknown parts {flags:#04x}")));
        }
        let ts_ms = prev.unwrap_or(0).wrapping_add(r.zvar()?);
        let flow_key = if flags & 1 != 0 {
            Some(r.string()?)
        } else {
            None
        };
        let window = |r: &mut Reader| -> Result<(i64, i64), SeriesError> {
            let end = ts_ms.wrapping_sub(r.zvar()?);
            let start = r.zvar()?.wrapping_add(prev.unwrap_or(end));
            Ok((start, end))
        };
        let mut qoe = Qoe::default();
        if flags & 2 != 0 {
            let (window_start_ms, window_end_ms) = window(&mut r)?;
            let p = r.present(4)?;
            let resolution = if p[0] { Some(r.string()?) } else { None };
            let height_px = if p[1] { Some(r.u16var()?) } else { None };
            let bitrate_kbps = if p[2] { Some(r.u32var()?) } else { None };
            let startup_delay_ms = if p[3] { Some(r.u32var()?) } else { None };
            let stalls = r.u32var()?;
            let stall_ms = r.u32var()?;
            let code = r.u8()?;
            let buffer_state =
                buffer_state(code).ok_or_else(|| r.err(format!("buffer state {code}")))?;
            qoe.video = Some(VideoQoe {
                window_start_ms,
                window_end_ms,
                resolution,
                height_px,
                bitrate_kbps,
                startup_delay_ms,
                stalls,
                stall_ms,
                buffer_state,
            });
        }
        if flags & 4 != 0 {
            let (window_start_ms, window_end_ms) = window(&mut r)?;
            let p = r.present(11)?;
            let latency_avg_ms = r.f32_if(p[0])?;
            let latency_min_ms = r.f32_if(p[1])?;
            let latency_max_ms = r.f32_if(p[2])?;
            let lag_spikes = r.u32var()?;
            let jitter_ms = r.f32_if(p[3])?;
            let loss_ratio = r.f32_if(p[4])?;
            let tick_rate_hz = r.f32_if(p[5])?;
            let tick_regularity = r.f32_if(p[6])?;
            let choppy = if p[7] {
                Some(match r.u8()? {
                    0 => false,
                    1 => true,
                    x => return Err(r.err(format!("boolean {x}"))),
                })
            } else {
                None
            };
            let bitrate_kbps = if p[8] { Some(r.u32var()?) } else { None };
            let frame_rate = r.f32_if(p[9])?;
            let height_px = if p[10] { Some(r.u16var()?) } else { None };
            qoe.gaming = Some(GamingQoe {
                window_start_ms,
                window_end_ms,
                latency_avg_ms,
                latency_min_ms,
                latency_max_ms,
                lag_spikes,
                jitter_ms,
                loss_ratio,
                tick_rate_hz,
                tick_regularity,
                choppy,
                bitrate_kbps,
                frame_rate,
                height_px,
            });
        }
        if flags & 8 != 0 {
            let (window_start_ms, window_end_ms) = window(&mut r)?;
            let p = r.present(4)?;
            let jitter_ms = r.f32_if(p[0])?;
            let loss_ratio = r.f32_if(p[1])?;
            let frame_rate = r.f32_if(p[2])?;
            let stutter_events = r.u32var()?;
            let dropouts = r.u32var()?;
            let mos = r.f32_if(p[3])?;
            let m = r.uvar()?;
            if m > (b.len() - r.at) as u64 {
                return Err(r.err(format!("{m} media names")));
            }
            let media = (0..m).map(|_| r.string()).collect::<Result<_, _>>()?;
            let streams = r.u32var()?;
            qoe.conferencing = Some(ConferencingQoe {
                window_start_ms,
                window_end_ms,
                jitter_ms,
                loss_ratio,
                frame_rate,
                stutter_events,
                dropouts,
                mos,
                media,
                streams,
            });
        }
        out.push(QoeSample {
            ts_ms,
            flow_key,
            qoe,
        });
        prev = Some(ts_ms);
    }
    if r.at != b.len() {
        return Err(r.err(format!("{} bytes left over", b.len() - r.at)));
    }
    Ok(out)
}

fn buffer_code(s: BufferState) -> u8 {
    match s {
        BufferState::Unknown => 0,
        BufferState::Startup => 1,
        BufferState::Filling => 2,
        BufferState::Steady => 3,
        BufferState::Draining => 4,
        BufferState::Stalled => 5,
    }
}

fn buffer_state(code: u8) -> Option<BufferState> {
    Some(match code {
        0 => BufferState::Unknown,
        1 => BufferState::Startup,
        2 => BufferState::Filling,
        3 => BufferState::Steady,
        4 => BufferState::Draining,
        5 => BufferState::Stalled,
        _ => return None,
    })
}

fn bits(present: &[bool]) -> u64 {
    present
        .iter()
        .enumerate()
        .fold(0, |a, (i, p)| a | u64::from(*p) << i)
}

fn uvar(w: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        w.push((n as u8) | 0x80);
        n >>= 7;
    }
    w.push(n as u8);
}

fn zvar(w: &mut Vec<u8>, n: i64) {
    uvar(w, ((n << 1) ^ (n >> 63)) as u64);
}

fn string(w: &mut Vec<u8>, s: &str) {
    uvar(w, s.len() as u64);
    w.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn err(&self, what: String) -> SeriesError {
        SeriesError { at: self.at, what }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], SeriesError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| self.err(format!("{n} bytes wanted, the series ends")))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, SeriesError> {
        Ok(self.take(1)?[0])
    }

    fn uvar(&mut self) -> Result<u64, SeriesError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let x = self.u8()?;
            n |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(self.err("varint longer than 64 bits".into()))
    }

    fn zvar(&mut self) -> Result<i64, SeriesError> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn u32var(&mut self) -> Result<u32, SeriesError> {
        let n = self.uvar()?;
        u32::try_from(n).map_err(|_| self.err(format!("{n} does not fit 32 bits")))
    }

    fn u16var(&mut self) -> Result<u16, SeriesError> {
        let n = self.uvar()?;
        u16::try_from(n).map_err(|_| self.err(format!("{n} does not fit 16 bits")))
    }

    fn f32_if(&mut self, present: bool) -> Result<Option<f32>, SeriesError> {
        if !present {
            return Ok(None);
        }
        let b = self.take(4)?;
        Ok(Some(f32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    }

    fn present(&mut self, fields: u32) -> Result<Vec<bool>, SeriesError> {
        let m = self.uvar()?;
        if m >> fields != 0 {
            return Err(self.err(format!("unknown optional fields {m:#x}")));
        }
        Ok((0..fields).map(|i| m >> i & 1 != 0).collect())
    }

    fn string(&mut self) -> Result<String, SeriesError> {
        let n = self.uvar()?;
        let n = usize::try_from(n).map_err(|_| self.err(format!("string of {n} bytes")))?;
        let b = self.take(n)?.to_vec();
        String::from_utf8(b).map_err(|_| self.err("string not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(start: i64, end: i64) -> ConferencingQoe {
        ConferencingQoe {
            window_start_ms: start,
            window_end_ms: end,
            jitter_ms: None,
            loss_ratio: Some(0.0),
            frame_rate: Some(0.181_032_27),
            stutter_events: 0,
            dropouts: 2,
            mos: None,
            media: vec!["audio".into(), "video".into()],
            streams: 3,
        }
    }

    fn samples() -> Vec<QoeSample> {
        let t0 = 1_739_958_250_706;
        let mut v = vec![
            QoeSample {
                ts_ms: t0,
                flow_key: None,
                qoe: Qoe {
                    conferencing: Some(conf(t0 - 30_000, t0)),
                    ..Qoe::default()
                },
            },
            QoeSample {
                ts_ms: t0 + 30_000,
                flow_key: Some("19803f75fb108eb2".into()),
                qoe: Qoe {
                    video: Some(VideoQoe {
                        window_start_ms: t0,
                        window_end_ms: t0 + 30_000,
                        resolution: Some("720p".into()),
                        height_px: Some(720),
                        bitrate_kbps: Some(1_234_567),
                        startup_delay_ms: None,
                        stalls: 1,
                        stall_ms: u32::MAX,
                        buffer_state: BufferState::Draining,
                    }),
                    gaming: Some(GamingQoe {
                        window_start_ms: -5,
                        window_end_ms: i64::MAX,
                        latency_avg_ms: Some(12.5),
                        latency_min_ms: None,
                        latency_max_ms: Some(f32::MAX),
                        lag_spikes: 7,
                        jitter_ms: Some(-0.0),
                        loss_ratio: None,
                        tick_rate_hz: Some(64.0),
                        tick_regularity: Some(0.93),
                        choppy: Some(false),
                        bitrate_kbps: None,
                        frame_rate: Some(59.94),
                        height_px: Some(u16::MAX),
                    }),
                    conferencing: None,
                },
            },
            // Times going backwards (a capture's clock) and an empty QoE.
            QoeSample {
                ts_ms: i64::MIN,
                flow_key: Some("é".into()),
                qoe: Qoe::default(),
            },
        ];
        v.push(v[0].clone());
        v
    }

    #[test]
    fn samples_come_back_equal() {
        let s = samples();
        let b = pack(&s);
        assert_eq!(unpack(&b), Ok(s));
        assert_eq!(unpack(&pack(&[])), Ok(vec![]));
    }

    #[test]
    fn contiguous_windows_are_small() {
        let t0 = 1_676_659_998_035;
        let s: Vec<QoeSample> = (0..100)
            .map(|i| {
                let end = t0 + 30_000 * i;
                QoeSample {
                    ts_ms: end,
                    flow_key: None,
                    qoe: Qoe {
                        conferencing: Some(ConferencingQoe {
                            media: vec![],
                            ..conf(end - 30_000, end)
                        }),
                        ..Qoe::default()
                    },
                }
            })
            .collect();
        let b = pack(&s);
        // flags 1, ts 3, window 2, present 1, two floats 8, counters 2, media 1, streams 1
        assert!(b.len() < 100 * 20, "{} bytes", b.len());
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert!(json.len() > 10 * b.len(), "{} vs {}", json.len(), b.len());
        assert_eq!(unpack(&b), Ok(s));
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let b = pack(&samples());
        for n in 0..b.len() {
            assert!(unpack(&b[..n]).is_err(), "cut at {n}");
        }
        let mut extra = b.clone();
        extra.push(0);
        assert!(unpack(&extra).is_err());
        let mut v2 = b.clone();
        v2[0] = 2;
        assert!(unpack(&v2).is_err());
        assert!(unpack(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        // Every single-byte change decodes to something or fails cleanly.
        for i in 0..b.len() {
            let mut m = b.clone();
            m[i] ^= 0x5a;
            let _ = unpack(&m);
        }
    }
}
