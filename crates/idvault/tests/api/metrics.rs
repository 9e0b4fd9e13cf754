//! Prometheus metrics at /metrics: counters move with traffic, labels are route templates and
//! provider names, never a login id, key or token.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::helpers::*;
use crate::oauth_server::OAuthServer;

async fn scrape(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn counters_move_with_traffic_and_labels_carry_no_user_data() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    let api = &app.api;
    let login = "metrics-person@example.com";
    api.create_user(json!({"loginId": login})).await;
    for _ in 0..3 {
        let r = api.get(&format!("/v1/mgmt/user?loginId={}", urlencode(login))).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let missing = api.get("/v1/mgmt/user?loginId=nobody-here%40example.com").await;
    assert!(missing.status >= 400, "{}", missing.body);
    let missing_status = format!("status=\"{}\"", missing.status);
    let r = api.get("/no/such/route/secret-path-part").await;
    assert_eq!(r.status, 404);

    // A refresh against the real OAuth server.
    let r = api
        .post(
            "/v1/mgmt/provider/set",
            json!({"name": "acme", "clientId": "idvault-test", "clientSecret": "idvault-test-secret", "issuer": oauth.issuer}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let grant = oauth.grant(login).await;
    let expired = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 - 10;
    let r = api
        .put_token(json!({"loginId": login, "provider": "acme", "providerUserId": login,
            "accessToken": grant["access_token"], "refreshToken": grant["refresh_token"],
            "expiration": expired}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refreshed = api.get_token(login, "acme", true).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(oauth.refresh_requests().await, 1);

    let (status, text) = scrape(&app.server.url("/metrics"), None).await;
    assert_eq!(status, 200, "{text}");
    let loads = sample(
        &text,
        "idvault_http_requests_total",
        &["method=\"GET\"", "route=\"/v1/mgmt/user\"", "status=\"200\""],
    );
    assert_eq!(loads, Some(3.0), "{text}");
    assert_eq!(
        sample(&text, "idvault_http_requests_total", &["route=\"/v1/mgmt/user\"", &missing_status]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "idvault_http_requests_total", &["route=\"unmatched\"", "status=\"404\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "idvault_http_request_duration_seconds_count",
            &["route=\"/v1/mgmt/user\"", "status=\"200\""]
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "idvault_token_refreshes_total", &["provider=\"acme\"", "outcome=\"refreshed\""]),
        Some(1.0),
        "{text}"
    );
    let backend = if postgres_mode() { "postgres" } else { "sqlite" };
    assert_eq!(
        sample(&text, "idvault_build_info", &[&format!("backend=\"{backend}\"")]),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains("idvault_db_pool_connections_max{"), "{text}");
    assert_eq!(sample(&text, "idvault_log_lines_dropped_total", &[]), Some(0.0), "{text}");
    // Lost audit records are counted from the start, so that an alert has a series to watch.
    assert_eq!(sample(&text, "idvault_audit_records_dropped_total", &[]), Some(0.0), "{text}");
    assert!(text.contains("# HELP idvault_audit_records_dropped_total"), "{text}");

    // No label names the user, the key or a token.
    let key_secret = app.server.management_key.as_deref().unwrap().split('.').nth(1).unwrap().to_owned();
    let forbidden = [
        login.to_owned(),
        urlencode(login),
        "nobody-here".to_owned(),
        "secret-path-part".to_owned(),
        key_secret,
        grant["access_token"].as_str().unwrap().to_owned(),
        grant["refresh_token"].as_str().unwrap().to_owned(),
        refreshed.body["accessToken"].as_str().unwrap().to_owned(),
        "loginId".to_owned(),
    ];
    for needle in &forbidden {
        assert!(!text.contains(needle.as_str()), "/metrics shows {needle}:\n{text}");
    }
}

#[tokio::test]
async fn a_metrics_token_guards_the_main_listener_and_a_separate_address_moves_it() {
    let token = "scrape-token-3b9d";
    let app = TestApp::spawn_with_env(&[("IDVAULT_METRICS_TOKEN", token)], &[]);
    let url = app.server.url("/metrics");
    assert_eq!(scrape(&url, None).await.0, 401);
    assert_eq!(scrape(&url, Some("wrong")).await.0, 401);
    let (status, text) = scrape(&url, Some(token)).await;
    assert_eq!(status, 200);
    assert!(text.contains("idvault_build_info"), "{text}");

    let app = TestApp::spawn_with(&["--metrics-listen", "127.0.0.1:0"]);
    let (status, _) = scrape(&app.server.url("/metrics"), None).await;
    assert_eq!(status, 404, "the main listener keeps no /metrics when it has its own address");
    let stderr = app.server.stderr();
    let line = stderr.lines().find(|l| l.contains("metrics at /metrics")).expect(&stderr);
    let addr = line.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap();
    let (status, text) = scrape(&format!("http://{addr}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(text.contains("idvault_build_info"), "{text}");
}
