//! Decodes a fixed number of generated messages, for instruction counts that the machine's load
//! does not move:
//!
//! `valgrind --tool=callgrind --toggle-collect='*measured*' target/release/examples/decode_count cisco-v9 256`
//!
//! The messages are decoded once (`warm_up`: templates learnt, buffers grown), then once more
//! inside `measured` (the function to collect); prints the records of the measured pass. Divide the instructions
//! callgrind counts by it for instructions per record.

use collector::bench_stream::{messages, Shape};
use collector::{Decoder, DecoderConfig};
use std::net::{IpAddr, Ipv4Addr};

/// The product's allocator (as in `src/main.rs` and the decode bench), so the count is of what
/// ships: under glibc's malloc the allocator's share differs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[inline(always)]
fn decode_all(d: &mut Decoder, msgs: &[Vec<u8>], out: &mut Vec<schemas::FlowRecord>) -> usize {
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut n = 0;
    for m in msgs {
        let at = if m[1] == 9 { 8 } else { 4 };
        let ms = i64::from(u32::from_be_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]])) * 1000;
        d.decode(ip, Some(ms), m, out);
        n += out.len();
        out.clear();
    }
    n
}

/// (Its body differs from `measured`'s, so the two are not folded into one function.)
#[inline(never)]
fn warm_up(d: &mut Decoder, msgs: &[Vec<u8>], out: &mut Vec<schemas::FlowRecord>, want: u64) {
    let got = decode_all(d, msgs, out);
    assert_eq!(got as u64, want, "warm-up pass decoded {got} of {want}");
}

#[inline(never)]
fn measured(d: &mut Decoder, msgs: &[Vec<u8>], out: &mut Vec<schemas::FlowRecord>) -> usize {
    decode_all(d, msgs, out)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(shape), Some(count)) = (
        args.get(1).and_then(|s| Shape::parse(s)),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: decode_count baseline|cisco-v9|softflowd MESSAGES");
        std::process::exit(2);
    };
    let (msgs, records) = messages(shape, count);
    let mut d = Decoder::new(DecoderConfig::default());
    let mut out = Vec::with_capacity(64);
    warm_up(&mut d, &msgs, &mut out, records);
    let n = std::hint::black_box(measured(&mut d, &msgs, &mut out));
    println!("{n}");
}
