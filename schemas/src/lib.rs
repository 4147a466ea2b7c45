//! The Super-NetFlow record model.
//!
//! Every record that crosses a process boundary is defined here, once. Sinks, the Kafka wire format
//! and the published schema files are derived from these types.
//!
//! # Layout
//! - [`flow`]: `FlowRecord`, a router's flow, normalised by the collector.
//! - [`key`]: the canonical flow key and its 64-bit hash (the Kafka message key and the join key).
//! - [`ext`]: typed values of the information elements a record has no column for.
//!
//! The crate has no runtime (no tokio) so that every other crate can depend on it.

pub mod ext;
pub mod flow;
pub mod key;

pub use ext::{ExtValue, Extension};
pub use flow::{Direction, FlowRecord, FlowVersion, TimeSource};
pub use key::FlowKey;

/// Version of the record model. Bumped when a field changes meaning or is removed; adding an optional
/// field does not bump it. Carried in every record, topic name and file name.
pub const SCHEMA_VERSION: u16 = 1;
