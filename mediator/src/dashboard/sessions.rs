//! Live application sessions and their latest QoE, for the dashboard.
//!
//! A session is known by its id from two sources: the tap's records (each flow the tap attributed
//! to a session carries its `session_id`) and `AppSession` reports (when the pipeline publishes
//! them). Each session keeps its identity, its member flows (bounded), the bytes the tap counted
//! on them, and the latest QoE measured on any of them.
//!
//! A session *ends* when its `AppSession` report says so, or when every member flow it tracks has
//! sent its last report (`state = end`); ended sessions stay listed (as ended) for
//! `ended_session_secs` of wall-clock time, then go. A session with no record for
//! `session_idle_secs` goes too. The table holds at most [`MAX_SESSIONS`] sessions: beyond it the
//! least recently updated one is dropped (counted).

use schemas::{AppSession, AppType, Qoe, RecordState, TapRecord};
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;

/// Most sessions held.
pub const MAX_SESSIONS: usize = 4096;
/// Most member flows tracked per session (more are counted, not tracked: such a session ends by
/// its report or idleness only).
pub const MAX_MEMBER_FLOWS: usize = 32;

#[derive(Debug, Clone, Copy, Default)]
struct Member {
    bytes: u64,
    ended: bool,
}

#[derive(Debug)]
struct Live {
    client: IpAddr,
    provider: String,
    app_type: AppType,
    app_name: Option<String>,
    client_os: Option<String>,
    client_agent: Option<String>,
    tap: Option<String>,
    start_ms: i64,
    last_ms: i64,
    members: HashMap<String, Member>,
    untracked_members: u32,
    /// Member flows and bytes from the latest `AppSession` report, when larger.
    reported_members: u32,
    reported_bytes: u64,
    router_octets: Option<u64>,
    /// Ended by its `AppSession` report.
    report_ended: bool,
    qoe: Option<(i64, Qoe)>,
    /// Wall clock of the last record, and of the end.
    updated_wall_ms: i64,
    ended_wall_ms: Option<i64>,
}

impl Live {
    fn ended(&self) -> bool {
        self.report_ended
            || (self.untracked_members == 0
                && !self.members.is_empty()
                && self.members.values().all(|m| m.ended))
    }

    fn settle(&mut self, now_ms: i64) {
        match (self.ended(), self.ended_wall_ms) {
            (true, None) => self.ended_wall_ms = Some(now_ms),
            (false, Some(_)) => self.ended_wall_ms = None,
            _ => {}
        }
    }

    fn take_qoe(&mut self, ts_ms: i64, q: &Qoe) {
        if q.is_empty() {
            return;
        }
        if self.qoe.as_ref().is_none_or(|(t, _)| ts_ms >= *t) {
            self.qoe = Some((ts_ms, q.clone()));
        }
    }
}

/// One session as the summary shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    pub session_id: String,
    /// `active` or `ended`.
    pub state: &'static str,
    pub client: IpAddr,
    pub provider: String,
    pub app_type: AppType,
    pub app_name: Option<String>,
    pub client_os: Option<String>,
    pub client_agent: Option<String>,
    pub tap: Option<String>,
    /// First packet and last activity of the session (record times), UTC ms.
    pub start_ms: i64,
    pub last_ms: i64,
    /// Member flows seen.
    pub member_flows: u32,
    /// Bytes the tap counted on the member flows (both directions).
    pub bytes: u64,
    /// Octets the routers reported for the member flows, when an `AppSession` report said.
    pub router_octets: Option<u64>,
    /// The latest QoE measured on the session, and when (end of its window, UTC ms).
    pub qoe: Option<Qoe>,
    pub qoe_ms: Option<i64>,
    /// Seconds since the dashboard last heard of the session.
    pub idle_secs: u64,
}

/// Counters and the listed sessions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionsView {
    /// Sessions held now, active and recently ended.
    pub active: u64,
    pub ended: u64,
    /// Sessions first seen since start (a session forgotten and seen again counts twice).
    pub seen_total: u64,
    /// Sessions forgotten after their end, for idleness, or for room.
    pub expired_ended_total: u64,
    pub expired_idle_total: u64,
    pub evicted_total: u64,
    /// Up to the requested number: active first, then by latest activity.
    pub list: Vec<SessionRow>,
}

