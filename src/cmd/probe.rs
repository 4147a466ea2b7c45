//! `supernetflow probe`: the tap's user side. `--pcap` replays captures through the offline
//! pipeline (the kernel program's Rust twin, DPI-lite, classification) and prints TapRecords and
//! Netify-style `flow_stats` as JSON lines; `--interface` is the live path (kernel program).

use anyhow::Context;
use enrich_probe::classify::signatures::Signatures;
use enrich_probe::flow::SendConfig;
use enrich_probe::offline::{run_files, write_jsonl};
use enrich_probe::{Pipeline, ProbeConfig};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Captures (pcap/pcapng; Ethernet, raw IP or Linux SLL) replayed in the order given, as one
    /// stream of packets.
    #[arg(long = "pcap", value_name = "FILE", num_args = 1.., required_unless_present = "interface")]
    pcap: Vec<PathBuf>,
    /// Live capture on this interface through the XDP/TC program.
    #[arg(long, value_name = "IF", conflicts_with = "pcap")]
    interface: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Signature file replacing the built-in one (same shape as enrich-probe/signatures.toml).
    #[arg(long, value_name = "FILE")]
    signatures: Option<PathBuf>,
    /// Tap id written into every record.
    #[arg(long, default_value = "offline")]
    tap_id: String,
    /// Bytes of each packet user space sees while classifying (the kernel program's snap_len;
    /// it honours at most 512).
    #[arg(long, default_value_t = 256)]
    snap_len: u32,
    /// Packets of a new flow always sent to user space.
    #[arg(long, default_value_t = 8)]
    first_packets: u32,
    /// Flows held at most (the oldest are reported and evicted beyond it).
    #[arg(long, default_value_t = 262_144)]
    max_flows: usize,
    /// Seconds without a packet before a flow is reported and forgotten.
    #[arg(long, default_value_t = 120)]
    idle_timeout_secs: u64,
    /// Seconds of capture time between flow_stats lines; 0: none.
    #[arg(long, default_value_t = 15)]
    stats_interval_secs: u64,
    /// Print TapRecords only (no flow_stats lines).
    #[arg(long)]
    no_flow_stats: bool,
    /// Write the run's counters as JSON to this file (and a summary to the log).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Jsonl,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(ifname) = &args.interface {
        anyhow::bail!(
            "--interface {ifname}: live capture: see enrich_probe::kernel (not built yet)"
        );
    }
    let Format::Jsonl = args.format;
    let sigs = match &args.signatures {
        Some(p) => Signatures::load(p)?,
        None => Signatures::builtin()?,
    };
    let cfg = ProbeConfig {
        tap_id: args.tap_id.clone(),
        send: SendConfig {
            first_packets: args.first_packets,
            snap_len: args.snap_len,
            ..SendConfig::default()
        },
        max_flows: args.max_flows,
        idle_timeout_ns: args.idle_timeout_secs.saturating_mul(1_000_000_000),
        stats_interval_ns: args.stats_interval_secs.saturating_mul(1_000_000_000),
        ..ProbeConfig::default()
    };
    let mut pipeline = Pipeline::new(cfg, sigs);
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let with_stats = !args.no_flow_stats;
    let report = run_files(&mut pipeline, &args.pcap, |o| {
        write_jsonl(&mut w, o, with_stats)
    })
    .context("probe --pcap")?;
    w.flush()?;
    tracing::info!(
        frames = report.capture.frames,
        flows = report.accounting.new_flows,
        records = report.pipeline.tap_records,
        classified = report.pipeline.classified,
        not_accounted = report.accounting.na_non_ip
            + report.accounting.na_malformed
            + report.accounting.na_fragment,
        "Probe finished"
    );
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
