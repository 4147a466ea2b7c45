//! The live tap: `supernetflow probe --interface IF`. The kernel program is attached to the
//! interface (native XDP, falling back to generic; or TC), and what it sends up goes through the
//! same user-side steps as the offline path ([`Pipeline::live_packet`]: DPI, classification, the
//! verdict written back into the kernel's verdict map). Every `scan_every` the kernel's flow map is
//! read ([`Pipeline::live_scan`]): a flow idle for `idle_timeout` — or closed (RST, or FIN both
//! ways) and quiet for `close_linger` — is reported (an `end` tap record, counters from the
//! kernel, its last QoE window) and removed from the maps; every other flow gets an `update`
//! record every `update_interval`; `flow_stats` lines and the application sessions' start / update
//! / end reports come out of the same scans. At shutdown every flow still held is reported.
//!
//! Times: the kernel stamps packets with `CLOCK_MONOTONIC`; records carry UTC, converted with a
//! [`MonoClock`] taken at start.

use crate::kernel::{
    run_live, AttachMode, FlowState, KernelCounters, KernelError, LiveOptions, LiveStats,
    MonoClock, Probe, ProbeOptions, TwinKey, Verdict,
};
use crate::pipeline::{Output, Pipeline};
use schemas::RecordState;
use serde::Serialize;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Settings of the live tap.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Interface to attach to.
    pub interface: String,
    /// How to attach.
    pub mode: AttachMode,
    /// The kernel program's settings (first packets, snap length, pass or drop, map sizes).
    pub kernel: ProbeOptions,
    /// How often the flow map is scanned for flows to report.
    pub scan_every: Duration,
    /// A flow with no packet for this long is reported and forgotten.
    pub idle_timeout: Duration,
    /// A closed TCP flow (RST, or FIN both ways) is reported after this much quiet.
    pub close_linger: Duration,
    /// An active flow gets an `update` tap record (its QoE window since the last report) this
    /// often; zero: only the final `end` record.
    pub update_interval: Duration,
}

/// Counters of a live run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveReport {
    /// How the program was attached.
    pub attached: String,
    /// Ring-buffer records read, undecodable ones, map scans.
    pub events: u64,
    /// Records that did not decode (a kernel object of another version).
    pub undecodable: u64,
    /// Flow-map scans.
    pub scans: u64,
    /// Flows reported.
    pub reported: u64,
    /// Verdict-map writes and flow removals that failed (the flow stays as it was).
    pub map_errors: u64,
    /// The kernel program's counters at the end.
    pub kernel: KernelCountersView,
}

/// [`KernelCounters`] as a report field.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KernelCountersView {
    /// Packets the program saw.
    pub packets: u64,
    /// Packets counted into a flow.
    pub accounted: u64,
    /// Packets not counted (non-IP, malformed, fragments).
    pub not_accounted: u64,
    /// New flows refused because the flow map was full.
    pub map_full: u64,
    /// Records not sent because the ring buffer was full.
    pub ring_full: u64,
    /// Records sent to user space.
    pub events: u64,
    /// Flows created.
    pub new_flows: u64,
}

impl From<&KernelCounters> for KernelCountersView {
    fn from(c: &KernelCounters) -> Self {
        KernelCountersView {
            packets: c.packets,
            accounted: c.accounted,
            not_accounted: c.not_accounted(),
            map_full: c.map_full,
            ring_full: c.ring_full,
            events: c.events,
            new_flows: c.new_flows,
        }
    }
}

/// A kernel flow state with its monotonic times converted to Unix ns (zero stays zero: the
/// direction has seen no packet).
pub fn with_unix_times(s: &FlowState, clock: &MonoClock) -> FlowState {
    let t = |ns: u64| if ns > 0 { clock.to_unix_ns(ns) } else { 0 };
    FlowState {
        first_ns: s.first_ns.map(t),
        last_ns: s.last_ns.map(t),
        ..*s
    }
}

