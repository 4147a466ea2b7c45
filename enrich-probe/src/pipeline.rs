//! The offline pipeline: frames in, [`Output`]s out. The same steps the live path runs on what
//! the kernel program sends: account (the twin), inspect what reaches user space, classify, set
//! the flow's verdict, and report flows when they end, expire, or the input ends, plus
//! Netify-style `flow_stats` every interval of capture time.
//!
//! Classified flows whose QoE is measured keep sending their headers (verdict 2, see
//! [`crate::qoe`]); the QoE estimators see only what is sent, like the live path. Flows with a
//! provider join application sessions ([`crate::qoe::session`]), which report at start, every
//! 30 s, and at the end.
//!
//! Capture time only moves forward here: the pipeline's clock is the largest timestamp seen, so a
//! stitched capture whose timestamps jump back does not expire or report anything early.

use crate::classify::signatures::Signatures;
use crate::classify::{classify, Classification, Server};
use crate::dpi::dns::DnsCache;
use crate::dpi::FlowDpi;
use crate::flow::{
    Entry, FlowState, FlowTable, LinkType, Outcome, Parsed, SendConfig, TwinKey,
    VERDICT_CLASSIFIED, VERDICT_CLASSIFYING, VERDICT_HEADERS,
};
use crate::qoe::session::{
    window_qoe, Joining, MemberFlows, SessionConfig, SessionEvent, SessionInterval, Sessions,
};
use crate::qoe::{wants_headers, FlowKind, FlowQoe, FlowWindow};
use crate::record::{flow_hash, flow_stats, stats_of, tap_record, FlowStatsEvent};
use schemas::{AppSession, DetectionMethod, FlowStats, RecordState, TapRecord};
use serde::Serialize;

/// Settings of the pipeline.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Tap id written into every record.
    pub tap_id: String,
    /// What the kernel program sends (first packets, snap length, header bytes).
    pub send: SendConfig,
    /// Flows held at most; the oldest are evicted (and reported) beyond it.
    pub max_flows: usize,
    /// A flow with no packet for this long is reported and forgotten, ns.
    pub idle_timeout_ns: u64,
    /// A TCP flow that saw RST, or FIN both ways, is reported after this much quiet, ns.
    pub close_linger_ns: u64,
    /// `flow_stats` interval, ns (Netify: 15 s); 0 turns them off.
    pub stats_interval_ns: u64,
    /// Addresses held by the DNS name cache.
    pub dns_cache: usize,
    /// Packets inspected before an unclassified flow is given up on (verdict 3).
    pub max_inspect: u32,
    /// RTT samples wanted per TCP/QUIC flow: the flow sends its headers until it has them (or
    /// `rtt_max_packets` packets); 0 measures only what the first packets give.
    pub rtt_samples: u64,
    /// Packets after which a TCP/QUIC flow stops sending headers for RTT.
    pub rtt_max_packets: u64,
    /// Application sessions.
    pub session: SessionConfig,
    /// Classified flows whose QoE or RTT is measured keep sending headers (verdict 2); `false`
    /// sends nothing after classification (verdict 3), and QoE comes from the first packets only.
    pub qoe_headers: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            tap_id: "offline".into(),
            send: SendConfig::default(),
            max_flows: 262_144,
            idle_timeout_ns: 120_000_000_000,
            close_linger_ns: 5_000_000_000,
            stats_interval_ns: 15_000_000_000,
            dns_cache: 65_536,
            max_inspect: 32,
            rtt_samples: 256,
            rtt_max_packets: 4096,
            session: SessionConfig::default(),
            qoe_headers: true,
        }
    }
}

