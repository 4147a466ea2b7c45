//! The join's counters and gauges.

use serde::Serialize;

/// Counters (since start) and gauges (now) of a [`crate::join::Joiner`]. Every router record is
/// emitted exactly once, so `router_records == emitted_matched + emitted_partial +
/// emitted_unmatched + pending_routers` holds at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct JoinMetrics {
    /// Router flow records taken (counter).
    pub router_records: u64,
    /// Tap records taken (counter).
    pub tap_records: u64,
    /// Router records without a usable `flow_key` (no addresses, or not 16 hex digits): emitted
    /// unmatched at once (counter).
    pub router_no_key: u64,
    /// Tap records whose `key.flow_key` is not 16 hex digits: not joinable, ignored here (the tap
    /// record itself is published by its own pipeline) (counter).
    pub tap_bad_key: u64,
    /// Super-flows emitted `matched` (counter).
    pub emitted_matched: u64,
    /// Super-flows emitted `partial` (counter).
    pub emitted_partial: u64,
    /// Super-flows emitted `unmatched` (counter).
    pub emitted_unmatched: u64,
    /// Of the matched and partial ones, found by the key without its VLAN/VRF (counter).
    pub emitted_without_scope: u64,
    /// Of the matched and partial ones, found by NAT mode (counter).
    pub emitted_nat: u64,
    /// Router records emitted when their grace ran out (counter).
    pub router_grace_expired: u64,
    /// Router records emitted `unmatched` on arrival because no tap record had reached the join
    /// for `max(grace_ms, tap_ttl_ms)` and none was held for their key
    /// (`emit_at_once_without_tap`) (counter).
    pub router_no_tap: u64,
    /// Router records emitted before their grace ran out because `max_pending_routers` was
    /// reached (counter).
    pub router_cap_emitted: u64,
    /// Keys evicted because `max_entries` was reached; their waiting router records were emitted
    /// and counted in `router_evicted` (counter).
    pub entries_evicted: u64,
    /// Router records emitted because their key was evicted (counter).
    pub router_evicted: u64,
    /// Router records emitted by a flush (shutdown or partition revocation) (counter).
    pub router_flushed: u64,
    /// Tap summaries forgotten after `tap_ttl_ms` without a new report (counter).
    pub tap_expired: u64,
    /// Of the tap summaries forgotten (expired, evicted or flushed), those no router record joined:
    /// flows the routers did not report (sampled out) or whose router records went elsewhere
    /// (counter).
    pub tap_never_joined: u64,
    /// Tap records that arrived after the grace of router records ending when they did (their
    /// last packet is older than `grace_ms` on the join's clock) (counter).
    pub tap_late: u64,
    /// Tap records repeating the last merged report (same sequence number) (counter).
    pub tap_duplicates: u64,
    /// Tap records older than the last merged report: only their span was merged (counter).
    pub tap_out_of_order: u64,
    /// Tap flows that replaced an ended flow of the same key (port reuse) (counter).
    pub tap_new_generation: u64,
    /// Keys held (gauge).
    pub entries: u64,
    /// Tap flow summaries held (gauge).
    pub tap_flows: u64,
    /// Router records waiting for the tap side (gauge).
    pub pending_routers: u64,
    /// Distinct application blocks held (gauge).
    pub interned_platforms: u64,
    /// Bytes of join state: tables, summaries, waiting router records, interned values,
    /// computed from capacities and lengths (gauge).
    pub state_bytes: u64,
}
