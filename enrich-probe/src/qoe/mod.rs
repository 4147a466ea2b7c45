//! Quality of experience: the estimators that turn the packets the tap sees into the QoE blocks
//! of [`schemas::Qoe`].
//!
//! - [`video`]: on-demand and live video (chunks, bitrate → resolution, startup, buffer, stalls).
//!
//! (Conferencing, gaming, RTT and the session layer are added beside it.)

pub mod video;
