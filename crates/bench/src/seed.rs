//! `seed`: a data directory (and, with `--database-url`, a PostgreSQL database) with N users,
//! made through the product's own bulk import path, so that the real server opens it as its own.
//!
//! - master keyring: `Keyring::load_or_create(None, DIR)`, as `idvault serve` does without
//!   `IDVAULT_MASTER_KEY`;
//! - database: `SqliteStore::open(DIR/idvault.db)` or `PgStore::connect(URL)`, which migrate;
//! - project and management key: `ProjectService`; tenants `bench-t{k}` with a tenant role
//!   `bench-role` each: `DirectoryService`; the outbound app `bench-app`: `ProviderService`;
//! - users and all their tokens: `ImportService::import` (idvault_core::user::import), the path
//!   of `idvault import --users`: every user checked first (creation rules, references), then
//!   written in large transactions with the tokens sealed in parallel on every core by the
//!   server's `Envelope` (the project's data key, `token_aad` / `outbound_token_aad`). User i
//!   (id `Ubench{i}`, login id `user{i}@example.com`, name `Bench User {i}`) gets, when
//!   i < token_users, a `google` token (`bench-access-{i}`) and a `bench-app` user token
//!   (`bench-outbound-{i}`, scopes `["read"]`); when i % tenant_every == 0, membership of
//!   tenant `bench-t{(i / tenant_every) % tenants}` with role `bench-role`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use idvault_core::clock::{SharedClock, SystemClock};
use idvault_core::directory::{DirectoryService, Role, Tenant};
use idvault_core::ids::ProviderName;
use idvault_core::outbound::BatchToken;
use idvault_core::project::ProjectService;
use idvault_core::provider::service::SetProvider;
use idvault_core::provider::{AppSettings, ProviderService};
use idvault_core::store::SharedStore;
use idvault_core::user::import::{
    ImportOutcome, ImportPhase, ImportService, ImportSettings, ImportSource, ImportUser,
};
use idvault_core::user::{NewUser, UserTenant};
use idvault_core::vault::StoreTokenRequest;
use idvault_crypto::{Envelope, Keyring};
use idvault_oauth::{HttpOAuthClient, OAuthSettings};
use idvault_store_postgres::{PgOptions, PgStore};
use idvault_store_sqlite::{SqliteOptions, SqliteStore};

use crate::meta::{self, BenchMeta};

/// The database file name the server uses (crates/idvault/src/startup.rs).
pub const DB_FILE: &str = "idvault.db";
pub const PROVIDER: &str = "google";

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// Data directory to create (must not hold a database yet); holds the master keyring and
    /// bench.json, and the SQLite database unless `--database-url` is given.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// PostgreSQL database to seed instead of SQLite (it must hold no idvault project yet, e.g.
    /// a new database from `scripts/pg-test-db create NAME`).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Number of users.
    #[arg(long, default_value_t = 1_000_000)]
    pub users: u64,
    /// How many users (the first ones: user0..) get a provider token for `google` and an
    /// outbound token of `bench-app`. Default: all.
    #[arg(long)]
    pub token_users: Option<u64>,
    /// Users per import transaction.
    #[arg(long, default_value_t = 20_000)]
    pub batch: u64,
    /// Tenants `bench-t0..`; 0 for none.
    #[arg(long, default_value_t = 100)]
    pub tenants: u64,
    /// Every this many users (user 0, tenant_every, ...) is in a tenant.
    #[arg(long, default_value_t = 10)]
    pub tenant_every: u64,
    /// SQLite: MiB of page cache for the writing connection (the `idvault import` command uses
    /// the same default); for comparing cache sizes.
    #[arg(long, default_value_t = (idvault_store_sqlite::BULK_WRITER_CACHE_BYTES >> 20) as u64)]
    pub sqlite_writer_cache_mib: u64,
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

/// The seeded users, generated on the import's worker threads from their index.
struct SeedSource {
    users: u64,
    token_users: u64,
    tenants: u64,
    tenant_every: u64,
    expiration: i64,
    next: u64,
    provider: ProviderName,
}

impl ImportSource for SeedSource {
    type Item = u64;

    fn rewind(&mut self) -> idvault_core::Result<()> {
        self.next = 0;
        Ok(())
    }

    fn next_batch(&mut self, max: usize) -> idvault_core::Result<Vec<(u64, u64)>> {
        let end = self.users.min(self.next.saturating_add(max as u64));
        let batch = (self.next..end).map(|i| (i + 1, i)).collect();
        self.next = end;
        Ok(batch)
    }

