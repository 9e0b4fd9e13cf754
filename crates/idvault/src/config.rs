//! The effective configuration: one typed struct, [`Config`], merged by figment from (lowest to
//! highest precedence) built-in defaults, a TOML file (`--config` / `IDVAULT_CONFIG`), `IDVAULT_*`
//! environment variables and command-line flags.
//!
//! The file is flat and its keys are the flag names in snake_case (`--db-pool-size` is
//! `db_pool_size`); the environment variable of a key is `IDVAULT_` and the key in upper case.
//! Every secret also has a `<key>_file` form (`master_key_file`, `IDVAULT_MASTER_KEY_FILE`...) that
//! names a file holding it (a trailing newline is ignored): container secrets are files, and a
//! value in a variable shows in `/proc/<pid>/environ` and in crash reports.
//!
//! A misspelt name is refused, with the nearest valid one, rather than ignored: in the file an
//! unknown key, in the environment an `IDVAULT_*` variable that is neither a setting nor one of
//! [`OTHER_ENV_VARS`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use idvault_api::TrustedProxies;
use idvault_core::provider::AllowedHosts;

/// The keys that hold secrets: masked by `config check`, and each has a `<key>_file` form.
pub const SECRET_KEYS: &[&str] = &["database_url", "master_key", "metrics_token"];
/// Their `_file` forms, in the same order.
const SECRET_FILE_KEYS: &[&str] = &["database_url_file", "master_key_file", "metrics_token_file"];

/// What secrets print as.
const MASK: &str = "********";

/// `IDVAULT_*` variables that are not settings and are accepted in the environment all the same,
/// each with why. Any other `IDVAULT_*` name that is no setting is refused as a likely typo. A test
/// (tests/api/config.rs) reads every `IDVAULT_` name the repository mentions and fails on one that
/// is neither a setting nor listed here, so a new variable cannot make servers refuse to start.
pub const OTHER_ENV_VARS: &[(&str, &str)] = &[
    // Read by idvault itself, outside the settings.
    ("IDVAULT_CONFIG", "names the configuration file (`--config`)"),
    ("IDVAULT_LOG", "the log filter, `RUST_LOG` syntax (levels per module)"),
    ("IDVAULT_URL", "`healthcheck --url`"),
    ("IDVAULT_CLIENT_SECRET", "`provider set`: the provider's client secret"),
    ("IDVAULT_CLIENT_SECRET_FILE", "`provider set`: a file holding the provider's client secret"),
    // The test suites' own variables: scripts/test.sh, scripts/crash-test, the SDK suites and the
    // API fuzzing export them, and every server those suites start inherits their environment.
    ("IDVAULT_BIN", "test suites: the idvault binary under test"),
    ("IDVAULT_TEST_BACKEND", "test suites: `sqlite` or `postgres`"),
    ("IDVAULT_TEST_LOG_DIR", "test suites: where server logs and the secrets used are recorded"),
    ("IDVAULT_TEST_PG_ADMIN_URL", "test suites: the PostgreSQL server test databases are made on"),
    ("IDVAULT_KEEP_DATA", "Node SDK suite: keep the servers' data directories"),
    ("IDVAULT_CRASH_ROUNDS", "scripts/crash-test: rounds of the crash test"),
    ("IDVAULT_CRASH_WRITE_MS", "scripts/crash-test: how long each round writes"),
];

