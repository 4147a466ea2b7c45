//! `supernetflow qoe`: replays captures through the tap's offline pipeline and prints one JSON
//! line per application session and QoE interval: `session_id`, `interval_start_ms` (UTC),
//! `interval_end_ms`, `app_type`, `provider`, `client_addr`, `member_flows`, `bytes`, for video
//! `resolution_height`, `buffer_state` and `stalled`, and the QoE block of the session's type
//! (`video`, `conferencing` or `gaming`; field meanings in schemas/published/*.fields.yaml). A
//! conferencing or voice interval with an estimated MOS also has `mos_inputs` (the E-model's
//! inputs: worst audio loss and jitter, RTT, delays, R), so the estimate can be checked by hand.

use anyhow::Context;
use enrich_probe::classify::signatures::Signatures;
use enrich_probe::offline::run_files;
use enrich_probe::qoe::session::SessionConfig;
use enrich_probe::{Output, Pipeline, ProbeConfig};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Captures (pcap/pcapng) replayed in the order given, as one stream of packets.
    #[arg(long = "pcap", value_name = "FILE", num_args = 1.., required = true)]
    pcap: Vec<PathBuf>,
    /// QoE interval: `1s`, `500ms`, `30s`, `2m` (capture time).
    #[arg(long, default_value = "30s", value_parser = parse_duration_ns)]
    interval: u64,
    /// Signature file replacing the built-in one.
    #[arg(long, value_name = "FILE")]
    signatures: Option<PathBuf>,
}

/// `1s`, `250ms`, `2m`, `1.5s` → ns.
fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e9)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e9)
    } else {
        (s, 1e9)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s}"))?;
    let ns = v * mult;
    if !(1e6..=86_400e9).contains(&ns) {
        return Err(format!("interval out of range (1ms..24h): {s}"));
    }
    Ok(ns as u64)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let sigs = match &args.signatures {
        Some(p) => Signatures::load(p)?,
        None => Signatures::builtin()?,
    };
    let cfg = ProbeConfig {
        session: SessionConfig {
            window_ns: args.interval,
            ..SessionConfig::default()
        },
        ..ProbeConfig::default()
    };
    let mut pipeline = Pipeline::new(cfg, sigs);
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let report = run_files(&mut pipeline, &args.pcap, |o| {
        if let Output::Interval(i) = o {
            let io = |e: std::io::Error| enrich_probe::ProbeError::Io("output".into(), e);
            serde_json::to_writer(&mut w, i.as_ref())
                .map_err(std::io::Error::from)
                .map_err(io)?;
            w.write_all(b"\n").map_err(io)?;
        }
        Ok(())
    })
    .context("qoe --pcap")?;
    w.flush()?;
    tracing::info!(
        frames = report.capture.frames,
        sessions = report.sessions.started,
        intervals = report.sessions.intervals,
        "QoE finished"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ns;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("1s"), Ok(1_000_000_000));
        assert_eq!(parse_duration_ns("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration_ns("2m"), Ok(120_000_000_000));
        assert_eq!(parse_duration_ns("30"), Ok(30_000_000_000));
        assert!(parse_duration_ns("0s").is_err());
        assert!(parse_duration_ns("fast").is_err());
    }
}
