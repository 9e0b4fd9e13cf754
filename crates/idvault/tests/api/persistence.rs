//! Restarts, crashes, and what is on disk.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn restart_keeps_users_and_tokens_and_never_reprints_secrets() {
    let app = TestApp::spawn();
    let access = "ya29.PLAINTEXT-ACCESS-TOKEN-should-never-hit-disk";
    let refresh = "1//PLAINTEXT-REFRESH-TOKEN-should-never-hit-disk";
    for i in 0..20 {
        let login = format!("p{i}@example.com");
        app.api.create_user(json!({"loginId": login})).await;
        assert_eq!(
            app.api
                .put_token(google_token(&login, &format!("{access}-{i}"), &format!("{refresh}-{i}")))
                .await
                .status,
            200
        );
    }
    // While running, the database and its WAL hold no token in clear.
    let data = app.server.data_dir.clone();
    assert!(!storage_contains(&data, "PLAINTEXT"), "a token was written in clear text");

    let TestApp { server, api, dir } = app;
    let status = server.stop();
    assert!(status.success(), "graceful stop exits 0");
    assert!(!storage_contains(&data, "PLAINTEXT"), "a token was written in clear text");

    let server = TestServer::start(&data);
    assert!(server.management_key.is_none(), "the restart announced a key: {}", server.ready);
    assert!(!server.stdout().contains("idv_"), "the restart printed a key: {}", server.stdout());
    // The restarted server still names its one project.
    assert_eq!(
        server.project_id.as_deref(),
        api.auth.strip_prefix("Bearer ").and_then(|a| a.split(':').next())
    );
    let api = Api { base_url: server.base_url.clone(), ..api };
    let all = api.post("/v2/mgmt/user/search", json!({"limit": 100})).await;
    assert_eq!(all.body["total"], 20);
    for i in 0..20 {
        let r = api.get_token(&format!("p{i}@example.com"), "google", true).await;
        assert_eq!(r.body["accessToken"], format!("{access}-{i}"));
        assert_eq!(r.body["refreshToken"], format!("{refresh}-{i}"));
    }
    drop(server);
    drop(dir);
}

/// `kill -9` while 20 clients write as fast as they can, restart on the same data directory (or
/// database), and check that every write answered 2xx is there: each user created (alone or in a
/// batch), each patch, each provider token byte for byte. The writes still unanswered when the
/// process died may or may not be there; none is counted. `IDVAULT_CRASH_ROUNDS` (default 1) and
/// `IDVAULT_CRASH_WRITE_MS` (default 2500) make the long version (scripts/crash-test): each round
/// writes, kills, restarts and checks every acknowledged write of all rounds so far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let env_number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .map(|v| v.parse::<u64>().unwrap_or_else(|_| panic!("{name}={v:?}")))
            .unwrap_or(default)
    };
    let rounds = env_number("IDVAULT_CRASH_ROUNDS", 1);
    let write_for = std::time::Duration::from_millis(env_number("IDVAULT_CRASH_WRITE_MS", 2500));

    let app = TestApp::spawn();
    let TestApp { mut server, api, dir } = app;
    let data = server.data_dir.clone();
    let mut acknowledged: Vec<crash::Acked> = Vec::new();
    let mut unanswered = 0usize;
    for round in 0..rounds {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..crash::CLIENTS)
            .map(|c| {
                tokio::spawn(crash::client(server.base_url.clone(), api.auth.clone(), round, c, stop.clone()))
            })
            .collect();
        tokio::time::sleep(write_for).await;
        // The clients are still writing: the process dies with requests in flight.
        server.kill_hard();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for client in clients {
            let outcome = client.await.unwrap();
            acknowledged.extend(outcome.acked);
            unanswered += outcome.unanswered;
        }
        server = TestServer::start(&data);
        assert!(server.management_key.is_none(), "a restart is not a first start: {}", server.ready);
        let reader =
            Api { base_url: server.base_url.clone(), http: reqwest::Client::new(), auth: api.auth.clone() };
        let lost = crash::lost(&reader, &acknowledged).await;
        println!(
            "crash durability ({}): after round {}/{rounds}: writes acknowledged {}, lost {}, \
             unanswered when killed {unanswered} (counts of all rounds so far)",
            if postgres_mode() { "postgres" } else { "sqlite" },
            round + 1,
            acknowledged.len(),
            lost.len(),
        );
        assert!(acknowledged.len() >= 100, "too few writes to prove anything: {}", acknowledged.len());
        let first: Vec<String> = lost.iter().take(5).map(crash::Acked::describe).collect();
        assert!(lost.is_empty(), "{} acknowledged writes lost, first: {first:?}", lost.len());
    }
    drop(server);
    drop(dir);
}

