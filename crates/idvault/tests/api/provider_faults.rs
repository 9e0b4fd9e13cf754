//! Provider faults during token refresh: each fault is a 502 with its own code and leaves the
//! stored tokens byte-identical; a hung provider does not hold up other users' reads nor another
//! provider's refreshes; a provider failing in a row has its circuit opened (no more calls) and
//! closed again after the cool-down.
//!
//! The misbehaving provider is a real HTTP server in this test ([`Injector`]: hangs, 500, garbage,
//! 10 MB, connection reset), a closed port, and TLS spoken to a plain-HTTP port; the healthy
//! provider is the real OAuth server (tests/oauth-server).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::helpers::*;
use crate::oauth_server::OAuthServer;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

const TEN_MB: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// A valid token answer.
    Healthy,
    /// Reads the request and never answers (until released or the client goes away).
    Hang,
    Error500,
    /// 200 with a JSON content type and a body that is not JSON.
    Garbage,
    /// 200 declaring a 10 MB body, and sending it.
    HugeDeclared,
    /// 200 with a 10 MB chunked body (no length declared).
    HugeChunked,
    /// Reads the request, then resets the connection (RST).
    Reset,
}

/// A token endpoint that misbehaves on demand, and counts what it was sent.
struct Injector {
    port: u16,
    mode: Arc<Mutex<Fault>>,
    /// HTTP requests received (TLS handshakes not included).
    requests: Arc<AtomicU64>,
    /// TLS ClientHellos received (a client speaking https to this plain-HTTP port).
    tls_hellos: Arc<AtomicU64>,
    in_flight: Arc<AtomicU64>,
    max_in_flight: Arc<AtomicU64>,
    /// Body bytes of the last 10 MB answer that the client's side accepted before it went away.
    huge_bytes_sent: Arc<AtomicU64>,
    last_request_body: Arc<Mutex<String>>,
    /// Wakes hung requests: they then answer 503.
    release: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Injector {
    async fn start(mode: Fault) -> Injector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut injector = Injector {
            port,
            mode: Arc::new(Mutex::new(mode)),
            requests: Arc::default(),
            tls_hellos: Arc::default(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
            huge_bytes_sent: Arc::default(),
            last_request_body: Arc::default(),
            release: Arc::new(Notify::new()),
            task: tokio::spawn(async {}),
        };
        let shared = injector.shared();
        injector.task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(shared.clone().serve(stream));
            }
        });
        injector
    }

    fn shared(&self) -> Shared {
        Shared {
            mode: self.mode.clone(),
            requests: self.requests.clone(),
            tls_hellos: self.tls_hellos.clone(),
            in_flight: self.in_flight.clone(),
            max_in_flight: self.max_in_flight.clone(),
            huge_bytes_sent: self.huge_bytes_sent.clone(),
            last_request_body: self.last_request_body.clone(),
            release: self.release.clone(),
        }
    }

    fn set(&self, mode: Fault) {
        *self.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        self.task.abort();
        self.release.notify_waiters();
    }
}

#[derive(Clone)]
struct Shared {
    mode: Arc<Mutex<Fault>>,
    requests: Arc<AtomicU64>,
    tls_hellos: Arc<AtomicU64>,
    in_flight: Arc<AtomicU64>,
    max_in_flight: Arc<AtomicU64>,
    huge_bytes_sent: Arc<AtomicU64>,
    last_request_body: Arc<Mutex<String>>,
    release: Arc<Notify>,
}

