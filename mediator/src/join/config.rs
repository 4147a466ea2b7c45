//! The `[join]` section of the run configuration.

use serde::{Deserialize, Serialize};

/// How the join waits, how much state it keeps, and which matching modes are on.
///
/// ```toml
/// [join]
/// grace_ms = 45000
/// tap_ttl_ms = 120000
/// max_entries = 4000000
/// max_pending_routers = 1000000
/// nat = false
/// ignore_scope = false
/// emit_at_once_without_tap = true
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JoinConfig {
    /// How long a router flow record waits for the tap records that would complete it (cover its
    /// time span and classify it), ms of the join's clock. When it runs out the record is emitted
    /// with what the tap sent so far (`partial`) or none (`unmatched`). 0 emits every router record
    /// at once. Default `45000` (the tap reports every 30 s; 15 s for transport delays).
    pub grace_ms: u64,
    /// How long the tap's summary of a flow is kept after its last tap record, ms, for the router
    /// records that come later (routers export a flow after its inactive timeout, often 15 s, plus
    /// export and transport delays). Default `120000`.
    pub tap_ttl_ms: u64,
    /// Most keys (conversations) held, tap summaries and pending router records together. A new key
    /// beyond it evicts one (least recently used, approximately): its pending router records are
    /// emitted with what is known, its tap summary is forgotten, both counted. Default `4000000`.
    pub max_entries: usize,
    /// Most router records waiting for the tap side (each holds the whole record, about 0.8 KiB).
    /// Beyond it the oldest waiting record is emitted early, counted. Default `1000000`.
    pub max_pending_routers: usize,
    /// Share of a router flow's time span the tap must cover for `matched`, 0 to 1. Default `0.9`.
    pub min_coverage: f32,
    /// Clock tolerance between routers and tap, ms: the tap's span is widened by it on both sides
    /// when computing coverage. Default `2000`.
    pub clock_tolerance_ms: u64,
    /// Join on the key without its scope (VLAN/VRF), for sites where the router and the tap do not
    /// agree on it (the router reports a VRF, the mirror port a VLAN, or only one side sees the
    /// tag). Matches whose scopes differ are marked `key_without_scope` and their confidence is
    /// multiplied by 0.9. Needs both sides in one mediator: with Kafka, producers partition by the
    /// scoped key, so two sides that disagree on the scope may land in different partitions.
    /// Default `false`.
    pub ignore_scope: bool,
    /// NAT mode, for a tap on the inside of a NAT: the router then sees the translated client
    /// address and port, so the keys differ. A router record with no tap summary under its own key
    /// is matched, when its grace runs out, to the tap flow with the same protocol and server
    /// endpoint that best overlaps it in time and volume (see the module documentation). Marked
    /// `nat`; the confidence says how ambiguous the choice was. Needs both sides in one mediator
    /// (their keys, hence their Kafka partitions, differ). Default `false`.
    pub nat: bool,
    /// NAT mode: a candidate needs at least this confidence to be `matched`; below it, with some
    /// overlap, the record is `partial`. Default `0.5`.
    pub nat_min_confidence: f32,
    /// When no tap record at all has reached the join for `max(grace_ms, tap_ttl_ms)` (no tap at
    /// the site, or it is down: every tap summary has expired), a router record with nothing from
    /// the tap on its key is emitted `unmatched` at once instead of waiting out its grace: only a
    /// silent tap coming back could complete it, and holding it costs about 0.9 KiB a record. The
    /// same span after start counts as "a tap may be about to report". With a tap reporting, every
    /// record gets its full grace. Counted in `router_no_tap`. Default `true`.
    pub emit_at_once_without_tap: bool,
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            grace_ms: 45_000,
            tap_ttl_ms: 120_000,
            max_entries: 4_000_000,
            max_pending_routers: 1_000_000,
            min_coverage: 0.9,
            clock_tolerance_ms: 2_000,
            ignore_scope: false,
            nat: false,
            nat_min_confidence: 0.5,
            emit_at_once_without_tap: true,
        }
    }
}
