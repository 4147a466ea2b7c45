//! `supernetflow probe`: the tap's user side. `--pcap` replays captures through the offline
//! pipeline (the kernel program's Rust twin, DPI-lite, classification); `--interface` attaches
//! the kernel program to a mirror port and runs the same user-side steps on what it sends up
//! ([`enrich_probe::live`]). Both print TapRecords and Netify-style `flow_stats` as JSON lines
//! and, with `--export`, send the tap records as IPFIX to a collector; with `--to-kafka`, they
//! publish them to the raw tap topic for `supernetflow mediate`.

use anyhow::Context;
use enrich_probe::classify::signatures::Signatures;
use enrich_probe::flow::SendConfig;
use enrich_probe::kernel::{AttachMode, ProbeOptions};
use enrich_probe::offline::{run_files, write_jsonl};
use enrich_probe::{Pipeline, ProbeConfig};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Captures (pcap/pcapng; Ethernet, raw IP or Linux SLL) replayed in the order given, as one
    /// stream of packets.
    #[arg(long = "pcap", value_name = "FILE", num_args = 1.., required_unless_present = "interface")]
    pcap: Vec<PathBuf>,
    /// Live capture on this interface (a mirror port) through the XDP/TC program. Needs
    /// CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN. Runs until SIGTERM/SIGINT.
    #[arg(long, value_name = "IF", conflicts_with = "pcap")]
    interface: Option<String>,
    /// --interface: how to attach: XDP native falling back to generic (`xdp`), only native,
    /// only generic, or a TC classifier on ingress.
    #[arg(long, value_enum, default_value = "xdp")]
    attach: Attach,
    /// --interface: let packets go on to the network stack (XDP_PASS) instead of dropping them
    /// (a mirror port's copies need not reach it).
    #[arg(long)]
    pass: bool,
    /// --interface: seconds between scans of the kernel's flow map for flows to report.
    #[arg(long, default_value_t = 5)]
    scan_secs: u64,
    /// Output on stdout: `jsonl` (TapRecords, flow_stats and session lines), or `none`.
    /// Default: jsonl, or none with --export or --to-kafka.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Send the tap records as IPFIX (enterprise elements, see schemas/published/
    /// ipfix_enterprise_ies.csv) to a collector, e.g. a running `supernetflow run` on
    /// 127.0.0.1:4739.
    #[arg(long, value_name = "HOST:PORT")]
    export: Option<String>,
    /// Transport of --export.
    #[arg(long, value_enum, default_value = "tcp")]
    export_transport: ExportTransport,
    /// Observation domain id of --export's messages.
    #[arg(long, default_value_t = 0)]
    export_domain: u32,
    /// Signature file replacing the built-in one (same shape as enrich-probe/signatures.toml).
    #[arg(long, value_name = "FILE")]
    signatures: Option<PathBuf>,
    /// Tap id written into every record.
    #[arg(long, default_value = "offline")]
    tap_id: String,
    /// Bytes of each packet user space sees while a flow is new or classifying (the kernel
    /// program's snap_len; it honours at most 2048, a whole MTU-sized frame).
    #[arg(long, default_value_t = enrich_probe::flow::DEFAULT_SNAP_LEN)]
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
    /// With --interface: seconds between `update` tap records of an active flow (its QoE window
    /// since the last report); 0: one `end` record per flow. Offline, each flow is reported once.
    #[arg(long, default_value_t = 30)]
    update_secs: u64,
    /// Print TapRecords only (no flow_stats lines).
    #[arg(long)]
    no_flow_stats: bool,
    /// Write the run's counters as JSON to this file (and a summary to the log).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    #[command(flatten)]
    to_kafka: super::to_kafka::ToKafkaArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Jsonl,
    None,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Attach {
    Xdp,
    XdpNative,
    XdpGeneric,
    Tc,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportTransport {
    /// IPFIX over TCP (RFC 7011 §10.4): reliable; templates once per connection.
    Tcp,
    /// IPFIX over UDP: templates resent every 10 s; datagrams can be lost.
    Udp,
}

/// Tap records sent per IPFIX batch.
const EXPORT_BATCH: usize = 256;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The run's counters, with the export's when there is one.
#[derive(serde::Serialize)]
struct Report {
    #[serde(flatten)]
    offline: enrich_probe::offline::OfflineReport,
    /// The live path's counters (--interface).
    live: Option<enrich_probe::live::LiveReport>,
    /// Tap records exported (--export).
    export: Option<enrich_probe::export::ExportCounters>,
    /// Application session reports exported (--export).
    export_sessions: Option<enrich_probe::export::ExportCounters>,
    /// IPFIX bytes sent (tap records and session reports) per byte of mirrored traffic (the
    /// capture's original frame lengths).
    export_ratio: Option<f64>,
    /// The raw producer's counters (--to-kafka).
    kafka: Option<mediator::sink::kafka::KafkaMetricsSnapshot>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let format = args.format.unwrap_or(
        if args.export.is_some() || args.to_kafka.to_kafka.is_some() {
            Format::None
        } else {
            Format::Jsonl
        },
    );
    let mut exporter = match &args.export {
        None => None,
        Some(to) => {
            use std::net::ToSocketAddrs;
            let addr = to
                .to_socket_addrs()
                .with_context(|| format!("--export {to}: not HOST:PORT"))?
                .next()
                .with_context(|| format!("--export {to}: no address"))?;
            let transport = match args.export_transport {
                ExportTransport::Tcp => enrich_probe::export::Transport::Tcp,
                ExportTransport::Udp => enrich_probe::export::Transport::Udp,
            };
            Some(
                enrich_probe::export::IpfixExporter::new(addr, transport, args.export_domain)
                    .with_context(|| format!("--export {to}"))?,
            )
        }
    };
    let mut producer = args.to_kafka.start("raw-tap")?;
    let mut to_kafka: Vec<mediator::sink::records::AnyRecord> = Vec::new();
    let mut kafka_error: Option<String> = None;
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
    let live_mode = args.interface.is_some();
    let mut pending: Vec<schemas::TapRecord> = Vec::new();
    let mut pending_sessions: Vec<schemas::AppSession> = Vec::new();
    let mut export_error: Option<enrich_probe::export::ExportError> = None;
    let mut write_error: Option<enrich_probe::ProbeError> = None;
    let mut emit = |o: &enrich_probe::Output| {
        if let (Some(p), enrich_probe::Output::Tap(t)) = (&mut producer, o) {
            to_kafka.push(mediator::sink::records::AnyRecord::Tap(t.clone()));
            // Live, every record goes out at once; offline, in batches.
            if (live_mode || to_kafka.len() >= EXPORT_BATCH) && kafka_error.is_none() {
                if let Err(e) = p.fanout.send(std::mem::take(&mut to_kafka)) {
                    kafka_error = Some(e.to_string());
                }
            }
        }
        match (&mut exporter, o) {
            (Some(x), enrich_probe::Output::Tap(t)) => {
                pending.push(t.as_ref().clone());
                if pending.len() >= EXPORT_BATCH && export_error.is_none() {
                    if let Err(e) = x.send(&pending, now_ms()) {
                        export_error = Some(e);
                    }
                    pending.clear();
                }
            }
            (Some(x), enrich_probe::Output::Session(s)) => {
                // Sessions after the tap records sent so far, so that the collector knows the
                // member flows (the tap records' `session_id`) before the report.
                pending_sessions.push(s.as_ref().clone());
                if pending_sessions.len() >= EXPORT_BATCH && export_error.is_none() {
                    let r = x
                        .send(&pending, now_ms())
                        .and_then(|()| x.send_sessions(&pending_sessions, now_ms()));
                    if let Err(e) = r {
                        export_error = Some(e);
                    }
                    pending.clear();
                    pending_sessions.clear();
                }
            }
            _ => {}
        }
        if format == Format::Jsonl && write_error.is_none() {
            let r = write_jsonl(&mut w, o, with_stats).and_then(|()| {
                // Live, every line goes out when written.
                if live_mode {
                    w.flush()
                        .map_err(|e| enrich_probe::ProbeError::Io("output".into(), e))?;
                }
                Ok(())
            });
            if let Err(e) = r {
                write_error = Some(e);
            }
        }
    };
    let mut offline = enrich_probe::offline::OfflineReport::default();
    let mut live = None;
    match &args.interface {
        Some(ifname) => {
            let shutdown = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(sig, shutdown.clone())
                    .context("installing signal handlers")?;
            }
            let lc = enrich_probe::live::LiveConfig {
                interface: ifname.clone(),
                mode: match args.attach {
                    Attach::Xdp => AttachMode::XdpAuto,
                    Attach::XdpNative => AttachMode::XdpNative,
                    Attach::XdpGeneric => AttachMode::XdpGeneric,
                    Attach::Tc => AttachMode::Tc,
                },
                kernel: ProbeOptions {
                    pass: args.pass,
                    first_packets: args.first_packets,
                    snap_len: args.snap_len,
                    ..ProbeOptions::default()
                },
                scan_every: Duration::from_secs(args.scan_secs.max(1)),
                idle_timeout: Duration::from_secs(args.idle_timeout_secs),
                close_linger: Duration::from_secs(5),
                update_interval: Duration::from_secs(args.update_secs),
            };
            live = Some(
                enrich_probe::live::run(&mut pipeline, &lc, &shutdown, &mut emit)
                    .with_context(|| format!("probe --interface {ifname}"))?,
            );
        }
        None => {
            offline = run_files(&mut pipeline, &args.pcap, |o| {
                emit(o);
                Ok(())
            })
            .context("probe --pcap")?;
        }
    }
    if let Some(e) = write_error {
        return Err(e).context("writing the output");
    }
    w.flush()?;
    if let Some(e) = export_error {
        return Err(e).context("probe --export");
    }
    if let Some(e) = kafka_error {
        anyhow::bail!("probe --to-kafka: {e}");
    }
    let kafka = match producer {
        None => None,
        Some(mut p) => {
            p.fanout
                .send(std::mem::take(&mut to_kafka))
                .context("probe --to-kafka")?;
            Some(p.close().context("probe --to-kafka")?)
        }
    };
    let (export, export_sessions) = match exporter {
        None => (None, None),
        Some(mut x) => {
            x.send(&pending, now_ms()).context("probe --export")?;
            x.send_sessions(&pending_sessions, now_ms())
                .context("probe --export")?;
            let r = x.close();
            let c = r.taps;
            tracing::info!(
                records = c.encoder.records,
                messages = c.encoder.messages,
                bytes = c.bytes_sent,
                failed = c.encoder.records_failed + c.send_failed,
                sessions = r.sessions.encoder.records,
                "IPFIX export finished"
            );
            (Some(c), Some(r.sessions))
        }
    };
    let report = Report {
        live,
        export_ratio: export.as_ref().map(|c| {
            let sessions = export_sessions.as_ref().map_or(0, |s| s.bytes_sent);
            (c.bytes_sent + sessions) as f64 / (offline.capture.wire_bytes.max(1)) as f64
        }),
        offline,
        export,
        export_sessions,
        kafka,
    };
    tracing::info!(
        frames = report.offline.capture.frames,
        flows = report.offline.accounting.new_flows,
        records = report.offline.pipeline.tap_records,
        classified = report.offline.pipeline.classified,
        not_accounted = report.offline.accounting.na_non_ip
            + report.offline.accounting.na_malformed
            + report.offline.accounting.na_fragment,
        "Probe finished"
    );
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
