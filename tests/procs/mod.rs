//! Process helpers for the end-to-end tests that run real processes (`supernetflow collect`,
//! softflowd, nfcapd): locating the test data and tools, starting and stopping processes so that a
//! failing test leaves nothing running (every child is killed by PID in `Drop`), waiting with
//! deadlines instead of fixed sleeps, and reading the collector's output and report.
//!
//! Owned by `tests/collect_e2e.rs` and `tests/softflowd_e2e.rs`; self-contained on purpose (it
//! does not depend on `tests/support`).
#![allow(dead_code)]

pub mod run;

use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ locating things

/// Root of the shared test data: `$SNF_TESTDATA` or `<CARGO_MANIFEST_DIR>/../shared/testdata`.
pub fn testdata_root() -> PathBuf {
    match std::env::var_os("SNF_TESTDATA") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("shared")
            .join("testdata"),
    }
}

/// Prints the loud skip line every test uses.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED: {test}: {why}");
}

/// The test data file/dir `rel`, or a SKIPPED line and `None` when it is missing.
pub fn testdata(test: &str, rel: &str) -> Option<PathBuf> {
    let p = testdata_root().join(rel);
    if p.exists() {
        Some(p)
    } else {
        skip(
            test,
            &format!("test data {} not found (set SNF_TESTDATA)", p.display()),
        );
        None
    }
}

/// Whether an executable named `tool` is on PATH (or in the sbin directories, where Debian puts
/// softflowd).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for d in ["/usr/sbin", "/sbin", "/usr/local/sbin"] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter().map(|d| d.join(tool)).find(|p| {
        std::fs::metadata(p)
            .map(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
            .unwrap_or(false)
    })
}

/// The tools' paths, or a SKIPPED line naming the first missing one.
pub fn tools(test: &str, names: &[&str]) -> Option<Vec<PathBuf>> {
    let mut out = Vec::new();
    for n in names {
        match find_tool(n) {
            Some(p) => out.push(p),
            None => {
                skip(
                    test,
                    &format!(
                        "`{n}` not installed (apt-get install -y softflowd nfdump pmacct tshark)"
                    ),
                );
                return None;
            }
        }
    }
    Some(out)
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_supernetflow")
}

// ------------------------------------------------------------------ waiting

/// Polls `f` every 20 ms until it is true or `timeout` passes. Returns whether it became true.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------------ processes

/// A child process that is killed (SIGKILL, by its PID) and reaped when dropped, unless it
/// already exited.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal (by name, e.g. "TERM", "KILL") to this process only.
    pub fn signal(&self, sig: &str) {
        if self.status.is_some() || self.child.is_none() {
            return;
        }
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Exit status if it has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(s)) = c.try_wait() {
                    self.status = Some(s);
                }
            }
        }
        self.status
    }

    pub fn running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_until(timeout, || self.try_status().is_some());
        self.status
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if self.running() {
            if let Some(c) = self.child.as_mut() {
                let _ = c.kill();
                if let Ok(s) = c.wait() {
                    self.status = Some(s);
                }
            }
        }
    }

    /// SIGTERM, then wait up to `timeout`; SIGKILL if it is still there (and panic: it should
    /// have exited).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal("TERM");
        match self.wait_timeout(timeout) {
            Some(s) => s,
            None => {
                self.kill9();
                panic!(
                    "{} (pid {}) did not exit within {timeout:?} of SIGTERM",
                    self.name,
                    self.pid()
                );
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ------------------------------------------------------------------ UDP helpers

/// A free UDP port on 127.0.0.1 for tools that cannot bind port 0 and tell us (nfcapd). The
/// socket is closed before the tool binds, so callers retry if the bind loses a race.
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.local_addr().expect("local addr").port()
}

/// One row of /proc/net/udp for a socket bound to 127.0.0.1:`port`: (rx_queue bytes, drops).
pub fn udp_socket_queue(port: u16) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/udp").ok()?;
    let want = format!("0100007F:{port:04X}");
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(1) == Some(&want.as_str()) {
            let rx = cols
                .get(4)
                .and_then(|q| q.split(':').nth(1))
                .and_then(|h| u64::from_str_radix(h, 16).ok())?;
            let drops = cols.last().and_then(|d| d.parse().ok()).unwrap_or(0);
            return Some((rx, drops));
        }
    }
    None
}

// ------------------------------------------------------------------ supernetflow collect

/// How to start `supernetflow collect`.
#[derive(Clone, Debug)]
pub struct CollectOpts {
    pub udp: String,
    /// Listen on TCP 127.0.0.1:0 too.
    pub tcp: bool,
    /// `--state-file`; `None` passes `--no-state`.
    pub state_file: Option<PathBuf>,
    pub config: Option<PathBuf>,
    /// More arguments (e.g. `--to-kafka BROKERS`).
    pub extra: Vec<String>,
}

