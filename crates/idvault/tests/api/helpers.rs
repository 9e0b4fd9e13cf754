//! Spawning the server and talking to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_idvault");

/// What the suite's servers allow providers to use besides public addresses.
pub const LOCAL_PROVIDERS: &str = "127.0.0.1";

/// How long a server may take to write its ready file.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The log filter of the suite's servers unless `IDVAULT_LOG` says otherwise: idvault's own
/// crates at trace, so that every log line they can write is written and scanned for secrets
/// (scripts/scan-secrets); dependencies at debug, as an operator debugging would run them (at
/// trace, hyper and h2 dump raw frames, which is below anything idvault can vouch for).
/// scripts/test.sh exports the same filter as `IDVAULT_LOG` for the SDK suites' servers.
pub const LOG_FILTER: &str = "debug,idvault=trace,idvault_api=trace,idvault_core=trace,idvault_crypto=trace,\
idvault_oauth=trace,idvault_store_sqlite=trace,idvault_store_postgres=trace";

/// `IDVAULT_TEST_LOG_DIR` (scripts/test.sh sets it): the servers' console output goes there, and
/// the secrets the tests used are recorded there in [`SECRETS_FILE`], for scripts/scan-secrets to
/// look for in every log. Unset: the output stays beside the data directory and nothing is
/// recorded.
pub fn test_log_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("IDVAULT_TEST_LOG_DIR").filter(|d| !d.is_empty())?);
    std::fs::create_dir_all(&dir).unwrap();
    Some(dir)
}

/// One JSON object a line: `{"kind": ..., "secret": ...}`.
pub const SECRETS_FILE: &str = "secrets.jsonl";

/// Records a secret this suite used (a key, a token, a client secret, a JWT, a master key) for
/// scripts/scan-secrets. Each record is one `write` of one line to a file opened for appending,
/// so that parallel tests (and the SDK suites) never interleave within a line.
pub fn record_secret(kind: &str, secret: &str) {
    use std::io::Write;
    let Some(dir) = test_log_dir() else { return };
    if secret.is_empty() {
        return;
    }
    let mut line = json!({"kind": kind, "secret": secret}).to_string();
    line.push('\n');
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(dir.join(SECRETS_FILE)).unwrap();
    file.write_all(line.as_bytes()).unwrap();
}

/// The JSON fields that carry a secret, in requests and answers of idvault, the Descope API it
/// copies and OAuth.
const SECRET_FIELDS: &[&str] = &[
    "accessToken",
    "refreshToken",
    "access_token",
    "refresh_token",
    "id_token",
    "clientSecret",
    "client_secret",
    "apiKey",
    "sessionJwt",
    "refreshJwt",
    "managementKey",
    "code",
    "cleartext",
];

