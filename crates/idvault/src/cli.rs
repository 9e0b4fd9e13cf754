//! The command line (clap). Every flag that matters in production also reads an `IDVAULT_*`
//! environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "idvault",
    version,
    about = "Self-hosted, Descope-compatible identity back end with a provider-token vault"
)]
pub struct Cli {
    /// Directory holding the SQLite database and the master key file.
    #[arg(
        long,
        global = true,
        env = "IDVAULT_DATA_DIR",
        default_value = "./idvault-data"
    )]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage management keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Exit 0 if a running server answers its readiness probe (for container health checks).
    Healthcheck(HealthcheckArgs),
}

impl Command {
    pub fn is_server(&self) -> bool {
        matches!(self, Command::Serve(_))
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port (printed at start).
    #[arg(long, env = "IDVAULT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Do not apply migrations at start; refuse to run on an out-of-date schema instead.
    #[arg(long)]
    pub no_migrate: bool,

    /// Master key (base64 of 32 bytes). When unset, `master.key` in the data directory is used,
    /// and created on first start.
    #[arg(
        long = "master-key",
        env = "IDVAULT_MASTER_KEY",
        hide_env_values = true,
        hide = true
    )]
    pub master_key: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// Create a project.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List projects.
    List,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a management key and print it once.
    Create {
        #[arg(long)]
        project: String,
        #[arg(long, default_value = "default")]
        name: String,
        /// Lifetime such as `30d`, `12h`, `90min`; no expiry when absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// List a project's management keys (never the keys themselves).
    List {
        #[arg(long)]
        project: String,
    },
    /// Revoke a management key by its id.
    Revoke {
        #[arg(long)]
        project: String,
        key_id: String,
    },
}

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// Base URL of the server.
    #[arg(long, env = "IDVAULT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
}