fn verdict(v: u8) -> Verdict {
    match v {
        0 => Verdict::New,
        1 => Verdict::Classifying,
        2 => Verdict::QoeHeaders,
        _ => Verdict::Classified,
    }
}

/// Attaches, runs until `shutdown` is set, reports every flow still held, detaches. Every output
/// goes to `sink` as it is produced.
pub fn run(
    pipeline: &mut Pipeline,
    cfg: &LiveConfig,
    shutdown: &AtomicBool,
    mut sink: impl FnMut(&Output),
) -> Result<LiveReport, KernelError> {
    let mut probe = Probe::load(&cfg.kernel)?;
    let attached = probe.attach(&cfg.interface, cfg.mode)?;
    tracing::info!(interface = %cfg.interface, mode = ?attached, "Tap attached");
    let mut events = probe.take_events()?;
    let clock = MonoClock::new();
    let mut report = LiveReport {
        attached: format!("{attached:?}"),
        ..LiveReport::default()
    };
    let opts = LiveOptions {
        poll: Duration::from_millis(100),
        scan_every: cfg.scan_every,
    };
    let idle_ns = cfg.idle_timeout.as_nanos() as u64;
    let linger_ns = cfg.close_linger.as_nanos() as u64;
    let update_ns = cfg.update_interval.as_nanos() as u64;
    // Both callbacks need the pipeline and the error count; run_live calls them one at a time.
    let pipeline = std::cell::RefCell::new(pipeline);
    let map_errors = std::cell::Cell::new(0u64);
    let mut reported = 0u64;
    let mut last_counters = KernelCounters::default();
    let stats: LiveStats = run_live(
        &mut probe,
        &mut events,
        &opts,
        shutdown,
        |probe, ev, unix_ns| {
            // The flow's counters as they are now (the packet is already in them).
            let state = match probe.flow(&ev.key) {
                Ok(Some(s)) => with_unix_times(&s, &clock),
                _ => return,
            };
            let v = pipeline.borrow_mut().live_packet(unix_ns, ev.data, &state);
            if let Some(v) = v {
                if v != state.verdict && probe.set_verdict(&ev.key, verdict(v)).is_err() {
                    map_errors.set(map_errors.get() + 1);
                }
            }
        },
        |probe, flows, counters| {
            last_counters = *counters;
            let now = clock.to_unix_ns(mono_now());
            let at_end = shutdown.load(std::sync::atomic::Ordering::Relaxed);
            let flows: Vec<(TwinKey, FlowState)> = flows
                .iter()
                .map(|(k, s)| (*k, with_unix_times(s, &clock)))
                .collect();
            let ended = |st: &FlowState| {
                let quiet = now.saturating_sub(st.last_ns[0].max(st.last_ns[1]));
                let f = st.tcp_flags;
                let closed = (f[0] | f[1]) & 0x04 != 0 || (f[0] & f[1]) & 0x01 != 0;
                quiet > idle_ns || (closed && quiet > linger_ns)
            };
            let mut out = Vec::new();
            let mut p = pipeline.borrow_mut();
            let gone = if at_end {
                p.live_finish(now, &flows, &mut out);
                Vec::new()
            } else {
                p.live_scan(now, &flows, ended, update_ns, &mut out)
            };
            drop(p);
            for o in &out {
                if matches!(o, Output::Tap(t) if t.state == RecordState::End) {
                    reported += 1;
                }
                sink(o);
            }
            for k in &gone {
                if probe.forget_flow(k).is_err() {
                    map_errors.set(map_errors.get() + 1);
                }
            }
        },
    )?;
    report.events = stats.events;
    report.undecodable = stats.undecodable;
    report.scans = stats.scans;
    report.reported = reported;
    report.map_errors = map_errors.get();
    report.kernel = KernelCountersView::from(&last_counters);
    Ok(report)
}

fn mono_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}