/// What user space keeps per flow besides the kernel's counters.
#[derive(Debug, Clone, Default)]
pub struct FlowUser {
    /// DPI state.
    pub dpi: FlowDpi,
    /// Classification so far.
    pub class: Classification,
    /// Name cached for the server address when the flow was classified.
    pub dns_name: Option<String>,
    /// Packets the flow had when it was classified.
    pub detection_packets: u32,
    /// RST, or FIN both ways, seen.
    pub closing: bool,
    /// Bytes per direction and time at the last `flow_stats` (rates are over the interval).
    pub stats_mark: ([u64; 2], u64),
    /// Client SYN time, ns.
    pub syn_ns: Option<u64>,
    /// Handshake round trip (SYN → SYN-ACK as seen by the tap), ns.
    pub rtt_ns: Option<u64>,
    /// The pipeline's clock when the flow's last packet came: idleness is measured on it, so a
    /// flow whose packets carry old timestamps (a stitched capture) ages from its arrival.
    pub touched_ns: u64,
    /// QoE estimators.
    pub qoe: FlowQoe,
    /// The session the flow joined: handle and id.
    pub session: Option<(u64, String)>,
    /// Canonical key hash (set when the flow joins a session).
    pub flow_hash: u64,
    /// Live path: tap records sent for the flow so far (the next one's `seq`) and when the
    /// last one was, ns.
    pub reports: u32,
    /// Live path: time of the last update record, ns (0: none yet).
    pub reported_ns: u64,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A flow's report.
    Tap(Box<TapRecord>),
    /// A periodic `flow_stats` line.
    FlowStats(Box<FlowStatsEvent>),
    /// An application session's report (start, update, end).
    Session(Box<AppSession>),
    /// A session's closed QoE window (what `supernetflow qoe` prints).
    Interval(Box<SessionInterval>),
}

/// A reported flow's QoE estimators, kept for comparisons with independent decoders.
#[derive(Debug, Clone)]
pub struct KeptQoe {
    /// The flow.
    pub key: TwinKey,
    /// Direction of the client.
    pub client_dir: u8,
    /// Its estimators as they were when it was reported.
    pub qoe: FlowQoe,
}

/// Counters of the pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PipelineCounters {
    /// Tap records written.
    pub tap_records: u64,
    /// `flow_stats` lines written.
    pub flow_stats: u64,
    /// Flows reported because they went idle.
    pub expired_idle: u64,
    /// Flows reported after RST/FIN.
    pub expired_closed: u64,
    /// Flows reported at the end of the input.
    pub flushed: u64,
    /// Packets whose timestamp was earlier than the clock.
    pub time_went_back: u64,
    /// Flows reported with a provider.
    pub classified: u64,
    /// DNS cache addresses dropped because it was full.
    pub dns_evicted: u64,
    /// Live path: periodic `update` tap records of active flows.
    pub tap_updates: u64,
    /// Live path: flows user space forgot because the kernel's map no longer held them
    /// (LRU eviction under a full map; their counters went with them).
    pub live_forgotten: u64,
}

/// The offline pipeline.
#[derive(Debug)]
pub struct Pipeline {
    cfg: ProbeConfig,
    sigs: Signatures,
    table: FlowTable<FlowUser>,
    dns: DnsCache,
    clock_ns: u64,
    next_sweep_ns: u64,
    next_stats_ns: u64,
    /// Live path: what user space keeps per kernel flow, with the flow's kernel state as of its
    /// last packet or scan.
    live: std::collections::HashMap<TwinKey, Entry<FlowUser>>,
    /// Application sessions.
    sessions: Sessions,
    next_session_tick_ns: u64,
    /// Reported flows' QoE state, kept when asked ([`Pipeline::keep_flow_qoe`]).
    kept: Option<Vec<KeptQoe>>,
    /// Counters.
    pub counters: PipelineCounters,
}

const SWEEP_EVERY_NS: u64 = 1_000_000_000;

/// What user space's per-packet step needs besides the flow.
struct UserCtx<'a> {
    sigs: &'a Signatures,
    dns: &'a mut DnsCache,
    sessions: &'a mut Sessions,
    cfg: &'a ProbeConfig,
    clock_ns: u64,
}

