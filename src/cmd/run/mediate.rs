//! The mediation stage of `run`, between the collector's decode loop and the sinks' fan-out.
//!
//! ```text
//! decode loop ─► [bounded queue] ─► mediate thread ─┬─ router flow ─► flow_records + join
//!                                                    ├─ tap record  ─► tap_records + join
//!                                                    ├─ join output ─► super_flows
//!                                                    └─ tap session ─► (held for the grace,
//!                                                        router QoS added) ─► app_sessions
//! ```
//!
//! Application sessions from a tap (`probe --export` sends them beside its tap records) get the
//! router side of their Network QoS: the tap records say which flows are a session's members
//! (`session_id`), and the router counters of the super-flows the join emits for those flows are
//! added to the session ([`mediator::join::session::SessionRouterQos`]). A report is held for the
//! join's grace period first, so that its member flows' super-flows are out (and counted) when it
//! is published; at shutdown the held reports follow the join's flush. At most
//! [`MAX_HELD_SESSIONS`] wait; past that the oldest go out early.
//!
//! The collector decodes every exporter alike; a record that carries Super-NetFlow's record-kind
//! element or the tap's marker ([`schemas::ipfix::PEN`]) is one of ours and is turned back into its
//! record: a `TapRecord` from a tap (`supernetflow probe --export`) is published and joined, an
//! application session gets its router QoS (below), a super-flow (another `run`'s IPFIX sink) is
//! published as it came. Router flows are published as decoded *and* joined; the join's super-flows are
//! published when settled or when their grace runs out (the join ticks every second of wall-clock
//! time, also when no record arrives). At shutdown the queue drains, then every router record the
//! join still holds is emitted (matched, partial or unmatched) before the sinks close.

use mediator::fanout::Fanout;
use mediator::join::session::SessionRouterQos;
use mediator::join::{Ahead, JoinConfig, JoinMetrics, Joiner};
use mediator::sink::records::AnyRecord;
use schemas::ipfix::{record_from_flow, Decoded};
use schemas::{AppSession, FlowRecord, RecordState, SuperFlow};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Batches the decode loop may queue ahead of the stage.
pub const QUEUE_BATCHES: usize = 64;

/// The stage hands records to the sinks in batches of at least this many (or what it has after
/// [`FANOUT_LINGER`]): the decode loop's batches follow the UDP receiver's and are often a few
/// datagrams; larger ones make every lane's per-batch work (the queue, a Parquet or Kafka sink's
/// second encoding thread) pay off.
pub const FANOUT_BATCH: usize = 2048;

/// Longest a record waits in the stage for its batch to fill.
pub const FANOUT_LINGER: Duration = Duration::from_millis(50);

/// Most session reports held for the grace period at once.
pub const MAX_HELD_SESSIONS: usize = 100_000;

/// Counters of the stage, shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct StageMetrics {
    /// Router flow records passed on.
    pub router_records: AtomicU64,
    /// Tap records received and decoded.
    pub tap_records: AtomicU64,
    /// Records carrying our elements that did not decode into their record (not published; the
    /// log says why).
    pub tap_invalid: AtomicU64,
    /// Super-flows received as IPFIX (another `run`'s IPFIX sink), published as they came.
    pub relayed: AtomicU64,
    /// Application session reports received (from taps; published with their router QoS).
    pub tap_sessions: AtomicU64,
    /// Session reports published before their grace ran out because too many were held.
    pub sessions_early: AtomicU64,
    /// Batches the decode loop had to wait to hand over (the queue was full).
    pub blocked_sends: AtomicU64,
    /// Time the decode loop waited, ns.
    pub blocked_ns: AtomicU64,
    /// The join's own metrics, as of its last tick.
    pub join: Mutex<JoinMetrics>,
}

impl StageMetrics {
    /// The join metrics of the last tick.
    pub fn join(&self) -> JoinMetrics {
        self.join.lock().map(|g| *g).unwrap_or_default()
    }
}

/// The decode loop's end of the stage.
pub struct StageInput {
    tx: SyncSender<Vec<FlowRecord>>,
    metrics: Arc<StageMetrics>,
}

