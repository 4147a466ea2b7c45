//! The join's state, kept compact: one [`Entry`] per key in a chunked slab, a map from key to slab
//! index, the tap side summarised ([`TapSide`]), the application block interned
//! ([`PlatformInterner`]), and the waiting router records in their own slab ([`RouterSlot`]).
//!
//! Every byte the state holds is accounted for in [`State::bytes`] from capacities and lengths
//! (not estimated from counts); the `join` benchmark checks it against a counting allocator.

use schemas::qoe::{ConferencingQoe, GamingQoe, Qoe, VideoQoe};
use schemas::shared::Shared;
use schemas::{AppPlatform, FlowRecord, FlowStats};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::mem::size_of;
use std::sync::Arc;

/// "No index".
pub(crate) const NIL: u32 = u32::MAX;

/// Slab chunk length (entries). Chunks never move, and the slab grows a chunk at a time, so a
/// growing table does not hold twice its size during a reallocation.
const CHUNK: usize = 4096;

/// Hasher for keys that are already XXH3 hashes: one multiply by a per-process odd seed, so the
/// table cannot be steered by crafted keys (XXH3 is not keyed) and costs nothing to hash.
#[derive(Clone, Copy)]
pub(crate) struct KeyHasherBuilder(u64);

impl Default for KeyHasherBuilder {
    fn default() -> Self {
        // RandomState is seeded per process; its hash of a constant is a random 64-bit value.
        Self(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1)
    }
}

impl BuildHasher for KeyHasherBuilder {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0, self.0)
    }
}

pub(crate) struct KeyHasher(u64, u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn finish(&self) -> u64 {
        // Multiply, then fold the high half down: hashbrown takes its 7 tag bits from the top and
        // the bucket from the bottom.
        let m = (u128::from(self.0) * u128::from(self.1)) as u64;
        m ^ (m >> 32)
    }
}

pub(crate) type KeyMap<V> = HashMap<u64, V, KeyHasherBuilder>;

/// Latest QoE of a tap flow: only the block the tap filled, behind one pointer, so flows without
/// QoE pay one word and flows with one pay for that block (not for all three).
#[derive(Debug, Clone)]
pub(crate) enum QoeBlock {
    Video(VideoQoe),
    Gaming(GamingQoe),
    Conferencing(ConferencingQoe),
    /// More than one block filled (rare): the whole value.
    Many(Box<Qoe>),
}

impl QoeBlock {
    pub(crate) fn from_qoe(q: &Qoe) -> Option<Box<Self>> {
        Some(Box::new(match (&q.video, &q.gaming, &q.conferencing) {
            (None, None, None) => return None,
            (Some(v), None, None) => Self::Video(v.clone()),
            (None, Some(g), None) => Self::Gaming(g.clone()),
            (None, None, Some(c)) => Self::Conferencing(c.clone()),
            _ => Self::Many(Box::new(q.clone())),
        }))
    }

    pub(crate) fn to_qoe(&self) -> Qoe {
        let mut q = Qoe::default();
        match self {
            Self::Video(v) => q.video = Some(v.clone()),
            Self::Gaming(g) => q.gaming = Some(g.clone()),
            Self::Conferencing(c) => q.conferencing = Some(c.clone()),
            Self::Many(m) => q = (**m).clone(),
        }
        q
    }

    /// Heap bytes held (the box and what it points to).
    pub(crate) fn heap_bytes(&self) -> usize {
        let s = |o: &Option<String>| o.as_ref().map_or(0, String::capacity);
        size_of::<Self>()
            + match self {
                Self::Video(v) => s(&v.resolution),
                Self::Gaming(_) | Self::Conferencing(_) => 0,
                Self::Many(m) => {
                    size_of::<Qoe>() + m.video.as_ref().map_or(0, |v| s(&v.resolution))
                }
            }
    }
}

