//! The user side of the tap (aya loader, offline pcap pipeline, DPI-lite, classification, QoE).
//!
//! Not built yet: see the issue "The tap". Depends only on `schemas`.

pub mod kernel;
