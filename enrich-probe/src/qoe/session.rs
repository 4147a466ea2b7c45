//! Application sessions: the flows of one client using one provider's application of one type
//! (a YouTube watch opens several connections; a Zoom call has TLS control, DNS and media flows).
//!
//! A flow joins the session of (client address, provider, app type) when it is classified with
//! a provider; the session starts then and emits an [`AppSession`] with state `start`, one with
//! state `update` every `report_ns` (30 s) of capture time while it is active, and one with state
//! `end` once its last member flow has ended and `linger_ns` passed without a new one (or at the
//! end of the input). Every `window_ns` (30 s; the `qoe` command's `--interval`) it closes a QoE
//! window: the QoE block of its app type over that window ([`SessionInterval`]), also added to the
//! next report's `qoe_series` when a member flow carried a packet in it (an idle window is still
//! an interval, not a sample). Tap records carry the session id; the session counts its members.
//!
//! A STUN/TURN-relayed media flow without a provider joins its client's one live call
//! ([`Sessions::live_call_of`]; the rule is the pipeline's `inherit_call`), so a call's audio
//! through a TURN relay counts in the call's windows and MOS.
//!
//! Network QoS of a report: counters summed over every member flow (the ended ones with their
//! final counters, the active ones as they are now), so the `end` report's byte and packet
//! totals are exactly the sum of the member flows' tap records; rates summed over active
//! members; RTT min / max over members, RTT average, jitter and loss weighted by packets.
//!
//! Bounded: at most `max_sessions` sessions (a flow that would open one more joins none, counted)
//! and `max_members` active flows per session.

use super::mos::{self, MosInputs};
use super::rtp::RtpWindow;
use super::video::{VideoConfig, VideoSession};
use super::FlowWindow;
use crate::flow::TwinKey;
use schemas::{
    AppSession, AppType, BufferState, ConferencingQoe, FlowStats, Qoe, QoeSample, RecordState,
    SessionNetwork,
};
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;

/// Settings of the session layer.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// QoE window, ns (default 30 s).
    pub window_ns: u64,
    /// Time between `update` reports, ns (default 30 s).
    pub report_ns: u64,
    /// Quiet time after the last member flow ended before the session ends, ns (default 30 s).
    pub linger_ns: u64,
    /// Sessions held at most.
    pub max_sessions: usize,
    /// Active member flows per session at most.
    pub max_members: usize,
    /// Video estimator settings.
    pub video: VideoConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            window_ns: 30_000_000_000,
            report_ns: 30_000_000_000,
            linger_ns: 30_000_000_000,
            max_sessions: 65_536,
            max_members: 1024,
            video: VideoConfig::default(),
        }
    }
}

/// What the session layer needs from the flow table.
pub trait MemberFlows {
    /// A member flow's Network QoS now.
    fn stats(&self, k: &TwinKey, now_ns: u64) -> Option<FlowStats>;
    /// Takes a member flow's QoE window, the next starting at `now_ns`.
    fn take_window(&mut self, k: &TwinKey, now_ns: u64) -> Option<FlowWindow>;
}

/// One closed QoE window of a session: what `supernetflow qoe` prints, one JSON line each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInterval {
    /// The session.
    pub session_id: String,
    /// Window start, UTC ms.
    pub interval_start_ms: i64,
    /// Window end, UTC ms.
    pub interval_end_ms: i64,
    /// App type.
    pub app_type: AppType,
    /// Provider.
    pub provider: String,
    /// Client address.
    pub client_addr: IpAddr,
    /// Member flows so far.
    pub member_flows: u32,
    /// IP bytes of the member flows in the window, both directions.
    pub bytes: u64,
    /// Video: height of the resolution played, px.
    pub resolution_height: Option<u16>,
    /// Video: buffer state at the window's end.
    pub buffer_state: Option<BufferState>,
    /// Video: a stall in the window (or the buffer is empty at its end).
    pub stalled: Option<bool>,
    /// The QoE block of the session's app type.
    #[serde(flatten)]
    pub qoe: Qoe,
    /// Conferencing and VoIP: what the window's MOS was computed from (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mos_inputs: Option<MosInputs>,
}

