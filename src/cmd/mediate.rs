//! `supernetflow mediate`: one member of the mediators' consumer group over the raw topics
//! (`collect --to-kafka`, `probe --to-kafka`). It joins the partitions it owns and writes
//! super-flows (and, with `scaleout.publish_raw`, the raw records) to the sinks of `[sinks]`,
//! configured exactly as for `run` (same file, same `SNF__` variables).
//!
//! ```text
//! snf.raw.flows ─┐                                        ┌─► Parquet (DIR/parquet)
//!                ├─► consumer (group) ─► join ─► fan-out ─┤
//! snf.raw.tap ───┘    rebalance: flush revoked,           └─► Kafka (snf.super_flows, + spool)
//!                     sync sinks, commit                       HTTP: /healthz /readyz /metrics,
//!                                                              /dashboard, /api/v1/summary
//! ```
//!
//! The dashboard shows what this member publishes (records/s, match rate, top applications and
//! providers) and its join state; it has no exporters of its own (the collectors do), so its
//! exporters table is empty and `/api/v1/exporters` says what the member consumes instead.
//!
//! See [`mediator::scaleout`] for the delivery rules. SIGTERM/SIGINT: every waiting router record
//! is emitted, the sinks confirm, the offsets are committed, the member leaves the group, the
//! sinks close.

use super::run::config;
use super::run::{
    dashboard_lane, metrics, shutdown_on_signals, start_http, start_sinks, OutputArgs,
};
use anyhow::Context;
use mediator::scaleout::{ScaleoutConfig, ScaleoutMetrics};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file, the same as `run`'s (keys: config/run.example.toml; mediate reads
    /// [scaleout], [join], [sinks], [http] and [dashboard]).
    #[arg(long, env = "SNF_CONFIG")]
    config: Option<PathBuf>,
    /// Bootstrap brokers of the raw topics (scaleout.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Consumer group (scaleout.group_id).
    #[arg(long)]
    group: Option<String>,
    /// Raw topic of router flow records (scaleout.flows_topic).
    #[arg(long)]
    flows_topic: Option<String>,
    /// Raw topic of tap records (scaleout.tap_topic).
    #[arg(long)]
    tap_topic: Option<String>,
    /// Also write the raw records to the sinks (scaleout.publish_raw).
    #[arg(long)]
    publish_raw: bool,
    #[command(flatten)]
    out: OutputArgs,
    /// Put the sinks' files under this directory: DIR/parquet, DIR/spool/kafka.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Write the final counters as JSON to this file at exit.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write "http ADDR" to this file once serving (lets tests bind port 0).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn effective_config(args: &Args) -> anyhow::Result<config::RunConfig> {
    let mut cfg = config::load(args.config.as_deref())?;
    if let Some(d) = &args.data_dir {
        config::set_data_dir(&mut cfg, d);
    }
    let s: &mut ScaleoutConfig = &mut cfg.scaleout;
    if let Some(b) = &args.brokers {
        s.brokers = b.clone();
    }
    if let Some(g) = &args.group {
        s.group_id = g.clone();
    }
    if let Some(t) = &args.flows_topic {
        s.flows_topic = t.clone();
    }
    if let Some(t) = &args.tap_topic {
        s.tap_topic = t.clone();
    }
    if args.publish_raw {
        s.publish_raw = true;
    }
    args.out.apply(&mut cfg);
    config::validate(&mut cfg)?;
    config::validate_mediate(&cfg)?;
    Ok(cfg)
}

/// The final counters.
#[derive(serde::Serialize)]
struct Report {
    scaleout: mediator::scaleout::metrics::ScaleoutSnapshot,
    sinks: std::collections::BTreeMap<&'static str, mediator::fanout::LaneSnapshot>,
    kafka: Option<mediator::sink::kafka::KafkaMetricsSnapshot>,
    parquet: Option<mediator::sink::parquet::ParquetMetricsSnapshot>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = effective_config(&args)?;
    if args.print_config {
        print!(
            "{}",
            toml::to_string_pretty(&cfg).context("printing the configuration")?
        );
        return Ok(());
    }
    let shutdown = shutdown_on_signals()?;
    let (dashboard, extra) = dashboard_lane(&cfg, None);
    let sinks = start_sinks(&cfg.sinks, extra)?;
    let lanes = sinks.lanes.clone();
    let (kafka, parquet, ipfix) = (
        sinks.kafka.clone(),
        sinks.parquet.clone(),
        sinks.ipfix.clone(),
    );
    let m = Arc::new(ScaleoutMetrics::default());
    let so = cfg.scaleout.clone();
    let m2 = m.clone();
    let http = start_http(
        &cfg.http,
        metrics::Sources {
            status: None,
            lanes: lanes.clone(),
            kafka: kafka.clone(),
            parquet: parquet.clone(),
            ipfix: ipfix.clone(),
            stage: None,
            scaleout: Some(m.clone()),
        },
        // No exporters here: the page says what this mediator consumes instead.
        Arc::new(move || {
            serde_json::json!({
                "exporters": [],
                "mediate": {
                    "brokers": so.brokers,
                    "group_id": so.group_id,
                    "flows_topic": so.flows_topic,
                    "tap_topic": so.tap_topic,
                    "counters": m2.snapshot(),
                }
            })
        }),
        dashboard.map(|d| {
            let m3 = m.clone();
            Arc::new(move || d.summary(Some(&m3.join()))) as Arc<mediator::http::SummaryFn>
        }),
    )?;
    if let Some(p) = &args.ready_file {
        let text = http
            .as_ref()
            .map(|h| format!("http {}\n", h.addr))
            .unwrap_or_default();
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, p))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let finished = mediator::scaleout::consumer::run(
        &cfg.scaleout,
        cfg.join.clone(),
        sinks.fanout,
        m.clone(),
        shutdown,
    );
    let closed = finished.fanout.close();
    if let Some(h) = http {
        h.stop();
    }
    let report = Report {
        scaleout: m.snapshot(),
        sinks: lanes.iter().map(|(n, l)| (*n, l.snapshot())).collect(),
        kafka: kafka.map(|k| k.snapshot()),
        parquet: parquet.map(|p| p.snapshot()),
    };
    let json = serde_json::to_string(&report)?;
    eprintln!("{json}");
    if let Some(p) = &args.report {
        std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
    }
    finished.result.context("mediate")?;
    closed.context("closing the sinks")?;
    Ok(())
}
