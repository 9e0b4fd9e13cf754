//! `idvault-bench`: measures idvault's hot paths at scale against an axum hello-world reference
//! measured in the same run (timings on a small shared machine are noisy, so only the ratio to
//! the reference is meaningful across runs).
//!
//! - `seed`: fills a data directory with N users (and provider tokens for some of them) through
//!   the real store and crypto code, so that the real server can open it.
//! - `run`: starts the real `idvault` binary (on SQLite or PostgreSQL, as seeded), the
//!   hello-world reference and optionally a peer product as child processes, and drives every
//!   scenario (scenarios.rs) with `wrk`.
//! - `peer-seed`: seeds a peer product (bench/peers/<name>) with the same users and tokens, for
//!   `run --peer`.
//! - `hello`: the hello-world reference server (started by `run`).
//! - `upload`: the bulk migration path over the wire: batch-created users, then their outbound
//!   tokens in batch uploads, timed on a fresh data directory.
//!
//! See docs/benchmarks.md.

mod hello;
mod http;
mod meta;
mod peer;
mod proc;
mod run;
mod scenarios;
mod seed;
mod upload;
mod wrk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "idvault-bench",
    about = "Benchmark idvault's hot paths against an axum hello-world measured in the same run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a data directory with N users and provider tokens, through the real store code.
    Seed(seed::SeedArgs),
    /// Start idvault and the hello-world reference, and drive both with wrk.
    Run(run::RunArgs),
    /// Seed a peer product (`run --peer`) with the same users and tokens as a seeded data directory.
    PeerSeed(peer::PeerSeedArgs),
    /// Time a migration over the API: batch-create N users, then batch-upload a token for each.
    Upload(upload::UploadArgs),
    /// Serve the hello-world reference (GET / answers "Hello, World!"). Started by `run`.
    Hello {
        /// Address to listen on; port 0 picks a free port (printed at start).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

/// Parses `10s`, `1m`, `500ms`...
pub(crate) fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// The same kind of runtime for every process of the benchmark: multi-threaded tokio with the
/// default number of workers, as the idvault binary builds it.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Seed(args) => runtime().and_then(|rt| rt.block_on(seed::seed(args))),
        Command::Hello { listen } => runtime().and_then(|rt| rt.block_on(hello::serve(listen))),
        Command::Run(args) => run::run(args),
        Command::PeerSeed(args) => peer::seed(args),
        Command::Upload(args) => runtime().and_then(|rt| rt.block_on(upload::upload(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where the seed writes its description of the data directory.
pub(crate) fn meta_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("bench.json")
}
