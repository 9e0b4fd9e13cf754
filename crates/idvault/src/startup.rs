//! Building and running the server: data directory, master key, store, first-start bootstrap,
//! listener, graceful shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;

use idvault_api::{AppState, FailureLimit, HttpSettings, MetricsRoute, RateLimit, TrustedProxies};
use idvault_core::auth::AuthSettings;
use idvault_core::clock::SystemClock;
use idvault_core::project::ProjectService;
use idvault_core::store::{DataKeyStore, ProjectStore, SharedStore, WrappedDataKey};
use idvault_core::vault::{ProviderGuardSettings, VaultSettings};
use idvault_crypto::{check_data_keys, Envelope, JwtSigner, KeySource, Keyring, MASTER_KEY_FILE};
use idvault_oauth::{HttpOAuthClient, OAuthSettings};

use crate::backend::{Backend, DbTarget};
use crate::config::Config;
use crate::ready::{ReadyFile, ReadyInfo};

pub const DB_FILE: &str = "idvault.db";

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Creates the data directory (owner-only) if it does not exist.
pub fn ensure_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    if data_dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(data_dir).with_context(|| format!("creating data directory {}", data_dir.display()))
}

/// The master keyring for the database `store`, proven to open every data key the database
/// holds; the command stops here otherwise. Never creates a key for a database that already
/// holds wrapped data keys: a new key could not open them, and a server started with one would
/// answer every read of a sealed secret with an error (found with a second replica started on
/// another data directory).
pub async fn open_keyring(
    master_key: Option<&str>,
    data_dir: &Path,
    store: &dyn DataKeyStore,
) -> anyhow::Result<Keyring> {
    let keys = store.list_data_keys().await.context("reading the database's data keys")?;
    let keyring = keyring_for(master_key, data_dir, &keys)?;
    check_data_keys(&keyring, &keys).map_err(|mismatch| {
        anyhow::anyhow!(
            "refusing to use this master keyring ({}): {mismatch}. Use the keyring that wrapped \
             them: copy `master.key` from the data directory of the server that created this \
             database (or a backup of it), or set IDVAULT_MASTER_KEY to it",
            describe_source(&keyring)
        )
    })?;
    Ok(keyring)
}

/// Loads the master keyring (never checked against the database: see [`open_keyring`]); creates
/// `master.key` only when there is none and `keys`, the database's wrapped data keys, is empty.
pub fn keyring_for(
    master_key: Option<&str>,
    data_dir: &Path,
    keys: &[WrappedDataKey],
) -> anyhow::Result<Keyring> {
    let keyring = match Keyring::load(master_key, data_dir).context("loading the master key")? {
        Some(keyring) => keyring,
        None if keys.is_empty() => Keyring::create(data_dir).context("creating the master key")?,
        None => {
            let mut needed: Vec<u32> = keys.iter().map(|k| k.master_key_version).collect();
            needed.sort_unstable();
            needed.dedup();
            let needed = needed.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
            anyhow::bail!(
                "no master key: {} does not exist and IDVAULT_MASTER_KEY is not set, but the database \
                 holds {} data key(s) wrapped under master key version(s) {needed}. Not creating a new \
                 key, which could not open them: copy `master.key` from the data directory of the \
                 server that created this database (or a backup of it), or set IDVAULT_MASTER_KEY",
                data_dir.join(MASTER_KEY_FILE).display(),
                keys.len()
            )
        }
    };
    match keyring.source() {
        KeySource::File { path, created: true } => tracing::warn!(
            "created a new master key in {}; back it up: without it stored secrets cannot be read",
            path.display()
        ),
        _ => {
            tracing::info!(versions = ?keyring.versions(), "master keyring loaded from {}", describe_source(&keyring))
        }
    }
    Ok(keyring)
}

fn describe_source(keyring: &Keyring) -> String {
    let versions = keyring.versions().iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    match keyring.source() {
        KeySource::File { path, .. } => format!("{}, version(s) {versions}", path.display()),
        KeySource::Environment => format!("IDVAULT_MASTER_KEY, version(s) {versions}"),
    }
}

