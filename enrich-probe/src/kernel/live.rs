//! The live loop: what `supernetflow probe --interface` runs between attaching and shutdown.
//!
//! [`run_live`] waits on the ring buffer with a short timeout (wake-ups are batched, so it never
//! relies on being woken), hands every packet record to the caller with its wall-clock time, and
//! every `scan_every` hands over a snapshot of the flow map and the counters, with the probe, so
//! that the caller can write verdicts and forget finished flows. It returns when `shutdown` is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::events::{EventReader, PacketEvent};
use super::loader::{KernelCounters, Probe};
use super::types::{FlowState, TwinKey};
use super::KernelError;

/// Converts the kernel's `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) to Unix time, by the offset
/// between the two clocks taken once at creation.
#[derive(Clone, Copy, Debug)]
pub struct MonoClock {
    offset_ns: i128,
}

fn clock_ns(id: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(id, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl MonoClock {
    pub fn new() -> Self {
        let mono = clock_ns(libc::CLOCK_MONOTONIC);
        let real = clock_ns(libc::CLOCK_REALTIME);
        Self {
            offset_ns: real - mono,
        }
    }

    /// Unix time in ns of a kernel timestamp (0 if it would fall before 1970).
    pub fn to_unix_ns(&self, mono_ns: u64) -> u64 {
        u64::try_from(i128::from(mono_ns) + self.offset_ns).unwrap_or(0)
    }
}

impl Default for MonoClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Pacing of [`run_live`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveOptions {
    /// Longest sleep on the ring buffer, and so the latency of shutdown and of a quiet tail.
    pub poll: Duration,
    /// Interval between flow-map snapshots.
    pub scan_every: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(100),
            scan_every: Duration::from_secs(15),
        }
    }
}

/// What one [`run_live`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    pub events: u64,
    pub undecodable: u64,
    pub scans: u64,
}

/// Runs until `shutdown` is set, then drains the ring and takes a last snapshot.
///
/// `on_packet(probe, event, unix_ns)` is called for every record, oldest first;
/// `on_scan(probe, flows, counters)` with the whole flow map every `scan_every` and at the end.
pub fn run_live(
    probe: &mut Probe,
    events: &mut EventReader,
    opts: &LiveOptions,
    shutdown: &AtomicBool,
    mut on_packet: impl FnMut(&mut Probe, &PacketEvent<'_>, u64),
    mut on_scan: impl FnMut(&mut Probe, &[(TwinKey, FlowState)], &KernelCounters),
) -> Result<LiveStats, KernelError> {
    let clock = MonoClock::new();
    let mut stats = LiveStats::default();
    let mut flows = Vec::new();
    let mut last_scan = Instant::now();
    loop {
        let stop = shutdown.load(Ordering::Relaxed);
        events.wait(opts.poll)?;
        let d = events.drain(|ev| on_packet(probe, &ev, clock.to_unix_ns(ev.ts_ns)));
        stats.events += d.events;
        stats.undecodable += d.undecodable;
        if stop || last_scan.elapsed() >= opts.scan_every {
            flows.clear();
            probe.for_each_flow(|k, st| flows.push((*k, *st)))?;
            let counters = probe.counters()?;
            on_scan(probe, &flows, &counters);
            stats.scans += 1;
            last_scan = Instant::now();
        }
        if stop {
            return Ok(stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_clock_maps_now_to_now() {
        let c = MonoClock::new();
        let mono = clock_ns(libc::CLOCK_MONOTONIC) as u64;
        let real = clock_ns(libc::CLOCK_REALTIME) as u64;
        let got = c.to_unix_ns(mono);
        assert!(got.abs_diff(real) < 50_000_000, "{got} vs {real}");
        assert_eq!(MonoClock { offset_ns: -10 }.to_unix_ns(5), 0);
    }
}