impl Default for CollectOpts {
    fn default() -> Self {
        Self {
            udp: "127.0.0.1:0".into(),
            tcp: false,
            state_file: None,
            config: None,
            extra: Vec::new(),
        }
    }
}

/// A running `supernetflow collect`. Its stdout/stderr go to files in `dir` (stdout is
/// block-buffered by the collector, so records are read after it exits).
pub struct Collector {
    pub proc: Proc,
    pub dir: PathBuf,
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    stdout: PathBuf,
    stderr: PathBuf,
    report: PathBuf,
}

/// What a stopped collector left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub records: Vec<Value>,
    /// The `--report` JSON (`Value::Null` if it was not written).
    pub report: Value,
    pub stderr: String,
}

impl Finished {
    /// A report counter by dotted path, e.g. "decode.flow_records"; panics if missing.
    pub fn counter(&self, path: &str) -> u64 {
        counter(&self.report, path)
            .unwrap_or_else(|| panic!("report has no counter {path}: {}", self.report))
    }
}

pub fn counter(v: &Value, path: &str) -> Option<u64> {
    let mut cur = v;
    for k in path.split('.') {
        cur = cur.get(k)?;
    }
    cur.as_u64()
}

/// Strips ANSI colour escapes (in case the log is coloured despite NO_COLOR).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            if it.peek() == Some(&'[') {
                it.next();
                for c2 in it.by_ref() {
                    if c2.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Collector {
    /// Starts a collector with its files in a fresh sub-directory of `work` named `tag`, and
    /// waits (up to 20 s) for its ready file. `--stats-interval-secs 1` makes it log its
    /// counters every second: that is how tests see progress before stopping it.
    pub fn start(work: &Path, tag: &str, opts: &CollectOpts) -> Collector {
        let dir = work.join(tag);
        std::fs::create_dir_all(&dir).expect("collector dir");
        let ready = dir.join("ready");
        let _ = std::fs::remove_file(&ready);
        let stdout = dir.join("stdout.jsonl");
        let stderr = dir.join("stderr.log");
        let report = dir.join("report.json");
        let _ = std::fs::remove_file(&report);
        let mut cmd = Command::new(bin());
        cmd.current_dir(&dir)
            .env("NO_COLOR", "1")
            .env_remove("SNF_CONFIG")
            .arg("collect")
            .arg("--udp")
            .arg(&opts.udp);
        if opts.tcp {
            cmd.arg("--tcp").arg("127.0.0.1:0");
        } else {
            cmd.arg("--no-tcp");
        }
        match &opts.state_file {
            Some(p) => cmd.arg("--state-file").arg(p),
            None => cmd.arg("--no-state"),
        };
        if let Some(c) = &opts.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(&opts.extra);
        cmd.arg("--ready-file")
            .arg(&ready)
            .arg("--stats-interval-secs")
            .arg("1")
            .arg("--output")
            .arg("jsonl")
            .arg("--report")
            .arg(&report)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let mut proc = Proc::spawn(&format!("supernetflow collect [{tag}]"), &mut cmd);
        let ok = wait_until(Duration::from_secs(20), || {
            ready.exists() || !proc.running()
        });
        if !ok || !ready.exists() {
            proc.kill9();
            panic!(
                "collector [{tag}] did not become ready (status {:?}); stderr:\n{}",
                proc.try_status(),
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        let text = std::fs::read_to_string(&ready).expect("ready file");
        let (mut udp, mut tcp) = (None, None);
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("udp", a)) if udp.is_none() => udp = a.trim().parse().ok(),
                Some(("tcp", a)) if tcp.is_none() => tcp = a.trim().parse().ok(),
                _ => {}
            }
        }
        Collector {
            proc,
            dir,
            udp,
            tcp,
            stdout,
            stderr,
            report,
        }
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp.expect("collector has no UDP listener")
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp.expect("collector has no TCP listener")
    }

    pub fn stderr_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.stderr).unwrap_or_default())
    }

    /// The last value of `key=N` in the periodic "Collector stats" log lines (e.g. "messages").
    pub fn logged(&self, key: &str) -> Option<u64> {
        let text = self.stderr_text();
        let pat = format!("{key}=");
        text.lines()
            .rev()
            .filter(|l| l.contains("Collector stats"))
            .find_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&pat))
                    .and_then(|v| v.parse().ok())
            })
    }

    /// Waits until the collector has logged at least `n` decoded messages. Returns whether it did.
    pub fn wait_messages(&mut self, n: u64, timeout: Duration) -> bool {
        let ok = wait_until(timeout, || {
            self.logged("messages").unwrap_or(0) >= n || !self.proc.running()
        });
        ok && self.proc.running()
    }

    /// Waits until the logged message count has not changed for `quiet` (and at least one stats
    /// line came after the last change), up to `timeout`.
    pub fn wait_quiet(&mut self, quiet: Duration, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut last = self.logged("messages");
        let mut since = Instant::now();
        while Instant::now() < deadline && self.proc.running() {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.logged("messages");
            if now != last {
                last = now;
                since = Instant::now();
            } else if last.is_some() && since.elapsed() >= quiet {
                break;
            }
        }
        last.unwrap_or(0)
    }

    /// kill -9: no report, no final state save.
    pub fn kill9(mut self) -> String {
        self.proc.kill9();
        self.stderr_text()
    }

    /// SIGTERM, wait for a clean exit (30 s), and collect its records and report.
    pub fn stop(mut self) -> Finished {
        let status = self.proc.terminate(Duration::from_secs(30));
        self.finished(status)
    }

    /// Waits for the collector to exit on its own (e.g. a bad config), killing it after `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> Option<Finished> {
        let status = self.proc.wait_timeout(timeout)?;
        Some(self.finished(status))
    }

    fn finished(&self, status: ExitStatus) -> Finished {
        let stderr = self.stderr_text();
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let records = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("collector printed a non-JSON line ({e}): {l}"))
            })
            .collect();
        let report = std::fs::read_to_string(&self.report)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .or_else(|| {
                // Fall back on the last stderr line.
                stderr
                    .lines()
                    .rev()
                    .find(|l| l.trim_start().starts_with('{'))
                    .and_then(|l| serde_json::from_str(l).ok())
            })
            .unwrap_or(Value::Null);
        Finished {
            status,
            records,
            report,
            stderr,
        }
    }
}

