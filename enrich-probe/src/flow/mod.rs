//! Per-flow accounting: the Rust twin of the kernel program (enrich-probe/ACCOUNTING.md).
//!
//! - [`parse`]: frame → key, direction and lengths, with the kernel's checks in its order.
//! - [`key`]: [`TwinKey`], the kernel's `struct flow_key`.
//! - [`state`]: [`FlowState`], the kernel's `struct flow_state`, and the per-packet rules.
//! - [`table`]: [`FlowTable`], the bounded flow map with `account()` and the send rule.

pub mod key;
pub mod parse;
pub mod state;
pub mod table;

#[cfg(test)]
mod tests;

pub use key::TwinKey;
pub use parse::{parse, LinkType, NotAccounted, Parsed};
pub use state::{
    send_rule, FlowState, SendConfig, SendReason, DEFAULT_SNAP_LEN, VERDICT_CLASSIFIED,
    VERDICT_CLASSIFYING, VERDICT_HEADERS, VERDICT_NEW,
};
pub use table::{Accounted, Entry, FlowTable, Outcome, TableCounters};
