//! idvault-store-postgres: the scale-out backend, on PostgreSQL (tokio-postgres, natively async,
//! pooled by deadpool-postgres). Several idvault replicas may share one database.
//!
//! Semantics follow the store contract in `idvault_core::store` and the reference backend,
//! idvault-store-sqlite, method for method (same tables, same JSON columns, same side tables for
//! lookup and search, same cascades). What PostgreSQL needs on top, because writers are
//! concurrent here instead of serialized:
//! - every multi-row change runs in one transaction;
//! - `update_user` reads the row `FOR UPDATE`, has core apply and check the change (against facts
//!   read in the same transaction) and writes it back, so concurrent patches never overwrite each
//!   other;
//! - login ids are unique by a primary key, so concurrent creates of one login id let exactly one
//!   win (the other gets `Error::UserAlreadyExists`); writers of login ids first take advisory
//!   locks on hash buckets of them in key order, so two batches inserting the same ids in
//!   opposite orders wait for each other instead of deadlocking;
//! - user writes (which check roles, tenants and attribute definitions) take a shared
//!   per-project advisory transaction lock, and directory writes (which cascade into users and
//!   roles) take it exclusively: a reference check can never race a delete or a rename, and lock
//!   order is fixed (advisory lock first, then rows), so the two cannot deadlock;
//! - token refreshes and data-key rewraps are compare-and-swap on a version column;
//! - [`RefreshLock`](idvault_core::store::RefreshLock) is a session advisory lock (see `lock.rs`).
//!
//! Differences from SQLite that could not be avoided:
//! - free text is one case-insensitive substring match (`ILIKE`, pg_trgm index) over login ids,
//!   names (middle name included), email and phone for every length; SQLite's 1-2 character
//!   fallback (`LIKE`) skips the middle name. Login ids are matched in PostgreSQL's JSON
//!   rendering (`["a", "b"]`), so only a text spanning two login ids can match differently.
//!   Non-ASCII case folding follows the database's `LC_CTYPE` (none under the `C` locale);
//! - text columns cannot hold NUL characters (`\u0000`), which SQLite accepts: such a value is a
//!   storage error here;
//! - a custom-attribute filter compares JSON values (objects and arrays by value, not by text);
//! - a duplicate project or management key id is `Error::AlreadyExists` (SQLite: a storage
//!   error).
//!
//! Connections are plain TCP (`NoTls`): run the database on a private network or a local socket
//! proxy. TLS can be added later with a `MakeTlsConnect` implementation in [`PgStore::connect`].
//!
//! Must not import axum or anything above the storage seam.

mod access_keys;
mod audit;
mod auth;
mod directory;
mod import;
mod keys;
mod lock;
mod outbound;
mod projects;
mod rows;
mod search;
mod tokens;
mod transfer;
mod users;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use idvault_core::error::{Error, Result};
use idvault_core::store::HealthCheck;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long a caller waits for a free pooled connection before failing.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// How to connect.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Apply pending migrations at start (the default); otherwise refuse a schema that is behind.
    pub migrate: bool,
    /// Maximum number of pooled connections for queries. Refresh locks use a second pool of the
    /// same size (connections are opened lazily), so at most twice this many are open.
    pub pool_size: usize,
    /// Bound on opening one connection.
    pub connect_timeout: Duration,
    /// `statement_timeout` of every pooled session; None keeps the server's setting.
    pub statement_timeout: Option<Duration>,
}

impl Default for PgOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        PgOptions {
            migrate: true,
            pool_size: (cores * 4).clamp(8, 64),
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_secs(30)),
        }
    }
}

pub(crate) struct Inner {
    /// How to open a connection (without the pooled sessions' options): the revocation listener's.
    listen_cfg: tokio_postgres::Config,
    pub(crate) pool: Pool,
    /// Connections that hold refresh locks. Separate from `pool` so that refreshes holding
    /// their lock can never take every query connection away from the writes they go on to do.
    pub(crate) lock_pool: Pool,
    redactor: Redactor,
}

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

