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
        database_url: Option<&str>,
        migrate: bool,
        server: bool,
    ) -> anyhow::Result<Backend> {
        ensure_data_dir(data_dir)?;
        match database_url.filter(|u| !u.is_empty()) {
            Some(url) if is_postgres(url) => {
                let opts = PgOptions { migrate, ..PgOptions::default() };
                let store = PgStore::connect(url, &opts).await.context("connecting to PostgreSQL")?;
                Ok(Backend::Postgres(store))
            }
            Some(_) => anyhow::bail!("--database-url must be a postgres:// URL (SQLite lives in --data-dir)"),
            None => {
                let mut opts = SqliteOptions { migrate, ..SqliteOptions::default() };
                if !server {
                    opts.readers = 1;
                }
                let store = SqliteStore::open(&db_path(data_dir), &opts).context("opening the database")?;
                Ok(Backend::Sqlite(store))
            }
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
