//! The peer products `run --peer` compares idvault with, as child processes. Each lives in
//! bench/peers/<name> (its README says how it is seeded and served; the interface is
//! `seed.mjs --db DB --users N --token-users M` and `server.mjs --db DB --port 0`); `peer-seed`
//! fills it with the same users and tokens as a seeded data directory, `run --peer` starts it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::Args;

use crate::run::Peer;
use crate::scenarios::Seeded;

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::BetterAuth => "better-auth",
        }
    }
}

/// Default peer directory: bench/peers/<name> of the source tree holding this binary
/// (target/release/idvault-bench), else under the current directory.
pub fn default_dir(peer: Peer) -> PathBuf {
    let rel = Path::new("bench").join("peers").join(peer.name());
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            if dir.join(&rel).is_dir() {
                return dir.join(&rel);
            }
        }
    }
    rel
}

/// The peer's database, beside idvault's in the data directory it mirrors.
pub fn database(peer: Peer, data_dir: &Path) -> PathBuf {
    data_dir.join(format!("peer-{}.db", peer.name()))
}

/// Fails with what to do when the peer's pinned packages are not installed.
pub fn check_installed(peer_dir: &Path) -> anyhow::Result<()> {
    if !peer_dir.join("package.json").is_file() {
        bail!("no peer at {} (no package.json); pass --peer-dir", peer_dir.display());
    }
    if !peer_dir.join("node_modules").is_dir() {
        bail!("the peer's packages are not installed: run `npm ci` in {}", peer_dir.display());
    }
    Ok(())
}

/// The peer's server on the data `peer-seed` wrote (bench/peers/<name>/README.md). It prints
/// `listening on http://127.0.0.1:PORT` and answers `GET /user?loginId=`,
/// `GET /token?loginId=&provider=` and `GET /search?text=` through the product's own API,
/// accepting the same `Authorization: Bearer {project}:{key}` header as idvault. `node` is
/// started directly (not through npm or a shell), so that its PID is the server's.
pub fn server_command(peer: Peer, peer_dir: &Path, data: &Path, seeded: &Seeded) -> Command {
    match peer {
        Peer::BetterAuth => {
            let mut cmd = Command::new("node");
            cmd.arg(peer_dir.join("server.mjs"))
                .arg("--db")
                .arg(database(peer, data))
                .args(["--port", "0"])
                .env("PEER_KEY", format!("{}:{}", seeded.project_id, seeded.management_key));
            cmd
        }
    }
}

fn seed_command(peer: Peer, peer_dir: &Path, data: &Path, seeded: &Seeded) -> Command {
    match peer {
        Peer::BetterAuth => {
            let mut cmd = Command::new("node");
            cmd.arg(peer_dir.join("seed.mjs"))
                .arg("--db")
                .arg(database(peer, data))
                .args(["--users", &seeded.users.to_string()])
                .args(["--token-users", &seeded.token_users.to_string()]);
            cmd
        }
    }
}

#[derive(Args, Debug)]
pub struct PeerSeedArgs {
    /// The peer to seed.
    #[arg(long, value_enum)]
    pub peer: Peer,
    /// The idvault data directory (seeded by `idvault-bench seed`) whose users and tokens the
    /// peer gets; the peer's database goes in DATA_DIR/peer-<name>.db.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The peer's directory. Default: bench/peers/<peer> of the source tree.
    #[arg(long)]
    pub peer_dir: Option<PathBuf>,
}

/// Installs the peer's pinned packages when missing, then runs its seed with the same users and
/// token users as the idvault data directory.
pub fn seed(args: PeerSeedArgs) -> anyhow::Result<()> {
    let (_, seeded) = Seeded::read(&args.data_dir)?;
    let peer_dir = args.peer_dir.unwrap_or_else(|| default_dir(args.peer));
    if peer_dir.join("package.json").is_file() && !peer_dir.join("node_modules").is_dir() {
        // Pinned by the committed lock file; better-sqlite3 may compile SQLite: minutes.
        println!("installing the peer's packages (npm ci) in {}", peer_dir.display());
        let status =
            Command::new("npm").arg("ci").current_dir(&peer_dir).status().context("running npm ci")?;
        if !status.success() {
            bail!("npm ci failed in {} ({status})", peer_dir.display());
        }
    }
    check_installed(&peer_dir)?;
    let db = database(args.peer, &args.data_dir);
    if db.exists() {
        bail!("{} exists: the peer's seed starts empty (delete it first)", db.display());
    }
    let mut cmd = seed_command(args.peer, &peer_dir, &args.data_dir, &seeded);
    println!(
        "seeding {} with {} users ({} with tokens): {}",
        args.peer.name(),
        seeded.users,
        seeded.token_users,
        crate::proc::describe(&cmd)
    );
    let status = cmd.status().with_context(|| format!("running {}", crate::proc::describe(&cmd)))?;
    if !status.success() {
        bail!("the {} seed failed ({status})", args.peer.name());
    }
    Ok(())
}
