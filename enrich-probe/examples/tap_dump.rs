//! Prints the tap records of captures as JSON lines, like `supernetflow probe --pcap`, without
//! building the whole binary: `cargo run -p supernetflow-enrich-probe --example tap_dump -- FILE...`
//! (`SNAP_LEN` sets the snap length, default 256).

use enrich_probe::classify::signatures::Signatures;
use enrich_probe::flow::SendConfig;
use enrich_probe::offline::{run_files, write_jsonl};
use enrich_probe::{Pipeline, ProbeConfig};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let snap_len = std::env::var("SNAP_LEN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let cfg = ProbeConfig {
        send: SendConfig {
            snap_len,
            ..SendConfig::default()
        },
        ..ProbeConfig::default()
    };
    let mut p = Pipeline::new(cfg, Signatures::builtin()?);
    let mut out = std::io::stdout().lock();
    let report = run_files(&mut p, &files, |o| write_jsonl(&mut out, o, false))?;
    eprintln!("{}", serde_json::to_string(&report)?);
    Ok(())
}
