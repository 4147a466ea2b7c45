//! The join end to end on real traffic, as a NOC would run it: an application capture from
//! `shared/testdata/apps` replayed into softflowd (the router, exporting IPFIX with absolute times
//! to `run`'s UDP port) and into the tap offline (`supernetflow probe --pcap ... --export`, IPFIX
//! over TCP to `run`'s TCP port); `run` decodes both, joins them and writes Parquet; SIGTERM makes
//! it emit every router flow it still holds before its files close.
//!
//! What it shows, per capture:
//! - every router flow record is in `super_flows` exactly once (same record ids as
//!   `flow_records`), with an `enrichment_status`;
//! - every tap record the tap exported is in `tap_records`;
//! - of the router flows whose key the tap saw, the share joined — the tap flow found and covering
//!   the router flow (target ≥ 95 %) — and that the `matched` ones (joined, and classified by the
//!   tap) carry the tap's app type and provider; the share the tap classified is printed (the
//!   tap's classification coverage, not the join's); flows without a tap record say `unmatched`.
//!
//! The figures are printed; no timing is asserted (deadlines only bound a hung test).

mod procs;

use procs::run::{read_run_tables, Run};
use procs::wait_until;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use std::time::Duration;

/// The value of an unlabelled metric in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

struct Outcome {
    router: usize,
    seen: usize,
    joined: usize,
    matched: usize,
    partial: usize,
    unmatched: usize,
    classified_ok: usize,
    classified: usize,
}

