//! JA4 fingerprints against nDPI's (testdata/apps/ndpi/**.out carry `[JA4: ...]` for every TLS and
//! QUIC flow whose ClientHello nDPI saw). Whole packets, so that the hello is complete.
//!
//! The tap follows FoxIO's JA4 specification where nDPI's 2024 snapshot departs from it in two
//! places of the first part, so those two fields are not compared (and the differences are
//! printed): the SNI character (JA4: `d` when the hello has a server_name extension; nDPI: `i`
//! only when the name is an IP literal, `d` otherwise, even without the extension) and the ALPN
//! characters (JA4: first and last character of the first ALPN value, `h1` for `http/1.1`;
//! nDPI: its first two, `ht`). Everything else — transport, version, cipher and extension
//! counts, and both hashes — must be equal.

mod common;

use common::{key, parse_out, Key};
use enrich_probe::classify::signatures::Signatures;
use enrich_probe::flow::SendConfig;
use enrich_probe::offline::run_files;
use enrich_probe::{Output, Pipeline, ProbeConfig};
use std::collections::HashMap;
use std::net::SocketAddr;

#[test]
fn ja4_matches_ndpi() {
    let Some(td) = common::testdata("ja4_ndpi") else {
        return;
    };
    let sigs = Signatures::builtin().expect("signatures");
    let (mut n, mut same, mut missing) = (0u32, 0u32, 0u32);
    for cap in common::files_under(&td.join("apps/ndpi"), &[".pcap", ".pcapng"]) {
        let name = cap.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Ok(text) = std::fs::read_to_string(cap.with_file_name(format!("{name}.out"))) else {
            continue;
        };
        let expected: Vec<_> = parse_out(&text)
            .into_iter()
            .filter(|f| f.ja4.as_deref().is_some_and(|j| j.starts_with(['t', 'q'])))
            .collect();
        if expected.is_empty() {
            continue;
        }
        let cfg = ProbeConfig {
            send: SendConfig {
                snap_len: 65_535,
                ..SendConfig::default()
            },
            stats_interval_ns: 0,
            ..ProbeConfig::default()
        };
        let mut p = Pipeline::new(cfg, sigs.clone());
        let mut tap: HashMap<Key, String> = HashMap::new();
        run_files(&mut p, std::slice::from_ref(&cap), |o| {
            if let Output::Tap(r) = o {
                if let Some(j) = &r.app.tls_fingerprint {
                    let k = key(
                        r.key.protocol,
                        SocketAddr::new(r.key.client_addr, r.key.client_port),
                        SocketAddr::new(r.key.server_addr, r.key.server_port),
                    );
                    tap.entry(k).or_insert_with(|| j.clone());
                }
            }
            Ok(())
        })
        .expect("capture reads");
        for f in expected {
            n += 1;
            let want = f.ja4.unwrap_or_default();
            match tap.get(&f.key) {
                Some(got) if comparable(got) == comparable(&want) => {
                    same += 1;
                    if *got != want {
                        println!("{name}: {:?} nDPI {want} tap {got} (SNI/ALPN chars)", f.key);
                    }
                }
                Some(got) => println!("{name}: {:?} nDPI {want} tap {got} DIFFERENT", f.key),
                None => {
                    missing += 1;
                    println!("{name}: {:?} nDPI {want} tap none", f.key);
                }
            }
        }
    }
    println!("JA4: {same} of {n} flows equal to nDPI's (but for the SNI/ALPN characters), {missing} without a fingerprint");
    assert!(n >= 30, "too few flows with a JA4: {n}");
    assert!(
        f64::from(same) >= 0.95 * f64::from(n),
        "JA4 equal on {same} of {n} flows (< 95 %)"
    );
}

/// JA4 without the SNI character (index 3) and the two ALPN characters (8, 9).
fn comparable(ja4: &str) -> String {
    ja4.char_indices()
        .filter(|(i, _)| ![3, 8, 9].contains(i))
        .map(|(_, c)| c)
        .collect()
}
