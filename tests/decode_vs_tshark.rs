//! End-to-end: `supernetflow decode` vs tshark 4.0.17 (and pmacct's expected JSON) on every
//! case of `<testdata>/ipfix/MANIFEST.md`. Run with `-- --nocapture` for the tables.
//! Every test iterates all cases, collects all mismatches (prefixed by the case) and fails
//! once at the end.
mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use support::matching::{dec, explain, match_records, Dec};
use support::pmacct::{self, norm_ip};
use support::tshark::{self, Field};
use support::Case;

fn check_fail(bad: &mut Vec<String>, s: String) {
    bad.push(s);
}

fn finish(test: &str, bad: Vec<String>) {
    if !bad.is_empty() {
        eprintln!("\n==== {test}: {} problem(s) ====", bad.len());
        for b in &bad {
            eprintln!("  {b}");
        }
        panic!("{test}: {} problem(s), first: {}", bad.len(), bad[0]);
    }
}

/// Oracle self-check (no decoder needed): the flattened tshark JSON reproduces the
/// MANIFEST counts. `recs` = flow + options records; MALFORMED = frame-level + record-level
/// `_ws.malformed` items (nf9_h3c: 1 + 1).
#[test]
fn oracle_matches_manifest() {
    let Some(cases) = support::setup("oracle_matches_manifest") else {
        return;
    };
    let mut bad = Vec::new();
    for c in &cases {
        let o = match tshark::oracle(c) {
            Ok(o) => o,
            Err(e) => {
                bad.push(format!("{}: {e}", c.name));
                continue;
            }
        };
        let got = support::Expected {
            msgs: o.msgs,
            recs: o.records.len() as u64 + o.options_records,
            tmpl: o.templates,
            opt_tmpl: o.options_templates,
            sets_without_template: o.sets_without_template,
            malformed: o.malformed + o.malformed_records,
        };
        if got != c.expected {
            bad.push(format!(
                "{}: oracle {:?} != manifest {:?}",
                c.name, got, c.expected
            ));
        }
    }
    finish("oracle_matches_manifest", bad);
}

/// 1. Counts from `decode --stats` against the MANIFEST.
#[test]
fn stats_match_manifest() {
    let Some(cases) = support::setup("stats_match_manifest") else {
        return;
    };
    let mut bad = Vec::new();
    for c in &cases {
        let files = c.capture_inputs();
        let (st, run) = match support::decode_stats(&files) {
            Ok(x) => x,
            Err(e) => {
                bad.push(format!("{}: {e}", c.name));
                continue;
            }
        };
        if run.code != Some(0) || run.panicked() {
            check_fail(
                &mut bad,
                format!(
                    "{}: decoder did not exit cleanly: {}",
                    c.name,
                    run.describe()
                ),
            );
        }
        let g = |k: &str| support::stat(&st, k);
        let mut check = |what: &str, got: Result<u64, String>, want: u64| match got {
            Ok(g) if g == want => {}
            Ok(g) => bad.push(format!("{}: {what} = {g}, expected {want}", c.name)),
            Err(e) => bad.push(format!("{}: {e}", c.name)),
        };
        let late = g("late_decoded_records").unwrap_or(0);
        check(
            "flow_records + options_records - late_decoded_records",
            g("flow_records")
                .and_then(|f| Ok(f + g("options_records")?))
                .map(|n| n.saturating_sub(late)),
            c.expected.recs,
        );
        check("messages", g("messages"), c.expected.msgs);
        // tshark counts every template record it sees, including re-sent (refreshed) ones;
        // the decoder is expected to count template records the same way.
        check("templates", g("templates"), c.expected.tmpl);
        check(
            "options_templates",
            g("options_templates"),
            c.expected.opt_tmpl,
        );
        // a set tshark could not decode is either rescued later (late_decoded_sets) or stays undecoded
        check(
            "undecoded_sets + late_decoded_sets",
            g("undecoded_sets").and_then(|u| Ok(u + g("late_decoded_sets")?)),
            c.expected.sets_without_template,
        );
        if c.name == "ndpi/netflowv9" {
            check("undecoded_sets", g("undecoded_sets"), 23);
        }
        if c.expected.malformed > 0 {
            match g("errors") {
                Ok(0) => check("errors (MALFORMED case, want > 0)", Ok(0), 1),
                Ok(_) => {}
                Err(e) => check("errors", Err(e), 0),
            }
        }
    }
    finish("stats_match_manifest", bad);
}

