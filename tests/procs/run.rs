//! `supernetflow run` as a test process: start it on free 127.0.0.1 ports with its files in a
//! temporary directory, talk to its HTTP API, stop it with SIGTERM and read its report, and read
//! back the Parquet tables it wrote.

use super::{bin, strip_ansi, wait_until, Proc};
use arrow_array::RecordBatch;
use arrow_schema::DataType;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Run {
    pub proc: Proc,
    pub dir: PathBuf,
    pub udp: SocketAddr,
    /// The IPFIX/TCP listener, when `--tcp` was given.
    pub tcp: Option<SocketAddr>,
    pub http: SocketAddr,
    pub stderr: PathBuf,
    pub report: PathBuf,
}

pub struct Stopped {
    pub ok: bool,
    pub status: String,
    pub report: Value,
    pub stderr: String,
}

impl Run {
    /// Starts `run` with UDP and HTTP on free 127.0.0.1 ports, its files under `dir/data`, and
    /// `extra` arguments; waits for the ready file (30 s).
    pub fn start(dir: &Path, extra: &[&str]) -> Run {
        std::fs::create_dir_all(dir).expect("dir");
        let ready = dir.join("ready");
        let stderr = dir.join("stderr.log");
        let report = dir.join("report.json");
        let mut cmd = Command::new(bin());
        cmd.current_dir(dir)
            .env("NO_COLOR", "1")
            .env_remove("SNF_CONFIG")
            .args(["run", "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(if extra.contains(&"--tcp") {
                &[][..]
            } else {
                &["--no-tcp"][..]
            })
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--no-state", "--stats-interval-secs", "1"])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--report")
            .arg(&report)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let mut proc = Proc::spawn("supernetflow run", &mut cmd);
        let ok = wait_until(Duration::from_secs(30), || {
            ready.exists() || !proc.running()
        });
        let err = || strip_ansi(&std::fs::read_to_string(&stderr).unwrap_or_default());
        assert!(ok && ready.exists(), "run did not become ready: {}", err());
        let text = std::fs::read_to_string(&ready).expect("ready file");
        let addr = |kind: &str| -> SocketAddr {
            text.lines()
                .find_map(|l| l.strip_prefix(kind).map(str::trim))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {kind} address in the ready file: {text}"))
        };
        Run {
            tcp: text
                .lines()
                .find_map(|l| l.strip_prefix("tcp ").map(str::trim))
                .and_then(|a| a.parse().ok()),
            udp: addr("udp "),
            http: addr("http "),
            proc,
            dir: dir.to_path_buf(),
            stderr,
            report,
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path, None)
    }

    /// Messages the decoder has seen, from the API.
    pub fn messages(&self) -> u64 {
        let (code, body) = self.get("/api/v1/exporters");
        if code != 200 {
            return 0;
        }
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["totals"]["messages"].as_u64())
            .unwrap_or(0)
    }

    pub fn wait_messages(&mut self, n: u64, timeout: Duration) -> bool {
        wait_until(timeout, || self.messages() >= n || !self.proc.running()) && self.proc.running()
    }

    /// SIGTERM and wait (up to `timeout`) for the sinks to finish and the process to exit.
    pub fn stop(mut self, timeout: Duration) -> Stopped {
        let status = self.proc.terminate(timeout);
        let stderr = strip_ansi(&std::fs::read_to_string(&self.stderr).unwrap_or_default());
        let report = std::fs::read_to_string(&self.report)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        Stopped {
            ok: status.success(),
            status: status.to_string(),
            report,
            stderr,
        }
    }
}

/// A plain HTTP/1.1 GET (the API is ours; a client crate would add nothing here).
pub fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, text);
    };
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        code,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    )
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            parquet_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

/// The three tables a stopped `run` wrote under its Parquet directory `data`: flow_records,
/// super_flows, tap_records. Panics if a temporary file was left behind (a clean stop closes
/// them all) or if the tap table does not hold the `exported` records the tap sent.
pub fn read_run_tables(data: &Path, exported: u64) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let (flows, tmp1) = read_table(&data.join("flow_records"));
    let (supers, tmp2) = read_table(&data.join("super_flows"));
    let (taps, tmp3) = read_table(&data.join("tap_records"));
    assert_eq!(
        tmp1 + tmp2 + tmp3,
        0,
        "temporary files left after a clean stop"
    );
    assert_eq!(
        taps.len() as u64,
        exported,
        "tap_records holds what the tap sent"
    );
    (flows, supers, taps)
}

/// Every row of every visible file, as JSON (timestamps as epoch ms), and the count of temporary
/// files left behind.
pub fn read_table(dir: &Path) -> (Vec<Value>, usize) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut files = Vec::new();
    parquet_files(dir, &mut files);
    files.sort();
    let mut rows = Vec::new();
    let mut tmp = 0;
    for path in files {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            tmp += 1;
            continue;
        }
        let f = std::fs::File::open(&path).expect("open parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .build()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for b in reader {
            let b = b.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            rows.extend(batch_json(&b));
        }
    }
    (rows, tmp)
}

pub fn batch_json(b: &RecordBatch) -> Vec<Value> {
    // Timestamps as epoch milliseconds, the way the records carry them.
    let schema = b.schema();
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in schema.fields().iter().zip(b.columns()) {
        if matches!(f.data_type(), DataType::Timestamp(_, _)) {
            cols.push(arrow_cast::cast(c, &DataType::Int64).expect("timestamp to int"));
            fields.push(arrow_schema::Field::new(
                f.name(),
                DataType::Int64,
                f.is_nullable(),
            ));
        } else {
            cols.push(c.clone());
            fields.push(f.as_ref().clone());
        }
    }
    let b = RecordBatch::try_new(std::sync::Arc::new(arrow_schema::Schema::new(fields)), cols)
        .expect("batch");
    let mut w = arrow_json::ArrayWriter::new(Vec::new());
    w.write(&b).expect("to JSON");
    w.finish().expect("to JSON");
    let buf = w.into_inner();
    if buf.is_empty() {
        return Vec::new();
    }
    match serde_json::from_slice(&buf).expect("JSON rows") {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

/// Lints a `/metrics` page with `promtool check metrics` (skipped, loudly, without promtool).
pub fn promtool_check(test: &str, text: &str) {
    let Some(promtool) = super::find_tool("promtool") else {
        super::skip(
            test,
            "promtool not installed (Debian package prometheus): metrics lint",
        );
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
