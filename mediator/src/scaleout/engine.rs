//! The mediator's state between the consumer and the sinks: the join, the fan-out, and the
//! offsets that say what has been emitted. Synchronous and free of Kafka (offsets are committed
//! through a callback), so its rules are unit-tested here and driven by [`super::consumer`].
//!
//! Offsets: for each (topic, partition) the engine knows the next offset after the last message
//! it took. A router record waiting in the join holds its partition back: the *commit point* of a
//! flows partition is the offset of its oldest waiting router record, if any. Every commit is
//! preceded by a fan-out barrier ([`Fanout::sync`]), so a committed offset means "every output of
//! every record before it is durable in the sinks".
//!
//! Tap partitions are committed *rewound*: at the offset of the oldest tap report the join may
//! still use (the latest report of each tap flow seen within `tap_ttl_ms`), so that the next
//! owner of the partition re-reads those reports and rebuilds the tap summaries a revocation made
//! this mediator forget. Tap records are inputs only (unless `publish_raw`, which then commits
//! tap partitions where consumption stands, as re-read tap records would be published twice), so
//! reading them twice changes no output: the join counts the repeats (`tap_duplicates`).

use super::metrics::ScaleoutMetrics;
use super::ScaleoutError;
use crate::fanout::Fanout;
use crate::join::{JoinConfig, Joiner, Partitioner};
use crate::sink::records::AnyRecord;
use schemas::{FlowRecord, SuperFlow, TapRecord};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Which raw topic a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// The routers' flow records.
    Flows,
    /// The taps' records.
    Tap,
}

/// An offset to commit: the next message to read in (side, partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOffset {
    /// Which topic.
    pub side: Side,
    /// Partition number.
    pub partition: i32,
    /// The next offset to read.
    pub offset: i64,
}

/// Commits offsets synchronously (the consumer's `commit`, or a test double).
pub type CommitFn<'a> = &'a mut dyn FnMut(&[CommitOffset]) -> Result<(), String>;

/// The offsets of the router records waiting in the join, by partition.
#[derive(Debug, Default)]
struct PendingOffsets {
    /// Record id → (partition, offset of its first copy, copies waiting).
    by_id: HashMap<u64, (i32, i64, u32)>,
    /// Partition → offset → records waiting at that offset.
    by_partition: HashMap<i32, BTreeMap<i64, u32>>,
}

fn id_hash(record_id: &str) -> u64 {
    match u64::from_str_radix(record_id, 16) {
        Ok(v) if record_id.len() == 16 => v,
        _ => xxhash_rust::xxh3::xxh3_64(record_id.as_bytes()),
    }
}

impl PendingOffsets {
    fn add(&mut self, record_id: &str, partition: i32, offset: i64) {
        let e = self
            .by_id
            .entry(id_hash(record_id))
            .or_insert((partition, offset, 0));
        e.2 += 1;
        if e.2 == 1 {
            *self
                .by_partition
                .entry(partition)
                .or_default()
                .entry(offset)
                .or_insert(0) += 1;
        }
    }

    fn remove(&mut self, record_id: &str) {
        let h = id_hash(record_id);
        let Some(e) = self.by_id.get_mut(&h) else {
            return;
        };
        e.2 = e.2.saturating_sub(1);
        if e.2 > 0 {
            return;
        }
        let (p, off, _) = *e;
        self.by_id.remove(&h);
        if let Some(m) = self.by_partition.get_mut(&p) {
            if let Some(n) = m.get_mut(&off) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&off);
                }
            }
            if m.is_empty() {
                self.by_partition.remove(&p);
            }
        }
    }

    fn oldest(&self, partition: i32) -> Option<i64> {
        self.by_partition
            .get(&partition)
            .and_then(|m| m.keys().next().copied())
    }

    fn waiting_in(&self, partition: i32) -> usize {
        self.by_partition
            .get(&partition)
            .map(|m| m.values().map(|&n| n as usize).sum())
            .unwrap_or(0)
    }
}

/// Per tap partition: the offset of the latest report of each tap flow, for the rewind point.
#[derive(Debug, Default)]
struct TapPartition {
    /// Flow key → (offset of its latest report, when it was taken, ms).
    latest: HashMap<u64, (i64, i64)>,
    /// Offset → flows whose latest report it is.
    offsets: BTreeMap<i64, u32>,
}

