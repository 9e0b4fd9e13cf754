//! Behind a reverse proxy (`--trusted-proxies`): only when the TCP peer is a listed proxy, the
//! client is the right-most untrusted address of `X-Forwarded-For`, and everything keyed on the
//! client sees it: audit records' `remoteAddress`, access keys' permitted IPs, the brute-force
//! limit. Without the setting, or from a peer not listed, the header is ignored.
//!
//! Loopback clients bind to 127.0.0.x (Linux routes 127.0.0.0/8 to the loopback): 127.0.0.1 plays
//! the proxy, 127.0.0.2 a client that reaches the server directly.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::audit::search_until;
use crate::helpers::*;

/// An HTTP client whose connections come from 127.0.0.`host`.
fn client_from(host: u8) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::from([127, 0, 0, host])).build().unwrap()
}

/// A POST with `Authorization` and, when given, `X-Forwarded-For`.
async fn post(
    http: &reqwest::Client,
    url: String,
    auth: &str,
    forwarded_for: Option<&str>,
    body: Value,
) -> Resp {
    record_authorization(auth);
    let mut req = http.post(url).header("Authorization", auth).json(&body);
    if let Some(xff) = forwarded_for {
        req = req.header("X-Forwarded-For", xff);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    record_secrets_in(&body);
    Resp { status, body }
}

/// Creates user `login_id` from 127.0.0.`host` with this `X-Forwarded-For`, and answers the
/// `remoteAddress` of its `UserCreated` record.
async fn remote_address_of_a_create(app: &TestApp, host: u8, xff: Option<&str>, login_id: &str) -> String {
    let r = post(
        &client_from(host),
        app.server.url("/v1/mgmt/user/create"),
        &app.api.auth,
        xff,
        json!({"loginId": login_id}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = json!({"actions": ["UserCreated"], "externalIds": [login_id]});
    let audits = search_until(&app.api, body, |a| !a.is_empty()).await;
    assert_eq!(audits.len(), 1, "{audits:?}");
    audits[0]["remoteAddress"].as_str().unwrap().to_owned()
}

/// Creates an access key with these permitted IPs; answers its cleartext.
async fn access_key(app: &TestApp, name: &str, permitted: &[&str]) -> String {
    let r = app.api.post("/v1/mgmt/accesskey/create", json!({"name": name, "permittedIps": permitted})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cleartext = r.body["cleartext"].as_str().unwrap().to_owned();
    record_secret("access key", &cleartext);
    cleartext
}

/// The status of an access-key exchange from 127.0.0.`host` with this `X-Forwarded-For`.
async fn exchange(app: &TestApp, key: &str, host: u8, xff: Option<&str>) -> u16 {
    let pid = app.server.project_id.as_deref().unwrap();
    let url = app.server.url("/v1/auth/accesskey/exchange");
    let r = post(&client_from(host), url, &format!("Bearer {pid}:{key}"), xff, json!({})).await;
    if r.status != 200 {
        r.assert_error(401, "E011401");
    }
    r.status
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_client() {
    let app = TestApp::spawn_with(&["--trusted-proxies", "127.0.0.1"]);

    // Audit: the right-most untrusted entry, not what the client wrote on the left.
    let client = remote_address_of_a_create(&app, 1, Some("192.0.2.66, 203.0.113.9"), "a@example.com").await;
    assert_eq!(client, "203.0.113.9");
    // A chain through a second trusted hop, IPv6 with a port.
    let client =
        remote_address_of_a_create(&app, 1, Some("[2001:db8::7]:4711, 127.0.0.1"), "b@example.com").await;
    assert_eq!(client, "2001:db8::7");
    // No header, or garbage where the client should be: the TCP peer.
    assert_eq!(remote_address_of_a_create(&app, 1, None, "c@example.com").await, "127.0.0.1");
    assert_eq!(
        remote_address_of_a_create(&app, 1, Some("203.0.113.9, unknown"), "d@example.com").await,
        "127.0.0.1"
    );
    // A peer that is not a listed proxy cannot choose its address.
    assert_eq!(remote_address_of_a_create(&app, 2, Some("203.0.113.9"), "e@example.com").await, "127.0.0.2");
    // The search filters on the forwarded address.
    let r = app.api.post("/v1/mgmt/audit/search", json!({"remoteAddresses": ["203.0.113.9"]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total"], 1, "{}", r.body);

    // Access keys: permitted IPs are checked against the forwarded client.
    let office = access_key(&app, "office", &["203.0.113.0/24"]).await;
    assert_eq!(exchange(&app, &office, 1, Some("203.0.113.9")).await, 200);
    assert_eq!(exchange(&app, &office, 1, Some("203.0.113.9, 198.51.100.4")).await, 401);
    assert_eq!(exchange(&app, &office, 1, None).await, 401, "the proxy itself is not permitted");
    assert_eq!(exchange(&app, &office, 2, Some("203.0.113.9")).await, 401, "spoofed by a direct client");
    let proxy_only = access_key(&app, "proxy-host", &["127.0.0.1"]).await;
    assert_eq!(exchange(&app, &proxy_only, 1, None).await, 200);
    assert_eq!(exchange(&app, &proxy_only, 1, Some("203.0.113.9")).await, 401);
}

#[tokio::test]
async fn without_trusted_proxies_the_header_is_ignored() {
    let app = TestApp::spawn();
    assert_eq!(remote_address_of_a_create(&app, 1, Some("203.0.113.9"), "a@example.com").await, "127.0.0.1");
    let office = access_key(&app, "office", &["203.0.113.0/24"]).await;
    assert_eq!(exchange(&app, &office, 1, Some("203.0.113.9")).await, 401);
    let here = access_key(&app, "here", &["127.0.0.1"]).await;
    assert_eq!(exchange(&app, &here, 1, Some("203.0.113.9")).await, 200);
}

#[tokio::test]
async fn the_brute_force_limit_counts_per_forwarded_client() {
    // Set through the environment, as a comma list: one failure at once, then one a minute.
    let app = TestApp::spawn_with_env(
        &[("IDVAULT_TRUSTED_PROXIES", "10.9.9.9, 127.0.0.1")],
        &["--credential-failure-limit", "1", "--credential-failure-burst", "1"],
    );
    let pid = app.server.project_id.as_deref().unwrap();
    let wrong = format!("Bearer {pid}:idv_AAAAAAAAAAAAAAAA.wrong");
    let url = app.server.url("/v1/mgmt/audit/search");
    let proxy = client_from(1);
    let attempt = |xff: &'static str| post(&proxy, url.clone(), &wrong, Some(xff), json!({}));
    attempt("203.0.113.9").await.assert_error(401, "E011401");
    attempt("203.0.113.9").await.assert_error(429, "E130429");
    // Another client behind the same proxy has its own budget.
    attempt("198.51.100.4").await.assert_error(401, "E011401");
    // And the blocked client's right key is refused before any check, as from a direct address.
    let r = post(&proxy, url.clone(), &app.api.auth, Some("203.0.113.9"), json!({})).await;
    r.assert_error(429, "E130429");
    let r = post(&proxy, url.clone(), &app.api.auth, Some("192.0.2.1"), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
