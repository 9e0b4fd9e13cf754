//! idvault-store-sqlite: the embedded default backend, on rusqlite.
//!
//! Performance shape (see docs/architecture.md): the hot reads (management-key check, load user,
//! token read) are short indexed point reads, run in place on the async worker thread on a
//! pooled read connection, because a thread hand-off costs more than the query. Writes and
//! potentially long reads (search, bulk load) run on the blocking pool. Writes go to the single
//! writer connection SQLite allows, owned by one thread that commits waiting writes in groups
//! (see `writer.rs`).
//!
//! Durability: WAL with `synchronous=NORMAL`. A write is acknowledged only after its group's
//! COMMIT returned, and a committed write survives a crash or `kill -9` of
//! the process; only a power loss or OS crash can drop the last few commits. Set
//! `synchronous=FULL` through [`SqliteOptions::synchronous_full`] to survive those as well.
//!
//! Must not import axum or anything above the storage seam.

mod access_keys;
mod audit;
mod auth;
mod checkpoint;
mod directory;
mod import;
mod keys;
mod outbound;
mod pool;
mod projects;
mod rows;
mod search;
mod snapshot;
mod tokens;
mod transfer;
mod users;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::Connection;

use idvault_core::error::{Error, Result};
use idvault_core::store::HealthCheck;

pub use snapshot::{inspect_snapshot, restore_snapshot, write_snapshot, SnapshotSummary};

use pool::ReaderPool;
use writer::Writer;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Apply pending migrations on open (the default); otherwise refuse a schema that is behind.
    pub migrate: bool,
    /// Number of pooled read connections.
    pub readers: usize,
    /// `synchronous=FULL` instead of `NORMAL`.
    pub synchronous_full: bool,
    /// Bytes of the database file memory-mapped for reads (capped by SQLite at
    /// [`MAX_MMAP_BYTES`]). Mapped pages are file-backed page cache: they count in the process's
    /// VmRSS (as RssFile, once per connection's mapping) but not in its anonymous memory, and the
    /// kernel may drop them under memory pressure.
    pub mmap_bytes: i64,
    /// Bytes of SQLite's page cache on the one writing connection (anonymous memory). Writes at a
    /// million users touch pages all over eight indexes and the free-text index: with the 2 MiB
    /// default a bulk import spent a third of its time re-reading pages it had just evicted and
    /// writing dirty pages to the WAL early (a profile of `idvault import`). The server keeps a
    /// small cache ([`WRITER_CACHE_BYTES`]); the import command asks for [`BULK_WRITER_CACHE_BYTES`].
    pub writer_cache_bytes: i64,
    /// Keep the writer's temporary files in memory (`PRAGMA temp_store = MEMORY`), chiefly the
    /// sub-journal of the savepoint each write runs in (writer.rs). In the server these are small
    /// (the pages a single write changes), and writing them to a temporary file was a fifth of
    /// the server's CPU under concurrent user creation at 1M users (`pwrite` from the savepoint's
    /// journal). A bulk import's savepoints span a whole batch (tens of thousands of pages), which
    /// should stay on disk rather than in anonymous memory: the import command turns this off.
    /// Applied after migrations, so that a migration's large sorts also use files.
    pub writer_temp_in_memory: bool,
}

/// The writer's page cache in the server: small, since anonymous memory is what an operator's
/// container limit counts, and the server's writes are small transactions.
pub const WRITER_CACHE_BYTES: i64 = 16 << 20;

/// The writer's page cache for a bulk import (`idvault import`, the benchmark seeder): a batch
/// of 20,000 users dirties tens of thousands of index pages, which should stay in memory until
/// the batch commits.
pub const BULK_WRITER_CACHE_BYTES: i64 = 1 << 30;

impl Default for SqliteOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        SqliteOptions {
            migrate: true,
            readers: (cores * 2).max(4),
            synchronous_full: false,
            mmap_bytes: MAX_MMAP_BYTES,
            writer_cache_bytes: WRITER_CACHE_BYTES,
            writer_temp_in_memory: true,
        }
    }
}

/// SQLite's compile-time ceiling on `mmap_size` in the bundled build (`SQLITE_MAX_MMAP_SIZE`,
/// 0x7fff0000): the default maps that much, so that a database up to ~2 GiB (1M users with
/// tokens is ~1.4-1.7 GiB) is read from memory with no `pread` per page. With 1 GiB mapped, a
/// random point read at 1M users found a third of its pages past the mapping, each a system call
/// into a 2 MiB page cache.
pub const MAX_MMAP_BYTES: i64 = 0x7fff_0000;

