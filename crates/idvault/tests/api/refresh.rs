//! Token refresh against a real OAuth server (oidc-provider, with refresh-token rotation on).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::oauth_server::OAuthServer;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn configure_provider(api: &Api, oauth: &OAuthServer) -> Value {
    let r = api
        .post(
            "/v1/mgmt/provider/set",
            json!({"name": "acme", "clientId": "idvault-test", "clientSecret": "idvault-test-secret", "issuer": oauth.issuer}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["provider"].clone()
}

/// A user whose `acme` tokens came from a real grant; `expires_at` is what idvault is told.
async fn user_with_grant(api: &Api, oauth: &OAuthServer, login: &str, expires_at: i64) -> Value {
    api.create_user(json!({"loginId": login})).await;
    let grant = oauth.grant(login).await;
    let r = api
        .put_token(json!({"loginId": login, "provider": "acme", "providerUserId": login,
            "accessToken": grant["access_token"], "refreshToken": grant["refresh_token"],
            "expiration": expires_at, "scopes": ["openid", "email", "offline_access"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    grant
}

async fn read(api: &Api, login: &str, force: bool, with_refresh: bool) -> Resp {
    api.get(&format!(
        "/v1/mgmt/user/provider/token?loginId={}&provider=acme&withRefreshToken={with_refresh}&forceRefresh={force}",
        urlencode(login)
    ))
    .await
}

#[tokio::test]
async fn provider_configuration_discovery_and_secret_never_returned() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    let p = configure_provider(&app.api, &oauth).await;
    assert_eq!(p["tokenEndpoint"], format!("{}/token", oauth.issuer), "filled by OIDC discovery");
    assert_eq!(p["issuer"], oauth.issuer);
    assert_eq!(p["hasClientSecret"], true);
    assert_eq!(p["authMethod"], "client_secret_basic");
    assert!(!p.to_string().contains("idvault-test-secret"));

    let google = app
        .api
        .post("/v1/mgmt/provider/set", json!({"name": "google", "clientId": "gid", "clientSecret": "gs"}))
        .await;
    assert_eq!(google.body["provider"]["tokenEndpoint"], "https://oauth2.googleapis.com/token", "preset");
    let all = app.api.get("/v1/mgmt/provider/all").await;
    assert_eq!(all.body["providers"].as_array().unwrap().len(), 2);
    assert!(!all.body.to_string().contains("gs\""));
    let one = app.api.get("/v1/mgmt/provider?name=google").await;
    assert_eq!(one.body["provider"]["clientId"], "gid");

    // Updating without a secret keeps the stored one while it goes to the same place...
    let upd = app
        .api
        .post("/v1/mgmt/provider/set", json!({"name": "google", "clientId": "gid", "scopes": ["openid"]}))
        .await;
    assert_eq!(upd.body["provider"]["hasClientSecret"], true);
    assert_eq!(upd.body["provider"]["scopes"], json!(["openid"]));
    // ...but another client id needs the secret again (see ssrf.rs for the endpoints).
    app.api
        .post("/v1/mgmt/provider/set", json!({"name": "google", "clientId": "gid2"}))
        .await
        .assert_error(400, "E011004");

    app.api
        .post("/v1/mgmt/provider/set", json!({"name": "custom", "clientId": "x"}))
        .await
        .assert_error(400, "E011002");
    app.api
        .post(
            "/v1/mgmt/provider/set",
            json!({"name": "custom", "clientId": "x", "tokenEndpoint": "ftp://nope"}),
        )
        .await
        .assert_error(400, "E011004");
    app.api
        .post(
            "/v1/mgmt/provider/set",
            json!({"name": "custom", "clientId": "x", "issuer": "http://127.0.0.1:9"}),
        )
        .await
        .assert_error(400, "E011004");
    assert_eq!(app.api.post("/v1/mgmt/provider/delete", json!({"name": "google"})).await.status, 200);
    app.api.get("/v1/mgmt/provider?name=google").await.assert_error(404, "E112112");

    // The client secret is sealed at rest.
    let TestApp { server, dir, .. } = app;
    let data = server.data_dir.clone();
    assert!(server.stop().success());
    let db = storage_dump(&data);
    assert!(!db.windows(19).any(|w| w == b"idvault-test-secret"));
    drop(dir);
}

#[tokio::test]
async fn expired_token_is_refreshed_on_read_and_rotation_is_followed() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    configure_provider(&app.api, &oauth).await;
    let grant = user_with_grant(&app.api, &oauth, "exp@example.com", now() - 10).await;

    let r = read(&app.api, "exp@example.com", false, true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.body["accessToken"], grant["access_token"], "an expired token is refreshed");
    assert_ne!(r.body["refreshToken"], grant["refresh_token"], "oidc-provider rotated the refresh token");
    let exp = r.body["expiration"].as_i64().unwrap();
    assert!((exp - (now() + 3600)).abs() < 30, "expiration from expires_in: {exp}");
    assert_eq!(oauth.refresh_requests().await, 1);

    // Now valid: served as stored, no provider call.
    let again = read(&app.api, "exp@example.com", false, false).await;
    assert_eq!(again.body["accessToken"], r.body["accessToken"]);
    assert_eq!(oauth.refresh_requests().await, 1);

    // Forced: a new token even though valid, using the rotated refresh token (a reused one would
    // make oidc-provider revoke the whole grant).
    let forced = read(&app.api, "exp@example.com", true, true).await;
    assert_eq!(forced.status, 200, "{}", forced.body);
    assert_ne!(forced.body["accessToken"], r.body["accessToken"]);
    let stats = oauth.stats().await;
    let presented = stats["last_refresh_tokens"].as_array().unwrap();
    assert_eq!(presented.last().unwrap(), &r.body["refreshToken"], "the newest refresh token was used");
    let forced2 = read(&app.api, "exp@example.com", true, false).await;
    assert_eq!(forced2.status, 200, "{}", forced2.body);
    assert_eq!(oauth.refresh_requests().await, 3);
    assert_eq!(oauth.stats().await["refresh_reuse_detected"], 0);
}

#[tokio::test]
async fn hundred_concurrent_forced_refreshes_make_one_provider_call() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    configure_provider(&app.api, &oauth).await;
    user_with_grant(&app.api, &oauth, "busy@example.com", now() + 3600).await;
    // Hold each token answer back a little so that all 100 requests are surely in flight while
    // the one refresh is.
    oauth.control("delay", json!({"ms": 300})).await;
    oauth.control("stats/reset", json!({})).await;

    let mut tasks = Vec::new();
    for _ in 0..100 {
        let api = Api {
            http: reqwest::Client::new(),
            base_url: app.api.base_url.clone(),
            auth: app.api.auth.clone(),
        };
        tasks.push(tokio::spawn(async move { read(&api, "busy@example.com", true, false).await }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        tokens.insert(r.body["accessToken"].as_str().unwrap().to_owned());
    }
    let calls = oauth.refresh_requests().await;
    println!("100 concurrent forceRefresh requests -> {calls} token request(s) at the provider, {} distinct access token(s)", tokens.len());
    assert_eq!(calls, 1, "exactly one upstream refresh");
    assert_eq!(tokens.len(), 1, "all answers carry the same new access token");
    oauth.control("delay", json!({"ms": 0})).await;
    // And the grant is healthy: the next refresh works.
    assert_eq!(read(&app.api, "busy@example.com", true, false).await.status, 200);
}

#[tokio::test]
async fn revoked_grant_is_flagged_and_later_reads_fail_fast() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    configure_provider(&app.api, &oauth).await;
    let grant = user_with_grant(&app.api, &oauth, "gone@example.com", now() + 3600).await;
    oauth.control("revoke", json!({"grant_id": grant["grant_id"]})).await;
    oauth.control("stats/reset", json!({})).await;

    read(&app.api, "gone@example.com", true, false).await.assert_error(409, "E112105");
    assert_eq!(oauth.refresh_requests().await, 1);
    for force in [false, true] {
        read(&app.api, "gone@example.com", force, false).await.assert_error(409, "E112105");
    }
    assert_eq!(oauth.refresh_requests().await, 1, "flagged: no further provider calls");

    // A new sign-in (here: an import) clears the flag.
    let fresh = oauth.grant("gone@example.com").await;
    let r = app
        .api
        .put_token(json!({"loginId": "gone@example.com", "provider": "acme", "providerUserId": "gone",
            "accessToken": fresh["access_token"], "refreshToken": fresh["refresh_token"], "expiration": now() + 3600}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(read(&app.api, "gone@example.com", true, false).await.status, 200);
}

#[tokio::test]
async fn provider_failures_leave_tokens_intact_and_map_to_distinct_codes() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn_with(&["--provider-timeout", "2s"]);
    configure_provider(&app.api, &oauth).await;
    user_with_grant(&app.api, &oauth, "f@example.com", now() + 3600).await;
    let before = read(&app.api, "f@example.com", false, true).await.body;

    for (mode, code) in [("error500", "E112108"), ("garbage", "E112109"), ("huge", "E112109")] {
        oauth.mode(mode).await;
        let r = read(&app.api, "f@example.com", true, false).await;
        r.assert_error(502, code);
        assert_eq!(
            read(&app.api, "f@example.com", false, true).await.body,
            before,
            "{mode}: stored tokens unchanged"
        );
    }

    // A hanging provider: a clean error within the timeout, and the server keeps serving others.
    oauth.mode("hang").await;
    let hung = {
        let api = Api {
            http: reqwest::Client::new(),
            base_url: app.api.base_url.clone(),
            auth: app.api.auth.clone(),
        };
        tokio::spawn(async move {
            let started = Instant::now();
            let r = read(&api, "f@example.com", true, false).await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    assert_eq!(app.api.get("/v1/mgmt/user?loginId=f%40example.com").await.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "other requests are not blocked by a hung provider");
    let (r, elapsed) = hung.await.unwrap();
    r.assert_error(502, "E112107");
    assert!(elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(6), "{elapsed:?}");
    oauth.mode("normal").await;
    assert_eq!(read(&app.api, "f@example.com", false, true).await.body, before);

    // The refresh token was never consumed by the failures: a refresh now succeeds.
    let ok = read(&app.api, "f@example.com", true, false).await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    // A form-encoded answer (GitHub without Accept: application/json) works.
    oauth.mode("form").await;
    let form = read(&app.api, "f@example.com", true, false).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_ne!(form.body["accessToken"], ok.body["accessToken"]);

    // A token that never expires: expiration 0, and a plain read never refreshes it.
    oauth.mode("no_expires_in").await;
    let forever = read(&app.api, "f@example.com", true, false).await;
    assert_eq!(forever.body["expiration"], 0);
    oauth.mode("normal").await;
    let calls = oauth.refresh_requests().await;
    read(&app.api, "f@example.com", false, false).await;
    assert_eq!(oauth.refresh_requests().await, calls);

    // A wrong client secret is an OAuth error from the provider, not a revoked grant.
    app.api
        .post(
            "/v1/mgmt/provider/set",
            json!({"name": "acme", "clientId": "idvault-test", "clientSecret": "wrong",
        "issuer": oauth.issuer}),
        )
        .await;
    read(&app.api, "f@example.com", true, false).await.assert_error(502, "E112106");
    // An unreachable token endpoint.
    app.api
        .post(
            "/v1/mgmt/provider/set",
            json!({"name": "acme", "clientId": "idvault-test", "clientSecret": "x",
        "tokenEndpoint": "http://127.0.0.1:9/token"}),
        )
        .await;
    read(&app.api, "f@example.com", true, false).await.assert_error(502, "E112110");
    assert_eq!(read(&app.api, "f@example.com", false, false).await.status, 200, "tokens still readable");
}

#[tokio::test]
async fn forced_refresh_needs_a_refresh_token_and_a_configured_provider() {
    let app = TestApp::spawn();
    app.api.create_user(json!({"loginId": "n"})).await;
    app.api
        .put_token(json!({"loginId": "n", "provider": "acme", "accessToken": "a", "refreshToken": "r"}))
        .await;
    read(&app.api, "n", true, false).await.assert_error(404, "E112112");
    app.api.put_token(json!({"loginId": "n", "provider": "acme", "accessToken": "a"})).await;
    read(&app.api, "n", true, false).await.assert_error(400, "E112111");
    // Expired, with no way to refresh: returned as stored.
    app.api.put_token(json!({"loginId": "n", "provider": "acme", "accessToken": "old", "refreshToken": "r", "expiration": 5})).await;
    assert_eq!(read(&app.api, "n", false, false).await.body["accessToken"], "old");
}

#[tokio::test]
async fn refresh_latency_against_plain_reads() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    configure_provider(&app.api, &oauth).await;
    user_with_grant(&app.api, &oauth, "lat@example.com", now() + 3600).await;
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        assert_eq!(read(&app.api, "lat@example.com", false, false).await.status, 200);
    }
    let plain = started.elapsed() / rounds;
    let started = Instant::now();
    for _ in 0..rounds {
        assert_eq!(read(&app.api, "lat@example.com", true, false).await.status, 200);
    }
    let refreshed = started.elapsed() / rounds;
    println!(
        "mean latency over {rounds} sequential requests: plain read {plain:?}, forced refresh {refreshed:?}"
    );
    assert_eq!(oauth.refresh_requests().await, u64::from(rounds));
}
