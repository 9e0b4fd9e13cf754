//! `seed`: a data directory with N users, made through the same code the server runs, so that
//! the real server opens it as its own.
//!
//! - master keyring: `Keyring::load_or_create(None, DIR)`, as `idvault serve` does without
//!   `IDVAULT_MASTER_KEY`;
//! - database: `SqliteStore::open(DIR/idvault.db, SqliteOptions::default())`, which migrates;
//! - project and management key: `ProjectService`;
//! - users: `NewUser::into_user` (the creation rules) and `UserStore::create_users`, in batches;
//! - provider tokens: sealed by the server's `Envelope` (the project's data key) under
//!   `token_aad`, written with `TokenStore::put_token` (one transaction each, as the server's
//!   PUT does), several in flight so that sealing and the thread hand-off overlap the writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use secrecy::ExposeSecret;
use tokio::task::JoinSet;

use idvault_core::clock::{Clock, SystemClock};
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::project::ProjectService;
use idvault_core::secrets::{token_aad, Cipher, TokenField};
use idvault_core::store::SharedStore;
use idvault_core::user::NewUser;
use idvault_core::vault::SealedToken;
use idvault_crypto::{Envelope, Keyring};
use idvault_store_sqlite::{SqliteOptions, SqliteStore};

use crate::meta::{self, BenchMeta};

/// The database file name the server uses (crates/idvault/src/startup.rs).
pub const DB_FILE: &str = "idvault.db";
pub const PROVIDER: &str = "google";
/// put_token calls in flight at once; they serialize on the single writer connection.
const TOKEN_WRITES_IN_FLIGHT: usize = 8;

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// Data directory to create (must not hold a database yet).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Number of users.
    #[arg(long, default_value_t = 1_000_000)]
    pub users: u64,
    /// How many users (the first ones: user0..) get a provider token for `google`. Default: all.
    #[arg(long)]
    pub token_users: Option<u64>,
    /// Users per `create_users` call (one transaction each).
    #[arg(long, default_value_t = 5_000)]
    pub batch: u64,
}

/// Prints a line each time another tenth of the work is done.
struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    next_tenth: u64,
    started: Instant,
}

impl Progress {
    fn new(what: &'static str, total: u64) -> Self {
        Progress { what, total, done: 0, next_tenth: 1, started: Instant::now() }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        while self.next_tenth <= 10 && self.done * 10 >= self.total * self.next_tenth {
            let secs = self.started.elapsed().as_secs_f64();
            println!(
                "  {}: {:>3}% ({}/{}) in {:.1} s, {:.0}/s",
                self.what,
                self.next_tenth * 10,
                self.done,
                self.total,
                secs,
                rate(self.done, secs)
            );
            self.next_tenth += 1;
        }
    }
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Creates the data directory owner-only, as the server does.
fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))
}

async fn seal_token(
    sealer: &Envelope,
    project: &ProjectId,
    user: &UserId,
    provider: &ProviderName,
    i: u64,
    now_ms: i64,
) -> anyhow::Result<SealedToken> {
    let access = sealer
        .seal(
            project,
            meta::access_token(i).as_bytes(),
            &token_aad(project, user, provider, TokenField::Access),
        )
        .await?;
    let refresh = sealer
        .seal(
            project,
            format!("bench-refresh-{i}").as_bytes(),
            &token_aad(project, user, provider, TokenField::Refresh),
        )
        .await?;
    Ok(SealedToken {
        provider: provider.clone(),
        provider_user_id: format!("google-{i}"),
        access_token: access,
        refresh_token: Some(refresh),
        expiration: now_ms / 1000 + 3600,
        scopes: vec!["openid".into(), "email".into()],
        updated_ms: now_ms,
        version: 0,
        reauth_required: false,
    })
}

async fn put_token_checked(
    store: SharedStore,
    project: ProjectId,
    user: UserId,
    token: SealedToken,
) -> anyhow::Result<()> {
    if store.put_token(&project, &user, &token).await? {
        Ok(())
    } else {
        bail!("put_token: user {user} not found")
    }
}

fn join_result(r: Option<Result<anyhow::Result<()>, tokio::task::JoinError>>) -> anyhow::Result<()> {
    match r {
        Some(r) => r.context("token write task failed")?,
        None => Ok(()),
    }
}

