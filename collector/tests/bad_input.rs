//! Bad input: truncated, oversized, bit-flipped and random export messages, and 0/1-byte packets.
//!
//! Every message goes through `collector::fuzzing::Checked`, which panics when the decoder breaks
//! an invariant (records beyond what the bytes allow, counters going down, `flow_records` not
//! matching the records returned, a bad header without an error, caps exceeded, ...). On top of
//! that, each test checks that errors are counted where they must be and that the decoder
//! recovers: after the garbage, the real messages decode to as many records as without it.
//!
//! The real messages come from the test captures: `$SNF_TESTDATA`, default
//! `<collector>/../../shared/testdata`. Without them those tests print "SKIPPED: ..." and pass.

use collector::fuzzing::{self, load_cases, Case, Checked};
use collector::DecoderConfig;
use proptest::prelude::*;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

fn cases() -> Option<&'static [Case]> {
    static CASES: OnceLock<Option<Vec<Case>>> = OnceLock::new();
    let cases = CASES.get_or_init(|| {
        let root = std::env::var_os("SNF_TESTDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata")
            });
        let cases = load_cases(&root);
        (!cases.is_empty()).then_some(cases)
    });
    if cases.is_none() {
        eprintln!(
            "SKIPPED: no test captures (set SNF_TESTDATA; default <collector>/../../shared/testdata)"
        );
    }
    cases.as_deref()
}

fn ip(case: &Case, i: usize) -> IpAddr {
    case.messages[i].exporter.ip()
}

/// Feeds the whole case; returns the records it produced.
fn pass(d: &mut Checked, case: &Case) -> u64 {
    let before = d.records;
    for m in &case.messages {
        d.feed(m.exporter.ip(), m.received_ms, &m.payload);
    }
    d.records - before
}

/// A decoder that has seen the case once (templates known).
fn primed(case: &Case) -> Checked {
    let mut d = Checked::new(DecoderConfig::for_files());
    pass(&mut d, case);
    d
}

/// Records of a second pass over the case by a decoder that saw it once, then `garbage`.
fn second_pass(case: &Case, garbage: impl FnOnce(&mut Checked)) -> u64 {
    let mut d = primed(case);
    garbage(&mut d);
    d.finish();
    pass(&mut d, case)
}

/// Asserts the decoder recovers: after `garbage`, the case decodes as it does without it.
fn assert_recovers(case: &Case, what: &str, garbage: impl FnOnce(&mut Checked)) {
    let clean = second_pass(case, |_| {});
    let after = second_pass(case, garbage);
    assert_eq!(after, clean, "{}: records after {what}", case.dir.display());
}

