//! Helpers shared by the tap's integration tests (not a test target itself).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The test data folder: `SNF_TESTDATA`, else `../shared/testdata` beside the workspace root.
/// `None` (after a loud SKIPPED line) when it is missing.
pub fn testdata(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("SNF_TESTDATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
    };
    if dir.join("apps").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED {test}: no test data at {} (set SNF_TESTDATA)",
            dir.display()
        );
        None
    }
}

/// Every file under `dir` whose name ends with one of `exts`, sorted.
#[allow(dead_code)] // not every test file that includes this module lists files
pub fn files_under(dir: &std::path::Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| exts.iter().any(|x| n.ends_with(x)))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// (protocol, lower endpoint, higher endpoint).
#[allow(dead_code)]
pub type Key = (u8, SocketAddr, SocketAddr);

#[allow(dead_code)]
pub fn key(proto: u8, a: SocketAddr, b: SocketAddr) -> Key {
    if a <= b {
        (proto, a, b)
    } else {
        (proto, b, a)
    }
}

/// One flow line of an nDPI `.out` file.
#[allow(dead_code)]
#[derive(Debug)]
pub struct NdpiFlow {
    /// Protocol and endpoints.
    pub key: Key,
    /// Application part of `[proto: ID/Master.App]` (the last dotted name).
    pub app: String,
    /// `[JA4: ...]`, when nDPI computed one.
    pub ja4: Option<String>,
}

#[allow(dead_code)]
fn endpoint(s: &str) -> Option<SocketAddr> {
    // "1.2.3.4:80" or "[2001:db8::1]:443"; no port (ICMP) → port 0.
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    let ip: IpAddr = s.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
    Some(SocketAddr::new(ip, 0))
}

#[allow(dead_code)]
/// Parses the flow lines: `\t<n>\t<PROTO> <a> <->|-> <b> [proto: <ids>/<names>]...`.
pub fn parse_out(text: &str) -> Vec<NdpiFlow> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut cols = line.trim_start().splitn(2, char::is_whitespace);
        let (Some(n), Some(rest)) = (cols.next(), cols.next()) else {
            continue;
        };
        if n.parse::<u32>().is_err() {
            continue;
        }
        let mut w = rest.split_whitespace();
        let (Some(proto), Some(a), Some(arrow), Some(b)) = (w.next(), w.next(), w.next(), w.next())
        else {
            continue;
        };
        if arrow != "<->" && arrow != "->" {
            continue;
        }
        let proto = match proto {
            "TCP" => 6,
            "UDP" => 17,
            "ICMP" => 1,
            "ICMPV6" => 58,
            other => match other.parse::<u8>() {
                Ok(p) => p,
                Err(_) => continue,
            },
        };
        let (Some(a), Some(b)) = (endpoint(a), endpoint(b)) else {
            continue;
        };
        let Some(label) = rest
            .split("[proto: ")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .and_then(|s| s.split_once('/'))
            .map(|(_, names)| names)
        else {
            continue;
        };
        let app = label.rsplit('.').next().unwrap_or(label).to_string();
        let ja4 = rest
            .split("[JA4: ")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .map(str::to_string);
        out.push(NdpiFlow {
            key: key(proto, a, b),
            app,
            ja4,
        });
    }
    out
}
