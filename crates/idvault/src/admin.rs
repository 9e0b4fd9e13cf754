//! One-shot commands working on the same data directory as a running server: migrations, projects
//! and management keys. SQLite's WAL lets them run beside the server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;

use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;

use idvault_core::auth::{ProjectAuthSettings, SessionSigner};
use idvault_core::clock::{Clock, SharedClock, SystemClock};
use idvault_core::ids::ProjectId;
use idvault_core::project::{KeyState, ProjectService};
use idvault_core::provider::service::SetProvider;
use idvault_core::provider::{AllowedHosts, ClientAuthMethod, ProviderConfig, ProviderService};
use idvault_core::store::SharedStore;
use idvault_core::store::WrappedDataKey;
use idvault_crypto::{rewrap_data_keys, Envelope, JwtSigner, Keyring};
use idvault_oauth::{HttpOAuthClient, OAuthSettings};

use crate::backend::{Backend, DbTarget};

use crate::cli::{
    HealthcheckArgs, KeyCommand, KeysCommand, ProjectCommand, ProviderCommand, ProviderSetArgs,
};
use crate::startup::{db_path, ensure_data_dir, keyring_for, open_keyring};

async fn open_backend(data_dir: &Path, db: &DbTarget) -> anyhow::Result<Backend> {
    Backend::open(data_dir, db, true, false).await
}

async fn open_store(data_dir: &Path, db: &DbTarget) -> anyhow::Result<SharedStore> {
    Ok(open_backend(data_dir, db).await?.store())
}

fn projects(store: SharedStore) -> ProjectService {
    ProjectService::new(store, Arc::new(SystemClock))
}

fn format_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn provider_service(
    store: SharedStore,
    keyring: Keyring,
    allowed_hosts: AllowedHosts,
) -> anyhow::Result<ProviderService> {
    let clock: SharedClock = Arc::new(SystemClock);
    let cipher = Arc::new(Envelope::new(keyring, store.clone(), clock.clone()));
    let oauth = HttpOAuthClient::new(OAuthSettings { allowed_hosts, ..OAuthSettings::default() })
        .map_err(anyhow::Error::msg)?;
    Ok(ProviderService::new(store, cipher, Arc::new(oauth), clock))
}

fn print_provider(p: &ProviderConfig) {
    println!("name:                   {}", p.name);
    println!("client id:              {}", p.client_id);
    println!("client secret:          {}", if p.client_secret.is_some() { "(set)" } else { "(none)" });
    println!("issuer:                 {}", p.issuer.as_deref().unwrap_or("-"));
    println!("authorization endpoint: {}", p.authorization_endpoint.as_deref().unwrap_or("-"));
    println!("token endpoint:         {}", p.token_endpoint);
    println!("userinfo endpoint:      {}", p.userinfo_endpoint.as_deref().unwrap_or("-"));
    println!("scopes:                 {}", p.scopes.join(" "));
    println!("client auth method:     {}", p.auth_method.as_str());
}

fn read_client_secret(args: &ProviderSetArgs) -> anyhow::Result<Option<SecretString>> {
    if let Some(path) = &args.client_secret_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Some(SecretString::from(text.trim_end_matches(['\r', '\n']).to_owned())));
    }
    // IDVAULT_CLIENT_SECRET_FILE: as container secrets are mounted.
    if let Some(path) = std::env::var_os("IDVAULT_CLIENT_SECRET_FILE").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Some(SecretString::from(text.trim_end_matches(['\r', '\n']).to_owned())));
    }
    Ok(std::env::var("IDVAULT_CLIENT_SECRET").ok().filter(|s| !s.is_empty()).map(SecretString::from))
}

