//! TLS ClientHello: server name (SNI), ALPN and the JA4 fingerprint.
//!
//! `tls-parser` reads the record and handshake framing and the hello's fixed fields; the
//! extensions are then walked by type and length here, because JA4 needs them raw and in wire
//! order (RFC 8446 §4.1.2, RFC 6066 §3, RFC 7301 §3.1; JA4: FoxIO's specification).

use sha2::{Digest, Sha256};
use tls_parser::{TlsMessage, TlsMessageHandshake};

/// What a ClientHello tells the tap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// Server name (first host_name entry), lower case.
    pub sni: Option<String>,
    /// ALPN protocols in the client's order.
    pub alpn: Vec<String>,
    /// JA4 fingerprint.
    pub ja4: String,
    /// Highest TLS version offered (supported_versions, else the legacy version).
    pub version: u16,
    /// Extension types in wire order, GREASE included (for fingerprints of client software).
    pub extensions: Vec<u16>,
}

/// Transport that carried the hello (JA4's first character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS over TCP (`t`).
    Tcp,
    /// TLS inside QUIC (`q`).
    Quic,
}

/// Outcome of looking at the start of a client's TCP stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsParse {
    /// A complete ClientHello.
    Hello(Box<ClientHello>),
    /// A TLS handshake record whose end has not been seen yet: this many bytes are needed in all.
    NeedBytes(usize),
    /// Not a TLS ClientHello.
    NotTls,
}

/// GREASE values (RFC 8701): 0x?a?a with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// Looks at the first bytes a TCP client sent. A ClientHello split over several records is not
/// followed (rare in practice).
pub fn parse_tcp_stream(data: &[u8]) -> TlsParse {
    if data.len() < 6 || data[0] != 0x16 || data[1] != 0x03 || data[5] != 0x01 {
        return if data.len() < 6 && data.first().is_none_or(|&b| b == 0x16) {
            TlsParse::NeedBytes(6)
        } else {
            TlsParse::NotTls
        };
    }
    let need = 5 + usize::from(u16::from_be_bytes([data[3], data[4]]));
    if data.len() < need {
        return TlsParse::NeedBytes(need);
    }
    match tls_parser::parse_tls_plaintext(&data[..need]) {
        Ok((_, rec)) => {
            rec.msg
                .iter()
                .find_map(|m| match m {
                    TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) => Some(
                        from_parts(ch.version.0, &ch.ciphers, ch.ext, Transport::Tcp),
                    ),
                    _ => None,
                })
                .map_or(TlsParse::NotTls, |h| TlsParse::Hello(Box::new(h)))
        }
        Err(_) => TlsParse::NotTls,
    }
}

/// Parses a handshake message (no record layer), as QUIC's CRYPTO stream carries it. `None`
/// when it is not a complete ClientHello.
pub fn parse_handshake(data: &[u8], transport: Transport) -> Option<ClientHello> {
    match tls_parser::parse_tls_message_handshake(data) {
        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) => {
            Some(from_parts(ch.version.0, &ch.ciphers, ch.ext, transport))
        }
        _ => None,
    }
}

/// Reads what it can of a ClientHello cut short (the snap length ends it): the server name and
/// ALPN when their extensions lie in the captured part. `data` starts at the TLS record header.
/// No fingerprint: JA4 needs the whole hello.
pub fn partial_hello(data: &[u8]) -> Option<(Option<String>, Vec<String>)> {
    // record header 5, handshake header 4, version 2, random 32
    if data.len() < 44 || data[0] != 0x16 || data[5] != 0x01 {
        return None;
    }
    let mut at = 43;
    let sid = usize::from(*data.get(at)?);
    at += 1 + sid;
    let cs = usize::from(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]));
    at += 2 + cs;
    let comp = usize::from(*data.get(at)?);
    at += 1 + comp + 2;
    let (mut sni, mut alpn_list) = (None, Vec::new());
    while let Some(h) = data.get(at..at + 4) {
        let ty = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let Some(body) = data.get(at + 4..at + 4 + len) else {
            break;
        };
        match ty {
            0x0000 => sni = server_name(body),
            0x0010 => alpn_list = alpn(body),
            _ => {}
        }
        at += 4 + len;
    }
    (sni.is_some() || !alpn_list.is_empty()).then_some((sni, alpn_list))
}

