//! Rates over a sliding window: per-second buckets of wall-clock time in a ring.

use serde::Serialize;

/// Seconds of history kept (the sparkline's length).
pub const HISTORY_SECS: usize = 60;
/// Seconds a rate is averaged over.
pub const RATE_WINDOW_SECS: u64 = 10;

/// What is counted per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Router flow records.
    pub router_records: u64,
    /// Their octets (upscaled by sampling).
    pub router_octets: u64,
    /// Tap records.
    pub tap_records: u64,
    /// Super-flows.
    pub super_flows: u64,
    /// Application-session reports.
    pub session_reports: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.router_records += o.router_records;
        self.router_octets = self.router_octets.saturating_add(o.router_octets);
        self.tap_records += o.tap_records;
        self.super_flows += o.super_flows;
        self.session_reports += o.session_reports;
    }
}

/// Per-second tallies of the last [`HISTORY_SECS`] seconds.
#[derive(Debug)]
pub struct Rates {
    /// (second, tally); a slot whose second is not the one asked for is stale (zero).
    ring: [(i64, Tally); HISTORY_SECS],
    /// The first second anything was counted or the ring was created.
    start_sec: i64,
}

/// Records per second over the last [`RATE_WINDOW_SECS`] complete seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RateView {
    /// Seconds the rates are averaged over (shorter right after start).
    pub window_secs: u64,
    pub router_records_per_s: f64,
    /// Router traffic, bits per second (octets × 8, upscaled by sampling).
    pub router_bits_per_s: f64,
    pub tap_records_per_s: f64,
    pub super_flows_per_s: f64,
    pub session_reports_per_s: f64,
}

impl Rates {
    /// An empty ring; `now_ms` is wall-clock time.
    pub fn new(now_ms: i64) -> Self {
        Self {
            ring: [(i64::MIN, Tally::default()); HISTORY_SECS],
            start_sec: now_ms.div_euclid(1000),
        }
    }

    fn slot(sec: i64) -> usize {
        sec.rem_euclid(HISTORY_SECS as i64) as usize
    }

    /// Adds `t` to the second of `now_ms`.
    pub fn add(&mut self, now_ms: i64, t: &Tally) {
        let sec = now_ms.div_euclid(1000);
        let s = &mut self.ring[Self::slot(sec)];
        if s.0 != sec {
            *s = (sec, Tally::default());
        }
        s.1.add(t);
    }

    fn at(&self, sec: i64) -> Tally {
        let s = &self.ring[Self::slot(sec)];
        if s.0 == sec {
            s.1
        } else {
            Tally::default()
        }
    }

    /// Averages over the last complete seconds (at most [`RATE_WINDOW_SECS`]).
    pub fn view(&self, now_ms: i64) -> RateView {
        let now = now_ms.div_euclid(1000);
        let complete = (now - self.start_sec).clamp(0, RATE_WINDOW_SECS as i64);
        if complete == 0 {
            return RateView::default();
        }
        let mut sum = Tally::default();
        for sec in now - complete..now {
            sum.add(&self.at(sec));
        }
        let d = complete as f64;
        RateView {
            window_secs: complete as u64,
            router_records_per_s: sum.router_records as f64 / d,
            router_bits_per_s: sum.router_octets as f64 * 8.0 / d,
            tap_records_per_s: sum.tap_records as f64 / d,
            super_flows_per_s: sum.super_flows as f64 / d,
            session_reports_per_s: sum.session_reports as f64 / d,
        }
    }

    /// Router records and super-flows per second over the last [`HISTORY_SECS`] complete seconds,
    /// oldest first.
    pub fn series(&self, now_ms: i64) -> (Vec<u64>, Vec<u64>) {
        let now = now_ms.div_euclid(1000);
        (now - HISTORY_SECS as i64..now)
            .map(|s| {
                let t = self.at(s);
                (t.router_records, t.super_flows)
            })
            .unzip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows(n: u64) -> Tally {
        Tally {
            router_records: n,
            router_octets: n * 1000,
            ..Tally::default()
        }
    }

    #[test]
    fn rates_average_the_complete_seconds_of_the_window() {
        let t0 = 1_700_000_000_000;
        let mut r = Rates::new(t0);
        // 100 records a second for 20 s.
        for s in 0..20 {
            r.add(t0 + s * 1000 + 500, &flows(100));
        }
        let v = r.view(t0 + 20_000);
        assert_eq!(v.window_secs, RATE_WINDOW_SECS);
        assert_eq!(v.router_records_per_s, 100.0);
        assert_eq!(v.router_bits_per_s, 800_000.0);
        // The current, incomplete second is not counted.
        r.add(t0 + 20_100, &flows(1_000_000));
        assert_eq!(r.view(t0 + 20_200).router_records_per_s, 100.0);
        // Quiet for a minute: old buckets are stale, not summed again.
        let v = r.view(t0 + 90_000);
        assert_eq!(v.router_records_per_s, 0.0);
        // The last minute at t0 + 70 s: seconds 10..69, of which 10..19 (100 each) and 20.
        let (series, _) = r.series(t0 + 70_000);
        assert_eq!(series.len(), HISTORY_SECS);
        assert_eq!(series.iter().sum::<u64>(), 10 * 100 + 1_000_000);
        assert_eq!(r.series(t0 + 200_000).0.iter().sum::<u64>(), 0);
    }

    #[test]
    fn right_after_start_the_window_is_shorter() {
        let t0 = 1_700_000_000_000;
        let mut r = Rates::new(t0);
        assert_eq!(r.view(t0 + 300), RateView::default());
        r.add(t0 + 100, &flows(30));
        r.add(t0 + 1_100, &flows(10));
        let v = r.view(t0 + 2_000);
        assert_eq!(v.window_secs, 2);
        assert_eq!(v.router_records_per_s, 20.0);
    }
}
