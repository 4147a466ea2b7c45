//! The join of router flows with the tap's records, and the outputs (Kafka, Parquet, IPFIX, HTTP).
//!
//! Not built yet: see the issues "The spine, part 2" (sinks, HTTP API) and "The join, end to end".
//! This crate exists so the workspace has its final shape; it depends only on `schemas`.
pub mod sink;
