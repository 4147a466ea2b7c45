//! The NOC dashboard: a lane of the sinks' fan-out that aggregates what it sees into a bounded
//! summary, served as JSON at `GET /api/v1/summary` and drawn by one HTML page at `GET /dashboard`
//! ([`PAGE`], plain HTML/CSS/JS embedded in the binary: no CDN, no build step).
//!
//! ```text
//! fan-out ─► lane "dashboard" ─► Aggregator ◄── tick (1 s): the collector's exporter counters
//!                                   │
//!            GET /api/v1/summary ◄──┘  (+ the join's state)  ◄── page /dashboard polls it (2 s)
//! ```
//!
//! What it shows: exporters and their health ([`exporters`]), records per second ([`rates`]), the
//! join's match rate (matched / partial / unmatched super-flows), top applications and providers
//! ([`topn`]), and live application sessions with their latest QoE ([`sessions`]).
//!
//! Delivery guarantee: none needed — the lane keeps counters, not records; it never refuses a
//! batch and never blocks for long (one mutex shared with the API, held per batch).
//!
//! # Layout
//! - [`summary`]: the aggregate and the summary's JSON shape.
//! - [`topn`], [`rates`], [`sessions`], [`exporters`]: its bounded parts.
//! - `page.html`: the page.

pub mod exporters;
pub mod rates;
pub mod sessions;
pub mod summary;
pub mod topn;

use crate::fanout::BatchSink;
use crate::join::JoinMetrics;
use crate::sink::records::AnyRecord;
use exporters::ExporterCounters;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use summary::{Aggregator, Summary};

/// The dashboard page (served at `/dashboard`).
pub const PAGE: &str = include_str!("page.html");

/// Configuration of the dashboard (`[dashboard]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Run the dashboard lane and serve `/dashboard` and `/api/v1/summary` (with the HTTP API).
    /// Default `true`.
    pub enabled: bool,
    /// A session with no record for this long leaves the live list, seconds. Default `300` (the
    /// tap reports an active flow every 30 s).
    pub session_idle_secs: u64,
    /// An ended session stays listed, marked ended, this long, seconds. Default `120`.
    pub ended_session_secs: u64,
    /// An exporter with no message for this long is shown `idle`, seconds. Default `60`.
    pub exporter_idle_secs: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_idle_secs: 300,
            ended_session_secs: 120,
            exporter_idle_secs: 60,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads the collector's exporter counters (called on the lane's tick).
pub type ExportersFn = dyn Fn() -> Vec<ExporterCounters> + Send + Sync;

/// The API's handle on the aggregate.
#[derive(Clone)]
pub struct Dashboard {
    agg: Arc<Mutex<Aggregator>>,
}

impl Dashboard {
    /// A new aggregate, its handle, and the lane that feeds it. `exporters`, when given, is
    /// sampled on each tick for the exporters' health.
    pub fn new(
        cfg: &DashboardConfig,
        exporters: Option<Arc<ExportersFn>>,
    ) -> (Dashboard, DashboardSink) {
        let agg = Arc::new(Mutex::new(Aggregator::new(cfg, now_ms())));
        (
            Dashboard { agg: agg.clone() },
            DashboardSink { agg, exporters },
        )
    }

    /// The summary now, with the join's state when the process runs one.
    pub fn summary(&self, join: Option<&JoinMetrics>) -> Summary {
        let now = now_ms();
        match self.agg.lock() {
            Ok(a) => a.summary(now, join),
            Err(p) => p.into_inner().summary(now, join),
        }
    }
}

/// The fan-out lane (`dashboard`).
pub struct DashboardSink {
    agg: Arc<Mutex<Aggregator>>,
    exporters: Option<Arc<ExportersFn>>,
}

impl DashboardSink {
    fn with<R>(&self, f: impl FnOnce(&mut Aggregator) -> R) -> R {
        match self.agg.lock() {
            Ok(mut a) => f(&mut a),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

impl BatchSink<AnyRecord> for DashboardSink {
    fn name(&self) -> &'static str {
        "dashboard"
    }

    fn ready(&self) -> bool {
        true
    }

    fn write(&mut self, batch: &[AnyRecord]) -> Result<u64, String> {
        let now = now_ms();
        self.with(|a| a.take(batch, now));
        Ok(0)
    }

    fn tick(&mut self) -> Result<(), String> {
        // Read the collector's counters outside the aggregate's lock.
        let list = self.exporters.as_ref().map(|f| f());
        let now = now_ms();
        self.with(|a| a.tick(now, list));
        Ok(())
    }

    /// Counters only: nothing to make durable.
    fn sync(&mut self, _timeout: Duration) -> Result<(), String> {
        Ok(())
    }

    fn close(self: Box<Self>, _timeout: Duration) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_feeds_the_handle_and_samples_exporters_on_tick() {
        let list = vec![ExporterCounters {
            address: "192.0.2.1".parse().expect("addr"),
            transport: "udp".into(),
            port: None,
            messages: 3,
            flow_records: 40,
            errors: 0,
            sequence_gaps: 0,
            lost_estimate: 0,
            templates: 2,
            sampling_interval: None,
            last_error: None,
        }];
        let (dash, mut lane) = Dashboard::new(
            &DashboardConfig::default(),
            Some(Arc::new(move || list.clone())),
        );
        assert!(lane.ready());
        assert_eq!(
            lane.write(&[AnyRecord::Flow(std::sync::Arc::new(
                schemas::sample::flow_record()
            ))]),
            Ok(0)
        );
        lane.tick().expect("tick");
        let s = dash.summary(None);
        assert_eq!(s.totals.router_records, 1);
        assert_eq!(s.exporters.len(), 1);
        assert_eq!(s.exporters[0].health, "ok");
    }

    #[test]
    fn the_page_is_self_contained() {
        // No CDN, no external script, style or font: everything inline.
        for needle in ["http://", "https://", "<script src", "<link", "@import"] {
            assert!(!PAGE.contains(needle), "the page refers to {needle}");
        }
        assert!(PAGE.contains("/api/v1/summary"));
        assert!(PAGE.contains("#token=") || PAGE.contains("token="));
    }
}