const ENV_PREFIX: &str = "IDVAULT_";

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Human,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Every setting of idvault. Field names are the configuration file's keys; the doc comment of
/// each is its entry in the configuration reference (docs/configuration.md, generated from it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory holding the SQLite database and the master key file.
    pub data_dir: PathBuf,
    /// PostgreSQL instead of SQLite in the data directory, e.g. `postgres://idvault@db/idvault`
    /// (secret: it can carry a password). Several replicas may share one database.
    #[serde(serialize_with = "mask")]
    pub database_url: Option<SecretString>,
    /// PostgreSQL: pooled connections for queries (refresh locks use a second pool of this size).
    pub db_pool_size: Option<usize>,
    /// PostgreSQL: how long to wait for a connection.
    #[serde(with = "opt_duration")]
    pub db_connect_timeout: Option<Duration>,
    /// PostgreSQL: `statement_timeout` of every session (`0s` keeps the server's setting).
    #[serde(with = "opt_duration")]
    pub db_statement_timeout: Option<Duration>,
    /// SQLite: MiB of the database file memory-mapped for reads (default: as much as SQLite allows,
    /// 2047 MiB; `0` reads through SQLite's page cache).
    pub sqlite_mmap_mib: Option<u64>,
    /// Master keyring (secret): one base64 key, or `version:base64` entries separated by commas.
    /// When unset, `master.key` in the data directory is used (created on first start).
    #[serde(serialize_with = "mask")]
    pub master_key: Option<SecretString>,

    /// Address to listen on. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// The URL browsers and providers reach idvault at (default `http://<listen address>`).
    pub public_url: Option<String>,
    /// Reverse proxies, comma-separated IP addresses and CIDRs, whose `X-Forwarded-For` names the
    /// client (for audit records, rate limits, access keys' permitted IPs). Empty: the TCP peer is
    /// the client.
    #[serde(with = "trusted_proxies")]
    pub trusted_proxies: TrustedProxies,
    /// Once listening, write the server's URL, port, project id, backend and pid to this file as
    /// JSON (for scripts and test harnesses).
    pub ready_file: Option<PathBuf>,
    /// Do not apply migrations at start; refuse to run on an out-of-date schema instead.
    pub no_migrate: bool,
    /// Refresh a stored access token on read when it expires within this margin.
    #[serde(with = "duration")]
    pub refresh_skew: Duration,
    /// Timeout of one call to an OAuth provider (waiting for a slot included).
    #[serde(with = "duration")]
    pub provider_timeout: Duration,
    /// Concurrent calls per project and provider host.
    pub provider_concurrency: usize,
    /// Refreshes in flight per project and provider (or outbound app); further ones wait for a
    /// slot, so that a hung provider cannot hold all refresh capacity.
    pub provider_refresh_concurrency: usize,
    /// Consecutive failed refreshes after which a provider's circuit opens (its refreshes then
    /// fail at once with 502 `E112113`). `0` never opens it. Counted per process.
    pub provider_breaker_failures: u32,
    /// How long an open provider circuit refuses refreshes before letting one through as a probe.
    #[serde(with = "duration")]
    pub provider_breaker_cooldown: Duration,
    /// Hosts, IP addresses and CIDRs, comma-separated, that OAuth providers may use although they
    /// are not public (http included), e.g. `127.0.0.1,10.0.0.0/8,idp.internal`.
    #[serde(with = "allowed_hosts")]
    pub provider_allowed_hosts: AllowedHosts,
    /// Lifetime of session JWTs.
    #[serde(with = "duration")]
    pub session_ttl: Duration,
    /// How long a started sign-in may take before its state expires.
    #[serde(with = "duration")]
    pub oauth_state_ttl: Duration,
    /// Lifetime of refresh JWTs (sessions).
    #[serde(with = "duration")]
    pub refresh_ttl: Duration,
    /// Most pending (started, unexpired) sign-ins per project before `authorize` answers 429.
    pub max_pending_sign_ins: u64,
    /// Time a client has to send a request's headers (also closes idle keep-alive connections).
    /// `0s` disables it.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// Requests per second per client address on the unauthenticated `/v1/auth/*` routes. `0`
    /// disables the limit.
    pub auth_rate_limit: u32,
    /// Burst of that limit: requests a client address may make at once. `0` disables it.
    pub auth_rate_burst: u32,
    /// Wrong management keys and forged session tokens per minute a client address may present
    /// once its burst is spent (then 429). `0` disables the limit.
    pub credential_failure_limit: u32,
    /// Burst of that limit. `0` disables it.
    pub credential_failure_burst: u32,
    /// Days audit records are kept; older ones are deleted at start and then every hour. `0`
    /// keeps them forever.
    pub audit_retention_days: u32,
    /// How often expired audit records are purged.
    #[serde(with = "duration")]
    pub audit_purge_interval: Duration,

    /// Log line format on stderr: `human` or `json`. Levels per module come from `IDVAULT_LOG`.
    pub log_format: LogFormat,
    /// Serve `/metrics` (Prometheus) on this separate address instead of the main listener, for
    /// example an address only the monitoring network reaches; no token is asked there.
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token (secret) `/metrics` on the main listener asks for. Unset: `/metrics` on the
    /// main listener answers anyone.
    #[serde(serialize_with = "mask")]
    pub metrics_token: Option<SecretString>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./idvault-data"),
            database_url: None,
            db_pool_size: None,
            db_connect_timeout: None,
            db_statement_timeout: None,
            sqlite_mmap_mib: None,
            master_key: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            trusted_proxies: TrustedProxies::none(),
            ready_file: None,
            no_migrate: false,
            refresh_skew: Duration::from_secs(60),
            provider_timeout: Duration::from_secs(10),
            provider_concurrency: 32,
            provider_refresh_concurrency: 4,
            provider_breaker_failures: 5,
            provider_breaker_cooldown: Duration::from_secs(30),
            provider_allowed_hosts: AllowedHosts::none(),
            session_ttl: Duration::from_secs(10 * 60),
            oauth_state_ttl: Duration::from_secs(10 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            max_pending_sign_ins: idvault_core::limits::MAX_PENDING_SIGN_INS,
            header_read_timeout: Duration::from_secs(10),
            auth_rate_limit: idvault_api::RateLimit::AUTH_DEFAULT.per_second,
            auth_rate_burst: idvault_api::RateLimit::AUTH_DEFAULT.burst,
            credential_failure_limit: idvault_api::FailureLimit::DEFAULT.per_minute,
            credential_failure_burst: idvault_api::FailureLimit::DEFAULT.burst,
            audit_retention_days: 90,
            audit_purge_interval: Duration::from_secs(3600),
            log_format: LogFormat::Human,
            metrics_listen: None,
            metrics_token: None,
        }
    }
}

