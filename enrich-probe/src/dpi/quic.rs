//! QUIC Initial packets: remove header protection, decrypt with the Initial keys derived from the
//! Destination Connection ID, and collect the CRYPTO frames that carry the ClientHello.
//!
//! RFC 9000 §17.2 (long header), RFC 9001 §5 (Initial secrets, AEAD, header protection),
//! RFC 9369 (QUIC v2: own salt, labels and packet type bits). Drafts 29-34 are read too (some
//! captures still carry them). Everything is pure Rust (RustCrypto `aes`, `aes-gcm`, `hkdf`).

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Aes128Gcm;
use hkdf::Hkdf;
use sha2::Sha256;

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
const SALT_DRAFT29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];

/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;

struct Suite {
    salt: &'static [u8; 20],
    v2: bool,
}

fn suite(version: u32) -> Option<Suite> {
    match version {
        1 => Some(Suite {
            salt: &SALT_V1,
            v2: false,
        }),
        VERSION_2 => Some(Suite {
            salt: &SALT_V2,
            v2: true,
        }),
        0xff00_001d..=0xff00_0020 => Some(Suite {
            salt: &SALT_DRAFT29,
            v2: false,
        }),
        0xff00_0021..=0xff00_0022 => Some(Suite {
            salt: &SALT_V1,
            v2: false,
        }),
        _ => None,
    }
}

/// TLS 1.3 HKDF-Expand-Label with an empty context (RFC 8446 §7.1).
fn expand_label(hk: &Hkdf<Sha256>, label: &str, out: &mut [u8]) -> Option<()> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push(u8::try_from(full.len()).ok()?);
    info.extend_from_slice(full.as_bytes());
    info.push(0);
    hk.expand(&info, out).ok()
}

struct Keys {
    key: [u8; 16],
    iv: [u8; 12],
    hp: [u8; 16],
}

fn client_keys(suite: &Suite, dcid: &[u8]) -> Option<Keys> {
    let (_, initial) = Hkdf::<Sha256>::extract(Some(suite.salt), dcid);
    let mut client = [0u8; 32];
    expand_label(&initial, "client in", &mut client)?;
    let hk = Hkdf::<Sha256>::from_prk(&client).ok()?;
    let (lk, li, lh) = if suite.v2 {
        ("quicv2 key", "quicv2 iv", "quicv2 hp")
    } else {
        ("quic key", "quic iv", "quic hp")
    };
    let mut k = Keys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&hk, lk, &mut k.key)?;
    expand_label(&hk, li, &mut k.iv)?;
    expand_label(&hk, lh, &mut k.hp)?;
    Some(k)
}

/// Reads a variable-length integer (RFC 9000 §16) at `*at`.
pub fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let first = *b.get(*at)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*at..*at + len)?;
    let mut v = u64::from(first & 0x3f);
    for x in &bytes[1..] {
        v = (v << 8) | u64::from(*x);
    }
    *at += len;
    Some(v)
}

/// Is this UDP payload the start of a QUIC long-header packet of a version the tap decrypts?
pub fn looks_like_initial(payload: &[u8]) -> bool {
    payload.len() >= 7
        && payload[0] & 0x80 != 0
        && suite(u32::from_be_bytes([
            payload[1], payload[2], payload[3], payload[4],
        ]))
        .is_some()
}

/// A CRYPTO frame's data and where it sits in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoChunk {
    /// Stream offset.
    pub offset: u64,
    /// Bytes.
    pub data: Vec<u8>,
}

/// Decrypts every client Initial packet coalesced in one UDP datagram and returns their CRYPTO
/// frames. Packets that are not Initials, of unknown versions, or fail authentication are
/// skipped. The datagram must be whole: the AEAD tag sits at the end of each packet.
pub fn initial_crypto_frames(datagram: &[u8]) -> Vec<CryptoChunk> {
    let mut out = Vec::new();
    let mut rest = datagram;
    // A datagram holds at most a handful of coalesced packets.
    for _ in 0..4 {
        match one_packet(rest, &mut out) {
            Some(used) if used < rest.len() => rest = &rest[used..],
            _ => break,
        }
    }
    out
}

