//! cargo-fuzz target: STUN, RTP/RTCP and Zoom media encapsulation recognisers, and the HTTP/1
//! request reader.
#![no_main]

use enrich_probe::dpi::{http, rtp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(s) = rtp::parse_stun(data) {
        assert!(s.attributes.len() <= 64);
    }
    let _ = rtp::parse_media(data);
    let _ = rtp::parse_zoom(data, true);
    let _ = rtp::parse_zoom(data, false);
    let _ = http::parse_request(data);
});
