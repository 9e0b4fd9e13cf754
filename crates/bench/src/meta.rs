//! `bench.json`: what `seed` put in a data directory, read back by `run`.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Login ids are `user{i}@example.com` for i in 0..users; users 0..token_users hold a token for
/// `provider`, whose access token is `bench-access-{i}`. The fields after `tokens_seconds` are
/// newer: each has a default, so that files of older seeds still parse.
#[derive(Debug, Serialize, Deserialize)]
pub struct BenchMeta {
    pub project_id: String,
    /// The full management key. This is a throw-away benchmark directory; the file is 0600.
    pub management_key: String,
    pub users: u64,
    pub token_users: u64,
    pub provider: String,
    pub login_id_pattern: String,
    pub seeded_at: String,
    pub seed_seconds: f64,
    /// Seeds made by the bulk import write users and their tokens together: the write pass.
    pub users_seconds: f64,
    /// Seeds made by the bulk import: 0 (tokens are written with their users).
    pub tokens_seconds: f64,
    /// PostgreSQL URL when the seed went there (`seed --database-url`); `run` then starts idvault
    /// with `IDVAULT_DATABASE_URL` and `--data-dir` (the master keyring stays in the directory).
    /// None: SQLite in DIR/idvault.db.
    #[serde(default)]
    pub database_url: Option<String>,
    /// `Ubench{i}`: user i has that user id. None: random ids (older seeds).
    #[serde(default)]
    pub user_id_pattern: Option<String>,
    /// The outbound app every token user also holds a user token of (access token
    /// `bench-outbound-{i}`, scopes `["read"]`). None: no outbound tokens.
    #[serde(default)]
    pub outbound_app_id: Option<String>,
    /// When > 0, user i with i % tenant_every == 0 is a member of tenant
    /// `bench-t{(i / tenant_every) % tenants}` with that tenant's role `bench-role`.
    #[serde(default)]
    pub tenants: u64,
    #[serde(default)]
    pub tenant_every: u64,
    /// Bulk import phases: checking every user, then writing (parsing, rules and sealing on every
    /// core, overlapped with the store's transactions).
    #[serde(default)]
    pub import_check_seconds: f64,
    #[serde(default)]
    pub import_write_seconds: f64,
    /// Of the write pass: time spent preparing batches (rules and sealing), and waiting for the
    /// store beyond that.
    #[serde(default)]
    pub import_prepare_seconds: f64,
    #[serde(default)]
    pub import_store_wait_seconds: f64,
}

pub fn login_id(i: u64) -> String {
    format!("user{i}@example.com")
}

pub fn access_token(i: u64) -> String {
    format!("bench-access-{i}")
}

pub fn user_id(i: u64) -> String {
    format!("Ubench{i}")
}

pub fn outbound_access_token(i: u64) -> String {
    format!("bench-outbound-{i}")
}

pub fn tenant_id(k: u64) -> String {
    format!("bench-t{k}")
}

pub const USER_ID_PATTERN: &str = "Ubench{i}";
pub const OUTBOUND_APP_ID: &str = "bench-app";
pub const TENANT_ROLE: &str = "bench-role";

pub fn write(path: &Path, meta: &BenchMeta) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(meta)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    std::io::Write::write_all(&mut file, b"\n")?;
    Ok(())
}

pub fn read(path: &Path) -> anyhow::Result<BenchMeta> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("reading {} (seed the directory first: idvault-bench seed --data-dir DIR)", path.display())
    })?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