/// Records every secret field of a JSON value (request or answer), at any depth.
pub fn record_secrets_in(value: &Value) {
    match value {
        Value::Object(map) => {
            for (name, v) in map {
                match v {
                    Value::String(s) if SECRET_FIELDS.contains(&name.as_str()) => record_secret(name, s),
                    _ => record_secrets_in(v),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(record_secrets_in),
        _ => {}
    }
}

/// Records the credential of an `Authorization` header (`Bearer <project>:<key or JWT>`).
pub fn record_authorization(header: &str) {
    if let Some((_, secret)) = header.strip_prefix("Bearer ").and_then(|a| a.split_once(':')) {
        record_secret("authorization", secret);
    }
}

/// Records the master keys of a data directory's key file.
fn record_master_keys(data_dir: &Path) {
    if let Ok(keyring) = std::fs::read_to_string(data_dir.join("master.key")) {
        record_keyring(&keyring);
    }
}

/// Records the keys of a keyring in idvault's format (the key file, or `IDVAULT_MASTER_KEY`):
/// `#` comment lines, entries `<version>:<base64 key>` (or one bare key) separated by newlines,
/// commas or blanks.
pub fn record_keyring(text: &str) {
    let entries =
        text.lines().filter(|l| !l.trim_start().starts_with('#')).flat_map(|l| l.split([',', ' ', '\t']));
    for entry in entries.map(str::trim).filter(|e| !e.is_empty()) {
        record_secret("master key", entry.split_once(':').map_or(entry, |(_, key)| key));
    }
}

/// Where a server's stdout and stderr go: the log directory when there is one (named after the
/// test, which is the thread's name), beside the data directory otherwise. The third path is where
/// its audit records are dumped (the log directory only: see [`TestServer::dump_audit`]).
fn console_paths(data_dir: &Path, run: u64) -> (PathBuf, PathBuf, Option<PathBuf>) {
    match test_log_dir() {
        Some(dir) => {
            let test = std::thread::current().name().unwrap_or("server").replace("::", ".");
            (
                dir.join(format!("api-{test}-{run}.stdout.log")),
                dir.join(format!("api-{test}-{run}.stderr.log")),
                Some(dir.join(format!("api-{test}-{run}.{AUDIT_DUMP_SUFFIX}"))),
            )
        }
        None => (
            data_dir.with_extension(format!("stdout-{run}.log")),
            data_dir.with_extension(format!("stderr-{run}.log")),
            None,
        ),
    }
}

/// How a server's audit dump ends its name in the log directory (scripts/scan-secrets scans these
/// besides the `*.log` files).
pub const AUDIT_DUMP_SUFFIX: &str = "audit.jsonl";

/// The management key a data directory's first start announced: a restart announces none, and
/// the audit dump of a restarted server needs one.
static FIRST_KEYS: std::sync::Mutex<std::collections::BTreeMap<PathBuf, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Every audit record of `project` the server at `base_url` answers (newest first), page by page.
fn search_all_audit(base_url: &str, project: &str, key: &str) -> Result<Vec<Value>, String> {
    const PAGE: usize = 1000;
    let url = format!("{base_url}/v1/mgmt/audit/search");
    let auth = format!("Bearer {project}:{key}");
    // Called from `Drop`, often on a test's runtime thread, which cannot block on a future: the
    // search runs on a thread and runtime of its own.
    let search = move || -> Result<Vec<Value>, String> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?;
            let mut all = Vec::new();
            for page in 0.. {
                let resp = client
                    .post(&url)
                    .header("Authorization", &auth)
                    .json(&json!({"limit": PAGE, "page": page}))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = resp.status();
                let text = resp.text().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}: {text}"));
                }
                let body: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                let audits = body["audits"].as_array().cloned().unwrap_or_default();
                let n = audits.len();
                all.extend(audits);
                if n < PAGE {
                    return Ok(all);
                }
            }
            Ok(all)
        })
    };
    std::thread::spawn(search).join().unwrap_or_else(|_| Err("the audit search panicked".into()))
}

/// The backend the suite runs on: `IDVAULT_TEST_BACKEND=postgres` runs every server of this
/// suite on its own fresh PostgreSQL database (scripts/test.sh runs the suite on both).
pub fn postgres_mode() -> bool {
    std::env::var("IDVAULT_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// Runs SQL on a database with psql, failing loudly.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("psql must be installed");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pg_test_db() -> Command {
    Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-db"))
}

/// Creates a fresh PostgreSQL database for this suite with `scripts/pg-test-db`, the helper every
/// test suite shares (names, URL and clean-up are its business), and answers its URL. A
/// [`TestDir`] drops the databases of its data directories; scripts/test.sh's final
/// `pg-test-db drop-all` catches the rest.
pub fn create_test_database() -> String {
    let out = pg_test_db().args(["create", "api"]).output().expect("running scripts/pg-test-db");
    assert!(out.status.success(), "scripts/pg-test-db create api: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        [_name, url] => (*url).to_owned(),
        _ => panic!("scripts/pg-test-db create printed {line:?}, expected \"NAME URL\""),
    }
}

/// Drops a database made by [`create_test_database`], named by its URL; a failure only warns
/// (it runs in `Drop`).
fn drop_test_database(url: &str) {
    let name = url.rsplit('/').next().unwrap_or_default();
    let name = name.split('?').next().unwrap_or_default();
    match pg_test_db().args(["drop", name]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!("could not drop test database {name}: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => eprintln!("could not run scripts/pg-test-db to drop {name}: {e}"),
    }
}

const PG_URL_FILE: &str = ".test-database-url";

/// A test's temporary directory. In PostgreSQL mode, dropping it also drops the databases of the
/// data directories in it (found by their `.test-database-url` files), after the directory's
/// servers are gone: declare it after them, or drop it last.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The database URLs recorded in this directory and its subdirectories (a replica's data
    /// directory names the same database as the first server's: each URL once).
    fn database_urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        let mut dirs = vec![self.path().to_owned()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.file_name().is_some_and(|n| n == PG_URL_FILE) {
                    if let Ok(url) = std::fs::read_to_string(&path) {
                        urls.push(url.trim().to_owned());
                    }
                }
            }
        }
        urls.sort();
        urls.dedup();
        urls
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        for url in self.database_urls() {
            drop_test_database(&url);
        }
    }
}

