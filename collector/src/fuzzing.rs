//! Entry points for fuzzing and bad-input tests: arbitrary bytes in, invariants checked.
//!
//! Used by the cargo-fuzz targets in `fuzz/` (run with `scripts/fuzz.sh`) and by
//! `collector/tests/bad_input.rs`. Each entry point must never panic on any input; when one does,
//! either the decoder panicked or one of the invariants checked here failed (the panic message
//! says which).
//!
//! - [`fuzz_v5`]: the NetFlow v5 decoder, alone and through [`Decoder`].
//! - [`fuzz_session`]: one [`Decoder`] fed a sequence of messages from a few exporters, so that
//!   templates, held data sets, sampling state, expiry and `finish` all carry across messages.
//!   Input framing: see [`session_input`].
//! - [`fuzz_file`]: the capture / IPFIX-file reader on arbitrary file contents, its messages then
//!   decoded as in `supernetflow decode`.

use crate::config::DecoderConfig;
use crate::decode::{v5, Decoder};
use crate::ingest::file::{read_file, ExportMessage, FileStats};
use crate::DecodeStats;
use schemas::{FlowRecord, FlowVersion};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Exporter addresses a session input can pick from (two bits of the control byte).
pub const EXPORTERS: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
];

/// Receive clock at the start of a session input, UTC ms (2020-09-13).
pub const SESSION_START_MS: i64 = 1_600_000_000_000;

/// Clock advance before a message, indexed by control bits 3-5: crosses the default hold time
/// (30 s) and template lifetime (30 min).
const ADVANCE_MS: [i64; 8] = [
    0, 1_000, 10_000, 31_000, 61_000, 600_000, 1_860_000, 3_600_000,
];

/// The decoder settings a session input runs with (first input byte, modulo 4).
pub fn session_config(selector: u8) -> DecoderConfig {
    let mut c = DecoderConfig::default();
    match selector % 4 {
        0 => {}
        1 => c = DecoderConfig::for_files(),
        2 => {
            // Tight caps: exporter cap, template cap, hold overflow and expiry all within reach.
            c.template_lifetime_ms = 5_000;
            c.hold_ms = 1_000;
            c.hold_max_sets = 2;
            c.max_exporters = 2;
            c.max_templates_per_exporter = 4;
            c.clock_skew_threshold_ms = 0;
        }
        _ => c.hold_max_sets = 0,
    }
    c
}

/// One message of a session input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMessage<'a> {
    /// The frame's control byte.
    pub ctl: u8,
    pub bytes: &'a [u8],
}