/// Removes the URL's password from error messages. The driver does not put it in its messages;
/// this is a second line of defence, since a connection error ends up in logs.
#[derive(Clone, Default)]
struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    fn from_url(url: &str) -> Self {
        let mut secrets = Vec::new();
        // URL form: scheme://user:password@host...
        if let Some((_, rest)) = url.split_once("://") {
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            if let Some((userinfo, _)) = authority.rsplit_once('@') {
                if let Some((_, password)) = userinfo.split_once(':') {
                    if !password.is_empty() {
                        secrets.push(password.to_owned());
                        secrets.push(percent_decode(password));
                    }
                }
            }
        }
        // Key-value form: password=...
        if let Ok(cfg) = url.parse::<tokio_postgres::Config>() {
            if let Some(p) = cfg.get_password() {
                if !p.is_empty() {
                    secrets.push(String::from_utf8_lossy(p).into_owned());
                }
            }
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    fn clean(&self, message: String) -> String {
        self.secrets.iter().fold(message, |m, s| m.replace(s.as_str(), "***"))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error and its causes, `a: b: c` (the driver's Display leaves the cause out).
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A driver error as a domain error. Query errors never contain the connection URL.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error::Storage(format!("{}: {} ({})", db.severity(), db.message(), db.code().code())),
        None if e.is_closed() => Error::Storage("the database connection was closed".into()),
        None => Error::Storage(describe(&e)),
    }
}

/// The constraint a unique violation hit, if `e` is one.
pub(crate) fn unique_violation(e: &tokio_postgres::Error) -> Option<&str> {
    let db = e.as_db_error()?;
    (db.code() == &SqlState::UNIQUE_VIOLATION).then(|| db.constraint().unwrap_or(""))
}

/// The schema version this build knows (the highest migration embedded).
pub fn known_schema_version() -> i32 {
    embedded::migrations::runner().get_migrations().iter().map(|m| m.version()).max().unwrap_or(0)
}

fn parse_config(url: &str, redactor: &Redactor) -> Result<tokio_postgres::Config> {
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| Error::Storage(redactor.clean(format!("invalid database URL: {}", describe(&e)))))
}

/// Opens one unpooled connection (for migrations and the schema check).
async fn connect_direct(
    cfg: &tokio_postgres::Config,
    redactor: &Redactor,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    let (client, connection) = cfg
        .connect(NoTls)
        .await
        .map_err(|e| Error::Storage(redactor.clean(format!("connecting to PostgreSQL: {}", describe(&e)))))?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "migration connection ended");
        }
    });
    Ok((client, task))
}

/// The highest applied migration, 0 for an empty database.
async fn current_schema_version(client: &tokio_postgres::Client) -> Result<i32> {
    let exists: bool = client
        .query_one("SELECT to_regclass('refinery_schema_history') IS NOT NULL", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pg_err)?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one("SELECT COALESCE(MAX(version), 0)::INT4 FROM refinery_schema_history", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pg_err)
}

/// Replicas starting together migrate one at a time: the others wait here, then find nothing
/// left to apply.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(300);

async fn run_migrations(client: &mut tokio_postgres::Client) -> Result<Vec<i32>> {
    let report = embedded::migrations::runner()
        .run_async(client)
        .await
        .map_err(|e| Error::Storage(format!("migration failed: {e}")))?;
    Ok(report.applied_migrations().iter().map(|m| m.version()).collect())
}

/// Checks the schema version and, if asked, migrates, under the migration lock.
async fn prepare_schema(client: &mut tokio_postgres::Client, migrate: bool) -> Result<Vec<i32>> {
    let key = lock::advisory_key(&["idvault-migrations"]);
    lock::lock_session(client, key, MIGRATION_LOCK_WAIT).await?;
    let result = async {
        let known = known_schema_version();
        let current = current_schema_version(client).await?;
        if current > known {
            return Err(Error::Storage(format!(
                "database schema version {current} is newer than this idvault knows ({known}); upgrade idvault"
            )));
        }
        if migrate {
            run_migrations(client).await
        } else if current < known {
            Err(Error::Storage(format!(
                "database schema version {current} is behind ({known}); run `idvault migrate`"
            )))
        } else {
            Ok(Vec::new())
        }
    }
    .await;
    // The connection is closed right after; unlocking explicitly just frees it sooner.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&key]).await;
    result
}