    fn parse(&self, i: u64) -> idvault_core::Result<ImportUser> {
        let tenants = if self.tenants > 0 && self.tenant_every > 0 && i.is_multiple_of(self.tenant_every) {
            vec![UserTenant {
                tenant_id: meta::tenant_id((i / self.tenant_every) % self.tenants),
                role_names: vec![meta::TENANT_ROLE.into()],
                ..UserTenant::default()
            }]
        } else {
            Vec::new()
        };
        let has_tokens = i < self.token_users;
        Ok(ImportUser {
            user_id: Some(meta::user_id(i)),
            user: NewUser {
                login_id: meta::login_id(i),
                name: Some(format!("Bench User {i}")),
                tenants,
                ..NewUser::default()
            },
            tokens: if has_tokens {
                vec![StoreTokenRequest {
                    provider: self.provider.clone(),
                    provider_user_id: format!("google-{i}"),
                    access_token: SecretString::from(meta::access_token(i)),
                    refresh_token: Some(SecretString::from(format!("bench-refresh-{i}"))),
                    expiration: self.expiration,
                    scopes: vec!["openid".into(), "email".into()],
                }]
            } else {
                Vec::new()
            },
            outbound_tokens: if has_tokens {
                vec![BatchToken {
                    app_id: meta::OUTBOUND_APP_ID.into(),
                    access_token: Some(SecretString::from(meta::outbound_access_token(i))),
                    scopes: vec!["read".into()],
                    ..BatchToken::default()
                }]
            } else {
                Vec::new()
            },
        })
    }
}

enum Db {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Db {
    fn store(&self) -> SharedStore {
        match self {
            Db::Sqlite(s) => Arc::new(s.clone()),
            Db::Postgres(s) => Arc::new(s.clone()),
        }
    }
}

pub async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let n = args.users;
    let token_users = args.token_users.unwrap_or(n).min(n);
    let dir = &args.data_dir;
    ensure_data_dir(dir)?;
    let db_file = dir.join(DB_FILE);
    if args.database_url.is_none() && db_file.exists() {
        bail!("{} already exists: seed into a new directory (or delete it first)", db_file.display());
    }
    let started = Instant::now();
    let keyring = Keyring::load_or_create(None, dir).context("loading the master key")?;
    let db = match &args.database_url {
        Some(url) => {
            // The import's transactions are large: no per-statement timeout for the seed.
            let opts = PgOptions { statement_timeout: None, ..PgOptions::default() };
            Db::Postgres(PgStore::connect(url, &opts).await.context("connecting to PostgreSQL")?)
        }
        None => {
            let writer_cache_bytes = i64::try_from(args.sqlite_writer_cache_mib << 20).unwrap_or(i64::MAX);
            // A bulk import, as `idvault import`: batch-sized savepoint journals go to files.
            let opts = SqliteOptions {
                writer_cache_bytes,
                writer_temp_in_memory: false,
                ..SqliteOptions::default()
            };
            Db::Sqlite(SqliteStore::open(&db_file, &opts).context("opening the database")?)
        }
    };
    let store = db.store();
    let clock: SharedClock = Arc::new(SystemClock);
    let cipher = Arc::new(Envelope::new(keyring, store.clone(), clock.clone()));
    let projects = ProjectService::new(store.clone(), clock.clone());
    if !projects.list_projects().await?.is_empty() {
        bail!("the database already holds a project: seed into a new database");
    }
    let project = projects.create_project("bench").await?;
    let issued = projects.create_key(&project.id, "bench", None).await?;
    let where_to = match &args.database_url {
        Some(_) => "PostgreSQL".to_owned(),
        None => db_file.display().to_string(),
    };
    println!(
        "seeding {n} users ({token_users} with a {PROVIDER} and a {} token, {} tenants) into {where_to}",
        meta::OUTBOUND_APP_ID,
        args.tenants
    );

