//! The E-model against published reference points, computed by hand in the comments.

use super::*;
use proptest::prelude::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn g107_defaults_give_r_93_2_and_mos_4_41() {
    // No delay, no loss, Ie 0: R = 93.2 (G.107 §7's default R); Annex B:
    // 1 + 0.035·93.2 + 93.2·33.2·6.8·7e-6 = 1 + 3.262 + 0.1473 = 4.409.
    let r = r_factor(0.0, 0.0, &OPUS_LIKE);
    assert!(close(r, 93.2, 1e-9), "{r}");
    assert!(close(mos_from_r(r), 4.409, 0.001), "{}", mos_from_r(r));
}

#[test]
fn annex_b_mos_at_the_g109_category_bounds() {
    // G.107 Annex B / G.109 table: R 90, 80, 70, 60, 50 → MOS 4.34, 4.03, 3.60, 3.10, 2.58.
    // (Tolerance 0.01: the table rounds R 80's 4.024 to 4.03.) By hand: R 80: 1 + 2.8 + 80·20·20·7e-6 (0.224) = 4.024; R 60: 1 + 2.1 + 0 = 3.1;
    // R 50: 1 + 1.75 − 50·10·50·7e-6 (0.175) = 2.575.
    for (r, m) in [
        (90.0, 4.34),
        (80.0, 4.03),
        (70.0, 3.60),
        (60.0, 3.10),
        (50.0, 2.58),
    ] {
        assert!(close(mos_from_r(r), m, 0.01), "R {r}: {}", mos_from_r(r));
    }
    assert_eq!(mos_from_r(-5.0), 1.0);
    assert_eq!(mos_from_r(100.0), 4.5);
    assert_eq!(mos_from_r(120.0), 4.5);
    // The Annex B polynomial dips below 1 for 0 < R < 6.5 (R 5: 1 + 0.175 − 0.183 = 0.992).
    assert_eq!(mos_from_r(5.0), 1.0);
}

#[test]
fn delay_curve_of_cole_and_rosenbluth() {
    // Id = 0.024 d + 0.11 (d − 177.3) H(d − 177.3).
    // d 150: Id 3.6, R 89.6, MOS 1 + 3.136 + 89.6·29.6·10.4·7e-6 (0.1931) = 4.329.
    assert!(close(delay_impairment(150.0), 3.6, 1e-9));
    assert!(close(
        mos_from_r(r_factor(150.0, 0.0, &OPUS_LIKE)),
        4.329,
        0.001
    ));
    // d 300: Id 7.2 + 0.11·122.7 = 20.697, R 72.503, MOS 1 + 2.5376 + 0.1745 = 3.712.
    assert!(close(delay_impairment(300.0), 20.697, 1e-9));
    assert!(close(
        mos_from_r(r_factor(300.0, 0.0, &OPUS_LIKE)),
        3.712,
        0.001
    ));
    // d 400 (G.114's planning limit): Id 9.6 + 0.11·222.7 = 34.097, R 59.103,
    // MOS 1 + 2.0686 − 0.0153 = 3.053.
    assert!(close(
        mos_from_r(r_factor(400.0, 0.0, &OPUS_LIKE)),
        3.053,
        0.001
    ));
}

#[test]
fn loss_curve_of_g107_with_g711_plc_bpl() {
    // Ie,eff = 95 · Ppl / (Ppl + 25.1) with Ie 0 and BurstR 1.
    // 1 %: 95/26.1 = 3.640, R 89.560, MOS 4.328.
    // 2 %: 190/27.1 = 7.011, R 86.189, MOS 1 + 3.0166 + 86.189·26.189·13.811·7e-6 (0.2182) = 4.235.
    // 10 %: 950/35.1 = 27.066, R 66.134, MOS 1 + 2.3147 + 66.134·6.134·33.866·7e-6 (0.0962)
    // = 3.411.
    for (loss, ie, m) in [
        (0.01, 3.640, 4.328),
        (0.02, 7.011, 4.235),
        (0.10, 27.066, 3.411),
    ] {
        assert!(
            close(loss_impairment(loss, &OPUS_LIKE), ie, 0.001),
            "{loss}"
        );
        assert!(
            close(mos_from_r(r_factor(0.0, loss, &OPUS_LIKE)), m, 0.001),
            "{loss}"
        );
    }
    // Everything lost: Ie,eff = 95·100/125.1 = 75.94, R 17.26,
    // MOS 1 + 0.6041 + 17.26·(−42.74)·82.74·7e-6 (−0.4273) = 1.177.
    assert!(close(
        mos_from_r(r_factor(0.0, 1.0, &OPUS_LIKE)),
        1.177,
        0.001
    ));
}

#[test]
fn the_delay_adds_half_the_rtt_twice_the_jitter_and_the_codec() {
    assert!(close(
        one_way_delay_ms(Some(100.0), 5.0, &OPUS_LIKE),
        86.5,
        1e-9
    ));
    assert!(close(one_way_delay_ms(None, 5.0, &OPUS_LIKE), 36.5, 1e-9));
}

#[test]
fn estimate_needs_an_audio_stream_with_enough_packets() {
    let mut w = RtpWindow {
        received: 500,
        expected: 500,
        kinds: 2,
        streams: 1,
        ..RtpWindow::default()
    };
    assert_eq!(estimate(&w, &RttSamples::default()), None);
    w.audio_streams = 1;
    w.audio_loss_worst = 0.02;
    w.audio_jitter_worst_ms = 10.0;
    let mut rtt = RttSamples::default();
    rtt.add(80_000_000);
    let e = estimate(&w, &rtt).unwrap();
    // d = 40 + 20 + 26.5 = 86.5 ms: Id 2.076; Ie,eff 7.011; R 84.113;
    // MOS 1 + 2.944 + 84.113·24.113·15.887·7e-6 (0.2256) = 4.170.
    assert!(close(e.delay_ms, 86.5, 1e-6), "{e:?}");
    assert!(close(e.r, 84.113, 0.001), "{e:?}");
    assert!(close(e.mos, 4.170, 0.001), "{e:?}");
    assert_eq!(e.rtt_ms, Some(80.0));
}

proptest! {
    #[test]
    fn more_loss_or_delay_never_raises_mos(
        d in 0.0f64..2000.0, dd in 0.0f64..500.0,
        l in 0.0f64..1.0, dl in 0.0f64..0.5,
    ) {
        let base = mos_from_r(r_factor(d, l, &OPUS_LIKE));
        let more_delay = mos_from_r(r_factor(d + dd, l, &OPUS_LIKE));
        let more_loss = mos_from_r(r_factor(d, (l + dl).min(1.0), &OPUS_LIKE));
        prop_assert!((1.0..=4.5).contains(&base));
        prop_assert!(more_delay <= base + 1e-12, "{d} {dd} {l}: {base} → {more_delay}");
        prop_assert!(more_loss <= base + 1e-12, "{d} {l} {dl}: {base} → {more_loss}");
    }

    #[test]
    fn mos_is_non_decreasing_in_r(r in -50.0f64..150.0, dr in 0.0f64..50.0) {
        let (a, b) = (mos_from_r(r), mos_from_r(r + dr));
        prop_assert!((1.0..=4.5).contains(&a) && (1.0..=4.5).contains(&b));
        prop_assert!(b + 1e-12 >= a, "{r} {dr}: {a} {b}");
    }
}