/// What the session layer hands back to the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A session report.
    Report(Box<AppSession>),
    /// A closed QoE window.
    Interval(Box<SessionInterval>),
}

/// Counters of the session layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionCounters {
    /// Sessions started.
    pub started: u64,
    /// Sessions ended.
    pub ended: u64,
    /// Reports written.
    pub reports: u64,
    /// Windows closed.
    pub intervals: u64,
    /// Flows that joined no session because the table was full.
    pub full: u64,
    /// Flows that joined no session because it had `max_members` active flows.
    pub members_full: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SessionKey {
    client: IpAddr,
    provider: String,
    app_type: AppType,
}

/// Network QoS summed over flows.
#[derive(Debug, Clone, Default)]
struct StatsAcc {
    s: FlowStats,
    rtt_w: f64,
    rtt_sum: f64,
    jit_w: f64,
    jit_sum: f64,
    loss_w: f64,
    loss_sum: f64,
}

impl StatsAcc {
    fn add(&mut self, f: &FlowStats, rates: bool) {
        let s = &mut self.s;
        s.local_bytes += f.local_bytes;
        s.other_bytes += f.other_bytes;
        s.local_packets += f.local_packets;
        s.other_packets += f.other_packets;
        s.total_bytes += f.total_bytes;
        s.total_packets += f.total_packets;
        if rates {
            s.local_rate += f.local_rate;
            s.other_rate += f.other_rate;
        }
        s.tcp_resets = s.tcp_resets.saturating_add(f.tcp_resets);
        s.tcp_retrans = s.tcp_retrans.saturating_add(f.tcp_retrans);
        s.tcp_seq_errors = s.tcp_seq_errors.saturating_add(f.tcp_seq_errors);
        s.detection_packets = s.detection_packets.max(f.detection_packets);
        let w = f.total_packets as f64;
        if let Some(m) = f.rtt_min_ms {
            s.rtt_min_ms = Some(s.rtt_min_ms.map_or(m, |x| x.min(m)));
        }
        if let Some(m) = f.rtt_max_ms {
            s.rtt_max_ms = Some(s.rtt_max_ms.map_or(m, |x| x.max(m)));
        }
        if let Some(a) = f.rtt_avg_ms {
            self.rtt_sum += f64::from(a) * w;
            self.rtt_w += w;
        }
        if let Some(j) = f.jitter_ms {
            self.jit_sum += f64::from(j) * w;
            self.jit_w += w;
        }
        if let Some(l) = f.loss_ratio {
            self.loss_sum += f64::from(l) * w;
            self.loss_w += w;
        }
    }

    fn stats(&self) -> FlowStats {
        let avg = |sum: f64, w: f64| (w > 0.0).then(|| (sum / w) as f32);
        FlowStats {
            digest: String::new(),
            rtt_avg_ms: avg(self.rtt_sum, self.rtt_w),
            jitter_ms: avg(self.jit_sum, self.jit_w),
            loss_ratio: avg(self.loss_sum, self.loss_w),
            ..self.s.clone()
        }
    }
}

#[derive(Debug)]
struct Session {
    key: SessionKey,
    id: String,
    app_name: Option<String>,
    client_os: Option<String>,
    client_agent: Option<String>,
    start_ns: u64,
    last_ns: u64,
    seq: u32,
    started: bool,
    active: Vec<TwinKey>,
    members: u32,
    ended: StatsAcc,
    acc: FlowWindow,
    win_start: u64,
    win_bytes_mark: u64,
    next_report: u64,
    series: Vec<QoeSample>,
    video: Option<VideoSession>,
    idle_since: Option<u64>,
}

