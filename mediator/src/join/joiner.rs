//! [`Joiner`]: the join's state machine. Synchronous, driven by the caller's clock; see the module
//! documentation of [`crate::join`] for the rules.

use super::config::JoinConfig;
use super::matching::{
    build, is_low, judge, parse_key, router_span, router_unscoped_key, server_hash, side_by_key,
    Side, Verdict,
};
use super::metrics::JoinMetrics;
use super::partition::Partitioner;
use super::state::{
    map_bytes, tf, CompactStats, Held, KeyMap, PlatformInterner, QoeBlock, RouterSlot, Table,
    TapSide, NIL,
};
use schemas::shared::Shared;
use schemas::super_flow::KeyMatch;
use schemas::{AppType, FlowKey, FlowRecord, MatchStatus, RecordState, SuperFlow, TapRecord};
use std::collections::{HashMap, VecDeque};
use std::mem::size_of;
use std::sync::Arc;

/// Joins router flow records with tap records. Owns all of the join state; one per mediator (or
/// per partition set). Every method that can emit appends to `out`; nothing is emitted twice and
/// no router record is ever dropped.
pub struct Joiner {
    cfg: JoinConfig,
    table: Table,
    routers: Vec<RouterSlot>,
    /// Free router slots, linked through their `next` (no allocation to free a slot).
    router_free: u32,
    router_live: usize,
    router_heap: usize,
    /// (deadline, router slot, slot generation), in arrival order; deadlines never decrease
    /// because the clock never goes back. Stale items (slot released since) are skipped.
    deadlines: VecDeque<(i64, u32, u32)>,
    platforms: PlatformInterner,
    tap_ids: Vec<Box<str>>,
    tap_id_index: HashMap<Box<str>, u16>,
    /// The last tap id looked up (taps are few: most records repeat it).
    last_tap_id: Option<u16>,
    /// The join's clock when the latest tap record arrived.
    last_tap_ms: Option<i64>,
    /// Stats digests that are not the tap's flow key (foreign taps), by entry key.
    digests: KeyMap<Box<str>>,
    digests_heap: usize,
    /// With `ignore_scope`: the tap's own (scoped) key where it differs from the entry key.
    tap_keys: KeyMap<u64>,
    /// NAT mode: (protocol, server endpoint) hash → (entry slot, generation) of its tap flows.
    nat: KeyMap<Vec<(u32, u16)>>,
    tap_heap: usize,
    tap_flows: usize,
    now: i64,
    epoch: Option<i64>,
    sweep_hand: u32,
    evict_hand: u32,
    last_sweep: i64,
    /// The keys [`Joiner::prefetch`] was given, the latest `PREFETCH_RING`: each has its index
    /// bucket loaded when given, its entry `PREFETCH_ENTRY` calls later and its QoE block (if
    /// any) `PREFETCH_RING` calls later, each stage reading what the one before brought in.
    prefetch_ring: [Prefetching; PREFETCH_RING],
    prefetch_pos: usize,
    m: JoinMetrics,
}

/// Tables of at most this many slots are swept whole on every tick.
const SWEEP_SMALL: u32 = 256;
/// Below this many live entries (about 8 MiB of them) [`Joiner::prefetch`] does nothing.
const PREFETCH_MIN_ENTRIES: usize = 1 << 16;
/// Calls of [`Joiner::prefetch`] between loading a key's index bucket and loading its entry.
const PREFETCH_ENTRY: usize = 8;
/// Calls between loading a key's index bucket and loading its QoE block (a power of two).
const PREFETCH_RING: usize = 16;

/// One key on its way through [`Joiner::prefetch`]'s stages.
#[derive(Clone, Copy)]
struct Prefetching {
    key: u64,
    /// Its home bucket; `NIL` when there is nothing to follow.
    home: u32,
    /// The slot its bucket points to; `NIL` when there is nothing to follow.
    slot: u32,
}

impl Prefetching {
    const NONE: Self = Self {
        key: 0,
        home: NIL,
        slot: NIL,
    };
}

