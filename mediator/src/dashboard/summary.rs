//! The dashboard's aggregate of the records it sees, and the summary it serves
//! (`GET /api/v1/summary`).
//!
//! Everything is bounded: top-N tables hold at most [`TOP_CAPACITY`] keys each ([`super::topn`]),
//! taps at most [`MAX_TAPS`], sessions at most [`super::sessions::MAX_SESSIONS`], rates one minute
//! of per-second buckets.

use super::exporters::{ExporterCounters, ExporterRow, Exporters};
use super::rates::{RateView, Rates, HISTORY_SECS};
use super::sessions::{Sessions, SessionsView};
use super::topn::{TopN, TopRow};
use super::DashboardConfig;
use crate::join::JoinMetrics;
use crate::sink::records::AnyRecord;
use schemas::{AppType, MatchStatus, SuperFlow};
use serde::Serialize;
use std::collections::HashMap;

/// Keys each top-N table holds (counts are exact until a table is full).
pub const TOP_CAPACITY: usize = 1024;
/// Rows of each top-N list in the summary.
pub const TOP_ROWS: usize = 10;
/// Sessions listed in the summary.
pub const SESSION_ROWS: usize = 50;
/// Taps tracked by id (more are counted under `other_taps`).
pub const MAX_TAPS: usize = 256;

/// Version of the summary's JSON shape.
pub const SUMMARY_VERSION: u32 = 1;

#[derive(Debug, Default, Clone, Copy)]
struct TapSeen {
    records: u64,
    last_wall_ms: i64,
}

/// Totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Router flow records.
    pub router_records: u64,
    /// Their octets (upscaled by sampling).
    pub router_octets: u64,
    /// Tap records.
    pub tap_records: u64,
    /// Super-flows (each router flow once, when the join emits it).
    pub super_flows: u64,
    /// Application-session reports.
    pub session_reports: u64,
}

/// The join's outcome over the super-flows seen, and its state now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct JoinView {
    pub matched: u64,
    pub partial: u64,
    pub unmatched: u64,
    /// Shares of the super-flows seen, 0 to 1 (0 before any).
    pub match_rate: f64,
    pub partial_rate: f64,
    pub unmatched_rate: f64,
    /// Super-flows without a provider (unmatched, or the tap did not attribute the flow).
    pub unattributed: u64,
    /// Router records waiting for the tap side, keys and bytes of join state, as of the join's
    /// last tick (`null` where the process runs no join).
    pub pending_router_records: Option<u64>,
    pub entries: Option<u64>,
    pub state_bytes: Option<u64>,
}

/// Flows and octets of one application type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppTypeRow {
    pub app_type: AppType,
    pub flows: u64,
    pub octets: u64,
}

/// One tap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TapRow {
    pub tap_id: String,
    pub records: u64,
    /// Seconds since its last record.
    pub idle_secs: u64,
}

/// A top-N list and how exact it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopList {
    pub rows: Vec<TopRow>,
    /// Keys held (at most [`TOP_CAPACITY`]).
    pub tracked: usize,
    /// Keys that took another's place since start: 0 means every count is exact.
    pub replaced: u64,
}

/// The last minute, one value per second, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub step_secs: u64,
    pub router_records: Vec<u64>,
    pub super_flows: Vec<u64>,
}

/// What `GET /api/v1/summary` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// [`SUMMARY_VERSION`].
    pub version: u32,
    /// Wall clock of the summary, UTC ms, and seconds since the dashboard started.
    pub now_ms: i64,
    pub uptime_secs: u64,
    pub totals: Totals,
    pub rates: RateView,
    pub series: Series,
    pub join: JoinView,
    pub exporters: Vec<ExporterRow>,
    pub taps: Vec<TapRow>,
    /// Records from taps beyond [`MAX_TAPS`] distinct ids.
    pub other_tap_records: u64,
    /// Super-flows by application type, most flows first.
    pub app_types: Vec<AppTypeRow>,
    /// Super-flows by application name, and by provider (router flows and octets).
    pub top_apps: TopList,
    pub top_providers: TopList,
    pub sessions: SessionsView,
}

/// The aggregate. Fed by the dashboard lane; read by the API.
#[derive(Debug)]
pub struct Aggregator {
    started_ms: i64,
    totals: Totals,
    rates: Rates,
    status: [u64; 3],
    unattributed: u64,
    app_types: HashMap<AppType, (u64, u64)>,
    apps: TopN,
    providers: TopN,
    taps: HashMap<String, TapSeen>,
    other_tap_records: u64,
    sessions: Sessions,
    exporters: Exporters,
}

