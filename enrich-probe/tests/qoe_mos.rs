//! Conferencing MOS (G.107 E-model, `qoe::mos`) on the real call captures: per session and QoE
//! window, the MOS with what it was computed from (worst audio stream's loss and jitter, the
//! session's RTT, the assumed one-way delay, Id, Ie,eff, R).
//!
//! Checked: a conferencing or VoIP window whose audio streams had enough packets
//! (`mos::MIN_AUDIO_PACKETS`) has a MOS, equal to the E-model of its printed inputs and within
//! 1..=4.5; a window without such a stream has none; and the captures listed as carrying
//! call audio produce at least one MOS. The MOS's accuracy itself cannot be checked here (no
//! listening-test or POLQA ground truth for these captures); its formulas are unit-tested.

mod common;

use enrich_probe::classify::signatures::Signatures;
use enrich_probe::offline::run_files;
use enrich_probe::qoe::mos;
use enrich_probe::qoe::session::{SessionConfig, SessionInterval};
use enrich_probe::{Output, Pipeline, ProbeConfig};
use schemas::AppType;
use std::path::Path;

/// (capture under `apps/`, must yield a MOS). The nDPI samples are short cuts of calls: most
/// carry fewer than `MIN_AUDIO_PACKETS` audio packets per stream (Discord and Signal about 10
/// per flow), or no RTP the tap sees (zoom.pcap); the four marked carry enough. stun_wa_call's
/// audio goes through a TURN relay (port 3478) outside WhatsApp's prefixes: the flow inherits
/// the provider of the client's live WhatsApp call and its audio counts in that session.
const CAPTURES: &[(&str, bool)] = &[
    ("ndpi/conferencing_voip/zoom.pcap", false),
    ("ndpi/conferencing_voip/zoom2.pcap", true),
    ("ndpi/conferencing_voip/stun_zoom.pcapng", false),
    ("zoom-analysis/zoom_test.pcap", false),
    ("ndpi/conferencing_voip/whatsapp.pcap", false),
    ("ndpi/conferencing_voip/whatsapp_login_call.pcap", true),
    (
        "ndpi/conferencing_voip/whatsapp_voice_and_message.pcap",
        false,
    ),
    ("ndpi/conferencing_voip/wa_voice.pcap", true),
    ("ndpi/conferencing_voip/stun_wa_call.pcapng", true),
    ("ndpi/conferencing_voip/google_meet.pcapng", false),
    ("ndpi/conferencing_voip/stun_msteams_unidir.pcapng", false),
    ("ndpi/conferencing_voip/discord.pcap", false),
    ("ndpi/conferencing_voip/signal.pcap", false),
    ("ndpi/conferencing_voip/rtp.pcapng", false),
];

fn intervals(file: &Path) -> Vec<SessionInterval> {
    let cfg = ProbeConfig {
        session: SessionConfig::default(),
        ..ProbeConfig::default()
    };
    let mut p = Pipeline::new(cfg, Signatures::builtin().expect("signatures"));
    let mut out = Vec::new();
    run_files(&mut p, &[file.to_path_buf()], |o| {
        if let Output::Interval(i) = o {
            out.push(i.as_ref().clone());
        }
        Ok(())
    })
    .expect("capture reads");
    out
}

#[test]
fn calls_with_audio_get_a_mos_in_range_from_their_inputs() {
    let Some(td) = common::testdata("qoe_mos") else {
        return;
    };
    let mut failures = Vec::new();
    println!(
        "{:<34} {:<16} {:<10} {:>5} {:>7} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>5}",
        "capture",
        "session",
        "provider",
        "audio",
        "loss",
        "jit ms",
        "rtt ms",
        "d ms",
        "Id",
        "Ie,eff",
        "R",
        "MOS"
    );
    for &(capture, required) in CAPTURES {
        let f = td.join("apps").join(capture);
        let name = Path::new(capture)
            .file_name()
            .map_or("", |n| n.to_str().unwrap_or(""));
        let (mut seen, mut without) = (0, Vec::new());
        let mut providers = Vec::new();
        for iv in intervals(&f) {
            if !matches!(iv.app_type, AppType::Conferencing | AppType::Voip) {
                continue;
            }
            let c = iv.qoe.conferencing.as_ref();
            let m = c.and_then(|c| c.mos);
            match (&iv.mos_inputs, m) {
                (Some(x), Some(m)) => {
                    seen += 1;
                    providers.push(iv.provider.clone());
                    println!(
                        "{name:<34} {:<16} {:<10} {:>5} {:>7.4} {:>8.2} {:>8} {:>8.1} {:>6.2} \
                         {:>6.2} {:>6.2} {:>5.2}",
                        iv.session_id,
                        iv.provider,
                        x.audio_streams,
                        x.loss_ratio,
                        x.jitter_ms,
                        x.rtt_ms.map_or("-".into(), |r| format!("{r:.1}")),
                        x.delay_ms,
                        x.id,
                        x.ie_eff,
                        x.r,
                        m
                    );
                    // The printed inputs give the printed MOS through the E-model.
                    let d = mos::one_way_delay_ms(x.rtt_ms, x.jitter_ms, &mos::OPUS_LIKE);
                    let want = mos::mos_from_r(mos::r_factor(d, x.loss_ratio, &mos::OPUS_LIKE));
                    if !(1.0..=4.5).contains(&m) || (f64::from(m) - want).abs() > 1e-3 {
                        failures.push(format!("{name} {}: MOS {m}, inputs {x:?}", iv.session_id));
                    }
                    if x.audio_streams == 0 || !(0.0..=1.0).contains(&x.loss_ratio) {
                        failures.push(format!("{name} {}: inputs {x:?}", iv.session_id));
                    }
                }
                (None, None) => {
                    without.push(c.map(|c| c.media.join(",")).unwrap_or_default());
                }
                (x, m) => failures.push(format!(
                    "{name} {}: inputs {x:?} but MOS {m:?}",
                    iv.session_id
                )),
            }
        }
        if !without.is_empty() {
            without.sort();
            without.dedup();
            println!(
                "{name:<34} windows without a MOS (no audio stream with {} packets): media \
                 {without:?}",
                mos::MIN_AUDIO_PACKETS
            );
        }
        if required && seen == 0 {
            failures.push(format!("{name}: no MOS on a capture with call audio"));
        }
        // The relayed audio is the WhatsApp call's: its MOS is in a WhatsApp session's window.
        if name == "stun_wa_call.pcapng" && !providers.iter().any(|p| p == "whatsapp") {
            failures.push(format!(
                "{name}: no WhatsApp window with a MOS ({providers:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
