//! QUIC Initial decryption against suricata-verify's expectations and tshark's server names
//! (testdata/apps/suricata-verify, see its MANIFEST): the tap must decrypt the client's Initial
//! packets, reassemble the ClientHello and see the same extensions in the same order.

mod common;

use enrich_probe::capture::{read_capture, CaptureCounters};
use enrich_probe::classify::signatures::Signatures;
use enrich_probe::flow::SendConfig;
use enrich_probe::{Pipeline, ProbeConfig};

/// (SNI, extension types in order, JA4, carried by QUIC) of one flow's ClientHello.
type Hello = (Option<String>, Vec<u16>, Option<String>, bool);

/// Runs one capture (whole packets) and returns the ClientHello of every flow that had one.
fn hellos(path: &std::path::Path) -> Vec<Hello> {
    let cfg = ProbeConfig {
        send: SendConfig {
            snap_len: 65_535,
            ..SendConfig::default()
        },
        ..ProbeConfig::default()
    };
    let mut p = Pipeline::new(cfg, Signatures::builtin().expect("signatures"));
    let mut out = Vec::new();
    let mut c = CaptureCounters::default();
    read_capture(path, &mut c, |f| {
        p.packet(f.ts_ns, f.data, f.link, &mut out)
    })
    .expect("capture reads");
    p.table()
        .iter()
        .filter(|(_, e)| e.user.dpi.ja4.is_some())
        .map(|(_, e)| {
            let d = &e.user.dpi;
            (
                d.sni.clone(),
                d.tls_extensions.clone(),
                d.ja4.clone(),
                d.quic,
            )
        })
        .collect()
}

#[test]
fn quic_initial_not_first() {
    let Some(td) = common::testdata("suricata_quic") else {
        return;
    };
    let h = hellos(&td.join("apps/suricata-verify/quic-initial-not-first/input.pcap"));
    let (sni, ext, ja4, quic) = h.first().cloned().expect("a ClientHello");
    assert!(quic);
    assert_eq!(sni.as_deref(), Some("scontent-ams4-1.xx.fbcdn.net"));
    // suricata: quic.extensions[1].name == "server_name"
    assert_eq!(ext.get(1), Some(&0x0000));
    let ja4 = ja4.unwrap_or_default();
    assert!(ja4.starts_with("q13d"), "{ja4}");
}

#[test]
fn quic_retry() {
    let Some(td) = common::testdata("suricata_quic") else {
        return;
    };
    let h = hellos(&td.join("apps/suricata-verify/quic-retry/input.pcap"));
    let (sni, ext, _, quic) = h.first().cloned().expect("a ClientHello");
    assert!(quic);
    assert_eq!(sni.as_deref(), Some("www.gravatar.com"));
    // suricata: quic.extensions[0].name == "supported_groups"
    assert_eq!(ext.first(), Some(&0x000a));
}
