//! The user side of the tap: offline capture replay through the same per-flow accounting as the
//! kernel program (its Rust twin), DPI-lite, classification from a signature file, and the
//! records the tap publishes.
//!
//! Depends only on `schemas`.
//!
//! # Layout
//! - [`capture`]: pcap/pcapng reading (Ethernet, raw IP, Linux SLL).
//! - [`flow`]: the accounting twin (ACCOUNTING.md): key, `FlowState`, the bounded flow table and
//!   the "send to user space?" rule.
//! - [`dpi`]: TLS (SNI, ALPN, JA4), QUIC Initial decryption, DNS, HTTP, STUN, RTP/RTCP, Zoom.
//! - [`classify`]: signatures (`signatures.toml`), app type and provider, client OS and agent.
//! - [`pipeline`]: frames in, tap records and `flow_stats` out.
//! - [`record`]: building `TapRecord` and the `flow_stats` line.
//! - [`qoe`]: QoE estimators (video, conferencing, gaming, RTT).
//! - [`live`]: the live tap (`probe --interface`): kernel program attached, verdicts, reports.
//! - [`offline`]: running capture files through the pipeline into JSON lines.
//! - [`export`]: tap records to a collector as IPFIX (`probe --export`).
//! - [`error`]: what can fail outside the per-packet path.

pub mod capture;
pub mod classify;
pub mod dpi;
pub mod error;
pub mod export;
pub mod flow;
pub mod kernel;
pub mod live;
pub mod offline;
pub mod pipeline;
pub mod qoe;
pub mod record;

pub use error::ProbeError;
pub use pipeline::{Output, Pipeline, ProbeConfig};
