//! The flow key as the kernel program stores it (`struct flow_key` in `probe.h`), and its
//! conversion to the canonical [`schemas::FlowKey`].

use std::net::{IpAddr, Ipv6Addr};

/// Canonical flow key in the kernel's layout: endpoints ordered by (address as IPv4-mapped IPv6,
/// port), direction 0 is low → high. 48 bytes, padding zero.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TwinKey {
    /// Lower address, network order (IPv4 as `::ffff:a.b.c.d`).
    pub low_addr: [u8; 16],
    /// Higher address, network order.
    pub high_addr: [u8; 16],
    /// Port of the lower endpoint (host order; 0 without ports).
    pub low_port: u16,
    /// Port of the higher endpoint.
    pub high_port: u16,
    /// Innermost VLAN id, 0 when untagged.
    pub scope: u32,
    /// IP protocol number.
    pub protocol: u8,
    /// Always zero (the kernel hashes the whole struct).
    pub _pad: [u8; 7],
}

const _: () = assert!(std::mem::size_of::<TwinKey>() == 48);

impl TwinKey {
    /// Orders the endpoints `(src, dst)` of one packet; returns the key and the packet's direction.
    /// Equal endpoints are direction 0, as in the kernel (`ep_less(dst, src)` false).
    pub fn ordered(
        protocol: u8,
        src: ([u8; 16], u16),
        dst: ([u8; 16], u16),
        scope: u32,
    ) -> (TwinKey, u8) {
        // Big-endian byte arrays compare like the 128-bit numbers the kernel compares.
        let (low, high, dir) = if (dst.0, dst.1) < (src.0, src.1) {
            (dst, src, 1)
        } else {
            (src, dst, 0)
        };
        (
            TwinKey {
                low_addr: low.0,
                high_addr: high.0,
                low_port: low.1,
                high_port: high.1,
                scope,
                protocol,
                _pad: [0; 7],
            },
            dir,
        )
    }

    /// Lower endpoint, with IPv4-mapped addresses as IPv4.
    pub fn low(&self) -> (IpAddr, u16) {
        (to_ip(self.low_addr), self.low_port)
    }

    /// Higher endpoint.
    pub fn high(&self) -> (IpAddr, u16) {
        (to_ip(self.high_addr), self.high_port)
    }

    /// The sender of direction `dir` (0: low, 1: high).
    pub fn sender(&self, dir: u8) -> (IpAddr, u16) {
        if dir == 0 {
            self.low()
        } else {
            self.high()
        }
    }

    /// The canonical key of `schemas`, whose hash is the join key.
    pub fn canonical(&self) -> schemas::FlowKey {
        schemas::FlowKey::new(self.protocol, self.low(), self.high(), self.scope)
    }
}

fn to_ip(a: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(a);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}
