//! `supernetflow run`: the embedded default. Collector + sinks + HTTP API in one process.
//!
//! ```text
//! UDP/TCP listeners ─► decode loop ─► mediate ─► fan-out ─┬─► Parquet (./data/parquet) [default]
//!  (routers' NetFlow/IPFIX,  │     (join: router flows ⨝    ├─► Kafka (+ spool)  [when enabled]
//!   the taps' IPFIX)         │      tap records → super_flows)├─► dashboard (counters) [default]
//!                            │                              └─► IPFIX re-export  [when enabled]
//!                            └─ status snapshot ─► HTTP API on 127.0.0.1:8080 (healthz, readyz,
//!                                                  metrics, /api/v1/exporters, /api/v1/summary,
//!                                                  /dashboard)
//! ```
//!
//! Tables / topics written: `flow_records` (router flows as decoded), `tap_records` (what the taps
//! exported), `super_flows` (every router flow once, joined: `enrichment.status` matched /
//! partial / unmatched). See [`mediate`].
//!
//! Configuration: `--config FILE` (TOML, every key in `config/run.example.toml`), then
//! `SNF__SECTION__KEY` environment variables, then flags. A bad key or value stops start-up with a
//! message naming it. SIGTERM/SIGINT: the listeners drain, every sink writes or persists what it
//! holds (Parquet files are closed and renamed, Kafka flushes or spools), then the process exits.

pub mod config;
mod mediate;
pub(crate) mod metrics;

use anyhow::Context;
use config::{RunConfig, SinkName};
use mediator::dashboard::exporters::ExporterCounters;
use mediator::dashboard::{Dashboard, ExportersFn};
use mediator::fanout::{BatchSink, Fanout, LaneMetrics};
use mediator::http::{ApiState, SinkReadiness};
use mediator::sink::ipfix::{IpfixMetrics, IpfixSink};
use mediator::sink::kafka::{KafkaMetrics, KafkaSink};
use mediator::sink::parquet::{ParquetMetrics, ParquetSink};
use mediator::sink::records::{AnyRecord, KafkaRecords, ParquetRecords};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file (every key: config/run.example.toml).
    #[arg(long, env = "SNF_CONFIG")]
    config: Option<PathBuf>,
    /// UDP listen address for NetFlow v5/v9/IPFIX; repeat for several. Replaces collector.udp_listen.
    #[arg(long = "udp")]
    udp: Vec<SocketAddr>,
    /// TCP listen address for IPFIX over TCP; repeat for several. Replaces collector.tcp_listen.
    #[arg(long = "tcp")]
    tcp: Vec<SocketAddr>,
    /// Do not listen on TCP.
    #[arg(long)]
    no_tcp: bool,
    #[command(flatten)]
    out: OutputArgs,
    /// Put everything run writes under this directory: DIR/parquet, DIR/spool/kafka,
    /// DIR/collector-state.json.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Do not load or save the collector's template state.
    #[arg(long)]
    no_state: bool,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Log the collector counters every N seconds (0: never).
    #[arg(long, default_value_t = 60)]
    stats_interval_secs: u64,
    /// Write the final counters (collector and sinks) as JSON to this file at exit.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the bound addresses ("udp ADDR", "tcp ADDR", "http ADDR", one per line) to this file
    /// once serving: lets tests bind port 0.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

/// The output flags `run` and `mediate` share: the HTTP API and the sinks.
#[derive(clap::Args)]
pub(crate) struct OutputArgs {
    /// HTTP API listen address (http.listen).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Do not serve the HTTP API.
    #[arg(long)]
    no_http: bool,
    /// Enable the Kafka sink with these bootstrap brokers (sinks.kafka.brokers).
    #[arg(long)]
    kafka_brokers: Option<String>,
    /// Disable the Parquet sink.
    #[arg(long)]
    no_parquet: bool,
}

