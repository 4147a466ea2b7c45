//! Unit tests of the video estimator on synthetic packet sequences.

use super::*;

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

/// A small test provider: 20 s buffer target, 200 kB startup, 1 s paced gap, 5 s idle.
const TEST_LADDERS: &str = r#"
[provider.default]
audio_kbps = 100
buffer_target_s = 20
live_buffer_target_s = 6
startup_bytes = 200000
request_min_payload = 200
tcp_request_min_payload = 60
chunk_min_bytes = 20000
paced_gap_ms = 1000
session_idle_ms = 5000
resume_s = 2.0
rungs = [
  { height = 240, kbps = 250 },
  { height = 480, kbps = 500 },
  { height = 720, kbps = 1000 },
  { height = 1080, kbps = 2000 },
]
"#;

fn cfg() -> VideoConfig {
    VideoConfig::from_toml_str(TEST_LADDERS).expect("test ladder")
}

/// A request on `flow` at `t`, then `bytes` of answer in 1400-byte packets over 100 ms.
fn chunk(s: &mut VideoSession, t: u64, flow: u64, bytes: u64) {
    s.packet(t, flow, true, 650, 600);
    let n = bytes.div_ceil(1400).max(1);
    for i in 0..n {
        let ts = t + MS + i * 100 * MS / n;
        s.packet(ts, flow, false, 1428, 1400);
        if i % 2 == 1 {
            s.packet(ts, flow, true, 60, 30); // ACK
        }
    }
}

/// Intervals of 1 s from `from` to `to` (exclusive), returned.
fn tick(s: &mut VideoSession, from: u64, to: u64) -> Vec<VideoQoe> {
    (from / S..to / S)
        .map(|k| s.interval(k * S, (k + 1) * S))
        .collect()
}

#[test]
fn builtin_ladders_parse_and_map() {
    let c = VideoConfig::from_toml_str(BUILTIN_LADDERS).expect("builtin ladder file");
    assert_eq!(c, VideoConfig::default());
    let yt = c.params(Some("YouTube"));
    assert_eq!(yt.buffer_target_s, 120.0);
    let h = |k: f64| yt.rung_for(k).map(|(_, r)| r.height);
    assert_eq!(h(1400.0), Some(720));
    assert_eq!(h(1100.0), Some(720));
    assert_eq!(h(900.0), Some(480));
    assert_eq!(h(20.0), Some(144));
    assert_eq!(h(1e6), Some(2160));
    assert_eq!(h(0.0), None);
    assert_eq!(h(f64::NAN), None);
    // Unknown provider: the default entry.
    assert_eq!(c.params(Some("nope")), c.params(None));
    // Netflix fills its missing keys from the default entry.
    let nf = c.params(Some("netflix"));
    assert_eq!(nf.paced_gap_ms, c.params(None).paced_gap_ms);
}

#[test]
fn bad_ladder_files_are_refused() {
    let base = "[provider.default]\nrungs = [ { height = 360, kbps = 400 }, ";
    for bad in [
        format!("{base}{{ height = 360, kbps = 800 }} ]"),
        format!("{base}{{ height = 720, kbps = 300 }} ]"),
        format!("{base}{{ height = 720, kbps = 900, fps = 60 }} ]"),
        "[provider.youtube]\nrungs = []".to_string(),
        "[provider.default]\nrungs = []".to_string(),
        "[provider.default]\nbuffer_target_s = -1\nrungs = [ { height = 360, kbps = 4 } ]"
            .to_string(),
    ] {
        assert!(VideoConfig::from_toml_str(&bad).is_err(), "{bad}");
    }
    let scaled = cfg().with_ladder_scale("default", 0.5);
    assert_eq!(scaled.params(None).rungs[2].kbps, 500);
    assert_eq!(cfg().with_ladder_scale("default", -1.0), cfg());
}

