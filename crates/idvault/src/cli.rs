//! The command line (clap). The settings' flags are the top layer of the configuration
//! (src/config.rs): environment variables and the configuration file are read there.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use idvault_core::provider::AllowedHosts;
use serde::Serialize;

use crate::config::LogFormat;

fn parse_allowed_hosts(s: &str) -> Result<AllowedHosts, String> {
    AllowedHosts::parse(s)
}

#[derive(Parser, Debug)]
#[command(
    name = "idvault",
    version,
    about = "Self-hosted, Descope-compatible identity back end with a provider-token vault",
    after_long_help = SETTINGS_HELP
)]
pub struct Cli {
    /// TOML configuration file; its keys are the flags' names in snake_case (see
    /// docs/configuration.md). Flags win over environment variables, which win over the file.
    #[arg(long, global = true, env = "IDVAULT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub global: GlobalFlags,

    #[command(subcommand)]
    pub command: Command,
}

const SETTINGS_HELP: &str = "\
Getting started:
  idvault serve                      serve on 127.0.0.1:8080, data in ./idvault-data; the first start
                                     creates a project and a management key and prints them once
  idvault key create --project P     another management key for project P (printed once)
  idvault project list               the projects and their ids

Where things are:
  data        SQLite in --data-dir (idvault.db), or PostgreSQL with --database-url
  master key  encrypts stored tokens and secrets: `master.key` in the data directory (created on
              the first start), or IDVAULT_MASTER_KEY / IDVAULT_MASTER_KEY_FILE (`idvault keys
              generate` prints a new one). Back it up apart from the data: without it stored
              tokens cannot be read.

Every setting is also read from the configuration file (--config) and from the environment
variable IDVAULT_<NAME> (IDVAULT_DATA_DIR, IDVAULT_LISTEN...); secrets also from
IDVAULT_<NAME>_FILE. `idvault config check` prints the effective configuration; every setting is
in docs/configuration.md, running it in production in docs/operations.md.";

/// Settings every command uses. Unset flags fall back to the environment, the configuration file
/// and the defaults (src/config.rs), in that order; they are serialized into the configuration
/// merge, unset ones skipped.
#[derive(Args, Debug, Default, Serialize)]
#[command(next_help_heading = "Data and logs (every command)")]
pub struct GlobalFlags {
    /// Directory holding the SQLite database and the master key file [default: ./idvault-data].
    #[arg(long, global = true, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,

    /// PostgreSQL instead of SQLite in the data directory, e.g.
    /// `postgres://idvault@db.example/idvault`. Several replicas may share one database.
    /// Prefer IDVAULT_DATABASE_URL_FILE when the URL carries a password.
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,

    /// PostgreSQL: pooled connections for queries (refresh locks use a second pool of this size).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_pool_size: Option<usize>,

    /// PostgreSQL: how long to wait for a connection.
    #[arg(long, global = true, value_name = "DURATION", value_parser = crate::config::duration_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_connect_timeout: Option<String>,

    /// PostgreSQL: `statement_timeout` of every session (`0s` keeps the server's setting).
    #[arg(long, global = true, value_name = "DURATION", value_parser = crate::config::duration_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_statement_timeout: Option<String>,

    /// SQLite: MiB of the database file memory-mapped for reads. Default: as much as SQLite
    /// allows (2047 MiB). Mapped pages are the kernel's file cache, shared and reclaimable; they
    /// show in VmRSS (RssFile), not in anonymous memory. `0` reads through SQLite's page cache.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlite_mmap_mib: Option<u64>,

    /// Master keyring: one base64 key, or `version:base64` entries separated by commas. When
    /// unset, `master.key` in the data directory is used (created on first start).
    #[arg(long = "master-key", global = true, hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,

