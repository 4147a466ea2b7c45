//! Bounded "top N" counting: the Space-Saving algorithm (Metwally, Agrawal, El Abbadi, "Efficient
//! computation of frequent and top-k elements in data streams", ICDT 2005).
//!
//! At most `capacity` keys are held. While there is room every count is exact. When the table is
//! full, a new key takes the place of the key with the smallest count and starts from that count
//! plus one; the inherited part is kept as the entry's `error`, so a count is always an upper bound
//! and `count - error` a lower bound, and any key whose true count exceeds `total / capacity` is
//! guaranteed to be held. The octets of a replaced key are not inherited (they count from the
//! replacement on: a lower bound).

use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    flows: u64,
    octets: u64,
    error: u64,
}

/// A bounded top-N counter of flows (and their octets) by name.
#[derive(Debug)]
pub struct TopN {
    capacity: usize,
    entries: HashMap<String, Counts>,
    /// Keys that replaced another one (the table was full).
    replaced: u64,
}

/// One row of a top-N list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopRow {
    /// The key (provider, application name, ...).
    pub name: String,
    /// Flows counted for it (exact while `error` is 0, an upper bound otherwise).
    pub flows: u64,
    /// Octets of those flows (router counters, upscaled by sampling; a lower bound when `error`
    /// is not 0).
    pub octets: u64,
    /// Flows inherited from the key it replaced: the true count is at least `flows - error`.
    pub error: u64,
}

impl TopN {
    /// An empty counter holding at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            replaced: 0,
        }
    }

    /// Counts one flow of `octets` for `name`.
    pub fn add(&mut self, name: &str, octets: u64) {
        if let Some(c) = self.entries.get_mut(name) {
            c.flows += 1;
            c.octets = c.octets.saturating_add(octets);
            return;
        }
        let mut inherited = 0;
        if self.entries.len() >= self.capacity {
            // Full: the smallest count gives way (ties: any of them).
            let victim = self
                .entries
                .iter()
                .min_by_key(|(_, c)| c.flows)
                .map(|(k, c)| (k.clone(), c.flows));
            if let Some((k, flows)) = victim {
                self.entries.remove(&k);
                inherited = flows;
                self.replaced += 1;
            }
        }
        self.entries.insert(
            name.to_owned(),
            Counts {
                flows: inherited + 1,
                octets,
                error: inherited,
            },
        );
    }

    /// The `n` keys with the most flows, most first (ties by name).
    pub fn top(&self, n: usize) -> Vec<TopRow> {
        let mut rows: Vec<TopRow> = self
            .entries
            .iter()
            .map(|(k, c)| TopRow {
                name: k.clone(),
                flows: c.flows,
                octets: c.octets,
                error: c.error,
            })
            .collect();
        rows.sort_by(|a, b| b.flows.cmp(&a.flows).then_with(|| a.name.cmp(&b.name)));
        rows.truncate(n);
        rows
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys that replaced another one since start (0: every count is exact).
    pub fn replaced(&self) -> u64 {
        self.replaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_while_there_is_room() {
        let mut t = TopN::new(8);
        for (name, n) in [("netflix", 5), ("zoom", 3), ("youtube", 7)] {
            for _ in 0..n {
                t.add(name, 100);
            }
        }
        let top = t.top(2);
        assert_eq!(
            top,
            vec![
                TopRow {
                    name: "youtube".into(),
                    flows: 7,
                    octets: 700,
                    error: 0
                },
                TopRow {
                    name: "netflix".into(),
                    flows: 5,
                    octets: 500,
                    error: 0
                },
            ]
        );
        assert_eq!((t.len(), t.replaced()), (3, 0));
    }

    #[test]
    fn bounded_and_heavy_hitters_survive_a_stream_of_rare_keys() {
        let mut t = TopN::new(16);
        // A heavy key among many one-off keys.
        for i in 0..10_000u32 {
            if i % 4 == 0 {
                t.add("heavy", 1);
            } else {
                t.add(&format!("rare-{i}"), 1);
            }
        }
        assert_eq!(t.len(), 16);
        let top = t.top(1);
        assert_eq!(top[0].name, "heavy");
        // Upper and lower bounds bracket the true count (2500).
        assert!(top[0].flows >= 2500 && top[0].flows - top[0].error <= 2500);
        assert!(t.replaced() > 0);
    }

    #[test]
    fn ties_are_ordered_by_name() {
        let mut t = TopN::new(4);
        t.add("b", 1);
        t.add("a", 1);
        let names: Vec<String> = t.top(10).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