/// Applies pending migrations to the database at `url` and answers the versions applied.
/// Refuses a schema newer than this build knows.
pub async fn migrate(url: &str) -> Result<Vec<i32>> {
    let redactor = Redactor::from_url(url);
    let mut cfg = parse_config(url, &redactor)?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(PgOptions::default().connect_timeout);
    }
    let (mut client, task) = connect_direct(&cfg, &redactor).await?;
    let result = prepare_schema(&mut client, true).await;
    drop(client);
    let _ = task.await;
    result
}

fn build_pool(cfg: tokio_postgres::Config, size: usize, opts: &PgOptions) -> Result<Pool> {
    let manager = Manager::from_config(cfg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(opts.connect_timeout))
        .recycle_timeout(Some(opts.connect_timeout))
        .wait_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| Error::Storage(format!("building the connection pool: {e}")))
}

impl PgStore {
    /// The query pool's and the refresh-lock pool's use now, for metrics.
    pub fn pool_stats(&self) -> [idvault_core::store::PoolStats; 2] {
        let stats = |pool: &'static str, p: &Pool| {
            let s = p.status();
            idvault_core::store::PoolStats {
                pool,
                max: s.max_size,
                in_use: s.size.saturating_sub(s.available),
                waiting: s.waiting,
                waits_total: 0,
            }
        };
        [stats("queries", &self.inner.pool), stats("refresh_locks", &self.inner.lock_pool)]
    }

    /// Connects to the database at `url` (`postgres://user:password@host:port/dbname`, or the
    /// libpq key-value form), checks the schema version (migrating first when
    /// `opts.migrate`), and opens the pools. Fails if the database cannot be reached, if its
    /// schema is newer than this build knows, or (without `migrate`) if it is behind.
    pub async fn connect(url: &str, opts: &PgOptions) -> Result<PgStore> {
        let redactor = Redactor::from_url(url);
        let mut cfg = parse_config(url, &redactor)?;
        cfg.connect_timeout(opts.connect_timeout);
        if cfg.get_application_name().is_none() {
            cfg.application_name("idvault");
        }
        // TCP keepalives let the server notice a vanished replica (and free its refresh locks)
        // even when no FIN ever arrives.
        cfg.keepalives(true);
        cfg.keepalives_idle(Duration::from_secs(30));

        let (mut client, task) = connect_direct(&cfg, &redactor).await?;
        let result = prepare_schema(&mut client, opts.migrate).await;
        drop(client);
        let _ = task.await;
        let applied = result?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied database migrations");
        }

        let listen_cfg = cfg.clone();
        if let Some(timeout) = opts.statement_timeout {
            let setting = format!("-c statement_timeout={}", timeout.as_millis().max(1));
            let options = match cfg.get_options() {
                Some(existing) if !existing.is_empty() => format!("{existing} {setting}"),
                _ => setting,
            };
            cfg.options(&options);
        }
        let pool = build_pool(cfg.clone(), opts.pool_size, opts)?;
        let lock_pool = build_pool(cfg, opts.pool_size, opts)?;
        let store = PgStore { inner: Arc::new(Inner { listen_cfg, pool, lock_pool, redactor }) };
        // Fail now, not on the first request, if pooled sessions cannot start (bad options).
        store.ping().await?;
        Ok(store)
    }

    /// Closes the pools: idle connections close now, busy ones when they are returned. Later
    /// calls fail with a storage error.
    pub async fn close(&self) -> Result<()> {
        self.inner.pool.close();
        self.inner.lock_pool.close();
        Ok(())
    }

    /// Listens for management-key revocations made by any process on this database (other
    /// replicas, the CLI) and reports them to `on`, until the returned task is aborted.
    /// `Listening` comes on every (re)connection, after which notifications are delivered;
    /// `Lost` when the connection fails (reconnection is retried, backing off from 1 s to 30 s): in between,
    /// revocations may be missed, so the caller must not trust what it cached.
    pub fn listen_key_revocations(
        &self,
        on: impl Fn(RevocationEvent<'_>) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let cfg = self.inner.listen_cfg.clone();
        let redactor = self.inner.redactor.clone();
        tokio::spawn(async move {
            // Retries back off from 1 s to 30 s while the database stays unreachable.
            let mut delay = Duration::from_secs(1);
            loop {
                match listen_once(&cfg, &on).await {
                    Ok(()) => {
                        tracing::warn!("the key revocation listener lost its database connection");
                        delay = Duration::from_secs(1);
                    }
                    Err(e) => tracing::warn!(
                        error = %redactor.clean(e.to_string()),
                        retry_in_s = delay.as_secs(),
                        "the key revocation listener could not connect"
                    ),
                }
                on(RevocationEvent::Lost);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        })
    }

    /// A pooled connection for queries.
    pub(crate) async fn conn(&self) -> Result<Object> {
        self.inner.pool.get().await.map_err(|e| self.pool_err(e))
    }

    pub(crate) fn pool_err(&self, e: PoolError) -> Error {
        let message = match e {
            PoolError::Timeout(_) => "timed out waiting for a database connection".to_owned(),
            PoolError::Closed => "the database pool is closed".to_owned(),
            PoolError::Backend(e) => format!("connecting to PostgreSQL: {}", describe(&e)),
            other => format!("database pool: {other}"),
        };
        Error::Storage(self.inner.redactor.clean(message))
    }
}

/// The channel of management-key revocations (payload: the key id).
pub(crate) const KEY_REVOCATION_CHANNEL: &str = "idvault_key_revoked";

/// What the revocation listener reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationEvent<'a> {
    /// Connected and listening: revocations from now on are reported.
    Listening,
    /// A key was revoked.
    Revoked(&'a str),
    /// The connection failed: revocations may go unreported until the next `Listening`.
    Lost,
}

/// One listening connection, until it ends.
async fn listen_once(
    cfg: &tokio_postgres::Config,
    on: &(impl Fn(RevocationEvent<'_>) + Send + Sync),
) -> Result<()> {
    let (client, mut connection) = cfg.connect(NoTls).await.map_err(pg_err)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    // The connection delivers notifications only while it is polled for messages.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "key revocation listener connection failed");
                    break;
                }
                None => break,
            }
        }
    });
    let listening = client.batch_execute(&format!("LISTEN {KEY_REVOCATION_CHANNEL}")).await;
    if let Err(e) = listening {
        driver.abort();
        return Err(pg_err(e));
    }
    on(RevocationEvent::Listening);
    while let Some(key_id) = rx.recv().await {
        on(RevocationEvent::Revoked(&key_id));
    }
    drop(client);
    Ok(())
}

