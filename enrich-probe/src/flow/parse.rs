//! Frame parsing for the accounting twin: the same checks, in the same order, as `parse()` in
//! `enrich-probe-ebpf/src/probe.bpf.c` (see ACCOUNTING.md, "Which packets count").
//!
//! This is written by hand rather than with etherparse's slicers on purpose: etherparse rejects
//! frames whose IP total length exceeds the captured bytes (every snap-length-truncated capture)
//! and checks things the kernel program does not, so the differential test would disagree on
//! exactly the captures where the counters matter. The checks here are the kernel's, bounded by
//! the captured bytes the way the verifier bounds them by `data_end`.

use super::key::TwinKey;

/// Link type of a captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// Ethernet II (DLT 1); what the kernel program sees.
    Ethernet,
    /// Raw IPv4 or IPv6, version from the first nibble (DLT 12, 14, 101, 228, 229). Offline only.
    RawIp,
    /// Linux "cooked" capture v1 (DLT 113), 16-byte header. Offline only.
    LinuxSll,
}

impl LinkType {
    /// The link type of a pcap/pcapng DLT value, `None` when the tap cannot read it.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        match dlt {
            1 => Some(LinkType::Ethernet),
            12 | 14 | 101 | 228 | 229 => Some(LinkType::RawIp),
            113 => Some(LinkType::LinuxSll),
            _ => None,
        }
    }
}

/// Why a frame was not counted into a flow (the kernel's `CNT_NA_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotAccounted {
    /// Not IPv4/IPv6 after at most two VLAN tags.
    NonIp,
    /// Cut short or inconsistent headers.
    Malformed,
    /// Non-first IP fragment (no ports).
    Fragment,
}

/// What the parser learned about one accountable frame (the kernel's `struct parsed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Canonical key.
    pub key: TwinKey,
    /// 0: low → high, 1: high → low.
    pub dir: u8,
    /// IP datagram length (IPv4 total length; IPv6 payload length + 40).
    pub ip_len: u32,
    /// IP length minus the IP header(s).
    pub l4_len: u32,
    /// TCP sequence number (0 for other protocols).
    pub seq: u32,
    /// TCP payload bytes, from the IP lengths (not from the captured bytes).
    pub payload: u32,
    /// Offset of the IP header in the frame.
    pub l3_off: u16,
    /// Offset of the transport header in the frame.
    pub l4_off: u16,
    /// Transport header length (TCP data offset, 8 for UDP, 0 otherwise).
    pub l4_hdr: u16,
    /// TCP flags byte (0 for other protocols).
    pub flags: u8,
    /// TCP segment.
    pub is_tcp: bool,
}

