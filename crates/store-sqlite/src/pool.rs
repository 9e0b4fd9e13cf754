//! A fixed set of read connections used in place. Picking one is a `try_lock` sweep starting at a
//! rotating index; only when every connection is busy does a caller wait on one.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

use idvault_core::error::{Error, Result};

use crate::storage_err;

pub(crate) struct ReaderPool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    /// Reads that found every connection busy and waited (counted on that slow path only).
    waits: AtomicU64,
}

impl ReaderPool {
    pub(crate) fn open(path: &Path, count: usize, tune: impl Fn(&Connection) -> Result<()>) -> Result<Self> {
        let flags =
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let mut conns = Vec::with_capacity(count);
        for _ in 0..count {
            let conn = Connection::open_with_flags(path, flags).map_err(storage_err)?;
            // journal_mode cannot be set on a read-only connection; the writer already set WAL.
            conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(storage_err)?;
            tune(&conn)?;
            conns.push(Mutex::new(conn));
        }
        if conns.is_empty() {
            return Err(Error::Internal("reader pool needs at least one connection".into()));
        }
        Ok(ReaderPool { conns, next: AtomicUsize::new(0), waits: AtomicU64::new(0) })
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(conn) = self.conns[(start + i) % n].try_lock() {
                return f(&conn);
            }
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        let conn = self.conns[start].lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }

    /// Connections in use now (those that cannot be taken), and the waits so far.
    pub(crate) fn stats(&self) -> idvault_core::store::PoolStats {
        let in_use = self.conns.iter().filter(|c| c.try_lock().is_err()).count();
        idvault_core::store::PoolStats {
            pool: "sqlite_readers",
            max: self.conns.len(),
            in_use,
            waiting: 0,
            waits_total: self.waits.load(Ordering::Relaxed),
        }
    }
}