/// A configuration that could not be loaded; the message names the key and where it came from.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The merged configuration and where each value came from.
pub struct Loaded {
    pub config: Config,
    figment: Figment,
    /// The [`OTHER_ENV_VARS`] in the environment, for `config check` to show.
    other_env: Vec<(&'static str, &'static str)>,
}

/// Merges defaults < `file` < environment < `flags` (a serializable struct whose unset flags are
/// skipped) into a [`Config`]. Unknown keys in the file and unknown `IDVAULT_*` variables are
/// refused with the nearest valid name.
pub fn load(file: Option<&Path>, flags: &impl Serialize) -> Result<Loaded, ConfigError> {
    let env_names: Vec<String> =
        std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned()).collect();
    let (mut problems, other_env) = check_env_names(&env_names);
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError(format!("configuration file {} not found", path.display())));
        }
        figment = figment.merge(SecretFiles(Toml::file_exact(path)));
    }
    let names = names();
    figment = figment
        .merge(SecretFiles(Env::prefixed(ENV_PREFIX).only(&names)))
        .merge(Named("command-line flag", Serialized::defaults(flags)));
    let extracted = figment.extract::<Config>().map_err(describe);
    if let Err(ConfigError(e)) = &extracted {
        problems.push(e.clone());
    }
    if !problems.is_empty() {
        return Err(ConfigError(problems.join("\n")));
    }
    let mut config = extracted?;
    // An empty variable (`IDVAULT_DATABASE_URL=`) means unset, as it did before the file existed.
    use secrecy::ExposeSecret;
    for secret in [&mut config.database_url, &mut config.master_key, &mut config.metrics_token] {
        if secret.as_ref().is_some_and(|s| s.expose_secret().is_empty()) {
            *secret = None;
        }
    }
    Ok(Loaded { config, figment, other_env })
}