/// Starts a collector on a given address directly (without the ready-file wait), for tests that
/// expect it to fail at start-up.
pub fn collect_cmd_output(
    dir: &Path,
    args: &[&str],
    timeout: Duration,
) -> (Option<ExitStatus>, String) {
    std::fs::create_dir_all(dir).expect("dir");
    let err = dir.join("stderr.log");
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("SNF_CONFIG")
        .arg("collect")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"));
    let mut p = Proc::spawn("supernetflow collect (expected to fail)", &mut cmd);
    let st = p.wait_timeout(timeout);
    drop(p);
    (
        st,
        strip_ansi(&std::fs::read_to_string(&err).unwrap_or_default()),
    )
}

// ------------------------------------------------------------------ comparing with decode

/// A record (JSON or row form) minus what legitimately differs between the live collector and
/// `decode` of the same files (exporter address, receive time, record id, clock-skew correction),
/// plus the exporter's own start/end (`flow_start_ms + clock_skew_ms`). Nulls are dropped, so the
/// record's JSON and its row read back from Parquet compare equal.
pub fn comparable(r: &Value) -> String {
    let mut m: serde_json::Map<String, Value> = r.as_object().cloned().unwrap_or_default();
    let skew = m.get("clock_skew_ms").and_then(Value::as_i64).unwrap_or(0);
    for k in ["start", "end"] {
        let key = format!("flow_{k}_ms");
        if let Some(t) = m.get(&key).and_then(Value::as_i64) {
            m.insert(format!("exporter_flow_{k}_ms"), Value::from(t + skew));
        }
    }
    for k in [
        "exporter",
        "received_time_ms",
        "record_id",
        "clock_skew_ms",
        "flow_start_ms",
        "flow_end_ms",
    ] {
        m.remove(k);
    }
    drop_nulls(Value::Object(m)).to_string()
}

pub fn drop_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, drop_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(drop_nulls).collect()),
        v => v,
    }
}

pub fn multiset(records: &[Value]) -> std::collections::BTreeMap<String, i64> {
    let mut m = std::collections::BTreeMap::new();
    for r in records {
        *m.entry(comparable(r)).or_insert(0) += 1;
    }
    m
}

/// The first few differences between two multisets, for a failure message (`what`: the
/// output compared with `decode`).
pub fn diff(
    expected: &std::collections::BTreeMap<String, i64>,
    got: &std::collections::BTreeMap<String, i64>,
    what: &str,
) -> String {
    let mut out = Vec::new();
    for (k, n) in expected {
        let g = got.get(k).copied().unwrap_or(0);
        if g != *n {
            out.push(format!("  decode x{n}, {what} x{g}: {k}"));
        }
    }
    for (k, g) in got {
        if !expected.contains_key(k) {
            out.push(format!("  decode x0, {what} x{g}: {k}"));
        }
    }
    let n = out.len();
    out.truncate(3);
    if n > 3 {
        out.push(format!("  ... {} more", n - 3));
    }
    out.join("\n")
}

// ------------------------------------------------------------------ replay / decode