impl Aggregator {
    /// An empty aggregate started at wall-clock `now_ms`.
    pub fn new(cfg: &DashboardConfig, now_ms: i64) -> Self {
        Self {
            started_ms: now_ms,
            totals: Totals::default(),
            rates: Rates::new(now_ms),
            status: [0; 3],
            unattributed: 0,
            app_types: HashMap::new(),
            apps: TopN::new(TOP_CAPACITY),
            providers: TopN::new(TOP_CAPACITY),
            taps: HashMap::new(),
            other_tap_records: 0,
            sessions: Sessions::new(cfg.session_idle_secs, cfg.ended_session_secs),
            exporters: Exporters::new(cfg.exporter_idle_secs),
        }
    }

    fn super_flow(&mut self, s: &SuperFlow) {
        let i = match s.enrichment_status {
            MatchStatus::Matched => 0,
            MatchStatus::Partial => 1,
            MatchStatus::Unmatched => 2,
        };
        self.status[i] += 1;
        let octets = s.flow.octets;
        let t = self.app_types.entry(s.app_type).or_default();
        t.0 += 1;
        t.1 = t.1.saturating_add(octets);
        match &s.provider {
            Some(p) => self.providers.add(p, octets),
            None => self.unattributed += 1,
        }
        if let Some(name) = s.app.as_ref().and_then(|a| a.app_name.as_deref()) {
            self.apps.add(name, octets);
        }
    }

    /// Takes a batch of records seen at wall-clock `now_ms`.
    pub fn take(&mut self, batch: &[AnyRecord], now_ms: i64) {
        let mut tally = super::rates::Tally::default();
        for r in batch {
            match r {
                AnyRecord::Flow(f) => {
                    tally.router_records += 1;
                    tally.router_octets = tally.router_octets.saturating_add(f.octets);
                }
                AnyRecord::Tap(t) => {
                    tally.tap_records += 1;
                    if let Some(seen) = self.taps.get_mut(&t.tap_id) {
                        seen.records += 1;
                        seen.last_wall_ms = now_ms;
                    } else if self.taps.len() < MAX_TAPS {
                        self.taps.insert(
                            t.tap_id.clone(),
                            TapSeen {
                                records: 1,
                                last_wall_ms: now_ms,
                            },
                        );
                    } else {
                        self.other_tap_records += 1;
                    }
                    self.sessions.tap(t, now_ms);
                }
                AnyRecord::Super(s) => {
                    tally.super_flows += 1;
                    self.super_flow(s);
                }
                AnyRecord::Session(a) => {
                    tally.session_reports += 1;
                    self.sessions.report(a, now_ms);
                }
            }
        }
        let t = &mut self.totals;
        t.router_records += tally.router_records;
        t.router_octets = t.router_octets.saturating_add(tally.router_octets);
        t.tap_records += tally.tap_records;
        t.super_flows += tally.super_flows;
        t.session_reports += tally.session_reports;
        self.rates.add(now_ms, &tally);
    }

    /// Housekeeping about once a second: sessions expire; the exporters' counters, when given,
    /// are sampled.
    pub fn tick(&mut self, now_ms: i64, exporters: Option<Vec<ExporterCounters>>) {
        self.sessions.expire(now_ms);
        if let Some(list) = exporters {
            self.exporters.observe(now_ms, list);
        }
    }

    /// The summary at wall-clock `now_ms`, with the join's state when the process runs one.
    pub fn summary(&self, now_ms: i64, join: Option<&JoinMetrics>) -> Summary {
        let [matched, partial, unmatched] = self.status;
        let total = matched + partial + unmatched;
        let share = |n: u64| {
            if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            }
        };
        let mut app_types: Vec<AppTypeRow> = self
            .app_types
            .iter()
            .map(|(t, (flows, octets))| AppTypeRow {
                app_type: *t,
                flows: *flows,
                octets: *octets,
            })
            .collect();
        app_types.sort_by(|a, b| {
            b.flows
                .cmp(&a.flows)
                .then(a.app_type.as_str().cmp(b.app_type.as_str()))
        });
        let mut taps: Vec<TapRow> = self
            .taps
            .iter()
            .map(|(id, s)| TapRow {
                tap_id: id.clone(),
                records: s.records,
                idle_secs: (now_ms.saturating_sub(s.last_wall_ms).max(0) / 1000) as u64,
            })
            .collect();
        taps.sort_by(|a, b| a.tap_id.cmp(&b.tap_id));
        let (router_series, super_series) = self.rates.series(now_ms);
        let top = |t: &TopN| TopList {
            rows: t.top(TOP_ROWS),
            tracked: t.len(),
            replaced: t.replaced(),
        };
        Summary {
            version: SUMMARY_VERSION,
            now_ms,
            uptime_secs: (now_ms.saturating_sub(self.started_ms).max(0) / 1000) as u64,
            totals: self.totals,
            rates: self.rates.view(now_ms),
            series: Series {
                step_secs: 1,
                router_records: router_series,
                super_flows: super_series,
            },
            join: JoinView {
                matched,
                partial,
                unmatched,
                match_rate: share(matched),
                partial_rate: share(partial),
                unmatched_rate: share(unmatched),
                unattributed: self.unattributed,
                pending_router_records: join.map(|j| j.pending_routers),
                entries: join.map(|j| j.entries),
                state_bytes: join.map(|j| j.state_bytes),
            },
            exporters: self.exporters.view(now_ms),
            taps,
            other_tap_records: self.other_tap_records,
            app_types,
            top_apps: top(&self.apps),
            top_providers: top(&self.providers),
            sessions: self.sessions.view(now_ms, SESSION_ROWS),
        }
    }
}