/// In PostgreSQL mode, the database of this data directory (created on first use, remembered in
/// the directory so that a restart finds it again).
pub fn database_url_for(data_dir: &Path) -> Option<String> {
    if !postgres_mode() {
        return None;
    }
    let file = data_dir.join(PG_URL_FILE);
    if let Ok(url) = std::fs::read_to_string(&file) {
        return Some(url.trim().to_owned());
    }
    std::fs::create_dir_all(data_dir).unwrap();
    let url = create_test_database();
    std::fs::write(&file, &url).unwrap();
    Some(url)
}

/// A ready file's path for a server of `data_dir`: beside the data directory, not in it (the
/// storage checks read every file of the data directory, and this one holds the key).
pub fn ready_file_for(data_dir: &Path) -> PathBuf {
    data_dir.with_extension(format!("ready-{}.json", rand_suffix()))
}

/// Waits until `child` has written its ready file (`serve --ready-file`) and answers its JSON.
/// Panics with `diagnostics()` (the server's output) when the server exits or takes too long.
pub fn wait_for_ready_file(child: &mut Child, path: &Path, diagnostics: impl Fn() -> String) -> Value {
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        // Written atomically (renamed into place): once it exists, it is complete.
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("ready file {} is not JSON ({e}): {text:?}", path.display()));
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited ({status}) before it was ready; {}", diagnostics());
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("server did not write its ready file within {START_TIMEOUT:?}; {}", diagnostics());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `idvault serve` on `data_dir` (and its test database) expecting it to refuse to start:
/// answers its exit status and what it printed on stderr. Panics if it becomes ready instead.
pub fn start_expecting_refusal(data_dir: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    std::fs::create_dir_all(data_dir).unwrap();
    let ready_path = ready_file_for(data_dir);
    let stderr_path = data_dir.with_extension(format!("refused-{}.log", rand_suffix()));
    let mut cmd = Command::new(BIN);
    cmd.args(["--data-dir"]).arg(data_dir);
    if let Some(url) = database_url_for(data_dir) {
        cmd.args(["--database-url", &url]);
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--ready-file"]).arg(&ready_path);
    cmd.env_remove("IDVAULT_MASTER_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(stderr)).spawn().unwrap();
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if ready_path.exists() || std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server started (or hung) instead of refusing: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, std::fs::read_to_string(&stderr_path).unwrap_or_default())
}

/// A running idvault process. Killed (SIGKILL) on drop unless stopped gracefully first.
pub struct TestServer {
    pub child: Child,
    pub base_url: String,
    pub data_dir: PathBuf,
    /// From the ready file: the server's project when it has exactly one.
    pub project_id: Option<String>,
    /// From the ready file: the key created by this start (a first start); None on a restart.
    pub management_key: Option<String>,
    /// The whole ready file.
    pub ready: Value,
    pub ready_path: PathBuf,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    /// Where [`TestServer::dump_audit`] writes (in the log directory only), and the key it
    /// searches with.
    audit_dump: Option<(PathBuf, String)>,
}

impl TestServer {
    /// Starts the server on `data_dir` and waits until it writes its ready file.
    pub fn start(data_dir: &Path) -> TestServer {
        Self::start_with_env(data_dir, &[])
    }

    pub fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> TestServer {
        Self::start_with(data_dir, env, &[])
    }

    /// Starts with extra environment variables and extra `serve` arguments.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)], serve_args: &[&str]) -> TestServer {
        std::fs::create_dir_all(data_dir).unwrap();
        let run = rand_suffix();
        // Console output goes to files: kept for diagnostics, and complete up to the moment the
        // ready file appears (a pipe read by a thread might still be behind).
        let (stdout_path, stderr_path, audit_path) = console_paths(data_dir, run);
        let ready_path = ready_file_for(data_dir);
        let stdout = std::fs::File::create(&stdout_path).unwrap();
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["--data-dir"]).arg(data_dir);
        if let Some(url) = database_url_for(data_dir) {
            cmd.args(["--database-url", &url]);
        }
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--ready-file"]).arg(&ready_path).args(serve_args);
        cmd.env_remove("IDVAULT_MASTER_KEY");
        cmd.env("IDVAULT_LOG", std::env::var("IDVAULT_LOG").unwrap_or_else(|_| LOG_FILTER.to_owned()));
        // The suite's OAuth servers run on 127.0.0.1 over http: allowed here, as an operator
        // would for a local provider. The SSRF tests pass an empty list to get the default.
        cmd.env("IDVAULT_PROVIDER_ALLOWED_HOSTS", LOCAL_PROVIDERS);
        for (k, v) in env {
            if *k == "IDVAULT_MASTER_KEY" {
                record_keyring(v);
            }
            cmd.env(k, v);
        }
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr)).spawn().unwrap();
        let ready = wait_for_ready_file(&mut child, &ready_path, || {
            format!(
                "stdout: {}\nstderr: {}",
                std::fs::read_to_string(&stdout_path).unwrap_or_default(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            )
        });
        let field = |name: &str| ready[name].as_str().map(str::to_owned);
        if let Some(key) = field("managementKey") {
            record_secret("management key", &key);
        }
        record_master_keys(data_dir);
        let audit_key = {
            let mut keys = FIRST_KEYS.lock().unwrap_or_else(|p| p.into_inner());
            match field("managementKey") {
                Some(key) => {
                    keys.insert(data_dir.to_owned(), key.clone());
                    Some(key)
                }
                None => keys.get(data_dir).cloned(),
            }
        };
        TestServer {
            audit_dump: audit_path.zip(audit_key),
            base_url: field("url").expect("the ready file names the url"),
            project_id: field("projectId"),
            management_key: field("managementKey"),
            ready,
            ready_path,
            child,
            data_dir: data_dir.to_owned(),
            stdout_path,
            stderr_path,
        }
    }

    /// With a log directory (scripts/test.sh): writes the audit records of the server's project
    /// there, one JSON object a line, as the management API's search answers them, so that
    /// scripts/scan-secrets looks for secrets in them as in the logs. Runs once, while the server
    /// still runs (before a stop, or the kill of a drop); records its writer still holds (the last
    /// ~100 ms) are not stored yet and so not dumped. A server without a single project, or whose
    /// first key no longer works (revoked by the test, or its address locked out by a brute-force
    /// test), leaves a `.audit-error.log` saying why instead.
    fn dump_audit(&mut self) {
        let Some((path, key)) = self.audit_dump.take() else { return };
        let Some(project) = self.project_id.clone() else { return };
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let text = match search_all_audit(&self.base_url, &project, &key) {
            Ok(records) => records.iter().map(|r| format!("{r}\n")).collect::<String>(),
            Err(why) => {
                let error_path = path.to_string_lossy().replace(AUDIT_DUMP_SUFFIX, "audit-error.log");
                let _ = std::fs::write(error_path, format!("audit dump failed: {why}\n"));
                return;
            }
        };
        let _ = std::fs::write(path, text);
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.dump_audit();
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(20));
        status.unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("server did not stop within 20 s of SIGTERM")
        })
    }

    /// SIGKILL: no chance to flush or checkpoint (nor to dump the audit records: a restart on the
    /// same data directory dumps them).
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the server printed on stdout so far (the first-start banner, the listening line).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// The server's stderr so far. The server writes its log lines from a thread of its own, a
    /// moment after the request that made them was answered: this waits until the file has
    /// stopped growing (for 50 ms, at most 3 s), so that the lines of requests already answered
    /// are in it.
    pub fn stderr(&self) -> String {
        let size = || std::fs::metadata(&self.stderr_path).map(|m| m.len()).unwrap_or(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut last = size();
        let mut still = 0;
        while still < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(25));
            let now = size();
            still = if now == last { still + 1 } else { 0 };
            last = now;
        }
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.dump_audit();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
    );
    h.finish()
}