impl OutputArgs {
    /// Applies the flags over the configuration (they override the file and the environment).
    pub(crate) fn apply(&self, cfg: &mut RunConfig) {
        if let Some(h) = self.http {
            cfg.http.listen = h;
        }
        if self.no_http {
            cfg.http.enabled = false;
        }
        if let Some(b) = &self.kafka_brokers {
            cfg.sinks.kafka.brokers = b.clone();
            if !cfg.sinks.has(SinkName::Kafka) {
                cfg.sinks.enabled.push(SinkName::Kafka);
            }
        }
        if self.no_parquet {
            cfg.sinks.enabled.retain(|s| *s != SinkName::Parquet);
        }
    }
}

fn effective_config(args: &Args) -> anyhow::Result<RunConfig> {
    let mut cfg = config::load(args.config.as_deref())?;
    if let Some(d) = &args.data_dir {
        config::set_data_dir(&mut cfg, d);
    }
    if !args.udp.is_empty() {
        cfg.collector.udp_listen = args.udp.clone();
    }
    if !args.tcp.is_empty() {
        cfg.collector.tcp_listen = args.tcp.clone();
    }
    if args.no_tcp {
        cfg.collector.tcp_listen.clear();
    }
    args.out.apply(&mut cfg);
    if args.no_state {
        cfg.collector.state_file = None;
    }
    config::validate(&mut cfg)?;
    Ok(cfg)
}

/// The final counters.
#[derive(serde::Serialize)]
struct Report {
    collector: collector::service::Report,
    sinks: std::collections::BTreeMap<&'static str, mediator::fanout::LaneSnapshot>,
    join: mediator::join::JoinMetrics,
    tap_records: u64,
    tap_invalid: u64,
    sessions: u64,
    kafka: Option<mediator::sink::kafka::KafkaMetricsSnapshot>,
    parquet: Option<mediator::sink::parquet::ParquetMetricsSnapshot>,
    ipfix: Option<Vec<mediator::sink::ipfix::CollectorSnapshot>>,
}

/// The collector's exporters as the dashboard reads them.
fn exporter_counters(s: &collector::status::StatusSnapshot) -> Vec<ExporterCounters> {
    s.exporters
        .iter()
        .map(|e| ExporterCounters {
            address: e.address,
            transport: e.transport.to_string(),
            port: e.port,
            messages: e.stats.messages,
            flow_records: e.stats.flow_records,
            errors: e.stats.errors,
            sequence_gaps: e.stats.sequence_gaps,
            lost_estimate: e.stats.lost_estimate,
            templates: e.templates.len() as u32,
            sampling_interval: e.templates.iter().find_map(|t| t.sampling_interval),
            last_error: e.last_error.clone(),
        })
        .collect()
}

/// The sinks of `[sinks]` on their fan-out, with their counters (shared by `run` and `mediate`).
pub(crate) struct Sinks {
    pub fanout: Fanout<AnyRecord>,
    pub lanes: Vec<(&'static str, Arc<LaneMetrics>)>,
    pub kafka: Option<Arc<KafkaMetrics>>,
    pub parquet: Option<Arc<ParquetMetrics>>,
    pub ipfix: Option<IpfixMetrics>,
}

/// SIGTERM and SIGINT set the returned flag (shared by `run` and `mediate`).
pub(crate) fn shutdown_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, shutdown.clone()).context("installing signal handlers")?;
    }
    Ok(shutdown)
}

/// The dashboard, when `[dashboard]` and `[http]` are both enabled, and its fan-out lane (one
/// more lane aggregating what the sinks get) as [`start_sinks`]'s `extra`. `exporters` gives
/// the exporters' health where the process has a collector.
pub(crate) fn dashboard_lane(
    cfg: &config::RunConfig,
    exporters: Option<Arc<ExportersFn>>,
) -> (Option<Dashboard>, Vec<Box<dyn BatchSink<AnyRecord>>>) {
    if !(cfg.dashboard.enabled && cfg.http.enabled) {
        return (None, Vec::new());
    }
    let (dash, lane) = Dashboard::new(&cfg.dashboard, exporters);
    (Some(dash), vec![Box::new(lane)])
}

