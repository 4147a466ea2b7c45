//! `supernetflow`: one binary, one subcommand per process role. Each subcommand lives in
//! `src/cmd/` and calls into the library crates; this file only parses arguments.

mod cmd;

/// mimalloc rather than glibc's malloc: the join frees a dozen small strings per record, and
/// mimalloc's thread-local free lists make that cheap (see BENCHMARKS.md, "Join").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "supernetflow",
    version,
    about = "Application- and experience-aware flow data from routers' NetFlow/IPFIX"
)]
struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. "info" or "collector=debug".
    #[arg(long, global = true, env = "SNF_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The embedded default: collector + Parquet (and Kafka when configured) + HTTP API.
    Run(cmd::run::Args),
    /// One member of the mediators' consumer group over the raw Kafka topics: join, then sinks.
    Mediate(cmd::mediate::Args),
    /// Decode NetFlow/IPFIX captures, payload files or IPFIX files and print FlowRecords.
    Decode(cmd::decode::Args),
    /// Send the export messages of captures/files over UDP, in order (test helper, load generator).
    Replay(cmd::replay::Args),
    /// Run the UDP/TCP listeners and print FlowRecords as JSON lines.
    Collect(cmd::collect::Args),
    /// The tap's user side: replay captures (--pcap) into TapRecords and flow_stats JSON lines.
    Probe(cmd::probe::Args),
    /// Replay captures through the tap and print each application session's QoE per interval.
    Qoe(cmd::qoe::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let r = match cli.command {
        Command::Run(a) => cmd::run::run(a),
        Command::Mediate(a) => cmd::mediate::run(a),
        Command::Decode(a) => cmd::decode::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Collect(a) => cmd::collect::run(a),
        Command::Probe(a) => cmd::probe::run(a),
        Command::Qoe(a) => cmd::qoe::run(a),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
