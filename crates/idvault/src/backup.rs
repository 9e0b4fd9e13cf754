//! `idvault backup` and `idvault restore`: an online snapshot of the SQLite database, and
//! putting one into an empty data directory. PostgreSQL has its own tools (pg_dump,
//! pg_restore); these commands say so rather than half-doing their job.

use std::path::Path;

use anyhow::Context;

use idvault_crypto::{check_data_keys, Keyring, MASTER_KEY_FILE};

use crate::backend::DbTarget;
use crate::startup::{db_path, ensure_data_dir};

const USE_PG_DUMP: &str = "this idvault uses PostgreSQL (--database-url); back it up with pg_dump \
     (`pg_dump --format=custom --file FILE URL`) and restore with pg_restore into an empty database \
     (`pg_restore --no-owner --dbname URL FILE`); keep the master key with the dump. See \
     docs/reliability.md, \"Backup and restore\"";

pub async fn backup(data_dir: &Path, db: &DbTarget, out: &Path) -> anyhow::Result<()> {
    if db.url().is_some() {
        anyhow::bail!(
            "`idvault backup` snapshots the SQLite database of a data directory, but {USE_PG_DUMP}"
        );
    }
    let source = db_path(data_dir);
    let target = out.to_owned();
    let summary = tokio::task::spawn_blocking(move || idvault_store_sqlite::write_snapshot(&source, &target))
        .await
        .context("the backup task failed")?
        .with_context(|| format!("backing up {}", db_path(data_dir).display()))?;
    let audit = match summary.audit_records {
        Some(n) => format!(
            ", and its audit trail ({n} record(s)) to {}",
            idvault_store_sqlite::audit_path(out).display()
        ),
        None => String::new(),
    };
    println!(
        "wrote {}: {} bytes, schema version {}, {} project(s), {} user(s){audit}.\n\
         It holds secrets sealed under the master key: keep a copy of the master key ({} or \
         IDVAULT_MASTER_KEY), stored apart from the snapshot; without it the sealed tokens cannot be read.",
        out.display(),
        summary.bytes,
        summary.schema_version,
        summary.projects,
        summary.users,
        data_dir.join(MASTER_KEY_FILE).display()
    );
    Ok(())
}

pub async fn restore(
    data_dir: &Path,
    db: &DbTarget,
    master_key: Option<&str>,
    from: &Path,
) -> anyhow::Result<()> {
    if db.url().is_some() {
        anyhow::bail!(
            "`idvault restore` restores a SQLite snapshot into a data directory, but {USE_PG_DUMP}"
        );
    }
    let target = db_path(data_dir);
    let audit_target = idvault_store_sqlite::audit_path(&target);
    let mut sidecars = [&target, &audit_target].into_iter().flat_map(|file| {
        ["", "-wal", "-shm"].iter().map(move |suffix| {
            let mut p = file.as_os_str().to_owned();
            p.push(suffix);
            std::path::PathBuf::from(p)
        })
    });
    if let Some(existing) = sidecars.find(|p| p.exists()) {
        anyhow::bail!(
            "{} exists: restore only into a data directory without a database (move it away first)",
            existing.display()
        );
    }
    let (summary, keys) = idvault_store_sqlite::inspect_snapshot(from)
        .with_context(|| format!("checking the snapshot {}", from.display()))?;
    // The keyring is checked before anything is written: a database whose secrets no key on this
    // host can open is not a restore.
    match Keyring::load(master_key, data_dir).context("loading the master key")? {
        Some(keyring) => check_data_keys(&keyring, &keys).map_err(|mismatch| {
            anyhow::anyhow!(
                "the master keyring does not open this snapshot's data keys: {mismatch}. Use the \
                 keyring of the server the snapshot was taken from"
            )
        })?,
        None if keys.is_empty() => {}
        None => anyhow::bail!(
            "no master key: the snapshot holds {} data key(s) sealed under the master key of the \
             server it was taken from. Put that server's master.key into {} first (or set \
             IDVAULT_MASTER_KEY), then restore",
            keys.len(),
            data_dir.display()
        ),
    }
    ensure_data_dir(data_dir)?;
    let (source, destination) = (from.to_owned(), target.clone());
    tokio::task::spawn_blocking(move || idvault_store_sqlite::restore_snapshot(&source, &destination))
        .await
        .context("the restore task failed")?
        .with_context(|| format!("restoring into {}", target.display()))?;
    let audit = match summary.audit_records {
        Some(n) => format!(", {n} audit record(s)"),
        // Before version 13 the audit trail was inside the database; opening it moves it out.
        None if summary.schema_version < 13 => String::new(),
        None => format!(
            "; no audit file ({}) beside the snapshot, so the audit trail starts empty",
            idvault_store_sqlite::audit_path(from).display()
        ),
    };
    println!(
        "restored {} into {}: schema version {}, {} project(s), {} user(s){audit}. Start `idvault serve` on it.",
        from.display(),
        target.display(),
        summary.schema_version,
        summary.projects,
        summary.users
    );
    Ok(())
}
