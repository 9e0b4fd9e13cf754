//! The Prometheus registry of the server: the recorder every `metrics::counter!` in the crates
//! writes to, rendered at `/metrics` (on the main listener, or on `metrics_listen`). Pool gauges
//! and the count of lost audit records are read when scraped, so that requests pay nothing for
//! them.

use std::sync::Arc;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use idvault_core::audit::writer::ChannelSink;

use crate::backend::Backend;

/// Audit records lost since the server started (queue full, writer stopped, batch refused).
pub const AUDIT_RECORDS_DROPPED: &str = "idvault_audit_records_dropped_total";

/// Request latency buckets, in seconds: the API answers in well under a millisecond when it reads
/// and in up to the provider timeout when it refreshes.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Log lines dropped because the log thread had fallen behind (see telemetry.rs).
const LOG_LINES_DROPPED: &str = "idvault_log_lines_dropped_total";

/// Installs the process-wide recorder and announces the build; answers the renderer of `/metrics`.
pub fn install(
    backend: &Backend,
    audit: Arc<ChannelSink>,
    vault: idvault_core::vault::VaultService,
) -> anyhow::Result<idvault_api::RenderMetrics> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(idvault_api::observe::REQUEST_DURATION.to_owned()),
            LATENCY_BUCKETS,
        )
        .context("metrics buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe();
    metrics::gauge!("idvault_build_info", "version" => env!("CARGO_PKG_VERSION"), "backend" => backend.name())
        .set(1.0);
    spawn_upkeep(handle.clone());
    let backend = backend.clone();
    let circuits_seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    Ok(Arc::new(move || {
        record_pools(&backend);
        record_circuits(&vault, &circuits_seen);
        metrics::counter!(LOG_LINES_DROPPED).absolute(crate::telemetry::dropped_lines());
        record_audit_losses(&audit);
        handle.render()
    }))
}

/// Drains the histograms' sample buffers now and then, not only when scraped: memory stays
/// bounded when nobody scrapes.
fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Provider circuits not closed, by provider and state.
const PROVIDER_CIRCUITS: &str = "idvault_provider_circuits";

/// The breakers' states when scraped: for each provider, how many projects have its circuit
/// `open` or `halfOpen` (labelled by provider, not project, to keep the series few). A provider
/// seen before and closed now reads 0, so that a dashboard sees the circuit close.
fn record_circuits(
    vault: &idvault_core::vault::VaultService,
    seen: &std::sync::Mutex<std::collections::BTreeSet<String>>,
) {
    let mut counts: std::collections::BTreeMap<(String, &'static str), f64> = Default::default();
    for breaker in vault.provider_breakers() {
        *counts.entry((breaker.provider.to_string(), breaker.state.as_str())).or_default() += 1.0;
    }
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    seen.extend(counts.keys().map(|(provider, _)| provider.clone()));
    for provider in seen.iter() {
        for state in ["open", "halfOpen"] {
            let n = counts.get(&(provider.clone(), state)).copied().unwrap_or(0.0);
            metrics::gauge!(PROVIDER_CIRCUITS, "provider" => provider.clone(), "state" => state).set(n);
        }
    }
}

fn record_pools(backend: &Backend) {
    let pools = match backend {
        Backend::Sqlite(s) => vec![s.pool_stats()],
        Backend::Postgres(p) => p.pool_stats().to_vec(),
    };
    for stats in pools {
        metrics::gauge!("idvault_db_pool_connections_max", "pool" => stats.pool).set(stats.max as f64);
        metrics::gauge!("idvault_db_pool_connections_in_use", "pool" => stats.pool).set(stats.in_use as f64);
        metrics::gauge!("idvault_db_pool_waiting", "pool" => stats.pool).set(stats.waiting as f64);
        metrics::counter!("idvault_db_pool_waits_total", "pool" => stats.pool).absolute(stats.waits_total);
    }
}

/// The writer counts its losses itself (an atomic it bumps anyway, for its warnings); the counter
/// copies that count when scraped.
fn record_audit_losses(sink: &ChannelSink) {
    metrics::counter!(AUDIT_RECORDS_DROPPED).absolute(sink.dropped());
}

fn describe() {
    use idvault_core::vault::refresh as r;
    metrics::describe_counter!(idvault_api::observe::REQUESTS, "HTTP requests answered, by route template");
    metrics::describe_histogram!(
        idvault_api::observe::REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by route template"
    );
    metrics::describe_counter!(r::REFRESHES, "Provider token refreshes by provider and outcome");
    metrics::describe_counter!(
        r::REFRESH_WAITS,
        "Callers that waited for an in-flight refresh of the same token"
    );
    metrics::describe_gauge!(r::REFRESH_WAITING, "Callers waiting for an in-flight refresh now");
    metrics::describe_counter!(r::FLAGGED_REAUTH, "Stored tokens flagged as needing re-consent");
    metrics::describe_counter!(idvault_api::error::STORAGE_ERRORS, "Requests answered with a storage error");
    metrics::describe_gauge!("idvault_db_pool_connections_in_use", "Database connections lent out now");
    metrics::describe_gauge!("idvault_db_pool_waiting", "Callers waiting for a database connection now");
    metrics::describe_counter!("idvault_db_pool_waits_total", "Reads that found every connection busy");
    metrics::describe_counter!(LOG_LINES_DROPPED, "Log lines dropped because stderr could not keep up");
    metrics::describe_gauge!(
        PROVIDER_CIRCUITS,
        "Projects whose circuit for this provider is open or half-open (refreshes refused or probing)"
    );
    metrics::describe_gauge!("idvault_build_info", "Version and storage backend of this server");
    metrics::describe_counter!(
        AUDIT_RECORDS_DROPPED,
        "Audit records lost since start: dropped on a full queue or after shutdown, or refused by the database"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use idvault_core::audit::{AuditRecord, AuditSink};
    use idvault_core::ids::ProjectId;
    use idvault_store_sqlite::{SqliteOptions, SqliteStore};

    /// Records the writer loses (here: sent after its shutdown) show in the counter at the next
    /// scrape; before any loss it is there, at 0.
    #[tokio::test]
    async fn lost_audit_records_move_the_counter() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), &SqliteOptions::default()).unwrap();
        let (sink, writer) = idvault_core::audit::writer::start(Arc::new(store));
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let scrape = || {
            metrics::with_local_recorder(&recorder, || record_audit_losses(&sink));
            handle.render()
        };
        assert!(scrape().contains(&format!("{AUDIT_RECORDS_DROPPED} 0")), "{}", scrape());
        writer.shutdown().await;
        for _ in 0..3 {
            sink.record(AuditRecord::new(&ProjectId::generate(), "Test"));
        }
        assert!(scrape().contains(&format!("{AUDIT_RECORDS_DROPPED} 3")), "{}", scrape());
    }
}
