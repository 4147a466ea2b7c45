//! Real-time media signatures: STUN/TURN (RFC 8489 §5-6, RFC 8656 ChannelData), RTP and RTCP
//! (RFC 3550 §5.1, §6.4; RFC 5761 §4 for telling them apart on one port), and Zoom's media
//! encapsulation on UDP 8801 (an 8-byte SFU header of type 5, then Zoom's media header whose type
//! says audio 15, video 16, screen share 13/30, RTCP 33-35, before the RTP/RTCP packet).

/// STUN magic cookie (RFC 8489 §5).
const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// A STUN message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stun {
    /// Message type (method and class).
    pub msg_type: u16,
    /// Attribute types in order.
    pub attributes: Vec<u16>,
    /// SOFTWARE attribute, when present.
    pub software: Option<String>,
}

/// Parses a STUN message (with the RFC 5389+ magic cookie).
pub fn parse_stun(p: &[u8]) -> Option<Stun> {
    if p.len() < 20 || p[0] & 0xc0 != 0 || p[4..8] != COOKIE {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if len % 4 != 0 || 20 + len > p.len() {
        return None;
    }
    let mut s = Stun {
        msg_type: u16::from_be_bytes([p[0], p[1]]),
        ..Stun::default()
    };
    let mut rest = &p[20..20 + len];
    while rest.len() >= 4 && s.attributes.len() < 64 {
        let ty = u16::from_be_bytes([rest[0], rest[1]]);
        let alen = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let Some(v) = rest.get(4..4 + alen) else {
            break;
        };
        s.attributes.push(ty);
        if ty == 0x8022 {
            s.software = Some(String::from_utf8_lossy(v).into_owned());
        }
        let padded = (4 + alen + 3) & !3;
        rest = rest.get(padded..).unwrap_or(&[]);
    }
    Some(s)
}

/// What kind of real-time packet a UDP payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// RTP, with payload type, sequence number and SSRC.
    Rtp {
        /// Payload type (7 bits).
        pt: u8,
        /// Sequence number.
        seq: u16,
        /// Synchronisation source.
        ssrc: u32,
    },
    /// RTCP (packet type 200-207).
    Rtcp {
        /// Packet type of the first packet.
        pt: u8,
    },
}

/// Recognises RTP or RTCP at the start of `p` (version 2; RTCP by its packet type 200-207, as
/// RFC 5761 §4 does).
pub fn parse_media(p: &[u8]) -> Option<Media> {
    if p.len() < 8 || p[0] >> 6 != 2 {
        return None;
    }
    let pt = p[1];
    if (200..=207).contains(&pt) {
        let words = usize::from(u16::from_be_bytes([p[2], p[3]]));
        return ((words + 1) * 4 <= p.len()).then_some(Media::Rtcp { pt });
    }
    if p.len() < 12 {
        return None;
    }
    let pt = pt & 0x7f;
    // Static audio/video types and the dynamic range; 72-76 would collide with RTCP.
    if !(pt <= 34 || (96..=127).contains(&pt)) {
        return None;
    }
    let cc = usize::from(p[0] & 0x0f);
    if 12 + 4 * cc > p.len() {
        return None;
    }
    Some(Media::Rtp {
        pt,
        seq: u16::from_be_bytes([p[2], p[3]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    })
}

/// Zoom media kinds (the inner header's type byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoomMedia {
    /// Type 15.
    Audio,
    /// Type 16.
    Video,
    /// Types 13 and 30.
    ScreenShare,
    /// Types 33-35.
    Rtcp,
}

/// Recognises Zoom's encapsulation: `server_side` when the packet is to or from the SFU port
/// 8801 (an 8-byte outer header of type 5 comes first), else the peer-to-peer form (inner header
/// only). Returns the media kind when the RTP/RTCP packet inside is where Zoom puts it.
pub fn parse_zoom(p: &[u8], server_side: bool) -> Option<ZoomMedia> {
    let inner = if server_side {
        if p.first() != Some(&0x05) {
            return None;
        }
        p.get(8..)?
    } else {
        p
    };
    // Peer to peer, only the media types: a lone type byte of 13 or 33-35 is too common in
    // other UDP protocols (gQUIC's public flags are 0x0d) to be worth the risk.
    let (kind, rtp_off) = match (*inner.first()?, server_side) {
        (15, _) => (ZoomMedia::Audio, 19),
        (16, _) => (ZoomMedia::Video, 24),
        (30, _) | (13, true) => (ZoomMedia::ScreenShare, 27),
        (33..=35, true) => (ZoomMedia::Rtcp, 16),
        _ => return None,
    };
    parse_media(inner.get(rtp_off..)?).map(|_| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_binding_request() {
        let mut p = vec![0x00, 0x01, 0x00, 0x0c];
        p.extend_from_slice(&COOKIE);
        p.extend_from_slice(&[9u8; 12]);
        p.extend_from_slice(&[
            0x80, 0x22, 0x00, 0x05, b'z', b'o', b'o', b'm', b'!', 0, 0, 0,
        ]);
        let s = parse_stun(&p);
        assert_eq!(s.as_ref().map(|s| s.msg_type), Some(1));
        assert_eq!(s.and_then(|s| s.software).as_deref(), Some("zoom!"));
        p[4] = 0;
        assert_eq!(parse_stun(&p), None);
    }

    fn rtp(pt: u8) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0x01, 0x02, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        p.extend_from_slice(&[0u8; 20]);
        p
    }

    #[test]
    fn rtp_and_rtcp() {
        assert_eq!(
            parse_media(&rtp(111)),
            Some(Media::Rtp {
                pt: 111,
                seq: 0x0102,
                ssrc: 0xdeadbeef
            })
        );
        let rtcp = [0x81, 200, 0x00, 0x01, 0, 0, 0, 1];
        assert_eq!(parse_media(&rtcp), Some(Media::Rtcp { pt: 200 }));
        assert_eq!(parse_media(&rtp(60)), None);
        assert_eq!(parse_media(b"GET / HTTP/1.1"), None);
    }

    #[test]
    fn zoom_server_audio() {
        let mut p = vec![0x05, 0, 0, 0, 0, 0, 0, 0];
        let mut inner = vec![15u8];
        inner.extend_from_slice(&[0u8; 18]);
        inner.extend_from_slice(&rtp(112));
        p.extend_from_slice(&inner);
        assert_eq!(parse_zoom(&p, true), Some(ZoomMedia::Audio));
        assert_eq!(parse_zoom(&inner, false), Some(ZoomMedia::Audio));
        assert_eq!(parse_zoom(&inner, true), None);
    }
}