impl TapPartition {
    fn take(&mut self, key: u64, offset: i64, now_ms: i64) {
        if let Some((old, _)) = self.latest.insert(key, (offset, now_ms)) {
            self.forget_offset(old);
        }
        *self.offsets.entry(offset).or_insert(0) += 1;
    }

    fn forget_offset(&mut self, offset: i64) {
        if let Some(n) = self.offsets.get_mut(&offset) {
            *n -= 1;
            if *n == 0 {
                self.offsets.remove(&offset);
            }
        }
    }

    /// Forgets the flows whose latest report is older than `ttl_ms` at `now_ms`.
    fn expire(&mut self, now_ms: i64, ttl_ms: i64) {
        let mut gone = Vec::new();
        self.latest.retain(|_, &mut (off, at)| {
            let keep = at.saturating_add(ttl_ms) >= now_ms;
            if !keep {
                gone.push(off);
            }
            keep
        });
        for off in gone {
            self.forget_offset(off);
        }
    }

    fn oldest(&self) -> Option<i64> {
        self.offsets.keys().next().copied()
    }
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The join's configuration.
    pub join: JoinConfig,
    /// Partition count of the raw topics.
    pub partitions: i32,
    /// The producers' partitioner.
    pub partitioner: Partitioner,
    /// Also pass the raw records on to the sinks.
    pub publish_raw: bool,
    /// Bound of each fan-out barrier.
    pub sync_timeout: Duration,
}

/// Outputs gathered before they go to the fan-out in one batch.
const OUT_BATCH: usize = 1024;

/// The join, the sinks and the offsets of one mediator.
pub struct Engine {
    cfg: EngineConfig,
    join: Joiner,
    fanout: Fanout<AnyRecord>,
    consumed: BTreeMap<(Side, i32), i64>,
    committed: BTreeMap<(Side, i32), i64>,
    pending: PendingOffsets,
    taps: HashMap<i32, TapPartition>,
    last_tap_expiry: i64,
    supers: Vec<SuperFlow>,
    out: Vec<AnyRecord>,
    m: Arc<ScaleoutMetrics>,
    fatal: Option<String>,
    invalid_logged: u32,
}

impl Engine {
    /// An engine writing to `fanout`.
    pub fn new(cfg: EngineConfig, fanout: Fanout<AnyRecord>, m: Arc<ScaleoutMetrics>) -> Self {
        m.topic_partitions.store(cfg.partitions as u64, Relaxed);
        Self {
            join: Joiner::new(cfg.join.clone()),
            cfg,
            fanout,
            consumed: BTreeMap::new(),
            committed: BTreeMap::new(),
            pending: PendingOffsets::default(),
            taps: HashMap::new(),
            last_tap_expiry: i64::MIN,
            supers: Vec::new(),
            out: Vec::new(),
            m,
            fatal: None,
            invalid_logged: 0,
        }
    }