/// The configuration file's keys, in the struct's order.
pub fn keys() -> &'static [&'static str] {
    fields_of::<Config>()
}

/// Every name a setting may be given under, in the file and (upper case, after `IDVAULT_`) in
/// the environment: each key, and the `_file` form of the secrets.
fn names() -> Vec<&'static str> {
    keys().iter().chain(SECRET_FILE_KEYS).copied().collect()
}

/// Sorts the environment's `IDVAULT_*` variables: settings (matched as figment's `Env` matches
/// them: the prefix in any case, the rest case-insensitively) pass, [`OTHER_ENV_VARS`] (matched
/// exactly, as they are read) are answered, and each other one is a refusal naming the nearest
/// valid variable. A misspelt variable would otherwise be ignored without a word.
fn check_env_names(names: &[String]) -> (Vec<String>, Vec<(&'static str, &'static str)>) {
    let settings = self::names();
    let mut problems = Vec::new();
    let mut others = Vec::new();
    for name in names {
        let trimmed = name.trim();
        let Some(rest) = trimmed
            .get(..ENV_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
            .and_then(|_| trimmed.get(ENV_PREFIX.len()..))
        else {
            continue;
        };
        if settings.iter().any(|k| k.eq_ignore_ascii_case(rest.trim())) {
            continue;
        }
        if let Some(other) = OTHER_ENV_VARS.iter().find(|(n, _)| *n == name.as_str()) {
            others.push(*other);
            continue;
        }
        let candidates: Vec<String> = settings
            .iter()
            .map(|k| format!("{ENV_PREFIX}{}", k.to_ascii_uppercase()))
            .chain(OTHER_ENV_VARS.iter().map(|(n, _)| (*n).to_owned()))
            .collect();
        // Compared without the prefix, which every candidate shares, so that the typo's distance
        // is judged against the length of what differs.
        let hint = nearest(&rest.to_ascii_uppercase(), candidates.iter().map(|c| &c[ENV_PREFIX.len()..]))
            .map(|n| format!("{ENV_PREFIX}{n}"));
        problems.push(refusal("environment variable", name, "", hint.as_deref()));
    }
    others.sort_unstable();
    others.dedup();
    (problems, others)
}

/// The refusal of a name that is not valid where it was given, with the nearest valid name when
/// it is likely a typo: one wording for the file's keys and the environment's variables.
fn refusal(what: &str, name: &str, place: &str, nearest: Option<&str>) -> String {
    let hint = nearest.map(|n| format!("; did you mean `{n}`?")).unwrap_or_default();
    format!("unknown {what} `{name}`{place}{hint}")
}

/// Turns figment's errors into one line per problem, with a suggestion for a misspelt key.
fn describe(errors: figment::Error) -> ConfigError {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let source = e.metadata.as_ref().map(|m| describe_source(m, None));
            let place = source.map(|s| format!(" (in {s})")).unwrap_or_default();
            match &e.kind {
                figment::error::Kind::UnknownField(key, _) => refusal("key", key, &place, nearest_key(key)),
                _ => {
                    let key = e.path.last().map(|k| format!("`{k}`: ")).unwrap_or_default();
                    format!("invalid configuration: {key}{}{place}", e.kind)
                }
            }
        })
        .collect();
    ConfigError(lines.join("\n"))
}

/// The valid key closest to a misspelt one, if any is close enough to be a likely typo.
pub fn nearest_key(unknown: &str) -> Option<&'static str> {
    nearest(unknown, names())
}

/// The candidate closest to `unknown`, if any is close enough to be a likely typo.
fn nearest<'a>(unknown: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn describe_source(metadata: &Metadata, key: Option<&str>) -> String {
    match (&metadata.source, key) {
        (Some(figment::Source::File(path)), _) => format!("{}", path.display()),
        (_, Some(key)) if metadata.name.contains("environment") => {
            format!("environment IDVAULT_{}", key.to_ascii_uppercase())
        }
        _ => metadata.name.to_string(),
    }
}