/// Series samples held per report at most.
const MAX_SERIES: usize = 256;
/// Windows closed one by one after a jump in capture time, at most; beyond, the session skips.
const MAX_CATCH_UP: u64 = 64;

/// What a flow brings when it joins a session.
#[derive(Debug, Clone)]
pub struct Joining<'a> {
    /// Client address.
    pub client: IpAddr,
    /// Provider id.
    pub provider: &'a str,
    /// App type.
    pub app_type: AppType,
    /// App name.
    pub app_name: Option<String>,
    /// Client OS.
    pub client_os: Option<String>,
    /// Client agent.
    pub client_agent: Option<String>,
    /// The flow.
    pub flow: TwinKey,
    /// The flow's first packet, ns.
    pub first_ns: u64,
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    cfg: SessionConfig,
    tap_id: String,
    by_key: HashMap<SessionKey, u64>,
    /// Conferencing and VoIP sessions by client (for [`Sessions::live_call_of`]).
    calls: HashMap<IpAddr, Vec<u64>>,
    map: HashMap<u64, Session>,
    next: u64,
    events: Vec<SessionEvent>,
    pending_start: bool,
    /// Counters.
    pub counters: SessionCounters,
}

fn is_call(t: AppType) -> bool {
    matches!(t, AppType::Conferencing | AppType::Voip)
}

fn ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