    /// Log line format on stderr: `human` (one readable line per event) or `json` (one object per
    /// line, for log collectors) [default: human].
    #[arg(long, global = true, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server; the first start creates a project and a management key.
    ///
    /// Serves the management API, sign-in and the token vault on --listen, with the data in
    /// --data-dir (SQLite) or --database-url (PostgreSQL); applies pending migrations first unless
    /// --no-migrate. The first start on an empty database creates a project and a management key
    /// and prints them once. The master key is `master.key` in the data directory (created on the
    /// first start) or IDVAULT_MASTER_KEY / IDVAULT_MASTER_KEY_FILE. SIGTERM or Ctrl-C stops it
    /// once the requests in flight are answered.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit (`serve` does it too, unless --no-migrate).
    Migrate,
    /// Projects: create, list, sign-in settings.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Management keys, the API credentials of a project: create, list, revoke.
    #[command(subcommand)]
    Key(KeyCommand),
    /// A project's OAuth providers (its own OAuth apps at Google, GitHub...).
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// The master keyring that encrypts stored secrets, and session signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write a whole project (users, tenants, roles, keys, sealed tokens...) to a JSON Lines file.
    Export {
        #[arg(long)]
        project: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load an exported project, or add users with their tokens from JSON Lines.
    ///
    /// Load a project exported with `idvault export` into this backend (`--in FILE`), or add
    /// users with their tokens to an existing project from JSON Lines (`--project P --users FILE`).
    Import(ImportArgs),
    /// SQLite: write a consistent snapshot of the database, while the server runs.
    ///
    /// Write a consistent snapshot of the SQLite database to a new file (mode 0600), online: a
    /// server may keep running and writing. Keep the master key with it, stored apart.
    /// PostgreSQL: use pg_dump (see docs/reliability.md).
    Backup {
        /// The snapshot file to create (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Put a snapshot made by `idvault backup` into an empty data directory.
    ///
    /// Put a snapshot made by `idvault backup` into an empty data directory, after checking it
    /// and that the master keyring (`master.key` placed in the data directory first, or
    /// IDVAULT_MASTER_KEY) opens its data keys. Refused if the data directory holds a database.
    Restore {
        /// The snapshot file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Exit 0 if a running server answers its readiness probe (for container health checks).
    Healthcheck(HealthcheckArgs),
    /// Show the effective configuration (file, environment, flags), or every setting.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Export a project's audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a shell completion script, e.g. `idvault completions bash > /etc/bash_completion.d/idvault`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Write a project's audit records as JSON Lines, oldest first.
    ///
    /// Write a project's audit records as JSON Lines (one record a line, oldest first, in the
    /// search API's record shape) to standard output or a file. Not limited to 30 days: every
    /// record still kept (see `serve --audit-retention-days`).
    Export {
        #[arg(long)]
        project: String,
        /// Only records from then on: an RFC 3339 time (`2026-11-01T00:00:00Z`), Unix
        /// milliseconds, or an age such as `24h` or `7days`.
        #[arg(long)]
        since: Option<String>,
        /// Output file (created or truncated); standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

impl Command {
    pub fn is_server(&self) -> bool {
        matches!(self, Command::Serve(_))
    }
}

/// `serve`'s flags; defaults in src/config.rs. Unset flags are skipped in the configuration merge.
#[derive(Args, Debug, Default, Serialize)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port (printed at start) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,

    /// Once listening, write the server's URL, port, project id, backend and process id (and,
    /// on a first start, the management key it created) to this file as JSON, atomically and
    /// readable by the owner only; removed again on a clean shutdown. For scripts and test
    /// harnesses: wait for the file instead of reading the console.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_file: Option<PathBuf>,

    /// Do not apply migrations at start; refuse to run on an out-of-date schema instead.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_migrate: bool,

    /// Refresh a stored access token on read when it expires within this margin [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = crate::config::duration_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_skew: Option<String>,

    /// Timeout of one call to an OAuth provider (waiting for a slot included) [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = crate::config::duration_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_timeout: Option<String>,

    /// Concurrent calls per project and provider host [default: 32].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_concurrency: Option<usize>,

    /// Refreshes in flight per project and provider (or outbound app); further ones wait (within
    /// the provider timeout) for a slot. Keeps a hung provider from holding all refresh capacity
    /// (on PostgreSQL, every refresh lock connection) [default: 4].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_refresh_concurrency: Option<usize>,

    /// Consecutive failed refreshes (timeout, 5xx, unusable answer, unreachable) after which a
    /// provider's circuit opens: its refreshes then fail at once (502 `E112113`) without calling
    /// it. 0 never opens it. Counted per process [default: 5].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_breaker_failures: Option<u32>,

    /// How long an open provider circuit refuses refreshes before letting one through as a probe
    /// [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = crate::config::duration_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_breaker_cooldown: Option<String>,

    /// Hosts, IP addresses and CIDRs, comma-separated, that OAuth providers may use although
    /// they are not public (loopback, private networks), http included; for example
    /// `127.0.0.1,10.0.0.0/8,idp.internal`. Other provider URLs must be https to public addresses.
    #[arg(long, value_name = "LIST", value_parser = crate::config::allowed_hosts_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_allowed_hosts: Option<String>,

    /// The URL browsers and providers reach idvault at; the OAuth callback is
    /// `<public-url>/v1/auth/oauth/callback`. Defaults to `http://<listen address>`.
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,

    /// Reverse proxies whose `X-Forwarded-For` names the client: IP addresses and CIDRs,
    /// comma-separated, e.g. `127.0.0.1,10.0.0.0/8`. Only for requests whose TCP peer is listed,
    /// the header is read right to left and the first address not listed is the client (audit
    /// records, rate limits, access keys' permitted IPs). Empty by default: the TCP peer is the
    /// client and the header is ignored.
    #[arg(long, value_name = "LIST", value_parser = crate::config::trusted_proxies_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<String>,

    /// Lifetime of session JWTs [default: 10min].
    #[arg(long, value_name = "DURATION", value_parser = crate::config::duration_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_ttl: Option<String>,

    /// How long a started sign-in may take before its state expires [default: 10min].
    #[arg(long, value_name = "DURATION", value_parser = crate::config::duration_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_state_ttl: Option<String>,

    /// Lifetime of refresh JWTs (sessions) [default: 30days].
    #[arg(long, value_name = "DURATION", value_parser = crate::config::duration_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_ttl: Option<String>,

    /// Most pending (started, unexpired) sign-ins per project before `authorize` answers 429.
    #[arg(long, hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_sign_ins: Option<u64>,

    /// Time a client has to send a request's headers, from the moment the server waits for them
    /// (also closes idle keep-alive connections after this time). `0s` disables it [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = crate::config::duration_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<String>,

    /// Requests per second per client address (behind a proxy, see --trusted-proxies) on the
    /// unauthenticated `/v1/auth/*` routes (sign-in, code exchange, refresh, logout, me). `0`
    /// disables the limit [default: 20].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_rate_limit: Option<u32>,

    /// Burst size of that limit: requests a client address may make at once. `0` disables it
    /// [default: 100].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_rate_burst: Option<u32>,

    /// Days audit records are kept; older ones are deleted at start and then every hour. `0`
    /// keeps them forever [default: 90].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_retention_days: Option<u32>,

    /// How often expired audit records are purged [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = crate::config::duration_flag, hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_purge_interval: Option<String>,

    /// Brute-force limit: wrong management keys and forged session tokens per minute a client
    /// address (behind a proxy, see --trusted-proxies) may present once its burst is spent. While
    /// its budget is empty, its requests with credentials are refused (429). `0` disables the
    /// limit [default: 10].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_failure_limit: Option<u32>,

    /// Burst of that limit: wrong credentials a client address may present at once. `0` disables
    /// it [default: 10].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_failure_burst: Option<u32>,

    /// Serve `/metrics` on this separate address (no token asked there) instead of the main listener.
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
}

/// The flags given on the command line, global and `serve`'s, as one configuration layer.
#[derive(Serialize)]
pub struct Flags<'a> {
    #[serde(flatten)]
    pub global: &'a GlobalFlags,
    #[serde(flatten)]
    pub serve: Option<&'a ServeArgs>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the effective configuration, secrets masked, and where each value came from.
    ///
    /// Print the effective configuration (secrets masked) with where each value came from; fail
    /// on unknown keys or invalid values. Takes `serve`'s flags, to show their effect.
    Check(Box<ServeArgs>),
    /// Print the reference of every setting (Markdown), as in docs/configuration.md.
    Reference,
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
    /// Set a project's sign-in settings.
    Settings {
        #[arg(long)]
        project: String,
        /// An allowed redirect URL after sign-in (repeat for several); replaces the list.
        #[arg(long = "redirect-url")]
        redirect_urls: Vec<String>,
        /// Link a sign-in to an existing user with the same verified email.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        link_by_verified_email: bool,
    },
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
#[command(after_long_help = IMPORT_USERS_HELP)]
pub struct ImportArgs {
    /// A whole project written by `idvault export` (its counts are verified after the import).
    #[arg(long = "in", value_name = "FILE", required_unless_present = "users", conflicts_with_all = ["users", "project"])]
    pub input: Option<PathBuf>,
    /// Users to add to `--project`, one JSON object per line (see below). Every line is checked
    /// first: if any line is bad, the bad lines are listed and nothing is written.
    #[arg(long, value_name = "FILE.jsonl", requires = "project")]
    pub users: Option<PathBuf>,
    /// The project the users are added to (it must exist, with the tenants, roles, attribute
    /// definitions and outbound apps the lines name).
    #[arg(long)]
    pub project: Option<String>,
    /// Users written per transaction.
    #[arg(long, default_value_t = 20_000)]
    pub batch: usize,
}

/// The `--users` file format, shown by `idvault import --help`.
const IMPORT_USERS_HELP: &str = r#"Users file (--users): JSON Lines, one user per line, in the shape of the body of
POST /v1/mgmt/user/create (loginId, email, phone, displayName, givenName, middleName, familyName,
verifiedEmail, verifiedPhone, picture, roleNames, userTenants [{tenantId, roleNames}],
customAttributes, additionalLoginIds, ssoAppIds, test, status), plus:
  userId   keep this user id (a migration); generated when absent
  tokens   {"provider": [{provider, accessToken, refreshToken, expiration, scopes, providerUserId}],
            "outbound": [{appId, tenantId, accessToken, refreshToken, expiration | expiresIn,
                          scopes, accessTokenType, externalIdentifier, grantedBy}]}
Blank lines are skipped. Example line:
  {"loginId":"ada@example.com","displayName":"Ada","userTenants":[{"tenantId":"t1","roleNames":["admin"]}],
   "tokens":{"provider":[{"provider":"google","accessToken":"ya29...","expiration":1767225600}]}}

The same rules as the API apply (a create, a token PUT, an outbound token upload). Tokens are
sealed with the project's data key, so the server's master keyring (--data-dir or
IDVAULT_MASTER_KEY) is needed. What is written:
  - a bad line (malformed JSON, invalid field, unknown tenant, role, attribute or app, a login id
    or user id used twice in the file or already taken in the project): nothing is written; each
    bad line is printed with its line number and error code (first 100);
  - otherwise every user is written, in transactions of --batch users. Should a write fail after
    the check (a full disk, a login id created meanwhile through the API), the batches already
    committed stay and the error says how many users were written.
A server may run on the same database meanwhile."#;

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// Base URL of the server.
    #[arg(long, env = "IDVAULT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
}

#[derive(Subcommand, Debug)]
pub enum ProviderCommand {
    /// Create or replace a provider.
    ///
    /// Create or replace a provider. The client secret is read from `--client-secret-file` or
    /// the IDVAULT_CLIENT_SECRET environment variable, never from the command line.
    Set(Box<ProviderSetArgs>),
    /// List a project's providers (never their secrets).
    List {
        #[arg(long)]
        project: String,
    },
    /// Show one provider (never its secret).
    Show {
        #[arg(long)]
        project: String,
        name: String,
    },
    /// Remove a provider.
    Remove {
        #[arg(long)]
        project: String,
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct ProviderSetArgs {
    #[arg(long)]
    pub project: String,
    /// Provider name: a preset (google, github, microsoft, gitlab, slack, discord) or your own.
    #[arg(long)]
    pub name: String,
    /// Start from this preset's endpoints (defaults to the preset named like the provider).
    #[arg(long)]
    pub preset: Option<String>,
    #[arg(long)]
    pub client_id: String,
    /// File holding the client secret (trailing newline ignored).
    #[arg(long)]
    pub client_secret_file: Option<PathBuf>,
    /// OIDC issuer; its discovery document fills the endpoints of a custom provider.
    #[arg(long)]
    pub issuer: Option<String>,
    #[arg(long)]
    pub authorization_endpoint: Option<String>,
    #[arg(long)]
    pub token_endpoint: Option<String>,
    #[arg(long)]
    pub userinfo_endpoint: Option<String>,
    /// Scopes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,
    /// client_secret_basic or client_secret_post.
    #[arg(long)]
    pub auth_method: Option<String>,
    /// The same list as `serve --provider-allowed-hosts`: discovery is fetched from here too.
    #[arg(long, env = "IDVAULT_PROVIDER_ALLOWED_HOSTS", value_parser = parse_allowed_hosts)]
    pub provider_allowed_hosts: Option<AllowedHosts>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Show master key versions and how many data keys each wraps.
    List,
    /// Add a master key version to `master.key`; new data keys are wrapped under it.
    Rotate,
    /// Re-wrap every data key under the newest master key version (online).
    Rewrap,
    /// Remove a master key version from `master.key`; refused while any data key uses it.
    Retire { version: u32 },
    /// Make a new session signing key for a project; the old one verifies until its tokens expire.
    RotateSigning {
        #[arg(long)]
        project: String,
    },
    /// Print a new random keyring entry `VERSION:base64` (for IDVAULT_MASTER_KEY or its file).
    Generate {
        #[arg(long, default_value_t = 1)]
        version: u32,
    },
}