impl Loaded {
    /// The effective configuration as TOML, every secret masked, each value followed by where it
    /// came from (`idvault config check`).
    pub fn render(&self) -> Result<String, ConfigError> {
        let values = serde_json::to_value(&self.config).map_err(|e| ConfigError(e.to_string()))?;
        let mut out = String::new();
        for key in keys() {
            let source = self
                .figment
                .find_metadata(key)
                .map(|m| describe_source(m, Some(key)))
                .unwrap_or_else(|| "default".to_owned());
            match values.get(*key) {
                None | Some(serde_json::Value::Null) => out.push_str(&format!("# {key} (unset)\n")),
                Some(value) => out.push_str(&format!("{key} = {value}  # {source}\n")),
            }
        }
        // Named, never valued: a client secret may be among them.
        for (name, why) in &self.other_env {
            out.push_str(&format!("# {name} is set, not a setting: {why}\n"));
        }
        Ok(out)
    }
}

/// A provider shown under another name in `config check` and in errors.
struct Named<P>(&'static str, P);

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.0)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.1.data()
    }
}

/// Keys with no flag (secrets are not put on command lines), described here.
const NO_FLAG_DOCS: &[(&str, &str)] = &[(
    "metrics_token",
    "Bearer token that `/metrics` on the main listener asks for (`Authorization: Bearer <token>`). \
     Unset: `/metrics` on the main listener answers anyone. Not asked on `metrics_listen`.",
)];

/// docs/configuration.md: every key with its environment variable, flag, default and meaning.
/// The meanings are the flags' help (src/cli.rs), so that `--help` and the reference say the same;
/// the defaults are `Config::default()`'s. A test keeps the committed file equal to this.
pub fn reference(cli: &clap::Command) -> Result<String, ConfigError> {
    let serve = cli.find_subcommand("serve");
    let flag_of = |key: &str| {
        let global = cli.get_arguments().find(|a| a.get_id() == key).map(|a| (a, false));
        global
            .or_else(|| serve.and_then(|s| s.get_arguments().find(|a| a.get_id() == key)).map(|a| (a, true)))
    };
    let defaults = serde_json::to_value(Config::default()).map_err(|e| ConfigError(e.to_string()))?;
    let mut out = String::from(REFERENCE_HEAD);
    out.push_str("| key | environment | flag | default | meaning |\n|---|---|---|---|---|\n");
    for key in keys() {
        let flag = flag_of(key);
        let help = match flag {
            Some((arg, _)) => arg.get_long_help().or(arg.get_help()).map(ToString::to_string),
            None => NO_FLAG_DOCS.iter().find(|(k, _)| k == key).map(|(_, doc)| (*doc).to_owned()),
        }
        .ok_or_else(|| {
            ConfigError(format!("`{key}` has no description: give it a flag or a NO_FLAG_DOCS entry"))
        })?;
        let help = help.split(" [default: ").next().unwrap_or_default();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
        let mut env = format!("`IDVAULT_{}`", key.to_ascii_uppercase());
        if SECRET_KEYS.contains(key) {
            env.push_str(&format!(", `IDVAULT_{}_FILE`", key.to_ascii_uppercase()));
        }
        let flag = match flag {
            Some((arg, serve_only)) => {
                let name = arg.get_long().unwrap_or(key);
                format!("`--{name}`{}", if serve_only { " (serve)" } else { "" })
            }
            None => "none (secret)".to_owned(),
        };
        let default = match defaults.get(*key) {
            None | Some(serde_json::Value::Null) => "unset".to_owned(),
            Some(serde_json::Value::String(s)) if s.is_empty() => "empty".to_owned(),
            Some(value) => format!("`{value}`"),
        };
        out.push_str(&format!("| `{key}` | {env} | {flag} | {default} | {help} |\n"));
    }
    out.push_str(OTHER_ENV_HEAD);
    out.push_str("| variable | why |\n|---|---|\n");
    for (name, why) in OTHER_ENV_VARS {
        out.push_str(&format!("| `{name}` | {} |\n", why.replace('|', "\\|")));
    }
    Ok(out)
}

