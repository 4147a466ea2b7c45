//! `supernetflow replay`: sends the export messages of files over UDP, in order.
//!
//! Messages go out with sendmmsg(2) in batches paced on a cumulative schedule, so a fixed rate
//! holds from a few thousand to several million records per second without drift. The records of
//! each message are counted from its sets against the templates seen earlier in the files
//! (v5: header count), so `--rate` and the final count are flow records, not estimates.

use anyhow::Context;
use collector::bench_stream::{count_records, send_paced, Pace};
use collector::ingest::file::{read_file, FileStats};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Destination collector, e.g. 127.0.0.1:2055.
    #[arg(long)]
    to: SocketAddr,
    /// Pace the stream to this many flow records per second (counted from the sets against the
    /// templates in the files). Unpaced without it.
    #[arg(long)]
    rate: Option<f64>,
    /// Send the whole sequence this many times.
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// Loop over the messages for this many seconds instead (with --rate: exactly rate × seconds
    /// records, give or take the last batch).
    #[arg(long)]
    duration: Option<f64>,
    /// Messages per sendmmsg call at most (at low rates batches are held to about 1 ms of traffic).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Source address to bind (e.g. 127.0.0.9:0 to appear as a distinct exporter).
    #[arg(long, default_value = "127.0.0.1:0")]
    from: SocketAddr,
    /// Write what was sent (messages, records, bytes, send_errors, elapsed_s) as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
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
    let counts = count_records(msgs.iter().map(|m| (m.exporter, m.payload.as_slice())));
    let list: Vec<(&[u8], u32)> = msgs
        .iter()
        .zip(&counts)
        .map(|(m, n)| (m.payload.as_slice(), *n))
        .collect();
    let sock = UdpSocket::bind(args.from).with_context(|| format!("binding {}", args.from))?;
    let pace = Pace {
        rate: args.rate.filter(|r| *r > 0.0),
        repeat: args.repeat,
        duration: args.duration,
        max_batch: args.batch.clamp(1, 1024),
    };
    let st = send_paced(&sock, args.to, &list, pace)
        .with_context(|| format!("sending to {}", args.to))?;
    eprintln!(
        "replay: sent {} messages ({} records, {} bytes) to {} in {:.3}s: {:.0} records/s{}",
        st.messages,
        st.records,
        st.bytes,
        args.to,
        st.elapsed_s,
        st.records as f64 / st.elapsed_s.max(1e-9),
        if st.send_errors > 0 {
            format!(", {} messages refused by the kernel", st.send_errors)
        } else {
            String::new()
        }
    );
    if let Some(p) = &args.report {
        std::fs::write(p, serde_json::to_string(&st)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
