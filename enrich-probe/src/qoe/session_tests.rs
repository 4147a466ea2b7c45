//! The session layer on a fake flow table.

use super::*;
use crate::qoe::rtp::RtpWindow;
use std::collections::HashMap;

const S: u64 = 1_000_000_000;

#[derive(Default)]
struct Flows(HashMap<TwinKey, (FlowStats, FlowWindow)>);

impl MemberFlows for Flows {
    fn stats(&self, k: &TwinKey, _now: u64) -> Option<FlowStats> {
        self.0.get(k).map(|x| x.0.clone())
    }
    fn take_window(&mut self, k: &TwinKey, _now: u64) -> Option<FlowWindow> {
        self.0.get_mut(k).map(|x| std::mem::take(&mut x.1))
    }
}

fn key(port: u16) -> TwinKey {
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "198.51.100.7".parse().unwrap();
    let to16 = |ip: IpAddr| match ip {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    };
    TwinKey::ordered(17, (to16(a), port), (to16(b), 8801), 0).0
}

fn stats(bytes: u64) -> FlowStats {
    FlowStats {
        total_bytes: bytes,
        local_bytes: bytes,
        total_packets: 10,
        local_packets: 10,
        ..FlowStats::default()
    }
}

fn joining(k: TwinKey, first: u64) -> Joining<'static> {
    Joining {
        client: "192.0.2.1".parse().unwrap(),
        provider: "zoom",
        app_type: AppType::Conferencing,
        app_name: Some("Zoom".into()),
        client_os: None,
        client_agent: None,
        flow: k,
        first_ns: first,
    }
}

#[test]
fn start_updates_windows_and_end_with_summed_bytes() {
    let mut s = Sessions::new(SessionConfig::default(), "t");
    let mut f = Flows::default();
    let (a, b) = (key(1000), key(1001));
    f.0.insert(a, (stats(100), FlowWindow::default()));
    let (h, id) = s.join(joining(a, S), S).unwrap();
    s.tick(S, &mut f);
    // A second flow of the same client, provider and type joins the same session.
    f.0.insert(b, (stats(50), FlowWindow::default()));
    let (h2, id2) = s.join(joining(b, 2 * S), 2 * S).unwrap();
    assert_eq!((h, &id), (h2, &id2));
    f.0.get_mut(&a).unwrap().1.rtp = RtpWindow {
        received: 98,
        expected: 100,
        jitter_sum_ms: 98.0 * 3.0,
        jitter_n: 98,
        kinds: 1,
        streams: 1,
        ..RtpWindow::default()
    };
    s.packet(h, 31 * S, 1, true, 100, 80);
    s.tick(31 * S, &mut f);
    // Both flows end.
    for k in [a, b] {
        let (st, w) = f.0.remove(&k).unwrap();
        s.flow_ended(h, &k, &st, &w, 40 * S);
    }
    s.tick(40 * S, &mut f);
    assert_eq!(s.map.len(), 1, "lingers");
    s.tick(71 * S, &mut f);
    assert!(s.map.is_empty());
    let ev: Vec<_> = s.take_events().collect();
    let reports: Vec<&AppSession> = ev
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Report(r) => Some(r.as_ref()),
            _ => None,
        })
        .collect();
    let states: Vec<_> = reports.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [RecordState::Start, RecordState::Update, RecordState::End]
    );
    assert!(reports.iter().all(|r| r.session_id == id));
    assert_eq!(reports[2].network.stats.total_bytes, 150);
    assert_eq!(reports[2].member_flows, 2);
    let conf = reports[1].qoe_series[0].qoe.conferencing.as_ref().unwrap();
    assert_eq!(conf.loss_ratio, Some(0.02));
    assert_eq!(conf.jitter_ms, Some(3.0));
    assert_eq!(conf.media, ["audio"]);
    let windows = ev
        .iter()
        .filter(|e| matches!(e, SessionEvent::Interval(_)))
        .count();
    assert!(windows >= 2);
}

#[test]
fn bounded() {
    let cfg = SessionConfig {
        max_sessions: 1,
        ..SessionConfig::default()
    };
    let mut s = Sessions::new(cfg, "t");
    assert!(s.join(joining(key(1), 0), 0).is_some());
    let mut j = joining(key(2), 0);
    j.provider = "teams";
    assert!(s.join(j, 0).is_none());
    assert_eq!(s.counters.full, 1);
}

#[test]
fn idle_windows_are_lines_but_not_series_samples() {
    let mut s = Sessions::new(SessionConfig::default(), "t");
    let mut f = Flows::default();
    let a = key(1000);
    f.0.insert(a, (stats(100), FlowWindow::default()));
    let (h, _) = s.join(joining(a, 0), 0).unwrap();
    s.tick(0, &mut f);
    // First window carried the flow's 100 bytes; the next four windows nothing (a capture-time
    // gap); then 20 more bytes.
    s.tick(30 * S, &mut f);
    s.tick(150 * S, &mut f);
    f.0.get_mut(&a).unwrap().0 = stats(120);
    s.tick(180 * S, &mut f);
    let (st, w) = f.0.remove(&a).unwrap();
    s.flow_ended(h, &a, &st, &w, 180 * S);
    s.finish(&mut f);
    let ev: Vec<_> = s.take_events().collect();
    let lines: Vec<u64> = ev
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Interval(i) => Some(i.bytes),
            _ => None,
        })
        .collect();
    assert_eq!(lines, [100, 0, 0, 0, 0, 20]);
    let samples: Vec<i64> = ev
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Report(r) => Some(r.qoe_series.iter().map(|q| q.ts_ms)),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(samples, [30_000, 180_000]);
}

#[test]
fn live_call_of_a_client_is_unambiguous() {
    let mut s = Sessions::new(SessionConfig::default(), "t");
    let client: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(s.live_call_of(client, 0), None);
    s.join(joining(key(1), 5 * S), 5 * S).unwrap();
    // Not before the call started; not for another client.
    assert_eq!(s.live_call_of(client, S), None);
    assert_eq!(s.live_call_of("192.0.2.9".parse().unwrap(), 6 * S), None);
    assert_eq!(
        s.live_call_of(client, 6 * S),
        Some(("zoom".to_string(), AppType::Conferencing))
    );
    // A video session of the same client is no call.
    let mut v = joining(key(2), 5 * S);
    v.provider = "youtube";
    v.app_type = AppType::VideoStreaming;
    s.join(v, 5 * S).unwrap();
    assert!(s.live_call_of(client, 6 * S).is_some());
    // A second provider's call at the same time: ambiguous, no answer.
    let mut t = joining(key(3), 5 * S);
    t.provider = "teams";
    s.join(t, 5 * S).unwrap();
    assert_eq!(s.live_call_of(client, 6 * S), None);
    // Ended sessions are no live call.
    let mut f = Flows::default();
    s.finish(&mut f);
    assert_eq!(s.live_call_of(client, 6 * S), None);
}