pub(crate) struct Inner {
    pub(crate) readers: ReaderPool,
    pub(crate) writer: Writer,
    _checkpointer: checkpoint::Checkpointer,
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    path: PathBuf,
}

pub(crate) fn storage_err(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

/// Settings every connection gets.
/// - QPSG ("query planner stability guarantee"): without it SQLite re-prepares a cached
///   statement on nearly every execution of the joined point reads (rusqlite clears bindings
///   when a statement returns to its cache), which measured at ~45 % of the server's CPU.
/// - mmap: page reads become memory reads instead of `pread` calls.
pub(crate) fn tune(conn: &Connection, opts: &SqliteOptions) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "mmap_size", opts.mmap_bytes)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Gives SQLite's query planner statistics (`sqlite_stat1`) for tables that have none or whose
/// size changed a lot since (`PRAGMA optimize`, sampling at most ~1,000 rows per index so that it
/// takes milliseconds even at a million users). Run when the store opens and when it closes
/// (after a bulk import, the seed, or a server's life of writes).
///
/// Why it matters: without statistics the planner guesses, and at 1M users a search by tenant and
/// role (`tenantIds` + `roleNames`) was planned so badly that it answered after more than 60 s;
/// with them, the same search took 0.25 s.
fn refresh_planner_stats(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
}

fn configure(conn: &Connection, opts: &SqliteOptions) -> rusqlite::Result<()> {
    tune(conn, opts)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if opts.synchronous_full { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A negative cache_size is in KiB.
    conn.pragma_update(None, "cache_size", -(opts.writer_cache_bytes / 1024).max(64))?;
    Ok(())
}

/// The audit trail's file for the database at `db`: `<stem>-audit.db` beside it
/// (`idvault.db` → `idvault-audit.db`). It is attached to every connection as `audit`.
///
/// Why a file of its own: in WAL mode every COMMIT to a database makes each of its readers drop
/// its cache and unmap its whole mapping at its next read. The audit writer commits about ten
/// times a second while token reads are served (each read is recorded); in the main file that
/// cost fell on every read. Commits to the attached file leave the main file's readers alone.
pub fn audit_path(db: &Path) -> PathBuf {
    let stem = db.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "idvault".into());
    db.with_file_name(format!("{stem}-audit.db"))
}

