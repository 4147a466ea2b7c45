//! Builds the seed corpora of the fuzz targets from the test captures (never commit the output:
//! the captures carry their own licenses). Used by `scripts/fuzz.sh`.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds -- <testdata dir> <out dir>` writes
//! `<out>/fuzz_v5/`, `<out>/fuzz_session/` and `<out>/fuzz_ipfix_file/`.

use collector::fuzzing::{encode_session, files_with, load_cases};
use std::path::{Path, PathBuf};

/// Largest seed, in bytes (libFuzzer's -max_len in scripts/fuzz.sh).
const MAX_SEED: usize = 65_536;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(dir.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [testdata, out] = &args[..] else {
        eprintln!("usage: seeds <testdata dir> <out dir>");
        std::process::exit(2);
    };
    let dirs = ["fuzz_v5", "fuzz_session", "fuzz_ipfix_file"].map(|t| out.join(t));
    for d in &dirs {
        std::fs::create_dir_all(d)?;
    }
    let [v5, session, file] = &dirs;
    let cases = load_cases(testdata);
    let mut counts = [0usize; 3];
    for (i, case) in cases.iter().enumerate() {
        // Session: the case's messages in order, from exporter 0 with receive time (ctl 0x04),
        // plus one seed per config variant and one with the messages spread over two exporters.
        let mut msgs: Vec<(u8, &[u8])> = Vec::new();
        let mut size = 1;
        for m in &case.messages {
            size += 3 + m.payload.len();
            if size > MAX_SEED {
                break;
            }
            msgs.push((0x04, &m.payload));
        }
        for config in 0..4u8 {
            write(session, &format!("case{i:03}-c{config}"), &encode_session(config, &msgs))?;
            counts[1] += 1;
        }
        let spread: Vec<(u8, &[u8])> =
            msgs.iter().enumerate().map(|(j, (_, m))| ((j % 2) as u8 | 0x0c, *m)).collect();
        write(session, &format!("case{i:03}-spread"), &encode_session(0, &spread))?;
        counts[1] += 1;
        for (j, m) in case.messages.iter().enumerate() {
            if m.payload.starts_with(&[0, 5]) {
                write(v5, &format!("case{i:03}-{j:04}"), &m.payload)?;
                counts[0] += 1;
            }
        }
    }
    for (i, f) in files_with(testdata, &["pcap", "pcapng", "dat", "bin", "ipfix"])
        .iter()
        .enumerate()
    {
        let bytes = std::fs::read(f)?;
        if bytes.len() <= MAX_SEED {
            write(file, &format!("file{i:03}"), &bytes)?;
            counts[2] += 1;
        }
    }
    eprintln!(
        "seeds: {} cases; fuzz_v5 {}, fuzz_session {}, fuzz_ipfix_file {}",
        cases.len(),
        counts[0],
        counts[1],
        counts[2]
    );
    Ok(())
}