/// Feeds one message and returns (errors added, records emitted).
fn feed(d: &mut Checked, exporter: IpAddr, msg: &[u8]) -> (u64, usize) {
    let errors = d.decoder.totals.errors;
    let n = d.feed(exporter, None, msg).len();
    (d.decoder.totals.errors - errors, n)
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// Set boundaries (message offsets) of a v9 / IPFIX message, as the decoder walks them.
fn set_bounds(msg: &[u8]) -> Vec<usize> {
    let (start, end) = match be16(msg, 0) {
        9 if msg.len() >= 20 => (20, msg.len()),
        10 if msg.len() >= 16 => (16, be16(msg, 2).min(msg.len())),
        _ => return Vec::new(),
    };
    let mut bounds = vec![start];
    let mut off = start;
    while off + 4 <= end {
        let len = be16(msg, off + 2);
        if len < 4 || off + len > end {
            break;
        }
        off += len;
        bounds.push(off);
    }
    bounds
}

/// A hand-built v5 message with `n` records.
fn v5_message(n: u16) -> Vec<u8> {
    let mut m = vec![0u8; 24 + 48 * usize::from(n)];
    m[0..2].copy_from_slice(&5u16.to_be_bytes());
    m[2..4].copy_from_slice(&n.to_be_bytes());
    m[8..12].copy_from_slice(&1_600_000_000u32.to_be_bytes());
    m
}

#[test]
fn zero_and_one_byte_packets() {
    let ex = fuzzing::EXPORTERS[0];
    let mut d = Checked::new(DecoderConfig::default());
    for msg in [
        &[][..],
        &[0],
        &[5],
        &[0xff],
        &[0, 5],
        &[0, 9],
        &[0, 10],
        &[0, 5, 0],
    ] {
        let short = d.decoder.totals.short_messages;
        let (errors, n) = feed(&mut d, ex, msg);
        assert!(errors >= 1, "{msg:?}: no error");
        assert_eq!(n, 0, "{msg:?}: records");
        assert_eq!(
            d.decoder.totals.short_messages - short,
            u64::from(msg.len() < 2)
        );
    }
    // Headers cut anywhere are errors for every version.
    for (version, header) in [(5u16, 24usize), (9, 20), (10, 16)] {
        for len in 2..header {
            let mut m = vec![0u8; len];
            m[0..2].copy_from_slice(&version.to_be_bytes());
            let (errors, n) = feed(&mut d, ex, &m);
            assert_eq!((errors, n), (1, 0), "v{version} message of {len} bytes");
        }
    }
    // ... and the decoder still decodes a good message afterwards.
    assert_eq!(feed(&mut d, ex, &v5_message(3)), (0, 3));
    d.finish();
    for data in [&[][..], &[0], &[10]] {
        fuzzing::fuzz_v5(data);
        fuzzing::fuzz_session(data);
        fuzzing::fuzz_file(data);
    }
}

#[test]
fn every_prefix_of_every_message() {
    let Some(cases) = cases() else { return };
    for case in cases {
        let mut d = primed(case);
        for (i, m) in case.messages.iter().enumerate() {
            let msg = &m.payload;
            let bounds = set_bounds(msg);
            for p in 0..msg.len() {
                let cut = &msg[..p];
                let (errors, _) = feed(&mut d, ip(case, i), cut);
                // v9 has no message length: a cut is an error when it falls inside a set.
                if be16(msg, 0) == 9 && p >= 20 {
                    let off = bounds
                        .iter()
                        .copied()
                        .filter(|b| *b <= p)
                        .max()
                        .unwrap_or(20);
                    let rest = &msg[off..p];
                    if rest.len() >= 4 || rest.iter().any(|b| *b != 0) {
                        let at = case.dir.display();
                        assert!(
                            errors > 0,
                            "{at} msg {i}: v9 cut at {p} inside a set, no error"
                        );
                    }
                }
            }
        }
        d.finish();
        assert_recovers(case, "every prefix", |d| {
            for (i, m) in case.messages.iter().enumerate() {
                for p in (0..m.payload.len()).step_by(7) {
                    d.feed(ip(case, i), None, &m.payload[..p]);
                }
            }
        });
    }
}

/// The message with one length field replaced.
fn with_u16(msg: &[u8], at: usize, v: usize) -> Vec<u8> {
    let mut m = msg.to_vec();
    m[at..at + 2].copy_from_slice(&(v.min(0xffff) as u16).to_be_bytes());
    m
}

/// Variants of a message whose length fields claim more (or less) than is there; each must be
/// an error. Returns (variant, records it may still yield).
fn oversized(msg: &[u8]) -> Vec<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    match be16(msg, 0) {
        5 if msg.len() >= 24 => {
            let fit = (msg.len() - 24) / 48;
            for count in [fit + 1, 31, 0xffff] {
                out.push((with_u16(msg, 2, count), fit.min(30)));
            }
        }
        v @ (9 | 10) => {
            if v == 10 && msg.len() >= 16 {
                for len in [0, 1, 15, msg.len() + 1, 0xffff] {
                    out.push((with_u16(msg, 2, len), 0));
                }
            }
            // Where the sets end: the message (v9) or the header's length (IPFIX).
            let end = if v == 10 {
                be16(msg, 2).min(msg.len())
            } else {
                msg.len()
            };
            let bounds = set_bounds(msg);
            if let [first, _, ..] = bounds[..] {
                // The first set's length: 0..4 (below its header) or past the sets' end.
                for len in [0, 1, 2, 3, end - first + 1, 0xffff] {
                    out.push((with_u16(msg, first + 2, len), 0));
                }
                // The last set's length one past the end: the sets before it still decode.
                let before_last = bounds[bounds.len() - 2];
                if before_last != first {
                    let len = end - before_last + 1;
                    out.push((with_u16(msg, before_last + 2, len), usize::MAX));
                }
            }
        }
        _ => {}
    }
    out
}

