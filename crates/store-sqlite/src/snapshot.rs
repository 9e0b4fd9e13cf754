//! Online backups: a consistent copy of a live database file, taken while a server (another
//! process) keeps writing to it, and the checks a restore makes on such a copy.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use idvault_core::error::{Error, Result};
use idvault_core::store::WrappedDataKey;

use crate::{audit_path, current_schema_version, keys, known_schema_version, storage_err};

/// What a snapshot holds, for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub bytes: u64,
    pub schema_version: i32,
    pub projects: u64,
    pub users: u64,
    /// Records in the snapshot's audit file (`audit_path` of the snapshot), when it has one.
    pub audit_records: Option<u64>,
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
        audit_records: None,
    })
}

/// Checks an audit file (a snapshot's, or one being written) and counts its records.
fn audit_records(path: &Path) -> Result<u64> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(storage_err)?;
    quick_check(&conn)?;
    conn.query_row("SELECT COUNT(*) FROM audit_events", [], |r| r.get::<_, i64>(0))
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(|e| Error::Storage(format!("{} is not an idvault audit file: {e}", path.display())))
}

/// `path` with `suffix` appended to its name.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Makes `partial` (complete, checked, on disk) appear as `out`, never overwriting a file.
fn publish(partial: &Path, out: &Path) -> Result<()> {
    fs::File::open(partial).and_then(|f| f.sync_all()).map_err(io_err(partial))?;
    // A hard link fails if `out` appeared meanwhile: never overwrite a file.
    fs::hard_link(partial, out).map_err(io_err(out))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn quick_check(conn: &Connection) -> Result<()> {
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(storage_err)?;
    if verdict != "ok" {
        return Err(Error::Storage(format!("the snapshot failed SQLite's integrity check: {verdict}")));
    }
    Ok(())
}

/// Writes a consistent snapshot of the database at `db` to the new file `out` (mode 0600;
/// refused if `out` exists), and of its audit file to `audit_path(out)`. Safe while a server has
/// the database open and writes: `VACUUM INTO` reads the whole database in one read transaction,
/// which in WAL mode neither blocks the writer nor sees a write committed after it began, so the
/// snapshot holds exactly the writes acknowledged before that moment (the audit file is copied
/// just after, in its own read transaction). Each copy is written beside its name and renamed
/// into place only once complete, integrity-checked and on disk; each is a single
/// self-contained file (rollback journal, no `-wal` beside it).
pub fn write_snapshot(db: &Path, out: &Path) -> Result<SnapshotSummary> {
    if !db.is_file() {
        return Err(Error::Storage(format!("no database at {}", db.display())));
    }
    let audit_out = audit_path(out);
    for existing in [out, audit_out.as_path()] {
        if existing.exists() {
            return Err(Error::Storage(format!("{} exists; not overwriting it", existing.display())));
        }
    }
    let tag = format!(".partial-{}", std::process::id());
    let (partial, audit_partial) = (suffixed(out, &tag), suffixed(&audit_out, &tag));
    let result = write_partial(db, &partial, &audit_partial).and_then(|mut summary| {
        if summary.audit_records.is_some() {
            publish(&audit_partial, &audit_out)?;
        }
        publish(&partial, out)?;
        summary.bytes = fs::metadata(out).map_err(io_err(out))?.len();
        Ok(summary)
    });
    let _ = fs::remove_file(&partial);
    let _ = fs::remove_file(&audit_partial);
    result
}

fn write_partial(db: &Path, partial: &Path, audit_partial: &Path) -> Result<SnapshotSummary> {
    create_owner_only(partial)?;
    let audit_source = audit_path(db);
    let has_audit = audit_source.is_file();
    {
        // Read-write without create: a WAL database's readers take part in its shared-memory
        // index, and a mistyped path must not become an empty database.
        let source = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(storage_err)?;
        source.busy_timeout(std::time::Duration::from_secs(10)).map_err(storage_err)?;
        let utf8 = |p: &Path| {
            p.to_str().map(str::to_owned).ok_or_else(|| Error::Storage("the output path is not UTF-8".into()))
        };
        // VACUUM INTO accepts an existing file only when it is empty: the 0600 one just made.
        source.execute("VACUUM main INTO ?1", [utf8(partial)?]).map_err(storage_err)?;
        if has_audit {
            create_owner_only(audit_partial)?;
            source.execute("ATTACH DATABASE ?1 AS audit", [utf8(&audit_source)?]).map_err(storage_err)?;
            source.execute("VACUUM audit INTO ?1", [utf8(audit_partial)?]).map_err(storage_err)?;
        }
    }
    let mut summary = {
        let copy =
            Connection::open_with_flags(partial, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(storage_err)?;
        copy.pragma_update(None, "journal_mode", "DELETE").map_err(storage_err)?;
        quick_check(&copy)?;
        summarize(&copy, partial)?
    };
    if has_audit {
        {
            let copy = Connection::open_with_flags(audit_partial, OpenFlags::SQLITE_OPEN_READ_WRITE)
                .map_err(storage_err)?;
            copy.pragma_update(None, "journal_mode", "DELETE").map_err(storage_err)?;
        }
        summary.audit_records = Some(audit_records(audit_partial)?);
    }
    Ok(summary)
}

/// Checks a snapshot before it is restored: a sound SQLite file, an idvault schema this build can
/// open, and its wrapped data keys (for the caller to check the master keyring against).
pub fn inspect_snapshot(path: &Path) -> Result<(SnapshotSummary, Vec<WrappedDataKey>)> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(storage_err)?;
    quick_check(&conn)?;
    let mut summary = summarize(&conn, path)
        .map_err(|e| Error::Storage(format!("{} is not an idvault database: {e}", path.display())))?;
    let audit = audit_path(path);
    if audit.is_file() {
        summary.audit_records = Some(audit_records(&audit)?);
    }
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

/// Copies a checked snapshot to `db` (which must not exist), and its audit file, when it has one,
/// to `audit_path(db)`; each mode 0600, complete and on disk before it takes its name. The audit
/// file goes first: a database that appears has its audit trail beside it.
pub fn restore_snapshot(snapshot: &Path, db: &Path) -> Result<()> {
    let audit = audit_path(snapshot);
    if audit.is_file() {
        copy_into_place(&audit, &audit_path(db))?;
    }
    copy_into_place(snapshot, db)
}

fn copy_into_place(from_path: &Path, to_path: &Path) -> Result<()> {
    let partial = suffixed(to_path, &format!(".restoring-{}", std::process::id()));
    let result = (|| {
        create_owner_only(&partial)?;
        let mut from = fs::File::open(from_path).map_err(io_err(from_path))?;
        let mut to = fs::OpenOptions::new().write(true).open(&partial).map_err(io_err(&partial))?;
        std::io::copy(&mut from, &mut to).map_err(io_err(&partial))?;
        drop(to);
        publish(&partial, to_path)
    })();
    let _ = fs::remove_file(&partial);
    result
}
