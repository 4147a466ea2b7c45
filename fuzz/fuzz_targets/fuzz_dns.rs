//! cargo-fuzz target: the lenient DNS message reader and the bounded name cache.
#![no_main]

use enrich_probe::dpi::dns;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cache = dns::DnsCache::new(2);
    if let Some(a) = dns::parse_message(data) {
        assert!(!a.qname.is_empty() && a.qname.len() <= 256);
        for addr in &a.addrs {
            cache.insert(*addr, &a.qname);
        }
    }
    assert!(cache.len() <= 2);
});
