//! cargo-fuzz target: one frame, under every link type, through the tap's accounting twin and the
//! whole offline pipeline (DPI, classification, records). Nothing may panic; every flow created
//! must be reported once at the end.
#![no_main]

use enrich_probe::classify::signatures::Signatures;
use enrich_probe::flow::{FlowTable, LinkType, SendConfig};
use enrich_probe::{Output, Pipeline, ProbeConfig};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Parsed once: the signature file is data, not what this target fuzzes.
static SIGS: OnceLock<Option<Signatures>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some(sigs) = SIGS.get_or_init(|| Signatures::builtin().ok()).clone() else {
        return;
    };
    let cfg = ProbeConfig {
        max_flows: 8,
        send: SendConfig {
            snap_len: 65_535,
            ..SendConfig::default()
        },
        ..ProbeConfig::default()
    };
    let mut p = Pipeline::new(cfg, sigs);
    let mut t: FlowTable<()> = FlowTable::new(8, SendConfig::default());
    let mut out = Vec::new();
    for (i, link) in [LinkType::Ethernet, LinkType::RawIp, LinkType::LinuxSll]
        .into_iter()
        .enumerate()
    {
        t.account(i as u64, data, link);
        p.packet(i as u64 * 1_000_000, data, link, &mut out);
        // The same frame twice: the second packet of a flow takes the other paths.
        p.packet(i as u64 * 1_000_000 + 1, data, link, &mut out);
    }
    p.finish(&mut out);
    let records = out.iter().filter(|o| matches!(o, Output::Tap(_))).count() as u64;
    assert_eq!(records, p.table().counters.new_flows);
});