/// A management API client for one project.
pub struct Api {
    pub http: reqwest::Client,
    pub base_url: String,
    pub auth: String,
}

/// A started server plus a client with its bootstrap key, and the temp dir that holds its data.
/// Fields drop in order: the server stops before its directory (and database) goes.
pub struct TestApp {
    pub server: TestServer,
    pub api: Api,
    pub dir: TestDir,
}

impl TestApp {
    pub fn spawn() -> TestApp {
        Self::spawn_with(&[])
    }

    /// With extra `serve` arguments.
    pub fn spawn_with(serve_args: &[&str]) -> TestApp {
        Self::spawn_with_env(&[], serve_args)
    }

    /// With extra environment variables and `serve` arguments.
    pub fn spawn_with_env(env: &[(&str, &str)], serve_args: &[&str]) -> TestApp {
        let dir = TestDir::new();
        let server = TestServer::start_with(&dir.path().join("data"), env, serve_args);
        let api = Api::new(
            &server.base_url,
            server.project_id.as_deref().unwrap(),
            server.management_key.as_deref().unwrap(),
        );
        TestApp { server, api, dir }
    }
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    /// Asserts a Descope error body with this HTTP status and errorCode.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["errorCode"], code, "body: {}", self.body);
        assert!(self.body["errorDescription"].as_str().is_some_and(|s| !s.is_empty()), "body: {}", self.body);
        assert!(self.body["errorMessage"].is_string(), "body: {}", self.body);
    }
}

