//! Sign-in and session hardening (security review, step 9.5): disabled users, unverified emails,
//! bounded sign-in starts, redirect URLs with a `code`, unknown projects on the session
//! endpoints, refresh-JWT rotation with reuse detection. Against the real OIDC test server.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::oauth_server::OAuthServer;
use crate::signin::{auth_call, browse, claims, exchange, setup, sign_in, start, user_count, APP_REDIRECT};

async fn set_status(app: &TestApp, user_id: &str, status: &str) {
    let r = app.api.post("/v1/mgmt/user/update/status", json!({"userId": user_id, "status": status})).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn refresh(app: &TestApp, jwt: &str) -> Resp {
    auth_call(app, reqwest::Method::POST, "/v1/auth/refresh", Some(jwt), Some(json!({}))).await
}

fn refresh_jwt(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["refreshJwt"].as_str().unwrap().to_owned()
}

/// Signs `account` in and answers the exchange's body.
async fn session_of(app: &TestApp, account: &str) -> Value {
    let code = sign_in(app, account).await.code.expect("the app received a code");
    let r = exchange(app, &code).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test]
async fn a_disabled_or_expired_user_gets_no_session() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;

    let first = session_of(&app, "dora").await;
    let dora = first["user"]["userId"].as_str().unwrap().to_owned();

    // Found by its provider identity, disabled (then expired): the callback issues no code.
    for status in ["disabled", "expired"] {
        set_status(&app, &dora, status).await;
        let outcome = sign_in(&app, "dora").await;
        assert!(outcome.code.is_none(), "{status}: the app received a code");
        outcome.callback_error.unwrap().assert_error(403, "E113006");
    }

    // Found by its verified email (linking), disabled: no code, nothing linked or stored.
    let lena = app
        .api
        .create_user(
            json!({"loginId": "lena@example.com", "email": "lena@example.com", "verifiedEmail": true}),
        )
        .await;
    set_status(&app, lena["userId"].as_str().unwrap(), "disabled").await;
    let outcome = sign_in(&app, "lena").await;
    assert!(outcome.code.is_none());
    outcome.callback_error.unwrap().assert_error(403, "E113006");
    assert_eq!(user_count(&app).await, 2);
    app.api.get_token("lena@example.com", "acme", false).await.assert_error(404, "E112103");

    // Disabled between the callback and the exchange: the exchange is refused, and the code is
    // spent.
    set_status(&app, &dora, "enabled").await;
    let code = sign_in(&app, "dora").await.code.expect("enabled again: a code");
    set_status(&app, &dora, "disabled").await;
    exchange(&app, &code).await.assert_error(403, "E113006");
    set_status(&app, &dora, "enabled").await;
    exchange(&app, &code).await.assert_error(400, "E113005");
    // Enabled: signs in.
    assert_eq!(session_of(&app, "dora").await["user"]["userId"], dora.as_str());
}

#[tokio::test]
async fn an_unverified_email_does_not_take_the_login_id_of_its_owner() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;

    // The provider says the email is not verified, or says nothing about it.
    oauth
        .control(
            "account",
            json!({"accountId": "mallory", "email": "owner@example.com", "email_verified": false}),
        )
        .await;
    oauth
        .control("account", json!({"accountId": "nemo", "email": "nemo@example.com", "email_verified": null}))
        .await;
    let squatter = session_of(&app, "mallory").await;
    assert_eq!(squatter["user"]["loginIds"], json!(["acme-mallory"]));
    assert_eq!(squatter["user"]["email"], "owner@example.com");
    assert_eq!(squatter["user"]["verifiedEmail"], false);
    let silent = session_of(&app, "nemo").await;
    assert_eq!(silent["user"]["loginIds"], json!(["acme-nemo"]));
    assert_eq!(silent["user"]["verifiedEmail"], false);

    // The address's owner signs in (verified): a user of its own, with the email as login id.
    let owner = session_of(&app, "owner").await;
    assert_eq!(owner["firstSeen"], true);
    assert_eq!(owner["user"]["loginIds"], json!(["owner@example.com"]));
    assert_eq!(owner["user"]["verifiedEmail"], true);
    assert_ne!(owner["user"]["userId"], squatter["user"]["userId"]);
    // And an administrator can still create a user with the other address as login id.
    app.api.create_user(json!({"loginId": "nemo@example.com"})).await;
    assert_eq!(user_count(&app).await, 4);
}