    // The directory and the app the users refer to.
    let directory = DirectoryService::new(store.clone(), clock.clone());
    for k in 0..args.tenants {
        let tenant = directory
            .create_tenant(
                &project.id,
                Tenant {
                    id: meta::tenant_id(k),
                    name: format!("Bench Tenant {k}"),
                    self_provisioning_domains: Vec::new(),
                    custom_attributes: Default::default(),
                    disabled: false,
                    enforce_sso: false,
                    created_ms: 0,
                },
            )
            .await?;
        directory
            .create_role(
                &project.id,
                Role {
                    id: String::new(),
                    name: meta::TENANT_ROLE.into(),
                    tenant_id: Some(tenant.id),
                    description: String::new(),
                    permission_names: Vec::new(),
                    default: false,
                    private: false,
                    created_ms: 0,
                },
            )
            .await?;
    }
    let oauth = HttpOAuthClient::new(OAuthSettings::default()).map_err(anyhow::Error::msg)?;
    let providers = ProviderService::new(store.clone(), cipher.clone(), Arc::new(oauth), clock.clone());
    providers
        .set(
            &project.id,
            SetProvider {
                name: meta::OUTBOUND_APP_ID.into(),
                preset: Some(PROVIDER.into()),
                client_id: "bench-client".into(),
                app: Some(("Bench App".into(), AppSettings::default())),
                ..SetProvider::default()
            },
        )
        .await?;
    let setup_secs = started.elapsed().as_secs_f64();

    let mut source = SeedSource {
        users: n,
        token_users,
        tenants: args.tenants,
        tenant_every: args.tenant_every,
        expiration: clock.now_secs() + 3600,
        next: 0,
        provider: ProviderName::parse(PROVIDER)?,
    };
    let service = ImportService::new(store.clone(), cipher, clock.clone());
    let settings = ImportSettings { batch_users: usize::try_from(args.batch)?, ..ImportSettings::default() };
    let import_started = Instant::now();
    let tenth = (n / 10).max(1);
    let progress = |phase: ImportPhase, done: u64| {
        if done % tenth < settings.batch_users as u64 || done == n {
            let secs = import_started.elapsed().as_secs_f64();
            let what = match phase {
                ImportPhase::Check => "checked",
                ImportPhase::Write => "written",
            };
            println!("  {what} {done}/{n} users after {secs:.1} s");
        }
    };
    let report = match service.import(&project.id, &mut source, settings, &progress).await? {
        ImportOutcome::Imported(report) => report,
        ImportOutcome::Refused { errors, .. } => {
            let first =
                errors.first().map(|e| format!("user {}: {}", e.line - 1, e.error)).unwrap_or_default();
            bail!("the import refused {} seeded users, first {first}", errors.len())
        }
    };
    let import_secs = import_started.elapsed().as_secs_f64();
    let (check, write) = (report.check_time.as_secs_f64(), report.write_time.as_secs_f64());
    println!(
        "import: {n} users, {} provider tokens, {} outbound tokens in {import_secs:.1} s \
         ({:.0} users/s): check {check:.1} s, write {write:.1} s (preparing and sealing on {} threads \
         {:.1} s, waiting for the store {:.1} s)",
        report.tokens,
        report.outbound_tokens,
        rate(n, import_secs),
        settings.threads,
        report.prepare_time.as_secs_f64(),
        report.store_wait_time.as_secs_f64(),
    );

    // Checkpoint the WAL into the main file, as the server does on shutdown.
    let checkpoint_started = Instant::now();
    if let Db::Sqlite(sqlite) = &db {
        sqlite.close().await.context("checkpointing the database")?;
    }
    let checkpoint_secs = checkpoint_started.elapsed().as_secs_f64();
    drop(service);
    drop(store);
    drop(db);

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
        users_seconds: write,
        tokens_seconds: 0.0,
        database_url: args.database_url.clone(),
        user_id_pattern: Some(meta::USER_ID_PATTERN.into()),
        outbound_app_id: Some(meta::OUTBOUND_APP_ID.into()),
        tenants: args.tenants,
        tenant_every: args.tenant_every,
        import_check_seconds: check,
        import_write_seconds: write,
        import_prepare_seconds: report.prepare_time.as_secs_f64(),
        import_store_wait_seconds: report.store_wait_time.as_secs_f64(),
    };
    meta::write(&crate::meta_path(dir), &meta)?;
    let db_bytes = std::fs::metadata(&db_file).map(|m| m.len()).unwrap_or(0);
    println!(
        "seeded in {total_secs:.1} s (setup {setup_secs:.1} s, import {import_secs:.1} s, checkpoint \
         {checkpoint_secs:.1} s): {:.0} users/s overall{}",
        rate(n, total_secs),
        if args.database_url.is_none() {
            format!("; database {:.0} MiB", db_bytes as f64 / (1024.0 * 1024.0))
        } else {
            String::new()
        }
    );
    println!("wrote {}", crate::meta_path(dir).display());
    Ok(())
}
