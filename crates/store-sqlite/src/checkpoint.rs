//! WAL checkpoints on a thread of their own, instead of by the writer.
//!
//! SQLite's default has the connection that commits copy the WAL back into the database file
//! once the WAL passes 1,000 pages, inside that COMMIT. Here that connection is the single
//! writer, so every write waiting behind it waited for the copy and its `fsync`. Measured at 1M
//! users: checkpoints were 15.6 % of the server's CPU on user creates, and 10-12 % on token reads
//! (whose audit records, each on a random page of the by-user index, fill the audit file's WAL
//! a thousand pages at a time).
//!
//! The writer's automatic checkpoints are turned off and this thread runs a PASSIVE checkpoint of
//! each database every [`INTERVAL`]: it copies what no reader still needs, never blocks the writer
//! or the readers, and a page rewritten by several commits in between is copied once. Durability
//! is unchanged: a committed transaction is in the WAL, whether or not it has been copied back.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use idvault_core::error::Result;

use crate::storage_err;

/// Time between two checkpoints.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

/// The running checkpointer; dropping it stops the thread (after the checkpoint in progress).
pub(crate) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `db` and its attached audit file.
    pub(crate) fn start(db: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(storage_err)?;
        crate::attach_audit(&conn, db, &crate::SqliteOptions::default(), false)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("idvault-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| {
                idvault_core::error::Error::Internal(format!("starting the checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer { _stop: stop })
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    // Until the store is dropped (the sender goes away).
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        for schema in ["main", "audit"] {
            // PASSIVE never waits: a checkpoint that cannot finish now (a reader on an old
            // snapshot) finishes at a later one.
            if let Err(e) =
                conn.query_row(&format!("PRAGMA {schema}.wal_checkpoint(PASSIVE)"), [], |_| Ok(()))
            {
                tracing::debug!(schema, error = %e, "checkpoint failed; retried at the next interval");
            }
        }
    }
}
