//! Configuration: a TOML file, `IDVAULT_*` variables and flags, in that order of precedence; the
//! `_FILE` form of secrets; unknown keys refused with a suggestion; secrets masked.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::*;

/// `idvault --config <file> <args>` with only the given `IDVAULT_*` variables set.
fn idvault(config: Option<&Path>, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("IDVAULT_") {
            cmd.env_remove(key);
        }
    }
    if let Some(file) = config {
        cmd.arg("--config").arg(file);
    }
    cmd.args(args).envs(env.iter().copied());
    cmd.output().unwrap()
}

fn check(config: Option<&Path>, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut all = vec!["config", "check"];
    all.extend_from_slice(args);
    let out = idvault(config, env, &all);
    assert!(out.status.success(), "config check failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The line of `key` in `config check`'s output.
fn line<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{output}"))
}

#[test]
fn flags_win_over_environment_which_wins_over_the_file() {
    let dir = TestDir::new();
    let file = dir.path().join("idvault.toml");
    std::fs::write(
        &file,
        "provider_concurrency = 3\nrefresh_skew = \"5s\"\nauth_rate_limit = 11\nsession_ttl = \"2min\"\n",
    )
    .unwrap();

    // The file alone beats the defaults.
    let out = check(Some(&file), &[], &[]);
    assert!(line(&out, "provider_concurrency").starts_with("provider_concurrency = 3  #"), "{out}");
    assert!(line(&out, "provider_concurrency").contains("idvault.toml"), "{out}");
    assert!(line(&out, "listen").starts_with("listen = \"127.0.0.1:8080\"  # default"), "{out}");

    // The environment beats the file...
    let env = [("IDVAULT_PROVIDER_CONCURRENCY", "5"), ("IDVAULT_REFRESH_SKEW", "7s")];
    let out = check(Some(&file), &env, &[]);
    assert!(
        line(&out, "provider_concurrency")
            .starts_with("provider_concurrency = 5  # environment IDVAULT_PROVIDER_CONCURRENCY"),
        "{out}"
    );
    assert!(line(&out, "refresh_skew").starts_with("refresh_skew = \"7s\""), "{out}");
    assert!(line(&out, "auth_rate_limit").starts_with("auth_rate_limit = 11"), "{out}");

    // ...and flags beat both.
    let out = check(Some(&file), &env, &["--provider-concurrency", "9", "--session-ttl", "1h"]);
    assert!(
        line(&out, "provider_concurrency").starts_with("provider_concurrency = 9  # command-line flag"),
        "{out}"
    );
    assert!(line(&out, "session_ttl").starts_with("session_ttl = \"1h\""), "{out}");
    assert!(line(&out, "refresh_skew").starts_with("refresh_skew = \"7s\""), "{out}");

    // IDVAULT_CONFIG names the file too.
    let out = check(None, &[("IDVAULT_CONFIG", file.to_str().unwrap())], &[]);
    assert!(line(&out, "auth_rate_limit").starts_with("auth_rate_limit = 11"), "{out}");
}

#[test]
fn the_server_runs_with_the_merged_configuration() {
    let dir = TestDir::new();
    let data = dir.path().join("data");
    let file = dir.path().join("idvault.toml");
    // The file's listen address is taken (port 1 needs root... or is refused): the flag wins.
    std::fs::write(&file, "listen = \"192.0.2.1:1\"\nauth_rate_limit = 1\nauth_rate_burst = 1\n").unwrap();
    let server = TestServer::start_with_env(&data, &[("IDVAULT_CONFIG", file.to_str().unwrap())]);
    // The file's auth-route rate limit applies: the second request at once is refused.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let statuses: Vec<u16> = rt.block_on(async {
        let http = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let resp = http
                .post(server.url("/v1/auth/logout"))
                .header("Authorization", "Bearer P:invalid")
                .send()
                .await
                .unwrap();
            statuses.push(resp.status().as_u16());
        }
        statuses
    });
    assert!(statuses.contains(&429), "the file's rate limit was not applied: {statuses:?}");
}