impl Sessions {
    /// An empty table.
    pub fn new(cfg: SessionConfig, tap_id: &str) -> Self {
        Sessions {
            cfg,
            tap_id: tap_id.to_string(),
            by_key: HashMap::new(),
            calls: HashMap::new(),
            map: HashMap::new(),
            next: 1,
            events: Vec::new(),
            pending_start: false,
            counters: SessionCounters::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// A classified flow joins (or opens) its session at `now`; returns the session handle and
    /// id, or `None` when the tables are full.
    pub fn join(&mut self, j: Joining<'_>, now: u64) -> Option<(u64, String)> {
        let key = SessionKey {
            client: j.client,
            provider: j.provider.to_string(),
            app_type: j.app_type,
        };
        let h = match self.by_key.get(&key) {
            Some(&h) => h,
            None => {
                if self.map.len() >= self.cfg.max_sessions {
                    self.counters.full += 1;
                    return None;
                }
                let h = self.next;
                self.next += 1;
                let start = j.first_ns.min(now);
                let video = matches!(j.app_type, AppType::VideoStreaming | AppType::LiveStreaming)
                    .then(|| {
                        VideoSession::new(
                            &self.cfg.video,
                            Some(j.provider),
                            j.app_type == AppType::LiveStreaming,
                        )
                    });
                let id = AppSession::session_id_for(j.client, j.provider, j.app_type, ms(start));
                if is_call(j.app_type) {
                    self.calls.entry(j.client).or_default().push(h);
                }
                self.by_key.insert(key.clone(), h);
                self.map.insert(
                    h,
                    Session {
                        key,
                        id,
                        app_name: None,
                        client_os: None,
                        client_agent: None,
                        start_ns: start,
                        last_ns: now,
                        seq: 0,
                        started: false,
                        active: Vec::new(),
                        members: 0,
                        ended: StatsAcc::default(),
                        acc: FlowWindow::default(),
                        win_start: start,
                        win_bytes_mark: 0,
                        next_report: start.saturating_add(self.cfg.report_ns),
                        series: Vec::new(),
                        video,
                        idle_since: None,
                    },
                );
                self.pending_start = true;
                self.counters.started += 1;
                h
            }
        };
        let s = self.map.get_mut(&h)?;
        if s.active.len() >= self.cfg.max_members {
            self.counters.members_full += 1;
            return None;
        }
        s.active.push(j.flow);
        s.members = s.members.saturating_add(1);
        s.idle_since = None;
        s.last_ns = s.last_ns.max(now);
        s.app_name = s.app_name.take().or(j.app_name);
        s.client_os = s.client_os.take().or(j.client_os);
        s.client_agent = s.client_agent.take().or(j.client_agent);
        Some((h, s.id.clone()))
    }

    /// One packet of a member flow (`flow` the canonical key hash; lengths as in
    /// [`VideoSession::packet`]).
    pub fn packet(&mut self, h: u64, now: u64, flow: u64, up: bool, ip_len: u32, payload: u32) {
        if let Some(s) = self.map.get_mut(&h) {
            s.last_ns = s.last_ns.max(now);
            if let Some(v) = &mut s.video {
                v.packet(now, flow, up, ip_len, payload);
            }
        }
    }

    /// A member flow ended with these final counters and its last QoE window.
    pub fn flow_ended(&mut self, h: u64, k: &TwinKey, stats: &FlowStats, w: &FlowWindow, now: u64) {
        let Some(s) = self.map.get_mut(&h) else {
            return;
        };
        if let Some(i) = s.active.iter().position(|x| x == k) {
            s.active.swap_remove(i);
        }
        s.ended.add(stats, false);
        s.acc.merge(w);
        if s.active.is_empty() {
            s.idle_since = Some(now);
        }
    }

    /// The one live conferencing or VoIP session of `client` at `now` (started at or before it),
    /// as (provider, app type); `None` when there is none or when sessions of two providers are
    /// live (the evidence would be ambiguous). What a STUN/TURN-relayed media flow without a
    /// provider of its own joins (see the pipeline's `join_session`).
    pub fn live_call_of(&self, client: IpAddr, now: u64) -> Option<(String, AppType)> {
        let mut found: Option<&Session> = None;
        let calls = self.calls.get(&client)?;
        for s in calls.iter().filter_map(|h| self.map.get(h)) {
            if s.start_ns > now {
                continue;
            }
            match found {
                Some(f) if f.key.provider != s.key.provider => return None,
                // The same provider's conferencing and VoIP sessions: the older one.
                Some(f)
                    if (f.start_ns, f.key.app_type as u8) <= (s.start_ns, s.key.app_type as u8) => {
                }
                _ => found = Some(s),
            }
        }
        found.map(|s| (s.key.provider.clone(), s.key.app_type))
    }

    /// Moves the sessions to `now`: start reports of new sessions, windows and reports due,
    /// sessions ended.
    pub fn tick(&mut self, now: u64, flows: &mut dyn MemberFlows) {
        if self.pending_start {
            self.pending_start = false;
            let mut new: Vec<u64> = self
                .map
                .iter()
                .filter(|(_, s)| !s.started)
                .map(|(h, _)| *h)
                .collect();
            new.sort_unstable();
            for h in new {
                self.report(h, RecordState::Start, now, flows);
            }
        }
        let mut due: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, s)| {
                now >= s.win_start.saturating_add(self.cfg.window_ns)
                    || now >= s.next_report
                    || s.idle_since
                        .is_some_and(|t| now.saturating_sub(t) >= self.cfg.linger_ns)
            })
            .map(|(h, _)| *h)
            .collect();
        due.sort_unstable();
        for h in due {
            self.close_windows(h, now, flows);
            let Some(s) = self.map.get_mut(&h) else {
                continue;
            };
            if s.idle_since
                .is_some_and(|t| now.saturating_sub(t) >= self.cfg.linger_ns)
            {
                self.end(h, flows);
            } else if now >= s.next_report {
                s.next_report = if now - s.next_report >= self.cfg.report_ns {
                    now.saturating_add(self.cfg.report_ns)
                } else {
                    s.next_report + self.cfg.report_ns
                };
                self.report(h, RecordState::Update, now, flows);
            }
        }
    }

