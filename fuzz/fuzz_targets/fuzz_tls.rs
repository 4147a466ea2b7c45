//! cargo-fuzz target: TLS ClientHello parsing (SNI, ALPN, JA4), as a TCP stream start and as a
//! QUIC CRYPTO stream.
#![no_main]

use enrich_probe::dpi::tls;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let tls::TlsParse::Hello(h) = tls::parse_tcp_stream(data) {
        assert_eq!(h.ja4.split('_').count(), 3);
    }
    if let Some(h) = tls::parse_handshake(data, tls::Transport::Quic) {
        assert!(h.ja4.starts_with('q'));
    }
});