#[async_trait]
impl HealthCheck for PgStore {
    async fn ping(&self) -> Result<()> {
        let c = self.conn().await?;
        c.query_one("SELECT 1", &[]).await.map(|_| ()).map_err(pg_err)
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn migration_file_names_match_the_sqlite_backend() {
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let pg = names(&here.join("migrations"));
        let sqlite = names(&here.join("../store-sqlite/migrations"));
        assert!(!pg.is_empty());
        assert_eq!(pg, sqlite);
        let highest =
            pg.iter().filter_map(|n| n.strip_prefix('V')?.split("__").next()?.parse::<i32>().ok()).max();
        assert_eq!(Some(known_schema_version()), highest);
    }

    #[test]
    fn passwords_are_redacted() {
        let r = Redactor::from_url("postgres://idv:s%3Acret@db.example:5432/idv");
        assert_eq!(r.clean("bad s%3Acret and s:cret".into()), "bad *** and ***");
        let r = Redactor::from_url("host=db user=idv password=hunter2 dbname=idv");
        assert_eq!(r.clean("x hunter2 y".into()), "x *** y");
        assert!(Redactor::from_url("postgres://idv@db/idv").secrets.is_empty());
    }

    #[test]
    fn advisory_keys_are_stable() {
        // First 8 bytes of SHA-256("P1|U1|google"), big-endian: must never change between
        // releases, or replicas of two versions would not exclude each other.
        let a = lock::advisory_key(&["P1", "U1", "google"]);
        assert_eq!(a, -6_759_662_142_356_367_708);
        assert_ne!(a, lock::advisory_key(&["P1", "U1", "github"]));
    }

    #[tokio::test]
    async fn connection_errors_do_not_show_the_password() {
        // Nothing listens on port 1.
        let opts = PgOptions { connect_timeout: Duration::from_secs(2), ..PgOptions::default() };
        let err = PgStore::connect("postgres://idv:topsecret@127.0.0.1:1/idv", &opts).await.err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, Error::Storage(_)), "{err:?}");
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("refused"), "the cause is kept: {text}");
        let err =
            PgStore::connect("postgres://idv:topsecret@127.0.0.1:notaport/idv", &opts).await.err().unwrap();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}
