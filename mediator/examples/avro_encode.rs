//! Avro encoding cost per record, for instruction counts under callgrind.
//!
//! `cargo run --release -p supernetflow-mediator --example avro_encode -- PATH N` encodes the
//! sample record of each kind (flow, tap, super-flow, session) N times in the Confluent wire
//! format, through PATH: `direct` (`AvroEncoder::encode`, row form written straight to Avro
//! binary) or `reference` (`AvroEncoder::encode_reference`, row form → apache-avro `Value` →
//! `resolve` → `to_avro_datum`). It prints the message bytes per record of each kind.
//!
//! Instructions per record: run under `valgrind --tool=callgrind` with two N and divide the
//! difference of the totals by the difference of the record counts (4 × ΔN), which leaves out
//! start-up and schema parsing.

use mediator::sink::avro::AvroEncoder;
use schemas::{Record, RecordKind};
use std::hint::black_box;

fn run<R: Record>(enc: &AvroEncoder, rec: &R, n: usize, direct: bool) -> anyhow::Result<usize> {
    let mut buf = Vec::with_capacity(2048);
    for _ in 0..n {
        if direct {
            enc.encode(black_box(rec), &mut buf)?;
        } else {
            enc.encode_reference(black_box(rec), &mut buf)?;
        }
        black_box(&buf);
    }
    Ok(buf.len())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "direct".into());
    let direct = match path.as_str() {
        "direct" => true,
        "reference" => false,
        other => anyhow::bail!("PATH is direct or reference, not {other}"),
    };
    let n: usize = args.next().unwrap_or_else(|| "1000".into()).parse()?;
    let enc = |k| AvroEncoder::with_id(k, 1);
    let sizes = [
        (
            "flow_records",
            run(
                &enc(RecordKind::Flow)?,
                &schemas::sample::flow_record(),
                n,
                direct,
            )?,
        ),
        (
            "tap_records",
            run(
                &enc(RecordKind::Tap)?,
                &schemas::sample::tap_record(),
                n,
                direct,
            )?,
        ),
        (
            "super_flows",
            run(
                &enc(RecordKind::SuperFlow)?,
                &schemas::sample::super_flow(),
                n,
                direct,
            )?,
        ),
        (
            "app_sessions",
            run(
                &enc(RecordKind::AppSession)?,
                &schemas::sample::app_session(),
                n,
                direct,
            )?,
        ),
    ];
    for (kind, bytes) in sizes {
        println!("{path} {kind}: {bytes} bytes a message, {n} records");
    }
    Ok(())
}
