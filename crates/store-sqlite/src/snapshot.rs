//! Online backups: a consistent copy of a live database file, taken while a server (another
//! process) keeps writing to it, and the checks a restore makes on such a copy.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use idvault_core::error::{Error, Result};
use idvault_core::store::WrappedDataKey;

use crate::{current_schema_version, keys, known_schema_version, storage_err};

/// What a snapshot holds, for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub bytes: u64,
    pub schema_version: i32,
    pub projects: u64,
    pub users: u64,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Storage(format!("{}: {e}", path.display()))
}

/// Creates an empty file readable by the owner only (it will hold sealed secrets, user data and
/// key digests), refusing to reuse an existing one.
fn create_owner_only(path: &Path) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop).map_err(io_err(path))
}

fn summarize(conn: &Connection, path: &Path) -> Result<SnapshotSummary> {
    let count = |table: &str| -> Result<u64> {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(storage_err)
    };
    Ok(SnapshotSummary {
        bytes: fs::metadata(path).map_err(io_err(path))?.len(),
        schema_version: current_schema_version(conn)?,
        projects: count("projects")?,
        users: count("users")?,
    })
}

fn quick_check(conn: &Connection) -> Result<()> {
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(storage_err)?;
    if verdict != "ok" {
        return Err(Error::Storage(format!("the snapshot failed SQLite's integrity check: {verdict}")));
    }
    Ok(())
}

/// Writes a consistent snapshot of the database at `db` to the new file `out` (mode 0600;
/// refused if `out` exists). Safe while a server has the database open and writes: `VACUUM
/// INTO` reads the whole database in one read transaction, which in WAL mode neither blocks the
/// writer nor sees a write committed after it began, so the snapshot holds exactly the writes
/// acknowledged before that moment. The copy is written beside `out` and renamed into place
/// only once complete, integrity-checked and on disk; it is a single self-contained file
/// (rollback journal, no `-wal` beside it).
pub fn write_snapshot(db: &Path, out: &Path) -> Result<SnapshotSummary> {
    if !db.is_file() {
        return Err(Error::Storage(format!("no database at {}", db.display())));
    }
    if out.exists() {
        return Err(Error::Storage(format!("{} exists; not overwriting it", out.display())));
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let result = write_partial(db, &partial, out);
    let _ = fs::remove_file(&partial);
    result
}

fn write_partial(db: &Path, partial: &Path, out: &Path) -> Result<SnapshotSummary> {
    create_owner_only(partial)?;
    {
        // Read-write without create: a WAL database's readers take part in its shared-memory
        // index, and a mistyped path must not become an empty database.
        let source = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(storage_err)?;
        source.busy_timeout(std::time::Duration::from_secs(10)).map_err(storage_err)?;
        let target = partial.to_str().ok_or_else(|| Error::Storage("the output path is not UTF-8".into()))?;
        // VACUUM INTO accepts an existing file only when it is empty: the 0600 one just made.
        source.execute("VACUUM INTO ?1", [target]).map_err(storage_err)?;
    }
    let summary = {
        let copy =
            Connection::open_with_flags(partial, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(storage_err)?;
        copy.pragma_update(None, "journal_mode", "DELETE").map_err(storage_err)?;
        quick_check(&copy)?;
        summarize(&copy, partial)?
    };
    fs::File::open(partial).and_then(|f| f.sync_all()).map_err(io_err(partial))?;
    // A hard link fails if `out` appeared meanwhile: never overwrite a file.
    fs::hard_link(partial, out).map_err(io_err(out))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(summary)
}

/// Checks a snapshot before it is restored: a sound SQLite file, an idvault schema this build can
/// open, and its wrapped data keys (for the caller to check the master keyring against).
pub fn inspect_snapshot(path: &Path) -> Result<(SnapshotSummary, Vec<WrappedDataKey>)> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(storage_err)?;
    quick_check(&conn)?;
    let summary = summarize(&conn, path)
        .map_err(|e| Error::Storage(format!("{} is not an idvault database: {e}", path.display())))?;
    if summary.schema_version == 0 {
        return Err(Error::Storage(format!("{} is not an idvault database (no schema)", path.display())));
    }
    if summary.schema_version > known_schema_version() {
        return Err(Error::Storage(format!(
            "the snapshot's schema version {} is newer than this idvault knows ({}); upgrade idvault",
            summary.schema_version,
            known_schema_version()
        )));
    }
    Ok((summary, keys::all_data_keys(&conn)?))
}

/// Copies a checked snapshot to `db` (which must not exist), mode 0600, complete and on disk
/// before it takes the database's name.
pub fn restore_snapshot(snapshot: &Path, db: &Path) -> Result<()> {
    let mut partial = db.as_os_str().to_owned();
    partial.push(format!(".restoring-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let result = (|| {
        create_owner_only(&partial)?;
        let mut from = fs::File::open(snapshot).map_err(io_err(snapshot))?;
        let mut to = fs::OpenOptions::new().write(true).open(&partial).map_err(io_err(&partial))?;
        std::io::copy(&mut from, &mut to).map_err(io_err(&partial))?;
        to.sync_all().map_err(io_err(&partial))?;
        fs::hard_link(&partial, db).map_err(io_err(db))?;
        if let Some(dir) = db.parent() {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    let _ = fs::remove_file(&partial);
    result
}
