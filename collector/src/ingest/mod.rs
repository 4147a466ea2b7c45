//! Ingest stage: where export messages come from.
//!
//! Every input yields `(exporter address, receive time, message bytes)` in arrival order per
//! exporter; the decoder does the rest.

pub mod file;
