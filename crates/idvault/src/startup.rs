//! Building and running the server: data directory, master key, store, first-start bootstrap,
//! listener, graceful shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;

use idvault_api::AppState;
use idvault_core::auth::AuthSettings;
use idvault_core::clock::SystemClock;
use idvault_core::project::ProjectService;
use idvault_core::store::{ProjectStore, SharedStore};
use idvault_core::vault::VaultSettings;
use idvault_crypto::{Envelope, JwtSigner, KeySource, Keyring};
use idvault_oauth::{HttpOAuthClient, OAuthSettings};

use crate::backend::{Backend, DbTarget};
use crate::cli::ServeArgs;

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

/// Loads the master keyring, saying where it came from (never what it is).
pub fn load_keyring(master_key: Option<&str>, data_dir: &Path) -> anyhow::Result<Keyring> {
    let keyring = Keyring::load_or_create(master_key, data_dir).context("loading the master key")?;
    match keyring.source() {
        KeySource::File { path, created: true } => tracing::warn!(
            "created a new master key in {}; back it up: without it stored secrets cannot be read",
            path.display()
        ),
        KeySource::File { created: false, .. } => {
            tracing::info!(versions = ?keyring.versions(), "master keyring loaded from the data directory")
        }
        KeySource::Environment => {
            tracing::info!(versions = ?keyring.versions(), "master keyring loaded from IDVAULT_MASTER_KEY")
        }
    }
    Ok(keyring)
}

pub async fn serve(
    data_dir: &Path,
    db: &DbTarget,
    master_key: Option<&str>,
    args: ServeArgs,
) -> anyhow::Result<()> {
    ensure_data_dir(data_dir)?;
    let keyring = load_keyring(master_key, data_dir)?;

    let backend = Backend::open(data_dir, db, !args.no_migrate, true).await?;
    let store: SharedStore = backend.store();
    let clock = Arc::new(SystemClock);
    let cipher = Arc::new(Envelope::new(keyring, store.clone(), clock.clone()));
    let allowed_hosts = args.provider_allowed_hosts.clone().unwrap_or_default();
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
    let settings = VaultSettings { refresh_skew: args.refresh_skew };

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
    let state =
        AppState::new(store.clone(), cipher, signer, Arc::new(oauth), clock.clone(), settings, auth_settings);

    bootstrap_first_project(&state.projects, store.as_ref(), &addr).await?;

    // A machine-readable line: test harnesses and scripts wait for it.
    println!("idvault listening on http://{addr}");
    tracing::info!(%addr, data_dir = %data_dir.display(), "idvault started");

    axum::serve(listener, idvault_api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;

    tracing::info!("stopped accepting; in-flight requests finished; closing the database");
    backend.close().await?;
    tracing::info!("idvault stopped");
    Ok(())
}

/// On an empty data directory, creates a project and a management key and prints them once,
/// with a ready-to-paste SDK snippet. Later starts print no secret.
async fn bootstrap_first_project(
    projects: &ProjectService,
    store: &dyn ProjectStore,
    addr: &std::net::SocketAddr,
) -> anyhow::Result<()> {
    if !store.list_projects().await?.is_empty() {
        return Ok(());
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
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
