//! DNS responses (RFC 1035 §4): the question name and the A/AAAA addresses of the answer, read
//! leniently: the tap often sees only the first `snap_len` bytes of a response, so the answers that
//! fit are kept and a record cut short ends the walk instead of failing the message. (This is why
//! the tap does not use a full DNS crate here: they reject truncated messages as a whole.)
//!
//! [`DnsCache`] keeps address → name, bounded, so that a flow without SNI or Host still gets the
//! name its client resolved.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a DNS message tells the tap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsAnswer {
    /// The message is a response (QR = 1).
    pub is_response: bool,
    /// The name asked for, lower case, without the trailing dot.
    pub qname: String,
    /// Addresses from A and AAAA answers.
    pub addrs: Vec<IpAddr>,
}

/// Reads a name at `*at` (following compression pointers, bounded); advances `*at` past it in
/// the message.
fn read_name(msg: &[u8], at: &mut usize) -> Option<String> {
    let mut name = String::new();
    let mut pos = *at;
    let mut jumped = false;
    for _ in 0..128 {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    if !jumped {
                        *at = pos + 1;
                    }
                    return Some(name);
                }
                let label = msg.get(pos + 1..pos + 1 + usize::from(len))?;
                if !name.is_empty() {
                    name.push('.');
                }
                for &c in label {
                    name.push(char::from(c.to_ascii_lowercase()));
                }
                if name.len() > 255 {
                    return None;
                }
                pos += 1 + usize::from(len);
            }
            0xc0 => {
                let ptr = usize::from(u16::from_be_bytes([len, *msg.get(pos + 1)?]) & 0x3fff);
                if !jumped {
                    *at = pos + 2;
                }
                jumped = true;
                pos = ptr;
            }
            _ => return None,
        }
    }
    None
}

/// Parses a DNS response; `None` when it is not a response with a question.
pub fn parse_response(msg: &[u8]) -> Option<DnsAnswer> {
    parse_message(msg).filter(|a| a.is_response)
}

/// Parses a DNS query or response; `None` when it has no readable question (or a question count
/// no real client sends).
pub fn parse_message(msg: &[u8]) -> Option<DnsAnswer> {
    if msg.len() < 12 {
        return None;
    }
    let is_response = msg[2] & 0x80 != 0;
    // Opcode 0 (query) only: other opcodes are not name lookups.
    if msg[2] & 0x78 != 0 {
        return None;
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    if qd == 0 || qd > 8 {
        return None;
    }
    let mut at = 12;
    let qname = read_name(msg, &mut at)?;
    at += 4;
    for _ in 1..qd {
        read_name(msg, &mut at)?;
        at += 4;
    }
    if qname.is_empty() {
        return None;
    }
    let mut out = DnsAnswer {
        is_response,
        qname,
        addrs: Vec::new(),
    };
    for _ in 0..an.min(64) {
        if read_name(msg, &mut at).is_none() {
            break;
        }
        let Some(fixed) = msg.get(at..at + 10) else {
            break;
        };
        let ty = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        at += 10;
        let Some(rdata) = msg.get(at..at + rdlen) else {
            break;
        };
        match (ty, rdlen) {
            (1, 4) => out.addrs.push(IpAddr::V4(Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            ))),
            (28, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(rdata);
                out.addrs.push(IpAddr::V6(Ipv6Addr::from(a)));
            }
            _ => {}
        }
        at += rdlen;
    }
    Some(out)
}

/// Bounded address → name cache; the oldest insertion goes first when full.
#[derive(Debug, Clone)]
pub struct DnsCache {
    map: HashMap<IpAddr, (String, u64)>,
    order: VecDeque<(IpAddr, u64)>,
    capacity: usize,
    next: u64,
    /// Entries dropped because the cache was full.
    pub evicted: u64,
}

impl DnsCache {
    /// A cache of at most `capacity` addresses.
    pub fn new(capacity: usize) -> Self {
        DnsCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            next: 0,
            evicted: 0,
        }
    }

    /// Remembers that `addr` was resolved from `name`.
    pub fn insert(&mut self, addr: IpAddr, name: &str) {
        self.next += 1;
        self.map.insert(addr, (name.to_string(), self.next));
        self.order.push_back((addr, self.next));
        while self.map.len() > self.capacity {
            let Some((old, gen)) = self.order.pop_front() else {
                break;
            };
            // Only the latest insertion of an address counts.
            if self.map.get(&old).is_some_and(|(_, g)| *g == gen) {
                self.map.remove(&old);
                self.evicted += 1;
            }
        }
        // Stale order entries (re-inserted addresses) are dropped once they pile up.
        if self.order.len() > 2 * self.capacity {
            let map = &self.map;
            self.order
                .retain(|(a, g)| map.get(a).is_some_and(|(_, mg)| mg == g));
        }
    }

    /// The name last resolved for `addr`.
    pub fn get(&self, addr: &IpAddr) -> Option<&str> {
        self.map.get(addr).map(|(n, _)| n.as_str())
    }

    /// Addresses held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn response(name: &str, addrs: &[[u8; 4]]) -> Vec<u8> {
        let mut m = vec![
            0x12,
            0x34,
            0x81,
            0x80,
            0,
            1,
            0,
            addrs.len() as u8 + 1,
            0,
            0,
            0,
            0,
        ];
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        // A CNAME first (pointer to the question name), then the A records.
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]);
        for a in addrs {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            m.extend_from_slice(a);
        }
        m
    }

    #[test]
    fn answers_and_truncation() {
        let m = response("Video.Example.NET", &[[192, 0, 2, 1], [192, 0, 2, 2]]);
        let a = parse_response(&m).unwrap_or_default();
        assert_eq!(a.qname, "video.example.net");
        assert_eq!(a.addrs.len(), 2);
        // Cut in the middle of the second A record: the first one is kept.
        let cut = parse_response(&m[..m.len() - 2]).unwrap_or_default();
        assert_eq!(cut.addrs, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
        // A query (QR = 0) is not an answer, but its name is read.
        let mut q = m.clone();
        q[2] = 0x01;
        assert_eq!(parse_response(&q), None);
        assert_eq!(
            parse_message(&q).map(|a| a.qname),
            Some("video.example.net".into())
        );
    }

    #[test]
    fn pointer_loop_ends() {
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xc0, 12]);
        assert_eq!(parse_response(&m), None);
    }

    #[test]
    fn cache_is_bounded() {
        let mut c = DnsCache::new(2);
        for i in 0..5u8 {
            c.insert(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), "x");
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.evicted, 3);
        assert_eq!(c.get(&IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4))), Some("x"));
    }
}