/// The crash-durability workload: what each client writes, and how a write is checked afterwards.
mod crash {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use serde_json::{json, Value};

    use crate::helpers::*;

    pub const CLIENTS: usize = 20;
    /// Users per batch create.
    const BATCH: usize = 4;

    /// A write answered 2xx, and what it must have left behind. Each user is created, patched and
    /// given a token at most once, so every acknowledged write has an effect of its own to find.
    #[derive(Debug, Clone)]
    pub enum Acked {
        Created { login: String },
        Patched { login: String, display_name: String, given_name: String },
        Token { login: String, access: String, refresh: String },
    }

    impl Acked {
        /// Which write, without the token itself.
        pub fn describe(&self) -> String {
            match self {
                Acked::Created { login } => format!("create {login}"),
                Acked::Patched { login, .. } => format!("patch {login}"),
                Acked::Token { login, access, refresh } => {
                    format!("token of {login} ({} + {} bytes)", access.len(), refresh.len())
                }
            }
        }
    }

    pub struct Outcome {
        pub acked: Vec<Acked>,
        /// Requests sent that got no answer (the process died under them).
        pub unanswered: usize,
    }

    /// A small xorshift generator: tokens differ in length and bytes without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A token of 1 to 3000 characters: printable ASCII and some multi-byte characters, so
        /// that "intact" means every byte, not only the ASCII ones.
        fn token(&mut self) -> String {
            const EXTRA: [char; 6] = ['é', 'ß', '€', '漢', '🔑', '\\'];
            let len = 1 + (self.next() % 3000) as usize;
            (0..len)
                .map(|_| match self.next() % 20 {
                    0 => EXTRA[(self.next() % EXTRA.len() as u64) as usize],
                    _ => char::from(b' ' + (self.next() % 95) as u8),
                })
                .collect()
        }
    }

    /// Sends one write; its JSON answer when it was 2xx, None when it got no answer. Any other
    /// answer fails the test: the workload only makes valid writes.
    async fn send(
        http: &reqwest::Client,
        base: &str,
        auth: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Option<Value> {
        let resp = http
            .request(method, format!("{base}{path}"))
            .header("Authorization", auth)
            .json(&body)
            .send()
            .await
            .ok()?;
        let status = resp.status();
        let text = resp.text().await.ok()?;
        assert!(status.is_success(), "{path} answered {status}: {text}");
        Some(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{path}: non-JSON 2xx body ({e}): {text:?}")),
        )
    }

    /// One client: creates a user, patches it, stores a token for it, creates a batch, and again,
    /// as fast as it is answered, until the server dies under it or `stop` is set.
    pub async fn client(
        base: String,
        auth: String,
        round: u64,
        client: usize,
        stop: Arc<AtomicBool>,
    ) -> Outcome {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((round << 32) | (client as u64 + 1)));
        let mut acked = Vec::new();
        let mut n = 0u64;
        let unanswered = loop {
            if stop.load(Ordering::SeqCst) {
                break 0;
            }
            n += 1;
            let login = format!("crash-r{round}-c{client}-{n}@example.com");
            let created = send(
                &http,
                &base,
                &auth,
                reqwest::Method::POST,
                "/v1/mgmt/user/create",
                json!({"loginId": login}),
            )
            .await;
            let Some(created) = created else { break 1 };
            assert_eq!(created["user"]["loginIds"][0], login.as_str());
            acked.push(Acked::Created { login: login.clone() });

            let (display_name, given_name) =
                (format!("Crash {round}.{client}.{n}"), format!("G{}", rng.next()));
            let body = json!({"loginId": login, "displayName": display_name, "givenName": given_name});
            let Some(_) =
                send(&http, &base, &auth, reqwest::Method::PATCH, "/v1/mgmt/user/patch", body).await
            else {
                break 1;
            };
            acked.push(Acked::Patched { login: login.clone(), display_name, given_name });

            let (access, refresh) = (rng.token(), rng.token());
            let body = google_token(&login, &access, &refresh);
            let Some(_) =
                send(&http, &base, &auth, reqwest::Method::PUT, "/v1/mgmt/user/provider/token", body).await
            else {
                break 1;
            };
            acked.push(Acked::Token { login: login.clone(), access, refresh });

            let logins: Vec<String> =
                (0..BATCH).map(|i| format!("crash-r{round}-c{client}-{n}-b{i}@example.com")).collect();
            let users: Vec<Value> = logins.iter().map(|l| json!({"loginId": l})).collect();
            let Some(batch) = send(
                &http,
                &base,
                &auth,
                reqwest::Method::POST,
                "/v1/mgmt/user/create/batch",
                json!({"users": users}),
            )
            .await
            else {
                break 1;
            };
            assert_eq!(batch["failedUsers"], json!([]), "{batch}");
            for user in batch["createdUsers"].as_array().unwrap() {
                acked.push(Acked::Created { login: user["loginIds"][0].as_str().unwrap().to_owned() });
            }
        };
        Outcome { acked, unanswered }
    }

    /// The acknowledged writes whose effect is missing or changed, checked by 20 readers at once.
    pub async fn lost(api: &Api, acked: &[Acked]) -> Vec<Acked> {
        let chunk = acked.len().div_ceil(CLIENTS).max(1);
        let readers: Vec<_> = acked
            .chunks(chunk)
            .map(|part| {
                let api =
                    Api { http: api.http.clone(), base_url: api.base_url.clone(), auth: api.auth.clone() };
                let part = part.to_vec();
                tokio::spawn(async move {
                    let mut lost = Vec::new();
                    for write in part {
                        if !present(&api, &write).await {
                            lost.push(write);
                        }
                    }
                    lost
                })
            })
            .collect();
        let mut all = Vec::new();
        for reader in readers {
            all.extend(reader.await.unwrap());
        }
        all
    }

    async fn present(api: &Api, write: &Acked) -> bool {
        match write {
            Acked::Created { login } => {
                let r = api.get(&format!("/v1/mgmt/user?loginId={}", urlencode(login))).await;
                r.status == 200 && r.body["user"]["loginIds"][0] == login.as_str()
            }
            Acked::Patched { login, display_name, given_name } => {
                let r = api.get(&format!("/v1/mgmt/user?loginId={}", urlencode(login))).await;
                r.status == 200
                    && r.body["user"]["name"] == display_name.as_str()
                    && r.body["user"]["givenName"] == given_name.as_str()
            }
            Acked::Token { login, access, refresh } => {
                let r = api.get_token(login, "google", true).await;
                r.status == 200
                    && r.body["accessToken"] == access.as_str()
                    && r.body["refreshToken"] == refresh.as_str()
            }
        }
    }
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_fails_to_decrypt_cleanly() {
    let app = TestApp::spawn();
    app.api.create_user(json!({"loginId": "alice"})).await;
    app.api.create_user(json!({"loginId": "mallory"})).await;
    assert_eq!(app.api.put_token(google_token("alice", "alice-secret", "r1")).await.status, 200);
    assert_eq!(app.api.put_token(google_token("mallory", "mallory-token", "r2")).await.status, 200);
    let TestApp { server, api, dir } = app;
    let data = server.data_dir.clone();
    assert!(server.stop().success());

    // Copy alice's sealed access token onto mallory's row, as an attacker with database access
    // might.
    exec_sql(
        &data,
        "UPDATE provider_tokens SET access_token = (SELECT t.access_token FROM provider_tokens t \
         JOIN user_login_ids l ON l.user_pk = t.user_pk WHERE l.login_id = 'alice') \
         WHERE user_pk = (SELECT user_pk FROM user_login_ids WHERE login_id = 'mallory')",
    );

    let server = TestServer::start(&data);
    let api = Api { base_url: server.base_url.clone(), ..api };
    let r = api.get_token("mallory", "google", false).await;
    r.assert_error(500, "E112104");
    assert!(!r.body.to_string().contains("alice-secret"));
    assert_eq!(api.get_token("alice", "google", false).await.body["accessToken"], "alice-secret");
    drop(dir);
}

#[tokio::test]
async fn the_ready_file_describes_the_server_and_goes_away_on_a_clean_stop() {
    let app = TestApp::spawn();
    let ready = app.server.ready.clone();
    assert_eq!(ready["pid"], app.server.child.id(), "{ready}");
    assert_eq!(ready["backend"], if postgres_mode() { "postgres" } else { "sqlite" }, "{ready}");
    let port = ready["port"].as_u64().unwrap();
    assert_eq!(ready["url"], format!("http://127.0.0.1:{port}"));
    // The key it announces is the one the first-start banner shows, and it works.
    let key = app.server.management_key.clone().unwrap();
    assert!(app.server.stdout().contains(&key));
    assert_eq!(app.api.get("/v1/mgmt/license").await.status, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&app.server.ready_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the ready file holds a secret: owner only");
    }
    let TestApp { server, dir, .. } = app;
    let path = server.ready_path.clone();
    assert!(server.stop().success());
    assert!(!path.exists(), "a clean stop removes the ready file");
    drop(dir);
}