pub async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let n = args.users;
    let token_users = args.token_users.unwrap_or(n).min(n);
    let batch = args.batch.max(1);
    let dir = &args.data_dir;
    ensure_data_dir(dir)?;
    let db = dir.join(DB_FILE);
    if db.exists() {
        bail!("{} already exists: seed into a new directory (or delete it first)", db.display());
    }
    let started = Instant::now();
    let keyring = Keyring::load_or_create(None, dir).context("loading the master key")?;
    let sqlite = SqliteStore::open(&db, &SqliteOptions::default()).context("opening the database")?;
    let sealer = Envelope::new(keyring, Arc::new(sqlite.clone()), Arc::new(SystemClock));
    let store: SharedStore = Arc::new(sqlite.clone());
    let clock = SystemClock;
    let projects = ProjectService::new(store.clone(), Arc::new(SystemClock));
    let project = projects.create_project("bench").await?;
    let issued = projects.create_key(&project.id, "bench", None).await?;
    println!("seeding {} users ({} with a {PROVIDER} token) into {}", n, token_users, db.display());

    // Users: build batch k+1 while batch k is written.
    let users_started = Instant::now();
    let mut progress = Progress::new("users", n);
    let mut token_owners: Vec<UserId> = Vec::with_capacity(usize::try_from(token_users)?);
    let mut pending: Option<(u64, tokio::task::JoinHandle<idvault_core::Result<()>>)> = None;
    let mut start = 0u64;
    while start < n {
        let end = (start + batch).min(n);
        let now = clock.now_ms();
        let mut users = Vec::with_capacity(usize::try_from(end - start)?);
        for i in start..end {
            let user = NewUser {
                login_id: meta::login_id(i),
                name: Some(format!("Bench User {i}")),
                ..NewUser::default()
            }
            .into_user(UserId::generate(), now)?;
            if i < token_users {
                token_owners.push(user.user_id.clone());
            }
            users.push(user);
        }
        if let Some((count, handle)) = pending.take() {
            handle.await.context("user write task failed")??;
            progress.advance(count);
        }
        let (s, pid) = (store.clone(), project.id.clone());
        let count = end - start;
        pending = Some((count, tokio::spawn(async move { s.create_users(&pid, &users).await })));
        start = end;
    }
    if let Some((count, handle)) = pending.take() {
        handle.await.context("user write task failed")??;
        progress.advance(count);
    }
    let users_secs = users_started.elapsed().as_secs_f64();
    println!("users: {n} in {users_secs:.1} s ({:.0} users/s)", rate(n, users_secs));

    // Provider tokens: one put_token (one transaction) per user.
    let tokens_started = Instant::now();
    let provider = ProviderName::parse(PROVIDER)?;
    let mut progress = Progress::new("tokens", token_users);
    let mut in_flight = JoinSet::new();
    for (i, user) in (0u64..).zip(token_owners) {
        let token = seal_token(&sealer, &project.id, &user, &provider, i, clock.now_ms()).await?;
        if in_flight.len() >= TOKEN_WRITES_IN_FLIGHT {
            join_result(in_flight.join_next().await)?;
            progress.advance(1);
        }
        in_flight.spawn(put_token_checked(store.clone(), project.id.clone(), user, token));
    }
    while !in_flight.is_empty() {
        join_result(in_flight.join_next().await)?;
        progress.advance(1);
    }
    let tokens_secs = tokens_started.elapsed().as_secs_f64();
    println!("tokens: {token_users} in {tokens_secs:.1} s ({:.0} tokens/s)", rate(token_users, tokens_secs));

    // Checkpoint the WAL into the main file, as the server does on shutdown.
    sqlite.close().await.context("checkpointing the database")?;
    drop(store);
    drop(projects);
    drop(sqlite);

    let total_secs = started.elapsed().as_secs_f64();
    let meta = BenchMeta {
        project_id: project.id.to_string(),
        management_key: issued.secret.expose_secret().to_owned(),
        users: n,
        token_users,
        provider: PROVIDER.into(),
        login_id_pattern: "user{i}@example.com".into(),
        seeded_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        seed_seconds: total_secs,
        users_seconds: users_secs,
        tokens_seconds: tokens_secs,
    };
    meta::write(&crate::meta_path(dir), &meta)?;
    let db_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "seeded in {total_secs:.1} s: {n} users ({:.0} users/s overall), {token_users} tokens; database {:.0} MiB",
        rate(n, total_secs),
        db_bytes as f64 / (1024.0 * 1024.0)
    );
    println!("wrote {}", crate::meta_path(dir).display());
    Ok(())
}