#[test]
fn oversized_length_fields() {
    let Some(cases) = cases() else { return };
    let mut variants = 0;
    for case in cases {
        let mut d = primed(case);
        let mut all = Vec::new();
        for (i, m) in case.messages.iter().enumerate() {
            for (v, may) in oversized(&m.payload) {
                let (errors, n) = feed(&mut d, ip(case, i), &v);
                assert!(
                    errors > 0,
                    "{} msg {i}: oversized length, no error",
                    case.dir.display()
                );
                assert!(
                    n <= may,
                    "{} msg {i}: {n} records, at most {may}",
                    case.dir.display()
                );
                all.push((ip(case, i), v));
                variants += 1;
            }
        }
        d.finish();
        assert_recovers(case, "oversized lengths", |d| {
            for (ex, v) in &all {
                d.feed(*ex, None, v);
            }
        });
    }
    assert!(variants > 100, "only {variants} oversized variants");
}

/// xorshift64: deterministic bit positions.
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Single-bit flips of a message: every bit of the first 24 bytes (headers), then `random` more.
fn flips(msg: &[u8], random: usize, seed: u64) -> Vec<Vec<u8>> {
    let bits = msg.len() * 8;
    let mut s = seed | 1;
    let mut at: Vec<usize> = (0..bits.min(24 * 8)).collect();
    if bits > 0 {
        at.extend((0..random).map(|_| (next(&mut s) as usize) % bits));
    }
    at.into_iter()
        .map(|b| {
            let mut m = msg.to_vec();
            m[b / 8] ^= 1 << (b % 8);
            m
        })
        .collect()
}

#[test]
fn bit_flipped_messages() {
    let Some(cases) = cases() else { return };
    for case in cases {
        let garbage: Vec<(IpAddr, Vec<u8>)> = case
            .messages
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                flips(&m.payload, 64, i as u64 + 1)
                    .into_iter()
                    .map(move |f| (i, f))
            })
            .map(|(i, f)| (ip(case, i), f))
            .collect();
        // Each flipped message alone, against a decoder that knows the case's templates.
        let mut d = primed(case);
        for (ex, m) in &garbage {
            d.feed(*ex, None, m);
        }
        d.finish();
        // Flips that leave the templates alone must not change what the real messages give.
        let harmless: Vec<&(IpAddr, Vec<u8>)> = garbage
            .iter()
            .filter(|(_, m)| !fuzzing_touches_templates(m))
            .collect();
        assert_recovers(case, "bit flips", |d| {
            for (ex, m) in harmless {
                d.feed(*ex, None, m);
            }
        });
    }
}

/// Whether a (possibly corrupted) message carries a template set, or a set the decoder may take
/// for one: such a message can legitimately redefine or withdraw templates.
fn fuzzing_touches_templates(msg: &[u8]) -> bool {
    let bounds = set_bounds(msg);
    let v = be16(msg, 0);
    bounds.iter().any(|&off| {
        off + 4 <= msg.len() && {
            let id = be16(msg, off);
            (v == 9 && id <= 1) || (v == 10 && (id == 2 || id == 3))
        }
    })
}

fn real_message() -> impl Strategy<Value = (usize, usize)> {
    let n = cases().map_or(1, <[Case]>::len).max(1);
    (0..n, any::<usize>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
        fuzzing::fuzz_v5(&data);
        fuzzing::fuzz_session(&data);
        fuzzing::fuzz_file(&data);
    }

    #[test]
    fn random_with_valid_header(version in prop::sample::select(vec![5u16, 9, 10]),
                                body in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let mut m = version.to_be_bytes().to_vec();
        m.extend_from_slice(&body);
        if version == 10 && m.len() >= 4 {
            let len = (m.len() as u16).to_be_bytes();
            m[2..4].copy_from_slice(&len);
        }
        let mut d = Checked::new(DecoderConfig::default());
        d.feed(fuzzing::EXPORTERS[0], Some(fuzzing::SESSION_START_MS), &m);
        // The decoder still takes a good message after it.
        prop_assert_eq!(d.feed(fuzzing::EXPORTERS[0], None, &v5_message(2)).len(), 2);
        d.finish();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Real messages with random bytes overwritten, after the messages before them in their case.
    #[test]
    fn mutated_real_messages((c, pick) in real_message(),
                             edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let Some(cases) = cases() else { return Ok(()) };
        let case = &cases[c];
        let i = pick % case.messages.len();
        let mut d = Checked::new(DecoderConfig::for_files());
        for m in &case.messages[..i] {
            d.feed(m.exporter.ip(), m.received_ms, &m.payload);
        }
        let mut m = case.messages[i].payload.clone();
        for (at, b) in edits {
            if !m.is_empty() {
                let n = m.len();
                m[at % n] = b;
            }
        }
        d.feed(ip(case, i), case.messages[i].received_ms, &m);
        d.finish();
    }
}