/// The audit file's schema. Its own version (`PRAGMA audit.user_version`) for later changes;
/// the main database's migrations never touch it except V13, which moved the records across.
///
/// Every index grows at its end: by time, by project and time, by project, action and time. None
/// is keyed by user first. Version 1 had a (project, user, time) index, and since users come in
/// any order each record landed on a random page of it: about one 4 KiB page per record written
/// to the WAL at COMMIT and again at the checkpoint, which was most of what an audit record cost
/// a token read (docs/benchmarks.md, Step 14). A search by user now reads the (project, time,
/// user) index over its time window and checks the user there, without visiting the rows of
/// other users: its cost grows with the records of the window, not with the user's.
const AUDIT_SCHEMA_VERSION: i64 = 2;
const AUDIT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit.audit_events (
    id              INTEGER PRIMARY KEY,
    project_id      TEXT NOT NULL,
    occurred_ms     INTEGER NOT NULL,
    action          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    actor_type      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    actor_name      TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    login_ids       TEXT NOT NULL,
    tenants         TEXT NOT NULL,
    remote_address  TEXT NOT NULL,
    device          TEXT NOT NULL,
    method          TEXT NOT NULL,
    geo             TEXT NOT NULL,
    data            TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit.audit_events_project_time_user ON audit_events(project_id, occurred_ms, user_id);
CREATE INDEX IF NOT EXISTS audit.audit_events_project_action ON audit_events(project_id, action, occurred_ms);
CREATE INDEX IF NOT EXISTS audit.audit_events_time ON audit_events(occurred_ms);
DROP INDEX IF EXISTS audit.audit_events_project_user;
DROP INDEX IF EXISTS audit.audit_events_project_time;
";

/// Page cache of each connection for the audit file, in KiB.
const AUDIT_CACHE_KIB: i64 = 2 * 1024;

/// Attaches the audit file of the database at `db` as `audit`. The writer (`create`) makes the
/// file (mode 0600), puts it in WAL mode with the main file's durability, and creates its schema;
/// readers attach it as it is, read-only like their main file.
fn attach_audit(conn: &Connection, db: &Path, opts: &SqliteOptions, create: bool) -> Result<()> {
    let path = audit_path(db);
    if create {
        owner_only_files(&path)?;
    }
    let name = path.to_str().ok_or_else(|| Error::Storage(format!("{} is not UTF-8", path.display())))?;
    conn.execute("ATTACH DATABASE ?1 AS audit", [name]).map_err(storage_err)?;
    if create {
        conn.pragma_update(Some("audit"), "journal_mode", "WAL").map_err(storage_err)?;
        conn.pragma_update(
            Some("audit"),
            "synchronous",
            if opts.synchronous_full { "FULL" } else { "NORMAL" },
        )
        .map_err(storage_err)?;
        let version: i64 =
            conn.pragma_query_value(Some("audit"), "user_version", |r| r.get(0)).map_err(storage_err)?;
        if version > AUDIT_SCHEMA_VERSION {
            return Err(Error::Storage(format!(
                "the audit file {} has schema version {version}, newer than this idvault knows ({AUDIT_SCHEMA_VERSION}); upgrade idvault",
                path.display()
            )));
        }
        conn.execute_batch(AUDIT_SCHEMA).map_err(storage_err)?;
        conn.pragma_update(Some("audit"), "user_version", AUDIT_SCHEMA_VERSION).map_err(storage_err)?;
    }
    // Every index of the audit file grows at its end (see AUDIT_SCHEMA), so a writer needs few
    // pages of it in its cache; readers search it rarely. No mapping for readers (every audit batch
    // would make them drop it); the writer maps it, as it does the main file.
    let mmap = if create { opts.mmap_bytes } else { 0 };
    conn.pragma_update(Some("audit"), "mmap_size", mmap).map_err(storage_err)?;
    conn.pragma_update(Some("audit"), "cache_size", -AUDIT_CACHE_KIB).map_err(storage_err)?;
    Ok(())
}

/// The schema version this build knows (the highest migration embedded).
pub fn known_schema_version() -> i32 {
    embedded::migrations::runner().get_migrations().iter().map(|m| m.version()).max().unwrap_or(0)
}

/// Applies pending migrations to the database at `path` and answers the versions applied.
pub fn migrate(path: &Path) -> Result<Vec<i32>> {
    owner_only_files(path)?;
    let mut conn = Connection::open(path).map_err(storage_err)?;
    let opts = SqliteOptions::default();
    configure(&conn, &opts).map_err(storage_err)?;
    attach_audit(&conn, path, &opts, true)?;
    run_migrations(&mut conn)
}

/// The database holds sealed secrets, user data and key digests: its files are owner-only
/// (0600) whatever the umask. The file is created with that mode before SQLite opens it, and an
/// existing file (an older install, or one copied in) is narrowed to it. SQLite gives the `-wal`
/// and `-shm` files the mode of the main file; they are narrowed too, in case they predate it.
fn owner_only_files(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |e: std::io::Error| Error::Storage(format!("database file {}: {e}", path.display()));
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let mut shm = path.as_os_str().to_owned();
        shm.push("-shm");
        for file in [path.to_owned(), PathBuf::from(wal), PathBuf::from(shm)] {
            match std::fs::metadata(&file) {
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
    }
    Ok(())
}

fn run_migrations(conn: &mut Connection) -> Result<Vec<i32>> {
    let report = embedded::migrations::runner()
        .run(conn)
        .map_err(|e| Error::Storage(format!("migration failed: {e}")))?;
    Ok(report.applied_migrations().iter().map(|m| m.version()).collect())
}

fn current_schema_version(conn: &Connection) -> Result<i32> {
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type='table' AND name='refinery_schema_history')",
            [],
            |r| r.get(0),
        )
        .map_err(storage_err)?;
    if !exists {
        return Ok(0);
    }
    conn.query_row("SELECT COALESCE(MAX(version), 0) FROM refinery_schema_history", [], |r| r.get(0))
        .map_err(storage_err)
}