    /// Set when the mediator must stop (a non-co-partitioned assignment, a dead sink).
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Takes one message of a raw topic. A payload that is not the topic's record in JSON is
    /// counted and skipped (its offset counts as consumed).
    pub fn record(
        &mut self,
        side: Side,
        partition: i32,
        offset: i64,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<(), ScaleoutError> {
        match side {
            Side::Flows => match serde_json::from_slice::<FlowRecord>(payload) {
                Ok(f) => {
                    self.m.flows_consumed.fetch_add(1, Relaxed);
                    self.pending.add(&f.record_id, partition, offset);
                    if self.cfg.publish_raw {
                        let f = std::sync::Arc::new(f);
                        self.out.push(AnyRecord::Flow(f.clone()));
                        self.join.router_shared(f, now_ms, &mut self.supers);
                    } else {
                        self.join.router(f, now_ms, &mut self.supers);
                    }
                }
                Err(e) => self.invalid(side, partition, offset, &e),
            },
            Side::Tap => match serde_json::from_slice::<TapRecord>(payload) {
                Ok(t) => {
                    self.m.taps_consumed.fetch_add(1, Relaxed);
                    if let Ok(key) = u64::from_str_radix(&t.key.flow_key, 16) {
                        self.taps
                            .entry(partition)
                            .or_default()
                            .take(key, offset, now_ms);
                    }
                    self.join.tap(&t, now_ms, &mut self.supers);
                    if self.cfg.publish_raw {
                        self.out.push(AnyRecord::Tap(Box::new(t)));
                    }
                }
                Err(e) => self.invalid(side, partition, offset, &e),
            },
        }
        self.consumed.insert((side, partition), offset + 1);
        self.drain_supers();
        if self.out.len() >= OUT_BATCH {
            self.send_out()?;
        }
        Ok(())
    }

    fn invalid(&mut self, side: Side, partition: i32, offset: i64, e: &serde_json::Error) {
        match side {
            Side::Flows => self.m.flows_invalid.fetch_add(1, Relaxed),
            Side::Tap => self.m.taps_invalid.fetch_add(1, Relaxed),
        };
        if self.invalid_logged < 10 {
            self.invalid_logged += 1;
            tracing::warn!(?side, partition, offset, error = %e, "Raw message is not a record; skipped");
        }
    }

    fn drain_supers(&mut self) {
        for s in self.supers.drain(..) {
            self.pending.remove(&s.record_id);
            self.out.push(AnyRecord::Super(Box::new(s)));
        }
    }

    /// Hands the gathered outputs to the fan-out.
    pub fn send_out(&mut self) -> Result<(), ScaleoutError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        self.fanout.send(out).map_err(|e| {
            let e = ScaleoutError::Sink(e.to_string());
            self.fatal.get_or_insert(e.to_string());
            e
        })
    }

    /// Advances the join's clock (grace and TTL expiry), publishes its metrics, sends outputs.
    pub fn tick(&mut self, now_ms: i64) -> Result<(), ScaleoutError> {
        self.join.tick(now_ms, &mut self.supers);
        let ttl = self.cfg.join.tap_ttl_ms.min(i64::MAX as u64) as i64;
        if now_ms.saturating_sub(self.last_tap_expiry) >= (ttl / 4).max(1000) {
            self.last_tap_expiry = now_ms;
            for t in self.taps.values_mut() {
                t.expire(now_ms, ttl);
            }
        }
        self.drain_supers();
        if let Ok(mut g) = self.m.join.lock() {
            *g = self.join.metrics();
        }
        self.send_out()
    }

    /// A new assignment: checks that both topics came with the same partition numbers (the
    /// range assignor gives that when every member subscribes to both topics with equal counts);
    /// otherwise the mediator must stop, as the two sides of a flow would not meet.
    pub fn assigned(&mut self, parts: &[(Side, i32)]) {
        self.m.assignments.fetch_add(1, Relaxed);
        let of = |side| -> BTreeSet<i32> {
            parts
                .iter()
                .filter(|(s, _)| *s == side)
                .map(|(_, p)| *p)
                .collect()
        };
        let (flows, tap) = (of(Side::Flows), of(Side::Tap));
        self.m
            .assigned_partitions
            .store(flows.len() as u64, Relaxed);
        if flows != tap {
            let msg = format!(
                "the assignment is not co-partitioned: flows partitions {flows:?}, tap partitions \
                 {tap:?} (does another group member use a different partition.assignment.strategy \
                 or subscription?)"
            );
            tracing::error!("{msg}");
            self.fatal.get_or_insert(msg);
        } else {
            tracing::info!(partitions = ?flows, "Partitions assigned");
        }
    }