/// Decrements the in-flight count however a connection ends.
struct InFlight(Arc<AtomicU64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    async fn serve(self, mut stream: TcpStream) {
        // The whole request: headers, then Content-Length bytes of body. Answering with part of
        // the request unread would make the kernel reset the connection instead of closing it.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let header_end = loop {
            let Ok(n) = stream.read(&mut chunk).await else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf[0] == 0x16 {
                // A TLS handshake record: answer in plain HTTP, as a plain server would.
                self.tls_hellos.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n").await;
                return;
            }
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < header_end + length {
            let Ok(n) = stream.read(&mut chunk).await else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        *self.last_request_body.lock().unwrap() = String::from_utf8_lossy(&buf[header_end..]).into_owned();
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now_in_flight, Ordering::SeqCst);
        let _in_flight = InFlight(self.in_flight.clone());

        let mode = *self.mode.lock().unwrap();
        let answer = |status: &str, content_type: &str, body: &str| {
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        match mode {
            Fault::Healthy => {
                let body =
                    format!(r#"{{"access_token":"fresh-{n}","token_type":"Bearer","expires_in":3600}}"#);
                let _ = stream.write_all(answer("200 OK", "application/json", &body).as_bytes()).await;
            }
            Fault::Hang => {
                // Until the client gives up (its timeout closes the connection) or the test
                // releases it.
                let mut rest = [0u8; 64];
                tokio::select! {
                    _ = stream.read(&mut rest) => {}
                    _ = self.release.notified() => {
                        let _ = stream.write_all(answer("503 Service Unavailable", "text/plain", "released").as_bytes()).await;
                    }
                }
            }
            Fault::Error500 => {
                let body = r#"{"error":"server_error"}"#;
                let _ = stream
                    .write_all(answer("500 Internal Server Error", "application/json", body).as_bytes())
                    .await;
            }
            Fault::Garbage => {
                let body = "{\"access_token\": \"tru\u{0}ncated <html>";
                let _ = stream.write_all(answer("200 OK", "application/json", body).as_bytes()).await;
            }
            Fault::HugeDeclared | Fault::HugeChunked => {
                let head = if mode == Fault::HugeDeclared {
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {TEN_MB}\r\nConnection: close\r\n\r\n")
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_owned()
                };
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let piece = vec![b'a'; 64 * 1024];
                let mut sent = 0usize;
                while sent < TEN_MB {
                    let wrote = if mode == Fault::HugeDeclared {
                        stream.write_all(&piece).await
                    } else {
                        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                        framed.extend_from_slice(&piece);
                        framed.extend_from_slice(b"\r\n");
                        stream.write_all(&framed).await
                    };
                    if wrote.is_err() {
                        break;
                    }
                    sent += piece.len();
                }
                if mode == Fault::HugeChunked && sent >= TEN_MB {
                    let _ = stream.write_all(b"0\r\n\r\n").await;
                }
                self.huge_bytes_sent.store(sent as u64, Ordering::SeqCst);
            }
            Fault::Reset => {
                // SO_LINGER 0: closing sends RST instead of FIN.
                stream.set_zero_linger().unwrap();
                drop(stream);
            }
        }
    }
}

/// Every stored provider-token row, secrets as stored (sealed bytes in hex), in a fixed order:
/// equal snapshots mean nothing in the table changed by a byte.
fn token_rows(data_dir: &std::path::Path) -> String {
    match database_url_for(data_dir) {
        Some(url) => psql(
            &url,
            "SELECT provider, provider_user_id, encode(access_token, 'hex'), coalesce(encode(refresh_token, 'hex'), ''), \
             expiration, scopes::text, updated_ms, version, reauth_required FROM provider_tokens ORDER BY user_pk, provider",
        ),
        None => {
            let conn = rusqlite::Connection::open(data_dir.join("idvault.db")).unwrap();
            let mut stmt = conn
                .prepare(
                    "SELECT provider, provider_user_id, hex(access_token), coalesce(hex(refresh_token), ''), \
                     expiration, scopes, updated_ms, version, reauth_required FROM provider_tokens ORDER BY user_pk, provider",
                )
                .unwrap();
            let rows = stmt
                .query_map([], |r| {
                    let mut line = Vec::new();
                    for i in 0..9 {
                        let v: rusqlite::types::Value = r.get(i)?;
                        line.push(format!("{v:?}"));
                    }
                    Ok(line.join("|"))
                })
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
        }
    }
}

async fn set_provider(api: &Api, name: &str, token_url: &str) {
    let r = api
        .post(
            "/v1/mgmt/provider/set",
            json!({"name": name, "clientId": "cid", "clientSecret": "client-secret-value", "tokenEndpoint": token_url}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn store_token(api: &Api, login: &str, provider: &str, access: &str, refresh: &str, expiration: i64) {
    let r = api
        .put_token(json!({"loginId": login, "provider": provider, "providerUserId": login,
            "accessToken": access, "refreshToken": refresh, "expiration": expiration, "scopes": ["openid"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn read(api: &Api, login: &str, provider: &str, force: bool) -> Resp {
    api.get(&format!(
        "/v1/mgmt/user/provider/token?loginId={}&provider={provider}&withRefreshToken=false&forceRefresh={force}",
        urlencode(login)
    ))
    .await
}

fn clone_api(api: &Api) -> Api {
    Api { http: reqwest::Client::new(), base_url: api.base_url.clone(), auth: api.auth.clone() }
}

async fn readyz(app: &TestApp) -> Value {
    let r = reqwest::get(app.server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200, "an open provider circuit leaves the process ready");
    r.json().await.unwrap()
}

/// Polls /readyz until `flaky`'s circuit is in `state` (the cool-down passing), within `bound`.
async fn wait_for_circuit(app: &TestApp, provider: &str, state: &str, bound: Duration) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        let ready = readyz(app).await;
        let circuit = ready["providerCircuits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["provider"] == provider)
            .cloned()
            .unwrap_or(Value::Null);
        if circuit["state"] == state {
            return circuit;
        }
        assert!(Instant::now() < deadline, "{provider}'s circuit never became {state}: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn each_provider_fault_is_a_502_and_leaves_the_stored_tokens_byte_identical() {
    // The breaker is off here (0): each fault must reach the provider and be judged alone.
    let app = TestApp::spawn_with(&["--provider-timeout", "2s", "--provider-breaker-failures", "0"]);
    let api = &app.api;
    let injector = Injector::start(Fault::Healthy).await;
    set_provider(api, "flaky", &injector.url()).await;
    api.create_user(json!({"loginId": "f@example.com"})).await;
    store_token(api, "f@example.com", "flaky", "stored-access", "stored-refresh", now() + 3600).await;
    let stored = token_rows(&app.server.data_dir);
    assert!(stored.contains("flaky"), "{stored}");

    let faults = [
        (Fault::Hang, "E112107"),
        (Fault::Error500, "E112108"),
        (Fault::Garbage, "E112109"),
        (Fault::HugeDeclared, "E112109"),
        (Fault::HugeChunked, "E112109"),
        (Fault::Reset, "E112110"),
    ];
    let mut huge_sent = Vec::new();
    for (fault, code) in faults {
        injector.set(fault);
        injector.huge_bytes_sent.store(u64::MAX, Ordering::SeqCst);
        let calls = injector.requests();
        let started = Instant::now();
        let r = read(api, "f@example.com", "flaky", true).await;
        let elapsed = started.elapsed();
        r.assert_error(502, code);
        println!("{fault:?}: 502 {code} in {elapsed:?}: {}", r.body["errorMessage"]);
        assert!(
            !r.body.to_string().contains("stored-refresh"),
            "{fault:?}: no secret in the error: {}",
            r.body
        );
        assert_eq!(injector.requests(), calls + 1, "{fault:?}: one provider call, no retry");
        assert_eq!(token_rows(&app.server.data_dir), stored, "{fault:?}: stored tokens byte-identical");
        let plain = read(api, "f@example.com", "flaky", false).await;
        assert_eq!(plain.body["accessToken"], "stored-access", "{fault:?}: {}", plain.body);
        if matches!(fault, Fault::HugeDeclared | Fault::HugeChunked) {
            // The injector stops writing when idvault has closed the connection.
            let deadline = Instant::now() + Duration::from_secs(30);
            let sent = loop {
                let sent = injector.huge_bytes_sent.load(Ordering::SeqCst);
                if sent != u64::MAX {
                    break sent;
                }
                assert!(Instant::now() < deadline, "{fault:?}: the 10 MB answer was never cut off");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            // idvault read at most its cap (256 KiB) and went away, so the server could not
            // hand over all 10 MB: what it did hand over sits in the two sockets' buffers.
            assert!(sent < TEN_MB as u64, "{fault:?}: the 10 MB body was read whole");
            huge_sent.push((fault, sent));
        }
        if fault == Fault::Hang {
            // The timeout is 2 s: a generous sanity bound, not a measurement.
            assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
        }
    }
    println!(
        "10 MB answers: bytes the injector could write before idvault closed the connection: {huge_sent:?}"
    );

    // Connection refused: a port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    set_provider(api, "flaky", &format!("http://127.0.0.1:{closed_port}/token")).await;
    let stored = token_rows(&app.server.data_dir);
    read(api, "f@example.com", "flaky", true).await.assert_error(502, "E112110");
    assert_eq!(token_rows(&app.server.data_dir), stored, "refused: stored tokens byte-identical");

    // TLS failure: https to the injector's plain-HTTP port. The handshake reached it and failed.
    set_provider(api, "flaky", &format!("https://127.0.0.1:{}/token", injector.port)).await;
    let stored = token_rows(&app.server.data_dir);
    let (hellos, calls) = (injector.tls_hellos.load(Ordering::SeqCst), injector.requests());
    read(api, "f@example.com", "flaky", true).await.assert_error(502, "E112110");
    assert_eq!(injector.tls_hellos.load(Ordering::SeqCst), hellos + 1, "a TLS handshake was attempted");
    assert_eq!(injector.requests(), calls, "no HTTP request without TLS");
    assert_eq!(token_rows(&app.server.data_dir), stored, "TLS failure: stored tokens byte-identical");

    // The refresh token survived every fault: a healthy provider refreshes with it.
    injector.set(Fault::Healthy);
    set_provider(api, "flaky", &injector.url()).await;
    let ok = read(api, "f@example.com", "flaky", true).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body["accessToken"].as_str().unwrap().starts_with("fresh-"), "{}", ok.body);
    assert!(injector.last_request_body.lock().unwrap().contains("refresh_token=stored-refresh"));
    assert_ne!(token_rows(&app.server.data_dir), stored, "a success is stored");
    // Nothing secret reached the log either.
    let log = app.server.stderr();
    assert!(!log.contains("stored-refresh") && !log.contains("client-secret-value"), "secret in the log");
}

/// 50 concurrent reads that need no refresh, half of `same@example.com`'s `hung` token, half of
/// the `acme` tokens of `a0`..`a4`: all must answer 200 with the stored token. Answers how long
/// the batch took.
async fn fifty_reads(api: &Api) -> Duration {
    let started = Instant::now();
    let mut reads = Vec::new();
    for i in 0..50 {
        let api = clone_api(api);
        reads.push(tokio::spawn(async move {
            let (login, provider, expected) = match i % 2 {
                0 => ("same@example.com".to_owned(), "hung", "same-access".to_owned()),
                _ => (format!("a{}@example.com", i % 5), "acme", format!("a{}-access", i % 5)),
            };
            let r = read(&api, &login, provider, false).await;
            assert_eq!(r.status, 200, "{login} {provider}: {}", r.body);
            assert_eq!(r.body["accessToken"], expected.as_str());
        }));
    }
    for r in reads {
        r.await.unwrap();
    }
    started.elapsed()
}

#[tokio::test]
async fn a_hung_provider_holds_up_neither_other_reads_nor_another_providers_refreshes() {
    let oauth = OAuthServer::start();
    // On PostgreSQL every refresh in progress holds a lock-pool connection: with 8 of them and
    // 12 hung refreshes, the healthy provider's refreshes below get a connection only because
    // the hung ones wait for a provider slot (4) before taking one.
    let app = TestApp::spawn_with_env(
        &[("IDVAULT_DB_POOL_SIZE", "8")],
        &[
            "--provider-timeout",
            "60s",
            "--provider-refresh-concurrency",
            "4",
            "--provider-breaker-failures",
            "0",
        ],
    );
    let api = &app.api;
    let injector = Injector::start(Fault::Hang).await;
    set_provider(api, "hung", &injector.url()).await;
    let r = api
        .post(
            "/v1/mgmt/provider/set",
            json!({"name": "acme", "clientId": "idvault-test", "clientSecret": "idvault-test-secret", "issuer": oauth.issuer}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Twelve users whose `hung` tokens have expired: their reads refresh, and hang.
    for i in 0..12 {
        let login = format!("h{i}@example.com");
        api.create_user(json!({"loginId": login})).await;
        store_token(api, &login, "hung", &format!("h{i}-access"), &format!("h{i}-refresh"), now() - 10).await;
    }
    // Readers that need no refresh: the same provider, and the other one.
    api.create_user(json!({"loginId": "same@example.com"})).await;
    store_token(api, "same@example.com", "hung", "same-access", "same-refresh", now() + 3600).await;
    for i in 0..5 {
        let login = format!("a{i}@example.com");
        api.create_user(json!({"loginId": login})).await;
        store_token(api, &login, "acme", &format!("a{i}-access"), "a-refresh", now() + 3600).await;
    }
    // Users of the healthy provider whose tokens have expired (real grants): they refresh.
    for i in 0..2 {
        let login = format!("r{i}@example.com");
        api.create_user(json!({"loginId": login})).await;
        let grant = oauth.grant(&login).await;
        store_token(
            api,
            &login,
            "acme",
            grant["access_token"].as_str().unwrap(),
            grant["refresh_token"].as_str().unwrap(),
            now() - 10,
        )
        .await;
    }
    let stored_hung: Vec<String> =
        token_rows(&app.server.data_dir).lines().filter(|l| l.contains("hung")).map(str::to_owned).collect();

    // The same reads with nothing hanging, for comparison (printed, not asserted).
    let baseline = fifty_reads(api).await;

    let hung: Vec<_> = (0..12)
        .map(|i| {
            let api = clone_api(api);
            tokio::spawn(async move { read(&api, &format!("h{i}@example.com"), "hung", false).await })
        })
        .collect();
    // The bulkhead: four calls reach the provider, the other eight wait for a slot.
    let deadline = Instant::now() + Duration::from_secs(30);
    while injector.in_flight.load(Ordering::SeqCst) < 4 {
        assert!(Instant::now() < deadline, "the hung refreshes never reached the provider");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let fifty = fifty_reads(api).await;
    let started = Instant::now();
    for i in 0..2 {
        let r = read(api, &format!("r{i}@example.com"), "acme", false).await;
        assert_eq!(r.status, 200, "the healthy provider's refresh while the other hangs: {}", r.body);
    }
    let healthy_refreshes = started.elapsed();
    println!(
        "50 concurrent reads (25 of the hung provider, 25 of another): {baseline:?} with nothing hanging, {fifty:?} \
         while 12 refreshes hang on one provider; 2 refreshes with the healthy provider meanwhile: {healthy_refreshes:?}"
    );
    assert_eq!(oauth.refresh_requests().await, 2);
    assert!(hung.iter().all(|t| !t.is_finished()), "the hung refreshes are still outstanding");
    assert_eq!(injector.max_in_flight.load(Ordering::SeqCst), 4, "at most 4 calls at once to one provider");
    // Sanity bound only: far below the 60 s provider timeout.
    assert!(fifty < Duration::from_secs(30), "{fifty:?}");

    // Let the provider fail now: every hung read ends in a 502, the tokens as they were.
    injector.set(Fault::Error500);
    injector.release.notify_waiters();
    for t in hung {
        let r = t.await.unwrap();
        r.assert_error(502, "E112108");
    }
    let after: Vec<String> =
        token_rows(&app.server.data_dir).lines().filter(|l| l.contains("hung")).map(str::to_owned).collect();
    assert_eq!(after, stored_hung, "stored tokens byte-identical");
}

#[tokio::test]
async fn the_circuit_opens_after_n_failures_stops_calling_and_recovers_after_the_cooldown() {
    let app = TestApp::spawn_with(&[
        "--provider-timeout",
        "5s",
        "--provider-breaker-failures",
        "3",
        "--provider-breaker-cooldown",
        "2s",
    ]);
    let api = &app.api;
    let injector = Injector::start(Fault::Error500).await;
    let other = Injector::start(Fault::Healthy).await;
    set_provider(api, "flaky", &injector.url()).await;
    set_provider(api, "other", &other.url()).await;
    api.create_user(json!({"loginId": "f@example.com"})).await;
    store_token(api, "f@example.com", "flaky", "f-access", "f-refresh", now() + 3600).await;
    store_token(api, "f@example.com", "other", "o-access", "o-refresh", now() + 3600).await;
    let user_id = api.get("/v1/mgmt/user?loginId=f%40example.com").await.body["user"]["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same provider as an outbound app: its token routes share the circuit.
    let r = api
        .post(
            "/v1/mgmt/outbound/app/user/oauthtoken/upload",
            json!({"appId": "flaky", "userId": user_id, "accessToken": "ob-access", "refreshToken": "ob-refresh",
                "accessTokenExpiry": now() + 3600, "scopes": ["openid"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stored = token_rows(&app.server.data_dir);
    assert!(readyz(&app).await["providerCircuits"].as_array().unwrap().is_empty());

    for _ in 0..3 {
        read(api, "f@example.com", "flaky", true).await.assert_error(502, "E112108");
    }
    assert_eq!(injector.requests(), 3);

    // Open: refreshes fail at once without calling the provider, by either route.
    for _ in 0..5 {
        let r = read(api, "f@example.com", "flaky", true).await;
        r.assert_error(502, "E112113");
        assert!(r.body["errorMessage"].as_str().unwrap().contains("3 times in a row"), "{}", r.body);
    }
    let outbound = api
        .post(
            "/v1/mgmt/outbound/app/user/token/latest",
            json!({"appId": "flaky", "userId": user_id, "options": {"forceRefresh": true}}),
        )
        .await;
    outbound.assert_error(502, "E112113");
    assert_eq!(injector.requests(), 3, "an open circuit makes no provider call");
    assert_eq!(token_rows(&app.server.data_dir), stored, "stored tokens byte-identical");
    // Reads that need no refresh, and the other provider, are unaffected.
    assert_eq!(read(api, "f@example.com", "flaky", false).await.body["accessToken"], "f-access");
    let o = read(api, "f@example.com", "other", true).await;
    assert_eq!(o.status, 200, "{}", o.body);

    let circuits = readyz(&app).await["providerCircuits"].clone();
    let circuits = circuits.as_array().unwrap();
    assert_eq!(circuits.len(), 1, "{circuits:?}");
    let open = &circuits[0];
    assert_eq!((open["provider"].as_str(), open["state"].as_str()), (Some("flaky"), Some("open")), "{open}");
    assert_eq!(open["consecutiveFailures"], 3);
    assert_eq!(open["projectId"], app.server.project_id.as_deref().unwrap());
    assert!(app.server.stderr().contains("provider circuit opened"), "warned in the log");
    // And on /metrics, by provider.
    let metrics = reqwest::get(app.server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l == "idvault_provider_circuits{provider=\"flaky\",state=\"open\"} 1"),
        "{metrics}"
    );

    // After the cool-down one probe goes through; it fails, and the circuit opens again.
    wait_for_circuit(&app, "flaky", "halfOpen", Duration::from_secs(30)).await;
    read(api, "f@example.com", "flaky", true).await.assert_error(502, "E112108");
    assert_eq!(injector.requests(), 4, "exactly one probe");
    read(api, "f@example.com", "flaky", true).await.assert_error(502, "E112113");
    assert_eq!(injector.requests(), 4);
    assert!(app.server.stderr().contains("provider circuit probe failed"));

    // The provider recovers: the next probe succeeds and closes the circuit.
    injector.set(Fault::Healthy);
    wait_for_circuit(&app, "flaky", "halfOpen", Duration::from_secs(30)).await;
    let ok = read(api, "f@example.com", "flaky", true).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(injector.requests(), 5);
    assert!(readyz(&app).await["providerCircuits"].as_array().unwrap().is_empty());
    assert!(app.server.stderr().contains("provider circuit closed"), "warned in the log");
    let again = api
        .post(
            "/v1/mgmt/outbound/app/user/token/latest",
            json!({"appId": "flaky", "userId": user_id, "options": {"forceRefresh": true}}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(injector.requests(), 6, "closed: calls go through again");
}
