//! The video estimator's settings: per-provider ladders and player constants, read from
//! `enrich-probe/video_ladders.toml` (embedded) or from a copy of it on disk.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The ladder file shipped with the tap.
pub const BUILTIN_LADDERS: &str = include_str!("../../../video_ladders.toml");

/// Why a ladder file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LadderError {
    /// The file could not be read.
    #[error("reading {0}: {1}")]
    Io(String, std::io::Error),
    /// Not valid TOML or not the expected keys.
    #[error("ladder file: {0}")]
    Toml(#[from] toml::de::Error),
    /// Valid TOML, inconsistent content.
    #[error("ladder file: {0}")]
    Invalid(String),
}

/// One rendition of a ladder.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Picture height, pixels.
    pub height: u16,
    /// Typical video-only bitrate of the rendition, kbit/s.
    pub kbps: u32,
}

/// A provider's entry as written in the file (missing keys come from `default`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    audio_kbps: Option<u32>,
    buffer_target_s: Option<f64>,
    live_buffer_target_s: Option<f64>,
    startup_bytes: Option<u64>,
    request_min_payload: Option<u32>,
    tcp_request_min_payload: Option<u32>,
    chunk_min_bytes: Option<u64>,
    paced_gap_ms: Option<u64>,
    session_idle_ms: Option<u64>,
    resume_s: Option<f64>,
    rungs: Option<Vec<Rung>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LadderFile {
    provider: BTreeMap<String, ProviderFile>,
}

/// The resolved settings of one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderParams {
    /// Nominal audio bitrate, kbit/s (removed from the media bitrate before the ladder mapping).
    pub audio_kbps: u32,
    /// Media seconds an on-demand player keeps buffered in steady state.
    pub buffer_target_s: f64,
    /// The same for live streams.
    pub live_buffer_target_s: f64,
    /// Media bytes downloaded before playback starts.
    pub startup_bytes: u64,
    /// Upstream UDP payload from which a packet is a request.
    pub request_min_payload: u32,
    /// Upstream TCP payload from which a segment is a request.
    pub tcp_request_min_payload: u32,
    /// Downstream bytes after which a response counts as media.
    pub chunk_min_bytes: u64,
    /// Idle time before a request that marks it as paced by a full buffer, ms.
    pub paced_gap_ms: u64,
    /// No packet for this long: paused or ended rather than stalled, ms.
    pub session_idle_ms: u64,
    /// Media seconds needed to resume after a stall.
    pub resume_s: f64,
    /// Rungs, ascending height (heights distinct).
    pub rungs: Vec<Rung>,
}

impl ProviderParams {
    /// The rung whose bitrate is nearest to `video_kbps` on a log scale, and its index.
    pub fn rung_for(&self, video_kbps: f64) -> Option<(usize, Rung)> {
        if video_kbps.is_nan() || video_kbps <= 0.0 {
            return None;
        }
        let x = video_kbps.ln();
        self.rungs
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| {
                let da = (f64::from(a.kbps).ln() - x).abs();
                let db = (f64::from(b.kbps).ln() - x).abs();
                da.total_cmp(&db)
            })
            .map(|(i, r)| (i, *r))
    }

    /// Index of the rung of height `height`, if the ladder has it.
    pub fn rung_index(&self, height: u16) -> Option<usize> {
        self.rungs.iter().position(|r| r.height == height)
    }
}

/// Settings of the video estimator: one [`ProviderParams`] per provider id, plus `default`.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    providers: BTreeMap<String, ProviderParams>,
}

impl Default for VideoConfig {
    fn default() -> Self {
        // The embedded file is checked by a unit test; should it ever fail, a built-in ladder
        // keeps the estimator usable rather than panicking.
        VideoConfig::from_toml_str(BUILTIN_LADDERS).unwrap_or_else(|_| VideoConfig::fallback())
    }
}

