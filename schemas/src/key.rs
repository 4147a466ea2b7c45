//! The canonical flow key.
//!
//! Both directions of a conversation map to one key: the two (address, port) endpoints are put in a
//! fixed order (the smaller address first; on equal addresses the smaller port first), so the router's
//! view of A→B and the tap's view of B→A meet under the same key. The VLAN (or VRF) is part of the key
//! where known, so overlapping private address spaces stay apart.
//!
//! The hash is XXH3-64 over a fixed byte encoding (below), so it is stable across processes,
//! versions and languages: any consumer can recompute it.
//!
//! ```text
//! byte 0      protocol
//! bytes 1..17 low address  (IPv4 as IPv4-mapped IPv6, ::ffff:a.b.c.d)
//! bytes 17..19 low port    (big endian)
//! bytes 19..35 high address
//! bytes 35..37 high port
//! bytes 37..41 scope       (VLAN id or VRF id, 0 when unknown; big endian)
//! ```

use std::net::{IpAddr, Ipv6Addr};

/// A conversation's identity, direction-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub protocol: u8,
    pub low: (IpAddr, u16),
    pub high: (IpAddr, u16),
    /// VLAN or VRF id; 0 when unknown.
    pub scope: u32,
}

impl FlowKey {
    /// Builds the canonical key of a flow seen from either side.
    pub fn new(protocol: u8, a: (IpAddr, u16), b: (IpAddr, u16), scope: u32) -> Self {
        let ka = (to_v6(a.0), a.1);
        let kb = (to_v6(b.0), b.1);
        let (low, high) = if ka <= kb { (a, b) } else { (b, a) };
        Self {
            protocol,
            low,
            high,
            scope,
        }
    }

    /// The fixed 41-byte encoding the hash is computed over.
    pub fn encode(&self) -> [u8; 41] {
        let mut out = [0u8; 41];
        out[0] = self.protocol;
        out[1..17].copy_from_slice(&to_v6(self.low.0).octets());
        out[17..19].copy_from_slice(&self.low.1.to_be_bytes());
        out[19..35].copy_from_slice(&to_v6(self.high.0).octets());
        out[35..37].copy_from_slice(&self.high.1.to_be_bytes());
        out[37..41].copy_from_slice(&self.scope.to_be_bytes());
        out
    }

    /// XXH3-64 of [`FlowKey::encode`].
    pub fn hash64(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.encode())
    }

    /// `FlowKey::new(protocol, a, b, scope).hash64()`, with each address converted once and
    /// compared as one integer (per record on the collector's decode path).
    pub fn hash_of(protocol: u8, a: (IpAddr, u16), b: (IpAddr, u16), scope: u32) -> u64 {
        let ka = (u128::from(to_v6(a.0)), a.1);
        let kb = (u128::from(to_v6(b.0)), b.1);
        let (low, high) = if ka <= kb { (ka, kb) } else { (kb, ka) };
        let mut out = [0u8; 41];
        out[0] = protocol;
        out[1..17].copy_from_slice(&low.0.to_be_bytes());
        out[17..19].copy_from_slice(&low.1.to_be_bytes());
        out[19..35].copy_from_slice(&high.0.to_be_bytes());
        out[35..37].copy_from_slice(&high.1.to_be_bytes());
        out[37..41].copy_from_slice(&scope.to_be_bytes());
        xxhash_rust::xxh3::xxh3_64(&out)
    }
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn both_directions_share_a_key() {
        let a = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
        let b = (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 443);
        assert_eq!(FlowKey::new(6, a, b, 0), FlowKey::new(6, b, a, 0));
        assert_ne!(
            FlowKey::new(6, a, b, 0).hash64(),
            FlowKey::new(17, a, b, 0).hash64()
        );
        assert_ne!(
            FlowKey::new(6, a, b, 0).hash64(),
            FlowKey::new(6, a, b, 10).hash64()
        );
    }

    #[test]
    fn hash_is_stable() {
        // Pinned so that a change to the encoding cannot slip by: consumers recompute this value.
        let a = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
        let b = (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 443);
        let k = FlowKey::new(6, a, b, 0);
        assert_eq!(k.low, a);
        assert_eq!(k.hash64(), xxhash_rust::xxh3::xxh3_64(&k.encode()));
        assert_eq!(format!("{:016x}", k.hash64()), PINNED);
    }
    const PINNED: &str = "a5747053a34979c3";

    proptest! {
        #[test]
        fn symmetric(p: u8, a: [u8; 16], pa: u16, b: [u8; 16], pb: u16, s: u32) {
            let a = (IpAddr::from(a), pa);
            let b = (IpAddr::from(b), pb);
            prop_assert_eq!(FlowKey::new(p, a, b, s).hash64(), FlowKey::new(p, b, a, s).hash64());
        }

        #[test]
        fn hash_of_is_new_then_hash64(p: u8, a: [u8; 16], pa: u16, b: [u8; 16], pb: u16, s: u32,
                                      v4: bool, same: bool) {
            let conv = |x: [u8; 16]| if v4 {
                IpAddr::from([x[0], x[1], x[2], x[3]])
            } else {
                IpAddr::from(x)
            };
            let a = (conv(a), pa);
            // Equal addresses too, where the ports decide the order.
            let b = if same { (a.0, pb) } else { (conv(b), pb) };
            prop_assert_eq!(FlowKey::hash_of(p, a, b, s), FlowKey::new(p, a, b, s).hash64());
            prop_assert_eq!(FlowKey::hash_of(p, b, a, s), FlowKey::new(p, a, b, s).hash64());
        }
    }
}