fn join_capture(test: &str, rel: &str) -> Option<Outcome> {
    let pcap = procs::testdata(test, rel)?;
    let tools = procs::tools(test, &["softflowd", "softflowctl"])?;
    let work = tempfile::tempdir().expect("tempdir");
    let run = Run::start(work.path(), &["--tcp", "127.0.0.1:0"]);
    let tcp = run.tcp.expect("run listens on TCP");

    // The router.
    procs::run_softflowd(
        &tools[0],
        &tools[1],
        work.path(),
        &pcap,
        run.udp,
        10,
        "router",
    );

    // The tap, offline, exporting to run.
    let tcp = tcp.to_string();
    let rep = procs::probe_report(work.path(), "tap", "e2e-tap", &[&pcap], &["--export", &tcp]);
    let exported = rep["export"]["encoder"]["records"]
        .as_u64()
        .expect("exported records");
    assert_eq!(rep["export"]["encoder"]["records_failed"], 0, "{rep}");

    // Both sides in: the tap records counted by the mediation stage, and the collector quiet.
    let tap_in = || metric(&run.get("/metrics").1, "snf_mediate_tap_records_total");
    assert!(
        wait_until(Duration::from_secs(60), || tap_in()
            == Some(exported as f64)),
        "run received {:?} of {exported} tap records",
        tap_in()
    );
    let mut last = u64::MAX;
    assert!(wait_until(Duration::from_secs(60), || {
        let m = run.messages();
        let quiet = m == last;
        last = m;
        if !quiet {
            std::thread::sleep(Duration::from_millis(300));
        }
        quiet
    }));

    let data = run.dir.join("data/parquet");
    let st = run.stop(Duration::from_secs(60));
    assert!(st.ok, "run exited with {}: {}", st.status, st.stderr);
    assert_eq!(st.report["tap_invalid"], 0, "{}", st.report);

    let (flows, supers, taps) = read_run_tables(&data, exported);
    assert!(!flows.is_empty(), "softflowd exported nothing for {rel}");

    // Every router flow exactly once.
    let ids = |rows: &[Value], path: &[&str]| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in rows {
            *m.entry(str_at(r, path).unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
        m
    };
    let flow_ids = ids(&flows, &["record_id"]);
    let super_ids = ids(&supers, &["record_id"]);
    assert_eq!(
        flow_ids, super_ids,
        "super_flows must hold every router flow once"
    );
    assert!(
        flow_ids.values().all(|&n| n == 1),
        "duplicate router record ids"
    );

    // The tap's view per key: provider and app type of its (last) record.
    let mut tap_keys: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
    for t in &taps {
        if let Some(k) = str_at(t, &["key", "flow_key"]) {
            tap_keys.insert(
                k.to_string(),
                (
                    str_at(t, &["app", "provider"]).map(str::to_string),
                    str_at(t, &["app", "app_type"])
                        .unwrap_or("unknown")
                        .to_string(),
                ),
            );
        }
    }
    let mut o = Outcome {
        router: supers.len(),
        seen: 0,
        joined: 0,
        matched: 0,
        partial: 0,
        unmatched: 0,
        classified_ok: 0,
        classified: 0,
    };
    let mut missed = BTreeSet::new();
    for s in &supers {
        let status = str_at(s, &["enrichment_status"]).expect("enrichment_status column");
        match status {
            "matched" => o.matched += 1,
            "partial" => o.partial += 1,
            "unmatched" => o.unmatched += 1,
            other => panic!("enrichment_status {other}"),
        }
        let key = str_at(s, &["flow", "flow_key"]).unwrap_or("");
        let Some((provider, app_type)) = tap_keys.get(key) else {
            assert_eq!(status, "unmatched", "no tap record for {key}, yet {status}");
            continue;
        };
        o.seen += 1;
        if status == "unmatched" {
            missed.insert(key.to_string());
        }
        // Joined: the tap flow was found and covers the router flow. `partial` with full
        // coverage is a flow the tap saw whole but did not classify (the join's own rule).
        let conf = s["enrichment"]["confidence"].as_f64().unwrap_or(0.0);
        if status == "matched" || (status == "partial" && conf >= 0.9) {
            o.joined += 1;
        }
        if status == "matched" && app_type != "unknown" {
            o.classified += 1;
            let same = str_at(s, &["provider"]).map(str::to_string) == *provider
                && str_at(s, &["app_type"]) == Some(app_type.as_str());
            if same {
                o.classified_ok += 1;
            }
        }
    }
    eprintln!(
        "{test}: {rel}: {} router flows, {} with a tap record, {} of those joined (tap flow found \
         covering it); {} matched (joined and classified), {} partial, {} unmatched; matched flows \
         carrying the tap's app type and provider: {}/{}; keys seen but unmatched: {missed:?}",
        o.router,
        o.seen,
        o.joined,
        o.matched,
        o.partial,
        o.unmatched,
        o.classified_ok,
        o.classified
    );
    let _ = Path::new(rel);
    Some(o)
}

#[test]
fn app_captures_through_softflowd_and_the_tap_join_in_run() {
    const T: &str = "app_captures_through_softflowd_and_the_tap_join_in_run";
    let captures = [
        "apps/ndpi/conferencing_voip/whatsapp_login_call.pcap",
        "apps/ndpi/video_streaming/instagram.pcap",
        "apps/ndpi/conferencing_voip/zoom2.pcap",
    ];
    let (mut seen, mut joined, mut matched, mut ok, mut classified) = (0, 0, 0, 0, 0);
    for rel in captures {
        let Some(o) = join_capture(T, rel) else {
            return;
        };
        seen += o.seen;
        joined += o.joined;
        matched += o.matched;
        ok += o.classified_ok;
        classified += o.classified;
        assert_eq!(
            o.classified_ok, o.classified,
            "{rel}: matched flows carry the tap's labels"
        );
    }
    let share = joined as f64 / seen.max(1) as f64;
    eprintln!(
        "{T}: all captures: {joined}/{seen} router flows whose key the tap saw are joined \
         ({:.1} %); {matched} of them matched (the tap classified the flow: {:.1} %); \
         {ok}/{classified} matched ones carry the tap's labels",
        share * 100.0,
        100.0 * matched as f64 / seen.max(1) as f64
    );
    assert!(seen > 0, "the tap saw none of the router flows");
    assert!(share >= 0.95, "joined share {share:.3} below 0.95");
}
