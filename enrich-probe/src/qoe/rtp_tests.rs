//! RTP stream statistics on synthetic sequences.

use super::*;

const MS: u64 = 1_000_000;

fn h(seq: u16, ts: u32, marker: bool) -> RtpHeader {
    RtpHeader {
        pt: 0,
        marker,
        seq,
        ts,
        ssrc: 7,
    }
}

fn run(pkts: &[(u16, u32, u64)]) -> RtpStream {
    let mut s = RtpStreams::default();
    for &(seq, ts, at) in pkts {
        s.packet(0, &h(seq, ts, false), MediaKind::Unknown, at);
    }
    s.streams.remove(0)
}

#[test]
fn perfect_pacing_has_no_jitter_or_loss() {
    // PCMU, 20 ms packets: 160 ticks each.
    let p: Vec<_> = (0..50u16)
        .map(|i| (i, u32::from(i) * 160, 1000 * MS + u64::from(i) * 20 * MS))
        .collect();
    let s = run(&p);
    assert_eq!(s.clock_rate, Some(8000));
    assert_eq!(s.kind, MediaKind::Audio);
    assert_eq!((s.received, s.expected(), s.lost()), (50, 50, 0));
    assert!(s.jitter_ms.abs() < 1e-9);
}

#[test]
fn rfc3550_jitter_on_alternating_delay() {
    // Every other packet 4 ms late: |D| = 4 ms on every packet after the first.
    let p: Vec<_> = (0..200u16)
        .map(|i| {
            let late = if i % 2 == 1 { 4 * MS } else { 0 };
            (i, u32::from(i) * 160, u64::from(i) * 20 * MS + late)
        })
        .collect();
    let s = run(&p);
    // J converges to |D| = 4 ms: J_n = 4 (1 - (15/16)^n).
    let expect = 4.0 * (1.0 - (15.0f64 / 16.0).powi(199));
    assert!((s.jitter_ms - expect).abs() < 1e-6, "{}", s.jitter_ms);
    assert!((s.max_jitter_ms - expect).abs() < 1e-6);
}

#[test]
fn sequence_wrap_and_gap() {
    // 65530..=65535, then 0..10 with 3 missing: expected 16, received 13.
    let mut p = Vec::new();
    let mut t = 0u64;
    for seq in (65530u16..=65535).chain(0..10) {
        t += 20 * MS;
        if seq == 2 || seq == 3 || seq == 65533 {
            continue;
        }
        p.push((seq, (t / MS) as u32 * 8, t));
    }
    let s = run(&p);
    assert_eq!(s.expected(), 16);
    assert_eq!(s.received, 13);
    assert_eq!(s.lost(), 3);
}

#[test]
fn reordering_is_not_loss_and_duplicates_are_negative() {
    let s = run(&[
        (1, 160, 20 * MS),
        (3, 480, 60 * MS),
        (2, 320, 61 * MS),
        (4, 640, 80 * MS),
    ]);
    assert_eq!((s.expected(), s.lost()), (4, 0));
    let s = run(&[(1, 160, 20 * MS), (2, 320, 40 * MS), (2, 320, 41 * MS)]);
    assert_eq!(s.lost(), -1);
}

#[test]
fn dynamic_clock_is_estimated() {
    // Opus-like: 960 ticks per 20 ms.
    let mut s = RtpStreams::default();
    for i in 0..30u16 {
        let mut x = h(i, u32::from(i) * 960, false);
        x.pt = 111;
        s.packet(1, &x, MediaKind::Unknown, u64::from(i) * 20 * MS);
    }
    assert_eq!(s.streams[0].clock_rate, Some(48_000));
    assert_eq!(s.streams[0].kind, MediaKind::Audio);
}

#[test]
fn frames_stutter_and_dropout() {
    let mut s = RtpStreams::default();
    let mut at = 0;
    let mut seq = 0u16;
    // 30 fps video, 2 packets per frame, marker on the last; a 400 ms freeze at frame 20, a
    // 1.5 s silence at frame 40.
    for f in 0..60u32 {
        at += match f {
            20 => 400 * MS,
            40 => 1500 * MS,
            _ => 33 * MS,
        };
        for k in 0..2 {
            let mut x = h(seq, f * 3000, k == 1);
            x.pt = 96;
            s.packet(0, &x, MediaKind::Video, at + k as u64 * MS);
            seq = seq.wrapping_add(1);
        }
    }
    let w = s.take_window();
    assert_eq!(w.frames, 60);
    assert_eq!(w.stutters, 2);
    assert_eq!(w.dropouts, 1);
    assert_eq!((w.received, w.expected), (120, 120));
    assert!(w.video);
    let w2 = s.take_window();
    assert_eq!((w2.received, w2.expected), (0, 0));
}

#[test]
fn streams_are_bounded() {
    let mut s = RtpStreams::default();
    for ssrc in 0..40u32 {
        let mut x = h(1, 1, false);
        x.ssrc = ssrc;
        s.packet(0, &x, MediaKind::Unknown, 1);
    }
    assert_eq!(s.streams.len(), MAX_STREAMS);
    assert_eq!(s.untracked, 40 - MAX_STREAMS as u64);
}

#[test]
fn header_reads_marker_and_timestamp() {
    let p = [0x80, 0x80 | 96, 0, 5, 0, 0, 1, 0, 0, 0, 0, 9, 0, 0];
    let x = header(&p, p.len()).expect("rtp");
    assert_eq!((x.pt, x.marker, x.seq, x.ts, x.ssrc), (96, true, 5, 256, 9));
    // An extension that runs past the packet: not RTP.
    let mut e = vec![
        0x90, 96, 0, 5, 0, 0, 1, 0, 0, 0, 0, 9, 0xbe, 0xde, 0x00, 0x01, 1, 2, 3, 4,
    ];
    assert!(header(&e, e.len()).is_some());
    e[15] = 9;
    assert!(header(&e, e.len()).is_none());
    // Cut by the snap length but whole on the wire: still RTP.
    assert!(header(&e[..16], 60).is_some());
}

#[test]
fn audio_window_feeds_the_mos_with_its_worst_stream() {
    let mut flow = RtpStreams::default();
    // SSRC 1: PCMU, 62 sequence numbers with 2 missing (60 received, loss 2/62), paced.
    for i in (0..62u16).filter(|i| *i != 10 && *i != 40) {
        let mut x = h(i, u32::from(i) * 160, false);
        x.ssrc = 1;
        flow.packet(0, &x, MediaKind::Unknown, u64::from(i) * 20 * MS);
    }
    // SSRC 2: PCMU, 30 packets, 1 missing: too few for the MOS.
    for i in (0..31u16).filter(|i| *i != 5) {
        let mut x = h(i, u32::from(i) * 160, false);
        x.ssrc = 2;
        flow.packet(1, &x, MediaKind::Unknown, u64::from(i) * 20 * MS);
    }
    // SSRC 3: video (PT 34, 90 kHz), 100 packets with 10 missing: not audio.
    for i in (0..110u16).filter(|i| i % 11 != 3) {
        let mut x = h(i, u32::from(i) * 3000, false);
        (x.ssrc, x.pt) = (3, 34);
        flow.packet(0, &x, MediaKind::Unknown, u64::from(i) * 33 * MS);
    }
    let w = flow.take_window();
    assert_eq!(w.audio_streams, 1);
    assert!((w.audio_loss_worst - 2.0 / 62.0).abs() < 1e-12, "{w:?}");
    assert!(w.audio_jitter_worst_ms.abs() < 1e-9, "{w:?}");
    // The next window has no packets, so no MOS input.
    assert_eq!(flow.take_window().audio_streams, 0);
}