/// Splits a session input: `config:u8` then frames `ctl:u8 len:u16be bytes[len]` (the last frame
/// takes what is left when `len` is larger). Control byte: bits 0-1 exporter ([`EXPORTERS`]),
/// bit 2 receive time known, bits 3-5 clock advance, bit 6 call `expire` first, bit 7 feed the
/// message twice.
pub fn session_input(data: &[u8]) -> (u8, Vec<SessionMessage<'_>>) {
    let Some((&config, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut out = Vec::new();
    while let [ctl, a, b, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        out.push(SessionMessage {
            ctl: *ctl,
            bytes: &tail[..n],
        });
        rest = &tail[n..];
    }
    (config, out)
}

/// Builds a session input (the inverse of [`session_input`]); messages longer than 65535 bytes
/// are cut.
pub fn encode_session(config: u8, messages: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = vec![config];
    for (ctl, m) in messages {
        let m = &m[..m.len().min(usize::from(u16::MAX))];
        out.push(*ctl);
        out.extend_from_slice(&(m.len() as u16).to_be_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// Fuzzes the v5 decoder on one message, alone and through a [`Decoder`].
pub fn fuzz_v5(data: &[u8]) {
    match v5::decode(data) {
        Err(_) => assert!(data.len() < v5::HEADER_LEN, "v5 error on a full header"),
        Ok((h, recs, problem)) => {
            let fit = (data.len() - v5::HEADER_LEN) / v5::RECORD_LEN;
            let count = usize::from(u16::from_be_bytes([data[2], data[3]]));
            assert!(recs.len() <= fit, "v5: {} records, {fit} fit", recs.len());
            assert!(
                recs.len() <= usize::from(v5::MAX_RECORDS),
                "v5: over 30 records"
            );
            assert_eq!(
                usize::from(h.count),
                recs.len(),
                "v5 header count vs records"
            );
            let consistent = count <= usize::from(v5::MAX_RECORDS) && count <= fit;
            assert_eq!(problem.is_none(), consistent, "v5 problem vs count {count}");
            for (i, r) in recs.iter().enumerate() {
                let at = v5::HEADER_LEN + i * v5::RECORD_LEN;
                assert_eq!(&r.src_addr[..], &data[at..at + 4], "v5 record {i} srcaddr");
                assert_eq!(r.dst_mask, data[at + 45], "v5 record {i} dst_mask");
            }
        }
    }
    let mut d = Checked::new(DecoderConfig::default());
    let mut v5msg = data.to_vec();
    if let Some(v) = v5msg.get_mut(0..2) {
        v.copy_from_slice(&[0, 5]); // through the decoder as v5 whatever the first bytes say
    }
    d.feed(EXPORTERS[0], Some(SESSION_START_MS), &v5msg);
    d.finish();
}

/// Fuzzes one decoder over a sequence of messages (see [`session_input`]).
pub fn fuzz_session(data: &[u8]) {
    let (config, messages) = session_input(data);
    let mut d = Checked::new(session_config(config));
    let mut now = SESSION_START_MS;
    for m in &messages {
        now += ADVANCE_MS[usize::from(m.ctl >> 3 & 7)];
        if m.ctl & 0x40 != 0 {
            d.expire(now);
        }
        let exporter = EXPORTERS[usize::from(m.ctl & 3)];
        let received = (m.ctl & 4 != 0).then_some(now);
        d.feed(exporter, received, m.bytes);
        if m.ctl & 0x80 != 0 {
            d.feed(exporter, received, m.bytes);
        }
    }
    d.expire(now + ADVANCE_MS[7]);
    d.finish();
}

/// Fuzzes the file reader on arbitrary file contents, then decodes what it found.
pub fn fuzz_file(data: &[u8]) {
    let mut stats = FileStats::default();
    // The reader treats `.ipfix` files as IPFIX files (RFC 5655, messages back to back) and other
    // non-capture files as one raw payload; the input's length picks which.
    let ipfix_file = data.len() % 2 == 0;
    let ext = if ipfix_file { "ipfix" } else { "bin" };
    let Ok(messages) = read_bytes_via_temp_file(data, ext, &mut stats) else {
        return;
    };
    let is_capture = data.get(0..4).is_some_and(|m| {
        matches!(
            u32::from_le_bytes([m[0], m[1], m[2], m[3]]),
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0x0a0d_0d0a
        )
    });
    if is_capture {
        for m in &messages {
            assert!(
                crate::ingest::file::looks_like_export(&m.payload),
                "capture message is not an export message"
            );
        }
        assert!(
            stats.skipped_packets + stats.bad_packets <= stats.packets,
            "file stats: more skipped than read"
        );
    } else {
        // Raw payload / IPFIX file: the messages are the file cut into pieces, in order (a raw
        // payload file may end with bytes past its message's length, which are dropped).
        let joined: Vec<u8> = messages.iter().flat_map(|m| m.payload.clone()).collect();
        assert!(
            data.starts_with(&joined),
            "file split reordered or invented bytes"
        );
        if ipfix_file {
            assert_eq!(joined.len(), data.len(), "IPFIX file split lost bytes");
        } else {
            assert!(
                messages.len() <= 1,
                "raw payload file gave several messages"
            );
        }
        assert_eq!(messages.is_empty(), data.is_empty(), "file gave no message");
        assert!(
            messages.iter().all(|m| !m.payload.is_empty()),
            "empty message"
        );
    }
    let mut d = Checked::new(DecoderConfig::for_files());
    for m in &messages {
        d.feed(m.exporter.ip(), m.received_ms, &m.payload);
    }
    d.finish();
}

/// What `read_file` makes of `data` in a file named `*.{ext}`. A `read_bytes(&[u8], ...)` entry
/// point in `ingest::file` would make the temporary file unnecessary.
pub fn read_bytes_via_temp_file(
    data: &[u8],
    ext: &str,
    stats: &mut FileStats,
) -> Result<Vec<ExportMessage>, crate::ingest::file::FileError> {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "snf-fuzz-{}-{}.{ext}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::write(&path, data).is_err() {
        return Ok(Vec::new()); // no writable temp dir: nothing to test
    }
    let r = read_file(&path, stats);
    let _ = std::fs::remove_file(&path);
    r
}

/// Counter fields of a [`DecodeStats`], by name (through its JSON form, so new counters are
/// checked without touching this file).
pub fn counters(s: &DecodeStats) -> Vec<(String, u64)> {
    match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter_map(|(k, v)| v.as_u64().map(|v| (k, v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// A [`Decoder`] whose every call checks the decoder's invariants (and panics when one fails).
#[derive(Debug)]
pub struct Checked {
    pub decoder: Decoder,
    /// Every record emitted so far.
    pub records: u64,
}

impl Checked {
    pub fn new(config: DecoderConfig) -> Self {
        Self {
            decoder: Decoder::new(config),
            records: 0,
        }
    }

    fn held(&self, exporter: Option<IpAddr>) -> (usize, usize) {
        let mut sets = 0;
        let mut bytes = 0;
        for (ip, ex) in &self.decoder.exporters {
            if exporter.is_none_or(|e| e == *ip) {
                for dom in ex.domains.values() {
                    sets += dom.held.len();
                    bytes += dom.held.iter().map(|h| h.bytes.len()).sum::<usize>();
                }
            }
        }
        (sets, bytes)
    }

    /// Decodes one message and checks what it did; returns the records it emitted.
    pub fn feed(
        &mut self,
        exporter: IpAddr,
        received_ms: Option<i64>,
        msg: &[u8],
    ) -> Vec<FlowRecord> {
        let before = self.decoder.totals.clone();
        let (_, held_bytes) = self.held(Some(exporter));
        let mut out = Vec::new();
        self.decoder.decode(exporter, received_ms, msg, &mut out);
        let after = self.decoder.totals.clone();
        self.check_totals(&before);
        let n = out.len() as u64;
        self.records += n;
        let d = |f: fn(&DecodeStats) -> u64| f(&after) - f(&before);
        assert_eq!(d(|s| s.flow_records), n, "flow_records vs records returned");
        assert!(d(|s| s.messages) <= 1, "one message counted twice");
        let all = n + d(|s| s.options_records);
        let be16 = |at: usize| {
            msg.get(at..at + 2)
                .map(|v| usize::from(u16::from_be_bytes([v[0], v[1]])))
        };
        if !self.decoder.exporters.contains_key(&exporter) {
            // Dropped (exporter cap) or shorter than a version field.
            let dropped = d(|s| s.dropped_exporter_cap) + d(|s| s.dropped_not_allowed);
            assert!(
                dropped + d(|s| s.short_messages) == 1,
                "unknown exporter, nothing counted"
            );
            assert_eq!(all, 0, "records from a dropped message");
            return out;
        }
        let version = match be16(0) {
            None => {
                assert_eq!(d(|s| s.short_messages), 1, "short message not counted");
                assert_eq!(all, 0, "records from a short message");
                return out;
            }
            Some(v) => v,
        };
        let must_err = |why: &str| assert!(d(|s| s.errors) > 0, "{why} without an error");
        let expect = match version {
            5 => {
                let fit = msg.len().saturating_sub(v5::HEADER_LEN) / v5::RECORD_LEN;
                let max = usize::from(v5::MAX_RECORDS);
                assert!(
                    all <= fit.min(max) as u64,
                    "v5: {all} records from {} bytes",
                    msg.len()
                );
                let count = be16(2).unwrap_or(0);
                if msg.len() < v5::HEADER_LEN || count > max || count > fit {
                    must_err("bad v5 length or count");
                }
                FlowVersion::NetflowV5
            }
            9 | 10 => {
                let (hlen, v) = if version == 9 {
                    (20, FlowVersion::NetflowV9)
                } else {
                    (16, FlowVersion::Ipfix)
                };
                let bad_len = version == 10 && be16(2).is_some_and(|l| l < 16 || l > msg.len());
                if msg.len() < hlen || bad_len {
                    must_err("bad header");
                    assert_eq!(all, 0, "records from a message with a bad header");
                }
                let bound = (msg.len().saturating_sub(hlen) + held_bytes) as u64;
                assert!(
                    all <= bound,
                    "{all} records from {} bytes (+{held_bytes} held)",
                    msg.len()
                );
                v
            }
            _ => {
                must_err("unsupported version");
                assert_eq!(all, 0, "records from an unsupported version");
                return out;
            }
        };
        assert_eq!(d(|s| s.messages), 1, "message not counted");
        for r in &out {
            assert_eq!(r.exporter, exporter, "record of another exporter");
            assert_eq!(r.flow_version, expect, "record of another version");
            let json = serde_json::to_vec(r).expect("record does not serialize");
            // The encoder the sinks use writes the same bytes, whatever the exporter sent.
            let fast = schemas::json::to_vec(r).expect("record does not serialize (schemas::json)");
            assert!(json == fast, "schemas::json differs from serde_json");
        }
        self.check_state();
        out
    }

    pub fn expire(&mut self, now_ms: i64) {
        let before = self.decoder.totals.clone();
        self.decoder.expire(now_ms);
        self.check_totals(&before);
        let cfg = &self.decoder.config;
        for ex in self.decoder.exporters.values() {
            for dom in ex.domains.values() {
                if cfg.hold_ms > 0 {
                    assert!(
                        dom.held
                            .iter()
                            .all(|h| now_ms - h.ctx.received_ms <= cfg.hold_ms),
                        "held set outlived hold_ms"
                    );
                }
                if cfg.template_lifetime_ms > 0 {
                    assert!(
                        dom.raw
                            .values()
                            .all(|t| now_ms - t.refreshed_ms <= cfg.template_lifetime_ms),
                        "template outlived its lifetime"
                    );
                }
            }
        }
        self.check_state();
    }

    pub fn finish(&mut self) {
        let before = self.decoder.totals.clone();
        let (sets, _) = self.held(None);
        self.decoder.finish();
        self.check_totals(&before);
        assert_eq!(
            self.decoder.totals.undecoded_sets - before.undecoded_sets,
            sets as u64,
            "finish: undecoded_sets vs held sets"
        );
        assert_eq!(self.held(None).0, 0, "finish left held sets");
        self.check_state();
    }

    /// Counters never go down, and the exporters' counters add up to the totals.
    fn check_totals(&self, before: &DecodeStats) {
        let after = counters(&self.decoder.totals);
        for ((name, b), (_, a)) in counters(before).iter().zip(&after) {
            assert!(a >= b, "counter {name} went down: {b} -> {a}");
        }
        let per_exporter: Vec<Vec<(String, u64)>> = self
            .decoder
            .exporters
            .values()
            .chain(self.decoder.tcp_sessions.values())
            .map(|e| counters(&e.stats))
            .collect();
        for (i, (name, total)) in after.iter().enumerate() {
            if name.starts_with("dropped_") {
                continue; // counted before there is an exporter
            }
            let sum: u64 = per_exporter
                .iter()
                .filter_map(|c| c.get(i))
                .map(|(_, v)| v)
                .sum();
            assert_eq!(sum, *total, "exporters' {name} do not add up to the total");
        }
    }

    /// Caps hold, and templates are known exactly when their bytes are kept.
    fn check_state(&self) {
        let cfg = &self.decoder.config;
        assert!(
            self.decoder.exporters.len() <= cfg.max_exporters,
            "exporter cap exceeded"
        );
        for ex in self.decoder.exporters.values() {
            assert!(
                ex.template_count() <= cfg.max_templates_per_exporter,
                "template cap exceeded"
            );
            for dom in ex.domains.values() {
                assert!(
                    dom.held.len() <= cfg.hold_max_sets,
                    "hold queue over its cap"
                );
                assert_eq!(
                    dom.templates.len(),
                    dom.raw.len(),
                    "parsed vs raw templates"
                );
                assert!(
                    dom.templates.keys().all(|k| dom.raw.contains_key(k)),
                    "template without bytes"
                );
            }
        }
    }
}

/// One case of the test captures: a directory's export messages, in order.
#[derive(Debug, Clone)]
pub struct Case {
    pub dir: PathBuf,
    pub messages: Vec<ExportMessage>,
}

/// Reads every case under `root` (a directory holding `.pcap`, `.dat`, `.bin` or `.ipfix` files).
/// The captures (in name order) are preferred; a directory without one gives its raw payload files.
pub fn load_cases(root: &Path) -> Vec<Case> {
    let mut dirs = vec![root.to_path_buf()];
    let mut cases = Vec::new();
    while let Some(dir) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
        files.sort();
        let ext = |p: &PathBuf, exts: &[&str]| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
        };
        let pcaps: Vec<&PathBuf> = files
            .iter()
            .filter(|p| ext(p, &["pcap", "pcapng"]))
            .collect();
        let chosen: Vec<&PathBuf> = if pcaps.is_empty() {
            files
                .iter()
                .filter(|p| ext(p, &["dat", "bin", "ipfix"]))
                .collect()
        } else {
            pcaps
        };
        let mut messages = Vec::new();
        for f in chosen {
            if let Ok(m) = read_file(f, &mut FileStats::default()) {
                messages.extend(m);
            }
        }
        if !messages.is_empty() {
            cases.push(Case { dir, messages });
        }
    }
    cases.sort_by(|a, b| a.dir.cmp(&b.dir));
    cases
}

/// Every file under `root` with one of `exts`, sorted.
pub fn files_with(root: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_tiny_inputs() {
        for data in [&[][..], &[0], &[0, 5], &[1, 0, 0], &[2, 4, 0, 1, 10]] {
            fuzz_v5(data);
            fuzz_session(data);
            fuzz_file(data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn session_framing_round_trips(
            config in any::<u8>(),
            msgs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..6),
        ) {
            let refs: Vec<(u8, &[u8])> = msgs.iter().map(|(c, m)| (*c, &m[..])).collect();
            let enc = encode_session(config, &refs);
            let (c, got) = session_input(&enc);
            prop_assert_eq!(c, config);
            let got: Vec<(u8, &[u8])> = got.iter().map(|m| (m.ctl, m.bytes)).collect();
            prop_assert_eq!(got, refs);
        }

        #[test]
        fn entry_points_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            fuzz_v5(&data);
            fuzz_session(&data);
        }
    }
}