impl SqliteStore {
    /// The reader pool's use now, for metrics.
    pub fn pool_stats(&self) -> idvault_core::store::PoolStats {
        self.inner.readers.stats()
    }

    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path, opts: &SqliteOptions) -> Result<Self> {
        owner_only_files(path)?;
        let mut writer = Connection::open(path).map_err(storage_err)?;
        configure(&writer, opts).map_err(storage_err)?;
        attach_audit(&writer, path, opts, true)?;
        let known = known_schema_version();
        let current = current_schema_version(&writer)?;
        if current > known {
            return Err(Error::Storage(format!(
                "database schema version {current} is newer than this idvault knows ({known}); upgrade idvault"
            )));
        }
        if opts.migrate {
            let applied = run_migrations(&mut writer)?;
            if !applied.is_empty() {
                tracing::info!(?applied, "applied database migrations");
            }
        } else if current < known {
            return Err(Error::Storage(format!(
                "database schema version {current} is behind ({known}); run `idvault migrate`"
            )));
        }
        // Before the readers open, so that they load the statistics with the schema.
        refresh_planner_stats(&writer).map_err(storage_err)?;
        if opts.writer_temp_in_memory {
            writer.pragma_update(None, "temp_store", "MEMORY").map_err(storage_err)?;
        }
        let readers = ReaderPool::open(path, opts.readers.max(1), |c| {
            tune(c, opts).map_err(storage_err)?;
            attach_audit(c, path, opts, false)
        })?;
        // Checkpoints run on a thread of their own (checkpoint.rs), never inside the writer's
        // COMMIT.
        writer.pragma_update(None, "wal_autocheckpoint", 0).map_err(storage_err)?;
        let checkpointer = checkpoint::Checkpointer::start(path)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                readers,
                writer: Writer::start(writer, Box::new(crate::users::flush_pending_text_index))?,
                _checkpointer: checkpointer,
            }),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a pooled read connection, in place. Only for short indexed reads.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.inner.readers.with(f)
    }

    /// Runs `f` on a pooled read connection on the blocking pool, for reads that may be long.
    pub(crate) async fn read_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.readers.with(f))
            .await
            .map_err(|e| Error::Internal(format!("read task failed: {e}")))?
    }

    /// Runs `f` on the single writer connection, inside a savepoint of a transaction it may
    /// share with other writes (so `f` nests its own atomic steps with `savepoint()`, never
    /// `transaction()`). Answers once that transaction is committed.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.inner.writer.grouped(f).await
    }

    /// Checkpoints the WAL into the main file; called on graceful shutdown so the data directory
    /// is a single self-contained file afterwards. A checkpoint cannot run inside a transaction,
    /// so it runs alone, after the writes queued before it.
    pub async fn close(&self) -> Result<()> {
        self.inner
            .writer
            .alone(|conn| {
                refresh_planner_stats(conn).map_err(storage_err)?;
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(storage_err)
            })
            .await
    }
}

#[async_trait]
impl HealthCheck for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(storage_err))
    }
}

/// One SQLite file is served by one process, whose vault already serializes refreshes: nothing
/// to add here.
#[async_trait]
impl idvault_core::store::RefreshLock for SqliteStore {
    async fn refresh_lock_for(
        &self,
        _project: &idvault_core::ids::ProjectId,
        _key: &idvault_core::store::RefreshKey,
    ) -> Result<idvault_core::store::RefreshGuard> {
        Ok(Box::new(()))
    }
}