pub async fn provider(
    data_dir: &Path,
    db: &DbTarget,
    master_key: Option<&str>,
    cmd: ProviderCommand,
) -> anyhow::Result<()> {
    let store = open_store(data_dir, db).await?;
    let keyring = open_keyring(master_key, data_dir, store.as_ref()).await?;
    let allowed_hosts = match &cmd {
        ProviderCommand::Set(args) => args.provider_allowed_hosts.clone().unwrap_or_default(),
        _ => AllowedHosts::none(),
    };
    let svc = provider_service(store, keyring, allowed_hosts)?;
    match cmd {
        ProviderCommand::Set(args) => {
            let project = ProjectId::parse(&args.project)?;
            let req = SetProvider {
                name: args.name.clone(),
                preset: args.preset.clone(),
                client_id: args.client_id.clone(),
                client_secret: read_client_secret(&args)?,
                issuer: args.issuer.clone(),
                authorization_endpoint: args.authorization_endpoint.clone(),
                token_endpoint: args.token_endpoint.clone(),
                userinfo_endpoint: args.userinfo_endpoint.clone(),
                jwks_uri: None,
                scopes: args.scopes.clone(),
                auth_method: args.auth_method.as_deref().map(ClientAuthMethod::parse).transpose()?,
                app: None,
            };
            print_provider(&svc.set(&project, req).await?);
        }
        ProviderCommand::List { project } => {
            println!("{:<16} {:<28} TOKEN ENDPOINT", "NAME", "CLIENT ID");
            for p in svc.list(&ProjectId::parse(&project)?).await? {
                println!("{:<16} {:<28} {}", p.name, p.client_id, p.token_endpoint);
            }
        }
        ProviderCommand::Show { project, name } => {
            print_provider(&svc.get(&ProjectId::parse(&project)?, &name).await?)
        }
        ProviderCommand::Remove { project, name } => {
            svc.remove(&ProjectId::parse(&project)?, &name).await?;
            println!("removed {name}");
        }
    }
    Ok(())
}

pub async fn keys(
    data_dir: &Path,
    db: &DbTarget,
    master_key: Option<&str>,
    cmd: KeysCommand,
) -> anyhow::Result<()> {
    if let KeysCommand::Generate { version } = cmd {
        println!("{}", idvault_crypto::generate_entry(version).as_str());
        return Ok(());
    }
    let store = open_store(data_dir, db).await?;
    let usage = |keys: &[WrappedDataKey], v: u32| keys.iter().filter(|k| k.master_key_version == v).count();
    if let KeysCommand::List = cmd {
        // A diagnosis: shows a keyring that does not fit the database instead of refusing it.
        let keys = store.list_data_keys().await?;
        let keyring = keyring_for(master_key, data_dir, &keys)?;
        let current = keyring.current_version();
        println!("{:<8} {:<8} DATA KEYS WRAPPED", "VERSION", "CURRENT");
        for v in keyring.versions() {
            println!("{:<8} {:<8} {}", v, if v == current { "yes" } else { "" }, usage(&keys, v));
        }
        if let Err(mismatch) = idvault_crypto::check_data_keys(&keyring, &keys) {
            println!("warning: this keyring does not fit the database: {mismatch}");
        }
        return Ok(());
    }
    let mut keyring = open_keyring(master_key, data_dir, store.as_ref()).await?;
    match cmd {
        // Answered above.
        KeysCommand::List | KeysCommand::Generate { .. } => {}
        KeysCommand::Rotate => {
            let version = keyring.rotate()?;
            println!(
                "master key version {version} added; run `idvault keys rewrap` to re-wrap existing data keys"
            );
        }
        KeysCommand::Rewrap => {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} re-wrapping data keys [{bar:40}] {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let report = rewrap_data_keys(&keyring, store.as_ref(), |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })
            .await?;
            bar.finish_and_clear();
            println!(
                "{} data keys: {} re-wrapped under master key version {}, {} already current",
                report.total,
                report.rewrapped,
                keyring.current_version(),
                report.already_current
            );
        }
        KeysCommand::Retire { version } => {
            if version == keyring.current_version() {
                anyhow::bail!("master key version {version} is the current one; rotate first");
            }
            let in_use = usage(&store.list_data_keys().await?, version);
            if in_use > 0 {
                anyhow::bail!("master key version {version} still wraps {in_use} data keys; run `idvault keys rewrap` first");
            }
            keyring.retire(version)?;
            println!("master key version {version} retired");
        }
        KeysCommand::RotateSigning { project } => {
            let project = ProjectId::parse(&project)?;
            let clock: SharedClock = Arc::new(SystemClock);
            let cipher = Arc::new(Envelope::new(keyring, store.clone(), clock.clone()));
            // Retired keys stay published for the longest refresh-token lifetime (30 days by default).
            let signer =
                JwtSigner::new(store.clone(), cipher, clock, std::time::Duration::from_secs(30 * 24 * 3600));
            let kid = signer.rotate(&project).await?;
            println!(
                "new signing key {kid} is active; the previous keys stay published until their tokens expire"
            );
        }
    }
    Ok(())
}

