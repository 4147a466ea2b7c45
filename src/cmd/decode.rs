//! `supernetflow decode`: files in, FlowRecords (or counters) out.

use anyhow::Context;
use collector::ingest::file::{read_file, FileStats};
use collector::{DecodeStats, Decoder, DecoderConfig};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Output format of the records.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Print one JSON object of counters instead of the records.
    #[arg(long)]
    stats: bool,
    /// Captures (pcap/pcapng), raw export payload files (.dat/.bin, one message each) or IPFIX files
    /// (RFC 5655), decoded in the order given with shared template state.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Jsonl,
}

#[derive(serde::Serialize)]
struct Stats {
    #[serde(flatten)]
    decode: DecodeStats,
    #[serde(flatten)]
    files: FileStats,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Format::Jsonl = args.format;
    let mut decoder = Decoder::new(DecoderConfig::for_files());
    let mut fstats = FileStats::default();
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut out = Vec::new();
    let mut line = Vec::with_capacity(2048);
    for f in &args.files {
        let msgs =
            read_file(f, &mut fstats).with_context(|| format!("decoding {}", f.display()))?;
        for m in msgs {
            decoder.decode(m.exporter.ip(), m.received_ms, &m.payload, &mut out);
            if !args.stats {
                for r in out.drain(..) {
                    line.clear();
                    schemas::json::write(&mut line, &r)?;
                    line.push(b'\n');
                    w.write_all(&line)?;
                }
            }
            out.clear();
        }
    }
    decoder.finish();
    if args.stats {
        let s = Stats {
            decode: decoder.totals.clone(),
            files: fstats,
        };
        serde_json::to_writer(&mut w, &s)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}
