//! `upload`: the migration a team moving to idvault runs, timed over the wire: users through
//! `POST /v1/mgmt/user/create/batch`, then one outbound token per user through
//! `POST /v1/mgmt/outbound/app/user/oauthtoken/batch/upload`, against the real server on a fresh
//! data directory. Reports users/s and tokens/s, checks a sample of the tokens back, and writes
//! the figures as JSON. A benchmark, not a test: it takes seconds to minutes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};

use crate::proc::{self, Server};

/// The users batch API's own limit (`MAX_BATCH_USERS`).
const USERS_PER_CALL: usize = idvault_core::limits::MAX_BATCH_USERS;
const APP_ID: &str = "bench-google";

#[derive(clap::Args, Debug)]
pub struct UploadArgs {
    /// A new data directory for this run (must not exist, or be empty).
    #[arg(long)]
    data_dir: PathBuf,
    /// How many users to create, each with one uploaded token.
    #[arg(long, default_value_t = 100_000)]
    tokens: usize,
    /// Tokens per batch-upload call (100,000 sends them all in one call).
    #[arg(long, default_value_t = 100_000)]
    per_call: usize,
    /// The idvault binary. Default: `idvault` next to this executable (target/release).
    #[arg(long)]
    idvault_bin: Option<PathBuf>,
    /// Where to write the results as JSON. Default: DATA_DIR/upload-results.json
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct UploadResults {
    users: usize,
    users_seconds: f64,
    users_per_second: f64,
    tokens: usize,
    tokens_per_call: usize,
    calls: usize,
    request_bytes: usize,
    tokens_seconds: f64,
    tokens_per_second: f64,
    samples_checked: usize,
    database_bytes: u64,
    idvault_vmrss_kib: u64,
    idvault_vmhwm_kib: u64,
}

pub async fn upload(args: UploadArgs) -> anyhow::Result<()> {
    if args.tokens == 0 || args.per_call == 0 {
        bail!("--tokens and --per-call must be positive");
    }
    let dir = &args.data_dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty: give a new directory", dir.display());
    }
    std::fs::create_dir_all(dir)?;
    let idvault_bin = match &args.idvault_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("idvault"),
    };
    let ready_file = dir.join("ready.json");
    let mut cmd = Command::new(&idvault_bin);
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready_file)
        .env_remove("IDVAULT_MASTER_KEY")
        .env_remove("IDVAULT_DATA_DIR");
    let server = Server::start("idvault", cmd, &dir.join("idvault-server.log"))?;
    let ready = read_ready_file(&ready_file).await?;
    let project = ready["projectId"].as_str().ok_or_else(|| anyhow!("ready file has no projectId"))?;
    let key = ready["managementKey"].as_str().ok_or_else(|| anyhow!("ready file has no managementKey"))?;
    let api = Api {
        base: format!("http://{}", server.addr),
        authorization: format!("Bearer {project}:{key}"),
        http: reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?,
    };
    println!("idvault on {} (pid {})", server.addr, server.pid());

    api.post(
        "/v1/mgmt/outbound/app/create/bytemplate",
        &json!({
            "templateId": "google", "id": APP_ID, "clientId": "bench-client", "clientSecret": "bench-secret",
        }),
    )
    .await
    .context("creating the outbound app")?;

    // Users first: a token belongs to an existing user.
    let started = Instant::now();
    let mut user_ids = Vec::with_capacity(args.tokens);
    for chunk_start in (0..args.tokens).step_by(USERS_PER_CALL) {
        let end = (chunk_start + USERS_PER_CALL).min(args.tokens);
        let users: Vec<Value> = (chunk_start..end)
            .map(|i| json!({"loginId": format!("migrated{i}@example.com"), "email": format!("migrated{i}@example.com"), "displayName": format!("Migrated User {i}")}))
            .collect();
        let answer = api.post("/v1/mgmt/user/create/batch", &json!({ "users": users })).await?;
        let created =
            answer["createdUsers"].as_array().ok_or_else(|| anyhow!("no createdUsers in {answer}"))?;
        if created.len() != end - chunk_start {
            bail!(
                "batch create made {} of {} users: {}",
                created.len(),
                end - chunk_start,
                answer["failedUsers"]
            );
        }
        for u in created {
            user_ids.push(
                u["userId"].as_str().ok_or_else(|| anyhow!("a created user without userId"))?.to_owned(),
            );
        }
    }
    let users_seconds = started.elapsed().as_secs_f64();
    println!(
        "users: {} in {users_seconds:.1} s ({:.0} users/s, {USERS_PER_CALL} per call)",
        user_ids.len(),
        user_ids.len() as f64 / users_seconds
    );

    let expiry = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let bodies: Vec<Vec<u8>> = user_ids
        .chunks(args.per_call)
        .enumerate()
        .map(|(c, ids)| {
            let tokens: Vec<Value> = ids
                .iter()
                .enumerate()
                .map(|(j, user_id)| {
                    let i = c * args.per_call + j;
                    json!({
                        "appId": APP_ID,
                        "userId": user_id,
                        "accessToken": access_token(i),
                        "refreshToken": format!("migrated-refresh-{i}"),
                        "accessTokenExpiry": expiry,
                        "scopes": ["openid", "email"],
                    })
                })
                .collect();
            serde_json::to_vec(&json!({ "tokens": tokens }))
        })
        .collect::<Result<_, _>>()?;
    let request_bytes = bodies.iter().map(Vec::len).sum();
    let started = Instant::now();
    for body in &bodies {
        let answer =
            api.post_bytes("/v1/mgmt/outbound/app/user/oauthtoken/batch/upload", body.clone()).await?;
        match answer["failures"].as_array() {
            Some(f) if f.is_empty() => {}
            _ => bail!("the batch upload reported failures or an unexpected answer: {answer}"),
        }
    }
    let tokens_seconds = started.elapsed().as_secs_f64();
    println!(
        "tokens: {} in {tokens_seconds:.2} s ({:.0} tokens/s; {} call(s), {:.1} MiB of JSON)",
        user_ids.len(),
        user_ids.len() as f64 / tokens_seconds,
        bodies.len(),
        request_bytes as f64 / (1024.0 * 1024.0)
    );

    // What was acknowledged must read back, decrypted, for any user.
    let samples = 20.min(user_ids.len());
    let mut rng = rand::thread_rng();
    for _ in 0..samples {
        let i = rng.gen_range(0..user_ids.len());
        let answer = api
            .post("/v1/mgmt/outbound/app/user/token/latest", &json!({"appId": APP_ID, "userId": user_ids[i]}))
            .await?;
        if answer["token"]["accessToken"] != json!(access_token(i)) {
            bail!("token {i} read back wrong: {answer}");
        }
    }
    println!("checked {samples} tokens read back through fetch latest");

    let memory = proc::memory(server.pid())?;
    server.stop()?;
    let results = UploadResults {
        users: user_ids.len(),
        users_seconds,
        users_per_second: user_ids.len() as f64 / users_seconds,
        tokens: user_ids.len(),
        tokens_per_call: args.per_call,
        calls: bodies.len(),
        request_bytes,
        tokens_seconds,
        tokens_per_second: user_ids.len() as f64 / tokens_seconds,
        samples_checked: samples,
        database_bytes: database_bytes(dir),
        idvault_vmrss_kib: memory.rss_kib,
        idvault_vmhwm_kib: memory.hwm_kib,
    };
    let out = args.out.clone().unwrap_or_else(|| dir.join("upload-results.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&results)?)?;
    println!(
        "database {:.1} MiB; idvault VmHWM {:.1} MiB; wrote {}",
        results.database_bytes as f64 / (1024.0 * 1024.0),
        results.idvault_vmhwm_kib as f64 / 1024.0,
        out.display()
    );
    Ok(())
}

fn access_token(i: usize) -> String {
    format!("migrated-access-{i}")
}

/// The database and its WAL, as the server left them.
fn database_bytes(dir: &Path) -> u64 {
    ["idvault.db", "idvault.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// The server writes its ready file once it listens; it holds the project and first key.
async fn read_ready_file(path: &Path) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()));
        }
        if Instant::now() > deadline {
            bail!("no ready file at {} after 60 s", path.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Api {
    base: String,
    authorization: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.post_bytes(path, serde_json::to_vec(body)?).await
    }

    async fn post_bytes(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Authorization", &self.authorization)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status} {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {path}: answer is not JSON: {text}"))
    }
}
