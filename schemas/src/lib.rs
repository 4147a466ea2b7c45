//! The Super-NetFlow record model.
//!
//! Every record that crosses a process boundary is defined here, once. Sinks, the Kafka wire format
//! and the published schema files are derived from these types.
//!
//! # Layout
//! - [`flow`]: `FlowRecord`, a router's flow, normalised by the collector.
//! - [`key`]: the canonical flow key and its 64-bit hash (the Kafka message key and the join key).
//! - [`ext`]: typed values of the information elements a record has no column for.
//! - [`tap`]: `TapRecord`, what the eBPF tap learned about one flow, with its application &
//!   platform block ([`AppPlatform`]).
//! - [`stats`]: [`FlowStats`], the Network QoS block (Netify `flow_stats` names).
//! - [`qoe`]: [`Qoe`], the Application QoE blocks (video, gaming, conferencing).
//! - [`super_flow`]: `SuperFlow`, a router flow joined with the tap's blocks.
//! - [`session`]: `AppSession`, one application session across its flows.
//! - [`ipfix`]: the IPFIX information elements of the records ([`ipfix::PEN`]), an export
//!   encoder, and the decoding of tap records a collector received.
//! - [`kind`]: [`RecordKind`] (topic and table names) and the [`Record`] trait.
//! - [`published`]: the schemas derived from the types — JSON Schema, YAML field guide, Avro,
//!   Arrow (Parquet) — and the row form that Avro and Arrow writers take. The files checked in under
//!   `schemas/published/` are these, rewritten by
//!   `cargo run -p supernetflow-schemas --example gen_schemas`.
//! - [`text`]: [`Text`], the inline-when-short string of extension values.
//! - [`sample`]: one realistic value of each record, for tests, docs and the field guide's examples.
//!
//! The crate has no runtime (no tokio) so that every other crate can depend on it.

pub mod ext;
pub mod flow;
pub mod ipfix;
pub mod json;
pub mod key;
pub mod kind;
pub mod published;
pub mod qoe;
pub mod sample;
pub mod session;
pub mod shared;
pub mod stats;
pub mod super_flow;
pub mod tap;
pub mod text;

pub use ext::{ExtValue, Extension};
pub use flow::{Direction, FlowRecord, FlowVersion, TimeSource};
pub use key::FlowKey;
pub use kind::{Record, RecordKind, RecordState};
pub use published::{arrow_schema, avro_schema, json_schema};
pub use qoe::{BufferState, ConferencingQoe, GamingQoe, Qoe, QoeSample, VideoQoe};
pub use session::{AppSession, SessionNetwork};
pub use stats::FlowStats;
pub use super_flow::{Enrichment, MatchStatus, SuperFlow};
pub use tap::{AppPlatform, AppType, DetectionMethod, TapKey, TapRecord};
pub use text::Text;

/// Version of the record model. Bumped when a field changes meaning or is removed; adding an optional
/// field does not bump it. Carried in every record, topic name and file name.
pub const SCHEMA_VERSION: u16 = 1;