pub async fn serve(args: &Config, db: &DbTarget) -> anyhow::Result<()> {
    let data_dir = args.data_dir.as_path();
    let master_key = args.master_key.as_ref().map(|k| k.expose_secret());
    ensure_data_dir(data_dir)?;
    if let Some(path) = &args.ready_file {
        ReadyFile::clear_stale(path)?;
    }
    let backend = Backend::open(data_dir, db, !args.no_migrate, true).await?;
    let store: SharedStore = backend.store();
    let keyring = open_keyring(master_key, data_dir, store.as_ref()).await?;
    let clock = Arc::new(SystemClock);
    let cipher = Arc::new(Envelope::new(keyring, store.clone(), clock.clone()));
    let allowed_hosts = args.provider_allowed_hosts.clone();
    if !allowed_hosts.is_empty() {
        tracing::info!(%allowed_hosts, "OAuth providers may use these non-public hosts (http included)");
    }
    let oauth = HttpOAuthClient::new(OAuthSettings {
        timeout: args.provider_timeout,
        max_concurrent_per_provider: args.provider_concurrency.max(1),
        allowed_hosts,
        ..OAuthSettings::default()
    })
    .map_err(anyhow::Error::msg)?;
    let settings = VaultSettings {
        refresh_skew: args.refresh_skew,
        provider_guard: ProviderGuardSettings {
            max_concurrent_refreshes: args.provider_refresh_concurrency.max(1),
            slot_wait: args.provider_timeout,
            failure_threshold: args.provider_breaker_failures,
            cooldown: args.provider_breaker_cooldown,
        },
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let auth_settings = AuthSettings {
        session_ttl: args.session_ttl,
        refresh_ttl: args.refresh_ttl,
        state_ttl: args.oauth_state_ttl,
        max_pending_sign_ins: args.max_pending_sign_ins,
        ..AuthSettings::with_public_url(public_url)
    };
    let signer = Arc::new(JwtSigner::new(store.clone(), cipher.clone(), clock.clone(), args.refresh_ttl));
    let (audit_sink, audit_writer) = crate::audit::start_writer(store.clone());
    let state = AppState::new(
        store.clone(),
        cipher,
        signer,
        Arc::new(oauth),
        clock.clone(),
        settings,
        auth_settings,
        Some(audit_sink.clone()),
    );
    let audit_purge =
        crate::audit::start_purge(state.audit.clone(), args.audit_retention_days, args.audit_purge_interval);

    let start_project = bootstrap_first_project(&state.projects, store.as_ref(), &addr).await?;
    let revocation_listener = listen_for_key_revocations(&backend, &state);

    let shutdown = shutdown_signal();
    // For people and older scripts; programs should use the ready file.
    println!("idvault listening on http://{addr}");
    // Written after the listening line, so that a harness that waits for the file and then
    // reads the console for diagnostics finds the banner there too. Removed when `serve`
    // returns (the guard's drop), also with an error; a crash leaves it to the next start.
    let _ready_file = match &args.ready_file {
        Some(path) => {
            let info = ReadyInfo {
                project_id: start_project.project_id,
                management_key: start_project.created_key,
                ..ReadyInfo::new(addr, backend.name())
            };
            Some(ReadyFile::write(path, &info)?)
        }
        None => None,
    };
    tracing::info!(%addr, data_dir = %data_dir.display(), "idvault started");

    let metrics = MetricsRoute {
        render: crate::telemetry_metrics::install(&backend, audit_sink.clone(), state.vault.clone())?,
        token: args.metrics_token.clone().map(Arc::new),
    };
    // A separate metrics address (for the monitoring network) asks no token; the main listener
    // then has no /metrics at all.
    let metrics_server = match args.metrics_listen {
        Some(metrics_addr) => {
            let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("binding the metrics address {metrics_addr}"))?;
            tracing::info!(addr = %metrics_listener.local_addr()?, "metrics at /metrics");
            let app = idvault_api::metrics_router(MetricsRoute { token: None, ..metrics.clone() });
            let timeout = args.header_read_timeout;
            let proxies = Arc::new(TrustedProxies::none());
            Some(tokio::spawn(serve_http(metrics_listener, app, timeout, proxies, std::future::pending())))
        }
        None => None,
    };
    let http = HttpSettings {
        auth_rate_limit: Some(RateLimit { per_second: args.auth_rate_limit, burst: args.auth_rate_burst }),
        credential_failure_limit: Some(FailureLimit {
            per_minute: args.credential_failure_limit,
            burst: args.credential_failure_burst,
        }),
        metrics: metrics_server.is_none().then_some(metrics),
    };
    let proxies = Arc::new(args.trusted_proxies.clone());
    if !proxies.is_empty() {
        tracing::info!(trusted_proxies = %proxies, "client addresses are read from X-Forwarded-For of these proxies");
    }
    let app = idvault_api::router(state, &http);
    serve_http(listener, app, args.header_read_timeout, proxies, shutdown).await;
    if let Some(task) = metrics_server {
        task.abort();
    }

    if let Some(task) = revocation_listener {
        task.abort();
    }
    if let Some(task) = audit_purge {
        task.abort();
    }
    // Every request has finished, so no record is still being made: write what is queued before
    // the database closes.
    audit_writer.shutdown().await;
    let lost = audit_sink.dropped();
    if lost > 0 {
        tracing::warn!(lost, "audit records were lost while this server ran (see the earlier warnings)");
    }
    tracing::info!(
        "stopped accepting; in-flight requests finished; audit trail written; closing the database"
    );
    backend.close().await?;
    tracing::info!("idvault stopped");
    Ok(())
}

