//! Provider URLs and the server's outbound calls: the SSRF policy (non-public addresses, https,
//! issuer shape, discovered endpoints, one generic error), the `--provider-allowed-hosts`
//! exceptions, and the write-only client secret that must not follow a moved endpoint.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;
use crate::oauth_server::OAuthServer;

const GENERIC: &str =
    "the provider could not be used: its address is not allowed, or it did not answer as an OAuth provider";

/// A server with the default policy: no `--provider-allowed-hosts`.
fn strict_app() -> TestApp {
    TestApp::spawn_with_env(&[("IDVAULT_PROVIDER_ALLOWED_HOSTS", "")], &[])
}

async fn set(api: &Api, body: Value) -> Resp {
    api.post("/v1/mgmt/provider/set", body).await
}

/// Asserts the one generic refusal.
fn assert_generic(r: &Resp, field: &str, what: &str) {
    r.assert_error(400, "E011004");
    assert_eq!(r.body["errorMessage"], format!("invalid {field}: {GENERIC}"), "{what}: {}", r.body);
}

/// A minimal HTTP server on 127.0.0.1 that answers a configurable discovery document and records
/// every request it gets (to show what idvault sent where).
struct FakeIdp {
    base: String,
    doc: Arc<Mutex<Value>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FakeIdp {
    async fn start() -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let doc = Arc::new(Mutex::new(json!({})));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (d, s) = (doc.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let (d, s) = (d.clone(), s.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Headers, then a Content-Length body if any.
                    let head_end = loop {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let request = String::from_utf8_lossy(&buf).to_string();
                    s.lock().unwrap().push(request.clone());
                    let body = if request.starts_with("GET /.well-known/openid-configuration ") {
                        d.lock().unwrap().to_string()
                    } else {
                        json!({"error": "invalid_client"}).to_string()
                    };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        FakeIdp { base, doc, seen }
    }

    fn serve_doc(&self, doc: Value) {
        *self.doc.lock().unwrap() = doc;
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn provider_urls_at_non_public_addresses_are_refused_with_one_generic_error() {
    let oauth = OAuthServer::start();
    let idp = FakeIdp::start().await;
    let app = strict_app();
    let port = oauth.issuer.rsplit(':').next().unwrap().to_owned();

    let issuers = [
        oauth.issuer.clone(),                // a real OIDC server on loopback, http
        format!("https://127.0.0.1:{port}"), // loopback over https
        "http://169.254.169.254".to_owned(), // cloud metadata
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://10.0.0.1".to_owned(), // private
        "https://172.16.5.4".to_owned(),
        "https://192.168.1.1".to_owned(),
        "https://100.64.0.1".to_owned(), // CGNAT
        "http://2130706433/".to_owned(), // decimal 127.0.0.1
        format!("https://2130706433:{port}"),
        format!("https://0x7f.0.0.1:{port}"), // hex
        format!("https://0177.0.0.1:{port}"), // octal
        format!("https://[::1]:{port}"),
        format!("https://[::ffff:127.0.0.1]:{port}"), // IPv4-mapped IPv6
        "https://[fe80::1]".to_owned(),
        "https://[fd00::1]".to_owned(),
        "https://0.0.0.0".to_owned(),
        format!("https://localhost:{port}"),
        "https://foo.localhost".to_owned(),
        "http://idp.example.com".to_owned(),      // http to a public name
        "https://idp.example.com/?x=".to_owned(), // the issuer picks the path
        "https://idp.example.com/#x".to_owned(),
        "https://idp.example.com?".to_owned(),
        "https://user:pw@idp.example.com".to_owned(),
        "javascript:alert(1)".to_owned(),
    ];
    for issuer in &issuers {
        let r =
            set(&app.api, json!({"name": "custom", "clientId": "x", "clientSecret": "s", "issuer": issuer}))
                .await;
        assert_generic(&r, "issuer", issuer);
    }
    // Endpoints given directly follow the same rule, each reported against its own field.
    for (field, url) in [
        ("tokenEndpoint", "https://169.254.169.254/token".to_owned()),
        ("tokenEndpoint", format!("{}/token", idp.base)),
        ("tokenEndpoint", "http://2130706433/token".to_owned()),
        ("tokenEndpoint", "http://oauth2.example.com/token".to_owned()),
        ("authorizationEndpoint", "javascript:alert(1)".to_owned()),
        ("authorizationEndpoint", "https://10.1.1.1/authorize".to_owned()),
        ("userinfoEndpoint", format!("https://[::1]:{port}/me")),
        ("jwksUri", "https://localhost/jwks".to_owned()),
    ] {
        let mut body = json!({"name": "custom", "clientId": "x", "clientSecret": "s",
            "tokenEndpoint": "https://oauth2.example.com/token"});
        body[field] = json!(url);
        assert_generic(&set(&app.api, body).await, field, &url);
    }
    // Nothing was fetched from the local server.
    assert!(idp.requests().is_empty(), "{:?}", idp.requests());
    // A preset with a given public endpoint still works on a strict server.
    let ok = set(&app.api, json!({"name": "google", "clientId": "g", "clientSecret": "s"})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let ok = set(&app.api, json!({"name": "custom", "clientId": "x", "clientSecret": "s",
        "tokenEndpoint": "https://oauth2.example.com/token", "authorizationEndpoint": "https://oauth2.example.com/a"}))
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(!app.server.stderr().contains("\"s\""));

    // The same answer on a server that allows 127.0.0.1 when the provider does not answer as
    // one: a closed port, a 404, a document that is not JSON: no oracle.
    let open = TestApp::spawn_with_env(
        &[("IDVAULT_PROVIDER_ALLOWED_HOSTS", "")],
        &["--provider-allowed-hosts", "127.0.0.1"],
    );
    idp.serve_doc(json!("not a discovery document"));
    for issuer in [
        "http://127.0.0.1:9".to_owned(),
        format!("{}/nowhere", oauth.issuer),
        idp.base.clone(),
        "https://10.0.0.1".to_owned(),
    ] {
        let r =
            set(&open.api, json!({"name": "custom", "clientId": "x", "clientSecret": "s", "issuer": issuer}))
                .await;
        assert_generic(&r, "issuer", &issuer);
    }
    // What was refused and why is in the server's log, for the operator.
    assert!(open.server.stderr().contains("OIDC discovery failed"), "{}", open.server.stderr());
    assert!(app.server.stderr().contains("provider URL refused"), "{}", app.server.stderr());
}

#[tokio::test]
async fn an_allowed_local_provider_works_end_to_end() {
    // The flag on the command line (the environment variable is emptied).
    let oauth = OAuthServer::start();
    let app = TestApp::spawn_with_env(
        &[("IDVAULT_PROVIDER_ALLOWED_HOSTS", "")],
        &["--provider-allowed-hosts", "127.0.0.1"],
    );
    let r = set(
        &app.api,
        json!({"name": "acme", "clientId": "idvault-test", "clientSecret": "idvault-test-secret",
        "issuer": oauth.issuer}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["provider"]["tokenEndpoint"], format!("{}/token", oauth.issuer));

    app.api.create_user(json!({"loginId": "ana"})).await;
    let grant = oauth.grant("ana").await;
    let r = app
        .api
        .put_token(json!({"loginId": "ana", "provider": "acme", "providerUserId": "ana",
            "accessToken": grant["access_token"], "refreshToken": grant["refresh_token"], "expiration": 5}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let before = oauth.refresh_requests().await;
    let r = app.api.get("/v1/mgmt/user/provider/token?loginId=ana&provider=acme&forceRefresh=true").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.body["accessToken"], grant["access_token"]);
    assert_eq!(oauth.refresh_requests().await, before + 1);

    let redirect = "https://app.example.com/done";
    let r = app.api.post("/v1/mgmt/auth/settings", json!({"redirectUrls": [redirect]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let authorize = format!("/v1/auth/oauth/authorize?provider=acme&redirectURL={redirect}");

    // A stored token endpoint that is no longer allowed (configured under another policy, or
    // imported) is refused at call time, with the same answer as an unreachable one.
    let TestApp { server, api, dir } = app;
    let project = server.project_id.clone().unwrap();
    let public = Api::new(&api.base_url, &project, "");
    let public = Api { auth: format!("Bearer {project}"), ..public };
    let r = public.post(&authorize, json!({})).await;
    assert_eq!(r.status, 200, "sign-in starts while the provider is allowed: {}", r.body);
    let data = server.data_dir.clone();
    assert!(server.stop().success());
    let restarted = TestServer::start_with(&data, &[("IDVAULT_PROVIDER_ALLOWED_HOSTS", "")], &[]);
    let api = Api { base_url: restarted.base_url.clone(), ..api };
    let calls = oauth.refresh_requests().await;
    let r = api.get("/v1/mgmt/user/provider/token?loginId=ana&provider=acme&forceRefresh=true").await;
    r.assert_error(502, "E112110");
    assert_eq!(oauth.refresh_requests().await, calls, "no call went out");
    assert!(restarted.stderr().contains("provider URL refused"), "{}", restarted.stderr());
    // The stored authorization endpoint, where browsers are sent, is checked again as well.
    let public = Api { base_url: restarted.base_url.clone(), ..public };
    let r = public.post(&authorize, json!({})).await;
    r.assert_error(400, "E011004");
    assert!(r.body["errorMessage"].as_str().unwrap().contains("could not be used"), "{}", r.body);
    drop(restarted);
    drop(dir);
}

#[tokio::test]
async fn discovered_endpoints_go_through_the_same_policy() {
    let idp = FakeIdp::start().await;
    let app = TestApp::spawn(); // allows 127.0.0.1
    let good = json!({
        "issuer": idp.base,
        "authorization_endpoint": format!("{}/authorize", idp.base),
        "token_endpoint": format!("{}/token", idp.base),
        "userinfo_endpoint": format!("{}/me", idp.base),
        "jwks_uri": format!("{}/jwks", idp.base),
    });
    for (field, bad) in [
        ("token_endpoint", "http://169.254.169.254/latest/meta-data/iam"),
        ("token_endpoint", "http://10.0.0.7/token"),
        ("token_endpoint", "http://2852039166/token"), // 169.254.169.254 in decimal
        ("jwks_uri", "http://[::1]/jwks"),
        ("userinfo_endpoint", "https://localhost/me"),
        ("userinfo_endpoint", "http://idp.example.com/me"),
        ("authorization_endpoint", "javascript:alert(1)"),
        ("authorization_endpoint", "data:text/html,<script>alert(1)</script>"),
        ("authorization_endpoint", "https://idp.example.com/a#frag"),
        ("issuer", "http://127.0.0.1:1/?x="),
    ] {
        let mut doc = good.clone();
        doc[field] = json!(bad);
        idp.serve_doc(doc);
        let r = set(
            &app.api,
            json!({"name": "custom", "clientId": "x", "clientSecret": "s", "issuer": idp.base}),
        )
        .await;
        assert_generic(&r, "issuer", bad);
    }
    idp.serve_doc(good);
    let r =
        set(&app.api, json!({"name": "custom", "clientId": "x", "clientSecret": "s", "issuer": idp.base}))
            .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["provider"]["authorizationEndpoint"], format!("{}/authorize", idp.base));
}

#[tokio::test]
async fn the_client_secret_does_not_follow_a_changed_endpoint() {
    let oauth = OAuthServer::start();
    let thief = FakeIdp::start().await;
    let app = TestApp::spawn();
    let base = json!({"name": "acme", "clientId": "idvault-test", "issuer": oauth.issuer});
    let mut first = base.clone();
    first["clientSecret"] = json!("idvault-test-secret");
    assert_eq!(set(&app.api, first).await.status, 200);
    app.api.create_user(json!({"loginId": "bo"})).await;
    let grant = oauth.grant("bo").await;
    let r = app
        .api
        .put_token(json!({"loginId": "bo", "provider": "acme", "providerUserId": "bo",
            "accessToken": grant["access_token"], "refreshToken": grant["refresh_token"], "expiration": 5}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Without the secret, nothing that decides where it goes may change.
    for (field, value) in [
        ("tokenEndpoint", json!(format!("{}/token", thief.base))),
        ("authorizationEndpoint", json!(format!("{}/authorize", thief.base))),
        ("userinfoEndpoint", json!(format!("{}/me", thief.base))),
        ("jwksUri", json!(format!("{}/jwks", thief.base))),
        ("clientId", json!("someone-else")),
    ] {
        let mut body = base.clone();
        body[field] = value;
        let r = set(&app.api, body).await;
        r.assert_error(400, "E011004");
        assert!(r.body["errorMessage"].as_str().unwrap().contains("clientSecret"), "{field}: {}", r.body);
    }
    // Another issuer (its discovery names other endpoints).
    thief.serve_doc(json!({"issuer": thief.base, "token_endpoint": format!("{}/token", thief.base)}));
    let r = set(&app.api, json!({"name": "acme", "clientId": "idvault-test", "issuer": thief.base})).await;
    r.assert_error(400, "E011004");
    assert!(r.body["errorMessage"].as_str().unwrap().contains("clientSecret"), "{}", r.body);

    // The refresh still goes to the provider, with its secret; the other server saw no token
    // request.
    let r = app.api.get("/v1/mgmt/user/provider/token?loginId=bo&provider=acme&forceRefresh=true").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(thief.requests().iter().all(|q| !q.starts_with("POST")), "{:?}", thief.requests());

    // Unchanged endpoints (scopes only) keep the stored secret; a new secret allows any change.
    let mut scopes = base.clone();
    scopes["scopes"] = json!(["openid", "email", "offline_access"]);
    let r = set(&app.api, scopes).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["provider"]["hasClientSecret"], true);
    let r = set(
        &app.api,
        json!({"name": "acme", "clientId": "idvault-test", "clientSecret": "new-secret",
        "tokenEndpoint": format!("{}/token", thief.base)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn the_cli_applies_the_same_policy() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    let data = app.server.data_dir.clone();
    let project = app.server.project_id.clone().unwrap();
    let base = ["provider", "set", "--project", &project, "--name", "custom", "--client-id", "x"];
    let with = |extra: &[&str]| {
        base.iter().copied().chain(extra.iter().copied()).map(str::to_owned).collect::<Vec<_>>()
    };

    for issuer in [oauth.issuer.as_str(), "http://169.254.169.254", "https://2130706433/"] {
        let args = with(&["--issuer", issuer]);
        let err = crate::cli::run_err(&data, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(err.contains(GENERIC), "{issuer}: {err}");
    }
    let args = with(&["--issuer", &oauth.issuer, "--provider-allowed-hosts", "127.0.0.1"]);
    let out = crate::cli::run_ok(&data, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains(&format!("{}/token", oauth.issuer)), "{out}");
}
