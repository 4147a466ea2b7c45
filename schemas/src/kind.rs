//! Record kinds, the [`Record`] trait every published record implements, and the report state
//! shared by the records that are emitted more than once for the same flow or session.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The four records that cross a process boundary. Each has its own Kafka topic and Parquet table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// [`crate::FlowRecord`]: a router's flow, normalised by the collector.
    Flow,
    /// [`crate::TapRecord`]: what the eBPF tap learned about one flow.
    Tap,
    /// [`crate::SuperFlow`]: a router flow joined with the tap's view of it.
    SuperFlow,
    /// [`crate::AppSession`]: one application session across its flows.
    AppSession,
}

impl RecordKind {
    /// Every kind, in publication order.
    pub const ALL: [RecordKind; 4] = [
        RecordKind::Flow,
        RecordKind::Tap,
        RecordKind::SuperFlow,
        RecordKind::AppSession,
    ];

    /// Short name: `flow`, `tap`, `super_flow`, `app_session` (the serde name).
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Flow => "flow",
            RecordKind::Tap => "tap",
            RecordKind::SuperFlow => "super_flow",
            RecordKind::AppSession => "app_session",
        }
    }

    /// Table (Parquet folder) and topic base name: `flow_records`, `tap_records`, `super_flows`,
    /// `app_sessions`. The published schema files are named after it.
    pub fn table_name(self) -> &'static str {
        match self {
            RecordKind::Flow => "flow_records",
            RecordKind::Tap => "tap_records",
            RecordKind::SuperFlow => "super_flows",
            RecordKind::AppSession => "app_sessions",
        }
    }

    /// Table name with the schema version, for topic and file names: `flow_records_v1`.
    pub fn versioned_name(self) -> String {
        format!("{}_v{}", self.table_name(), crate::SCHEMA_VERSION)
    }

    /// Name of the Rust type (and of the Avro record): `FlowRecord`, `TapRecord`, ...
    pub fn type_name(self) -> &'static str {
        match self {
            RecordKind::Flow => "FlowRecord",
            RecordKind::Tap => "TapRecord",
            RecordKind::SuperFlow => "SuperFlow",
            RecordKind::AppSession => "AppSession",
        }
    }

    /// Parses [`RecordKind::name`] or [`RecordKind::table_name`].
    pub fn parse(s: &str) -> Option<RecordKind> {
        RecordKind::ALL
            .into_iter()
            .find(|k| k.name() == s || k.table_name() == s)
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What every published record offers the sinks.
pub trait Record: Serialize + DeserializeOwned + JsonSchema {
    /// The record's kind.
    const KIND: RecordKind;
    /// [`crate::SCHEMA_VERSION`] the record was written with.
    fn schema_version(&self) -> u16;
    /// The record's id: 16 lower-case hex digits, stable for the same input.
    fn record_id(&self) -> &str;
    /// Kafka message key: the canonical flow key hash for flow, tap and super-flow records (so both
    /// sides of a flow land in the same partition), the session id for application sessions.
    fn message_key(&self) -> Option<&str>;
}

/// Which report of a flow or session a record is. Records about a live flow or session are
/// emitted more than once; each says where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// First report: the flow or session was just seen (or classified).
    #[default]
    Start,
    /// Periodic report while the flow or session is active (every 30 s by default).
    Update,
    /// Last report: the flow or session ended or timed out.
    End,
}

/// XXH3-64 of `parts`, each prefixed by its length so that the split is unambiguous, as 16 hex
/// digits. Used for the record and session ids of the records the tap and the mediator build.
pub(crate) fn hash_id(parts: &[&[u8]]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for p in parts {
        h.update(&(p.len() as u64).to_be_bytes());
        h.update(p);
    }
    format!("{:016x}", h.digest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for k in RecordKind::ALL {
            assert_eq!(RecordKind::parse(k.name()), Some(k));
            assert_eq!(RecordKind::parse(k.table_name()), Some(k));
            assert_eq!(serde_json::to_value(k).ok(), Some(k.name().into()));
        }
        assert_eq!(RecordKind::SuperFlow.versioned_name(), "super_flows_v1");
        assert_eq!(RecordKind::parse("nope"), None);
        // `published` indexes per-kind tables by `kind as usize`.
        for (i, k) in RecordKind::ALL.into_iter().enumerate() {
            assert_eq!(k as usize, i);
        }
    }

    #[test]
    fn hash_id_is_length_prefixed() {
        assert_ne!(hash_id(&[b"ab", b"c"]), hash_id(&[b"a", b"bc"]));
        assert_eq!(hash_id(&[b"x"]).len(), 16);
    }
}
