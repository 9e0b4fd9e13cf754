//! Which storage backend a command works on: embedded SQLite in the data directory (the
//! default), or PostgreSQL when `--database-url postgres://…` is given (several replicas may
//! share it).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use idvault_core::store::{SharedStore, TransferStore};
use idvault_store_postgres::{PgOptions, PgStore};
use idvault_store_sqlite::{SqliteOptions, SqliteStore};

use crate::startup::{db_path, ensure_data_dir};

/// PostgreSQL tuning from the command line; None keeps the store's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgTuning {
    pub pool_size: Option<usize>,
    pub connect_timeout: Option<std::time::Duration>,
    pub statement_timeout: Option<std::time::Duration>,
    /// SQLite: MiB of the database file memory-mapped for reads (None: SQLite's ceiling).
    pub sqlite_mmap_mib: Option<u64>,
}

/// Where the data lives, from the command line: `--database-url` (PostgreSQL) and its tuning;
/// without a URL, SQLite in the data directory.
#[derive(Debug, Clone, Default)]
pub struct DbTarget {
    pub url: Option<String>,
    pub tuning: PgTuning,
}

impl DbTarget {
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref().filter(|u| !u.is_empty())
    }
}

#[derive(Clone)]
pub enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// True when the URL names PostgreSQL.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Backend {
    /// Opens the backend, applying migrations when `migrate`. `server` sizes SQLite's read pool
    /// for serving (one-shot commands need one reader).
    pub async fn open(
        data_dir: &Path,
        db: &DbTarget,
        migrate: bool,
        server: bool,
    ) -> anyhow::Result<Backend> {
        ensure_data_dir(data_dir)?;
        match db.url() {
            Some(url) if is_postgres(url) => {
                let t = db.tuning;
                let defaults = PgOptions::default();
                let opts = PgOptions {
                    migrate,
                    pool_size: t.pool_size.unwrap_or(defaults.pool_size).max(1),
                    connect_timeout: t.connect_timeout.unwrap_or(defaults.connect_timeout),
                    statement_timeout: match t.statement_timeout {
                        Some(d) if d.is_zero() => None,
                        Some(d) => Some(d),
                        None => defaults.statement_timeout,
                    },
                };
                let store = PgStore::connect(url, &opts).await.context("connecting to PostgreSQL")?;
                Ok(Backend::Postgres(store))
            }
            Some(_) => anyhow::bail!("--database-url must be a postgres:// URL (SQLite lives in --data-dir)"),
            None => {
                let mut opts = SqliteOptions { migrate, ..SqliteOptions::default() };
                if let Some(mib) = db.tuning.sqlite_mmap_mib {
                    opts.mmap_bytes = i64::try_from(mib.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
                }
                if !server {
                    // One-shot commands: one reader, and the bulk import's large writer cache
                    // (allocated only as pages are touched, freed when the command exits); its
                    // batch-sized savepoint journals stay in temporary files.
                    opts.readers = 1;
                    opts.writer_cache_bytes = idvault_store_sqlite::BULK_WRITER_CACHE_BYTES;
                    opts.writer_temp_in_memory = false;
                }
                let store = SqliteStore::open(&db_path(data_dir), &opts).context("opening the database")?;
                Ok(Backend::Sqlite(store))
            }
        }
    }

    /// `sqlite` or `postgres`, as the ready file names the backend.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub fn store(&self) -> SharedStore {
        match self {
            Backend::Sqlite(s) => Arc::new(s.clone()),
            Backend::Postgres(s) => Arc::new(s.clone()),
        }
    }

    pub fn transfer(&self) -> &dyn TransferStore {
        match self {
            Backend::Sqlite(s) => s,
            Backend::Postgres(s) => s,
        }
    }

    pub async fn close(&self) -> anyhow::Result<()> {
        match self {
            Backend::Sqlite(s) => s.close().await.context("closing the database"),
            Backend::Postgres(s) => s.close().await.context("closing the database"),
        }
    }
}