/// 2. Field values of every flow record vs tshark (late-decoded records are extra).
#[test]
fn records_match_tshark() {
    let Some(cases) = support::setup("records_match_tshark") else {
        return;
    };
    let mut bad = Vec::new();
    let mut table = vec![format!(
        "{:55} {:>6} {:>7} {:>8} {:>7} {:>8} {:>7}",
        "case", "tshark", "decoded", "compared", "mism", "extra", "no-time"
    )];
    for c in &cases {
        let o = match tshark::oracle(c) {
            Ok(o) => o,
            Err(e) => {
                bad.push(format!("{}: oracle: {e}", c.name));
                continue;
            }
        };
        let files = c.capture_inputs();
        let recs = match support::decode_jsonl(&files) {
            Ok(r) => r,
            Err(e) => {
                bad.push(format!("{}: {e}", c.name));
                table.push(format!("{:55} {:>6} {:>7}", c.name, o.records.len(), "ERR"));
                continue;
            }
        };
        let late = support::decode_stats(&files)
            .ok()
            .and_then(|(s, _)| support::stat(&s, "late_decoded_records").ok())
            .unwrap_or(0);
        let dr: Vec<Dec> = recs.iter().map(dec).collect();
        let m = match_records(&o.records, &dr);
        for &oi in m.unmatched_oracle.iter().take(10) {
            bad.push(format!(
                "{}: {}",
                c.name,
                explain(&o.records[oi], &dr, &m.unmatched_dec)
            ));
        }
        if m.unmatched_oracle.len() > 10 {
            bad.push(format!(
                "{}: ... and {} more unmatched tshark records",
                c.name,
                m.unmatched_oracle.len() - 10
            ));
        }
        let extra = m.unmatched_dec.len() as u64;
        if m.unmatched_oracle.is_empty() && extra != late {
            bad.push(format!(
                "{}: {extra} decoded records beyond tshark's, but late_decoded_records = {late}",
                c.name
            ));
        }
        let nt: u64 = m.not_compared.values().sum();
        if nt > 0 {
            eprintln!(
                "note: {}: {nt} times not compared: {:?}",
                c.name, m.not_compared
            );
        }
        table.push(format!(
            "{:55} {:>6} {:>7} {:>8} {:>7} {:>8} {:>7}",
            c.name,
            o.records.len(),
            dr.len(),
            m.fields_compared,
            m.unmatched_oracle.len(),
            extra,
            nt
        ));
    }
    eprintln!("\n{}", table.join("\n"));
    finish("records_match_tshark", bad);
}

fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["exporter", "received_time_ms", "record_id"] {
            o.remove(k);
        }
    }
    v
}

/// 3. Raw payload files (in manifest order) decode exactly like the derived pcap.
#[test]
fn raw_files_match_derived_pcap() {
    let Some(cases) = support::setup("raw_files_match_derived_pcap") else {
        return;
    };
    let mut bad = Vec::new();
    for c in &cases {
        let (Some(pcap), raw) = (c.derived_pcap(), c.raw_files()) else {
            continue;
        };
        if raw.is_empty() {
            continue;
        }
        let (a, b) = match (support::decode_jsonl(&raw), support::decode_jsonl(&[pcap])) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                bad.push(format!("{}: {e}", c.name));
                continue;
            }
        };
        if a.len() != b.len() {
            bad.push(format!(
                "{}: raw files gave {} records, derived pcap {}",
                c.name,
                a.len(),
                b.len()
            ));
        }
        let mut shown = 0;
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            let (x, y) = (strip(x), strip(y));
            if x != y && shown < 5 {
                shown += 1;
                let keys: Vec<String> = x
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .chain(y.as_object().into_iter().flat_map(|o| o.keys()))
                    .filter(|k| x.get(*k) != y.get(*k))
                    .map(|k| {
                        format!(
                            "{k}: raw {} pcap {}",
                            x.get(k).unwrap_or(&Value::Null),
                            y.get(k).unwrap_or(&Value::Null)
                        )
                    })
                    .collect();
                bad.push(format!(
                    "{}: record #{i} differs: {}",
                    c.name,
                    keys.join("; ")
                ));
            }
        }
        eprintln!("raw-vs-pcap {:50} raw={} pcap={}", c.name, a.len(), b.len());
    }
    finish("raw_files_match_derived_pcap", bad);
}

