//! DPI-lite: what the first packets of a flow say about it.
//!
//! - [`tls`]: ClientHello SNI, ALPN, JA4 (`tls-parser`).
//! - [`quic`]: QUIC v1/v2 Initial decryption and CRYPTO reassembly (RustCrypto).
//! - [`dns`]: DNS question and answers, and the address → name cache.
//! - [`http`]: HTTP/1 `Host` and `User-Agent` (`httparse`).
//! - [`rtp`]: STUN, RTP/RTCP and Zoom's media encapsulation.
//!
//! [`FlowDpi`] is what the tap keeps per flow; [`FlowDpi::inspect`] takes one packet as user space
//! receives it (the first `snap_len` bytes of the frame).

pub mod dns;
pub mod http;
pub mod quic;
pub mod rtp;
pub mod tls;

use crate::flow::Parsed;
use dns::DnsCache;

/// Largest client stream prefix reassembled for a TLS ClientHello.
const MAX_TLS_STREAM: usize = 16 * 1024;

/// What DPI learned about one flow so far.
#[derive(Debug, Clone, Default)]
pub struct FlowDpi {
    /// TLS or QUIC server name.
    pub sni: Option<String>,
    /// ALPN offered by the client.
    pub alpn: Vec<String>,
    /// JA4 of the ClientHello.
    pub ja4: Option<String>,
    /// Extension types of the ClientHello, in order (GREASE included).
    pub tls_extensions: Vec<u16>,
    /// The hello came inside QUIC.
    pub quic: bool,
    /// HTTP `Host`.
    pub http_host: Option<String>,
    /// HTTP `User-Agent`.
    pub user_agent: Option<String>,
    /// DNS question name, on a DNS flow.
    pub dns_qname: Option<String>,
    /// First STUN message seen.
    pub stun: Option<rtp::Stun>,
    /// STUN messages seen.
    pub stun_packets: u32,
    /// RTP packets seen.
    pub rtp_packets: u32,
    /// RTCP packets seen.
    pub rtcp_packets: u32,
    /// Packets in Zoom's media encapsulation, to or from the SFU port 8801.
    pub zoom_packets: u32,
    /// Packets in Zoom's peer-to-peer media encapsulation (inner header only, any port). A weaker
    /// signature: classification wants several.
    pub zoom_p2p_packets: u32,
    /// First bytes of the client's first payload (payload signatures).
    pub client_prefix: Vec<u8>,
    /// Length of the client's first payload (from the IP lengths).
    pub client_first_len: u32,
    /// IP TTL / hop limit of the client's first packet.
    pub client_ttl: Option<u8>,
    /// TCP window of the client's first SYN.
    pub client_syn_window: Option<u16>,
    /// Packets inspected.
    pub inspected: u32,
    pub(crate) tcp: TcpStream,
    pub(crate) crypto: Option<Box<quic::CryptoStream>>,
}

/// The client's TCP stream prefix, reassembled in order until a ClientHello is complete.
#[derive(Debug, Clone, Default)]
pub(crate) struct TcpStream {
    buf: Vec<u8>,
    next_seq: Option<u32>,
    done: bool,
}

impl FlowDpi {
    /// Zoom media seen: on the SFU port, or at least three peer-to-peer packets.
    pub fn zoom_media(&self) -> bool {
        self.zoom_packets > 0 || self.zoom_p2p_packets >= 3
    }

    /// Has DPI seen what it needs (a name, or media)? Then the flow need not stay "classifying".
    pub fn has_name(&self) -> bool {
        self.sni.is_some() || self.http_host.is_some() || self.dns_qname.is_some()
    }