/// [`FlowStats`] without its digest and derived totals, optional floats as NaN, and the two
/// counters that stay small (`tcp_resets`, `detection_packets`) in 16 bits, saturated: 80 bytes,
/// no padding.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CompactStats {
    pub local_bytes: u64,
    pub other_bytes: u64,
    pub local_packets: u64,
    pub other_packets: u64,
    pub local_rate: f64,
    pub other_rate: f64,
    pub tcp_retrans: u32,
    pub tcp_seq_errors: u32,
    pub tcp_resets: u16,
    pub detection_packets: u16,
    pub rtt_avg_ms: f32,
    pub rtt_min_ms: f32,
    pub rtt_max_ms: f32,
    pub jitter_ms: f32,
    pub loss_ratio: f32,
}

fn nan(o: Option<f32>) -> f32 {
    o.unwrap_or(f32::NAN)
}
fn opt(v: f32) -> Option<f32> {
    (!v.is_nan()).then_some(v)
}

impl CompactStats {
    pub(crate) fn new(s: &FlowStats) -> Self {
        Self {
            local_bytes: s.local_bytes,
            other_bytes: s.other_bytes,
            local_packets: s.local_packets,
            other_packets: s.other_packets,
            local_rate: s.local_rate,
            other_rate: s.other_rate,
            tcp_resets: u16::try_from(s.tcp_resets).unwrap_or(u16::MAX),
            tcp_retrans: s.tcp_retrans,
            tcp_seq_errors: s.tcp_seq_errors,
            detection_packets: u16::try_from(s.detection_packets).unwrap_or(u16::MAX),
            rtt_avg_ms: nan(s.rtt_avg_ms),
            rtt_min_ms: nan(s.rtt_min_ms),
            rtt_max_ms: nan(s.rtt_max_ms),
            jitter_ms: nan(s.jitter_ms),
            loss_ratio: nan(s.loss_ratio),
        }
    }

    /// The stats back, with `digest` and the totals (`local + other`, an invariant of the record).
    pub(crate) fn to_stats(self, digest: String) -> FlowStats {
        FlowStats {
            digest,
            local_bytes: self.local_bytes,
            other_bytes: self.other_bytes,
            local_packets: self.local_packets,
            other_packets: self.other_packets,
            local_rate: self.local_rate,
            other_rate: self.other_rate,
            total_bytes: self.local_bytes.saturating_add(self.other_bytes),
            total_packets: self.local_packets.saturating_add(self.other_packets),
            tcp_resets: u32::from(self.tcp_resets),
            tcp_retrans: self.tcp_retrans,
            tcp_seq_errors: self.tcp_seq_errors,
            detection_packets: u32::from(self.detection_packets),
            rtt_avg_ms: opt(self.rtt_avg_ms),
            rtt_min_ms: opt(self.rtt_min_ms),
            rtt_max_ms: opt(self.rtt_max_ms),
            jitter_ms: opt(self.jitter_ms),
            loss_ratio: opt(self.loss_ratio),
        }
    }
}

/// Flags of a [`TapSide`] (kept in [`Entry::tap_flags`], where they fill the entry header's last
/// byte; inside `TapSide` they would cost a padded word).
pub(crate) mod tf {
    /// The tap sent the flow's `end` report.
    pub const ENDED: u8 = 1;
    /// The stats digest is the tap's flow key (the usual case); else it is in `State::digests`.
    pub const DIGEST_IS_KEY: u8 = 2;
    /// The stats digest is empty.
    pub const DIGEST_EMPTY: u8 = 4;
    /// The tap's client is the lower endpoint of the canonical key.
    pub const CLIENT_LOW: u8 = 8;
    /// At least one router record was joined to the flow.
    pub const JOINED: u8 = 16;
}

/// What the join keeps of a tap flow: its span, its latest report, its application block. 120
/// bytes, no padding; its flags are in [`Entry::tap_flags`], and the non-null `platform` gives
/// `Option<TapSide>` its niche.
#[derive(Debug, Clone)]
pub(crate) struct TapSide {
    pub first_seen_ms: i64,
    pub stats: CompactStats,
    pub platform: Arc<AppPlatform>,
    pub qoe: Option<Box<QoeBlock>>,
    /// `last_seen_ms - first_seen_ms` (saturated to 49 days).
    pub last_seen_delta: u32,
    /// When the summary is forgotten, unless refreshed by another report: seconds of the join's
    /// clock since its epoch ([`crate::join::Joiner`]).
    pub expires_s: u32,
    /// Highest report sequence number merged.
    pub last_seq: u32,
    /// Reports merged, saturated at 65 535 (a report every 30 s for 22 days); published as the
    /// super-flow's `matched_tap_records`.
    pub reports: u16,
    /// Interned tap id.
    pub tap_id: u16,
}

