//! `SuperFlow`: a router flow joined with the tap's view of it.
//!
//! The router's [`FlowRecord`] is embedded whole, unchanged, under `flow` (not flattened): its JSON
//! stays byte-for-byte what the collector emits, its own `schema_version` and `record_id` do not
//! clash with the super-flow's, and Parquet readers get one `flow` struct column whose sub-fields
//! read as `flow.octets`, `flow.src_addr`, .... The tap's blocks sit beside it, `null` when no tap
//! record matched.

use crate::flow::FlowRecord;
use crate::kind::{Record, RecordKind};
use crate::qoe::Qoe;
use crate::shared::Shared;
use crate::stats::FlowStats;
use crate::tap::{AppPlatform, AppType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A router flow joined with the tap records that cover it. One per router flow record: nothing is
/// dropped because a match is missing, and `enrichment` says how it was matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SuperFlow {
    /// Version of the record model the record was written with ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u16,
    /// Identifies this record: the embedded flow's `record_id` (one super-flow per router flow
    /// record), so `super_flows` joins `flow_records` on it and duplicates stay detectable.
    pub record_id: String,
    /// Join outcome: `enrichment.status` repeated as a top-level column, the one queries and
    /// dashboards filter on (matched / partial / unmatched).
    pub enrichment_status: MatchStatus,
    /// Application type from the tap: `app.app_type` repeated as a top-level column; `unknown`
    /// when unmatched.
    pub app_type: AppType,
    /// Service provider from the tap (e.g. `netflix`): `app.provider` repeated as a top-level
    /// column; `null` when unmatched or not attributed.
    pub provider: Option<String>,
    /// The router's flow, as the collector normalised it.
    // Shared: `run` publishes the same record to `flow_records`, and the join hands it on to the
    // super-flow without copying it; published exactly as the record itself.
    pub flow: Shared<FlowRecord>,
    /// Application & user platform from the matched tap records; `null` when unmatched.
    // Shared: the join hands one copy of a flow's application block to every super-flow that
    // carries it instead of cloning its strings; published exactly as the block itself.
    pub app: Option<Shared<AppPlatform>>,
    /// Network QoS from the matched tap records: the tap's latest report on the flow when the
    /// super-flow was emitted (counters cumulative since the flow's first packet); `null` when
    /// unmatched.
    pub stats: Option<FlowStats>,
    /// Application QoE from the matched tap records: the latest window the tap measured on the flow
    /// when the super-flow was emitted; `null` when unmatched or when the tap measured none.
    pub qoe: Option<Qoe>,
    /// How the flow was matched.
    pub enrichment: Enrichment,
}

impl SuperFlow {
    /// A super-flow for a router flow no tap record matched (the flow given by value or shared).
    pub fn unmatched(flow: impl Into<Shared<FlowRecord>>) -> Self {
        let flow = flow.into();
        Self {
            schema_version: crate::SCHEMA_VERSION,
            record_id: flow.record_id.as_str().to_owned(),
            enrichment_status: MatchStatus::Unmatched,
            app_type: AppType::Unknown,
            provider: None,
            flow,
            app: None,
            stats: None,
            qoe: None,
            enrichment: Enrichment::default(),
        }
    }

    /// Sets the top-level columns (`enrichment_status`, `app_type`, `provider`) from
    /// `enrichment` and `app`; whoever changes those calls it before emitting.
    pub fn sync_columns(&mut self) {
        self.enrichment_status = self.enrichment.status;
        self.app_type = self.app.as_ref().map_or(AppType::Unknown, |a| a.app_type);
        self.provider = self.app.as_ref().and_then(|a| a.provider.clone());
    }
}

impl Record for SuperFlow {
    const KIND: RecordKind = RecordKind::SuperFlow;
    fn schema_version(&self) -> u16 {
        self.schema_version
    }
    fn record_id(&self) -> &str {
        &self.record_id
    }
    fn message_key(&self) -> Option<&str> {
        self.flow.flow_key.as_deref()
    }
}

/// Outcome of the join for one router flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchStatus {
    /// Tap records with the same canonical key cover the flow's time span.
    Matched,
    /// No tap record with the flow's key arrived within the grace period.
    #[default]
    Unmatched,
    /// Tap records with the same key exist but cover only part of the flow's time span, or lack
    /// the classification.
    Partial,
}

/// How a super-flow was matched.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Enrichment {
    /// Join outcome.
    pub status: MatchStatus,
    /// Match confidence, 0 to 1: the share of the flow's time span the tap records cover, times
    /// 0.9 when the key matched only without the VLAN/VRF, and in NAT mode times the volume
    /// likeness and the share of the best candidate among all candidates; 0 when unmatched.
    pub confidence: f32,
    /// Id of the tap whose records matched; `null` when unmatched.
    pub tap: Option<String>,
    /// Number of tap records joined into this super-flow (the tap's reports on the flow merged
    /// when it was emitted).
    pub matched_tap_records: u32,
    /// How the tap flow was found: by the canonical key, by the key without its VLAN/VRF, or by
    /// the server endpoint behind a NAT; `none` when unmatched.
    #[serde(default)]
    pub key_match: KeyMatch,
    /// Check of the exporter's sampling: the router's packets (upscaled by its sampling interval)
    /// divided by the packets the tap counted in the same direction over the flow's time span
    /// (the tap's count prorated over its reports' span). Near 1 when the sampling interval in
    /// force is right; it scatters per flow (sampling is random) and is best read as an average
    /// over many flows. `null` unless matched and the tap counted packets.
    #[serde(default)]
    pub router_tap_ratio: Option<f32>,
}

/// How the join found the tap flow of a router flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyMatch {
    /// No tap flow.
    #[default]
    None,
    /// Same canonical key, VLAN/VRF included.
    Canonical,
    /// Same protocol and endpoints, different VLAN/VRF (join option `ignore_scope`).
    KeyWithoutScope,
    /// Same protocol and server endpoint, client translated by a NAT (join option `nat`): chosen
    /// by time overlap and volume, so it can be wrong where one server has many clients at once.
    Nat,
}
