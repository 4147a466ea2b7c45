//! The join of router flows with the tap's records, and the outputs (Kafka, Parquet, IPFIX, HTTP).
//!
//! # Layout
//! - [`sink`]: the outputs: [`sink::parquet`], [`sink::kafka`] (with its on-disk [`sink::spool`]),
//!   [`sink::ipfix`] (re-export to IPFIX collectors), and [`sink::records`], which adapts them to batches of any record kind ([`sink::records::AnyRecord`]).
//! - [`fanout`]: runs the sinks concurrently, each on its own thread behind a bounded queue, with
//!   back-pressure counted.
//! - [`http`]: the HTTP API (health, readiness, Prometheus metrics, exporters, the dashboard).
//! - [`dashboard`]: the NOC dashboard: a fan-out lane aggregating what it sees into a bounded
//!   summary (`/api/v1/summary`), and the page that draws it (`/dashboard`).
//! - [`join`]: the join of router flow records with tap records into super-flows (bounded state,
//!   grace period, sampling check, VLAN/VRF and NAT options, flush on shutdown and revocation).
//! - [`scaleout`]: the raw topics (co-partitioning check, the raw producers' sink) and the
//!   consumer group of `supernetflow mediate` (join per partition set, flush and commit on
//!   revocation).
//!
//! The crate depends only on `schemas`, never on the collector or the tap: the root binary wires
//! them together.
pub mod dashboard;
pub mod fanout;
pub mod http;
pub mod join;
pub mod scaleout;
pub mod sink;