/// Decrypts one long-header packet at the start of `b`; returns its length.
fn one_packet(b: &[u8], out: &mut Vec<CryptoChunk>) -> Option<usize> {
    let first = *b.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let version = u32::from_be_bytes(b.get(1..5)?.try_into().ok()?);
    let suite = suite(version)?;
    let ptype = (first >> 4) & 0x03;
    let initial_type = if suite.v2 { 1 } else { 0 };
    let mut at = 5;
    let dcid_len = usize::from(*b.get(at)?);
    let dcid = b.get(at + 1..at + 1 + dcid_len)?;
    at += 1 + dcid_len;
    let scid_len = usize::from(*b.get(at)?);
    at += 1 + scid_len;
    if ptype != initial_type {
        // Another long-header type: skip it if its length is readable (0-RTT, Handshake).
        let retry_type = if suite.v2 { 0 } else { 3 };
        if ptype == retry_type {
            return None; // A Retry has no length field, and nothing follows it.
        }
        let len = varint(b, &mut at)? as usize;
        return at.checked_add(len).filter(|&e| e <= b.len());
    }
    let token_len = varint(b, &mut at)? as usize;
    at = at.checked_add(token_len)?;
    let len = varint(b, &mut at)? as usize;
    let pn_off = at;
    let end = pn_off.checked_add(len)?;
    if end > b.len() || len < 20 {
        return None;
    }
    let keys = client_keys(&suite, dcid)?;
    let hp = aes::Aes128::new(GenericArray::from_slice(&keys.hp));
    let mut mask = GenericArray::clone_from_slice(b.get(pn_off + 4..pn_off + 20)?);
    hp.encrypt_block(&mut mask);
    let mut header = b.get(..pn_off + 4)?.to_vec();
    header[0] ^= mask[0] & 0x0f;
    let pn_len = usize::from(header[0] & 0x03) + 1;
    header.truncate(pn_off + pn_len);
    let mut pn = 0u64;
    for i in 0..pn_len {
        header[pn_off + i] ^= mask[1 + i];
        pn = (pn << 8) | u64::from(header[pn_off + i]);
    }
    let mut nonce = keys.iv;
    for (i, byte) in pn.to_be_bytes().iter().enumerate() {
        nonce[4 + i] ^= byte;
    }
    let aead = Aes128Gcm::new_from_slice(&keys.key).ok()?;
    let plain = aead
        .decrypt(
            GenericArray::from_slice(&nonce),
            Payload {
                msg: b.get(pn_off + pn_len..end)?,
                aad: &header,
            },
        )
        .ok()?;
    frames(&plain, out);
    Some(end)
}

/// Walks the frames of a decrypted Initial payload (RFC 9000 §19), keeping CRYPTO frames. Stops at
/// the first frame type an Initial packet may not carry.
fn frames(p: &[u8], out: &mut Vec<CryptoChunk>) {
    let mut at = 0;
    while at < p.len() {
        let Some(ty) = varint(p, &mut at) else {
            return;
        };
        match ty {
            0x00 | 0x01 => {}
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, ranges, [ECN counts].
                let mut ok = || -> Option<()> {
                    varint(p, &mut at)?;
                    varint(p, &mut at)?;
                    let n = varint(p, &mut at)?;
                    varint(p, &mut at)?;
                    for _ in 0..n.min(256) {
                        varint(p, &mut at)?;
                        varint(p, &mut at)?;
                    }
                    if ty == 0x03 {
                        for _ in 0..3 {
                            varint(p, &mut at)?;
                        }
                    }
                    Some(())
                };
                if ok().is_none() {
                    return;
                }
            }
            0x06 => {
                let (Some(off), Some(len)) = (varint(p, &mut at), varint(p, &mut at)) else {
                    return;
                };
                let Some(data) = p.get(at..at.saturating_add(len as usize)) else {
                    return;
                };
                out.push(CryptoChunk {
                    offset: off,
                    data: data.to_vec(),
                });
                at += data.len();
            }
            _ => return,
        }
    }
}

/// Reassembles the client's CRYPTO stream from chunks arriving in any order, bounded in size.
#[derive(Debug, Clone, Default)]
pub struct CryptoStream {
    buf: Vec<u8>,
    have: Vec<bool>,
}

/// Largest CRYPTO stream prefix kept (a ClientHello with post-quantum key shares fits easily).
const MAX_CRYPTO: u64 = 16 * 1024;

impl CryptoStream {
    /// Adds a chunk; bytes beyond the bound are ignored.
    pub fn add(&mut self, c: &CryptoChunk) {
        let Some(end) = c.offset.checked_add(c.data.len() as u64) else {
            return;
        };
        let end = end.min(MAX_CRYPTO) as usize;
        let start = c.offset.min(MAX_CRYPTO) as usize;
        if end <= start {
            return;
        }
        if self.buf.len() < end {
            self.buf.resize(end, 0);
            self.have.resize(end, false);
        }
        self.buf[start..end].copy_from_slice(&c.data[..end - start]);
        self.have[start..end].iter_mut().for_each(|h| *h = true);
    }

