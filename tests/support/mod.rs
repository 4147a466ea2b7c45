//! Shared helpers for the end-to-end decoder tests: locating the test data,
//! parsing `ipfix/MANIFEST.md`, running the `supernetflow` binary.
#![allow(dead_code)]

pub mod matching;
pub mod pmacct;
pub mod tshark;
pub mod tshark_time;

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// Expected numbers from the MANIFEST "tshark 4.0.17 decode" column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub msgs: u64,
    pub recs: u64,
    pub tmpl: u64,
    pub opt_tmpl: u64,
    pub sets_without_template: u64,
    pub malformed: u64,
}

#[derive(Debug, Clone)]
pub struct Case {
    /// Case directory as written in the manifest, e.g. `logstash/nf9_h3c`.
    pub name: String,
    /// Directory that actually holds the files (the manifest's `ipfixcol2/example_flows`
    /// keeps its files directly in `ipfixcol2/`).
    pub dir: PathBuf,
    pub port: u16,
    pub expected: Expected,
    /// File names in manifest order.
    pub files: Vec<String>,
}

fn ext_is(f: &str, exts: &[&str]) -> bool {
    exts.iter().any(|e| f.ends_with(e))
}

impl Case {
    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }
    pub fn derived_pcap(&self) -> Option<PathBuf> {
        self.files
            .iter()
            .find(|f| f.ends_with(".derived.pcap"))
            .map(|f| self.path(f))
    }
    /// Raw payload / IPFIX-file inputs (`.dat`, `.bin`, `.ipfix`) in manifest order.
    pub fn raw_files(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|f| ext_is(f, &[".dat", ".bin", ".ipfix"]))
            .map(|f| self.path(f))
            .collect()
    }
    /// Original captures (not derived) in manifest order.
    pub fn original_pcaps(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|f| ext_is(f, &[".pcap", ".pcapng"]) && !f.ends_with(".derived.pcap"))
            .map(|f| self.path(f))
            .collect()
    }
    /// The capture(s) tshark reads and the decoder is compared on: the derived pcap if
    /// any, else the original pcaps in manifest order.
    pub fn capture_inputs(&self) -> Vec<PathBuf> {
        match self.derived_pcap() {
            Some(p) => vec![p],
            None => self.original_pcaps(),
        }
    }
    pub fn is_pmacct(&self) -> bool {
        self.name.starts_with("pmacct/")
    }
}

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

fn tool_present(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Returns the parsed cases, or prints a loud SKIPPED line and returns None when the data
/// or tshark/mergecap is missing (the caller then returns early).
pub fn setup(test: &str) -> Option<Vec<Case>> {
    let root = testdata_root();
    let manifest = root.join("ipfix").join("MANIFEST.md");
    if !manifest.is_file() {
        eprintln!(
            "SKIPPED: {test}: no test data at {} (set SNF_TESTDATA / install tshark)",
            manifest.display()
        );
        return None;
    }
    for tool in ["tshark", "mergecap"] {
        if !tool_present(tool) {
            eprintln!(
                "SKIPPED: {test}: `{tool}` not found in PATH (set SNF_TESTDATA / install tshark)"
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(&manifest).expect("reading MANIFEST.md");
    match parse_manifest(&text, &root.join("ipfix")) {
        Ok(c) => Some(c),
        Err(e) => panic!("cannot parse {}: {e}", manifest.display()),
    }
}

fn parse_counts(s: &str) -> Result<Expected, String> {
    let mut e = Expected::default();
    for tok in s.split_whitespace() {
        let Some((k, v)) = tok.split_once('=') else {
            continue;
        };
        let n: u64 = v.parse().map_err(|_| format!("bad count {tok:?}"))?;
        match k {
            "msgs" => e.msgs = n,
            "recs" => e.recs = n,
            "tmpl" => e.tmpl = n,
            "opt_tmpl" => e.opt_tmpl = n,
            "sets_without_template" => e.sets_without_template = n,
            "MALFORMED" => e.malformed = n,
            _ => {}
        }
    }
    Ok(e)
}

/// Parses the `## Cases` table: columns are case, protocol, exporter, notable, counts,
/// PENs, UDP port, files, source, license.
pub fn parse_manifest(text: &str, ipfix_dir: &Path) -> Result<Vec<Case>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with("| `") {
            continue;
        }
        let cols: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cols.len() < 8 {
            return Err(format!("short manifest row: {line}"));
        }
        let name = cols[0].trim_matches('`').to_string();
        let port: u16 = cols[6]
            .parse()
            .map_err(|_| format!("{name}: bad port {:?}", cols[6]))?;
        let expected = parse_counts(cols[4]).map_err(|e| format!("{name}: {e}"))?;
        // files: `name` (123 B), `name2` (45 B)
        let files: Vec<String> = cols[7]
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .collect();
        if files.is_empty() {
            return Err(format!("{name}: no files listed"));
        }
        let mut dir = ipfix_dir.join(&name);
        if !dir.is_dir() {
            if let Some(parent) = dir.parent().filter(|p| p.join(&files[0]).is_file()) {
                dir = parent.to_path_buf();
            }
        }
        out.push(Case {
            name,
            dir,
            port,
            expected,
            files,
        });
    }
    if out.is_empty() {
        return Err("no case rows found".into());
    }
    Ok(out)
}

// ---------------------------------------------------------------- decoder runs

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_supernetflow")
}

#[derive(Debug, Clone)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn panicked(&self) -> bool {
        self.stderr.contains("panicked at")
    }
    pub fn describe(&self) -> String {
        let tail: String = self
            .stderr
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join(" | ");
        format!("exit={:?} stderr tail: {tail}", self.code)
    }
}

pub fn run_decoder(args: &[&str], files: &[PathBuf]) -> Run {
    let out = Command::new(bin())
        .arg("decode")
        .args(args)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin()));
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `decode --format jsonl`: one JSON object per flow record.
pub fn decode_jsonl(files: &[PathBuf]) -> Result<Arc<Vec<Value>>, String> {
    let key = format!("jsonl:{files:?}");
    cached(&DECODE_CACHE, &key, || {
        let run = run_decoder(&["--format", "jsonl"], files);
        if run.code != Some(0) {
            return Err(format!("decode --format jsonl failed: {}", run.describe()));
        }
        run.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| format!("stdout line {}: {e}: {l:.200}", i + 1))
            })
            .collect()
    })
}

/// `decode --stats`: the stats object plus the raw run (exit code, stderr).
pub fn decode_stats(files: &[PathBuf]) -> Result<(Value, Run), String> {
    let run = run_decoder(&["--stats"], files);
    let v: Value = serde_json::from_str(run.stdout.trim()).map_err(|e| {
        format!(
            "--stats output is not one JSON object ({e}); {}",
            run.describe()
        )
    })?;
    Ok((v, run))
}

pub fn stat(v: &Value, k: &str) -> Result<u64, String> {
    v.get(k)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("--stats lacks integer `{k}`"))
}

type Cache<T> = OnceLock<Mutex<HashMap<String, Result<Arc<T>, String>>>>;
static DECODE_CACHE: Cache<Vec<Value>> = OnceLock::new();

/// Per-process memo so several #[test]s can share expensive runs (tests run in threads).
pub fn cached<T>(
    cache: &Cache<T>,
    key: &str,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<Arc<T>, String> {
    let m = cache.get_or_init(Default::default);
    if let Some(v) = m.lock().expect("cache lock poisoned").get(key) {
        return v.clone();
    }
    let v = f().map(Arc::new);
    m.lock()
        .expect("cache lock poisoned")
        .insert(key.to_string(), v.clone());
    v
}