#[test]
fn chunks_are_the_bursts_between_requests() {
    let mut t = ChunkTracker::new(200, 60, 20_000, 1_000);
    // ACKs and small upstream packets are not requests.
    assert_eq!(t.packet(0, 1, true, 40 + 28, 40), ChunkEvent::None);
    // Downstream bytes before any request are not media.
    assert_eq!(
        t.packet(S / 100, 1, false, 1400 + 28, 1400),
        ChunkEvent::None
    );
    assert_eq!(
        t.packet(S / 10, 1, true, 600 + 28, 600),
        ChunkEvent::Request { paced: false }
    );
    let mut media = 0;
    for i in 0..50 {
        match t.packet(S / 10 + i * MS, 1, false, 1400 + 28, 1400) {
            ChunkEvent::Media(b) => media += b,
            ChunkEvent::None => {}
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(media, 50 * 1400, "all bytes once the chunk is media");
    // A small answer (beacon) on another flow is not media.
    assert_eq!(
        t.packet(S / 5, 2, true, 500 + 28, 500),
        ChunkEvent::Request { paced: false }
    );
    assert_eq!(
        t.packet(S / 5 + MS, 2, false, 900 + 28, 900),
        ChunkEvent::None
    );
    // After 2 s of silence the next request is paced: the player waited.
    assert_eq!(
        t.packet(3 * S, 1, true, 600 + 28, 600),
        ChunkEvent::Request { paced: true }
    );
    assert_eq!(t.completed, 1);
    let c = t.recent().next().copied().expect("one chunk");
    assert_eq!((c.flow, c.bytes, c.paced), (1, 70_000, false));
    assert_eq!(c.request_ns, S / 10);
    // A request while another flow is mid-download is not paced.
    for i in 0..20 {
        t.packet(3 * S + i * MS, 1, false, 1400 + 28, 1400);
    }
    assert_eq!(
        t.packet(3 * S + 25 * MS, 3, true, 600 + 28, 600),
        ChunkEvent::Request { paced: false }
    );
    assert_eq!(t.open_media().count(), 1);
}

#[test]
fn tcp_and_udp_request_thresholds() {
    let mut t = ChunkTracker::new(200, 60, 20_000, 1_000);
    // TCP (IPv4 + TCP with timestamps: 52 bytes of headers): pure ACK, then an 80-byte
    // HPACK-compressed GET in a TLS record.
    assert_eq!(t.packet(0, 1, true, 52, 0), ChunkEvent::None);
    assert_eq!(
        t.packet(MS, 1, true, 132, 80),
        ChunkEvent::Request { paced: false }
    );
    // The same 80 bytes on QUIC (IPv4 28, IPv6 48 bytes of headers) are an ACK-sized packet.
    assert_eq!(t.packet(2 * MS, 2, true, 108, 80), ChunkEvent::None);
    assert_eq!(t.packet(3 * MS, 3, true, 128, 80), ChunkEvent::None);
    assert_eq!(
        t.packet(4 * MS, 3, true, 348, 300),
        ChunkEvent::Request { paced: false }
    );
}

/// A player at 1 Mbit/s media (125 kB per media second), 5-s chunks of 625 kB: fills 30 s of
/// media at once, then one chunk every 5 s. Returns the session and the time reached.
fn steady_session(until: u64) -> (VideoSession, Vec<VideoQoe>) {
    let mut s = VideoSession::new(&cfg(), None, false);
    let mut out = Vec::new();
    for k in 0..6 {
        chunk(&mut s, k * 150 * MS, 1 + (k % 2), 625_000);
    }
    out.extend(tick(&mut s, 0, 5 * S));
    let mut t = 5 * S;
    while t < until {
        chunk(&mut s, t + 300 * MS, 1, 625_000);
        out.extend(tick(&mut s, t, t + 5 * S));
        t += 5 * S;
    }
    (s, out)
}

#[test]
fn steady_on_off_gives_the_bitrate_and_no_stall() {
    let (s, out) = steady_session(120 * S);
    assert_eq!(out.len(), 120);
    // 200 kB of the first 625-kB chunk arrive 33 ms after its request.
    assert!(
        out[0].startup_delay_ms.is_some_and(|d| d < 100),
        "{:?}",
        out[0]
    );
    assert_eq!(
        out.iter().filter(|q| q.startup_delay_ms.is_some()).count(),
        1
    );
    assert!(out.iter().all(|q| q.stalls == 0 && q.stall_ms == 0));
    // 1 Mbit/s of media, 100 kbit/s of audio: 900 kbit/s of video, nearest rung 720p (1000).
    let rate = s.media_rate_bps().expect("rate");
    assert!((rate - 1e6).abs() < 0.1e6, "rate {rate}");
    let last = out.last().expect("intervals");
    assert_eq!(last.resolution.as_deref(), Some("720p"));
    assert_eq!(last.height_px, Some(720));
    assert!(matches!(last.buffer_state, BufferState::Steady), "{last:?}");
    assert_eq!(out[0].window_start_ms, 0);
    assert_eq!(last.window_end_ms, 120_000);
}

#[test]
fn starved_player_stalls_then_resumes() {
    let (mut s, _) = steady_session(60 * S);
    // The network dies: only ACK-sized packets keep flowing, no media.
    let mut out = Vec::new();
    for k in 60..100u64 {
        for j in 0..4 {
            s.packet(k * S + j * 250 * MS, 1, true, 60, 30);
        }
        out.push(s.interval(k * S, (k + 1) * S));
    }
    let first = out
        .iter()
        .position(|q| q.stalls > 0)
        .expect("a stall once the 20-s buffer is spent");
    // The buffer held 15-20 s of media when the network died.
    assert!((12..=22).contains(&first), "stall after {first} s");
    assert_eq!(out.iter().map(|q| q.stalls).sum::<u32>(), 1);
    assert!(matches!(out[first + 1].buffer_state, BufferState::Stalled));
    assert_eq!(out[first + 1].stall_ms, 1000);
    // Media comes back: the stall ends once resume_s are buffered.
    chunk(&mut s, 100 * S, 1, 625_000);
    let q = s.interval(100 * S, 101 * S);
    assert!(q.stall_ms < 1000, "{q:?}");
    assert!(!matches!(q.buffer_state, BufferState::Stalled), "{q:?}");
}

#[test]
fn silence_after_the_last_chunk_is_not_a_stall() {
    let (mut s, _) = steady_session(60 * S);
    // The whole title is downloaded: the player plays its buffer out with no traffic at all.
    let out = tick(&mut s, 60 * S, 120 * S);
    assert!(out.iter().all(|q| q.stalls == 0), "{out:?}");
    assert!(matches!(
        out[5].buffer_state,
        BufferState::Draining | BufferState::Steady
    ));
    assert!(matches!(
        out.last().map(|q| q.buffer_state),
        Some(BufferState::Unknown)
    ));
}

#[test]
fn startup_waits_for_startup_bytes() {
    let mut s = VideoSession::new(&cfg(), Some("unknown-provider"), true);
    assert!(s.is_live());
    let q = s.interval(0, S / 2);
    assert!(matches!(q.buffer_state, BufferState::Unknown));
    assert_eq!(q.resolution, None);
    // A request alone: the player is starting.
    s.packet(S / 2, 9, true, 700, 650);
    let q = s.interval(S / 2, S);
    assert!(matches!(q.buffer_state, BufferState::Startup), "{q:?}");
    // 150 kB: not yet playing.
    chunk(&mut s, S, 1, 150_000);
    let q = s.interval(S, 2 * S);
    assert!(matches!(q.buffer_state, BufferState::Startup), "{q:?}");
    assert_eq!(q.startup_delay_ms, None);
    // 100 kB more, 1.5 s after the first request: playback starts.
    chunk(&mut s, 2500 * MS, 1, 100_000);
    let q = s.interval(2 * S, 3 * S);
    let d = q.startup_delay_ms.expect("startup in this window");
    // From the first request (0.5 s) to the 200th kB (about 2.55 s).
    assert!((2000..2100).contains(&d), "{d}");
    assert!(!matches!(q.buffer_state, BufferState::Startup));
}

#[test]
fn never_panics_on_odd_input() {
    let mut s = VideoSession::new(&VideoConfig::default(), Some("youtube"), false);
    s.packet(u64::MAX, 0, false, u32::MAX, u32::MAX);
    s.packet(0, 0, true, u32::MAX, u32::MAX);
    s.packet(u64::MAX, 0, false, u32::MAX, u32::MAX);
    let _ = s.interval(u64::MAX - 1, u64::MAX);
    let _ = s.interval(0, 1);
    let mut s = VideoSession::new(&VideoConfig::default(), None, false);
    for i in 0..10_000u64 {
        s.packet(
            i * 7 % 1000 * MS,
            i % 5,
            i % 3 == 0,
            1500,
            (i * 37 % 1500) as u32,
        );
    }
    let _ = s.interval(0, 2 * S);
}