impl TapSide {
    pub(crate) fn last_seen_ms(&self) -> i64 {
        self.first_seen_ms + i64::from(self.last_seen_delta)
    }

    pub(crate) fn set_span(&mut self, first: i64, last: i64) {
        self.first_seen_ms = first;
        self.last_seen_delta = u32::try_from(last.saturating_sub(first).max(0)).unwrap_or(u32::MAX);
    }

    /// Heap bytes owned by this summary alone (the interned platform is counted by the interner).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.qoe.as_ref().map_or(0, |q| q.heap_bytes())
    }
}

/// Bits of [`Entry::bits`].
pub(crate) mod ef {
    /// Slot in use.
    pub const LIVE: u8 = 1;
    /// Touched since the eviction hand last passed (CLOCK).
    pub const TOUCHED: u8 = 2;
}

/// One key of the table: 136 bytes (a unit test pins it), a 16-byte header and the tap summary.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entry {
    /// The table key (canonical key hash; without scope when `ignore_scope`).
    pub key: u64,
    /// First waiting router record ([`RouterSlot`]), `NIL` if none.
    pub router_head: u32,
    /// Bumped when the slot is freed or its tap summary dropped, so stale references (NAT index)
    /// are detected. 16 bits keep the entry small; a slot would have to be reused 65 536 times
    /// between two looks at one NAT candidate list to fool it.
    pub gen: u16,
    /// [`ef`] bits.
    pub bits: u8,
    /// [`tf`] flags of `tap` (0 without one).
    pub tap_flags: u8,
    pub tap: Option<TapSide>,
}

impl Entry {
    /// Slot in use.
    pub(crate) fn live(&self) -> bool {
        self.bits & ef::LIVE != 0
    }

    /// Touched since the eviction hand last passed.
    pub(crate) fn touched(&self) -> bool {
        self.bits & ef::TOUCHED != 0
    }

    pub(crate) fn set_touched(&mut self, on: bool) {
        if on {
            self.bits |= ef::TOUCHED;
        } else {
            self.bits &= !ef::TOUCHED;
        }
    }

    /// The tap summary with its flags.
    pub(crate) fn tap(&self) -> Option<(&TapSide, u8)> {
        self.tap.as_ref().map(|t| (t, self.tap_flags))
    }
}

/// A router record as the join holds it: behind an `Arc`, possibly shared with the caller (`run`
/// publishes the same record to `flow_records`). The super-flow it becomes holds the same `Arc`
/// ([`SuperFlow::flow`] is a [`Shared`]), so the record is never copied. On the heap, so a slot
/// stays small.
#[derive(Debug)]
pub(crate) struct Held(Arc<FlowRecord>);

impl Held {
    pub(crate) fn new(f: Arc<FlowRecord>) -> Self {
        Self(f)
    }

    pub(crate) fn get(&self) -> &FlowRecord {
        &self.0
    }

    /// The record, for the super-flow: the same allocation, not a copy.
    pub(crate) fn into_shared(self) -> Shared<FlowRecord> {
        Shared(self.0)
    }

    /// Heap bytes held for it: the shared allocation (counts and record) and the record's strings.
    pub(crate) fn heap_bytes(&self) -> usize {
        2 * size_of::<usize>() + size_of::<FlowRecord>() + flow_heap_bytes(&self.0)
    }
}

/// A router record waiting for the tap side.
#[derive(Debug)]
pub(crate) struct RouterSlot {
    pub flow: Option<Held>,
    /// The record's own key hash (its Kafka key), for revocation by partition.
    pub own_key: u64,
    /// Entry it waits in.
    pub entry: u32,
    /// Next waiting record of the same entry.
    pub next: u32,
    pub gen: u32,
    /// Heap bytes of `flow`, as accounted.
    pub heap: u32,
}