const _: () = assert!(HISTORY_SECS >= 10);

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::{AppPlatform, Enrichment, FlowRecord};

    fn flow(octets: u64) -> FlowRecord {
        let mut f = schemas::sample::flow_record();
        f.octets = octets;
        f
    }

    fn sf(
        status: MatchStatus,
        provider: Option<&str>,
        app: Option<&str>,
        octets: u64,
    ) -> AnyRecord {
        let mut s = SuperFlow::unmatched(flow(octets));
        if status != MatchStatus::Unmatched {
            s.app = Some(schemas::shared::Shared::new(AppPlatform {
                app_type: AppType::Conferencing,
                provider: provider.map(str::to_string),
                app_name: app.map(str::to_string),
                ..AppPlatform::default()
            }));
            s.enrichment = Enrichment {
                status,
                confidence: 1.0,
                ..Enrichment::default()
            };
        }
        s.sync_columns();
        AnyRecord::Super(Box::new(s))
    }

    #[test]
    fn counts_match_rate_and_tops_follow_the_super_flows() {
        let t0 = 1_700_000_000_000;
        let mut a = Aggregator::new(&DashboardConfig::default(), t0);
        let batch = vec![
            AnyRecord::Flow(std::sync::Arc::new(flow(100))),
            sf(MatchStatus::Matched, Some("zoom"), Some("Zoom"), 100),
            sf(MatchStatus::Matched, Some("zoom"), Some("Zoom"), 300),
            sf(MatchStatus::Matched, Some("whatsapp"), None, 50),
            sf(MatchStatus::Partial, None, None, 10),
            sf(MatchStatus::Unmatched, None, None, 20),
        ];
        a.take(&batch, t0 + 500);
        let s = a.summary(t0 + 1000, None);
        assert_eq!(s.totals.router_records, 1);
        assert_eq!(s.totals.super_flows, 5);
        assert_eq!(
            (s.join.matched, s.join.partial, s.join.unmatched),
            (3, 1, 1)
        );
        assert_eq!(s.join.match_rate, 0.6);
        assert_eq!(s.join.unattributed, 2);
        assert_eq!(s.join.pending_router_records, None);
        let p: Vec<(&str, u64, u64)> = s
            .top_providers
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.flows, r.octets))
            .collect();
        assert_eq!(p, [("zoom", 2, 400), ("whatsapp", 1, 50)]);
        assert_eq!(s.top_apps.rows[0].name, "Zoom");
        assert_eq!(s.app_types[0].app_type, AppType::Conferencing);
        assert_eq!(s.app_types[0].flows, 4, "three matched and one partial");
        assert_eq!(s.rates.window_secs, 1);
        assert_eq!(s.rates.super_flows_per_s, 5.0);
        assert_eq!(s.series.super_flows.iter().sum::<u64>(), 5);
        let j = JoinMetrics {
            pending_routers: 7,
            ..JoinMetrics::default()
        };
        assert_eq!(
            a.summary(t0 + 1000, Some(&j)).join.pending_router_records,
            Some(7)
        );
        // The JSON shape the page reads.
        let v = serde_json::to_value(a.summary(t0 + 1000, None)).expect("json");
        for k in [
            "totals",
            "rates",
            "join",
            "exporters",
            "top_providers",
            "sessions",
        ] {
            assert!(v.get(k).is_some(), "{k} missing: {v}");
        }
        assert_eq!(v["top_providers"]["rows"][0]["name"], "zoom");
    }
}