    /// A revocation: emits the waiting router records of the revoked partitions (settled with
    /// what the tap sent so far) and forgets their tap summaries, waits until the sinks made every
    /// output durable, then commits what was consumed from those partitions. The next owner then
    /// starts exactly after it: nothing is emitted twice or lost. If the sinks cannot confirm in
    /// time, the commit is skipped (counted): the next owner re-reads, and outputs may repeat.
    pub fn revoke(
        &mut self,
        parts: &[(Side, i32)],
        commit: CommitFn<'_>,
    ) -> Result<(), ScaleoutError> {
        self.m.revocations.fetch_add(1, Relaxed);
        let numbers: Vec<i32> = parts
            .iter()
            .map(|(_, p)| *p)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.join.flush_partitions(
            &numbers,
            self.cfg.partitions,
            self.cfg.partitioner,
            &mut self.supers,
        );
        let flushed = self.supers.len();
        self.m.revoke_flushed.fetch_add(flushed as u64, Relaxed);
        self.drain_supers();
        let left: usize = numbers.iter().map(|&p| self.pending.waiting_in(p)).sum();
        if left > 0 {
            // Keys the partitioner does not map to their message's partition (ignore_scope or
            // nat joins, or a producer with another partitioner): they stay here and are emitted
            // later by this mediator, still once.
            tracing::warn!(
                left,
                "Router records of revoked partitions still wait in the join"
            );
        }
        let offsets: Vec<CommitOffset> = parts
            .iter()
            .filter_map(|&(side, partition)| {
                self.consumed
                    .get(&(side, partition))
                    .map(|&next| self.point(side, partition, next))
            })
            .collect();
        let r = self.sync_and_commit(offsets, commit);
        for k in parts {
            self.consumed.remove(k);
            self.committed.remove(k);
            if k.0 == Side::Tap {
                self.taps.remove(&k.1);
            }
        }
        if let Ok(mut g) = self.m.join.lock() {
            *g = self.join.metrics();
        }
        tracing::info!(partitions = ?numbers, flushed, "Partitions revoked");
        r
    }

    /// Sends the outputs, waits for the sinks, commits `offsets`. A sink that cannot confirm
    /// skips the commit (counted, logged); a refused commit is counted and logged. Only a dead
    /// sink is an error.
    fn sync_and_commit(
        &mut self,
        offsets: Vec<CommitOffset>,
        commit: CommitFn<'_>,
    ) -> Result<(), ScaleoutError> {
        self.send_out()?;
        if let Err(e) = self.fanout.sync(self.cfg.sync_timeout) {
            self.m.commits_skipped.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "Outputs not confirmed durable; offsets not committed");
            return Ok(());
        }
        if offsets.is_empty() {
            return Ok(());
        }
        match commit(&offsets) {
            Ok(()) => {
                self.m.commits.fetch_add(1, Relaxed);
                for o in &offsets {
                    self.committed.insert((o.side, o.partition), o.offset);
                }
            }
            Err(e) => {
                self.m.commit_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "Offset commit failed");
            }
        }
        Ok(())
    }

    /// Where each consumed partition can be committed now: after the last message taken; for a
    /// flows partition at its oldest router record still waiting in the join; for a tap
    /// partition at its rewind point (see the module documentation).
    pub fn commit_point(&self) -> Vec<CommitOffset> {
        self.consumed
            .iter()
            .map(|(&(side, partition), &next)| self.point(side, partition, next))
            .collect()
    }

    fn point(&self, side: Side, partition: i32, next: i64) -> CommitOffset {
        let held = match side {
            Side::Flows => self.pending.oldest(partition),
            Side::Tap if self.cfg.publish_raw => None,
            Side::Tap => self.taps.get(&partition).and_then(TapPartition::oldest),
        };
        CommitOffset {
            side,
            partition,
            offset: held.map_or(next, |o| o.min(next)),
        }
    }

    /// A periodic checkpoint: commits the [`Engine::commit_point`]s that moved since the last
    /// commit, after a fan-out barrier.
    pub fn checkpoint(&mut self, commit: CommitFn<'_>) -> Result<(), ScaleoutError> {
        let moved: Vec<CommitOffset> = self
            .commit_point()
            .into_iter()
            .filter(|o| self.committed.get(&(o.side, o.partition)) != Some(&o.offset))
            .collect();
        if moved.is_empty() {
            return self.send_out();
        }
        self.sync_and_commit(moved, commit)
    }

    /// Shutdown: emits every waiting router record, waits for the sinks, commits everything
    /// consumed (tap partitions at their rewind point). Afterwards the engine holds no offsets (a
    /// revocation while the consumer closes commits nothing more).
    pub fn finish(&mut self, commit: CommitFn<'_>) -> Result<(), ScaleoutError> {
        self.join.flush_all(&mut self.supers);
        self.drain_supers();
        if let Ok(mut g) = self.m.join.lock() {
            *g = self.join.metrics();
        }
        let offsets = self.commit_point();
        let r = self.sync_and_commit(offsets, commit);
        self.consumed.clear();
        self.committed.clear();
        self.taps.clear();
        r
    }

    /// The fan-out, to be closed.
    pub fn into_fanout(self) -> Fanout<AnyRecord> {
        self.fanout
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