#[tokio::test]
async fn sign_in_starts_are_bounded() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn_with(&["--max-pending-sign-ins", "3"]);
    setup(&app, &oauth).await;

    // Lengths are capped before anything is stored.
    let long = format!("{APP_REDIRECT}?pad={}", "x".repeat(2100));
    start(&app, &long).await.assert_error(400, "E011004");
    let path = format!(
        "/v1/auth/oauth/authorize?provider=acme&redirectURL={}&loginHint={}",
        urlencode(APP_REDIRECT),
        "h".repeat(300)
    );
    auth_call(&app, reqwest::Method::POST, &path, None, None).await.assert_error(400, "E011004");

    // At most 3 pending sign-ins in the project; then 429 until one completes.
    let mut urls = Vec::new();
    for _ in 0..3 {
        let r = start(&app, APP_REDIRECT).await;
        assert_eq!(r.status, 200, "{}", r.body);
        urls.push(r.body["url"].as_str().unwrap().to_owned());
    }
    start(&app, APP_REDIRECT).await.assert_error(429, "E130429");
    let done = browse(&urls[0], "pat", &app.server.base_url).await;
    assert_eq!(exchange(&app, &done.code.unwrap()).await.status, 200);
    assert_eq!(start(&app, APP_REDIRECT).await.status, 200, "a completed sign-in frees its place");
    start(&app, APP_REDIRECT).await.assert_error(429, "E130429");
}

#[tokio::test]
async fn pending_sign_ins_expire_out_of_the_bound() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn_with(&["--max-pending-sign-ins", "2", "--oauth-state-ttl", "1s"]);
    setup(&app, &oauth).await;
    for _ in 0..2 {
        assert_eq!(start(&app, APP_REDIRECT).await.status, 200);
    }
    start(&app, APP_REDIRECT).await.assert_error(429, "E130429");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(start(&app, APP_REDIRECT).await.status, 200);
}

#[tokio::test]
async fn a_code_parameter_in_a_redirect_url_is_refused() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;

    // At settings time.
    let r = app
        .api
        .post(
            "/v1/mgmt/auth/settings",
            json!({"redirectUrls": [APP_REDIRECT, "http://app.example/cb?code=X"]}),
        )
        .await;
    r.assert_error(400, "E011004");
    assert!(r.body["errorMessage"].as_str().unwrap().contains("code"), "{}", r.body);
    // The command line refuses it too.
    let pid = app.server.project_id.clone().unwrap();
    let err = crate::cli::run_err(
        &app.server.data_dir,
        &["project", "settings", "--project", &pid, "--redirect-url", "http://app.example/cb?x=1&code=X"],
    );
    assert!(err.contains("code"), "{err}");
    let kept = app.api.get("/v1/mgmt/auth/settings").await;
    assert_eq!(kept.body["redirectUrls"], json!([APP_REDIRECT]), "nothing changed");

    // At authorize time: the allowlist ignores the query, the code parameter does not pass.
    start(&app, &format!("{APP_REDIRECT}?code=X")).await.assert_error(400, "E011004");
    start(&app, &format!("{APP_REDIRECT}?next=1&code=")).await.assert_error(400, "E011004");
    // Other parameters are kept, and the sign-in appends exactly one code.
    let r = start(&app, &format!("{APP_REDIRECT}?next=%2Fhome")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let outcome = browse(r.body["url"].as_str().unwrap(), "quinn", &app.server.base_url).await;
    assert!(outcome.code.is_some());
}

