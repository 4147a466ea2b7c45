//! The collector as a running service: listeners → bounded queue → decode loop → sink.
//!
//! ```text
//! udp receiver thread(s) ─┐ Batch (bounded queue; full → counted drop)
//! tcp session threads ────┴──────────► decode loop (this thread) ──► sink(&[FlowRecord])
//!                                        │ templates changed → state file
//!                                        └ every second: expire held sets/templates, kernel drops
//! ```

use crate::config::CollectorConfig;
use crate::decode::{stats::DecodeStats, Decoder};
use crate::ingest::{tcp, udp, Batch, IngestMetrics, IngestSnapshot};
use crate::state;
use crate::status::Status;
use schemas::FlowRecord;
use serde::Serialize;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Batches the decode queue holds before receivers start dropping (UDP) or waiting (TCP).
const QUEUE_BATCHES: usize = 4096;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("binding UDP {addr}: {source}")]
    BindUdp {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("binding TCP {addr}: {source}")]
    BindTcp {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("config: {0}")]
    Config(String),
    #[error("sink failed: {0}")]
    Sink(String),
}

/// Counters at the end of a run (also logged periodically).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub decode: DecodeStats,
    pub ingest: IngestSnapshot,
    pub state_saves: u64,
    pub state_save_errors: u64,
}

/// Where the listeners ended up (port 0 resolves to the kernel's choice).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub udp: Vec<std::net::SocketAddr>,
    pub tcp: Vec<std::net::SocketAddr>,
}