/// What only the crate itself can see: how its own statements behave on a tuned connection. The
/// store's behaviour is the contract suite's (tests/contract.rs).
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    /// The group flush of the free-text index must walk the pending rows, never all users: a
    /// plan that scans `users` costs ~250 ms per group at a million users.
    #[test]
    fn the_text_index_flush_never_scans_the_users_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
        let conn = Connection::open(&path).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", crate::users::FLUSH_INSERT))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().any(|step| step.starts_with("SCAN p")), "{plan:?}");
        assert!(!plan.iter().any(|step| step.starts_with("SCAN u")), "{plan:?}");
    }

    use idvault_core::ids::{ProjectId, UserId};
    use idvault_core::project::Project;
    use idvault_core::store::{ProjectStore, UserStore};
    use idvault_core::user::NewUser;

    use super::*;

    /// A store in a temporary directory (kept alive by the returned guard) with one project.
    async fn store_with_project() -> (tempfile::TempDir, SqliteStore, ProjectId) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), &SqliteOptions::default()).unwrap();
        let project = ProjectId::generate();
        store
            .create_project(&Project { id: project.clone(), name: "t".into(), created_ms: 1 })
            .await
            .unwrap();
        (dir, store, project)
    }

    /// Audit records go to their own file: writing a batch leaves the main database untouched,
    /// so its readers keep their cache and mapping (`PRAGMA data_version` changes on a reader when
    /// another connection commits to that database), and a search still finds the records.
    #[tokio::test(flavor = "multi_thread")]
    async fn audit_records_are_written_without_touching_the_main_database() {
        use idvault_core::audit::{AuditQuery, AuditRecord};
        use idvault_core::store::AuditStore;
        let (dir, store, project) = store_with_project().await;
        assert!(dir.path().join("t-audit.db").is_file());
        let version =
            |c: &Connection| c.query_row("PRAGMA main.data_version", [], |r| r.get::<_, i64>(0)).unwrap();
        let reader = Connection::open(store.path()).unwrap();
        reader.query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0)).unwrap();
        let before = version(&reader);
        let mut record = AuditRecord::new(&project, "ProviderTokenRead");
        record.occurred_ms = 5_000;
        store.insert_audit_records(&vec![record; 3]).await.unwrap();
        assert_eq!(version(&reader), before, "an audit batch committed to the main database");
        let query = AuditQuery { from_ms: 0, to_ms: 10_000, limit: 10, ..Default::default() };
        let (found, total) = store.search_audit(&project, &query).await.unwrap();
        assert_eq!((found.len(), total), (3, 3));
        // The control: a write to the main database does change it.
        let user = NewUser { login_id: "v@example.com".into(), ..Default::default() }
            .into_user(UserId::generate(), 1_000)
            .unwrap();
        store.create_users(&project, &[user]).await.unwrap();
        assert_ne!(version(&reader), before);
    }

    /// The writer never checkpoints inside a COMMIT; the checkpoint thread copies the WAL back
    /// into the database file within a few intervals.
    #[tokio::test(flavor = "multi_thread")]
    async fn checkpoints_run_on_their_own_thread_not_in_the_writer() {
        let (dir, store, project) = store_with_project().await;
        let auto: i64 = store
            .inner
            .writer
            .alone(|c| c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).map_err(storage_err))
            .await
            .unwrap();
        assert_eq!(auto, 0, "the writer's automatic checkpoints are off");
        let file_size = || std::fs::metadata(dir.path().join("t.db")).unwrap().len();
        let before = file_size();
        let users = (0..2_000)
            .map(|i| {
                NewUser { login_id: format!("cp{i}@example.com"), ..Default::default() }
                    .into_user(UserId::generate(), 1_000)
                    .unwrap()
            })
            .collect::<Vec<_>>();
        store.create_users(&project, &users).await.unwrap();
        let deadline = std::time::Instant::now() + 10 * checkpoint::INTERVAL;
        while file_size() <= before && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(file_size() > before, "the WAL was copied back into the database file");
    }

    /// A database from before version 13 keeps its audit records: opening it moves them into the
    /// audit file and drops the old table.
    #[tokio::test(flavor = "multi_thread")]
    async fn version_13_moves_existing_audit_records_into_their_file() {
        use idvault_core::audit::AuditQuery;
        use idvault_core::store::AuditStore;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let project = ProjectId::generate();
        {
            let mut conn = Connection::open(&path).unwrap();
            embedded::migrations::runner().set_target(refinery::Target::Version(12)).run(&mut conn).unwrap();
            for (i, action) in ["UserCreated", "ProviderTokenRead"].iter().enumerate() {
                conn.execute(
                    "INSERT INTO audit_events (project_id, occurred_ms, action, kind, actor_type, actor_id, \
                     actor_name, user_id, login_ids, tenants, remote_address, device, method, geo, data) \
                     VALUES (?1, ?2, ?3, 'info', '', '', '', 'U1', '[\"a@b.c\"]', '[]', '192.0.2.1', '', '', '', '{}')",
                    rusqlite::params![project.to_string(), 1_000 + i as i64, action],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path, &SqliteOptions::default()).unwrap();
        let query =
            AuditQuery { from_ms: 0, to_ms: 10_000, limit: 10, oldest_first: true, ..Default::default() };
        let (found, total) = store.search_audit(&project, &query).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(
            found.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
            ["UserCreated", "ProviderTokenRead"]
        );
        assert_eq!(found[0].login_ids, ["a@b.c"]);
        let conn = Connection::open(&path).unwrap();
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_events'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "the main database no longer has an audit table");
    }

    /// The QPSG setting of [`tune`]: the hot point reads stay prepared across executions.
    #[tokio::test(flavor = "multi_thread")]
    async fn hot_point_reads_are_not_re_prepared() {
        let (_dir, store, project) = store_with_project().await;
        let user = NewUser { login_id: "hot@example.com".into(), ..Default::default() }
            .into_user(UserId::generate(), 1_000)
            .unwrap();
        store.create_users(&project, &[user]).await.unwrap();
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        tune(&conn, &SqliteOptions::default()).unwrap();
        for sql in [crate::users::USER_BY_LOGIN_ID, crate::tokens::TOKEN_BY_LOGIN] {
            let mut total = 0;
            for _ in 0..50 {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                let pid = project.as_str();
                let params: Vec<&dyn rusqlite::ToSql> = if sql.contains("?3") {
                    vec![&pid, &"hot@example.com", &"google"]
                } else {
                    vec![&pid, &"hot@example.com"]
                };
                let mut rows = stmt.query(params.as_slice()).unwrap();
                while rows.next().unwrap().is_some() {}
                drop(rows);
                total += stmt.get_status(rusqlite::StatementStatus::RePrepare);
            }
            assert_eq!(total, 0, "{sql}");
        }
    }

    /// The free-text index after creates, renames and deletes (V12: maintained at the end of each
    /// write group): nothing left pending, exactly one entry per user (a deleted user's entry is
    /// gone, not only hidden by the join with `users`), and FTS5's own check passes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_text_index_holds_one_entry_per_user_after_writes() {
        let (_dir, store, project) = store_with_project().await;
        let users: Vec<_> = (0..40)
            .map(|i| {
                NewUser { login_id: format!("fts{i}@example.com"), ..Default::default() }
                    .into_user(UserId::generate(), 1_000)
                    .unwrap()
            })
            .collect();
        store.create_users(&project, &users[..20]).await.unwrap();
        let tasks: Vec<_> = users[20..]
            .iter()
            .cloned()
            .map(|u| {
                let (store, project) = (store.clone(), project.clone());
                tokio::spawn(async move { store.create_users(&project, &[u]).await })
            })
            .chain(users[..10].iter().map(|u| {
                let (store, project, id) = (store.clone(), project.clone(), u.user_id.clone());
                tokio::spawn(async move { store.delete_user(&project, &id).await.map(drop) })
            }))
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT COUNT(*) FROM users_fts_pending"), 0);
        assert_eq!(count("SELECT COUNT(*) FROM users"), 30);
        assert_eq!(count("SELECT COUNT(*) FROM users_fts_docsize"), 30);
        assert_eq!(count("SELECT COUNT(*) FROM users_fts_docsize d LEFT JOIN users u ON u.pk = d.id WHERE u.pk IS NULL"), 0);
        conn.execute("INSERT INTO users_fts (users_fts) VALUES ('integrity-check')", []).unwrap();
    }

    /// The server's writer keeps temporary files (savepoint journals) in memory; a bulk
    /// import's keeps the default (files).
    #[tokio::test(flavor = "multi_thread")]
    async fn the_writer_keeps_temporary_files_in_memory_unless_told_not_to() {
        let dir = tempfile::tempdir().unwrap();
        let temp_store = |opts: SqliteOptions, file: &str| {
            let store = SqliteStore::open(&dir.path().join(file), &opts).unwrap();
            async move {
                store
                    .inner
                    .writer
                    .alone(|c| {
                        c.query_row("PRAGMA temp_store", [], |r| r.get::<_, i64>(0)).map_err(storage_err)
                    })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(temp_store(SqliteOptions::default(), "server.db").await, 2, "MEMORY");
        let bulk = SqliteOptions { writer_temp_in_memory: false, ..SqliteOptions::default() };
        assert_eq!(temp_store(bulk, "import.db").await, 0, "DEFAULT");
    }

    /// Writes from many callers all land, each is visible to a new connection as soon as it is
    /// answered, and `close` still leaves the data in the main file (the WAL checkpointed).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_land_and_close_checkpoints() {
        let (dir, store, project) = store_with_project().await;
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (store, project) = (store.clone(), project.clone());
                tokio::spawn(async move {
                    let login = format!("u{i}@example.com");
                    let user = NewUser { login_id: login.clone(), ..Default::default() }
                        .into_user(UserId::generate(), 1_000)
                        .unwrap();
                    store.create_users(&project, &[user]).await.unwrap();
                    let fresh = rusqlite::Connection::open(store.path()).unwrap();
                    let found: i64 = fresh
                        .query_row("SELECT COUNT(*) FROM user_login_ids WHERE login_id = ?1", [&login], |r| {
                            r.get(0)
                        })
                        .unwrap();
                    assert_eq!(found, 1, "{login} not visible after its write was answered");
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        store.close().await.unwrap();
        let wal = dir.path().join("t.db-wal");
        assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
        let fresh = rusqlite::Connection::open(store.path()).unwrap();
        let users: i64 = fresh.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0)).unwrap();
        assert_eq!(users, 200);
    }
}