fn pmacct_case(c: &Case, recs: Result<Vec<Value>, String>, bad: &mut Vec<String>) {
    let exp_path = c.path("pmacct-expected-output-flow-00.json");
    if !exp_path.is_file() {
        eprintln!(
            "pmacct {}: SKIPPED (no pmacct-expected-output-flow-00.json shipped)",
            c.name
        );
        return;
    }
    let exp = match pmacct::load(&exp_path) {
        Ok(e) => e,
        Err(e) => return bad.push(format!("{}: {e}", c.name)),
    };
    let recs = match recs {
        Ok(r) => r,
        Err(e) => return bad.push(format!("{}: {e}", c.name)),
    };
    // ours: key -> (scaled sums, raw sums)
    let mut ours: BTreeMap<pmacct::Key, (pmacct::Sums, pmacct::Sums)> = BTreeMap::new();
    for r in recs.iter() {
        let s = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .map(norm_ip)
                .unwrap_or_default()
        };
        let u = |k: &str| r.get(k).and_then(Value::as_u64);
        let key = (
            s("src_addr"),
            s("dst_addr"),
            u("src_port").unwrap_or(0),
            u("dst_port").unwrap_or(0),
            u("protocol").unwrap_or(0),
        );
        let e = ours.entry(key).or_default();
        e.0.rows += 1;
        e.0.packets += u("packets").or(u("packets_exported")).unwrap_or(0);
        e.0.bytes += u("octets").or(u("octets_exported")).unwrap_or(0);
        e.1.rows += 1;
        e.1.packets += u("packets_exported").unwrap_or(0);
        e.1.bytes += u("octets_exported").unwrap_or(0);
    }
    let (mut ok, mut ok_raw, mut missing, mut differ) = (0, 0, 0, 0);
    for (k, want) in &exp {
        match ours.get(k) {
            None => {
                missing += 1;
                if missing <= 5 {
                    bad.push(format!(
                        "{}: pmacct row key {k:?} ({want:?}) has no decoded record",
                        c.name
                    ));
                }
            }
            Some((sc, raw)) if sc.packets == want.packets && sc.bytes == want.bytes => ok += 1,
            Some((_, raw)) if raw.packets == want.packets && raw.bytes == want.bytes => ok_raw += 1,
            Some((sc, raw)) => {
                differ += 1;
                if differ <= 5 {
                    bad.push(format!("{}: key {k:?}: pmacct pkts/bytes {}/{} (rows {}), decoder scaled {}/{} raw {}/{} (records {})", c.name, want.packets, want.bytes, want.rows, sc.packets, sc.bytes, raw.packets, raw.bytes, raw.rows));
                }
            }
        }
    }
    let not_in_pmacct = ours.keys().filter(|k| !exp.contains_key(*k)).count();
    eprintln!(
        "pmacct {:55} keys={:4} equal(scaled)={:4} equal(raw)={:4} missing={:3} differ={:3} decoded-keys-not-in-pmacct={}",
        c.name,
        exp.len(),
        ok,
        ok_raw,
        missing,
        differ,
        not_in_pmacct
    );
}

/// 4. pmacct nfacctd expected output, both sides aggregated on the common key.
#[test]
fn pmacct_expected_output() {
    let Some(cases) = support::setup("pmacct_expected_output") else {
        return;
    };
    let mut bad = Vec::new();
    for c in cases.iter().filter(|c| c.is_pmacct()) {
        let recs = support::decode_jsonl(&c.capture_inputs()).map(|r| r.to_vec());
        pmacct_case(c, recs, &mut bad);
    }
    finish("pmacct_expected_output", bad);
}

/// Oracle cross-check (no decoder needed): tshark's own records vs pmacct, same method.
/// Shows which pmacct cases are comparable at all; never fails on data differences.
#[test]
fn pmacct_vs_tshark_oracle() {
    let Some(cases) = support::setup("pmacct_vs_tshark_oracle") else {
        return;
    };
    for c in cases.iter().filter(|c| c.is_pmacct()) {
        let recs = tshark::oracle(c).map(|o| {
            o.records
                .iter()
                .map(|r| {
                    let v = |f: &Field<u64>| match f { Field::Val(Some(x)) => Value::from(*x), _ => Value::Null };
                    let a = |f: &Field<String>| match f { Field::Val(Some(x)) => Value::from(x.as_str()), _ => Value::Null };
                    let exporter = r.exporter.rsplit_once(':').map(|x| x.0).unwrap_or("");
                    serde_json::json!({"exporter": exporter, "src_addr": a(&r.src_addr), "dst_addr": a(&r.dst_addr),
                        "src_port": v(&r.src_port), "dst_port": v(&r.dst_port), "protocol": v(&r.protocol),
                        "octets_exported": v(&r.octets), "packets_exported": v(&r.packets)})
                })
                .collect()
        });
        let mut notes = Vec::new();
        pmacct_case(c, recs, &mut notes);
        for n in notes {
            eprintln!("  (tshark vs pmacct) {n}");
        }
    }
}