fn from_parts(
    legacy_version: u16,
    ciphers: &[tls_parser::TlsCipherSuiteID],
    ext: Option<&[u8]>,
    transport: Transport,
) -> ClientHello {
    let mut h = ClientHello {
        version: legacy_version,
        ..ClientHello::default()
    };
    let mut sig_algs: Vec<u16> = Vec::new();
    let mut max_supported: Option<u16> = None;
    let mut rest = ext.unwrap_or(&[]);
    while rest.len() >= 4 {
        let ty = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let Some(body) = rest.get(4..4 + len) else {
            break;
        };
        h.extensions.push(ty);
        match ty {
            0x0000 => h.sni = server_name(body),
            0x0010 => h.alpn = alpn(body),
            0x000d => sig_algs = u16_list(body.get(2..).unwrap_or(&[])),
            0x002b => {
                let list = body.get(1..).unwrap_or(&[]);
                max_supported = u16_list(list).into_iter().filter(|v| !is_grease(*v)).max();
            }
            _ => {}
        }
        rest = &rest[4 + len..];
    }
    if let Some(v) = max_supported {
        h.version = v;
    }
    let cipher_ids: Vec<u16> = ciphers.iter().map(|c| c.0).collect();
    h.ja4 = ja4(&h, transport, &cipher_ids, &sig_algs);
    h
}

fn u16_list(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

fn server_name(body: &[u8]) -> Option<String> {
    // server_name_list: u16 length, then (type u8, u16 length, name).
    let list = body.get(2..)?;
    let mut rest = list;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let name = rest.get(3..3 + len)?;
        if rest[0] == 0 {
            let s = std::str::from_utf8(name).ok()?;
            return Some(s.to_ascii_lowercase());
        }
        rest = &rest[3 + len..];
    }
    None
}

fn alpn(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body.get(2..).unwrap_or(&[]);
    while let Some((&len, tail)) = rest.split_first() {
        let Some(p) = tail.get(..usize::from(len)) else {
            break;
        };
        out.push(String::from_utf8_lossy(p).into_owned());
        rest = &tail[usize::from(len)..];
    }
    out
}

