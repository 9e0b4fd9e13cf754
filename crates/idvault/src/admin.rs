//! One-shot commands working on the same data directory as a running server: migrations, projects
//! and management keys. SQLite's WAL lets them run beside the server.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;

use idvault_core::clock::{Clock, SystemClock};
use idvault_core::ids::ProjectId;
use idvault_core::project::{KeyState, ProjectService};
use idvault_store_sqlite::{SqliteOptions, SqliteStore};

use crate::cli::{HealthcheckArgs, KeyCommand, ProjectCommand};
use crate::startup::{db_path, ensure_data_dir};

fn open_store(data_dir: &Path) -> anyhow::Result<SqliteStore> {
    ensure_data_dir(data_dir)?;
    let opts = SqliteOptions {
        readers: 1,
        ..SqliteOptions::default()
    };
    SqliteStore::open(&db_path(data_dir), &opts).context("opening the database")
}

fn projects(store: SqliteStore) -> ProjectService {
    ProjectService::new(Arc::new(store), Arc::new(SystemClock))
}

fn format_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn migrate(data_dir: &Path) -> anyhow::Result<()> {
    ensure_data_dir(data_dir)?;
    let applied = idvault_store_sqlite::migrate(&db_path(data_dir)).context("migrating the database")?;
    if applied.is_empty() {
        println!(
            "database is up to date (schema version {})",
            idvault_store_sqlite::known_schema_version()
        );
    } else {
        println!("applied migrations {applied:?}");
    }
    Ok(())
}

pub async fn project(data_dir: &Path, cmd: ProjectCommand) -> anyhow::Result<()> {
    let svc = projects(open_store(data_dir)?);
    match cmd {
        ProjectCommand::Create { name } => {
            let p = svc.create_project(&name).await?;
            println!("{}", p.id);
        }
        ProjectCommand::List => {
            println!("{:<30} {:<22} NAME", "PROJECT ID", "CREATED");
            for p in svc.list_projects().await? {
                println!("{:<30} {:<22} {}", p.id, format_ms(p.created_ms), p.name);
            }
        }
    }
    Ok(())
}

pub async fn key(data_dir: &Path, cmd: KeyCommand) -> anyhow::Result<()> {
    let svc = projects(open_store(data_dir)?);
    match cmd {
        KeyCommand::Create {
            project,
            name,
            expires_in,
        } => {
            let project = ProjectId::parse(&project)?;
            let expires_ms = expires_in.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let issued = svc.create_key(&project, &name, expires_ms).await?;
            eprintln!(
                "key id {} created; the key is shown once, store it now:",
                issued.record.key_id
            );
            println!("{}", issued.secret.expose_secret());
        }
        KeyCommand::List { project } => {
            let project = ProjectId::parse(&project)?;
            let now = SystemClock.now_ms();
            println!(
                "{:<18} {:<8} {:<22} {:<22} NAME",
                "KEY ID", "STATE", "CREATED", "EXPIRES"
            );
            for k in svc.list_keys(&project).await? {
                let state = match k.state(now) {
                    KeyState::Active => "active",
                    KeyState::Expired => "expired",
                    KeyState::Revoked => "revoked",
                };
                let expires = k.expires_ms.map(format_ms).unwrap_or_else(|| "never".into());
                println!(
                    "{:<18} {:<8} {:<22} {:<22} {}",
                    k.key_id,
                    state,
                    format_ms(k.created_ms),
                    expires,
                    k.name
                );
            }
        }
        KeyCommand::Revoke { project, key_id } => {
            svc.revoke_key(&ProjectId::parse(&project)?, &key_id).await?;
            println!("revoked {key_id}");
        }
    }
    Ok(())
}

/// A minimal HTTP/1.1 GET of `/readyz` over a plain TCP connection, so the binary needs no HTTP
/// client for its own health check.
pub async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = args
        .url
        .strip_prefix("http://")
        .context("healthcheck supports http:// URLs")?
        .trim_end_matches('/')
        .to_owned();
    let connect = tokio::net::TcpStream::connect(&authority);
    let mut stream = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
        .await
        .context("timed out connecting")??;
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut response),
    )
    .await
    .context("timed out reading")??;
    let head = String::from_utf8_lossy(&response);
    if head.starts_with("HTTP/1.1 200") {
        println!("ready");
        Ok(())
    } else {
        anyhow::bail!("not ready: {}", head.lines().next().unwrap_or("no answer"))
    }
}