impl VideoConfig {
    /// Reads a ladder file from disk.
    pub fn from_path(path: &Path) -> Result<Self, LadderError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LadderError::Io(path.display().to_string(), e))?;
        Self::from_toml_str(&text)
    }

    /// Parses a ladder file.
    pub fn from_toml_str(text: &str) -> Result<Self, LadderError> {
        let file: LadderFile = toml::from_str(text)?;
        let base = file
            .provider
            .get("default")
            .cloned()
            .ok_or_else(|| LadderError::Invalid("no [provider.default]".into()))?;
        let mut providers = BTreeMap::new();
        let fallback = Self::fallback_params();
        let default = resolve(&base, &fallback, "default")?;
        for (name, p) in &file.provider {
            let params = if name == "default" {
                default.clone()
            } else {
                resolve(p, &default, name)?
            };
            providers.insert(name.to_ascii_lowercase(), params);
        }
        Ok(VideoConfig { providers })
    }

    /// The settings for `provider` (nDPI-style lower-case id), else the `default` entry.
    pub fn params(&self, provider: Option<&str>) -> ProviderParams {
        provider
            .and_then(|p| self.providers.get(&p.to_ascii_lowercase()))
            .or_else(|| self.providers.get("default"))
            .cloned()
            .unwrap_or_else(Self::fallback_params)
    }

    /// A copy whose `provider` ladder bitrates are multiplied by `factor` (a per-deployment or
    /// per-title calibration; the evaluation uses it to show how much content complexity moves
    /// the mapping). Unknown provider or non-positive factor: unchanged copy.
    pub fn with_ladder_scale(&self, provider: &str, factor: f64) -> VideoConfig {
        let mut out = self.clone();
        if factor > 0.0 && factor.is_finite() {
            if let Some(p) = out.providers.get_mut(&provider.to_ascii_lowercase()) {
                for r in &mut p.rungs {
                    r.kbps = ((f64::from(r.kbps) * factor).round() as u32).max(1);
                }
            }
        }
        out
    }

    fn fallback() -> Self {
        let mut providers = BTreeMap::new();
        providers.insert("default".to_string(), Self::fallback_params());
        VideoConfig { providers }
    }

    fn fallback_params() -> ProviderParams {
        ProviderParams {
            audio_kbps: 128,
            buffer_target_s: 30.0,
            live_buffer_target_s: 12.0,
            startup_bytes: 300_000,
            request_min_payload: 200,
            tcp_request_min_payload: 60,
            chunk_min_bytes: 30_000,
            paced_gap_ms: 2_000,
            session_idle_ms: 20_000,
            resume_s: 2.0,
            rungs: vec![
                Rung {
                    height: 360,
                    kbps: 365,
                },
                Rung {
                    height: 720,
                    kbps: 3000,
                },
                Rung {
                    height: 1080,
                    kbps: 6000,
                },
            ],
        }
    }
}

fn resolve(
    p: &ProviderFile,
    d: &ProviderParams,
    name: &str,
) -> Result<ProviderParams, LadderError> {
    let mut rungs = p.rungs.clone().unwrap_or_else(|| d.rungs.clone());
    rungs.sort_by_key(|r| r.height);
    let bad = |what: &str| LadderError::Invalid(format!("provider {name}: {what}"));
    if rungs.is_empty() {
        return Err(bad("empty ladder"));
    }
    if rungs.windows(2).any(|w| w[0].height == w[1].height) {
        return Err(bad("two rungs of the same height"));
    }
    if rungs.windows(2).any(|w| w[0].kbps >= w[1].kbps) || rungs.iter().any(|r| r.kbps == 0) {
        return Err(bad("bitrates must be positive and grow with the height"));
    }
    let out = ProviderParams {
        audio_kbps: p.audio_kbps.unwrap_or(d.audio_kbps),
        buffer_target_s: p.buffer_target_s.unwrap_or(d.buffer_target_s),
        live_buffer_target_s: p.live_buffer_target_s.unwrap_or(d.live_buffer_target_s),
        startup_bytes: p.startup_bytes.unwrap_or(d.startup_bytes),
        request_min_payload: p.request_min_payload.unwrap_or(d.request_min_payload),
        tcp_request_min_payload: p
            .tcp_request_min_payload
            .unwrap_or(d.tcp_request_min_payload),
        chunk_min_bytes: p.chunk_min_bytes.unwrap_or(d.chunk_min_bytes),
        paced_gap_ms: p.paced_gap_ms.unwrap_or(d.paced_gap_ms),
        session_idle_ms: p.session_idle_ms.unwrap_or(d.session_idle_ms),
        resume_s: p.resume_s.unwrap_or(d.resume_s),
        rungs,
    };
    let positive = |v: f64| v > 0.0 && v.is_finite();
    if !positive(out.buffer_target_s)
        || !positive(out.live_buffer_target_s)
        || !positive(out.resume_s)
    {
        return Err(bad(
            "buffer_target_s, live_buffer_target_s and resume_s must be > 0",
        ));
    }
    Ok(out)
}