/// A record the caller will feed soon, for [`Joiner::prefetch`].
#[derive(Clone, Copy)]
pub enum Ahead<'a> {
    Router(&'a FlowRecord),
    Tap(&'a TapRecord),
}

impl Joiner {
    /// An empty join.
    pub fn new(cfg: JoinConfig) -> Self {
        Self {
            cfg,
            table: Table::default(),
            routers: Vec::new(),
            router_free: NIL,
            router_live: 0,
            router_heap: 0,
            // Grown by doubling; starting at a few thousand saves the small reallocations.
            deadlines: VecDeque::with_capacity(4096),
            platforms: PlatformInterner::default(),
            tap_ids: Vec::new(),
            tap_id_index: HashMap::new(),
            last_tap_id: None,
            last_tap_ms: None,
            digests: KeyMap::default(),
            digests_heap: 0,
            tap_keys: KeyMap::default(),
            nat: KeyMap::default(),
            tap_heap: 0,
            tap_flows: 0,
            now: i64::MIN,
            epoch: None,
            sweep_hand: 0,
            evict_hand: 0,
            last_sweep: 0,
            prefetch_ring: [Prefetching::NONE; PREFETCH_RING],
            prefetch_pos: 0,
            m: JoinMetrics::default(),
        }
    }

    /// How many records ahead of the one being fed [`Joiner::prefetch`] wants to see.
    pub const PREFETCH_AHEAD: usize = PREFETCH_RING + 4;

    /// A hint for callers that hold a batch: call it once per record fed, with the record
    /// [`Joiner::PREFETCH_AHEAD`] (20) places further on (`None` past the batch's end). It starts
    /// loading that record's index bucket, the entry of the record given 8 calls ago (whose bucket
    /// has arrived by now) and the QoE block of the one given 16 calls ago, so that with a large
    /// state the lookups find them in the cache instead of waiting on memory three times. It
    /// changes no result; it costs a key parse and three short index probes, and nothing while
    /// the table holds fewer than 65 536 flows (it fits the caches then).
    pub fn prefetch(&mut self, ahead: Option<Ahead<'_>>) {
        // A small table stays in the caches, where the hint only costs: 15 % on the bench's
        // 20 000-flow `cold` case (with 1 M flows resident it gains 17-40 % on `hits_1m`).
        if self.table.live < PREFETCH_MIN_ENTRIES {
            return;
        }
        let key = ahead.and_then(|a| match a {
            Ahead::Router(f) => self.router_key(f).map(|(_, k)| k),
            Ahead::Tap(t) => self.tap_key(t).map(|(_, k)| k),
        });
        let pos = self.prefetch_pos;
        self.prefetch_pos = (pos + 1) & (PREFETCH_RING - 1);
        let mid =
            &mut self.prefetch_ring[(pos + PREFETCH_RING - PREFETCH_ENTRY) & (PREFETCH_RING - 1)];
        if mid.home != NIL {
            mid.slot = self.table.prefetch_entry(mid.home).unwrap_or(NIL);
        }
        let new = match key {
            Some(key) => Prefetching {
                key,
                home: self.table.prefetch_index(key).unwrap_or(NIL),
                slot: NIL,
            },
            None => Prefetching::NONE,
        };
        let old = std::mem::replace(&mut self.prefetch_ring[pos], new);
        if old.slot != NIL {
            self.table.prefetch_qoe(old.slot, old.key);
        }
    }

    /// A router record's (own key, table key); `None` without a parsable flow key.
    fn router_key(&self, flow: &FlowRecord) -> Option<(u64, u64)> {
        let own = flow.flow_key.as_deref().and_then(parse_key)?;
        let key = if self.cfg.ignore_scope {
            router_unscoped_key(flow).unwrap_or(own)
        } else {
            own
        };
        Some((own, key))
    }

    /// A tap record's (own key, table key); `None` without a parsable flow key.
    fn tap_key(&self, t: &TapRecord) -> Option<(u64, u64)> {
        let tk = parse_key(&t.key.flow_key)?;
        let key = if self.cfg.ignore_scope {
            FlowKey {
                scope: 0,
                ..t.key.canonical()
            }
            .hash64()
        } else {
            tk
        };
        Some((tk, key))
    }

    /// The configuration in force.
    pub fn config(&self) -> &JoinConfig {
        &self.cfg
    }

    /// The join's clock: the latest `now_ms` passed in (it never goes back).
    pub fn now_ms(&self) -> i64 {
        self.now
    }

    /// Takes a router flow record. It is emitted now when the tap side already settles it
    /// (covered and classified, or the tap flow is over), else it waits up to `grace_ms`.
    pub fn router(&mut self, flow: FlowRecord, now_ms: i64, out: &mut Vec<SuperFlow>) {
        self.router_held(Held::new(Arc::new(flow)), now_ms, out);
    }

    /// [`Joiner::router`] for a record the caller shares (e.g. also publishes as is): the join
    /// holds the `Arc` while the record waits, and its super-flow holds it after (no copy).
    pub fn router_shared(&mut self, flow: Arc<FlowRecord>, now_ms: i64, out: &mut Vec<SuperFlow>) {
        self.router_held(Held::new(flow), now_ms, out);
    }

    fn router_held(&mut self, held: Held, now_ms: i64, out: &mut Vec<SuperFlow>) {
        self.advance(now_ms);
        self.m.router_records += 1;
        let flow = held.get();
        let Some((own, key)) = self.router_key(flow) else {
            self.m.router_no_key += 1;
            self.emit(None, held.into_shared(), &Verdict::UNMATCHED, out);
            return;
        };
        let span = router_span(flow);
        let at = self.table.get(key);
        if let Some(i) = at {
            self.table.at_mut(i).set_touched(true);
            if let Some(v) = self.judge_at(i, flow, span, own) {
                if v.settled {
                    self.emit(Some(i), held.into_shared(), &v, out);
                    return;
                }
            }
        }
        let no_tap = || {
            self.cfg.emit_at_once_without_tap
                && self.tap_absent()
                && at.is_none_or(|i| self.table.at(i).tap.is_none())
        };
        if self.cfg.grace_ms == 0 || no_tap() {
            if self.cfg.grace_ms != 0 {
                self.m.router_no_tap += 1;
            }
            let (at, v) = self.final_verdict(at, flow, span, own);
            self.emit(at, held.into_shared(), &v, out);
            return;
        }
        if self.router_live >= self.cfg.max_pending_routers.max(1) {
            self.release_oldest(out);
        }
        let i = match self.table.get(key) {
            Some(i) => i,
            None => self.insert_entry(key, out),
        };
        self.park(i, held, own);
    }

    /// No tap record has reached the join for `max(grace_ms, tap_ttl_ms)`, counting from its
    /// start: every tap summary has expired, and a record waiting its grace could not be completed
    /// unless a silent tap came back.
    fn tap_absent(&self) -> bool {
        let since = self.last_tap_ms.or(self.epoch).unwrap_or(self.now);
        let quiet = self.cfg.grace_ms.max(self.cfg.tap_ttl_ms);
        self.now.saturating_sub(since) > i64::try_from(quiet).unwrap_or(i64::MAX)
    }

    /// Takes a tap record: merges it into the tap summary of its key, then emits the waiting router
    /// records of that key it settles.
    pub fn tap(&mut self, t: &TapRecord, now_ms: i64, out: &mut Vec<SuperFlow>) {
        self.advance(now_ms);
        self.m.tap_records += 1;
        self.last_tap_ms = Some(self.now);
        let Some((tk, key)) = self.tap_key(t) else {
            self.m.tap_bad_key += 1;
            return;
        };
        if t.last_seen_ms.saturating_add(self.grace()) < self.now {
            self.m.tap_late += 1;
        }
        let i = match self.table.get(key) {
            Some(i) => i,
            None => self.insert_entry(key, out),
        };
        self.merge(i, t, tk);
        // The waiting router records this report settles.
        let mut cur = self.table.at(i).router_head;
        while cur != NIL {
            let r = &self.routers[cur as usize];
            let next = r.next;
            let v = match &r.flow {
                Some(f) => self.judge_at(i, f.get(), router_span(f.get()), r.own_key),
                None => None,
            };
            if let Some(v) = v.filter(|v| v.settled) {
                if let Some((flow, _, _)) = self.take_router(cur) {
                    self.emit(Some(i), flow.into_shared(), &v, out);
                }
            }
            cur = next;
        }
    }

    /// Advances the clock to `now_ms`: emits the router records whose grace ran out (with what the
    /// tap sent so far) and forgets tap summaries past `tap_ttl_ms` (a share of the table per call,
    /// the whole table every `max(tap_ttl_ms / 4, 1 s)`). Call it about once a second.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<SuperFlow>) {
        self.advance(now_ms);
        while let Some(&(d, slot, gen)) = self.deadlines.front() {
            if d > self.now {
                break;
            }
            self.deadlines.pop_front();
            if self.routers[slot as usize].gen == gen && self.routers[slot as usize].flow.is_some()
            {
                self.m.router_grace_expired += 1;
                let i = self.release(slot, out);
                self.maybe_remove(i);
            }
        }
        self.sweep();
    }

    /// Emits every waiting router record (with what the tap sent so far) and forgets all state:
    /// for shutdown (SIGTERM). The join is empty and usable afterwards.
    pub fn flush_all(&mut self, out: &mut Vec<SuperFlow>) {
        let deadlines = std::mem::take(&mut self.deadlines);
        for (_, slot, gen) in deadlines {
            let r = &self.routers[slot as usize];
            if r.gen == gen && r.flow.is_some() {
                self.m.router_flushed += 1;
                self.release(slot, out);
            }
        }
        for i in 0..self.table.slots() {
            if self.table.at(i).live() {
                while self.table.at(i).router_head != NIL {
                    // Unreachable in practice (every waiting record has a deadline): belt and braces.
                    self.m.router_flushed += 1;
                    self.release(self.table.at(i).router_head, out);
                }
                self.drop_tap(i);
            }
        }
        self.table.clear();
        self.routers = Vec::new();
        self.router_free = NIL;
        self.nat = KeyMap::default();
        self.digests = KeyMap::default();
        self.tap_keys = KeyMap::default();
        self.platforms.purge();
        self.sweep_hand = 0;
        self.evict_hand = 0;
    }

    /// Emits the waiting router records whose own key satisfies `flush` and forgets the tap
    /// summaries whose tap key does: for a partition revocation, so that the partitions' new
    /// owner starts from the records it re-reads and nothing is emitted twice or lost.
    pub fn flush_where(&mut self, flush: impl Fn(u64) -> bool, out: &mut Vec<SuperFlow>) {
        let order: Vec<(u32, u32)> = self.deadlines.iter().map(|&(_, s, g)| (s, g)).collect();
        for (slot, gen) in order {
            let r = &self.routers[slot as usize];
            if r.gen == gen && r.flow.is_some() && flush(r.own_key) {
                self.m.router_flushed += 1;
                let i = self.release(slot, out);
                self.maybe_remove(i);
            }
        }
        for i in 0..self.table.slots() {
            let e = self.table.at(i);
            if !e.live() || e.tap.is_none() {
                continue;
            }
            let tk = self.tap_key_of(i);
            if flush(tk) {
                self.drop_tap(i);
                if self.table.at(i).router_head == NIL {
                    self.table.remove(i);
                }
            }
        }
    }

    /// [`Joiner::flush_where`] for the keys of `partitions` (of `partition_count`) under the
    /// producers' partitioner.
    pub fn flush_partitions(
        &mut self,
        partitions: &[i32],
        partition_count: i32,
        partitioner: Partitioner,
        out: &mut Vec<SuperFlow>,
    ) {
        self.flush_where(
            |k| partitions.contains(&partitioner.partition(k, partition_count)),
            out,
        );
    }

    /// Counters and gauges, with the state size computed now.
    pub fn metrics(&self) -> JoinMetrics {
        let mut m = self.m;
        m.entries = self.table.live as u64;
        m.tap_flows = self.tap_flows as u64;
        m.pending_routers = self.router_live as u64;
        m.interned_platforms = self.platforms.len() as u64;
        m.state_bytes = self.state_bytes() as u64;
        m
    }

    /// Bytes of join state, from capacities and lengths.
    pub fn state_bytes(&self) -> usize {
        let nat: usize = self
            .nat
            .values()
            .map(|v| v.capacity() * size_of::<(u32, u16)>())
            .sum();
        self.table.bytes()
            + self.routers.capacity() * size_of::<RouterSlot>()
            + self.router_heap
            + self.deadlines.capacity() * size_of::<(i64, u32, u32)>()
            + self.platforms.bytes
            + self.platforms.map_bytes()
            + self.tap_heap
            + map_bytes::<Box<str>>(self.digests.capacity())
            + self.digests_heap
            + map_bytes::<u64>(self.tap_keys.capacity())
            + map_bytes::<Vec<(u32, u16)>>(self.nat.capacity())
            + nat
            + self.tap_ids.iter().map(|s| 2 * s.len()).sum::<usize>()
    }

    // ---- clock ----

    fn advance(&mut self, now_ms: i64) {
        if self.epoch.is_none() {
            self.epoch = Some(now_ms);
            self.last_sweep = now_ms;
        }
        self.now = self.now.max(now_ms);
    }

    fn grace(&self) -> i64 {
        i64::try_from(self.cfg.grace_ms).unwrap_or(i64::MAX)
    }

    /// Seconds of the join's clock since its epoch, rounded up.
    fn clock_s(&self, t: i64) -> u32 {
        let d = t.saturating_sub(self.epoch.unwrap_or(t)).max(0);
        u32::try_from(d.saturating_add(999) / 1000).unwrap_or(u32::MAX)
    }

    fn now_s(&self) -> u32 {
        let d = self
            .now
            .saturating_sub(self.epoch.unwrap_or(self.now))
            .max(0);
        u32::try_from(d / 1000).unwrap_or(u32::MAX)
    }

    // ---- judging and emitting ----

    fn tap_key_of(&self, i: u32) -> u64 {
        let key = self.table.at(i).key;
        if self.cfg.ignore_scope {
            if let Some(k) = self.tap_keys.get(&key) {
                return *k;
            }
        }
        key
    }

    /// The verdict against the tap flow of entry `i`, if it has one.
    fn judge_at(&self, i: u32, f: &FlowRecord, span: (i64, i64), own: u64) -> Option<Verdict> {
        let t = self.table.at(i).tap()?;
        let km = if self.tap_key_of(i) == own {
            KeyMatch::Canonical
        } else {
            KeyMatch::KeyWithoutScope
        };
        Some(judge(&self.cfg, f, span, t, side_by_key(f, t.1), km))
    }

    /// The verdict when a record is emitted whatever it is: by key, else (NAT mode) by server.
    fn final_verdict(
        &mut self,
        at: Option<u32>,
        f: &FlowRecord,
        span: (i64, i64),
        own: u64,
    ) -> (Option<u32>, Verdict) {
        let v = at.and_then(|i| self.judge_at(i, f, span, own));
        match v {
            Some(v) if v.status != MatchStatus::Unmatched => (at, v),
            _ if self.cfg.nat => match self.nat_judge(f, span) {
                Some((j, v)) => (Some(j), v),
                None => (None, Verdict::UNMATCHED),
            },
            _ => (None, Verdict::UNMATCHED),
        }
    }

    /// NAT mode: the best tap flow with the router record's protocol and one of its endpoints as
    /// server, by time coverage × volume likeness; its confidence is that score times its share of
    /// all candidates' scores.
    fn nat_judge(&mut self, f: &FlowRecord, span: (i64, i64)) -> Option<(u32, Verdict)> {
        let (Some(proto), Some(sa), Some(da)) = (f.protocol, f.src_addr, f.dst_addr) else {
            return None;
        };
        let (sp, dp) = (f.src_port.unwrap_or(0), f.dst_port.unwrap_or(0));
        let Self {
            nat, table, cfg, ..
        } = self;
        let mut best: Option<(u32, Verdict)> = None;
        let mut sum = 0.0f32;
        for (addr, port, side) in [(da, dp, Side::FromClient), (sa, sp, Side::FromServer)] {
            let h = server_hash(proto, addr, port);
            let Some(list) = nat.get_mut(&h) else {
                continue;
            };
            list.retain(|&(s, g)| {
                let e = table.at(s);
                e.live() && e.gen == g && e.tap.is_some()
            });
            for &(s, _) in list.iter() {
                let Some(t) = table.at(s).tap() else {
                    continue;
                };
                let v = judge(cfg, f, span, t, side, KeyMatch::Nat);
                if v.status == MatchStatus::Unmatched {
                    continue;
                }
                sum += v.score;
                if best.as_ref().is_none_or(|(_, b)| v.score > b.score) {
                    best = Some((s, v));
                }
            }
            if list.is_empty() {
                nat.remove(&h);
            }
        }
        let (s, mut v) = best?;
        let share = if sum > 0.0 { v.score / sum } else { 0.0 };
        v.confidence = v.score * share;
        if v.status == MatchStatus::Matched && v.confidence < cfg.nat_min_confidence {
            v.status = MatchStatus::Partial;
            v.ratio = None;
        }
        Some((s, v))
    }

    /// Emits one super-flow, counted.
    fn emit(
        &mut self,
        at: Option<u32>,
        flow: Shared<FlowRecord>,
        v: &Verdict,
        out: &mut Vec<SuperFlow>,
    ) {
        let at = at.filter(|_| v.status != MatchStatus::Unmatched);
        match v.status {
            MatchStatus::Matched => self.m.emitted_matched += 1,
            MatchStatus::Partial => self.m.emitted_partial += 1,
            MatchStatus::Unmatched => self.m.emitted_unmatched += 1,
        }
        let Some(i) = at else {
            out.push(SuperFlow::unmatched(flow));
            return;
        };
        match v.key_match {
            KeyMatch::KeyWithoutScope => self.m.emitted_without_scope += 1,
            KeyMatch::Nat => self.m.emitted_nat += 1,
            _ => {}
        }
        let key = self.table.at(i).key;
        let tap_key = self.tap_key_of(i);
        let e = self.table.at(i);
        let t = e.tap.as_ref();
        let digest = match e.tap_flags {
            fl if fl & tf::DIGEST_IS_KEY != 0 => schemas::ext::hex64(tap_key),
            fl if fl & tf::DIGEST_EMPTY != 0 => String::new(),
            _ => self
                .digests
                .get(&key)
                .map(|d| d.to_string())
                .unwrap_or_default(),
        };
        let tap_id = t
            .and_then(|t| self.tap_ids.get(usize::from(t.tap_id)))
            .map_or("", |s| s);
        out.push(build(flow, v, t, tap_id, digest));
        let e = self.table.at_mut(i);
        if e.tap.is_some() {
            e.tap_flags |= tf::JOINED;
        }
    }

    // ---- waiting router records ----

    fn park(&mut self, i: u32, flow: Held, own: u64) {
        let heap = flow.heap_bytes();
        let slot = match self.router_free {
            s if s != NIL => {
                self.router_free = self.routers[s as usize].next;
                s
            }
            _ => {
                self.routers.push(RouterSlot {
                    flow: None,
                    own_key: 0,
                    entry: NIL,
                    next: NIL,
                    gen: 0,
                    heap: 0,
                });
                (self.routers.len() - 1) as u32
            }
        };
        let head = self.table.at(i).router_head;
        let r = &mut self.routers[slot as usize];
        r.flow = Some(flow);
        r.own_key = own;
        r.entry = i;
        r.next = head;
        r.heap = u32::try_from(heap).unwrap_or(u32::MAX);
        let gen = r.gen;
        self.table.at_mut(i).router_head = slot;
        self.deadlines
            .push_back((self.now.saturating_add(self.grace()), slot, gen));
        self.router_live += 1;
        self.router_heap += r_heap(heap);
    }

    /// Unlinks a waiting record from its entry and frees its slot.
    fn take_router(&mut self, slot: u32) -> Option<(Held, u32, u64)> {
        let free = self.router_free;
        let r = &mut self.routers[slot as usize];
        let flow = r.flow.take()?;
        let (i, next, own, heap) = (r.entry, r.next, r.own_key, r.heap);
        r.gen = r.gen.wrapping_add(1);
        r.next = free;
        r.entry = NIL;
        self.router_free = slot;
        self.router_live -= 1;
        self.router_heap -= r_heap(heap as usize);
        let e = self.table.at_mut(i);
        if e.router_head == slot {
            e.router_head = next;
        } else {
            let mut cur = e.router_head;
            while cur != NIL {
                let n = self.routers[cur as usize].next;
                if n == slot {
                    self.routers[cur as usize].next = next;
                    break;
                }
                cur = n;
            }
        }
        Some((flow, i, own))
    }

    /// Emits a waiting record with what is known now. Returns its entry (not removed).
    fn release(&mut self, slot: u32, out: &mut Vec<SuperFlow>) -> u32 {
        let Some((flow, i, own)) = self.take_router(slot) else {
            return NIL;
        };
        let span = router_span(flow.get());
        let (at, v) = self.final_verdict(Some(i), flow.get(), span, own);
        self.emit(at, flow.into_shared(), &v, out);
        i
    }

    /// `max_pending_routers` reached: emits the oldest waiting record.
    fn release_oldest(&mut self, out: &mut Vec<SuperFlow>) {
        while let Some((_, slot, gen)) = self.deadlines.pop_front() {
            let r = &self.routers[slot as usize];
            if r.gen == gen && r.flow.is_some() {
                self.m.router_cap_emitted += 1;
                let i = self.release(slot, out);
                self.maybe_remove(i);
                return;
            }
        }
    }

    // ---- entries ----

    fn insert_entry(&mut self, key: u64, out: &mut Vec<SuperFlow>) -> u32 {
        if self.table.live >= self.cfg.max_entries.max(1) {
            self.evict_one(out);
        }
        self.table.insert(key)
    }

    /// `max_entries` reached: evicts one entry not touched since the hand last passed (CLOCK),
    /// emitting its waiting router records.
    fn evict_one(&mut self, out: &mut Vec<SuperFlow>) {
        let n = self.table.slots();
        for _ in 0..=2 * u64::from(n) {
            let i = self.evict_hand;
            self.evict_hand = if i + 1 >= n { 0 } else { i + 1 };
            let e = self.table.at_mut(i);
            if !e.live() {
                continue;
            }
            if e.touched() {
                e.set_touched(false);
                continue;
            }
            self.m.entries_evicted += 1;
            while self.table.at(i).router_head != NIL {
                self.m.router_evicted += 1;
                self.release(self.table.at(i).router_head, out);
            }
            self.drop_tap(i);
            self.table.remove(i);
            return;
        }
    }

    /// Removes entry `i` when it holds no waiting record and no live tap summary.
    fn maybe_remove(&mut self, i: u32) {
        if i == NIL {
            return;
        }
        let now_s = self.now_s();
        let e = self.table.at(i);
        if !e.live() || e.router_head != NIL {
            return;
        }
        match &e.tap {
            Some(t) if t.expires_s > now_s => {}
            Some(_) => {
                self.m.tap_expired += 1;
                self.drop_tap(i);
                self.table.remove(i);
            }
            None => self.table.remove(i),
        }
    }

    /// Forgets the tap summary of entry `i`.
    fn drop_tap(&mut self, i: u32) {
        let key = self.table.at(i).key;
        let e = self.table.at_mut(i);
        let Some(t) = e.tap.take() else {
            return;
        };
        let flags = std::mem::take(&mut e.tap_flags);
        // NAT index references to this tap flow go stale.
        e.gen = e.gen.wrapping_add(1);
        self.tap_flows -= 1;
        self.tap_heap -= t.heap_bytes();
        if flags & tf::JOINED == 0 {
            self.m.tap_never_joined += 1;
        }
        if let Some(d) = self.digests.remove(&key) {
            self.digests_heap -= d.len();
        }
        self.tap_keys.remove(&key);
    }

    /// Forgets expired tap summaries, visiting a share of the table proportional to the time since
    /// the last sweep (all of it every `max(tap_ttl_ms / 4, 1 s)`).
    fn sweep(&mut self) {
        let n = self.table.slots();
        if n == 0 {
            return;
        }
        let period = (self.cfg.tap_ttl_ms / 4).max(1000);
        let elapsed = u64::try_from(self.now.saturating_sub(self.last_sweep)).unwrap_or(0);
        // A small table is visited whole on every call. A large one exactly in proportion: while
        // its share rounds to nothing the clock keeps counting from the last sweep (a floor of
        // 256 visits a call, as before, made a 1 M-flow table's sweep walk 5× its share, a cache
        // miss or two a visit).
        let visit = if elapsed >= period || n <= SWEEP_SMALL {
            n
        } else {
            (u128::from(n) * u128::from(elapsed) / u128::from(period)) as u32
        };
        if visit == 0 {
            return;
        }
        self.last_sweep = self.now;
        let now_s = self.now_s();
        for _ in 0..visit {
            let i = self.sweep_hand;
            self.sweep_hand += 1;
            if self.sweep_hand >= n {
                self.sweep_hand = 0;
                self.platforms.purge();
            }
            let e = self.table.at(i);
            if !e.live() || e.router_head != NIL {
                continue;
            }
            match &e.tap {
                Some(t) if t.expires_s > now_s => {}
                Some(_) => {
                    self.m.tap_expired += 1;
                    self.drop_tap(i);
                    self.table.remove(i);
                }
                None => self.table.remove(i),
            }
        }
    }

    // ---- tap side ----

    fn tap_id(&mut self, id: &str) -> u16 {
        if let Some(n) = self.last_tap_id {
            if self.tap_ids.get(usize::from(n)).is_some_and(|s| **s == *id) {
                return n;
            }
        }
        if let Some(&n) = self.tap_id_index.get(id) {
            self.last_tap_id = Some(n);
            return n;
        }
        // More than 65535 distinct tap ids in one mediator is a misconfiguration: they share the
        // last id rather than grow without bound.
        let n = u16::try_from(self.tap_ids.len()).unwrap_or(u16::MAX);
        if usize::from(n) == self.tap_ids.len() {
            self.tap_ids.push(id.into());
            self.tap_id_index.insert(id.into(), n);
        }
        self.last_tap_id = Some(n);
        n
    }

    /// Merges a tap report into entry `i`'s summary.
    fn merge(&mut self, i: u32, t: &TapRecord, tk: u64) {
        let expires_s = self.clock_s(
            self.now
                .saturating_add(i64::try_from(self.cfg.tap_ttl_ms).unwrap_or(i64::MAX)),
        );
        let tap_id = self.tap_id(&t.tap_id);
        let key = self.table.at(i).key;
        if self.cfg.ignore_scope && tk != key {
            self.tap_keys.insert(key, tk);
        }
        let (first, last) = (
            t.first_seen_ms.min(t.last_seen_ms),
            t.first_seen_ms.max(t.last_seen_ms),
        );
        let e = self.table.at_mut(i);
        e.set_touched(true);
        let mut fresh = false;
        let was_none = e.tap.is_none();
        let ended = e.tap_flags & tf::ENDED != 0;
        match &mut e.tap {
            Some(s) if ended && first > s.last_seen_ms() => {
                // Port reuse: a new flow on the key of one that ended.
                self.m.tap_new_generation += 1;
                self.tap_heap -= s.heap_bytes();
                fresh = true;
            }
            Some(s) if s.reports > 0 && t.seq == s.last_seq => {
                self.m.tap_duplicates += 1;
                s.expires_s = expires_s;
                return;
            }
            Some(s) => {
                let (f, l) = (s.first_seen_ms.min(first), s.last_seen_ms().max(last));
                s.set_span(f, l);
                s.reports = s.reports.saturating_add(1);
                s.expires_s = expires_s;
                if t.seq < s.last_seq {
                    self.m.tap_out_of_order += 1;
                    return;
                }
                s.last_seq = t.seq;
                s.tap_id = tap_id;
                if t.state == RecordState::End {
                    e.tap_flags |= tf::ENDED;
                }
                s.stats = CompactStats::new(&t.stats);
                if !t.qoe.is_empty() {
                    self.tap_heap -= s.qoe.as_ref().map_or(0, |q| q.heap_bytes());
                    s.qoe = QoeBlock::from_qoe(&t.qoe);
                    self.tap_heap += s.qoe.as_ref().map_or(0, |q| q.heap_bytes());
                }
                let keep_old =
                    t.app.app_type == AppType::Unknown && s.platform.app_type != AppType::Unknown;
                if !keep_old && *s.platform != t.app {
                    s.platform = self.platforms.intern(&t.app);
                }
            }
            None => {
                self.tap_flows += 1;
                fresh = true;
            }
        }
        let mut flags = 0;
        if fresh {
            let client_low = is_low(
                (t.key.client_addr, t.key.client_port),
                (t.key.server_addr, t.key.server_port),
            );
            if client_low {
                flags |= tf::CLIENT_LOW;
            }
            if t.state == RecordState::End {
                flags |= tf::ENDED;
            }
            let mut s = TapSide {
                first_seen_ms: 0,
                stats: CompactStats::new(&t.stats),
                platform: self.platforms.intern(&t.app),
                qoe: QoeBlock::from_qoe(&t.qoe),
                last_seen_delta: 0,
                expires_s,
                last_seq: t.seq,
                reports: 1,
                tap_id,
            };
            s.set_span(first, last);
            self.tap_heap += s.heap_bytes();
            let e = self.table.at_mut(i);
            let gen = e.gen;
            e.tap = Some(s);
            e.tap_flags = flags;
            if self.cfg.nat && was_none {
                let h = server_hash(t.key.protocol, t.key.server_addr, t.key.server_port);
                self.nat.entry(h).or_default().push((i, gen));
            }
        }
        // The digest: usually the tap's flow key, kept as a flag.
        let d = &t.stats.digest;
        let mut dflags = 0;
        if d.is_empty() {
            dflags = tf::DIGEST_EMPTY;
        } else if d.eq_ignore_ascii_case(&t.key.flow_key) {
            dflags = tf::DIGEST_IS_KEY;
        }
        if let Some(old) = self.digests.remove(&key) {
            self.digests_heap -= old.len();
        }
        if dflags == 0 {
            self.digests_heap += d.len();
            self.digests.insert(key, d.as_str().into());
        }
        let e = self.table.at_mut(i);
        if e.tap.is_some() {
            e.tap_flags = (e.tap_flags & !(tf::DIGEST_EMPTY | tf::DIGEST_IS_KEY)) | dflags;
        }
    }
}

/// Heap bytes accounted for a waiting record (its `u32` field saturates; the sum must not drift).
fn r_heap(h: usize) -> usize {
    h.min(u32::MAX as usize)
}
