//! The NOC dashboard on real traffic, as in `tests/join_e2e.rs`: application captures from
//! `shared/testdata/apps` replayed into softflowd (the router, IPFIX to `run`'s UDP port) and into
//! the tap offline (`supernetflow probe --pcap ... --export`, IPFIX/TCP to `run`), with an API
//! token set.
//!
//! What it shows:
//! - `/api/v1/summary` agrees with the Parquet tables `run` wrote: router flow records, tap records
//!   and super-flows counted, matched / partial / unmatched, the top providers and applications
//!   (flows and octets), the application types, the sessions seen, and the exporter's record count;
//! - `/api/v1/summary` needs the token, `/dashboard` does not, and `/` leads to it;
//! - the page, loaded in headless Chromium (Debian's `chromium`) as `/dashboard#token=...`, renders
//!   that data: the exporter's address, the providers, the match rate, the sessions; loaded without
//!   the token it says it needs one. Without chromium that part prints SKIPPED.

mod procs;

use procs::run::{http_get, read_table, Run};
use procs::{find_tool, wait_until, Proc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: &str = "the_dashboard_shows_a_replay_as_the_parquet_tables_have_it";
const TOKEN: &str = "dashboard-e2e-token-0123456789";
const CAPTURES: [&str; 2] = [
    "apps/ndpi/conferencing_voip/zoom2.pcap",
    "apps/ndpi/video_streaming/instagram.pcap",
];

fn summary(http: SocketAddr) -> Option<Value> {
    let (code, body) = http_get(http, "/api/v1/summary", Some(TOKEN));
    if code != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

fn u(v: &Value, path: &[&str]) -> u64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// A share as the page prints it: one decimal, rounded half up, in integer arithmetic.
fn percent(part: u64, whole: u64) -> String {
    let tenths = (2000 * part + whole) / (2 * whole);
    format!("{}.{} %", tenths / 10, tenths % 10)
}

/// A count as the page prints it: digits grouped by three with commas.
fn grouped(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Top rows (name, flows, octets) as the summary ranks them: most flows first, ties by name.
fn ranked(m: &BTreeMap<String, (u64, u64)>, n: usize) -> Vec<(String, u64, u64)> {
    let mut v: Vec<(String, u64, u64)> = m.iter().map(|(k, (f, o))| (k.clone(), *f, *o)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

fn summary_rows(list: &Value) -> Vec<(String, u64, u64)> {
    list["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            assert_eq!(r["error"], 0, "counts must be exact here: {r}");
            (
                r["name"].as_str().expect("name").to_string(),
                u(r, &["flows"]),
                u(r, &["octets"]),
            )
        })
        .collect()
}

/// The DOM of `url` after the page ran (headless Chromium, 5 s of virtual time).
fn dump_dom(chromium: &Path, work: &Path, url: &str) -> String {
    let profile = tempfile::tempdir_in(work).expect("profile dir");
    let out = work.join("dom.html");
    let err = work.join("chromium.err");
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(["--virtual-time-budget=5000", "--dump-dom", url])
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(&out).expect("dom file"))
    .stderr(std::fs::File::create(&err).expect("err file"));
    let mut p = Proc::spawn("chromium", &mut cmd);
    let st = p.wait_timeout(Duration::from_secs(90));
    assert!(
        st.is_some_and(|s| s.success()),
        "chromium failed ({st:?}): {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    std::fs::read_to_string(&out).expect("dom")
}

/// The inner HTML of the element with `id` (up to its first closing `tag`).
fn element<'d>(dom: &'d str, id: &str, tag: &str) -> &'d str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let rest = &dom[start..];
    let open = rest.find('>').map_or(0, |i| i + 1);
    let end = rest
        .find(&format!("</{tag}>"))
        .unwrap_or_else(|| panic!("#{id} not closed"));
    &rest[open..end]
}

#[test]
fn the_dashboard_shows_a_replay_as_the_parquet_tables_have_it() {
    let mut pcaps = Vec::new();
    for rel in CAPTURES {
        let Some(p) = procs::testdata(T, rel) else {
            return;
        };
        pcaps.push(p);
    }
    let Some(tools) = procs::tools(T, &["softflowd", "softflowctl"]) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    // A short grace, so that the join settles soon after the replay; ended sessions listed long
    // enough for the page to show them whatever the machine's speed.
    let cfg = work.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "[http]\ntoken = \"{TOKEN}\"\n[join]\ngrace_ms = 3000\n\
             [dashboard]\nended_session_secs = 3600\nsession_idle_secs = 3600\n"
        ),
    )
    .expect("config");
    let cfg = cfg.to_string_lossy().to_string();
    let run = Run::start(work.path(), &["--tcp", "127.0.0.1:0", "--config", &cfg]);
    let tcp = run.tcp.expect("run listens on TCP");

    // The API: the summary needs the token, the page does not, / leads to the page.
    assert_eq!(http_get(run.http, "/api/v1/summary", None).0, 401);
    let (code, page) = http_get(run.http, "/dashboard", None);
    assert_eq!(code, 200);
    assert!(page.contains("/api/v1/summary"));
    assert!((300..400).contains(&http_get(run.http, "/", None).0));

    // The router, then the tap.
    for (i, pcap) in pcaps.iter().enumerate() {
        procs::run_softflowd(
            &tools[0],
            &tools[1],
            work.path(),
            pcap,
            run.udp,
            10,
            &format!("router{i}"),
        );
    }
    let tcp = tcp.to_string();
    let files: Vec<&Path> = pcaps.iter().map(|p| p.as_path()).collect();
    let rep = procs::probe_report(work.path(), "tap", "dash-tap", &files, &["--export", &tcp]);
    let exported = u(&rep, &["export", "encoder", "records"]);

    // Settled: every tap record in, every router flow out of the join, nothing moving.
    let mut last = Value::Null;
    let settled = wait_until(Duration::from_secs(90), || {
        let Some(s) = summary(run.http) else {
            return false;
        };
        let t = &s["totals"];
        let router_exporter = s["exporters"].as_array().and_then(|a| {
            a.iter()
                .find(|e| e["address"] == "127.0.0.1" && e["transport"] == "udp")
                .and_then(|e| e["flow_records"].as_u64())
        });
        let done = u(t, &["tap_records"]) == exported
            && u(t, &["router_records"]) > 0
            && u(t, &["super_flows"]) == u(t, &["router_records"])
            && router_exporter == Some(u(t, &["router_records"]))
            && s["join"]["pending_router_records"] == 0;
        let same = last["totals"] == s["totals"];
        last = s;
        if !(done && same) {
            std::thread::sleep(Duration::from_millis(500));
        }
        done && same
    });
    assert!(settled, "the summary did not settle: {last}");
    let s = last;
    eprintln!(
        "{T}: summary totals {} join {} providers {} sessions seen {}",
        s["totals"], s["join"], s["top_providers"]["rows"], s["sessions"]["seen_total"]
    );

    // The page, in Chromium.
    let chromium = find_tool("chromium").or_else(|| find_tool("chromium-browser"));
    let dom = chromium.as_ref().map(|c| {
        let url = format!("http://{}/dashboard#token={TOKEN}", run.http);
        let dom = dump_dom(c, work.path(), &url);
        let without = dump_dom(c, work.path(), &format!("http://{}/dashboard", run.http));
        assert!(
            element(&without, "status", "div").contains("needs its token"),
            "without the token the page says so: {}",
            element(&without, "status", "div")
        );
        dom
    });
    if chromium.is_none() {
        procs::skip(
            T,
            "chromium not installed (apt-get install -y --no-install-recommends chromium): \
             the page's rendering is NOT checked",
        );
    }

    // The Parquet tables, after a clean stop.
    let data = run.dir.join("data/parquet");
    let st = run.stop(Duration::from_secs(60));
    assert!(st.ok, "run exited with {}: {}", st.status, st.stderr);
    let (flows, _) = read_table(&data.join("flow_records"));
    let (supers, _) = read_table(&data.join("super_flows"));
    let (taps, _) = read_table(&data.join("tap_records"));
    assert!(!flows.is_empty(), "softflowd exported nothing");

    // Totals.
    assert_eq!(u(&s, &["totals", "router_records"]), flows.len() as u64);
    assert_eq!(u(&s, &["totals", "tap_records"]), taps.len() as u64);
    assert_eq!(u(&s, &["totals", "super_flows"]), supers.len() as u64);
    let octets: u64 = flows.iter().map(|f| u(f, &["octets"])).sum();
    assert_eq!(u(&s, &["totals", "router_octets"]), octets);

    // The join's outcome and the tops, from super_flows.
    let mut status: BTreeMap<&str, u64> = BTreeMap::new();
    let mut providers: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut apps: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    for r in &supers {
        let st = str_at(r, &["enrichment_status"]).expect("enrichment_status");
        *status.entry(st).or_default() += 1;
        let o = u(r, &["flow", "octets"]);
        if let Some(p) = str_at(r, &["provider"]) {
            let e = providers.entry(p.to_string()).or_default();
            e.0 += 1;
            e.1 += o;
        }
        if let Some(a) = str_at(r, &["app", "app_name"]) {
            let e = apps.entry(a.to_string()).or_default();
            e.0 += 1;
            e.1 += o;
        }
        *types
            .entry(str_at(r, &["app_type"]).unwrap_or("unknown").to_string())
            .or_default() += 1;
    }
    let count = |k: &str| status.get(k).copied().unwrap_or(0);
    let (matched, partial, unmatched) = (count("matched"), count("partial"), count("unmatched"));
    assert_eq!(
        (
            u(&s, &["join", "matched"]),
            u(&s, &["join", "partial"]),
            u(&s, &["join", "unmatched"])
        ),
        (matched, partial, unmatched)
    );
    let rate = s["join"]["match_rate"].as_f64().expect("match_rate");
    assert!((rate - matched as f64 / supers.len() as f64).abs() < 1e-9);
    assert!(matched > 0, "nothing matched: {status:?}");
    assert!(!providers.is_empty(), "no provider in super_flows");
    assert_eq!(summary_rows(&s["top_providers"]), ranked(&providers, 10));
    assert_eq!(summary_rows(&s["top_apps"]), ranked(&apps, 10));
    let summary_types: BTreeMap<String, u64> = s["app_types"]
        .as_array()
        .expect("app_types")
        .iter()
        .map(|r| {
            (
                r["app_type"].as_str().expect("type").to_string(),
                u(r, &["flows"]),
            )
        })
        .collect();
    assert_eq!(summary_types, types);

    // Sessions: every session the tap named was seen (and none expired: the listing time is long).
    let sessions: BTreeSet<&str> = taps
        .iter()
        .filter_map(|t| str_at(t, &["session_id"]))
        .collect();
    assert_eq!(u(&s, &["sessions", "seen_total"]), sessions.len() as u64);
    let listed = s["sessions"]["list"].as_array().expect("list");
    assert_eq!(listed.len(), sessions.len().min(50));

    // The router exporter: softflowd on 127.0.0.1, every flow record counted.
    let exporters = s["exporters"].as_array().expect("exporters");
    let router = exporters
        .iter()
        .find(|e| e["address"] == "127.0.0.1" && e["transport"] == "udp")
        .unwrap_or_else(|| panic!("no UDP exporter 127.0.0.1: {exporters:?}"));
    assert_eq!(u(router, &["flow_records"]), flows.len() as u64);

    // What the page rendered.
    let Some(dom) = dom else {
        return;
    };
    let want_rate = percent(matched, supers.len() as u64);
    assert_eq!(element(&dom, "match-rate", "div").trim(), want_rate);
    let counts = element(&dom, "match-counts", "div");
    assert_eq!(
        counts,
        format!(
            "{} matched · {} partial · {} unmatched",
            grouped(matched),
            grouped(partial),
            grouped(unmatched)
        )
    );
    let ex = element(&dom, "exporters", "tbody");
    assert!(ex.contains(">127.0.0.1<"), "exporter not shown: {ex}");
    let pv = element(&dom, "providers", "tbody");
    for (name, _, _) in ranked(&providers, 10) {
        assert!(pv.contains(&name), "provider {name} not shown: {pv}");
    }
    let sess = element(&dom, "sessions", "tbody");
    for row in listed.iter().take(3) {
        let p = row["provider"].as_str().expect("provider");
        assert!(
            sess.contains(&format!(">{p}<")),
            "session of {p} not shown: {sess}"
        );
    }
    assert!(
        element(&dom, "status", "div").starts_with("updated "),
        "{}",
        element(&dom, "status", "div")
    );
    eprintln!(
        "{T}: the page shows match rate {want_rate}, exporter 127.0.0.1, providers {:?}, {} sessions",
        ranked(&providers, 10)
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        listed.len()
    );
}
