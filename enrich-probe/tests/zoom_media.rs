//! Zoom's media encapsulation on a real Zoom trace (testdata/apps/zoom-analysis/zoom_test.pcap,
//! from Princeton's zoom-analysis): every flow of the trace is Zoom, the SFU flows carrying audio
//! or video are recognised by their media headers, and the peer-to-peer flow too.

mod common;

use enrich_probe::classify::signatures::Signatures;
use enrich_probe::flow::SendConfig;
use enrich_probe::offline::run_files;
use enrich_probe::{Output, Pipeline, ProbeConfig};
use schemas::{AppType, DetectionMethod};

#[test]
fn every_flow_of_the_zoom_trace_is_zoom() {
    let Some(td) = common::testdata("zoom_media") else {
        return;
    };
    let cfg = ProbeConfig {
        send: SendConfig::default(),
        ..ProbeConfig::default()
    };
    let mut p = Pipeline::new(cfg, Signatures::builtin().expect("signatures"));
    let mut records = Vec::new();
    run_files(
        &mut p,
        &[td.join("apps/zoom-analysis/zoom_test.pcap")],
        |o| {
            if let Output::Tap(r) = o {
                records.push(r.clone());
            }
            Ok(())
        },
    )
    .expect("capture reads");
    assert_eq!(records.len(), 4);
    let mut by_media = 0;
    for r in &records {
        assert_eq!(r.app.provider.as_deref(), Some("zoom"), "{:?}", r.key);
        assert_eq!(r.app.app_type, AppType::Conferencing);
        if r.app.detection_method == DetectionMethod::Rtp {
            by_media += 1;
        }
    }
    // Three flows carry audio/video in Zoom's headers (two SFU, one peer to peer); the fourth
    // carries only control and screen-share types, and is Zoom by its SFU address and port.
    assert_eq!(by_media, 3);
}