impl Api {
    pub fn new(base_url: &str, project_id: &str, key: &str) -> Api {
        record_secret("management key", key);
        Api {
            http: reqwest::Client::new(),
            base_url: base_url.to_owned(),
            auth: format!("Bearer {project_id}:{key}"),
        }
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base_url, path))
            .header("Authorization", &self.auth);
        record_authorization(&self.auth);
        if let Some(b) = body {
            record_secrets_in(&b);
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body ({status}): {text:?}"));
        record_secrets_in(&body);
        Resp { status, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn create_user(&self, body: Value) -> Value {
        let r = self.post("/v1/mgmt/user/create", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["user"].clone()
    }

    pub async fn put_token(&self, body: Value) -> Resp {
        self.send(reqwest::Method::PUT, "/v1/mgmt/user/provider/token", Some(body)).await
    }

    pub async fn get_token(&self, login_id: &str, provider: &str, with_refresh: bool) -> Resp {
        let q = format!(
            "/v1/mgmt/user/provider/token?loginId={}&provider={provider}&withRefreshToken={with_refresh}&forceRefresh=false",
            urlencode(login_id)
        );
        self.get(&q).await
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn google_token(login_id: &str, access: &str, refresh: &str) -> Value {
    json!({
        "loginId": login_id,
        "provider": "google",
        "providerUserId": "g-1234",
        "accessToken": access,
        "refreshToken": refresh,
        "expiration": 4102444800i64,
        "scopes": ["openid", "email"],
    })
}

/// The tenants, roles and custom attributes the user tests refer to (users may only name
/// defined ones).
pub async fn seed_directory(api: &Api) {
    for (id, name) in [("t1", "Tenant One"), ("acme", "Acme Inc")] {
        let r = api
            .post("/v1/mgmt/tenant/create", json!({"id": id, "name": name, "selfProvisioningDomains": []}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for name in ["admin", "viewer", "r", "boss"] {
        let r = api.post("/v1/mgmt/role/create", json!({"name": name})).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = api
        .post(
            "/v1/mgmt/user/customattribute/create",
            json!({"attributes": [{"name": "plan", "type": 1, "displayName": "Plan"}, {"name": "seats", "type": "number", "displayName": "Seats"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Whether the stored data of a data directory holds `needle` in clear.
pub fn storage_contains(data_dir: &Path, needle: &str) -> bool {
    storage_dump(data_dir).windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Runs one SQL statement on the stored data (SQLite file, or the PostgreSQL database).
pub fn exec_sql(data_dir: &Path, sql: &str) {
    match database_url_for(data_dir) {
        Some(url) => {
            psql(&url, sql);
        }
        None => {
            // With the audit trail's file attached as the server attaches it, so that
            // `audit_events` names the same table on both backends.
            let conn = rusqlite::Connection::open(data_dir.join("idvault.db")).unwrap();
            let audit = data_dir.join("idvault-audit.db");
            conn.execute("ATTACH DATABASE ?1 AS audit", [audit.to_str().unwrap()]).unwrap();
            conn.execute_batch(sql).unwrap();
        }
    }
}

/// Everything stored for a data directory, as bytes (for "no secret in clear" checks): every file
/// in it (the SQLite database, its WAL, the key file), and in PostgreSQL mode a `pg_dump` of its
/// database.
pub fn storage_dump(data_dir: &Path) -> Vec<u8> {
    let mut all: Vec<u8> = std::fs::read_dir(data_dir)
        .map(|d| d.flatten().filter_map(|e| std::fs::read(e.path()).ok()).flatten().collect())
        .unwrap_or_default();
    if let Some(url) = database_url_for(data_dir) {
        let out =
            Command::new("pg_dump").args(["--data-only", &url]).output().expect("pg_dump must be installed");
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stdout.is_empty());
        all.extend(out.stdout);
    }
    assert!(!all.is_empty(), "nothing stored to inspect");
    all
}
