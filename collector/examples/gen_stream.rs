//! Writes a synthetic IPFIX stream (see `collector::bench_stream`) as an RFC 5655 file.
//!
//! `cargo run --release -p supernetflow-collector --example gen_stream -- baseline 2000000 /tmp/s.ipfix`
//! Shapes: `baseline` (shared/BASELINES.md), `softflowd`. Prints "MESSAGES RECORDS BYTES".

use collector::bench_stream::{write_ipfix_file, Shape};
use std::io::{BufWriter, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: gen_stream baseline|softflowd RECORDS FILE");
        std::process::exit(2);
    }
    let Some(shape) = Shape::parse(&args[1]).filter(|s| s.is_ipfix()) else {
        eprintln!(
            "unknown or non-IPFIX shape {:?} (baseline, softflowd)",
            args[1]
        );
        std::process::exit(2);
    };
    let records: u64 = args[2].parse().unwrap_or_else(|_| {
        eprintln!("RECORDS must be a number");
        std::process::exit(2)
    });
    let f = std::fs::File::create(&args[3]).unwrap_or_else(|e| {
        eprintln!("creating {}: {e}", args[3]);
        std::process::exit(1)
    });
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let (msgs, recs) = write_ipfix_file(shape, records, &mut w)
        .and_then(|r| w.flush().map(|_| r))
        .unwrap_or_else(|e| {
            eprintln!("writing {}: {e}", args[3]);
            std::process::exit(1)
        });
    let bytes = std::fs::metadata(&args[3]).map(|m| m.len()).unwrap_or(0);
    println!("{msgs} {recs} {bytes}");
}