/// User space's part of one accounted packet, the same for the offline and the live path: TCP
/// handshake timing and close detection on every packet; DPI, classification and the new verdict
/// when the packet was sent to user space (`sent`: the frame and how many of its bytes).
fn user_step(
    mut ctx: UserCtx<'_>,
    state: &FlowState,
    u: &mut FlowUser,
    p: &Parsed,
    ts_ns: u64,
    sent: Option<(&[u8], usize)>,
) -> Option<u8> {
    let from_client = p.dir == state.client_dir;
    u.touched_ns = ctx.clock_ns;
    if p.is_tcp {
        if from_client && p.flags & 0x12 == 0x02 {
            u.syn_ns.get_or_insert(ts_ns);
        } else if !from_client && p.flags & 0x12 == 0x12 && u.rtt_ns.is_none() {
            u.rtt_ns = u.syn_ns.and_then(|s| ts_ns.checked_sub(s));
        }
        let f = state.tcp_flags;
        u.closing = (f[0] | f[1]) & 0x04 != 0 || (f[0] & f[1]) & 0x01 != 0;
    }
    let (frame, cap) = sent?;
    let kind = FlowKind {
        app_type: u.class.app_type,
        quic: u.dpi.quic,
    };
    u.qoe.packet(p, frame, cap, from_client, ts_ns, kind);
    if let Some((h, _)) = &u.session {
        let payload = if p.is_tcp {
            p.payload
        } else {
            p.l4_len.saturating_sub(u32::from(p.l4_hdr))
        };
        ctx.sessions
            .packet(*h, ts_ns, u.flow_hash, from_client, p.ip_len, payload);
    }
    if state.verdict != VERDICT_HEADERS {
        classify_step(&mut ctx, state, u, p, (frame, cap), from_client);
    }
    let done = u.dpi.has_name() && u.class.provider.is_some()
        || u.dpi.sni.is_some()
        || u.dpi.inspected >= ctx.cfg.max_inspect;
    // A flow joins its session as soon as it has a provider (media flows are classified by
    // their RTP/Zoom headers before DPI is done with them).
    if u.session.is_none() && u.class.app_type != schemas::AppType::Unknown {
        join_session(&mut ctx, state, u, p);
    }
    if !done {
        return Some(VERDICT_CLASSIFYING);
    }
    let media = u.dpi.rtp_packets > 0 || u.dpi.zoom_media();
    let rtt_flow = p.is_tcp || u.dpi.quic;
    Some(
        if ctx.cfg.qoe_headers
            && wants_headers(
                u.class.app_type,
                media,
                rtt_flow,
                &u.qoe,
                state.total_packets(),
                ctx.cfg.rtt_samples,
                ctx.cfg.rtt_max_packets,
            )
        {
            VERDICT_HEADERS
        } else {
            VERDICT_CLASSIFIED
        },
    )
}

/// DPI and classification of one packet sent while the flow is still being classified.
fn classify_step(
    ctx: &mut UserCtx<'_>,
    state: &FlowState,
    u: &mut FlowUser,
    p: &Parsed,
    (frame, cap): (&[u8], usize),
    from_client: bool,
) {
    u.dpi.inspect(frame, cap, p, from_client, ctx.dns);
    // Inherited from the client's call (see `inherit_call`): what DPI finds later does not undo it.
    if u.class.method == DetectionMethod::Session {
        return;
    }
    let named = matches!(
        u.class.method,
        DetectionMethod::Sni | DetectionMethod::HttpHost
    ) || (u.class.method == DetectionMethod::Dns && u.dpi.dns_qname.is_some());
    if named {
        return;
    }
    let server = state.client_dir ^ 1;
    let (addr, port) = p.key.sender(server);
    let client_port = p.key.sender(server ^ 1).1;
    if u.dns_name.is_none() {
        u.dns_name = ctx.dns.get(&addr).map(str::to_string);
    }
    let c = classify(
        ctx.sigs,
        &u.dpi,
        Server {
            protocol: p.key.protocol,
            addr,
            port,
            client_port,
        },
        u.dns_name.as_deref(),
    );
    if c != u.class && c.app_type != schemas::AppType::Unknown {
        u.detection_packets = state.total_packets().min(u64::from(u32::MAX)) as u32;
        u.class = c;
    }
}

/// RTP packets a STUN/TURN flow must have carried (in one stream) before it may join a call.
const RELAYED_MEDIA_PACKETS: u64 = 8;

