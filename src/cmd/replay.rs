//! `supernetflow replay`: sends the export messages of files over UDP, in order.

use anyhow::Context;
use collector::ingest::file::{read_file, FileStats};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Destination collector, e.g. 127.0.0.1:2055.
    #[arg(long)]
    to: SocketAddr,
    /// Pace the stream to about this many flow records per second (counted from the message
    /// headers: v5 count, v9 count, IPFIX estimated from the message length). Unpaced without it.
    #[arg(long)]
    rate: Option<f64>,
    /// Send the whole sequence this many times.
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// Source address to bind (e.g. 127.0.0.9:0 to appear as a distinct exporter).
    #[arg(long, default_value = "127.0.0.1:0")]
    from: SocketAddr,
    /// Files in order: captures, raw payload files or IPFIX files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut msgs = Vec::new();
    let mut fs = FileStats::default();
    for f in &args.files {
        msgs.extend(read_file(f, &mut fs).with_context(|| format!("reading {}", f.display()))?);
    }
    let sock = UdpSocket::bind(args.from).with_context(|| format!("binding {}", args.from))?;
    let start = Instant::now();
    let mut records = 0f64;
    let mut sent = 0u64;
    for _ in 0..args.repeat {
        for m in &msgs {
            if let Some(rate) = args.rate {
                let due = Duration::from_secs_f64(records / rate);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            sock.send_to(&m.payload, args.to)
                .with_context(|| format!("sending to {}", args.to))?;
            records += f64::from(approx_records(&m.payload));
            sent += 1;
        }
    }
    eprintln!(
        "replay: sent {sent} messages (~{records:.0} records) to {} in {:.3}s",
        args.to,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Records in a message, from the header where it says so.
fn approx_records(p: &[u8]) -> u32 {
    match p.get(0..4).map(|h| {
        (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        )
    }) {
        Some((5, n)) | Some((9, n)) => u32::from(n),
        Some((10, len)) => u32::from(len.saturating_sub(16)) / 50 + 1,
        _ => 1,
    }
}