    /// Looks at one packet: `frame[..cap]` is what user space received, `p` what the accounting
    /// parsed, `from_client` whether the client sent it. DNS answers go into `dns`.
    pub fn inspect(
        &mut self,
        frame: &[u8],
        cap: usize,
        p: &Parsed,
        from_client: bool,
        dns: &mut DnsCache,
    ) {
        self.inspected += 1;
        let payload = p.payload(frame, cap);
        if from_client && self.client_ttl.is_none() {
            let l3 = usize::from(p.l3_off);
            self.client_ttl = match frame.get(l3).map(|b| b >> 4) {
                Some(4) => frame.get(l3 + 8).copied(),
                Some(6) => frame.get(l3 + 7).copied(),
                _ => None,
            };
        }
        if from_client && p.is_tcp && p.flags & 0x12 == 0x02 {
            let w = usize::from(p.l4_off) + 14;
            self.client_syn_window = frame
                .get(w..w + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]));
        }
        if payload.is_empty() {
            return;
        }
        let udp_len = if p.is_tcp {
            p.payload
        } else {
            p.l4_len.saturating_sub(u32::from(p.l4_hdr))
        };
        if from_client && self.client_prefix.is_empty() {
            self.client_prefix = payload[..payload.len().min(16)].to_vec();
            self.client_first_len = udp_len;
        }
        if p.is_tcp {
            if from_client {
                self.tcp_client(payload, p);
            }
            return;
        }
        if p.key.protocol != 17 {
            return;
        }
        let (lo, hi) = (p.key.low_port, p.key.high_port);
        if lo == 53 || hi == 53 {
            if let Some(a) = dns::parse_message(payload) {
                if a.is_response {
                    for addr in &a.addrs {
                        dns.insert(*addr, &a.qname);
                    }
                }
                self.dns_qname.get_or_insert(a.qname);
            }
            return;
        }
        if let Some(s) = rtp::parse_stun(payload) {
            self.stun_packets += 1;
            self.stun.get_or_insert(s);
            return;
        }
        let sfu = lo == 8801 || hi == 8801;
        if sfu && rtp::parse_zoom(payload, true).is_some() {
            self.zoom_packets += 1;
            return;
        }
        if from_client && self.sni.is_none() && quic::looks_like_initial(payload) {
            self.quic_client(payload);
            return;
        }
        if from_client && self.sni.is_none() {
            if let Some(sni) = quic::gquic_chlo_sni(payload) {
                self.sni = Some(sni);
                self.quic = true;
                return;
            }
        }
        if !sfu && rtp::parse_zoom(payload, false).is_some() {
            self.zoom_p2p_packets += 1;
            return;
        }
        match rtp::parse_media(payload) {
            Some(rtp::Media::Rtp { .. }) => self.rtp_packets += 1,
            Some(rtp::Media::Rtcp { .. }) => self.rtcp_packets += 1,
            None => {}
        }
    }

    fn tcp_client(&mut self, payload: &[u8], p: &Parsed) {
        let s = &mut self.tcp;
        if s.done {
            return;
        }
        match s.next_seq {
            None => {
                if self.http_host.is_none() && http::looks_like_request(payload) {
                    if let Some(r) = http::parse_request(payload) {
                        self.http_host = r.host;
                        self.user_agent = r.user_agent;
                    }
                    s.done = true;
                    return;
                }
                if payload.first() != Some(&0x16) {
                    s.done = true;
                    return;
                }
            }
            Some(n) if n == p.seq => {}
            // Retransmission or reordering: the simple in-order reassembly gives up on a gap,
            // ignores a repeat.
            Some(n) => {
                if (p.seq.wrapping_sub(n) as i32) > 0 {
                    s.done = true;
                }
                return;
            }
        }
        s.buf
            .extend_from_slice(&payload[..payload.len().min(MAX_TLS_STREAM - s.buf.len())]);
        s.next_seq = Some(p.seq.wrapping_add(p.payload));
        let mut hello = None;
        match tls::parse_tcp_stream(&s.buf) {
            tls::TlsParse::Hello(h) => {
                s.done = true;
                hello = Some(h);
            }
            tls::TlsParse::NeedBytes(n) => {
                // Cut by the snap length (bytes missing in the middle), or too big to wait for:
                // take the name from the part that was seen, if it is there.
                if payload.len() < p.payload as usize || n > MAX_TLS_STREAM {
                    s.done = true;
                    if let Some((sni, alpn)) = tls::partial_hello(&s.buf) {
                        self.sni = sni;
                        self.alpn = alpn;
                    }
                }
            }
            tls::TlsParse::NotTls => s.done = true,
        }
        if s.done {
            s.buf = Vec::new();
        }
        if let Some(h) = hello {
            self.set_hello(*h, false);
        }
    }

    fn quic_client(&mut self, datagram: &[u8]) {
        let chunks = quic::initial_crypto_frames(datagram);
        if chunks.is_empty() {
            return;
        }
        let c = self.crypto.get_or_insert_with(Default::default);
        for ch in &chunks {
            c.add(ch);
        }
        if let Some(h) = tls::parse_handshake(c.contiguous(), tls::Transport::Quic) {
            self.crypto = None;
            self.set_hello(h, true);
        }
    }

    fn set_hello(&mut self, h: tls::ClientHello, quic: bool) {
        self.sni = h.sni;
        self.alpn = h.alpn;
        self.ja4 = Some(h.ja4);
        self.tls_extensions = h.extensions;
        self.quic = quic;
    }
}
