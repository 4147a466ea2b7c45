//! `#[repr(C)]` mirrors of `enrich-probe-ebpf/src/probe.h`, with size and offset assertions so a
//! drift between the C header and these types fails the build.

use std::net::{IpAddr, Ipv6Addr};

use schemas::FlowKey;

/// The canonical flow key as the kernel stores it (`struct flow_key`, 48 bytes).
///
/// Addresses are in network order, IPv4 as IPv4-mapped IPv6; ports are host order; the padding is
/// always zero (the kernel hashes the whole struct).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawFlowKey {
    pub low_addr: [u8; 16],
    pub high_addr: [u8; 16],
    pub low_port: u16,
    pub high_port: u16,
    /// Innermost VLAN id, 0 when untagged.
    pub scope: u32,
    pub protocol: u8,
    pub _pad: [u8; 7],
}

/// Per-flow state (`struct flow_state`, 240 bytes), field for field as in `ACCOUNTING.md`.
/// Index 0 of every pair is the low → high direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowState {
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub first_ns: [u64; 2],
    pub last_ns: [u64; 2],
    pub tcp_flags: [u8; 2],
    pub _pad0: [u8; 2],
    pub resets: [u32; 2],
    pub retrans: [u32; 2],
    pub seq_errors: [u32; 2],
    pub next_seq: [u32; 2],
    pub seq_valid: [u8; 2],
    pub _pad1: [u8; 2],
    pub size_hist: [[u32; 8]; 2],
    pub iat_hist: [[u32; 8]; 2],
    pub client_dir: u8,
    pub verdict: u8,
    pub _pad2: [u8; 2],
    pub sent_to_user: u32,
}

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
pub const SNAP_MAX: u32 = 512;
/// Size of `struct pkt_event`, the header of each ring-buffer record.
pub const EVENT_HEADER_LEN: usize = 72;

// SAFETY: plain integers and arrays of them, no padding the compiler could leave uninitialised
// (every gap is an explicit field), valid for any bit pattern.
unsafe impl aya::Pod for RawFlowKey {}
unsafe impl aya::Pod for FlowState {}
unsafe impl aya::Pod for RawConfig {}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<RawFlowKey>() == 48);
    assert!(offset_of!(RawFlowKey, low_port) == 32);
    assert!(offset_of!(RawFlowKey, scope) == 36);
    assert!(offset_of!(RawFlowKey, protocol) == 40);
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

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn from_v6(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

impl RawFlowKey {
    /// The kernel's key for a canonical key.
    pub fn from_flow_key(k: &FlowKey) -> Self {
        Self {
            low_addr: to_v6(k.low.0),
            high_addr: to_v6(k.high.0),
            low_port: k.low.1,
            high_port: k.high.1,
            scope: k.scope,
            protocol: k.protocol,
            _pad: [0; 7],
        }
    }

    /// The canonical key (`schemas::FlowKey`); IPv4-mapped addresses come back as IPv4.
    pub fn to_flow_key(&self) -> FlowKey {
        FlowKey::new(
            self.protocol,
            (from_v6(self.low_addr), self.low_port),
            (from_v6(self.high_addr), self.high_port),
            self.scope,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn key_round_trips_and_stays_canonical() {
        let a = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 443);
        let b = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50000);
        let k = FlowKey::new(6, a, b, 7);
        let raw = RawFlowKey::from_flow_key(&k);
        assert_eq!(raw.low_addr[10..12], [0xff, 0xff]);
        assert_eq!(raw.low_addr[12..], [10, 0, 0, 1]);
        assert_eq!(raw.low_port, 50000);
        assert_eq!(raw.to_flow_key(), k);
        let v6 = FlowKey::new(
            17,
            ("2001:db8::1".parse().unwrap(), 53),
            ("::1".parse().unwrap(), 9),
            0,
        );
        assert_eq!(RawFlowKey::from_flow_key(&v6).to_flow_key(), v6);
    }
}
