//! The server's audit trail plumbing (the background writer, the retention purge) and
//! `idvault audit export`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use idvault_core::audit::writer::{self, AuditWriter, ChannelSink};
use idvault_core::audit::{AuditQuery, AuditService};
use idvault_core::clock::{Clock, SystemClock};
use idvault_core::ids::ProjectId;
use idvault_core::store::SharedStore;

use crate::backend::{Backend, DbTarget};

/// Starts the background writer of the server's audit records.
pub fn start_writer(store: SharedStore) -> (Arc<ChannelSink>, AuditWriter) {
    writer::start(store)
}

/// Deletes records older than `retention_days` now and then every `interval`, until aborted.
/// `0` days keeps records forever (no task).
pub fn start_purge(
    service: AuditService,
    retention_days: u32,
    interval: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if retention_days == 0 {
        tracing::info!("audit records are kept forever (--audit-retention-days 0)");
        return None;
    }
    let retention = Duration::from_secs(u64::from(retention_days) * 24 * 3600);
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_secs(1)));
        loop {
            ticks.tick().await;
            match service.purge(retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, retention_days, "purged expired audit records"),
                Err(e) => tracing::error!("purging expired audit records failed: {e}"),
            }
        }
    }))
}

/// Parses `--since`: RFC 3339, Unix milliseconds, or an age (`24h`).
fn parse_since(since: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Ok(ms) = since.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(since) {
        let ms = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        return Ok(i64::try_from(ms).unwrap_or(i64::MAX));
    }
    if let Ok(age) = humantime::parse_duration(since) {
        return Ok(now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)));
    }
    anyhow::bail!("--since {since:?} is neither an RFC 3339 time, Unix milliseconds, nor an age such as 24h")
}

/// Pages read per export query.
const EXPORT_PAGE: usize = 1000;

/// `idvault audit export`: every kept record of the project from `since` on, oldest first, one
/// JSON object a line, written page by page (never the whole trail in memory).
pub async fn export(
    data_dir: &Path,
    db: &DbTarget,
    project: &str,
    since: Option<&str>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let backend = Backend::open(data_dir, db, true, false).await?;
    let store = backend.store();
    let project = ProjectId::parse(project)?;
    if store.get_project(&project).await?.is_none() {
        anyhow::bail!("no project {project}");
    }
    let from_ms = match since {
        Some(s) => parse_since(s, SystemClock.now_ms())?,
        None => 0,
    };
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    // The upper bound is fixed at the start, so that records written meanwhile cannot shift the
    // pages (they are appended after it).
    let to_ms = SystemClock.now_ms();
    let mut written = 0u64;
    loop {
        let query = AuditQuery {
            from_ms,
            to_ms,
            limit: EXPORT_PAGE,
            offset: usize::try_from(written).unwrap_or(usize::MAX),
            oldest_first: true,
            ..Default::default()
        };
        let (records, _) = store.search_audit(&project, &query).await?;
        let n = records.len();
        for record in records {
            serde_json::to_writer(&mut sink, &idvault_api::routes::audit::record_json(record))?;
            sink.write_all(b"\n")?;
        }
        written += n as u64;
        if n < EXPORT_PAGE {
            break;
        }
    }
    sink.flush()?;
    eprintln!("exported {written} audit record(s) of project {project}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_milliseconds_rfc3339_or_an_age() {
        assert_eq!(parse_since("1700000000000", 0).unwrap(), 1_700_000_000_000);
        assert_eq!(parse_since("1970-01-01T00:00:01Z", 0).unwrap(), 1000);
        assert_eq!(parse_since("1h", 7_200_000).unwrap(), 3_600_000);
        assert!(parse_since("yesterday", 0).is_err());
    }
}