/// A STUN/TURN-carried media flow without a provider (a TURN relay on 3478 whose address is in
/// no provider's prefixes) inherits the provider of its client's live call: the flow saw STUN
/// (its relay allocation or binding checks), carries RTP (one stream of at least
/// [`RELAYED_MEDIA_PACKETS`] packets), is classified conferencing or VoIP, and its client has
/// exactly one provider's conferencing or VoIP session live when the media shows (two providers'
/// calls at once: no guess). The flow then joins that session (its audio counts in the
/// session's windows and MOS) and its record says provider and app type with method `session`.
fn inherit_call(ctx: &UserCtx<'_>, state: &FlowState, u: &mut FlowUser, p: &Parsed) {
    if u.class.provider.is_some()
        || !matches!(
            u.class.app_type,
            schemas::AppType::Conferencing | schemas::AppType::Voip
        )
        || u.dpi.stun_packets == 0
    {
        return;
    }
    let media = u.qoe.rtp.as_deref().is_some_and(|r| {
        r.streams
            .iter()
            .any(|s| s.received >= RELAYED_MEDIA_PACKETS)
    });
    if !media {
        return;
    }
    let client = p.key.sender(state.client_dir).0;
    let Some((provider, app_type)) = ctx.sessions.live_call_of(client, ctx.clock_ns) else {
        return;
    };
    let Some(i) = ctx.sigs.providers.iter().position(|x| x.id == provider) else {
        return;
    };
    u.class.provider = Some(i);
    u.class.app_type = app_type;
    u.class.method = DetectionMethod::Session;
}

/// A classified flow with a provider joins its client's session of that provider and type.
fn join_session(ctx: &mut UserCtx<'_>, state: &FlowState, u: &mut FlowUser, p: &Parsed) {
    inherit_call(ctx, state, u, p);
    let Some(prov) = u.class.provider.and_then(|i| ctx.sigs.providers.get(i)) else {
        return;
    };
    u.flow_hash = flow_hash(&p.key);
    let j = Joining {
        client: p.key.sender(state.client_dir).0,
        provider: &prov.id,
        app_type: u.class.app_type,
        app_name: Some(prov.app_name.clone().unwrap_or_else(|| prov.name.clone())),
        client_os: crate::classify::platform::client_os(&u.dpi),
        client_agent: crate::classify::platform::client_agent(&u.dpi),
        flow: p.key,
        first_ns: state.first_seen_ns(),
    };
    u.session = ctx.sessions.join(j, ctx.clock_ns);
}

/// The flow table as the session layer sees it.
struct TableView<'a>(&'a mut FlowTable<FlowUser>);

impl MemberFlows for TableView<'_> {
    fn stats(&self, k: &TwinKey, now_ns: u64) -> Option<FlowStats> {
        self.0.get(k).map(|e| stats_of("", e, now_ns))
    }
    fn take_window(&mut self, k: &TwinKey, now_ns: u64) -> Option<FlowWindow> {
        self.0.get_mut(k).map(|e| e.user.qoe.take_window(now_ns))
    }
}

/// The live path's flows as the session layer sees them.
struct LiveView<'a>(&'a mut std::collections::HashMap<TwinKey, Entry<FlowUser>>);

impl MemberFlows for LiveView<'_> {
    fn stats(&self, k: &TwinKey, now_ns: u64) -> Option<FlowStats> {
        self.0.get(k).map(|e| stats_of("", e, now_ns))
    }
    fn take_window(&mut self, k: &TwinKey, now_ns: u64) -> Option<FlowWindow> {
        self.0.get_mut(k).map(|e| e.user.qoe.take_window(now_ns))
    }
}

impl Pipeline {
    /// A pipeline with these settings and signatures.
    pub fn new(cfg: ProbeConfig, sigs: Signatures) -> Self {
        Pipeline {
            table: FlowTable::new(cfg.max_flows, cfg.send),
            dns: DnsCache::new(cfg.dns_cache),
            sessions: Sessions::new(cfg.session.clone(), &cfg.tap_id),
            next_session_tick_ns: 0,
            kept: None,
            cfg,
            sigs,
            clock_ns: 0,
            next_sweep_ns: 0,
            next_stats_ns: 0,
            live: std::collections::HashMap::new(),
            counters: PipelineCounters::default(),
        }
    }

