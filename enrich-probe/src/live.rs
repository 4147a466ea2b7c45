//! The live tap: `supernetflow probe --interface IF`. The kernel program is attached to the
//! interface (native XDP, falling back to generic; or TC), and what it sends up goes through the
//! same user-side steps as the offline path ([`Pipeline::live_packet`]: DPI, classification, the
//! verdict written back into the kernel's verdict map). Every `scan_every` the kernel's flow map is
//! read: a flow idle for `idle_timeout` — or closed (RST, or FIN both ways) and quiet for
//! `close_linger` — is reported ([`Pipeline::live_report`], counters from the kernel) and removed
//! from the maps. At shutdown every flow still held is reported.
//!
//! Times: the kernel stamps packets with `CLOCK_MONOTONIC`; records carry UTC, converted with a
//! [`MonoClock`] taken at start.

use crate::flow::{FlowState as TwinState, TwinKey};
use crate::kernel::{
    run_live, AttachMode, FlowState, KernelCounters, KernelError, LiveOptions, LiveStats,
    MonoClock, Probe, ProbeOptions, RawFlowKey, Verdict,
};
use crate::pipeline::{Output, Pipeline};
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

/// The twin's key of a kernel key (same layout, field for field).
pub fn twin_key(k: &RawFlowKey) -> TwinKey {
    TwinKey {
        low_addr: k.low_addr,
        high_addr: k.high_addr,
        low_port: k.low_port,
        high_port: k.high_port,
        scope: k.scope,
        protocol: k.protocol,
        _pad: [0; 7],
    }
}

/// The twin's state of a kernel state; times converted to Unix ns with `clock` when given.
pub fn twin_state(s: &FlowState, clock: Option<&MonoClock>) -> TwinState {
    let t = |ns: u64| match (clock, ns) {
        (Some(c), n) if n > 0 => c.to_unix_ns(n),
        _ => ns,
    };
    TwinState {
        packets: s.packets,
        bytes: s.bytes,
        first_ns: [t(s.first_ns[0]), t(s.first_ns[1])],
        last_ns: [t(s.last_ns[0]), t(s.last_ns[1])],
        tcp_flags: s.tcp_flags,
        _pad0: s._pad0,
        resets: s.resets,
        retrans: s.retrans,
        seq_errors: s.seq_errors,
        next_seq: s.next_seq,
        seq_valid: s.seq_valid,
        _pad1: s._pad1,
        size_hist: s.size_hist,
        iat_hist: s.iat_hist,
        client_dir: s.client_dir,
        verdict: s.verdict,
        _pad2: s._pad2,
        sent_to_user: s.sent_to_user,
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
                Ok(Some(s)) => twin_state(&s, Some(&clock)),
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
            for (k, s) in flows {
                let st = twin_state(s, Some(&clock));
                let quiet = now.saturating_sub(st.last_ns[0].max(st.last_ns[1]));
                let f = st.tcp_flags;
                let closed = (f[0] | f[1]) & 0x04 != 0 || (f[0] & f[1]) & 0x01 != 0;
                if !(at_end || quiet > idle_ns || (closed && quiet > linger_ns)) {
                    continue;
                }
                let rec = pipeline.borrow_mut().live_report(&twin_key(k), &st);
                sink(&Output::Tap(Box::new(rec)));
                reported += 1;
                if !at_end && probe.forget_flow(k).is_err() {
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