fn hash12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    let d = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(12);
    for b in d.iter().take(6) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn hex_list(v: &[u16]) -> String {
    v.iter()
        .map(|x| format!("{x:04x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// JA4 = `a_b_c`: a = transport, version, SNI present, cipher and extension counts, ALPN's first
/// and last characters; b = truncated SHA-256 of the sorted ciphers; c = of the sorted extensions
/// without SNI and ALPN, then the signature algorithms in wire order. GREASE is ignored.
fn ja4(h: &ClientHello, transport: Transport, ciphers: &[u16], sig_algs: &[u16]) -> String {
    let proto = match transport {
        Transport::Tcp => 't',
        Transport::Quic => 'q',
    };
    let version = match h.version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        _ => "00",
    };
    let sni = if h.extensions.contains(&0x0000) {
        'd'
    } else {
        'i'
    };
    let mut cs: Vec<u16> = ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
    let exts: Vec<u16> = h
        .extensions
        .iter()
        .copied()
        .filter(|e| !is_grease(*e))
        .collect();
    let alpn_chars = match h.alpn.first().map(|s| s.as_bytes()) {
        Some([first, .., last]) | Some([first @ last]) => {
            if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
                format!("{}{}", *first as char, *last as char)
            } else {
                let hex = format!("{first:02x}{last:02x}");
                let b = hex.as_bytes();
                format!("{}{}", b[0] as char, b[3] as char)
            }
        }
        _ => "00".into(),
    };
    let a = format!(
        "{proto}{version}{sni}{:02}{:02}{alpn_chars}",
        cs.len().min(99),
        exts.len().min(99)
    );
    cs.sort_unstable();
    let mut es: Vec<u16> = exts
        .iter()
        .copied()
        .filter(|e| *e != 0x0000 && *e != 0x0010)
        .collect();
    es.sort_unstable();
    let mut c = hex_list(&es);
    let sigs: Vec<u16> = sig_algs
        .iter()
        .copied()
        .filter(|s| !is_grease(*s))
        .collect();
    if !sigs.is_empty() {
        c.push('_');
        c.push_str(&hex_list(&sigs));
    }
    format!("{a}_{}_{}", hash12(&hex_list(&cs)), hash12(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello built by hand: TLS 1.3, two ciphers plus GREASE, SNI, ALPN h2/http1.1,
    /// supported_versions, signature_algorithms.
    pub(crate) fn hello(sni: &str) -> Vec<u8> {
        let mut ext = Vec::new();
        let name = sni.as_bytes();
        let mut sn = vec![0u8];
        sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sn.extend_from_slice(name);
        push_ext(&mut ext, 0x0a0a, &[]);
        push_ext(
            &mut ext,
            0x0000,
            &[&(sn.len() as u16).to_be_bytes()[..], &sn].concat(),
        );
        push_ext(&mut ext, 0x0010, b"\x00\x0c\x02h2\x08http/1.1");
        push_ext(&mut ext, 0x002b, b"\x04\x03\x04\x03\x03");
        push_ext(&mut ext, 0x000d, b"\x00\x04\x04\x03\x08\x04");
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0);
        body.extend_from_slice(&[0x00, 0x06, 0x1a, 0x1a, 0x13, 0x01, 0x13, 0x02]);
        body.extend_from_slice(&[0x01, 0x00]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![0x01, 0, 0, 0];
        hs[1..4].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        hs
    }

    fn push_ext(out: &mut Vec<u8>, ty: u16, body: &[u8]) {
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    }

    pub(crate) fn record(hs: &[u8]) -> Vec<u8> {
        let mut r = vec![0x16, 0x03, 0x01];
        r.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        r.extend_from_slice(hs);
        r
    }

    #[test]
    fn sni_alpn_ja4() {
        let rec = record(&hello("WWW.Example.com"));
        let TlsParse::Hello(h) = parse_tcp_stream(&rec) else {
            panic!("no hello");
        };
        assert_eq!(h.sni.as_deref(), Some("www.example.com"));
        assert_eq!(h.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(h.version, 0x0304);
        // 2 ciphers and 4 extensions once GREASE is dropped; ALPN "h2" → "h2".
        assert!(h.ja4.starts_with("t13d0204h2_"), "{}", h.ja4);
        assert_eq!(h.ja4.len(), 36);
    }

    #[test]
    fn partial_record_asks_for_more() {
        let rec = record(&hello("a.example"));
        assert_eq!(parse_tcp_stream(&rec[..40]), TlsParse::NeedBytes(rec.len()));
        assert_eq!(parse_tcp_stream(b"GET / HTTP/1.1\r\n"), TlsParse::NotTls);
    }

    #[test]
    fn cut_hello_still_names_the_server() {
        let rec = record(&hello("cut.example"));
        // Cut right after the SNI extension: ALPN and the rest are missing.
        let sni_end = rec
            .windows(11)
            .position(|w| w == b"cut.example")
            .unwrap_or(0)
            + 11;
        let (sni, alpn) = partial_hello(&rec[..sni_end + 3]).unwrap_or_default();
        assert_eq!(sni.as_deref(), Some("cut.example"));
        assert!(alpn.is_empty());
        assert_eq!(partial_hello(&rec[..30]), None);
    }

    #[test]
    fn grease() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa));
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301));
    }
}
