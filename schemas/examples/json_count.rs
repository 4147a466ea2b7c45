//! Instructions per JSON-encoded record, serde_json against `schemas::json`, for callgrind:
//!
//! ```sh
//! cargo build --release -p supernetflow-schemas --example json_count
//! valgrind --tool=callgrind --toggle-collect='*measured*' \
//!     $CARGO_TARGET_DIR/release/examples/json_count fast flow 10000   # or serde; flow, tap, super, session
//! # instructions per record = callgrind's "totals" / 10000
//! ```
//!
//! The records are `schemas::sample`'s, one per kind; the buffer is cleared between records, as
//! the Kafka lane does per batch. Prints the bytes of one record.

use schemas::sample;
use serde::Serialize;

#[inline(never)]
fn measured<T: Serialize>(fast: bool, r: &T, n: usize, buf: &mut Vec<u8>) -> usize {
    let mut bytes = 0;
    for _ in 0..n {
        buf.clear();
        let done = if fast {
            schemas::json::write(buf, r)
        } else {
            serde_json::to_writer(&mut *buf, r)
        };
        if let Err(e) = done {
            eprintln!("encoding failed: {e}");
            std::process::exit(1);
        }
        bytes = buf.len();
        std::hint::black_box(&buf);
    }
    bytes
}

fn run<T: Serialize>(fast: bool, r: &T, n: usize) {
    let mut buf = Vec::with_capacity(4096);
    measured(fast, r, 1, &mut buf);
    let bytes = measured(fast, r, n, &mut buf);
    println!("{n} records of {bytes} bytes");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: json_count fast|serde flow|tap|super|session N";
    if args.len() != 4 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let fast = match args[1].as_str() {
        "fast" => true,
        "serde" => false,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let Ok(n) = args[3].parse::<usize>() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    match args[2].as_str() {
        "flow" => run(fast, &sample::flow_record(), n),
        "tap" => run(fast, &sample::tap_record(), n),
        "super" => run(fast, &sample::super_flow(), n),
        "session" => run(fast, &sample::app_session(), n),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