impl Parsed {
    /// The transport payload present in the first `cap` bytes of `frame`, bounded by the IP length
    /// (so Ethernet padding is never payload). Empty when nothing of it was captured.
    pub fn payload<'a>(&self, frame: &'a [u8], cap: usize) -> &'a [u8] {
        let start = usize::from(self.l4_off) + usize::from(self.l4_hdr);
        let ip_end = usize::from(self.l3_off) + self.ip_len as usize;
        let end = cap.min(frame.len()).min(ip_end);
        frame.get(start..end).unwrap_or(&[])
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses one frame the way the kernel program does.
pub fn parse(frame: &[u8], link: LinkType) -> Result<Parsed, NotAccounted> {
    use NotAccounted::*;
    let (mut proto, mut cur) = match link {
        LinkType::Ethernet => (be16(frame, 12).ok_or(Malformed)?, 14usize),
        LinkType::LinuxSll => (be16(frame, 14).ok_or(Malformed)?, 16usize),
        LinkType::RawIp => match frame.first().ok_or(Malformed)? >> 4 {
            4 => (0x0800, 0),
            6 => (0x86dd, 0),
            _ => return Err(NonIp),
        },
    };
    let mut vlan = 0u32;
    if link != LinkType::RawIp {
        for _ in 0..2 {
            if proto == 0x8100 || proto == 0x88a8 {
                vlan = u32::from(be16(frame, cur).ok_or(Malformed)? & 0x0fff);
                proto = be16(frame, cur + 2).ok_or(Malformed)?;
                cur += 4;
            }
        }
    }
    let l3_off = cur;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    let (l4proto, ip_len, l4_len, l4) = match proto {
        0x0800 => {
            let h = frame.get(cur..cur + 20).ok_or(Malformed)?;
            let ihl = u32::from(h[0] & 0x0f) * 4;
            let tot = u32::from(u16::from_be_bytes([h[2], h[3]]));
            if h[0] >> 4 != 4 || ihl < 20 || tot < ihl {
                return Err(Malformed);
            }
            if u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0 {
                return Err(Fragment);
            }
            src[10] = 0xff;
            src[11] = 0xff;
            dst[10] = 0xff;
            dst[11] = 0xff;
            src[12..].copy_from_slice(&h[12..16]);
            dst[12..].copy_from_slice(&h[16..20]);
            (h[9], tot, tot - ihl, cur + ihl as usize)
        }
        0x86dd => {
            let h = frame.get(cur..cur + 40).ok_or(Malformed)?;
            if h[0] >> 4 != 6 {
                return Err(Malformed);
            }
            let plen = u32::from(u16::from_be_bytes([h[4], h[5]]));
            let mut nh = h[6];
            src.copy_from_slice(&h[8..24]);
            dst.copy_from_slice(&h[24..40]);
            let mut l4 = cur + 40;
            let mut ext = 0u32;
            // At most four extension headers, like the kernel's unrolled loop.
            for _ in 0..4 {
                if nh == 0 || nh == 43 || nh == 60 {
                    let e = frame.get(l4..l4 + 8).ok_or(Malformed)?;
                    let hl = (u32::from(e[1]) + 1) * 8;
                    nh = e[0];
                    l4 += hl as usize;
                    ext += hl;
                } else if nh == 44 {
                    let e = frame.get(l4..l4 + 8).ok_or(Malformed)?;
                    if u16::from_be_bytes([e[2], e[3]]) & 0xfff8 != 0 {
                        return Err(Fragment);
                    }
                    nh = e[0];
                    l4 += 8;
                    ext += 8;
                }
            }
            if matches!(nh, 0 | 43 | 60 | 44) || ext > plen {
                return Err(Malformed);
            }
            (nh, plen + 40, plen - ext, l4)
        }
        _ => return Err(NonIp),
    };
    let (mut sport, mut dport, mut l4_hdr, mut seq, mut flags, mut payload) = (0, 0, 0, 0, 0, 0);
    let is_tcp = l4proto == 6;
    if is_tcp {
        let t = frame.get(l4..l4 + 20).ok_or(Malformed)?;
        let doff = u32::from(t[12] >> 4) * 4;
        if doff < 20 || doff > l4_len {
            return Err(Malformed);
        }
        sport = u16::from_be_bytes([t[0], t[1]]);
        dport = u16::from_be_bytes([t[2], t[3]]);
        seq = be32(t, 4).ok_or(Malformed)?;
        flags = t[13];
        l4_hdr = doff as u16;
        payload = l4_len - doff;
    } else if l4proto == 17 {
        let u = frame.get(l4..l4 + 8).ok_or(Malformed)?;
        sport = u16::from_be_bytes([u[0], u[1]]);
        dport = u16::from_be_bytes([u[2], u[3]]);
        l4_hdr = 8;
    }
    // Offsets are u16 in the kernel's record; a frame longer than that cannot be an MTU frame.
    let l3_off = u16::try_from(l3_off).map_err(|_| Malformed)?;
    let l4_off = u16::try_from(l4).map_err(|_| Malformed)?;
    let (key, dir) = TwinKey::ordered(l4proto, (src, sport), (dst, dport), vlan);
    Ok(Parsed {
        key,
        dir,
        ip_len,
        l4_len,
        seq,
        payload,
        l3_off,
        l4_off,
        l4_hdr,
        flags,
        is_tcp,
    })
}