const OTHER_ENV_HEAD: &str = "
## Other `IDVAULT_*` variables

Any other `IDVAULT_*` variable in the environment that is not one of the settings above is
refused with the nearest valid name (`IDVAULT_LISTN`: did you mean `IDVAULT_LISTEN`?), as an
unknown key in the file is: a misspelt variable would otherwise be ignored without a word. These
are not settings and are accepted (`config check` lists those set, never their values):

";

const REFERENCE_HEAD: &str = "# Configuration reference

Generated from the code by `idvault config reference` (src/config.rs and the flags' help in
src/cli.rs); a test fails when this file and the code differ. Regenerate it with
`UPDATE_DOCS=1 cargo test -p idvault --test api config_reference`.

Every key can be set in the TOML file named by `--config FILE` or `IDVAULT_CONFIG` (flat: `key =
value`, keys as below), in the environment, or with the flag; a flag wins over the environment,
which wins over the file, which wins over the default. Durations are written as `10s`, `5min`,
`30days`. Secrets also have a `_file` form (`master_key_file` in the file,
`IDVAULT_MASTER_KEY_FILE` in the environment) naming a file that holds the value; its trailing
newline is ignored. `idvault config check` prints the effective configuration with secrets masked
and refuses unknown keys and unknown `IDVAULT_*` variables.

```toml
# /etc/idvault/idvault.toml
listen = \"0.0.0.0:8080\"
public_url = \"https://id.example.com\"
database_url_file = \"/run/secrets/idvault-database-url\"
master_key_file = \"/run/secrets/idvault-master-key\"
db_pool_size = 16
refresh_skew = \"2min\"
log_format = \"json\"
metrics_listen = \"10.0.0.5:9464\"
```

";

/// Replaces each `<secret>_file` key of a provider's data by `<secret>`, read from that file
/// (a trailing newline removed), so that a file read from the environment has the environment's
/// precedence. Setting both forms in one place is refused.
struct SecretFiles<P>(P);

impl<P: Provider> Provider for SecretFiles<P> {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = self.0.data()?;
        for dict in data.values_mut() {
            for key in SECRET_KEYS {
                let file_key = format!("{key}_file");
                let Some(path) = dict.remove(&file_key) else { continue };
                if dict.contains_key(*key) {
                    return Err(format!("set `{key}` or `{file_key}`, not both").into());
                }
                let Some(path) = path.as_str().map(PathBuf::from) else {
                    return Err(format!("`{file_key}` must be a file path").into());
                };
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("`{file_key}`: reading {}: {e}", path.display()))?;
                let secret = text.strip_suffix('\n').unwrap_or(&text);
                let secret = secret.strip_suffix('\r').unwrap_or(secret);
                dict.insert((*key).to_owned(), Value::from(secret.to_owned()));
            }
        }
        Ok(data)
    }
}

/// The field names a `Deserialize` struct asks for, taken from serde's derive: the list of keys
/// cannot drift from the struct.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// Secrets serialize as a mask, never as themselves.
fn mask<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str(MASK),
        None => s.serialize_none(),
    }
}

/// Durations are written as humans do: `60s`, `10min`, `30days`.
mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration such as `10s` ({e})")))
    }
}

mod opt_duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

mod allowed_hosts {
    use super::*;