/// Application blocks, deduplicated: flows of one client and service share one.
#[derive(Default)]
pub(crate) struct PlatformInterner {
    map: KeyMap<Arc<AppPlatform>>,
    /// Bytes of the interned values (Arc header, value, strings).
    pub bytes: usize,
}

fn hash_platform(p: &AppPlatform) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut s = |o: &Option<String>| match o {
        Some(v) => {
            h.update(&[1]);
            h.update(v.as_bytes());
            h.update(&[0xff]);
        }
        None => h.update(&[0]),
    };
    s(&p.provider);
    s(&p.app_name);
    s(&p.client_os);
    s(&p.client_agent);
    s(&p.sni);
    s(&p.dns_name);
    s(&p.http_host);
    s(&p.tls_fingerprint);
    for a in &p.alpn {
        h.update(a.as_bytes());
        h.update(&[0xfe]);
    }
    h.update(p.app_type.as_str().as_bytes());
    h.update(&[p.detection_method as u8]);
    h.update(&p.confidence.to_bits().to_le_bytes());
    h.update(&p.detection_packets.to_le_bytes());
    h.digest()
}

/// Heap bytes of an application block held in an `Arc`.
pub(crate) fn platform_bytes(p: &AppPlatform) -> usize {
    let s = |o: &Option<String>| o.as_ref().map_or(0, String::capacity);
    2 * size_of::<usize>()
        + size_of::<AppPlatform>()
        + s(&p.provider)
        + s(&p.app_name)
        + s(&p.client_os)
        + s(&p.client_agent)
        + s(&p.sni)
        + s(&p.dns_name)
        + s(&p.http_host)
        + s(&p.tls_fingerprint)
        + p.alpn.capacity() * size_of::<String>()
        + p.alpn.iter().map(String::capacity).sum::<usize>()
}

impl PlatformInterner {
    /// The shared copy of `p`.
    pub(crate) fn intern(&mut self, p: &AppPlatform) -> Arc<AppPlatform> {
        let h = hash_platform(p);
        if let Some(a) = self.map.get(&h) {
            if **a == *p {
                return a.clone();
            }
            // A hash collision: keep the resident, give this one its own copy.
            return Arc::new(p.clone());
        }
        let a = Arc::new(p.clone());
        self.bytes += platform_bytes(&a);
        self.map.insert(h, a.clone());
        a
    }

    /// Forgets the values no flow holds any more.
    pub(crate) fn purge(&mut self) {
        let mut freed = 0;
        self.map.retain(|_, a| {
            let keep = Arc::strong_count(a) > 1;
            if !keep {
                freed += platform_bytes(a);
            }
            keep
        });
        self.bytes -= freed;
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn map_bytes(&self) -> usize {
        map_bytes::<Arc<AppPlatform>>(self.map.capacity())
    }
}

/// Bytes of a `HashMap<u64, V>` of this capacity (hashbrown: buckets a power of two, 7/8 full at
/// most, one control byte per bucket plus a group's worth).
pub(crate) fn map_bytes<V>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        if capacity < 4 {
            4
        } else {
            8
        }
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (size_of::<(u64, V)>() + 1) + 16
}

/// Heap bytes of a router record (strings, extensions).
pub(crate) fn flow_heap_bytes(f: &FlowRecord) -> usize {
    use schemas::ExtValue;
    let ext: usize = f
        .extensions
        .iter()
        .map(|e| {
            let name = match &e.name {
                Some(std::borrow::Cow::Owned(s)) => s.capacity(),
                _ => 0,
            };
            let v = match &e.value {
                ExtValue::String(s) | ExtValue::Address(s) | ExtValue::Hex(s) => s.capacity(),
                _ => 0,
            };
            name + v
        })
        .sum();
    f.record_id.capacity()
        + f.flow_key.as_ref().map_or(0, |k| k.capacity())
        + f.extensions.capacity() * size_of::<schemas::Extension>()
        + ext
}

