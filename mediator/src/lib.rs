//! The join of router flows with the tap's records, and the outputs (Kafka, Parquet, IPFIX, HTTP).
//!
//! # Layout
//! - [`sink`]: the outputs: [`sink::parquet`], [`sink::kafka`] (with its on-disk [`sink::spool`]),
//!   and [`sink::flows`], which adapts them to batches of router flow records.
//! - [`fanout`]: runs the sinks concurrently, each on its own thread behind a bounded queue, with
//!   back-pressure counted.
//! - [`http`]: the HTTP API (health, readiness, Prometheus metrics, exporters).
//!
//! The join itself comes with the issue "The join, end to end". The crate depends only on
//! `schemas`, never on the collector or the tap: the root binary wires them together.
pub mod fanout;
pub mod http;
pub mod sink;
