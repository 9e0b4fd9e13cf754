//! Advisory locks: the cross-replica refresh lock, the per-project directory lock, the migration
//! lock.
//!
//! The refresh lock is a *session* advisory lock (`pg_try_advisory_lock`) taken on a connection
//! checked out from the lock pool and kept, with the connection, in the returned guard. It is
//! held by the database session, not by a row or a transaction, so:
//! - dropping the guard releases it: a task runs `pg_advisory_unlock` and then returns the
//!   connection to the pool, or, if that fails, discards the connection, which ends the session
//!   and with it the lock;
//! - a replica that crashes or is killed cannot keep it: when its process dies the kernel closes
//!   its TCP connections, the server ends those sessions, and every advisory lock they held is
//!   released. (A replica that vanishes without a FIN, e.g. behind a dead network path, is found
//!   by TCP keepalives, which `connect` turns on, or by the server's `tcp_keepalives_*`.)
//!
//! Waiting is bounded: the lock is polled with `pg_try_advisory_lock` and a short sleep, never
//! with a blocking `pg_advisory_lock` that would leave the server waiting on a connection whose
//! caller may have given up.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::Object;
use sha2::{Digest, Sha256};

use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::store::{RefreshGuard, RefreshKey, RefreshLock};

use crate::{pg_err, PgStore};

/// How long `refresh_lock` waits for another holder before giving up.
pub(crate) const REFRESH_LOCK_WAIT: Duration = Duration::from_secs(30);

/// A stable 64-bit lock key: the first 8 bytes (big-endian) of SHA-256 of the parts joined by
/// `|`. It must never change between releases, or replicas running two versions would not
/// exclude each other.
pub(crate) fn advisory_key(parts: &[&str]) -> i64 {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b"|");
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The key of the per-project directory lock (see `directory.rs`).
pub(crate) fn directory_key(project: &ProjectId) -> i64 {
    advisory_key(&["directory", project.as_str()])
}

/// Polls `pg_try_advisory_lock(key)` on `client` until it succeeds or `wait` has passed.
pub(crate) async fn lock_session(client: &tokio_postgres::Client, key: i64, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(10);
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(pg_err)?;
        if got {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Internal(format!(
                "timed out after {} s waiting for a database lock",
                wait.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// A connection that holds (or may hold) a session advisory lock.
struct AdvisoryGuard {
    conn: Option<Object>,
    key: i64,
    /// False only while the lock is known not to be held (so the connection can go straight
    /// back to the pool). True from the moment a lock attempt is sent: if that attempt is
    /// abandoned midway, whether the server granted it is unknown, and Drop must clean up.
    maybe_held: bool,
}

impl Drop for AdvisoryGuard {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if !self.maybe_held {
            return; // back to the pool
        }
        let key = self.key;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let released = conn
                        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
                        .await
                        .and_then(|r| r.try_get::<_, bool>(0));
                    if !matches!(released, Ok(true)) {
                        if let Err(e) = &released {
                            tracing::warn!(error = %e, "releasing a refresh lock failed; closing its connection");
                        }
                        // Closing the session releases whatever it holds.
                        drop(Object::take(conn));
                    }
                    // Otherwise `conn` drops here and goes back to the pool, lock-free.
                });
            }
            // No runtime to run the unlock on: end the session instead.
            Err(_) => drop(Object::take(conn)),
        }
    }
}

impl PgStore {
    async fn advisory_guard(&self, key: i64, wait: Duration) -> Result<AdvisoryGuard> {
        let conn = self.inner.lock_pool.get().await.map_err(|e| self.pool_err(e))?;
        // From here on the guard owns the connection, so that a caller dropping this future
        // midway cannot return a locked connection to the pool.
        let mut guard = AdvisoryGuard { conn: Some(conn), key, maybe_held: false };
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(10);
        loop {
            let Some(conn) = guard.conn.as_ref() else {
                return Err(Error::Internal("refresh lock connection vanished".into()));
            };
            guard.maybe_held = true;
            let got: bool = conn
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(pg_err)?;
            if got {
                return Ok(guard);
            }
            guard.maybe_held = false;
            if Instant::now() >= deadline {
                return Err(Error::Internal(format!(
                    "timed out after {} s waiting for the token refresh lock",
                    wait.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

#[async_trait]
impl RefreshLock for PgStore {
    async fn refresh_lock_for(&self, project: &ProjectId, key: &RefreshKey) -> Result<RefreshGuard> {
        let key = advisory_key(&key.lock_parts(project));
        let guard = self.advisory_guard(key, REFRESH_LOCK_WAIT).await?;
        Ok(Box::new(guard))
    }
}