/// Key → slab index: open addressing with linear probing over `u32` slab indices, the keys read
/// back from the slab. 4 bytes a bucket (a `HashMap<u64, u32>` takes 17), at most 3/4 full.
#[derive(Default)]
struct Index {
    buckets: Vec<u32>,
    len: usize,
    hasher: KeyHasherBuilder,
}

impl Index {
    fn home(&self, key: u64) -> usize {
        (self.hasher.hash_one(key) as usize) & (self.buckets.len() - 1)
    }

    fn get(&self, key: u64, keys: impl Fn(u32) -> u64) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        let mask = self.buckets.len() - 1;
        let mut p = self.home(key);
        loop {
            let s = self.buckets[p];
            if s == NIL {
                return None;
            }
            if keys(s) == key {
                return Some(s);
            }
            p = (p + 1) & mask;
        }
    }

    /// `key`'s home bucket, after starting to load it into the cache (a hint: no effect on
    /// results); `None` while the index is empty.
    fn prefetch(&self, key: u64) -> Option<u32> {
        let home = self.home_checked(key)?;
        prefetch_line(self.buckets.as_ptr().wrapping_add(home).cast());
        u32::try_from(home).ok()
    }

    /// The slab index in bucket `home`, if it holds one: what the entry prefetch follows (the
    /// first probe, right for most keys at our load; a miss here only loses the hint).
    fn at_bucket(&self, home: u32) -> Option<u32> {
        self.buckets
            .get(home as usize)
            .copied()
            .filter(|&s| s != NIL)
    }

    fn home_checked(&self, key: u64) -> Option<usize> {
        (!self.buckets.is_empty()).then(|| self.home(key))
    }

    /// Inserts `idx` for `key` (not present).
    fn insert(&mut self, key: u64, idx: u32, keys: impl Fn(u32) -> u64) {
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            let n = (self.buckets.len() * 2).max(16);
            let old = std::mem::replace(&mut self.buckets, vec![NIL; n]);
            for s in old.into_iter().filter(|&s| s != NIL) {
                self.place(keys(s), s);
            }
        }
        self.place(key, idx);
        self.len += 1;
    }

    fn place(&mut self, key: u64, idx: u32) {
        let mask = self.buckets.len() - 1;
        let mut p = self.home(key);
        while self.buckets[p] != NIL {
            p = (p + 1) & mask;
        }
        self.buckets[p] = idx;
    }

    /// Removes `key` (backward-shift deletion: no tombstones).
    fn remove(&mut self, key: u64, keys: impl Fn(u32) -> u64) {
        if self.buckets.is_empty() {
            return;
        }
        let mask = self.buckets.len() - 1;
        let mut p = self.home(key);
        loop {
            let s = self.buckets[p];
            if s == NIL {
                return;
            }
            if keys(s) == key {
                break;
            }
            p = (p + 1) & mask;
        }
        self.buckets[p] = NIL;
        self.len -= 1;
        let mut i = p;
        loop {
            i = (i + 1) & mask;
            let s = self.buckets[i];
            if s == NIL {
                return;
            }
            let h = self.home(keys(s));
            // The entry at i may move back to the hole at p unless its home lies in (p, i].
            let stays = if p <= i {
                p < h && h <= i
            } else {
                p < h || h <= i
            };
            if !stays {
                self.buckets[p] = s;
                self.buckets[i] = NIL;
                p = i;
            }
        }
    }
}

/// The slab of entries and the key index.
#[derive(Default)]
pub(crate) struct Table {
    index: Index,
    chunks: Vec<Box<[Entry]>>,
    free: Vec<u32>,
    /// Slots handed out so far (the high-water mark).
    slots: u32,
    pub live: usize,
}

fn key_at(chunks: &[Box<[Entry]>], i: u32) -> u64 {
    chunks[i as usize / CHUNK][i as usize % CHUNK].key
}

impl Table {
    pub(crate) fn get(&self, key: u64) -> Option<u32> {
        let chunks = &self.chunks;
        self.index.get(key, |i| key_at(chunks, i))
    }

    /// Prefetch, first stage: starts loading `key`'s index bucket; returns the bucket for
    /// [`Table::prefetch_entry`].
    pub(crate) fn prefetch_index(&self, key: u64) -> Option<u32> {
        self.index.prefetch(key)
    }

