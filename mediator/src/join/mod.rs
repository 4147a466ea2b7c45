//! The join: each router [`FlowRecord`](schemas::FlowRecord) with the tap records of the same
//! canonical key whose time overlaps it, emitted as a [`SuperFlow`](schemas::SuperFlow). Nothing is
//! dropped for want of a match: every router record comes out exactly once, `matched`, `partial` or
//! `unmatched`, with its confidence.
//!
//! # API
//!
//! ```no_run
//! use mediator::join::{JoinConfig, Joiner};
//! # let (flow, tap_record, now_ms) = (schemas::sample::flow_record(), schemas::sample::tap_record(), 0);
//! let mut j = Joiner::new(JoinConfig::default());
//! let mut out = Vec::new();
//! j.tap(&tap_record, now_ms, &mut out); // a tap record (by reference: it is also published as is)
//! j.router(flow, now_ms, &mut out);     // a router record (moved: it ends up in a super-flow)
//! j.tick(now_ms, &mut out);             // about once a second: grace and TTL expiry
//! j.flush_all(&mut out);                // SIGTERM: every waiting record out
//! // Partition revocation: j.flush_partitions(&revoked, count, Partitioner::ConsistentRandom, &mut out)
//! let m = j.metrics();                  // counters, gauges, state bytes
//! ```
//!
//! The join is synchronous and single-threaded; time is the `now_ms` the caller passes (the join's
//! clock is the largest seen: wall-clock time in a live mediator, event time in a replay, anything
//! in tests). It never blocks and never allocates more than its caps allow.
//!
//! # How it works
//!
//! **State.** One entry per key (the canonical key hash, parsed from its 16 hex digits once), in a
//! chunked slab indexed by a hash map. An entry holds the tap side *summarised* — the span from the
//! flow's first packet to its latest report, the latest report's Network QoS in compact form, the
//! latest QoE block, the application block interned (flows of one client and service share one
//! copy), the report count, the tap id interned — and the router records waiting for it. A tap
//! summary lives `tap_ttl_ms` after its latest report; a router record waits at most `grace_ms`.
//!
//! **Matching.** A router record spans `[flow_start, flow_end]`; the tap flow of its key covers
//! `[first_seen − tolerance, last_seen + tolerance]`. *Coverage* is the share of the router span the
//! tap span covers.
//! - `matched`: coverage ≥ `min_coverage` and the tap classified the flow (app type not
//!   `unknown`); confidence = coverage.
//! - `partial`: some coverage, but less, or no classification; confidence = coverage. The tap's
//!   blocks are attached.
//! - `unmatched`: no tap flow on the key, or no time overlap; confidence 0, no tap blocks.
//!
//! A router record is emitted as soon as its verdict is *settled* — `matched`, or the tap flow has
//! ended (its `end` report came) and the router flow does not start after it — when it arrives or
//! when a tap report arrives for its key. Otherwise it waits, and when its grace runs out it is
//! emitted with what the tap sent so far. A router flow split by active timeouts arrives as several
//! records; each is judged on its own span and gives its own super-flow. The tap blocks attached
//! are the tap's latest report when the record is emitted (`stats` cumulative since the flow's
//! first packet, `qoe` the latest window measured).
//!
//! **No tap at all.** When no tap record has reached the join for `max(grace_ms, tap_ttl_ms)`
//! (counting from its start), every tap summary has expired and nothing but a silent tap coming
//! back could complete a router record: one with nothing from the tap on its key is then emitted
//! `unmatched` on arrival instead of being held for its grace (`emit_at_once_without_tap`,
//! counted in `router_no_tap`). A router record can be handed over shared
//! ([`Joiner::router_shared`]: `run` publishes the same record to `flow_records`); the join then
//! holds the `Arc` while the record waits, and the super-flow holds the same `Arc` (its `flow` is a
//! `Shared<FlowRecord>`): the record is never copied.
//!
//! **Sampling.** Routers' counters come upscaled by their sampling interval. For a `matched`
//! record, `enrichment.router_tap_ratio` = router packets ÷ the tap's packets in the same direction
//! (the router record's source is the tap's client or its server) over the router span — the tap's
//! count prorated over its span when the router record covers only part of it (constant rate). Near
//! 1 when the exporter's sampling interval is right; per flow it scatters with the sampling, so
//! read it averaged.
//!
//! **VLAN/VRF.** The scope is part of the canonical key, so flows of overlapping private address
//! spaces stay apart. Where the router and the tap disagree on it (the router exports a VRF, the
//! mirror port carries a VLAN), `ignore_scope = true` keys the table by the key without scope;
//! matches whose scopes differ are marked `key_match = key_without_scope`, confidence × 0.9.
//!
//! **NAT.** With the tap inside a NAT, the router sees the translated client, so the keys differ.
//! `nat = true` indexes tap flows by (protocol, server address, server port). A router record with
//! no tap flow under its own key waits its grace, then takes the candidate (either of its endpoints
//! as server) with the best *score* = coverage × volume likeness (`min/max` of the router's packets
//! and the tap's in that direction); confidence = score × score ÷ (sum of all candidates' scores),
//! so a server with many simultaneous clients gives low confidence; below `nat_min_confidence` a
//! would-be `matched` is `partial`. Marked `key_match = nat`. It is a heuristic and says so: it can
//! pick the wrong client when several have similar flows to one server at the same time.
//!
//! **Bounds.** `max_entries` caps the keys: a new key beyond it evicts the least recently touched
//! (CLOCK), emitting its waiting router records and forgetting its tap summary (counted).
//! `max_pending_routers` caps waiting router records: beyond it the oldest is emitted early
//! (counted). [`JoinMetrics::state_bytes`] is the state's size computed from its capacities.
//!
//! **Scale-out and rebalances.** Both topics are keyed by the flow key and co-partitioned, so both
//! sides of a flow meet in one mediator. On revocation, [`Joiner::flush_partitions`] (or
//! [`Joiner::flush_where`]) emits the revoked partitions' waiting router records (settled with
//! what is known) and forgets their tap summaries; the mediator then commits its offsets, so the
//! new owner neither re-emits nor misses a router record. What a rebalance can cost is enrichment,
//! not records: a router record reaching the new owner for a flow whose tap reports were consumed
//! by the old one would find only the tap's later reports, which is why `supernetflow mediate`
//! commits tap partitions rewound to the oldest report still in use (see
//! [`crate::scaleout::engine`]), so the new owner re-reads them. Which partitioner the producers use is a
//! parameter ([`Partitioner`]: librdkafka's default `consistent_random`, CRC-32, or Java's
//! murmur2). `ignore_scope` and `nat` join records whose keys differ, which Kafka may put in
//! different partitions: they need one mediator for both sides (or producers keyed accordingly).
//!
//! **Sessions.** [`session::SessionRouterQos`] adds the router counters of the super-flows of a
//! session's member flows to the session's `network` block.
//!
//! # Layout
//! - [`config`]: [`JoinConfig`], the `[join]` section.
//! - `joiner`: [`Joiner`], the state machine.
//! - `matching`: coverage, verdicts, building super-flows.
//! - `state`: the compact state and its byte accounting.
//! - [`metrics`]: [`JoinMetrics`], the counters and gauges.
//! - [`partition`]: Kafka partitioners, for revocation.
//! - [`session`]: router-side QoS of application sessions.

pub mod config;
mod joiner;
mod matching;
pub mod metrics;
pub mod partition;
pub mod session;
mod state;
#[cfg(test)]
mod tests;

pub use config::JoinConfig;
pub use joiner::{Ahead, Joiner};
pub use metrics::JoinMetrics;
pub use partition::Partitioner;
