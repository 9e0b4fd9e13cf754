//! The brute-force limit: wrong management keys and forged session tokens are counted per client
//! address, and once an address has spent its budget its requests with credentials answer 429
//! (`E130429`, `Retry-After`) until a token has refilled; other addresses are never affected.
//!
//! Every loopback client reaches the server from 127.0.0.1 unless it binds its socket to another
//! address of 127.0.0.0/8, which Linux routes to the loopback: each client below has its own.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// A client whose requests come from 127.0.0.`host`.
fn client_from(host: u8) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::from([127, 0, 0, host])).build().unwrap()
}

fn api_from(app: &TestApp, host: u8, key: &str) -> Api {
    let pid = app.server.project_id.as_deref().unwrap();
    Api {
        http: client_from(host),
        base_url: app.server.base_url.clone(),
        auth: format!("Bearer {pid}:{key}"),
    }
}

/// The bootstrap key with its last characters changed: the right key id, a wrong secret.
fn wrong_key(app: &TestApp) -> String {
    let mut key = app.server.management_key.clone().unwrap();
    let tail = if key.ends_with("AAAA") { "BBBB" } else { "AAAA" };
    key.replace_range(key.len() - 4.., tail);
    key
}

/// A raw GET that keeps the headers, for `Retry-After`.
async fn get_raw(http: &reqwest::Client, url: String, auth: &str) -> (u16, Option<String>, Value) {
    let r = http.get(url).header("Authorization", auth).send().await.unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, r.json().await.unwrap())
}

/// Asserts a Descope rate-limit answer and returns its `Retry-After` in seconds.
fn assert_rate_limited(status: u16, retry_after: Option<String>, body: &Value) -> u64 {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errorCode"], "E130429", "{body}");
    assert_eq!(body["errorDescription"], "Too many requests", "{body}");
    assert!(body["errorMessage"].as_str().is_some_and(|m| m.contains("retry after")), "{body}");
    retry_after.expect("a 429 carries Retry-After").parse().expect("Retry-After in whole seconds")
}

#[tokio::test]
async fn wrong_keys_from_one_address_are_refused_after_the_default_burst_and_nobody_else_is() {
    // The defaults: 10 wrong credentials at once, then one every 6 s.
    let app = TestApp::spawn();
    let attacker = client_from(2);
    let url = app.server.url("/v1/mgmt/user?loginId=someone");
    let pid = app.server.project_id.clone().unwrap();
    let wrong = format!("Bearer {pid}:{}", wrong_key(&app));

    // Good requests spend nothing: interleaved with the failures, they change no count.
    let good_from_attacker = api_from(&app, 2, app.server.management_key.as_deref().unwrap());
    let mut statuses = Vec::new();
    let mut limited = None;
    for attempt in 0..20 {
        if attempt < 10 {
            assert_eq!(good_from_attacker.get("/v1/mgmt/license").await.status, 200, "attempt {attempt}");
        }
        let (status, retry_after, body) = get_raw(&attacker, url.clone(), &wrong).await;
        statuses.push(status);
        if status == 429 {
            limited = Some((retry_after, body));
            break;
        }
        assert_eq!(body["errorCode"], "E011401", "{body}");
    }
    assert!(statuses[..10].iter().all(|s| *s == 401), "the burst is answered 401: {statuses:?}");
    let (retry_after, body) = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    let secs = assert_rate_limited(429, retry_after, &body);
    println!(
        "default budget: {} wrong keys answered 401, then 429 with Retry-After {secs}",
        statuses.len() - 1
    );
    assert!((1..=6).contains(&secs), "one token refills in 6 s: Retry-After {secs}");
    assert!(!body.to_string().contains(&wrong_key(&app)), "the answer does not echo the key: {body}");

    // While its budget is empty, the address is refused before any check: its good key too.
    let r = good_from_attacker.get("/v1/mgmt/license").await;
    r.assert_error(429, "E130429");
    // Requests without credentials are not refused (health probes, the provider callbacks).
    assert_eq!(attacker.get(app.server.url("/healthz")).send().await.unwrap().status(), 200);

    // Other addresses: a good key works, and a wrong key is only its own failure (401).
    assert_eq!(app.api.get("/v1/mgmt/license").await.status, 200, "from 127.0.0.1");
    assert_eq!(
        api_from(&app, 3, app.server.management_key.as_deref().unwrap()).get("/v1/mgmt/license").await.status,
        200
    );
    api_from(&app, 4, &wrong_key(&app)).get("/v1/mgmt/license").await.assert_error(401, "E011401");
}

