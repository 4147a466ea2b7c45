//! cargo-fuzz target: QUIC Initial header protection removal, decryption and CRYPTO frame walk,
//! CRYPTO stream reassembly, and the gQUIC CHLO reader.
#![no_main]

use enrich_probe::dpi::quic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = quic::CryptoStream::default();
    for c in quic::initial_crypto_frames(data) {
        s.add(&c);
    }
    // Also as chunks taken from the input itself: (offset byte, length byte, bytes).
    let mut rest = data;
    while rest.len() >= 2 {
        let off = u64::from(rest[0]) * 61;
        let len = usize::from(rest[1]).min(rest.len() - 2);
        s.add(&quic::CryptoChunk {
            offset: off,
            data: rest[2..2 + len].to_vec(),
        });
        rest = &rest[2 + len..];
    }
    assert!(s.contiguous().len() <= 16 * 1024);
    let _ = quic::gquic_chlo_sni(data);
});
