//! `FlowTable`: the twin of the kernel program as a whole — its LRU flow map, its per-packet
//! accounting and its "send to user space?" decision — plus what user space keeps per flow.
//!
//! The kernel's LRU hash evicts silently when full; here eviction is explicit and counted, and the
//! evicted flows are handed back so that their records are still written. Eviction is "LRU-ish":
//! when the table is full, the oldest eighth (by last packet time) goes in one batch, which keeps
//! the cost per packet constant.

use super::key::TwinKey;
use super::parse::{parse, LinkType, NotAccounted, Parsed};
use super::state::{send_len, send_rule, FlowState, SendConfig, SendReason};
use serde::Serialize;
use std::collections::HashMap;

/// One flow: the kernel-side counters and user space's own data about it.
#[derive(Debug, Clone)]
pub struct Entry<U> {
    /// The counters, as the kernel keeps them.
    pub state: FlowState,
    /// User space's data (DPI state, classification).
    pub user: U,
}

/// What happened to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not counted into any flow, and why.
    NotAccounted(NotAccounted),
    /// Counted into a flow.
    Accounted(Accounted),
}

/// A frame counted into a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accounted {
    /// What the parser read.
    pub parsed: Parsed,
    /// The flow was created by this frame.
    pub new_flow: bool,
    /// Sent to user space: why, and how many bytes of the frame.
    pub send: Option<(SendReason, usize)>,
}

/// Counters of the table (the kernel's `snf_counters`, plus evictions and expiries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableCounters {
    /// Frames seen.
    pub packets: u64,
    /// Frames counted into a flow.
    pub accounted: u64,
    /// Not counted: non-IP ethertype.
    pub na_non_ip: u64,
    /// Not counted: malformed.
    pub na_malformed: u64,
    /// Not counted: non-first fragment.
    pub na_fragment: u64,
    /// Flows created.
    pub new_flows: u64,
    /// Flows evicted because the table was full.
    pub evicted: u64,
    /// Frames sent to user space.
    pub events: u64,
    /// Bytes of those frames.
    pub event_bytes: u64,
}

/// The bounded flow table.
#[derive(Debug)]
pub struct FlowTable<U> {
    flows: HashMap<TwinKey, Entry<U>>,
    capacity: usize,
    cfg: SendConfig,
    /// Counters.
    pub counters: TableCounters,
    evicted: Vec<(TwinKey, Entry<U>)>,
}

impl<U: Default> FlowTable<U> {
    /// A table of at most `capacity` flows (at least 8).
    pub fn new(capacity: usize, cfg: SendConfig) -> Self {
        FlowTable {
            flows: HashMap::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(8),
            cfg,
            counters: TableCounters::default(),
            evicted: Vec::new(),
        }
    }

    /// The sending configuration.
    pub fn config(&self) -> &SendConfig {
        &self.cfg
    }

    /// Counts one frame captured at `ts_ns` and decides whether it goes to user space. A flow
    /// evicted to make room is queued for [`FlowTable::take_evicted`].
    pub fn account(&mut self, ts_ns: u64, frame: &[u8], link: LinkType) -> Outcome {
        self.counters.packets += 1;
        let p = match parse(frame, link) {
            Ok(p) => p,
            Err(na) => {
                match na {
                    NotAccounted::NonIp => self.counters.na_non_ip += 1,
                    NotAccounted::Malformed => self.counters.na_malformed += 1,
                    NotAccounted::Fragment => self.counters.na_fragment += 1,
                }
                return Outcome::NotAccounted(na);
            }
        };
        let mut new_flow = false;
        if !self.flows.contains_key(&p.key) {
            if self.flows.len() >= self.capacity {
                self.evict_oldest();
            }
            self.flows.insert(
                p.key,
                Entry {
                    state: FlowState::new_for(&p),
                    user: U::default(),
                },
            );
            self.counters.new_flows += 1;
            new_flow = true;
        }
        let Some(e) = self.flows.get_mut(&p.key) else {
            // Just inserted; cannot happen, but a miss is a dropped packet, not a panic.
            return Outcome::NotAccounted(NotAccounted::Malformed);
        };
        let before = e.state.total_packets();
        e.state.count(&p, ts_ns);
        self.counters.accounted += 1;
        let send = send_rule(before, e.state.verdict, self.cfg.first_packets).and_then(|r| {
            let cap = send_len(r, &p, &self.cfg).min(frame.len());
            (cap >= 1).then_some((r, cap))
        });
        if let Some((_, cap)) = send {
            e.state.sent_to_user = e.state.sent_to_user.wrapping_add(1);
            self.counters.events += 1;
            self.counters.event_bytes += cap as u64;
        }
        Outcome::Accounted(Accounted {
            parsed: p,
            new_flow,
            send,
        })
    }

    fn evict_oldest(&mut self) {
        let n = (self.capacity / 8).max(1);
        let mut ages: Vec<(u64, TwinKey)> = self
            .flows
            .iter()
            .map(|(k, e)| (e.state.last_seen_ns(), *k))
            .collect();
        if ages.len() > n {
            ages.select_nth_unstable(n - 1);
            ages.truncate(n);
        }
        for (_, k) in ages {
            if let Some(e) = self.flows.remove(&k) {
                self.counters.evicted += 1;
                self.evicted.push((k, e));
            }
        }
    }

    /// Flows evicted since the last call.
    pub fn take_evicted(&mut self) -> Vec<(TwinKey, Entry<U>)> {
        std::mem::take(&mut self.evicted)
    }

    /// The flow of `key`.
    pub fn get(&self, key: &TwinKey) -> Option<&Entry<U>> {
        self.flows.get(key)
    }

    /// The flow of `key`, mutable (user space writes the verdict and its own data).
    pub fn get_mut(&mut self, key: &TwinKey) -> Option<&mut Entry<U>> {
        self.flows.get_mut(key)
    }

    /// Number of flows held.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// No flows held.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Every flow held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TwinKey, &Entry<U>)> {
        self.flows.iter()
    }

    /// Every flow held, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&TwinKey, &mut Entry<U>)> {
        self.flows.iter_mut()
    }

    /// Removes and returns the flows for which `done` is true.
    pub fn remove_where(
        &mut self,
        mut done: impl FnMut(&TwinKey, &Entry<U>) -> bool,
    ) -> Vec<(TwinKey, Entry<U>)> {
        let keys: Vec<TwinKey> = self
            .flows
            .iter()
            .filter(|(k, e)| done(k, e))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.flows.remove(&k).map(|e| (k, e)))
            .collect()
    }

    /// Removes and returns every flow (end of input).
    pub fn drain(&mut self) -> Vec<(TwinKey, Entry<U>)> {
        self.flows.drain().collect()
    }
}