    pub fn serialize<S: Serializer>(hosts: &AllowedHosts, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hosts.to_string())
    }

    /// A comma-separated string or a list of entries.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AllowedHosts, D::Error> {
        AllowedHosts::parse(&list(d)?).map_err(serde::de::Error::custom)
    }

    /// A list written as one comma-separated string (a flag, an environment variable) or as a
    /// TOML array, as the comma-separated string.
    pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum List {
            One(String),
            Many(Vec<String>),
        }
        Ok(match List::deserialize(d)? {
            List::One(s) => s,
            List::Many(v) => v.join(","),
        })
    }
}

mod trusted_proxies {
    use super::*;

    pub fn serialize<S: Serializer>(proxies: &TrustedProxies, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&proxies.to_string())
    }

    /// A comma-separated string or a list of entries.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TrustedProxies, D::Error> {
        let text = super::allowed_hosts::list(d)?;
        TrustedProxies::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Checks a duration flag at parse time (figment parses it again into the struct).
pub fn duration_flag(s: &str) -> Result<String, String> {
    humantime::parse_duration(s).map(|_| s.to_owned()).map_err(|e| e.to_string())
}

/// Checks a trusted-proxies flag at parse time.
pub fn trusted_proxies_flag(s: &str) -> Result<String, String> {
    TrustedProxies::parse(s).map(|_| s.to_owned())
}

/// Checks an allowed-hosts flag at parse time.
pub fn allowed_hosts_flag(s: &str) -> Result<String, String> {
    AllowedHosts::parse(s).map(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_a_key() {
        for secret in SECRET_KEYS {
            assert!(keys().contains(secret), "{secret}");
        }
        let file_forms: Vec<String> = SECRET_KEYS.iter().map(|k| format!("{k}_file")).collect();
        assert_eq!(file_forms, SECRET_FILE_KEYS);
        assert!(keys().contains(&"listen") && keys().contains(&"sqlite_mmap_mib"));
    }

    #[test]
    fn a_typo_suggests_the_nearest_key() {
        assert_eq!(nearest_key("listn"), Some("listen"));
        assert_eq!(nearest_key("db_pool_sise"), Some("db_pool_size"));
        assert_eq!(nearest_key("completely_different"), None);
    }

    #[test]
    fn unknown_idvault_variables_are_refused_with_the_nearest_name() {
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let (problems, others) = check_env_names(&names(&[
            "IDVAULT_LISTEN",
            "idvault_db_pool_size",
            "IDVAULT_MASTER_KEY_FILE",
            "IDVAULT_LOG",
            "IDVAULT_TEST_BACKEND",
            "PATH",
            "IDVAULTISH",
        ]));
        assert!(problems.is_empty(), "{problems:?}");
        let others: Vec<&str> = others.iter().map(|(n, _)| *n).collect();
        assert_eq!(others, ["IDVAULT_LOG", "IDVAULT_TEST_BACKEND"]);

        let (problems, _) = check_env_names(&names(&[
            "IDVAULT_LISTN",
            "IDVAULT_MASTER_KEY_FLE",
            "IDVAULT_CONFG",
            "idvault_log",
            "IDVAULT_SOMETHING_ELSE_ENTIRELY",
        ]));
        assert_eq!(
            problems,
            [
                "unknown environment variable `IDVAULT_LISTN`; did you mean `IDVAULT_LISTEN`?",
                "unknown environment variable `IDVAULT_MASTER_KEY_FLE`; did you mean `IDVAULT_MASTER_KEY_FILE`?",
                "unknown environment variable `IDVAULT_CONFG`; did you mean `IDVAULT_CONFIG`?",
                "unknown environment variable `idvault_log`; did you mean `IDVAULT_LOG`?",
                "unknown environment variable `IDVAULT_SOMETHING_ELSE_ENTIRELY`",
            ]
        );
    }

    #[test]
    fn secrets_never_serialize() {
        let config = Config { master_key: Some(SecretString::from("s3cr3t-key")), ..Config::default() };
        let text = serde_json::to_string(&config).map_err(|e| e.to_string());
        assert!(text.as_deref().is_ok_and(|t| !t.contains("s3cr3t") && t.contains(MASK)), "{text:?}");
    }
}