/// Opens the enabled sinks and starts their fan-out, with `extra` lanes (the dashboard) after
/// them.
pub(crate) fn start_sinks(
    cfg: &config::SinksConfig,
    extra: Vec<Box<dyn BatchSink<AnyRecord>>>,
) -> anyhow::Result<Sinks> {
    let mut sinks: Vec<Box<dyn BatchSink<AnyRecord>>> = Vec::new();
    let (mut kafka, mut parquet, mut ipfix) = (None, None, None);
    if cfg.has(SinkName::Parquet) {
        let p = ParquetSink::new(cfg.parquet.clone())
            .with_context(|| format!("sinks.parquet (dir {})", cfg.parquet.dir.display()))?;
        parquet = Some(p.metrics());
        sinks.push(Box::new(ParquetRecords::new(p)));
    }
    if cfg.has(SinkName::Kafka) {
        let k = KafkaSink::new(cfg.kafka.clone())
            .with_context(|| format!("sinks.kafka (brokers {})", cfg.kafka.brokers))?;
        kafka = Some(k.metrics().clone());
        sinks.push(Box::new(KafkaRecords::new(k).context("sinks.kafka")?));
    }
    if cfg.has(SinkName::Ipfix) {
        let x = IpfixSink::new(&cfg.ipfix).context("sinks.ipfix")?;
        ipfix = Some(x.metrics());
        sinks.push(Box::new(x));
    }
    if sinks.is_empty() {
        tracing::warn!("No sink is enabled: records are decoded and counted, then discarded");
    }
    sinks.extend(extra);
    let fanout = Fanout::start(
        sinks,
        cfg.queue_batches,
        Duration::from_secs(cfg.close_timeout_secs),
    )?;
    let lanes = fanout.metrics();
    Ok(Sinks {
        fanout,
        lanes,
        kafka,
        parquet,
        ipfix,
    })
}

/// The HTTP API serving on its own thread.
pub(crate) struct Http {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Http {
    /// Stops serving and waits for the thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        match self.thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP API stopped with an error"),
            Err(_) => tracing::warn!("HTTP API thread panicked"),
        }
    }
}