/// Found by the API fuzz run: the settings took any number of redirect URLs and answered them
/// back, beyond the `maxItems` of the published document.
#[tokio::test]
async fn more_redirect_urls_than_the_limit_are_refused() {
    let app = TestApp::spawn();
    let most = idvault_core::limits::MAX_REDIRECT_URLS;
    let urls: Vec<String> = (0..=most).map(|i| format!("https://app.example/cb{i}")).collect();
    let r = app.api.post("/v1/mgmt/auth/settings", json!({"redirectUrls": urls})).await;
    r.assert_error(400, "E011004");
    assert!(r.body["errorMessage"].as_str().unwrap().contains(&format!("at most {most}")), "{}", r.body);
    assert_eq!(
        app.api.get("/v1/mgmt/auth/settings").await.body["redirectUrls"],
        json!([]),
        "nothing changed"
    );

    let r = app.api.post("/v1/mgmt/auth/settings", json!({"redirectUrls": urls[..most]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        app.api.get("/v1/mgmt/auth/settings").await.body["redirectUrls"].as_array().unwrap().len(),
        most
    );
}

#[tokio::test]
async fn unknown_projects_on_the_session_endpoints_answer_401() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;
    let jwt = session_of(&app, "uma").await["refreshJwt"].as_str().unwrap().to_owned();
    let pid = app.server.project_id.clone().unwrap();
    let unknown = format!("{}{}", &pid[..pid.len() - 1], if pid.ends_with('Z') { 'Y' } else { 'Z' });

    let as_unknown = Api {
        http: reqwest::Client::new(),
        base_url: app.server.base_url.clone(),
        auth: format!("Bearer {unknown}:{jwt}"),
    };
    for (method, path) in [
        (reqwest::Method::POST, "/v1/auth/refresh"),
        (reqwest::Method::POST, "/v1/auth/logout"),
        (reqwest::Method::POST, "/v1/auth/logoutall"),
        (reqwest::Method::GET, "/v1/auth/me"),
    ] {
        as_unknown.send(method, path, None).await.assert_error(401, "E011401");
    }
    as_unknown.get(&format!("/v2/keys/{unknown}")).await.assert_error(401, "E011401");
    // Nothing went wrong inside: no error logged, no key made for the unknown project.
    let log = app.server.stderr();
    assert!(!log.contains("ERROR"), "{log}");
    let dump = String::from_utf8_lossy(&storage_dump(&app.server.data_dir)).into_owned();
    assert!(!dump.contains(&unknown), "something was stored for the unknown project");
    // The real project's session is untouched.
    assert_eq!(refresh(&app, &jwt).await.status, 200);
}

#[tokio::test]
async fn refresh_jwts_rotate_and_a_reused_one_revokes_its_session() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;

    let signed_in = session_of(&app, "rita").await;
    let r0 = signed_in["refreshJwt"].as_str().unwrap().to_owned();
    let other_session = session_of(&app, "rita").await["refreshJwt"].as_str().unwrap().to_owned();

    let r1 = refresh_jwt(&refresh(&app, &r0).await);
    assert_ne!(r1, r0, "a refresh answers a new refresh JWT");
    let (c0, c1) = (claims(&r0), claims(&r1));
    assert_eq!(c1["sid"], c0["sid"], "of the same session");
    assert_ne!(c1["jti"], c0["jti"]);
    assert_eq!(c1["exp"], c0["exp"], "rotation does not extend the session");
    assert_eq!(c1["drn"], "DSR");
    let r2 = refresh_jwt(&refresh(&app, &r1).await);
    // me and the current token: fine, and no rotation.
    assert_eq!(auth_call(&app, reqwest::Method::GET, "/v1/auth/me", Some(&r2), None).await.status, 200);

    // r0 was rotated: presenting it again is reuse, which revokes the session.
    let reused = refresh(&app, &r0).await;
    reused.assert_error(401, "E061001");
    assert!(reused.body["errorMessage"].as_str().unwrap().contains("already used"), "{}", reused.body);
    refresh(&app, &r2).await.assert_error(401, "E064001");
    // Another session of the same user is another family: untouched.
    let o1 = refresh_jwt(&refresh(&app, &other_session).await);

    // logout with a rotated token is reuse too (the session ends); with the current one, it works.
    let o2 = refresh_jwt(&refresh(&app, &o1).await);
    let out = auth_call(&app, reqwest::Method::POST, "/v1/auth/logout", Some(&o1), None).await;
    out.assert_error(401, "E061001");
    refresh(&app, &o2).await.assert_error(401, "E064001");
    let fresh = session_of(&app, "rita").await["refreshJwt"].as_str().unwrap().to_owned();
    let f1 = refresh_jwt(&refresh(&app, &fresh).await);
    let out = auth_call(&app, reqwest::Method::POST, "/v1/auth/logoutall", Some(&f1), None).await;
    assert_eq!(out.status, 200, "{}", out.body);
    refresh(&app, &f1).await.assert_error(401, "E064001");
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_have_one_winner() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;
    let r0 = session_of(&app, "cleo").await["refreshJwt"].as_str().unwrap().to_owned();

    let app = std::sync::Arc::new(app);
    let mut calls = Vec::new();
    for _ in 0..8 {
        let (app, r0) = (app.clone(), r0.clone());
        calls.push(tokio::spawn(async move { refresh(&app, &r0).await }));
    }
    let mut winners = Vec::new();
    for c in calls {
        let r = c.await.unwrap();
        match r.status {
            200 => winners.push(r.body["refreshJwt"].as_str().unwrap().to_owned()),
            401 => {}
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins");
    // The losers presented a rotated token: reuse, so the session is revoked.
    refresh(&app, &winners[0]).await.assert_error(401, "E064001");
}