/// `supernetflow replay --to ADDR --from FROM FILE...`; panics unless it succeeds. Returns the
/// number of messages it says it sent.
pub fn replay(to: SocketAddr, from: &str, files: &[PathBuf]) -> u64 {
    let out = Command::new(bin())
        .env("NO_COLOR", "1")
        .arg("replay")
        .arg("--to")
        .arg(to.to_string())
        .arg("--from")
        .arg(from)
        .args(files)
        .output()
        .expect("run supernetflow replay");
    let err = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "replay {files:?} from {from} failed ({}): {err}",
        out.status
    );
    // "replay: sent N messages (...)"
    err.lines()
        .find_map(|l| l.strip_prefix("replay: sent "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the sent count from replay's stderr: {err}"))
}

/// `supernetflow decode FILE...` records.
pub fn decode(files: &[PathBuf]) -> Vec<Value> {
    let out = run_out(
        Command::new(bin())
            .env("NO_COLOR", "1")
            .arg("decode")
            .args(files),
    );
    assert!(
        out.status.success(),
        "decode {files:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("decode printed a non-JSON line"))
        .collect()
}

/// `supernetflow decode --stats FILE...`.
pub fn decode_stats(files: &[PathBuf]) -> Value {
    let out = run_out(
        Command::new(bin())
            .env("NO_COLOR", "1")
            .arg("decode")
            .arg("--stats")
            .args(files),
    );
    assert!(out.status.success(), "decode --stats {files:?} failed");
    serde_json::from_slice(&out.stdout).expect("decode --stats JSON")
}

pub fn run_out(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

// ------------------------------------------------------------------ IPFIX files

/// Splits an RFC 5655 IPFIX file into its messages (by the header length field).
pub fn ipfix_messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= bytes.len() {
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        assert!(
            u16::from_be_bytes([bytes[i], bytes[i + 1]]) == 10
                && len >= 16
                && i + len <= bytes.len(),
            "not an IPFIX file at offset {i}"
        );
        out.push(bytes[i..i + len].to_vec());
        i += len;
    }
    out
}

/// Runs the tap offline, `supernetflow probe --tap-id TAP_ID --pcap PCAPS... ARGS... --report R`
/// in `work`, and returns its report; the run must succeed. `R` is `probe-TAG.json` in `work`.
pub fn probe_report(work: &Path, tag: &str, tap_id: &str, pcaps: &[&Path], args: &[&str]) -> Value {
    let report = work.join(format!("probe-{tag}.json"));
    let out = Command::new(bin())
        .current_dir(work)
        .args(["probe", "--tap-id", tap_id, "--pcap"])
        .args(pcaps)
        .args(args)
        .arg("--report")
        .arg(&report)
        .stdin(Stdio::null())
        .output()
        .expect("probe runs");
    assert!(
        out.status.success(),
        "probe {args:?} [{tag}] failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&report).expect("probe report")).expect("report JSON")
}

/// Replays `pcap` through softflowd (`-r`), exporting NetFlow `version` (5, 9 or 10; absolute
/// millisecond times for 9 and 10) to `to`, and pokes its control socket until it has exported
/// everything and exited (softflowd 1.1.0 `-r` waits in poll() otherwise: PEER_TOOLS.md).
pub fn run_softflowd(
    softflowd: &Path,
    softflowctl: &Path,
    work: &Path,
    pcap: &Path,
    to: SocketAddr,
    version: u8,
    tag: &str,
) {
    let ctl = work.join(format!("sfd-{tag}.ctl"));
    let pid = work.join(format!("sfd-{tag}.pid"));
    let log = work.join(format!("sfd-{tag}.log"));
    let mut cmd = Command::new(softflowd);
    cmd.arg("-r")
        .arg(pcap)
        .arg("-n")
        .arg(to.to_string())
        .arg("-v")
        .arg(version.to_string());
    if version != 5 {
        cmd.args(["-A", "milli"]);
    }
    cmd.arg("-d")
        .arg("-c")
        .arg(&ctl)
        .arg("-p")
        .arg(&pid)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::fs::File::create(work.join(format!("sfd-{tag}.err"))).expect("err"));
    let mut p = Proc::spawn(&format!("softflowd {tag}"), &mut cmd);
    let deadline = Instant::now() + Duration::from_secs(120);
    while p.running() {
        assert!(
            Instant::now() < deadline,
            "softflowd {tag} did not exit within 120 s of poking"
        );
        let _ = Command::new(softflowctl)
            .arg("-c")
            .arg(&ctl)
            .arg("statistics")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = p.try_status().expect("exited");
    assert!(
        st.success(),
        "softflowd {tag} exit {st}; stderr:\n{}",
        std::fs::read_to_string(work.join(format!("sfd-{tag}.err"))).unwrap_or_default()
    );
}