/// The live sessions table.
#[derive(Debug)]
pub struct Sessions {
    map: HashMap<String, Live>,
    idle_ms: i64,
    ended_ms: i64,
    seen_total: u64,
    expired_ended: u64,
    expired_idle: u64,
    evicted: u64,
}

impl Sessions {
    /// Sessions idle for `idle_secs` go; ended ones are listed for `ended_secs`.
    pub fn new(idle_secs: u64, ended_secs: u64) -> Self {
        Self {
            map: HashMap::new(),
            idle_ms: idle_secs.saturating_mul(1000).min(i64::MAX as u64) as i64,
            ended_ms: ended_secs.saturating_mul(1000).min(i64::MAX as u64) as i64,
            seen_total: 0,
            expired_ended: 0,
            expired_idle: 0,
            evicted: 0,
        }
    }

    fn entry(&mut self, id: &str, now_ms: i64, make: impl FnOnce() -> Live) -> Option<&mut Live> {
        if !self.map.contains_key(id) {
            if self.map.len() >= MAX_SESSIONS {
                let oldest = self
                    .map
                    .iter()
                    .min_by_key(|(_, s)| s.updated_wall_ms)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.map.remove(&k);
                    self.evicted += 1;
                }
            }
            self.seen_total += 1;
            self.map.insert(id.to_owned(), make());
        }
        let s = self.map.get_mut(id)?;
        s.updated_wall_ms = now_ms;
        Some(s)
    }

    /// Takes a tap record (ignored unless it names its session).
    pub fn tap(&mut self, t: &TapRecord, now_ms: i64) {
        let Some(id) = t.session_id.as_deref().filter(|s| !s.is_empty()) else {
            return;
        };
        let make = || Live {
            client: t.key.client_addr,
            provider: t.app.provider.clone().unwrap_or_else(|| "unknown".into()),
            app_type: t.app.app_type,
            app_name: t.app.app_name.clone(),
            client_os: t.app.client_os.clone(),
            client_agent: t.app.client_agent.clone(),
            tap: Some(t.tap_id.clone()),
            start_ms: t.first_seen_ms,
            last_ms: t.last_seen_ms,
            members: HashMap::new(),
            untracked_members: 0,
            reported_members: 0,
            reported_bytes: 0,
            router_octets: None,
            report_ended: false,
            qoe: None,
            updated_wall_ms: now_ms,
            ended_wall_ms: None,
        };
        let Some(s) = self.entry(id, now_ms, make) else {
            return;
        };
        s.start_ms = s.start_ms.min(t.first_seen_ms);
        s.last_ms = s.last_ms.max(t.last_seen_ms);
        for (field, v) in [
            (&mut s.app_name, &t.app.app_name),
            (&mut s.client_os, &t.app.client_os),
            (&mut s.client_agent, &t.app.client_agent),
        ] {
            if field.is_none() {
                field.clone_from(v);
            }
        }
        let bytes = t.stats.total_bytes;
        let ended = t.state == RecordState::End;
        if let Some(m) = s.members.get_mut(&t.key.flow_key) {
            m.bytes = m.bytes.max(bytes);
            m.ended |= ended;
        } else if s.members.len() < MAX_MEMBER_FLOWS {
            s.members
                .insert(t.key.flow_key.clone(), Member { bytes, ended });
        } else if t.seq == 0 {
            s.untracked_members += 1;
        }
        s.take_qoe(t.last_seen_ms, &t.qoe);
        s.settle(now_ms);
    }

    /// Takes an application-session report.
    pub fn report(&mut self, a: &AppSession, now_ms: i64) {
        let make = || Live {
            client: a.client_addr,
            provider: a.provider.clone(),
            app_type: a.app_type,
            app_name: a.app_name.clone(),
            client_os: a.client_os.clone(),
            client_agent: a.client_agent.clone(),
            tap: a.tap.clone(),
            start_ms: a.start_ms,
            last_ms: a.last_ms,
            members: HashMap::new(),
            untracked_members: 0,
            reported_members: 0,
            reported_bytes: 0,
            router_octets: None,
            report_ended: false,
            qoe: None,
            updated_wall_ms: now_ms,
            ended_wall_ms: None,
        };
        let Some(s) = self.entry(&a.session_id, now_ms, make) else {
            return;
        };
        s.last_ms = s.last_ms.max(a.last_ms);
        s.reported_members = s.reported_members.max(a.member_flows);
        s.reported_bytes = s.reported_bytes.max(a.network.stats.total_bytes);
        s.router_octets = Some(a.network.router_octets);
        s.report_ended |= a.state == RecordState::End;
        if let Some(q) = a.qoe_series.iter().max_by_key(|q| q.ts_ms) {
            s.take_qoe(q.ts_ms, &q.qoe);
        }
        s.settle(now_ms);
    }

    /// Forgets ended sessions past their listing time and idle ones.
    pub fn expire(&mut self, now_ms: i64) {
        let (idle_ms, ended_ms) = (self.idle_ms, self.ended_ms);
        let (mut ended, mut idle) = (0, 0);
        self.map.retain(|_, s| {
            if s.ended_wall_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= ended_ms)
            {
                ended += 1;
                false
            } else if now_ms.saturating_sub(s.updated_wall_ms) >= idle_ms {
                idle += 1;
                false
            } else {
                true
            }
        });
        self.expired_ended += ended;
        self.expired_idle += idle;
    }

    /// The counters and up to `n` sessions, active first, then the most recently updated.
    pub fn view(&self, now_ms: i64, n: usize) -> SessionsView {
        let ended = self
            .map
            .values()
            .filter(|s| s.ended_wall_ms.is_some())
            .count() as u64;
        let mut rows: Vec<(&String, &Live)> = self.map.iter().collect();
        rows.sort_by(|(ka, a), (kb, b)| {
            a.ended_wall_ms
                .is_some()
                .cmp(&b.ended_wall_ms.is_some())
                .then(b.last_ms.cmp(&a.last_ms))
                .then(ka.cmp(kb))
        });
        let list = rows
            .into_iter()
            .take(n)
            .map(|(id, s)| {
                let tap_bytes: u64 = s.members.values().map(|m| m.bytes).sum();
                SessionRow {
                    session_id: id.clone(),
                    state: if s.ended_wall_ms.is_some() {
                        "ended"
                    } else {
                        "active"
                    },
                    client: s.client,
                    provider: s.provider.clone(),
                    app_type: s.app_type,
                    app_name: s.app_name.clone(),
                    client_os: s.client_os.clone(),
                    client_agent: s.client_agent.clone(),
                    tap: s.tap.clone(),
                    start_ms: s.start_ms,
                    last_ms: s.last_ms,
                    member_flows: (s.members.len() as u32 + s.untracked_members)
                        .max(s.reported_members),
                    bytes: tap_bytes.max(s.reported_bytes),
                    router_octets: s.router_octets,
                    qoe: s.qoe.as_ref().map(|(_, q)| q.clone()),
                    qoe_ms: s.qoe.as_ref().map(|(t, _)| *t),
                    idle_secs: (now_ms.saturating_sub(s.updated_wall_ms).max(0) / 1000) as u64,
                }
            })
            .collect();
        SessionsView {
            active: self.map.len() as u64 - ended,
            ended,
            seen_total: self.seen_total,
            expired_ended_total: self.expired_ended,
            expired_idle_total: self.expired_idle,
            evicted_total: self.evicted,
            list,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::VideoQoe;

    fn tap(session: &str, flow_key: &str, state: RecordState, seq: u32) -> TapRecord {
        let mut t = schemas::sample::tap_record();
        t.record_id = format!("{flow_key}-{seq}");
        t.tap_id = "tap1".into();
        t.state = state;
        t.seq = seq;
        t.key.flow_key = flow_key.into();
        t.first_seen_ms = 1_000;
        t.last_seen_ms = 2_000 + i64::from(seq) * 1000;
        t.app.app_type = AppType::VideoStreaming;
        t.app.provider = Some("netflix".into());
        t.app.app_name = Some("Netflix".into());
        t.stats.total_bytes = 1000 * (u64::from(seq) + 1);
        t.qoe = Qoe::default();
        t.session_id = Some(session.into());
        t
    }

    #[test]
    fn a_session_from_tap_records_ends_when_its_flows_end_and_goes_later() {
        let mut s = Sessions::new(300, 60);
        let now = 1_700_000_000_000;
        s.tap(&tap("s1", "a", RecordState::Start, 0), now);
        let mut b = tap("s1", "b", RecordState::Update, 1);
        b.qoe.video = Some(VideoQoe {
            window_start_ms: 0,
            window_end_ms: 3000,
            resolution: Some("1080p".into()),
            height_px: Some(1080),
            bitrate_kbps: Some(4500),
            startup_delay_ms: None,
            stalls: 0,
            stall_ms: 0,
            buffer_state: schemas::BufferState::default(),
        });
        s.tap(&b, now);
        // Records without a session are not sessions.
        let mut none = tap("x", "c", RecordState::Start, 0);
        none.session_id = None;
        s.tap(&none, now);
        let v = s.view(now, 10);
        assert_eq!((v.active, v.ended, v.seen_total), (1, 0, 1));
        let row = &v.list[0];
        assert_eq!(
            (
                row.state,
                row.member_flows,
                row.bytes,
                row.provider.as_str()
            ),
            ("active", 2, 3000, "netflix")
        );
        assert_eq!(
            row.qoe.as_ref().and_then(|q| q.video.as_ref()?.height_px),
            Some(1080)
        );
        // A later report without QoE keeps the last measured one.
        s.tap(&tap("s1", "a", RecordState::End, 1), now + 1000);
        assert!(s.view(now, 10).list[0].qoe.is_some());
        assert_eq!(s.view(now, 10).list[0].state, "active");
        s.tap(&tap("s1", "b", RecordState::End, 2), now + 2000);
        assert_eq!(s.view(now + 2000, 10).list[0].state, "ended");
        s.expire(now + 61_000);
        assert_eq!(s.view(now + 61_000, 10).ended, 1, "listed for 60 s");
        s.expire(now + 62_000);
        let v = s.view(now + 62_000, 10);
        assert!(v.list.is_empty());
        assert_eq!(v.expired_ended_total, 1);
    }

    #[test]
    fn idle_sessions_go_and_reports_end_sessions() {
        let mut s = Sessions::new(300, 60);
        let now = 1_700_000_000_000;
        s.tap(&tap("s1", "a", RecordState::Start, 0), now);
        s.expire(now + 299_000);
        assert_eq!(s.view(now, 10).active, 1);
        s.expire(now + 300_000);
        assert_eq!(s.view(now, 10).expired_idle_total, 1);

        let mut a = schemas::sample::app_session();
        a.session_id = "s2".into();
        a.state = RecordState::Update;
        a.member_flows = 3;
        a.network.router_octets = 5000;
        s.report(&a, now);
        let v = s.view(now, 10);
        assert_eq!(
            (v.list[0].member_flows, v.list[0].router_octets),
            (3, Some(5000))
        );
        a.state = RecordState::End;
        s.report(&a, now + 1);
        assert_eq!(s.view(now + 1, 10).ended, 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut s = Sessions::new(300, 60);
        let now = 1_700_000_000_000;
        for i in 0..MAX_SESSIONS + 10 {
            s.tap(
                &tap(&format!("s{i}"), "a", RecordState::Start, 0),
                now + i as i64,
            );
        }
        let v = s.view(now, 5);
        assert_eq!(v.active as usize, MAX_SESSIONS);
        assert_eq!(v.evicted_total, 10);
        assert_eq!(v.list.len(), 5);
        assert_eq!(v.seen_total as usize, MAX_SESSIONS + 10);
    }
}
