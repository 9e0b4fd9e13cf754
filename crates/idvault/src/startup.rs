//! Building and running the server: data directory, master key, store, first-start bootstrap,
//! listener, graceful shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;

use idvault_api::AppState;
use idvault_core::clock::SystemClock;
use idvault_core::project::ProjectService;
use idvault_core::store::{ProjectStore, SharedStore};
use idvault_crypto::{load_or_create_master_key, MasterKeySource, Sealer};
use idvault_store_sqlite::{SqliteOptions, SqliteStore};

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
    builder
        .create(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))
}

pub async fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    ensure_data_dir(data_dir)?;
    let (master_key, source) =
        load_or_create_master_key(args.master_key.as_deref(), data_dir).context("loading the master key")?;
    match source {
        MasterKeySource::CreatedFile => tracing::warn!(
            "created a new master key in {}; back it up: without it stored provider tokens cannot be read",
            data_dir.join("master.key").display()
        ),
        MasterKeySource::ExistingFile => tracing::info!("master key loaded from the data directory"),
        MasterKeySource::Environment => tracing::info!("master key loaded from IDVAULT_MASTER_KEY"),
    }
    let cipher = Arc::new(Sealer::new(1, &master_key));
    drop(master_key);

    let opts = SqliteOptions {
        migrate: !args.no_migrate,
        ..SqliteOptions::default()
    };
    let sqlite = SqliteStore::open(&db_path(data_dir), &opts).context("opening the database")?;
    let store: SharedStore = Arc::new(sqlite.clone());
    let clock = Arc::new(SystemClock);

    let state = AppState::new(store.clone(), cipher, clock.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;

    bootstrap_first_project(&state.projects, store.as_ref(), &addr).await?;

    // A machine-readable line: test harnesses and scripts wait for it.
    println!("idvault listening on http://{addr}");
    tracing::info!(%addr, data_dir = %data_dir.display(), "idvault started");

    axum::serve(listener, idvault_api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;

    tracing::info!("stopped accepting; in-flight requests finished; closing the database");
    sqlite.close().await.context("closing the database")?;
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
