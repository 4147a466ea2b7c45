//! The collector: routers' NetFlow v5 / v9 / IPFIX in, `FlowRecord`s out.
//!
//! # Layout
//! - [`ingest`]: where export messages come from: UDP and TCP listeners, capture and IPFIX files.
//! - [`decode`]: message bytes → records, with per-(exporter, domain) templates, held data sets,
//!   sampling state and counters. NetFlow v9 and IPFIX sets are parsed by `netgauze-flow-pkt`;
//!   NetFlow v5 is decoded here.
//! - [`normalize`]: decoded fields → `schemas::FlowRecord` (columns, times, sampling, extensions).
//! - [`service`]: the running collector: listeners, bounded queue, decode loop, state saves.
//! - [`state`]: template and sampling persistence across restarts.
//! - [`status`]: a shareable snapshot of exporters, templates and counters (for the HTTP API).
//! - [`config`]: every configuration key, documented.

pub mod bench_stream;
pub mod config;
pub mod decode;
pub mod fuzzing;
pub mod ingest;
pub mod normalize;
pub mod service;
pub mod state;
pub mod status;

pub use config::{CollectorConfig, DecoderConfig};
pub use decode::{stats::DecodeStats, Decoder};
pub use schemas;