/// On a shared database (PostgreSQL), management keys revoked by another replica or the CLI are
/// evicted from this server's key cache on the database's notification; while the listening
/// connection is down (and until it first connects) the cache is not trusted at all.
fn listen_for_key_revocations(backend: &Backend, state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    use idvault_store_postgres::RevocationEvent;
    let Backend::Postgres(pg) = backend else {
        return None;
    };
    let cache = state.projects.key_cache();
    cache.set_trusted(false);
    Some(pg.listen_key_revocations(move |event| match event {
        RevocationEvent::Listening => {
            tracing::info!("listening for management-key revocations");
            cache.set_trusted(true);
        }
        RevocationEvent::Revoked(key_id) => cache.evict(key_id),
        RevocationEvent::Lost => cache.set_trusted(false),
    }))
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then stops accepting and waits for
/// the open connections to finish their in-flight requests (idle keep-alive connections are
/// closed at once). hyper directly rather than `axum::serve`, for the header-read timeout: a
/// client gets `header_read_timeout` to send a request's headers, counted from the moment the
/// server waits for them, so a slow-headers client (or an idle keep-alive connection) is closed
/// after it. The client's address goes into every request as `ConnectInfo` (audit records, rate
/// limits and access keys read it): the TCP peer, or, when the peer is one of `proxies`, the
/// client it forwarded (`TrustedProxies::client_addr`, the one place that rule lives).
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_read_timeout: std::time::Duration,
    proxies: Arc<TrustedProxies>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true);
    builder.header_read_timeout((!header_read_timeout.is_zero()).then_some(header_read_timeout));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let proxies = proxies.clone();
        let service = app.clone().map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            let client = proxies.client_addr(peer, req.headers());
            req.extensions_mut().insert(ConnectInfo(client));
            req
        });
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Header-read timeouts, resets, malformed requests: the client's business.
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The project a start announces in the ready file.
struct StartProject {
    /// The server's project when it has exactly one.
    project_id: Option<String>,
    /// The management key this start created (first start only).
    created_key: Option<String>,
}

/// On an empty data directory, creates a project and a management key and prints them once,
/// with a ready-to-paste SDK snippet. Later starts print no secret.
async fn bootstrap_first_project(
    projects: &ProjectService,
    store: &dyn ProjectStore,
    addr: &std::net::SocketAddr,
) -> anyhow::Result<StartProject> {
    let existing = store.list_projects().await?;
    if !existing.is_empty() {
        let only = match existing.as_slice() {
            [project] => Some(project.id.to_string()),
            _ => None,
        };
        return Ok(StartProject { project_id: only, created_key: None });
    }
    let project = projects.create_project("default").await?;
    let issued = projects.create_key(&project.id, "bootstrap", None).await?;
    let key = issued.secret.expose_secret();
    println!(
        "\nFirst start: created project and management key. The key is shown only now; store it.\n\
         \n  Project ID:     {pid}\n  Management key: {key}\n\
         \nPython SDK:\n\
         \n  from descope import DescopeClient\
         \n  client = DescopeClient(project_id=\"{pid}\", management_key=\"{key}\",\
         \n                         base_url=\"http://{addr}\")\
         \n  client.mgmt.user.create(login_id=\"dana@example.com\")\n\
         \nNode SDK:\n\
         \n  const client = DescopeClient({{ projectId: '{pid}', managementKey: '{key}', baseUrl: 'http://{addr}' }});\n",
        pid = project.id,
    );
    Ok(StartProject { project_id: Some(project.id.into_string()), created_key: Some(key.to_owned()) })
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so that a signal arriving right after the listening line (which
/// scripts wait for) stops the server gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::interrupt()).ok(), signal(SignalKind::terminate()).ok())
    };
    async move {
        #[cfg(unix)]
        {
            let (mut interrupt, mut terminate) = signals;
            let interrupt = async {
                match interrupt.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let terminate = async {
                match terminate.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = interrupt => {},
                _ = terminate => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received");
    }
}