/// Runs until `shutdown` is set. `on_bound` is told the listening addresses once they are open;
/// `sink` gets (owns) every batch of decoded records and may fail the service. A sink that blocks
/// back-pressures the decode loop, whose full queue then drops UDP batches into
/// `queue_full_drops`: never silently. `status` (for the HTTP API) gets the ingest counters live
/// and a decoder snapshot every second and at exit.
pub fn run(
    mut cfg: CollectorConfig,
    shutdown: Arc<AtomicBool>,
    on_bound: impl FnOnce(&Bound),
    mut sink: impl FnMut(Vec<FlowRecord>) -> Result<(), String>,
    stats_interval: Option<Duration>,
    status: Option<Arc<Status>>,
) -> Result<Report, ServiceError> {
    cfg.decoder.validate().map_err(ServiceError::Config)?;
    let mut decoder = Decoder::new(cfg.decoder.clone());
    let state_file = cfg.state_file.clone().filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = &state_file {
        let r = state::load(&mut decoder, p)?;
        tracing::info!(path = %p.display(), exporters = r.exporters, templates = r.templates, bad = r.bad_templates, "Loaded collector state");
    }
    let metrics = status
        .as_ref()
        .map(|s| s.ingest.clone())
        .unwrap_or_else(|| Arc::new(IngestMetrics::default()));
    if let Some(st) = &status {
        st.publish(&decoder, udp::now_ms(), 0, 0);
    }
    let (tx, rx) = sync_channel::<Batch>(QUEUE_BATCHES);
    let mut threads = Vec::new();
    let mut inodes = Vec::new();
    let mut bound = Bound::default();
    for addr in &cfg.udp_listen {
        let mut addr = *addr;
        for _ in 0..cfg.udp_sockets_per_address.max(1) {
            let s = udp::bind(addr, cfg.udp_recv_buffer_bytes)
                .map_err(|source| ServiceError::BindUdp { addr, source })?;
            let local = s
                .local_addr()
                .map_err(|source| ServiceError::BindUdp { addr, source })?;
            // Further SO_REUSEPORT sockets join the port the first one got.
            addr = local;
            inodes.extend(udp::inode(&s));
            bound.udp.push(local);
            let (tx, m, sd) = (tx.clone(), metrics.clone(), shutdown.clone());
            threads.push(std::thread::spawn(move || udp::receive_loop(s, tx, m, sd)));
        }
    }
    for addr in &cfg.tcp_listen {
        let l = tcp::bind(*addr).map_err(|source| ServiceError::BindTcp {
            addr: *addr,
            source,
        })?;
        bound
            .tcp
            .push(l.local_addr().map_err(|source| ServiceError::BindTcp {
                addr: *addr,
                source,
            })?);
        let (tx, m, sd, max) = (
            tx.clone(),
            metrics.clone(),
            shutdown.clone(),
            cfg.tcp_max_connections,
        );
        threads.push(std::thread::spawn(move || {
            tcp::accept_loop(l, max, tx, m, sd)
        }));
    }
    drop(tx);
    tracing::info!(udp = ?bound.udp, tcp = ?bound.tcp, "Collector listening");
    on_bound(&bound);

    let mut out: Vec<FlowRecord> = Vec::with_capacity(64);
    let (saves, save_errors) = (Cell::new(0u64), Cell::new(0u64));
    let save = |d: &Decoder| {
        if let Some(p) = &state_file {
            match state::save(d, p) {
                Ok(()) => saves.set(saves.get() + 1),
                Err(e) => {
                    save_errors.set(save_errors.get() + 1);
                    tracing::warn!(error = %e, "Could not save collector state");
                }
            }
        }
    };
    let mut last_tick = Instant::now();
    let mut last_log = Instant::now();
    let mut sink_result = Ok(());
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(batch) => {
                let mut changed = false;
                for (from, ms, msg, is_tcp) in batch.iter() {
                    if is_tcp {
                        decoder.decode_tcp(from, Some(ms), msg, &mut out);
                    } else {
                        changed |= decoder
                            .decode(from.ip(), Some(ms), msg, &mut out)
                            .state_changed;
                    }
                }
                for peer in &batch.closed {
                    decoder.tcp_closed(*peer);
                }
                if changed {
                    save(&decoder);
                }
                if !out.is_empty() && sink_result.is_ok() {
                    // The next batch is sized like this one. A fixed 4 096 records (1.6 MB) for
                    // batches of a few hundred made the kernel zero a fresh huge page for most
                    // batches: `clear_page` in this thread was 6 % of the machine's CPU in `run`
                    // into Parquet at 600 k rec/s, 2.3 % after (perf, 2026-12-08).
                    let next = out.len().next_power_of_two().clamp(64, 4096);
                    let batch = std::mem::replace(&mut out, Vec::with_capacity(next));
                    if let Err(e) = sink(batch) {
                        sink_result = Err(ServiceError::Sink(e));
                        shutdown.store(true, Relaxed);
                    }
                }
                out.clear();
            }
            Err(RecvTimeoutError::Timeout) => {}
            // Every receiver has ended (after draining its socket on shutdown).
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            decoder.expire(udp::now_ms());
            if let Some(st) = &status {
                st.publish(&decoder, udp::now_ms(), saves.get(), save_errors.get());
            }
            metrics
                .kernel_drops
                .store(udp::kernel_drops(&inodes), Relaxed);
            if let Some(iv) = stats_interval {
                if last_log.elapsed() >= iv {
                    last_log = Instant::now();
                    let t = &decoder.totals;
                    tracing::info!(
                        messages = t.messages,
                        records = t.flow_records,
                        errors = t.errors,
                        undecoded_sets = t.undecoded_sets,
                        queue_full_drops = metrics.queue_full_drops.load(Relaxed),
                        kernel_drops = metrics.kernel_drops.load(Relaxed),
                        "Collector stats"
                    );
                }
            }
        }
    }
    shutdown.store(true, Relaxed);
    for t in threads {
        let _ = t.join();
    }
    metrics
        .kernel_drops
        .store(udp::kernel_drops(&inodes), Relaxed);
    // Data still waiting for a template will not be decoded by this run: count it. (The held
    // sets are not persisted; the templates are, so a restart decodes what is sent after it.)
    decoder.finish();
    save(&decoder);
    if let Some(st) = &status {
        st.publish(&decoder, udp::now_ms(), saves.get(), save_errors.get());
    }
    sink_result?;
    Ok(Report {
        decode: decoder.totals.clone(),
        ingest: metrics.snapshot(),
        state_saves: saves.get(),
        state_save_errors: save_errors.get(),
    })
}