impl StageInput {
    /// Hands a batch over, waiting (and counting the wait) while the queue is full. Fails when
    /// the stage has stopped.
    pub fn send(&self, batch: Vec<FlowRecord>) -> Result<(), String> {
        match self.tx.try_send(batch) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(batch)) => {
                let t = Instant::now();
                self.metrics.blocked_sends.fetch_add(1, Ordering::Relaxed);
                let r = self
                    .tx
                    .send(batch)
                    .map_err(|_| "the mediation stage stopped".to_string());
                self.metrics
                    .blocked_ns
                    .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                r
            }
            Err(TrySendError::Disconnected(_)) => Err("the mediation stage stopped".into()),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The stage's thread: it hands back the fan-out (to be closed) and how the stage ended.
pub type StageThread = JoinHandle<(Fanout<AnyRecord>, Result<(), String>)>;

/// Starts the stage: it owns the fan-out until the input is dropped, then returns it (drained of
/// the join's state, not closed) from its thread.
pub fn start(
    cfg: JoinConfig,
    fanout: Fanout<AnyRecord>,
    metrics: Arc<StageMetrics>,
) -> std::io::Result<(StageInput, StageThread)> {
    let (tx, rx) = sync_channel(QUEUE_BATCHES);
    let m = metrics.clone();
    let handle = std::thread::Builder::new()
        .name("mediate".into())
        .spawn(move || stage(cfg, fanout, rx, m))?;
    Ok((StageInput { tx, metrics }, handle))
}

fn stage(
    cfg: JoinConfig,
    mut fanout: Fanout<AnyRecord>,
    rx: Receiver<Vec<FlowRecord>>,
    m: Arc<StageMetrics>,
) -> (Fanout<AnyRecord>, Result<(), String>) {
    let hold_ms = i64::try_from(cfg.grace_ms).unwrap_or(i64::MAX);
    let mut join = Joiner::new(cfg);
    let mut supers: Vec<SuperFlow> = Vec::new();
    let mut qos = SessionRouterQos::new();
    // Session reports waiting for the grace: (due, report), oldest first.
    let mut held: VecDeque<(i64, Box<AppSession>)> = VecDeque::new();
    let mut last_tick = Instant::now();
    let mut invalid_logged = 0u32;
    // Records waiting for their batch to fill, and since when the oldest waits.
    let mut out: Vec<AnyRecord> = Vec::new();
    let mut oldest: Option<Instant> = None;
    let publish = |join: &Joiner| {
        if let Ok(mut g) = m.join.lock() {
            *g = join.metrics();
        }
    };
    let result = loop {
        let wait = match oldest {
            Some(t) => FANOUT_LINGER.saturating_sub(t.elapsed()),
            None => Duration::from_millis(250),
        };
        let batch = match rx.recv_timeout(wait) {
            Ok(b) => Some(b),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        };
        let now = now_ms();
        if let Some(batch) = batch {
            out.reserve(batch.len() * 2);
            // The join's lookups, started records ahead (a large state misses the cache). Tap
            // records still in their collector form are hinted by that form's flow key: a
            // wasted hint at worst, never a wrong result.
            let mut batch = batch.into_iter();
            for i in 0..Joiner::PREFETCH_AHEAD {
                join.prefetch(batch.as_slice().get(i).map(Ahead::Router));
            }
            while let Some(f) = batch.next() {
                join.prefetch(
                    batch
                        .as_slice()
                        .get(Joiner::PREFETCH_AHEAD - 1)
                        .map(Ahead::Router),
                );
                if let Some(r) = record_from_flow(&f) {
                    match r {
                        Ok(Decoded::Tap(t)) => {
                            m.tap_records.fetch_add(1, Ordering::Relaxed);
                            if let Some(sid) = &t.session_id {
                                qos.add_member(sid, &t.key.flow_key);
                            }
                            join.tap(&t, now, &mut supers);
                            out.push(AnyRecord::Tap(t));
                        }
                        Ok(Decoded::Super(s)) => {
                            m.relayed.fetch_add(1, Ordering::Relaxed);
                            out.push(AnyRecord::Super(s));
                        }
                        Ok(Decoded::Session(s)) => {
                            // The router side is ours to add (`fill` leaves counters alone
                            // when none of our super-flows are the session's).
                            m.tap_sessions.fetch_add(1, Ordering::Relaxed);
                            held.push_back((now.saturating_add(hold_ms), s));
                            if held.len() > MAX_HELD_SESSIONS {
                                m.sessions_early.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            m.tap_invalid.fetch_add(1, Ordering::Relaxed);
                            if invalid_logged < 10 {
                                invalid_logged += 1;
                                tracing::warn!(exporter = %f.exporter, error = %e, "Super-NetFlow record does not decode; not published");
                            }
                        }
                    }
                    continue;
                }
                m.router_records.fetch_add(1, Ordering::Relaxed);
                // One record for both: flow_records and the join share it.
                let f = Arc::new(f);
                out.push(AnyRecord::Flow(f.clone()));
                join.router_shared(f, now, &mut supers);
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            join.tick(now, &mut supers);
            publish(&join);
        }
        for s in &supers {
            qos.add(s);
        }
        out.extend(supers.drain(..).map(|s| AnyRecord::Super(Box::new(s))));
        release(&mut held, &mut qos, &mut out, |due| due <= now);
        while held.len() > MAX_HELD_SESSIONS {
            release_one(&mut held, &mut qos, &mut out);
        }
        if out.is_empty() {
            continue;
        }
        let since = *oldest.get_or_insert_with(Instant::now);
        if out.len() >= FANOUT_BATCH || since.elapsed() >= FANOUT_LINGER {
            oldest = None;
            let full = std::mem::replace(&mut out, Vec::with_capacity(FANOUT_BATCH * 2));
            if let Err(e) = fanout.send(full) {
                break Err(e.to_string());
            }
        }
    };
    join.flush_all(&mut supers);
    publish(&join);
    let flushed = supers.len();
    let sessions = held.len();
    let result = result.and_then(|()| {
        for s in &supers {
            qos.add(s);
        }
        // What still waited for its batch to fill, then the join's state.
        out.extend(supers.drain(..).map(|s| AnyRecord::Super(Box::new(s))));
        release(&mut held, &mut qos, &mut out, |_| true);
        if out.is_empty() {
            return Ok(());
        }
        fanout.send(out).map_err(|e| e.to_string())
    });
    tracing::info!(flushed, sessions, "Join state flushed");
    (fanout, result)
}

/// Publishes the oldest held session report with its router QoS.
fn release_one(
    held: &mut VecDeque<(i64, Box<AppSession>)>,
    qos: &mut SessionRouterQos,
    out: &mut Vec<AnyRecord>,
) {
    if let Some((_, mut s)) = held.pop_front() {
        qos.fill(&mut s);
        if s.state == RecordState::End {
            qos.end(&s.session_id);
        }
        out.push(AnyRecord::Session(s));
    }
}

/// Publishes the held session reports, oldest first, while `due` says their time has come.
fn release(
    held: &mut VecDeque<(i64, Box<AppSession>)>,
    qos: &mut SessionRouterQos,
    out: &mut Vec<AnyRecord>,
    due: impl Fn(i64) -> bool,
) {
    while held.front().is_some_and(|(at, _)| due(*at)) {
        release_one(held, qos, out);
    }
}