    /// End of input (after every flow was reported): ends every session.
    pub fn finish(&mut self, flows: &mut dyn MemberFlows) {
        let mut all: Vec<u64> = self.map.keys().copied().collect();
        all.sort_unstable();
        for h in all {
            if let Some(s) = self.map.get(&h) {
                if !s.started {
                    let t = s.last_ns;
                    self.report(h, RecordState::Start, t, flows);
                }
            }
            self.end(h, flows);
        }
    }

    /// A session opened since the last [`Sessions::tick`] waits for its start report.
    pub fn has_pending_start(&self) -> bool {
        self.pending_start
    }

    /// Takes what the layer produced so far.
    pub fn take_events(&mut self) -> std::vec::Drain<'_, SessionEvent> {
        self.events.drain(..)
    }

    fn end(&mut self, h: u64, flows: &mut dyn MemberFlows) {
        let Some(s) = self.map.get(&h) else {
            return;
        };
        // The last window: to the session's last activity.
        if s.last_ns > s.win_start {
            let end = s.last_ns;
            self.close_window(h, end, flows);
        }
        let t = self.map.get(&h).map_or(0, |s| s.last_ns);
        self.report(h, RecordState::End, t, flows);
        if let Some(s) = self.map.remove(&h) {
            self.by_key.remove(&s.key);
            if let Some(v) = self.calls.get_mut(&s.key.client) {
                v.retain(|x| *x != h);
                if v.is_empty() {
                    self.calls.remove(&s.key.client);
                }
            }
        }
        self.counters.ended += 1;
    }

    fn close_windows(&mut self, h: u64, now: u64, flows: &mut dyn MemberFlows) {
        let w = self.cfg.window_ns.max(1);
        for _ in 0..MAX_CATCH_UP {
            let Some(s) = self.map.get(&h) else {
                return;
            };
            let end = s.win_start.saturating_add(w);
            if now < end {
                return;
            }
            self.close_window(h, end, flows);
        }
        // Far behind (a jump in capture time): skip to the window holding `now`.
        if let Some(s) = self.map.get_mut(&h) {
            if now >= s.win_start.saturating_add(w) {
                s.win_start = now - (now - s.win_start) % w;
            }
        }
    }

    fn network(s: &Session, now: u64, flows: &dyn MemberFlows) -> StatsAcc {
        let mut acc = s.ended.clone();
        for k in &s.active {
            if let Some(f) = flows.stats(k, now) {
                acc.add(&f, true);
            }
        }
        acc
    }

    fn close_window(&mut self, h: u64, end: u64, flows: &mut dyn MemberFlows) {
        let Some(s) = self.map.get_mut(&h) else {
            return;
        };
        let mut w = std::mem::take(&mut s.acc);
        for k in &s.active {
            if let Some(x) = flows.take_window(k, end) {
                w.merge(&x);
            }
        }
        let start = s.win_start;
        let total = Self::network(s, end, flows).s.total_bytes;
        let bytes = total.saturating_sub(s.win_bytes_mark);
        s.win_bytes_mark = total;
        s.win_start = end;
        let qoe = window_qoe(s.key.app_type, &w, start, end, s.video.as_mut());
        let v = qoe.video.as_ref();
        let iv = SessionInterval {
            session_id: s.id.clone(),
            interval_start_ms: ms(start),
            interval_end_ms: ms(end),
            app_type: s.key.app_type,
            provider: s.key.provider.clone(),
            client_addr: s.key.client,
            member_flows: s.members,
            bytes,
            resolution_height: v.and_then(|v| v.height_px),
            buffer_state: v.map(|v| v.buffer_state),
            stalled: v.map(|v| v.stalls > 0 || v.buffer_state == BufferState::Stalled),
            qoe: qoe.clone(),
            mos_inputs: is_call(s.key.app_type)
                .then(|| mos::estimate(&w.rtp, &w.rtt))
                .flatten(),
        };
        // A window in which no member flow carried a packet (an idle call, a paused player, the
        // capture-time gap between concatenated captures) measured nothing: it is still a line
        // of `supernetflow qoe`, but not a sample of the report's series (a video stall counted
        // in it is kept, though the estimator reports a buffer that ran dry without traffic as
        // `unknown`, not as a stall).
        let measured = bytes > 0 || qoe.video.as_ref().is_some_and(|v| v.stalls > 0);
        if measured && !qoe.is_empty() && s.series.len() < MAX_SERIES {
            s.series.push(QoeSample {
                ts_ms: ms(end),
                flow_key: None,
                qoe,
            });
        }
        self.counters.intervals += 1;
        self.events.push(SessionEvent::Interval(Box::new(iv)));
    }

    fn report(&mut self, h: u64, state: RecordState, now: u64, flows: &mut dyn MemberFlows) {
        let tap = self.tap_id.clone();
        let Some(s) = self.map.get_mut(&h) else {
            return;
        };
        s.started = true;
        let net = Self::network(s, now, flows);
        let mut r = AppSession {
            schema_version: schemas::SCHEMA_VERSION,
            record_id: String::new(),
            session_id: String::new(),
            state,
            seq: s.seq,
            client_addr: s.key.client,
            provider: s.key.provider.clone(),
            app_type: s.key.app_type,
            app_name: s.app_name.clone(),
            client_os: s.client_os.clone(),
            client_agent: s.client_agent.clone(),
            tap: Some(tap),
            start_ms: ms(s.start_ns),
            last_ms: ms(s.last_ns),
            member_flows: s.members,
            network: SessionNetwork {
                stats: net.stats(),
                ..SessionNetwork::default()
            },
            qoe_series: std::mem::take(&mut s.series),
        };
        r.set_ids();
        s.seq = s.seq.saturating_add(1);
        self.counters.reports += 1;
        self.events.push(SessionEvent::Report(Box::new(r)));
    }
}