    /// Prefetch, second stage: starts loading the entry bucket `home` points to (reads the
    /// bucket, so call it some records after [`Table::prefetch_index`], once the bucket is in);
    /// returns the slot for [`Table::prefetch_qoe`].
    pub(crate) fn prefetch_entry(&self, home: u32) -> Option<u32> {
        let i = self.index.at_bucket(home)?;
        let e = self.checked_at(i)?;
        // An entry spans three cache lines; the lookup reads the first, a merge the rest.
        let p: *const u8 = std::ptr::from_ref(e).cast();
        prefetch_line(p);
        prefetch_line(p.wrapping_add(64));
        prefetch_line(p.wrapping_add(size_of::<Entry>() - 1));
        Some(i)
    }

    /// Prefetch, third stage: starts loading the QoE block of slot `i` if it holds `key` and has
    /// one (reads the entry: call it some records after [`Table::prefetch_entry`]).
    pub(crate) fn prefetch_qoe(&self, i: u32, key: u64) {
        let qoe = self
            .checked_at(i)
            .filter(|e| e.key == key)
            .and_then(|e| e.tap.as_ref())
            .and_then(|t| t.qoe.as_deref());
        if let Some(q) = qoe {
            // The block is copied whole into the super-flow: its first few lines.
            let p: *const u8 = std::ptr::from_ref(q).cast();
            for off in (0..size_of::<QoeBlock>()).step_by(64).take(4) {
                prefetch_line(p.wrapping_add(off));
            }
        }
    }

    /// [`Table::at`] for a slot a prefetch stage carried over (the table may have changed since).
    fn checked_at(&self, i: u32) -> Option<&Entry> {
        self.chunks
            .get(i as usize / CHUNK)
            .and_then(|c| c.get(i as usize % CHUNK))
    }

    pub(crate) fn slots(&self) -> u32 {
        self.slots
    }

    pub(crate) fn at(&self, i: u32) -> &Entry {
        &self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    pub(crate) fn at_mut(&mut self, i: u32) -> &mut Entry {
        &mut self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    /// A new live entry for `key` (which must not be in the table).
    pub(crate) fn insert(&mut self, key: u64) -> u32 {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.slots;
                if i as usize / CHUNK == self.chunks.len() {
                    self.chunks
                        .push(std::iter::repeat_with(Entry::default).take(CHUNK).collect());
                }
                self.slots += 1;
                i
            }
        };
        let e = self.at_mut(i);
        e.key = key;
        e.router_head = NIL;
        e.bits = ef::LIVE | ef::TOUCHED;
        e.tap = None;
        e.tap_flags = 0;
        let chunks = &self.chunks;
        self.index.insert(key, i, |j| key_at(chunks, j));
        self.live += 1;
        i
    }

    /// Frees an entry (which must hold no router record).
    pub(crate) fn remove(&mut self, i: u32) {
        let key = self.at(i).key;
        let chunks = &self.chunks;
        self.index.remove(key, |j| key_at(chunks, j));
        let e = self.at_mut(i);
        debug_assert_eq!(e.router_head, NIL);
        e.bits = 0;
        e.tap = None;
        e.tap_flags = 0;
        e.gen = e.gen.wrapping_add(1);
        self.free.push(i);
        self.live -= 1;
    }

    /// Drops everything.
    pub(crate) fn clear(&mut self) {
        *self = Table::default();
    }

    /// Bytes held by the index, the slab and the free list (not by what entries point to).
    pub(crate) fn bytes(&self) -> usize {
        self.index.buckets.capacity() * size_of::<u32>()
            + self.chunks.capacity() * size_of::<Box<[Entry]>>()
            + self.chunks.len() * CHUNK * size_of::<Entry>()
            + self.free.capacity() * size_of::<u32>()
    }
}

/// Asks the CPU to load the cache line holding `p` (x86-64; elsewhere nothing). A prefetch never
/// faults, so `p` need not be dereferenceable, and it changes no result.
#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` only hints the cache; it reads no memory architecturally and cannot
    // fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
