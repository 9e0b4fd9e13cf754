//! The HTTP layer's defences (step 9.5): header-read timeout, the auth routes' rate limit,
//! security headers, no query strings in logs, management-key revocation over the API (on this
//! server and on a second replica), bounded search filters, and owner-only files.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::run_ok;
use crate::helpers::*;

#[tokio::test]
async fn a_connection_sending_its_headers_slowly_is_closed_after_the_header_read_timeout() {
    let app = TestApp::spawn_with(&["--header-read-timeout", "1s"]);
    let addr = app.server.base_url.strip_prefix("http://").unwrap().to_owned();
    let closed = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        // Half a request: the blank line that ends the headers never comes.
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: idvault\r\nX-Slow: ").unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(started.elapsed()),
                Err(_) => return None,
            }
        }
    })
    .await
    .unwrap();
    let elapsed = closed.expect("the server kept the slow connection open for 15 s");
    println!("slow-headers connection closed after {elapsed:?} (timeout 1 s)");
    assert!(elapsed < Duration::from_secs(8), "closed only after {elapsed:?}");
    // The server still serves complete requests.
    assert_eq!(reqwest::get(app.server.url("/healthz")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn auth_routes_answer_429_over_the_limit_and_management_routes_are_not_limited() {
    let app = TestApp::spawn_with(&["--auth-rate-limit", "1", "--auth-rate-burst", "5"]);
    let pid = app.server.project_id.clone().unwrap();
    let http = reqwest::Client::new();
    let authorize = || {
        http.post(app.server.url("/v1/auth/oauth/authorize?provider=google"))
            .header("Authorization", format!("Bearer {pid}"))
            .json(&json!({}))
            .send()
    };
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..8 {
        let r = authorize().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 && limited.is_none() {
            let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            limited = Some((retry_after, r.json::<Value>().await.unwrap()));
        }
    }
    assert!(statuses[..5].iter().all(|s| *s != 429), "the burst passes: {statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "then 429: {statuses:?}");
    let (retry_after, body) = limited.unwrap();
    let secs: u64 = retry_after.expect("Retry-After header").parse().unwrap();
    assert!((1..=2).contains(&secs), "Retry-After {secs}");
    assert_eq!(body["errorCode"], "E130429", "{body}");
    assert!(body["errorDescription"].as_str().is_some_and(|s| !s.is_empty()), "{body}");

    // The management API is not behind this limit.
    for _ in 0..30 {
        let r = app.api.get("/v1/mgmt/provider/all").await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Nor are the health probes and the documents.
    assert_eq!(http.get(app.server.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn html_answers_carry_security_headers_and_every_answer_nosniff() {
    let app = TestApp::spawn();
    let r = reqwest::get(app.server.url("/docs")).await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    let header = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(header("content-type").starts_with("text/html"));
    let csp = header("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("script-src https://cdn.jsdelivr.net 'sha256-"),
        "the page's CDN script and inline script are allowed: {csp}"
    );
    assert!(csp.contains("connect-src 'self'"), "Swagger UI fetches openapi.json: {csp}");
    assert!(!csp.contains("'unsafe-eval'") && !csp.contains("script-src 'unsafe-inline'"), "{csp}");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let page = r.text().await.unwrap();
    assert!(page.contains("swagger-ui-bundle.js"));

    for path in ["/openapi.json", "/healthz", "/no/such/route"] {
        let r = reqwest::get(app.server.url(path)).await.unwrap();
        assert_eq!(
            r.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path}"
        );
    }
    let r = app.api.get("/v1/mgmt/provider/all").await;
    assert_eq!(r.status, 200);
    let raw = reqwest::Client::new()
        .get(app.server.url("/v1/mgmt/provider/all"))
        .header("Authorization", &app.api.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers().get("x-content-type-options").unwrap(), "nosniff");
}

#[tokio::test]
async fn logs_record_the_route_of_a_request_but_never_its_query() {
    let dir = TestDir::new();
    let server = TestServer::start_with_env(
        &dir.path().join("data"),
        &[("IDVAULT_LOG", "debug"), ("RUST_LOG", "debug")],
    );
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(server.url("/v1/auth/oauth/callback?code=SECRETCODE&state=SECRETSTATE"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error() || r.status().is_redirection(), "{}", r.status());
    let _ = r.text().await;
    // The log is written by the server process: give it a moment to reach the file.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = server.stderr();
    while !log.contains("/v1/auth/oauth/callback") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        log = server.stderr();
    }
    let plain = strip_ansi(&log);
    assert!(plain.contains("route=/v1/auth/oauth/callback"), "the log records the route: {plain}");
    assert!(!log.contains("SECRETCODE"), "the code leaked into the log");
    assert!(!log.contains("SECRETSTATE"), "the state leaked into the log");
}

/// The log without terminal colour codes (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn key_id(full_key: &str) -> String {
    full_key.strip_prefix("idv_").unwrap().split('.').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_management_key_revoked_over_the_api_is_refused_on_the_very_next_request() {
    let app = TestApp::spawn();
    let pid = app.server.project_id.clone().unwrap();
    let second =
        run_ok(&app.server.data_dir, &["key", "create", "--project", &pid, "--name", "ci"]).trim().to_owned();
    let ci = Api::new(&app.server.base_url, &pid, &second);
    // Warm the key cache with the key about to be revoked.
    for _ in 0..3 {
        assert_eq!(ci.get("/v1/mgmt/provider/all").await.status, 200);
    }

    let listed = app.api.get("/v1/mgmt/managementkey/list").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let keys = listed.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{}", listed.body);
    let secret = second.split('.').nth(1).unwrap();
    assert!(!listed.body.to_string().contains(secret), "a listing never shows a key");
    assert!(keys.iter().any(|k| k["id"] == key_id(&second) && k["status"] == "active" && k["name"] == "ci"));

    let r = app.api.post("/v1/mgmt/managementkey/revoke", json!({"keyId": key_id(&second)})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    ci.get("/v1/mgmt/provider/all").await.assert_error(401, "E011401");
    let listed = app.api.get("/v1/mgmt/managementkey/list").await;
    let revoked =
        listed.body["keys"].as_array().unwrap().iter().find(|k| k["id"] == key_id(&second)).cloned();
    assert_eq!(revoked.as_ref().map(|k| k["status"].clone()), Some(json!("revoked")), "{}", listed.body);
    assert!(revoked.unwrap()["revokedTime"].as_i64().unwrap() > 0);

    // Bad requests are Descope-style 400s; a key of another project is unknown here.
    app.api.post("/v1/mgmt/managementkey/revoke", json!({})).await.assert_error(400, "E011002");
    app.api
        .post("/v1/mgmt/managementkey/revoke", json!({"keyId": "nosuchkey"}))
        .await
        .assert_error(400, "E011004");
    let other = run_ok(&app.server.data_dir, &["project", "create", "--name", "Other"]).trim().to_owned();
    let foreign = run_ok(&app.server.data_dir, &["key", "create", "--project", &other, "--name", "x"])
        .trim()
        .to_owned();
    app.api
        .post("/v1/mgmt/managementkey/revoke", json!({"keyId": key_id(&foreign)}))
        .await
        .assert_error(400, "E011004");
    assert_eq!(
        Api::new(&app.server.base_url, &other, &foreign).get("/v1/mgmt/provider/all").await.status,
        200
    );

    // A key may revoke itself; it is refused right after.
    let own = key_id(app.server.management_key.as_deref().unwrap());
    assert_eq!(app.api.post("/v1/mgmt/managementkey/revoke", json!({"keyId": own})).await.status, 200);
    app.api.get("/v1/mgmt/managementkey/list").await.assert_error(401, "E011401");
}

/// A second replica on the same PostgreSQL database: the same master key and database URL.
fn second_replica(app: &TestApp) -> TestServer {
    let dir = app.dir.path().join("replica-b");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(app.server.data_dir.join("master.key"), dir.join("master.key")).unwrap();
    let url = database_url_for(&app.server.data_dir).unwrap();
    std::fs::write(dir.join(".test-database-url"), url).unwrap();
    TestServer::start(&dir)
}

/// The documented bound for another replica (docs/api.md): on the database's notification,
/// well under the 1 s key cache lifetime.
const REPLICA_REVOCATION_BOUND: Duration = Duration::from_millis(500);

#[tokio::test]
async fn a_key_revoked_on_one_replica_is_refused_by_the_other_within_the_bound() {
    if !postgres_mode() {
        println!("skipped here: runs in the PostgreSQL pass");
        return;
    }
    let app = TestApp::spawn();
    let b = second_replica(&app);
    let pid = app.server.project_id.clone().unwrap();
    let second =
        run_ok(&app.server.data_dir, &["key", "create", "--project", &pid, "--name", "ci"]).trim().to_owned();
    let on_b = Api::new(&b.base_url, &pid, &second);
    // Let replica B's listener connect, then warm its cache with the key.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.stderr().contains("listening for management-key revocations") && Instant::now() < deadline {
        assert_eq!(on_b.get("/v1/mgmt/provider/all").await.status, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(on_b.get("/v1/mgmt/provider/all").await.status, 200);

    let r = app.api.post("/v1/mgmt/managementkey/revoke", json!({"keyId": key_id(&second)})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let revoked_at = Instant::now();
    loop {
        let r = on_b.get("/v1/mgmt/provider/all").await;
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            revoked_at.elapsed() < REPLICA_REVOCATION_BOUND,
            "replica B still accepted the revoked key after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("replica B refused the revoked key {:?} after the revocation", revoked_at.elapsed());
    // The revoking replica refuses it too.
    Api::new(&app.server.base_url, &pid, &second)
        .get("/v1/mgmt/provider/all")
        .await
        .assert_error(401, "E011401");
}

#[tokio::test]
async fn search_refuses_bad_attribute_names_and_oversized_filters_with_400() {
    let app = TestApp::spawn();
    let r = app
        .api
        .post("/v1/mgmt/user/customattribute/create", json!({"attributes": [{"name": "seats", "type": 2}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.api.create_user(json!({"loginId": "dana", "customAttributes": {"seats": 3}})).await;

    let search = |body: Value| app.api.post("/v2/mgmt/user/search", body);
    search(json!({"customAttributes": {"a\\b": 1}})).await.assert_error(400, "E011004");
    search(json!({"customAttributes": {"a\"b": 1}})).await.assert_error(400, "E011004");
    let many: Vec<u32> = (0..120_000).collect();
    search(json!({"customAttributes": {"seats": many}})).await.assert_error(400, "E011004");
    let some: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
    search(json!({"loginIds": some})).await.assert_error(400, "E011004");
    search(json!({"statuses": vec!["enabled"; 20_000]})).await.assert_error(400, "E011004");
    search(json!({"tenantRoleIds": {"acme": {"values": some}}})).await.assert_error(400, "E011004");
    // Many filters, each within its cap, still bounded in total.
    let attrs: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("a{i}"), json!((0..1000).collect::<Vec<u32>>()))).collect();
    search(json!({"customAttributes": attrs})).await.assert_error(400, "E011004");

    // At the caps, a search works.
    let ok = search(json!({"customAttributes": {"seats": (0..1000).collect::<Vec<u32>>()}})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["users"].as_array().unwrap().len(), 1);

    // Definitions follow the same name rule.
    app.api
        .post("/v1/mgmt/user/customattribute/create", json!({"attributes": [{"name": "a\\b", "type": 1}]}))
        .await
        .assert_error(400, "E011004");
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn database_key_and_export_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn();
    app.api.create_user(json!({"loginId": "dana"})).await;
    let data = app.server.data_dir.clone();
    assert_eq!(mode(&data.join("master.key")), 0o600);
    if !postgres_mode() {
        for name in [
            "idvault.db",
            "idvault.db-wal",
            "idvault.db-shm",
            "idvault-audit.db",
            "idvault-audit.db-wal",
            "idvault-audit.db-shm",
        ] {
            assert_eq!(mode(&data.join(name)), 0o600, "{name}");
        }
    }
    let pid = app.server.project_id.clone().unwrap();
    let TestApp { server, dir, .. } = app;
    assert!(server.stop().success());

    // A database file left world-readable by an older version is narrowed at the next start.
    if !postgres_mode() {
        std::fs::set_permissions(data.join("idvault.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = TestServer::start(&data);
        assert_eq!(mode(&data.join("idvault.db")), 0o600);
        let log = again.stderr_path.clone();
        let status = again.stop();
        assert!(status.success(), "{status:?}: {}", std::fs::read_to_string(log).unwrap_or_default());
    }

    let out = dir.path().join("project.jsonl");
    run_ok(&data, &["export", "--project", &pid, "--out", out.to_str().unwrap()]);
    assert_eq!(mode(&out), 0o600);
    // An existing file is narrowed too.
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    run_ok(&data, &["export", "--project", &pid, "--out", out.to_str().unwrap()]);
    assert_eq!(mode(&out), 0o600);
}