/// The QoE block of `app_type` over `[start, end)` from what the window measured (`video`: the
/// session's video estimator, for video types).
pub fn window_qoe(
    app_type: AppType,
    w: &FlowWindow,
    start: u64,
    end: u64,
    video: Option<&mut VideoSession>,
) -> Qoe {
    let secs = end.saturating_sub(start) as f64 / 1e9;
    let mut qoe = Qoe::default();
    match app_type {
        AppType::VideoStreaming | AppType::LiveStreaming => {
            qoe.video = video.map(|v| v.interval(start, end));
        }
        AppType::Gaming | AppType::CloudGaming => {
            let frames = w.rtp.video.then_some(w.rtp.frames);
            qoe.gaming = Some(w.game.qoe(start, end, &w.rtt, frames, loss(&w.rtp)));
        }
        AppType::Conferencing | AppType::Voip => {
            qoe.conferencing = Some(conferencing(w, start, end, secs));
        }
        _ => {}
    }
    qoe
}

fn loss(r: &RtpWindow) -> Option<f32> {
    (r.expected > 0)
        .then(|| (r.expected.saturating_sub(r.received) as f64 / r.expected as f64) as f32)
}

fn conferencing(w: &FlowWindow, start: u64, end: u64, secs: f64) -> ConferencingQoe {
    let r = &w.rtp;
    let mut media = Vec::new();
    for (bit, name) in [(1u8, "audio"), (2, "video"), (4, "screen_share")] {
        if r.kinds & bit != 0 {
            media.push(name.to_string());
        }
    }
    ConferencingQoe {
        window_start_ms: ms(start),
        window_end_ms: ms(end),
        jitter_ms: (r.jitter_n > 0).then(|| (r.jitter_sum_ms / r.jitter_n as f64) as f32),
        loss_ratio: loss(r),
        frame_rate: (r.video && secs > 0.0).then(|| (r.frames as f64 / secs) as f32),
        stutter_events: r.stutters,
        dropouts: r.dropouts,
        mos: mos::estimate(r, &w.rtt).map(|m| m.mos as f32),
        media,
        streams: r.streams,
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