#[tokio::test]
async fn forged_session_tokens_count_and_stale_or_missing_credentials_do_not() {
    let app = TestApp::spawn_with(&["--credential-failure-limit", "1", "--credential-failure-burst", "3"]);
    let pid = app.server.project_id.clone().unwrap();

    // A forged refresh JWT (three dot-separated parts, signed by nobody), on every session route.
    let forged = format!("Bearer {pid}:eyJhbGciOiJFUzM4NCIsImtpZCI6Ik1hZGV1cCJ9.eyJzdWIiOiJVMSJ9.c2ln");
    let http = client_from(5);
    let mut statuses = Vec::new();
    for (method, path) in [
        (reqwest::Method::POST, "/v1/auth/refresh"),
        (reqwest::Method::GET, "/v1/auth/me"),
        (reqwest::Method::POST, "/v1/auth/logout"),
        (reqwest::Method::POST, "/v1/auth/logoutall"),
    ] {
        let r =
            http.request(method, app.server.url(path)).header("Authorization", &forged).send().await.unwrap();
        let status = r.status().as_u16();
        let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let body: Value = r.json().await.unwrap();
        if statuses.len() < 3 {
            assert_eq!((status, body["errorCode"].as_str()), (401, Some("E061001")), "{path}: {body}");
        } else {
            let secs = assert_rate_limited(status, retry_after, &body);
            assert!((1..=60).contains(&secs), "one token a minute: Retry-After {secs}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);

    // A revoked key is a real key gone stale, not a guess: never limited.
    let second =
        crate::cli::run_ok(&app.server.data_dir, &["key", "create", "--project", &pid, "--name", "old"])
            .trim()
            .to_owned();
    let key_id = second.strip_prefix("idv_").unwrap().split('.').next().unwrap().to_owned();
    let r = app.api.post("/v1/mgmt/managementkey/revoke", json!({"keyId": key_id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stale = api_from(&app, 6, &second);
    for _ in 0..8 {
        let r = stale.get("/v1/mgmt/license").await;
        r.assert_error(401, "E011401");
        assert!(r.body["errorMessage"].as_str().unwrap().contains("revoked"), "{}", r.body);
    }
    // Nor is a request without a key, or without a refresh JWT.
    let anonymous = client_from(7);
    for _ in 0..8 {
        let r = anonymous.get(app.server.url("/v1/mgmt/license")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = anonymous
            .post(app.server.url("/v1/auth/refresh"))
            .header("Authorization", format!("Bearer {pid}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // Both addresses still get through with a good key.
    for host in [6, 7] {
        let good = api_from(&app, host, app.server.management_key.as_deref().unwrap());
        assert_eq!(good.get("/v1/mgmt/license").await.status, 200, "127.0.0.{host}");
    }
}

#[tokio::test]
async fn after_retry_after_the_address_may_try_again() {
    // One token a second, so that the wait is short.
    let app = TestApp::spawn_with(&["--credential-failure-limit", "60", "--credential-failure-burst", "2"]);
    let attacker = client_from(8);
    let pid = app.server.project_id.clone().unwrap();
    let wrong = format!("Bearer {pid}:{}", wrong_key(&app));
    let url = app.server.url("/v1/mgmt/license");
    let mut limited = None;
    for _ in 0..20 {
        let (status, retry_after, body) = get_raw(&attacker, url.clone(), &wrong).await;
        if status == 429 {
            limited = Some(assert_rate_limited(status, retry_after, &body));
            break;
        }
        assert_eq!(status, 401, "{body}");
    }
    let secs = limited.expect("limited within 20 wrong keys");
    assert_eq!(secs, 1, "one token a second");
    let waited = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    // The wait is over: a good key passes and a wrong key is checked (401) again.
    let good = api_from(&app, 8, app.server.management_key.as_deref().unwrap());
    assert_eq!(good.get("/v1/mgmt/license").await.status, 200);
    let (status, _, body) = get_raw(&attacker, url, &wrong).await;
    assert_eq!(status, 401, "{body}");
    println!("after Retry-After {secs} s: the address was served again {:?} after the 429", waited.elapsed());
}

#[tokio::test]
async fn zero_disables_the_limit_by_flag_and_by_environment() {
    let by_flag = TestApp::spawn_with(&["--credential-failure-limit", "0"]);
    let by_env = TestApp::spawn_with_env(&[("IDVAULT_CREDENTIAL_FAILURE_BURST", "0")], &[]);
    for app in [&by_flag, &by_env] {
        let wrong = api_from(app, 9, &wrong_key(app));
        for _ in 0..25 {
            wrong.get("/v1/mgmt/license").await.assert_error(401, "E011401");
        }
        let good = api_from(app, 9, app.server.management_key.as_deref().unwrap());
        assert_eq!(good.get("/v1/mgmt/license").await.status, 200);
    }
}
