//! The types of `enrich-probe-ebpf/src/probe.h` on the Rust side, with size and offset assertions
//! so a drift between the C header and these types fails the build.

/// The kernel's key (`struct flow_key`, 48 bytes) and per-flow state (`struct flow_state`, 240
/// bytes) are the accounting twin's own types: one `#[repr(C)]` definition each, in
/// [`crate::flow`], read from and written to the kernel's maps as they are.
pub use crate::flow::{FlowState, TwinKey};

/// `struct probe_config` (array map `snf_config`, one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawConfig {
    pub version: u32,
    pub pass: u32,
    pub first_packets: u32,
    pub snap_len: u32,
    pub hdr_payload: u32,
    pub wake_every: u32,
    pub wake_bytes: u32,
    pub _pad: u32,
}

/// `CONFIG_VERSION` in `probe.h`: the kernel ignores a config with another version.
pub const CONFIG_VERSION: u32 = 1;
/// `SNAP_MAX` in `probe.h`: the largest number of bytes copied per packet.
pub const SNAP_MAX: u32 = 2048;
/// Size of `struct pkt_event`, the header of each ring-buffer record.
pub const EVENT_HEADER_LEN: usize = 72;

// SAFETY: plain integers and arrays of them, no padding the compiler could leave uninitialised
// (every gap is an explicit field), valid for any bit pattern.
unsafe impl aya::Pod for TwinKey {}
unsafe impl aya::Pod for FlowState {}
unsafe impl aya::Pod for RawConfig {}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<TwinKey>() == 48);
    assert!(offset_of!(TwinKey, low_port) == 32);
    assert!(offset_of!(TwinKey, scope) == 36);
    assert!(offset_of!(TwinKey, protocol) == 40);
    assert!(size_of::<FlowState>() == 240);
    assert!(offset_of!(FlowState, tcp_flags) == 64);
    assert!(offset_of!(FlowState, resets) == 68);
    assert!(offset_of!(FlowState, seq_valid) == 100);
    assert!(offset_of!(FlowState, size_hist) == 104);
    assert!(offset_of!(FlowState, iat_hist) == 168);
    assert!(offset_of!(FlowState, client_dir) == 232);
    assert!(offset_of!(FlowState, sent_to_user) == 236);
    assert!(size_of::<RawConfig>() == 32);
};

/// What user space wants of a flow's packets (`enum verdict`; `ACCOUNTING.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    New = 0,
    /// Send whole packets (up to `snap_len`).
    Classifying = 1,
    /// Send headers: L4 header plus `hdr_payload` bytes of payload.
    QoeHeaders = 2,
    /// Counters only; final (the kernel stops looking at the verdict map for this flow).
    Classified = 3,
}

/// Why the kernel copied a packet (`enum send_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendReason {
    FirstPackets,
    Classifying,
    Headers,
    /// A value this build does not know (newer kernel object).
    Other(u8),
}

impl From<u8> for SendReason {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::FirstPackets,
            2 => Self::Classifying,
            3 => Self::Headers,
            o => Self::Other(o),
        }
    }
}
