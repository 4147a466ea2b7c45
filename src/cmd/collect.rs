//! `supernetflow collect`: the listeners, printing FlowRecords as JSON lines and/or, with
//! `--to-kafka BROKERS`, publishing them to the raw flows topic for `supernetflow mediate` (tap
//! records arriving as IPFIX from `probe --export` go to the raw tap topic).

use anyhow::Context;
use collector::CollectorConfig;
use mediator::sink::records::AnyRecord;
use schemas::ipfix::decode::is_tap_record;
use schemas::ipfix::tap_record_from_flow;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file (see config/collector.example.toml); flags override it.
    #[arg(long, env = "SNF_CONFIG")]
    config: Option<PathBuf>,
    /// UDP listen address for NetFlow v5/v9/IPFIX; repeat for several. Replaces the configured list.
    #[arg(long = "udp")]
    udp: Vec<SocketAddr>,
    /// TCP listen address for IPFIX over TCP; repeat for several. Replaces the configured list.
    #[arg(long = "tcp")]
    tcp: Vec<SocketAddr>,
    /// Do not listen on TCP at all.
    #[arg(long)]
    no_tcp: bool,
    /// Template state file (persistence across restarts).
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Do not load or save template state.
    #[arg(long)]
    no_state: bool,
    /// Requested UDP socket receive buffer, bytes.
    #[arg(long)]
    recv_buffer: Option<usize>,
    /// Records as JSON lines on stdout, or not (counting only, for benchmarks). Default: jsonl,
    /// or none with --to-kafka.
    #[arg(long, value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    to_kafka: super::to_kafka::ToKafkaArgs,
    /// Log the counters every N seconds (0: never).
    #[arg(long, default_value_t = 10)]
    stats_interval_secs: u64,
    /// Write the final counters as JSON to this file at exit (stderr gets them too).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the bound listen addresses (one per line, "udp ADDR" / "tcp ADDR") to this file once
    /// listening: lets tests bind port 0.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
enum Output {
    Jsonl,
    None,
}

pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<CollectorConfig> {
    match path {
        None => Ok(CollectorConfig::default()),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("in config file {}", p.display()))
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = load_config(args.config.as_ref())?;
    if !args.udp.is_empty() {
        cfg.udp_listen = args.udp.clone();
    }
    if !args.tcp.is_empty() {
        cfg.tcp_listen = args.tcp.clone();
    }
    if args.no_tcp {
        cfg.tcp_listen.clear();
    }
    if let Some(p) = &args.state_file {
        cfg.state_file = Some(p.clone());
    }
    if args.no_state {
        cfg.state_file = None;
    }
    if let Some(b) = args.recv_buffer {
        cfg.udp_recv_buffer_bytes = b;
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, shutdown.clone()).context("installing signal handlers")?;
    }
    // JSON lines are written by their own thread, so serialising does not slow decoding; the
    // channel is bounded, so a slow stdout back-pressures the decode loop (and from there shows in
    // queue_full_drops) instead of growing memory.
    let output = args.output.unwrap_or(if args.to_kafka.to_kafka.is_some() {
        Output::None
    } else {
        Output::Jsonl
    });
    let mut producer = args.to_kafka.start("raw-flows")?;
    let mut tap_invalid = 0u64;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<schemas::FlowRecord>>(64);
    let writer = std::thread::Builder::new()
        .name("jsonl-writer".into())
        .spawn(move || -> std::io::Result<()> {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            let mut line = Vec::with_capacity(2048);
            for batch in rx {
                for r in &batch {
                    line.clear();
                    schemas::json::write(&mut line, r)?;
                    line.push(b'\n');
                    w.write_all(&line)?;
                }
            }
            w.flush()
        })
        .context("starting the output thread")?;
    let mut tx = Some(tx);
    let ready_file = args.ready_file.clone();
    let report = collector::service::run(
        cfg,
        shutdown,
        |b| {
            if let Some(p) = &ready_file {
                let mut s = String::new();
                for a in &b.udp {
                    s.push_str(&format!("udp {a}\n"));
                }
                for a in &b.tcp {
                    s.push_str(&format!("tcp {a}\n"));
                }
                let tmp = p.with_extension("tmp");
                if std::fs::write(&tmp, s)
                    .and_then(|_| std::fs::rename(&tmp, p))
                    .is_err()
                {
                    tracing::warn!(path = %p.display(), "Could not write the ready file");
                }
            }
        },
        |records| {
            if let Some(p) = producer.as_mut() {
                // Printed too: a copy; else the batch moves to the producer.
                if output == Output::Jsonl {
                    let raw = raw_records(records.clone(), &mut tap_invalid);
                    p.fanout.send(raw).map_err(|e| e.to_string())?;
                } else {
                    let raw = raw_records(records, &mut tap_invalid);
                    return p.fanout.send(raw).map_err(|e| e.to_string());
                }
            }
            if output == Output::Jsonl {
                if let Some(t) = &tx {
                    t.send(records)
                        .map_err(|_| "the output thread stopped (stdout closed?)".to_string())?;
                }
            }
            Ok(())
        },
        (args.stats_interval_secs > 0).then(|| Duration::from_secs(args.stats_interval_secs)),
        None,
    );
    drop(tx.take());
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the output thread panicked"))?;
    // The listeners have drained: the producer delivers what it holds (or spools it).
    let kafka = producer.take().map(|p| p.close()).transpose();
    let report = report?;
    written.context("writing records to stdout")?;
    let kafka = kafka?;
    let json = match &kafka {
        None => serde_json::to_string(&report)?,
        Some(k) => {
            let mut v = serde_json::to_value(&report)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("kafka".into(), serde_json::to_value(k)?);
                o.insert("tap_invalid".into(), tap_invalid.into());
            }
            v.to_string()
        }
    };
    eprintln!("{json}");
    if let Some(p) = &args.report {
        std::fs::write(p, json).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// The raw topics' records of a decoded batch: router flows as they are, records carrying the
/// tap's marker (a `probe --export` sending to this collector) turned back into tap records.
fn raw_records(records: Vec<schemas::FlowRecord>, tap_invalid: &mut u64) -> Vec<AnyRecord> {
    let mut out = Vec::with_capacity(records.len());
    for f in records {
        if is_tap_record(&f) {
            match tap_record_from_flow(&f) {
                Some(Ok(t)) => out.push(AnyRecord::Tap(Box::new(t))),
                Some(Err(e)) => {
                    *tap_invalid += 1;
                    if *tap_invalid <= 10 {
                        tracing::warn!(exporter = %f.exporter, error = %e, "Tap record does not decode; not published");
                    }
                }
                None => {}
            }
        } else {
            out.push(AnyRecord::Flow(std::sync::Arc::new(f)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example is the defaults, key for key: the docs cannot drift from the code.
    #[test]
    fn example_config_is_the_default() {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/collector.example.toml");
        let cfg = load_config(Some(&p)).expect("example config parses");
        assert_eq!(cfg, CollectorConfig::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[decoder]\nhold_msec = 5\n").expect("write");
        let e = format!("{:#}", load_config(Some(&p)).expect_err("must fail"));
        assert!(e.contains("hold_msec"), "{e}");
    }
}