    /// The contiguous bytes from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        let n = self.have.iter().position(|h| !h).unwrap_or(self.have.len());
        &self.buf[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9001 Appendix A.1: keys derived from DCID 0x8394c8f03e515708.
    #[test]
    fn rfc9001_initial_keys() {
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let k = client_keys(&SUITE_V1, &dcid).unwrap_or(Keys {
            key: [0; 16],
            iv: [0; 12],
            hp: [0; 16],
        });
        assert_eq!(hex(&k.key), "1f369613dd76d5467730efcbe3b1a22d");
        assert_eq!(hex(&k.iv), "fa044b2f42a3fd3b46fb255c");
        assert_eq!(hex(&k.hp), "9f50449e04a0e810283a1e9933adedd2");
    }

    /// RFC 9369 Appendix A.1: QUIC v2 keys from the same DCID.
    #[test]
    fn rfc9369_initial_keys() {
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let s = Suite {
            salt: &SALT_V2,
            v2: true,
        };
        let k = client_keys(&s, &dcid).unwrap_or(Keys {
            key: [0; 16],
            iv: [0; 12],
            hp: [0; 16],
        });
        assert_eq!(hex(&k.key), "8b1a0bc121284290a29e0971b5cd045d");
        assert_eq!(hex(&k.iv), "91f73e2351d8fa91660e909f");
        assert_eq!(hex(&k.hp), "45b95e15235d6f45a6b19cbcb0294ba9");
    }

    const SUITE_V1: Suite = Suite {
        salt: &SALT_V1,
        v2: false,
    };

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn crypto_stream_reorders() {
        let mut s = CryptoStream::default();
        s.add(&CryptoChunk {
            offset: 3,
            data: vec![4, 5],
        });
        assert!(s.contiguous().is_empty());
        s.add(&CryptoChunk {
            offset: 0,
            data: vec![1, 2, 3],
        });
        assert_eq!(s.contiguous(), &[1, 2, 3, 4, 5]);
        s.add(&CryptoChunk {
            offset: u64::MAX,
            data: vec![1],
        });
    }

    #[test]
    fn varints() {
        let mut at = 0;
        assert_eq!(varint(&[0x40, 0x25], &mut at), Some(37));
        let mut at = 0;
        assert_eq!(
            varint(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c], &mut at),
            Some(151_288_809_941_952_652)
        );
        let mut at = 0;
        assert_eq!(varint(&[0x80], &mut at), None);
    }
}

/// Google QUIC (Q043-Q046): the client's CHLO is in plain text; returns its `SNI` tag's value.
/// The CHLO is a tag/value map: `CHLO`, u16 count, u16 padding, `count` × (tag, u32 end offset,
/// little-endian), then the values back to back.
pub fn gquic_chlo_sni(payload: &[u8]) -> Option<String> {
    let head = payload.get(..payload.len().min(64))?;
    let at = head.windows(4).position(|w| w == b"CHLO")?;
    let count = usize::from(u16::from_le_bytes([
        *payload.get(at + 4)?,
        *payload.get(at + 5)?,
    ]));
    if count == 0 || count > 64 {
        return None;
    }
    let index = at + 8;
    let values = index + 8 * count;
    let mut start = 0usize;
    for i in 0..count {
        let e = payload.get(index + 8 * i..index + 8 * i + 8)?;
        let end = u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as usize;
        if &e[..4] == b"SNI\0" {
            let v = payload.get(values + start..values + end)?;
            let s = std::str::from_utf8(v).ok()?;
            return (!s.is_empty()).then(|| s.to_ascii_lowercase());
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod gquic_tests {
    use super::gquic_chlo_sni;

    #[test]
    fn chlo_sni() {
        let mut p = vec![0x0d, 1, 2, 3, 4, 5, 6, 7, 8, b'Q', b'0', b'4', b'3', 1];
        p.extend_from_slice(b"CHLO");
        p.extend_from_slice(&[2, 0, 0, 0]);
        p.extend_from_slice(b"PAD\0");
        p.extend_from_slice(&3u32.to_le_bytes());
        p.extend_from_slice(b"SNI\0");
        p.extend_from_slice(&14u32.to_le_bytes());
        p.extend_from_slice(b"---www.Example.");
        assert_eq!(gquic_chlo_sni(&p).as_deref(), Some("www.example"));
        assert_eq!(gquic_chlo_sni(&p[..30]), None);
        assert_eq!(gquic_chlo_sni(b"CHLO"), None);
    }
}