pub async fn migrate(data_dir: &Path, db: &DbTarget) -> anyhow::Result<()> {
    ensure_data_dir(data_dir)?;
    let applied = match db.url() {
        Some(url) if crate::backend::is_postgres(url) => {
            idvault_store_postgres::migrate(url).await.context("migrating the database")?
        }
        Some(_) => anyhow::bail!("--database-url must be a postgres:// URL"),
        None => idvault_store_sqlite::migrate(&db_path(data_dir)).context("migrating the database")?,
    };
    if applied.is_empty() {
        println!("database is up to date (schema version {})", idvault_store_sqlite::known_schema_version());
    } else {
        println!("applied migrations {applied:?}");
    }
    Ok(())
}

pub async fn project(data_dir: &Path, db: &DbTarget, cmd: ProjectCommand) -> anyhow::Result<()> {
    let store = open_store(data_dir, db).await?;
    let svc = projects(store.clone());
    match cmd {
        ProjectCommand::Create { name } => {
            let p = svc.create_project(&name).await?;
            println!("{}", p.id);
        }
        ProjectCommand::Settings { project, redirect_urls, link_by_verified_email } => {
            let project = ProjectId::parse(&project)?;
            let settings = ProjectAuthSettings { redirect_urls, link_by_verified_email };
            for u in &settings.redirect_urls {
                idvault_core::auth::service::validate_redirect_url("redirect-url", u)?;
            }
            store.set_auth_settings(&project, &settings).await?;
            println!(
                "redirect URLs: {:?}; link by verified email: {}",
                settings.redirect_urls, settings.link_by_verified_email
            );
            return Ok(());
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

pub async fn key(data_dir: &Path, db: &DbTarget, cmd: KeyCommand) -> anyhow::Result<()> {
    let svc = projects(open_store(data_dir, db).await?);
    match cmd {
        KeyCommand::Create { project, name, expires_in } => {
            let project = ProjectId::parse(&project)?;
            let expires_ms = expires_in.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let issued = svc.create_key(&project, &name, expires_ms).await?;
            eprintln!("key id {} created; the key is shown once, store it now:", issued.record.key_id);
            println!("{}", issued.secret.expose_secret());
        }
        KeyCommand::List { project } => {
            let project = ProjectId::parse(&project)?;
            let now = SystemClock.now_ms();
            println!("{:<18} {:<8} {:<22} {:<22} NAME", "KEY ID", "STATE", "CREATED", "EXPIRES");
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
    tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut response))
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

pub async fn export(data_dir: &Path, db: &DbTarget, project: &str, out: &Path) -> anyhow::Result<()> {
    let backend = open_backend(data_dir, db).await?;
    let project = ProjectId::parse(project)?;
    let counts = crate::transfer::export(backend.store().as_ref(), backend.transfer(), &project, out).await?;
    println!("exported project {project} to {}: {counts:?}", out.display());
    Ok(())
}

pub async fn import(data_dir: &Path, db: &DbTarget, input: &Path) -> anyhow::Result<()> {
    let backend = open_backend(data_dir, db).await?;
    let (expected, found) =
        crate::transfer::import(backend.store().as_ref(), backend.transfer(), input).await?;
    println!("file:     {expected:?}");
    println!("imported: {found:?}");
    if expected != found {
        anyhow::bail!("verification failed: the imported counts differ from the file's");
    }
    println!("verified: every count matches");
    Ok(())
}