/// Starts the HTTP API of `[http]` (none when disabled): health, readiness of the sinks in
/// `sources`, Prometheus metrics from `sources`, `/api/v1/exporters` from `exporters`, and the
/// dashboard with `/api/v1/summary` when `summary` is given.
pub(crate) fn start_http(
    cfg: &mediator::http::HttpConfig,
    sources: metrics::Sources,
    exporters: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
    summary: Option<Arc<mediator::http::SummaryFn>>,
) -> anyhow::Result<Option<Http>> {
    if !cfg.enabled {
        return Ok(None);
    }
    let listener = cfg.bind()?;
    let addr = listener.local_addr().context("HTTP listen address")?;
    let ready_lanes = sources.lanes.clone();
    let api = ApiState {
        exporters,
        ready: Arc::new(move || {
            ready_lanes
                .iter()
                .map(|(name, m)| SinkReadiness {
                    sink: name.to_string(),
                    ready: m.ready.load(std::sync::atomic::Ordering::Relaxed),
                })
                .collect()
        }),
        refresh_metrics: Arc::new(move || metrics::refresh(&sources)),
    };
    let router = mediator::http::router_with_dashboard(cfg, api, summary, metrics::describe);
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            rt.block_on(mediator::http::serve(listener, router, async move {
                let _ = stop_rx.await;
            }))
        })
        .context("starting the HTTP thread")?;
    tracing::info!(%addr, "HTTP API listening");
    Ok(Some(Http { addr, stop, thread }))
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

    // Sinks first: a sink that cannot start (unwritable directory, bad Kafka property) stops
    // start-up before anything listens.
    let status = Arc::new(collector::status::Status::default());
    let st = status.clone();
    let (dashboard, extra) = dashboard_lane(
        &cfg,
        Some(Arc::new(move || exporter_counters(&st.snapshot()))),
    );
    let sinks = start_sinks(&cfg.sinks, extra)?;
    let lanes = sinks.lanes.clone();
    let (kafka_metrics, parquet_metrics, ipfix_metrics) = (
        sinks.kafka.clone(),
        sinks.parquet.clone(),
        sinks.ipfix.clone(),
    );
    let stage_metrics = Arc::new(mediate::StageMetrics::default());
    let (stage, stage_thread) =
        mediate::start(cfg.join.clone(), sinks.fanout, stage_metrics.clone())
            .context("starting the mediation stage")?;

    // The HTTP API on its own small runtime.
    let st = status.clone();
    let http = start_http(
        &cfg.http,
        metrics::Sources {
            status: Some(status.clone()),
            lanes: lanes.clone(),
            kafka: kafka_metrics.clone(),
            parquet: parquet_metrics.clone(),
            ipfix: ipfix_metrics.clone(),
            stage: Some(stage_metrics.clone()),
            scaleout: None,
        },
        Arc::new(move || {
            let s = st.snapshot();
            serde_json::json!({
                "updated_ms": s.updated_ms,
                "totals": s.totals,
                "exporters": s.exporters,
            })
        }),
        dashboard.map(|d| {
            let stage = stage_metrics.clone();
            Arc::new(move || d.summary(Some(&stage.join()))) as Arc<mediator::http::SummaryFn>
        }),
    )?;
    let http_addr = http.as_ref().map(|h| h.addr);

    let ready_file = args.ready_file.clone();
    let result = collector::service::run(
        cfg.collector.clone(),
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
                if let Some(a) = http_addr {
                    s.push_str(&format!("http {a}\n"));
                }
                let tmp = p.with_extension("tmp");
                if let Err(e) = std::fs::write(&tmp, s).and_then(|_| std::fs::rename(&tmp, p)) {
                    tracing::warn!(path = %p.display(), error = %e, "Could not write the ready file");
                }
            }
        },
        |records| stage.send(records),
        (args.stats_interval_secs > 0).then(|| Duration::from_secs(args.stats_interval_secs)),
        Some(status.clone()),
    );
    // Whatever happened to the collector, the join emits what it holds and the sinks deliver it.
    drop(stage);
    let closed = match stage_thread.join() {
        Ok((fanout, flushed)) => {
            let closed = fanout.close().map_err(anyhow::Error::from);
            flushed
                .map_err(|e| anyhow::anyhow!("mediation stage: {e}"))
                .and(closed)
        }
        Err(_) => Err(anyhow::anyhow!("the mediation stage panicked")),
    };
    if let Some(h) = http {
        h.stop();
    }
    let collector_report = result?;
    let report = Report {
        collector: collector_report,
        sinks: lanes.iter().map(|(n, m)| (*n, m.snapshot())).collect(),
        join: stage_metrics.join(),
        tap_records: stage_metrics
            .tap_records
            .load(std::sync::atomic::Ordering::Relaxed),
        tap_invalid: stage_metrics
            .tap_invalid
            .load(std::sync::atomic::Ordering::Relaxed),
        sessions: stage_metrics
            .tap_sessions
            .load(std::sync::atomic::Ordering::Relaxed),
        kafka: kafka_metrics.map(|m| m.snapshot()),
        parquet: parquet_metrics.map(|m| m.snapshot()),
        ipfix: ipfix_metrics.map(|m| m.iter().map(|c| c.snapshot()).collect()),
    };
    let json = serde_json::to_string(&report)?;
    eprintln!("{json}");
    if let Some(p) = &args.report {
        std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
    }
    closed.context("closing the sinks")?;
    Ok(())
}