    /// The flow table (the twin's state; the differential test reads it).
    pub fn table(&self) -> &FlowTable<FlowUser> {
        &self.table
    }

    /// The signatures in use.
    pub fn signatures(&self) -> &Signatures {
        &self.sigs
    }

    /// Runs one frame through the pipeline.
    pub fn packet(&mut self, ts_ns: u64, frame: &[u8], link: LinkType, out: &mut Vec<Output>) {
        if ts_ns < self.clock_ns {
            self.counters.time_went_back += 1;
        }
        self.advance(ts_ns, out);
        let outcome = self.table.account(ts_ns, frame, link);
        for (k, e) in self.table.take_evicted() {
            self.report(&k, e, out);
        }
        let Outcome::Accounted(a) = outcome else {
            return;
        };
        let p = a.parsed;
        let Some(e) = self.table.get_mut(&p.key) else {
            return;
        };
        let sent = a.send.map(|(_, cap)| (frame, cap));
        let ctx = UserCtx {
            sigs: &self.sigs,
            dns: &mut self.dns,
            sessions: &mut self.sessions,
            cfg: &self.cfg,
            clock_ns: self.clock_ns,
        };
        if let Some(v) = user_step(ctx, &e.state, &mut e.user, &p, ts_ns, sent) {
            e.state.verdict = v;
        }
        if self.sessions.has_pending_start() {
            self.session_tick(out);
        }
    }

    /// Runs the session layer at the pipeline's clock and writes what it produced.
    fn session_tick(&mut self, out: &mut Vec<Output>) {
        self.sessions
            .tick(self.clock_ns, &mut TableView(&mut self.table));
        self.drain_sessions(out);
    }

    fn drain_sessions(&mut self, out: &mut Vec<Output>) {
        for ev in self.sessions.take_events() {
            out.push(match ev {
                SessionEvent::Report(r) => Output::Session(r),
                SessionEvent::Interval(i) => Output::Interval(i),
            });
        }
    }

    /// Keeps every reported flow's QoE estimators (per-stream RTP and per-flow RTT figures) for
    /// [`Pipeline::take_kept`]: the tests compare them with tshark's.
    pub fn keep_flow_qoe(&mut self) {
        self.kept.get_or_insert_with(Vec::new);
    }