#[test]
fn unknown_keys_are_refused_with_the_nearest_name() {
    let dir = TestDir::new();
    let file = dir.path().join("idvault.toml");
    std::fs::write(&file, "listn = \"127.0.0.1:9000\"\n").unwrap();
    let out = idvault(Some(&file), &[], &["config", "check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `listn`"), "{err}");
    assert!(err.contains("did you mean `listen`?"), "{err}");

    // `serve` refuses to start on it too.
    let (status, err) =
        start_expecting_refusal(&dir.path().join("data"), &[("IDVAULT_CONFIG", file.to_str().unwrap())]);
    assert!(!status.success());
    assert!(err.contains("unknown key `listn`") && err.contains("`listen`"), "{err}");

    // A value of the wrong kind names its key.
    std::fs::write(&file, "refresh_skew = \"soon\"\n").unwrap();
    let out = idvault(Some(&file), &[], &["config", "check"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refresh_skew"), "{out:?}");
}

#[test]
fn secrets_come_from_files_and_are_never_printed() {
    let dir = TestDir::new();
    let key = String::from_utf8(idvault(None, &[], &["keys", "generate"]).stdout).unwrap().trim().to_owned();
    let key_file = dir.path().join("master-key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let password = "pg-pass-7c1f";
    let url_file = dir.path().join("db-url");
    std::fs::write(&url_file, format!("postgres://idvault:{password}@db.invalid/idvault\n")).unwrap();
    let token = "metrics-token-5e2a";
    let config = dir.path().join("idvault.toml");
    std::fs::write(&config, format!("metrics_token = \"{token}\"\n")).unwrap();

    let out = check(
        Some(&config),
        &[
            ("IDVAULT_MASTER_KEY_FILE", key_file.to_str().unwrap()),
            ("IDVAULT_DATABASE_URL_FILE", url_file.to_str().unwrap()),
        ],
        &[],
    );
    assert!(line(&out, "master_key").starts_with("master_key = \"********\""), "{out}");
    assert!(line(&out, "database_url").starts_with("database_url = \"********\""), "{out}");
    assert!(line(&out, "metrics_token").starts_with("metrics_token = \"********\""), "{out}");
    let secret_part = key.split(':').nth(1).unwrap();
    for secret in [secret_part, password, token] {
        assert!(!out.contains(secret), "config check printed a secret:\n{out}");
    }

    // Both forms of one secret in one place are refused.
    let out = idvault(
        None,
        &[("IDVAULT_MASTER_KEY", &key), ("IDVAULT_MASTER_KEY_FILE", key_file.to_str().unwrap())],
        &["config", "check"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"), "{out:?}");

    // The server uses the key read from the file (trailing newline removed): it creates no
    // master.key of its own, and a restart with the same file opens its data keys.
    let data = dir.path().join("data");
    let env = [("IDVAULT_MASTER_KEY_FILE", key_file.to_str().unwrap())];
    let server = TestServer::start_with_env(&data, &env);
    assert!(!data.join("master.key").exists(), "the key file was not used");
    assert!(server.stop().success());
    let server = TestServer::start_with_env(&data, &env);
    assert!(!server.stderr().contains(secret_part), "the server logged the key");
    assert!(server.stop().success());
}

/// docs/configuration.md is `idvault config reference`: generated from the configuration struct
/// and the flags' help. After a deliberate change regenerate it with
/// `UPDATE_DOCS=1 cargo test -p idvault --test api config_reference`.
#[test]
fn config_reference_in_docs_is_the_code_s() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let out = idvault(None, &[], &["config", "reference"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if rendered == committed {
        return;
    }
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let first_difference = committed
        .lines()
        .zip(rendered.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| format!("line {}:\n  committed: {a}\n  rendered:  {b}", i + 1))
        .unwrap_or_else(|| "one is a prefix of the other".to_owned());
    panic!(
        "docs/configuration.md differs from the code (src/config.rs, src/cli.rs) at {first_difference}\n\
         If the change is deliberate, regenerate it with\n  \
         UPDATE_DOCS=1 cargo test -p idvault --test api config_reference\nand commit docs/configuration.md."
    );
}

#[test]
fn a_secret_file_named_in_the_configuration_file_is_read() {
    let dir = TestDir::new();
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "from-a-file\n").unwrap();
    let config = dir.path().join("idvault.toml");
    std::fs::write(&config, format!("metrics_token_file = {:?}\n", token_file.to_str().unwrap())).unwrap();
    let out = check(Some(&config), &[], &[]);
    assert!(line(&out, "metrics_token").starts_with("metrics_token = \"********\""), "{out}");
    assert!(!out.contains("from-a-file"), "{out}");
    // The environment's plain value wins over the file's `_file` form.
    let out = check(Some(&config), &[("IDVAULT_METRICS_TOKEN", "from-env")], &[]);
    assert!(line(&out, "metrics_token").contains("environment IDVAULT_METRICS_TOKEN"), "{out}");
    // A missing secret file is an error naming the key.
    std::fs::remove_file(&token_file).unwrap();
    let out = idvault(Some(&config), &[], &["config", "check"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("metrics_token_file"), "{out:?}");
}

#[test]
fn shell_completions_cover_the_commands_and_flags() {
    for (shell, marker) in
        [("bash", "_idvault()"), ("zsh", "#compdef idvault"), ("fish", "complete -c idvault")]
    {
        let out = idvault(None, &[], &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        for word in ["serve", "listen", "metrics-listen", "completions"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    // Completions need no configuration: a broken one does not stop them.
    let out = idvault(None, &[("IDVAULT_CONFIG", "/nonexistent/idvault.toml")], &["completions", "bash"]);
    assert!(out.status.success());
}

/// The deployment examples docs/operations.md installs cannot drift from the code:
/// deploy/idvault.toml passes `config check`, and every `IDVAULT_*` setting that
/// deploy/idvault.service gives (commented alternatives included) is a variable idvault reads,
/// taken as the setting it names.
#[test]
fn the_deployment_examples_are_accepted() {
    let deploy = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let toml = deploy.join("idvault.toml");
    let out = check(Some(&toml), &[], &[]);
    for key in ["data_dir", "listen", "public_url", "trusted_proxies", "log_format", "metrics_listen"] {
        assert!(line(&out, key).contains("idvault.toml"), "{key} is not set by the file:\n{out}");
    }
    assert!(line(&out, "trusted_proxies").starts_with("trusted_proxies = \"127.0.0.1,::1\""), "{out}");

    // The unit's credentials directory (%d), with the files its settings name.
    let dir = TestDir::new();
    let key = String::from_utf8(idvault(None, &[], &["keys", "generate"]).stdout).unwrap();
    record_keyring(&key);
    std::fs::write(dir.path().join("master-key"), &key).unwrap();
    std::fs::write(dir.path().join("database-url"), "postgres://idvault:pw@db.invalid/idvault\n").unwrap();
    let credentials = dir.path().to_str().unwrap();
    let unit = std::fs::read_to_string(deploy.join("idvault.service")).unwrap();
    let settings: Vec<(String, String)> = unit
        .lines()
        .map(|l| l.trim_start_matches(['#', ' ']))
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|l| l.split_once('='))
        .filter(|(name, _)| *name != "IDVAULT_LOG")
        .map(|(name, value)| (name.to_owned(), value.replace("%d", credentials)))
        .collect();
    assert!(settings.iter().any(|(n, _)| n == "IDVAULT_MASTER_KEY_FILE"), "{unit}");
    for (name, value) in &settings {
        let out = check(Some(&toml), &[(name, value)], &[]);
        let key = name.trim_start_matches("IDVAULT_").trim_end_matches("_FILE").to_ascii_lowercase();
        let shown = line(&out, &key);
        assert!(
            shown.contains(&format!("environment IDVAULT_{}", key.to_ascii_uppercase())),
            "{name}: {shown}"
        );
    }
    // ExecStart's arguments, with `serve` checked instead of run, and the example as its file.
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    let args: Vec<String> =
        exec.split_whitespace()
            .skip(1)
            .map(|a| {
                if a == "/etc/idvault/idvault.toml" {
                    toml.to_str().unwrap().to_owned()
                } else {
                    a.to_owned()
                }
            })
            .collect();
    let (serve, global) = args.split_last().unwrap();
    assert_eq!(serve, "serve", "{exec}");
    let mut all: Vec<&str> = global.iter().map(String::as_str).collect();
    all.extend(["config", "check"]);
    let out = idvault(None, &[], &all);
    assert!(out.status.success(), "{exec}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("https://id.example.com"), "{out:?}");
}

#[test]
fn unknown_idvault_variables_are_refused_with_the_nearest_name() {
    let out = idvault(None, &[("IDVAULT_LISTN", "127.0.0.1:9000")], &["config", "check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown environment variable `IDVAULT_LISTN`; did you mean `IDVAULT_LISTEN`?"),
        "{err}"
    );

    // Along with an unknown key of the file: both are named at once.
    let dir = TestDir::new();
    let file = dir.path().join("idvault.toml");
    std::fs::write(&file, "listn = \"127.0.0.1:9000\"\n").unwrap();
    let out = idvault(Some(&file), &[("IDVAULT_SESION_TTL", "1h")], &["config", "check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did you mean `IDVAULT_SESSION_TTL`?") && err.contains("unknown key `listn`"),
        "{err}"
    );

    // `serve` refuses to start on it too, and so does a one-shot command.
    let (status, err) = start_expecting_refusal(&dir.path().join("data"), &[("IDVAULT_MASTER_KEY_FLE", "x")]);
    assert!(!status.success());
    assert!(err.contains("`IDVAULT_MASTER_KEY_FLE`; did you mean `IDVAULT_MASTER_KEY_FILE`?"), "{err}");
    let out = idvault(None, &[("IDVAULT_URLL", "http://127.0.0.1:1")], &["healthcheck"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `IDVAULT_URL`?"), "{out:?}");
}

#[test]
fn idvault_variables_that_are_no_settings_are_accepted_and_listed_by_config_check() {
    let secret = "client-secret-3f9a";
    let env =
        [("IDVAULT_LOG", "info"), ("IDVAULT_CLIENT_SECRET", secret), ("IDVAULT_TEST_BACKEND", "sqlite")];
    let out = check(None, &env, &[]);
    assert!(out.contains("# IDVAULT_LOG is set, not a setting: the log filter"), "{out}");
    assert!(out.contains("# IDVAULT_CLIENT_SECRET is set, not a setting"), "{out}");
    assert!(out.contains("# IDVAULT_TEST_BACKEND is set, not a setting"), "{out}");
    assert!(!out.contains(secret) && !out.contains("= \"info\""), "values are not shown:\n{out}");
    // Settings given in the environment are not listed as others.
    let out = check(None, &[("IDVAULT_SESSION_TTL", "1h")], &[]);
    assert!(!out.contains("not a setting"), "{out}");

    // And a server starts with them.
    let dir = TestDir::new();
    let server = TestServer::start_with_env(&dir.path().join("data"), &env);
    assert!(server.stop().success());
}

/// Every `IDVAULT_*` name the repository mentions (code, scripts, test harnesses, docs) is one
/// idvault accepts in its environment: a setting, or one of the variables config.rs lists as no
/// setting. The test suites export their own variables and the servers they start inherit them,
/// so a new variable missing from that list would make those servers refuse to start. The names
/// idvault accepts are read from `config reference` (docs/configuration.md): its tables.
#[test]
fn every_idvault_variable_the_repository_mentions_is_accepted() {
    let out = idvault(None, &[], &["config", "reference"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reference = String::from_utf8(out.stdout).unwrap();
    let table_rows: String = reference.lines().filter(|l| l.starts_with('|')).collect::<Vec<_>>().join("\n");
    let accepted = idvault_names(&table_rows);
    assert!(accepted.contains("IDVAULT_LISTEN") && accepted.contains("IDVAULT_TEST_BACKEND"), "{accepted:?}");

    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The files that define and test the refusal mention misspelt names on purpose.
    let skipped =
        ["crates/idvault/src/config.rs", "crates/idvault/tests/api/config.rs", "docs/configuration.md"];
    let mut unknown = Vec::new();
    let mut files = 0;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !["target", "node_modules", ".git", ".venv", "__pycache__"].contains(&name.as_str()) {
                    stack.push(path);
                }
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
            if skipped.contains(&relative.as_str()) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            files += 1;
            for found in idvault_names(&text) {
                if !accepted.contains(&found) {
                    unknown.push(format!("{found} in {relative}"));
                }
            }
        }
    }
    assert!(files > 100, "the repository was not walked: {files} files from {}", root.display());
    assert!(
        unknown.is_empty(),
        "IDVAULT_* variables that idvault would refuse in its environment: {unknown:?}\n\
         Make each a setting, or add it to OTHER_ENV_VARS in crates/idvault/src/config.rs with why."
    );
}

/// The `IDVAULT_*` names in a text; a name written as a family (`IDVAULT_CREDENTIAL_FAILURE_*`,
/// so ending in `_`) is none.
fn idvault_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(i) = text[at..].find("IDVAULT_") {
        let start = at + i;
        let mut end = start + "IDVAULT_".len();
        while end < bytes.len()
            && (bytes[end].is_ascii_uppercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_')
        {
            end += 1;
        }
        let preceded = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let name = &text[start..end];
        if !preceded && !name.ends_with('_') {
            names.insert(name.to_owned());
        }
        at = end;
    }
    names
}