    /// The flows' QoE estimators kept so far.
    pub fn take_kept(&mut self) -> Vec<KeptQoe> {
        self.kept.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The session layer's counters.
    pub fn session_counters(&self) -> &crate::qoe::session::SessionCounters {
        &self.sessions.counters
    }

    /// Live path, for a packet the kernel program sent to user space (it has already counted it):
    /// DPI and classification of `frame` (the copied bytes, from the Ethernet header), with
    /// `state` the flow's kernel state as it is now. Returns the verdict to write into the
    /// kernel's verdict map, or `None` when the frame does not parse.
    pub fn live_packet(&mut self, ts_ns: u64, frame: &[u8], state: &FlowState) -> Option<u8> {
        self.clock_ns = self.clock_ns.max(ts_ns);
        let p = crate::flow::parse(frame, LinkType::Ethernet).ok()?;
        let e = self.live.entry(p.key).or_insert_with(|| Entry {
            state: *state,
            user: FlowUser::default(),
        });
        e.state = *state;
        let u = &mut e.user;
        let ctx = UserCtx {
            sigs: &self.sigs,
            dns: &mut self.dns,
            sessions: &mut self.sessions,
            cfg: &self.cfg,
            clock_ns: self.clock_ns,
        };
        user_step(ctx, state, u, &p, ts_ns, Some((frame, frame.len())))
    }

    /// Live path, every scan of the kernel's flow map (`flows`: every flow it holds, times
    /// already in Unix ns) at `now_ns`: reports the flows `ended` says are over (state `end`,
    /// with their last QoE window, into their session), an `update` record of every other flow
    /// every `update_interval_ns` (0: never) with the QoE window since its last report,
    /// `flow_stats` lines every `stats_interval_ns` for the flows active in the interval, and the
    /// session layer's start / update / end reports. Returns the keys of the reported-and-ended
    /// flows, for the caller to remove from the kernel's map. User-space state of flows the
    /// kernel no longer holds (evicted from its LRU map) is dropped.
    pub fn live_scan(
        &mut self,
        now_ns: u64,
        flows: &[(TwinKey, FlowState)],
        ended: impl Fn(&FlowState) -> bool,
        update_interval_ns: u64,
        out: &mut Vec<Output>,
    ) -> Vec<TwinKey> {
        self.clock_ns = self.clock_ns.max(now_ns);
        let now = self.clock_ns;
        let held: std::collections::HashSet<TwinKey> = flows.iter().map(|(k, _)| *k).collect();
        let before = self.live.len();
        self.live.retain(|k, _| held.contains(k));
        self.counters.live_forgotten += (before - self.live.len()) as u64;
        let stats_on = self.cfg.stats_interval_ns > 0;
        let stats_due = stats_on && self.next_stats_ns != 0 && now >= self.next_stats_ns;
        if stats_on && (self.next_stats_ns == 0 || stats_due) {
            self.next_stats_ns = now.saturating_add(self.cfg.stats_interval_ns);
        }
        let since = now.saturating_sub(self.cfg.stats_interval_ns);
        let mut gone = Vec::new();
        for (k, st) in flows {
            let e = self.live.entry(*k).or_insert_with(|| Entry {
                state: *st,
                user: FlowUser::default(),
            });
            e.state = *st;
            if ended(st) {
                gone.push(*k);
                continue;
            }
            let last = st.last_seen_ns();
            if stats_due && last >= since {
                out.push(Output::FlowStats(Box::new(flow_stats(
                    &self.cfg.tap_id,
                    k,
                    e,
                    now,
                ))));
                e.user.stats_mark = (st.bytes, now);
                self.counters.flow_stats += 1;
            }
            let from = if e.user.reported_ns == 0 {
                st.first_seen_ns()
            } else {
                e.user.reported_ns
            };
            if update_interval_ns > 0 && now.saturating_sub(from) >= update_interval_ns {
                if let Some(r) = self.live_record(k, RecordState::Update, now) {
                    self.counters.tap_updates += 1;
                    out.push(Output::Tap(Box::new(r)));
                }
            }
        }
        for k in &gone {
            let Some(r) = self.live_record(k, RecordState::End, now) else {
                continue;
            };
            self.live.remove(k);
            self.counters.tap_records += 1;
            if r.app.provider.is_some() {
                self.counters.classified += 1;
            }
            out.push(Output::Tap(Box::new(r)));
        }
        self.sessions.tick(now, &mut LiveView(&mut self.live));
        self.drain_sessions(out);
        gone
    }

    /// Live path at shutdown: every flow the kernel still holds reported as ended, then the
    /// sessions closed.
    pub fn live_finish(
        &mut self,
        now_ns: u64,
        flows: &[(TwinKey, FlowState)],
        out: &mut Vec<Output>,
    ) {
        self.live_scan(now_ns, flows, |_| true, 0, out);
        self.sessions.finish(&mut LiveView(&mut self.live));
        self.drain_sessions(out);
    }

    /// A live flow's tap record in `state`, with the QoE window since its last report (the
    /// window is taken: the next report starts where this one ends).
    fn live_record(&mut self, k: &TwinKey, state: RecordState, now: u64) -> Option<TapRecord> {
        let e = self.live.get_mut(k)?;
        let mut r = tap_record(&self.cfg.tap_id, &self.sigs, k, e);
        let start = e.user.qoe.window_start_ns.max(e.state.first_seen_ns());
        let end = match state {
            RecordState::End => e.state.last_seen_ns().max(start),
            _ => now.max(start),
        };
        let w = e.user.qoe.take_window(end);
        r.qoe = window_qoe(r.app.app_type, &w, start, end, None);
        r.state = state;
        r.seq = e.user.reports;
        e.user.reports = e.user.reports.saturating_add(1);
        e.user.reported_ns = now;
        r.set_record_id();
        if let (RecordState::End, Some((h, _))) = (state, &e.user.session) {
            // The flow's last window goes into its session before the flow is forgotten.
            self.sessions.flow_ended(*h, k, &r.stats, &w, now);
            e.user.session = None;
        }
        Some(r)
    }

    /// Moves the clock to `ts_ns` (never back): expires flows and writes `flow_stats` when due.
    fn advance(&mut self, ts_ns: u64, out: &mut Vec<Output>) {
        if ts_ns <= self.clock_ns {
            return;
        }
        self.clock_ns = ts_ns;
        if self.next_stats_ns == 0 && self.cfg.stats_interval_ns > 0 {
            self.next_stats_ns = ts_ns.saturating_add(self.cfg.stats_interval_ns);
        }
        if self.cfg.stats_interval_ns > 0 && ts_ns >= self.next_stats_ns {
            self.stats(out);
            let i = self.cfg.stats_interval_ns;
            // A jump over many intervals writes one set of lines, not one per missed interval.
            self.next_stats_ns = if ts_ns - self.next_stats_ns >= i {
                ts_ns.saturating_add(i)
            } else {
                self.next_stats_ns + i
            };
        }
        if ts_ns >= self.next_sweep_ns {
            self.next_sweep_ns = ts_ns.saturating_add(SWEEP_EVERY_NS);
            let (idle, linger, now) = (
                self.cfg.idle_timeout_ns,
                self.cfg.close_linger_ns,
                self.clock_ns,
            );
            let gone = self.table.remove_where(|_, e| {
                let quiet = now.saturating_sub(e.user.touched_ns);
                quiet > idle || (e.user.closing && quiet > linger)
            });
            for (k, e) in gone {
                if e.user.closing {
                    self.counters.expired_closed += 1;
                } else {
                    self.counters.expired_idle += 1;
                }
                self.report(&k, e, out);
            }
        }
        if ts_ns >= self.next_session_tick_ns {
            let c = self.sessions.config();
            let every = (c.window_ns.min(c.report_ns) / 10).clamp(1_000_000, SWEEP_EVERY_NS);
            self.next_session_tick_ns = ts_ns.saturating_add(every);
            self.session_tick(out);
        }
    }

    fn stats(&mut self, out: &mut Vec<Output>) {
        let now = self.clock_ns;
        let since = now.saturating_sub(self.cfg.stats_interval_ns);
        let tap_id = self.cfg.tap_id.clone();
        let mut n = 0;
        for (k, e) in self.table.iter_mut() {
            if e.user.touched_ns < since {
                continue;
            }
            out.push(Output::FlowStats(Box::new(flow_stats(&tap_id, k, e, now))));
            e.user.stats_mark = (e.state.bytes, now);
            n += 1;
        }
        self.counters.flow_stats += n;
    }

    fn report(&mut self, k: &TwinKey, mut e: Entry<FlowUser>, out: &mut Vec<Output>) {
        let mut r = tap_record(&self.cfg.tap_id, &self.sigs, k, &e);
        // The flow's last QoE window: into its record, then into its session.
        let start = e.user.qoe.window_start_ns.max(e.state.first_seen_ns());
        let end = e.state.last_seen_ns().max(start);
        let w = e.user.qoe.take_window(end);
        if let Some(kept) = &mut self.kept {
            kept.push(KeptQoe {
                key: *k,
                client_dir: e.state.client_dir,
                qoe: e.user.qoe.clone(),
            });
        }
        r.qoe = window_qoe(r.app.app_type, &w, start, end, None);
        if let Some((h, _)) = &e.user.session {
            self.sessions
                .flow_ended(*h, k, &r.stats, &w, self.clock_ns.max(end));
        }
        self.counters.tap_records += 1;
        if r.app.provider.is_some() {
            self.counters.classified += 1;
        }
        out.push(Output::Tap(Box::new(r)));
    }

    /// End of input: reports every flow still held.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        let mut all = self.table.drain();
        // Deterministic output order: by first packet, then key.
        all.sort_by_key(|(k, e)| (e.state.first_seen_ns(), *k));
        for (k, e) in all {
            self.counters.flushed += 1;
            self.report(&k, e, out);
        }
        self.sessions.finish(&mut TableView(&mut self.table));
        self.drain_sessions(out);
        self.counters.dns_evicted = self.dns.evicted;
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
