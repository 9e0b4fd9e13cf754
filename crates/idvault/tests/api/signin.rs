//! OAuth sign-in end to end against a real OIDC provider (oidc-provider), with an HTTP client
//! that follows redirects and submits the provider's login and consent forms.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::oauth_server::OAuthServer;

pub(crate) const APP_REDIRECT: &str = "http://app.example/done";

pub(crate) fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

/// Sets up the provider `acme` (discovered from the issuer), the allowed redirect, and the
/// provider's knowledge of idvault's callback.
pub(crate) async fn setup(app: &TestApp, oauth: &OAuthServer) {
    let callback = format!("{}/v1/auth/oauth/callback", app.server.base_url);
    oauth.control("redirect_uris", json!({"redirect_uris": [callback]})).await;
    let r = app
        .api
        .post(
            "/v1/mgmt/provider/set",
            json!({"name": "acme", "clientId": "idvault-test", "clientSecret": "idvault-test-secret", "issuer": oauth.issuer,
                   "scopes": ["openid", "email", "profile", "offline_access"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.api.post("/v1/mgmt/auth/settings", json!({"redirectUrls": [APP_REDIRECT]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A project-scoped (not management) client for the /v1/auth endpoints.
fn auth_header(app: &TestApp, jwt: Option<&str>) -> String {
    let pid = app.server.project_id.as_deref().unwrap();
    match jwt {
        Some(t) => format!("Bearer {pid}:{t}"),
        None => format!("Bearer {pid}"),
    }
}

pub(crate) async fn auth_call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    jwt: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let api = Api {
        http: reqwest::Client::new(),
        base_url: app.server.base_url.clone(),
        auth: auth_header(app, jwt),
    };
    api.send(method, path, body).await
}

/// Where a browser sign-in ended.
pub(crate) struct Outcome {
    /// The app redirect's `code`, when the flow reached the app.
    pub(crate) code: Option<String>,
    /// The last response from idvault's callback, when it answered instead of redirecting.
    pub(crate) callback_error: Option<Resp>,
    /// The callback URL the provider sent the browser to.
    pub(crate) callback_url: Option<String>,
    /// The app redirect URL the flow ended at, query included.
    pub(crate) app_url: Option<String>,
}

/// Drives the browser part: authorization URL → provider login and consent forms → idvault's
/// callback → the app's redirect URL.
pub(crate) async fn browse(start_url: &str, account: &str, idvault_base: &str) -> Outcome {
    let callback = format!("{idvault_base}/v1/auth/oauth/callback");
    browse_to(start_url, account, &callback, APP_REDIRECT).await
}

/// [`browse`] with the callback and app redirect URLs given (the outbound connect has its own).
pub(crate) async fn browse_to(start_url: &str, account: &str, callback: &str, app_redirect: &str) -> Outcome {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = reqwest::Url::parse(start_url).unwrap();
    let mut form: Option<Vec<(&str, String)>> = None;
    let mut callback_url = None;
    for _ in 0..20 {
        if url.as_str().starts_with(app_redirect) {
            let code = url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned());
            return Outcome { code, callback_error: None, callback_url, app_url: Some(url.to_string()) };
        }
        let is_callback = url.as_str().starts_with(callback);
        if is_callback {
            callback_url = Some(url.to_string());
        }
        let resp = match form.take() {
            Some(fields) => browser.post(url.clone()).form(&fields).send().await.unwrap(),
            None => browser.get(url.clone()).send().await.unwrap(),
        };
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            let location = resp.headers()["location"].to_str().unwrap().to_owned();
            url = url.join(&location).unwrap();
            continue;
        }
        let text = resp.text().await.unwrap();
        if is_callback {
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Outcome {
                code: None,
                callback_error: Some(Resp { status, body }),
                callback_url,
                app_url: None,
            };
        }
        assert_eq!(status, 200, "unexpected page at {url}: {text}");
        if text.contains(r#"name="prompt" value="login""#) {
            form = Some(vec![
                ("prompt", "login".into()),
                ("login", account.into()),
                ("password", "anything".into()),
            ]);
        } else if text.contains(r#"name="prompt" value="consent""#) {
            form = Some(vec![("prompt", "consent".into())]);
        } else {
            panic!("unknown provider page at {url}: {text}");
        }
    }
    panic!("too many redirects");
}

pub(crate) async fn start(app: &TestApp, redirect: &str) -> Resp {
    let path = format!("/v1/auth/oauth/authorize?provider=acme&redirectURL={}", urlencode(redirect));
    auth_call(
        app,
        reqwest::Method::POST,
        &path,
        None,
        Some(json!({"stepup": false, "mfa": false, "customClaims": null})),
    )
    .await
}

pub(crate) async fn sign_in(app: &TestApp, account: &str) -> Outcome {
    let r = start(app, APP_REDIRECT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    browse(r.body["url"].as_str().unwrap(), account, &app.server.base_url).await
}

pub(crate) async fn exchange(app: &TestApp, code: &str) -> Resp {
    auth_call(app, reqwest::Method::POST, "/v1/auth/oauth/exchange", None, Some(json!({"code": code}))).await
}

pub(crate) async fn user_count(app: &TestApp) -> u64 {
    app.api.post("/v2/mgmt/user/search", json!({})).await.body["total"].as_u64().unwrap()
}

#[tokio::test]
async fn sign_in_exchange_sessions_and_the_vault() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;

    let outcome = sign_in(&app, "dana").await;
    let code = outcome.code.expect("the app received a code");
    // PKCE, state and nonce went to the provider; consent was asked for offline_access.
    let asked: Value =
        reqwest::get(format!("{}/__test/last_authorize", oauth.issuer)).await.unwrap().json().await.unwrap();
    assert_eq!(asked["code_challenge_method"], "S256");
    assert!(asked["code_challenge"].as_str().is_some_and(|c| c.len() == 43));
    assert!(asked["nonce"].as_str().is_some_and(|n| !n.is_empty()));
    assert_eq!(asked["prompt"], "consent");
    assert_eq!(asked["redirect_uri"], format!("{}/v1/auth/oauth/callback", app.server.base_url));

    let r = exchange(&app, &code).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["firstSeen"], true);
    assert_eq!(r.body["user"]["email"], "dana@example.com");
    assert_eq!(r.body["user"]["verifiedEmail"], true);
    assert_eq!(r.body["user"]["oauth"], json!({"acme": true}));
    assert_eq!(r.body["cookiePath"], "/");
    assert!(r.body["cookieMaxAge"].as_i64().unwrap() > 0);
    let user_id = r.body["user"]["userId"].as_str().unwrap().to_owned();
    let session = r.body["sessionJwt"].as_str().unwrap().to_owned();
    let refresh = r.body["refreshJwt"].as_str().unwrap().to_owned();
    let pid = app.server.project_id.clone().unwrap();
    let s = claims(&session);
    assert_eq!(
        (s["sub"].as_str(), s["iss"].as_str(), s["drn"].as_str()),
        (Some(user_id.as_str()), Some(pid.as_str()), Some("DS"))
    );
    assert!(s.get("aud").is_none());
    assert_eq!(claims(&refresh)["drn"], "DSR");

    // Public keys name the signing key.
    let keys = auth_call(&app, reqwest::Method::GET, &format!("/v2/keys/{pid}"), None, None).await;
    let kid = serde_json::from_slice::<Value>(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(session.split('.').next().unwrap()).unwrap(),
    )
    .unwrap()["kid"]
        .clone();
    assert!(keys.body["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid && k["alg"] == "ES384"));

    // The vault holds the provider tokens issued at sign-in; they refresh.
    let t = app.api.get_token("dana@example.com", "acme", true).await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.body["providerUserId"], "dana");
    assert!(t.body["refreshToken"].as_str().is_some_and(|r| !r.is_empty()));
    let forced = app
        .api
        .get("/v1/mgmt/user/provider/token?loginId=dana%40example.com&provider=acme&forceRefresh=true")
        .await;
    assert_eq!(forced.status, 200, "{}", forced.body);
    assert_ne!(forced.body["accessToken"], t.body["accessToken"]);

    // Sessions: refresh (which rotates the refresh JWT), me, logout.
    let refreshed =
        auth_call(&app, reqwest::Method::POST, "/v1/auth/refresh", Some(&refresh), Some(json!({}))).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(refreshed.body["firstSeen"], false);
    assert_eq!(claims(refreshed.body["sessionJwt"].as_str().unwrap())["sub"], user_id.as_str());
    let refresh = refreshed.body["refreshJwt"].as_str().unwrap().to_owned();
    let me = auth_call(&app, reqwest::Method::GET, "/v1/auth/me", Some(&refresh), None).await;
    assert_eq!(me.body["userId"], user_id.as_str());
    auth_call(&app, reqwest::Method::POST, "/v1/auth/refresh", Some(&session), None)
        .await
        .assert_error(401, "E061001");
    let out = auth_call(&app, reqwest::Method::POST, "/v1/auth/logout", Some(&refresh), None).await;
    assert_eq!((out.status, out.body.clone()), (200, json!({})));
    auth_call(&app, reqwest::Method::POST, "/v1/auth/refresh", Some(&refresh), None)
        .await
        .assert_error(401, "E064001");

    // Signing in again finds the same user.
    let again = exchange(&app, &sign_in(&app, "dana").await.code.unwrap()).await;
    assert_eq!(again.body["firstSeen"], false);
    assert_eq!(again.body["user"]["userId"], user_id.as_str());
    assert_eq!(user_count(&app).await, 1);
    // logoutall ends every session of the user.
    let r2 = again.body["refreshJwt"].as_str().unwrap().to_owned();
    let third = exchange(&app, &sign_in(&app, "dana").await.code.unwrap()).await;
    let r3 = third.body["refreshJwt"].as_str().unwrap().to_owned();
    assert_eq!(
        auth_call(&app, reqwest::Method::POST, "/v1/auth/logoutall", Some(&r3), None).await.status,
        200
    );
    auth_call(&app, reqwest::Method::POST, "/v1/auth/refresh", Some(&r2), None)
        .await
        .assert_error(401, "E064001");

    // The audit trail: three sign-ins, a session refresh and two logouts by the user, tokens
    // stored by each sign-in, two reads and a forced refresh by the management key, and the two
    // refreshes of logged-out sessions, refused (by nobody who authenticated).
    let audits = crate::audit::search_until(&app.api, json!({"userIds": [user_id]}), |a| {
        a.iter().filter(|r| r["action"] == "LoginSucceed").count() == 3
            && a.iter().filter(|r| r["action"] == "LoginFailed").count() == 2
    })
    .await;
    let count = |action: &str| audits.iter().filter(|r| r["action"] == action).count();
    assert_eq!(count("LoginSucceed"), 3, "{audits:?}");
    assert_eq!(count("RefreshSucceed"), 1);
    assert_eq!(count("ProviderTokenUploaded"), 3);
    assert_eq!(count("ProviderTokenRead"), 2);
    assert_eq!(count("ProviderTokenForcedRefresh"), 1);
    assert_eq!(count("UserLoggedOut"), 2);
    assert_eq!(count("LoginFailed"), 2);
    for r in &audits {
        let action = r["action"].as_str().unwrap();
        let by_user =
            ["LoginSucceed", "RefreshSucceed", "ProviderTokenUploaded", "UserLoggedOut"].contains(&action);
        let expected = match action {
            "LoginFailed" => "",
            _ if by_user => "user",
            _ => "managementKey",
        };
        assert_eq!(r["actorType"], expected, "{r}");
        if by_user {
            assert_eq!(r["actorId"], user_id.as_str());
        }
    }
    let login = audits.iter().find(|r| r["action"] == "LoginSucceed").unwrap();
    assert_eq!(login["method"], "oauth");
    assert_eq!(login["externalIds"], json!(["dana@example.com"]));
    let forced = audits.iter().find(|r| r["action"] == "ProviderTokenForcedRefresh").unwrap();
    assert_eq!(forced["data"]["calledProvider"], true);
    assert!(!serde_json::to_string(&audits).unwrap().contains(t.body["accessToken"].as_str().unwrap()));
}

#[tokio::test]
async fn replays_tampering_and_disallowed_redirects_are_rejected() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;

    start(&app, "http://evil.example/steal").await.assert_error(400, "E113002");
    let outcome = sign_in(&app, "erin").await;
    let code = outcome.code.unwrap();
    assert_eq!(exchange(&app, &code).await.status, 200);
    exchange(&app, &code).await.assert_error(400, "E113005");
    exchange(&app, "made-up-code").await.assert_error(400, "E113005");

    // Replaying the provider's callback (same state) is refused.
    let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = replay.get(outcome.callback_url.unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E113001");
    let r = replay.get(app.server.url("/v1/auth/oauth/callback?state=forged&code=x")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E113001");

    // Unknown project and unknown provider.
    let bad = Api {
        http: reqwest::Client::new(),
        base_url: app.server.base_url.clone(),
        auth: "Bearer Pnope".into(),
    };
    bad.post("/v1/auth/oauth/authorize?provider=acme", json!({})).await.assert_error(401, "E011401");
    auth_call(&app, reqwest::Method::POST, "/v1/auth/oauth/authorize?provider=nope", None, None)
        .await
        .assert_error(404, "E112112");
}

#[tokio::test]
async fn provider_errors_and_bad_id_tokens_store_nothing() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;

    oauth.mode("error_redirect").await;
    let denied = sign_in(&app, "frank").await;
    denied.callback_error.unwrap().assert_error(400, "E113003");
    oauth.mode("normal").await;

    for (mode, why) in [
        ("idtoken_wrong_aud", "wrong audience"),
        ("idtoken_wrong_iss", "wrong issuer"),
        ("idtoken_wrong_nonce", "nonce"),
        ("idtoken_bad_signature", "bad signature"),
        ("idtoken_expired", "expired"),
    ] {
        oauth.mode(mode).await;
        let outcome = sign_in(&app, "frank").await;
        let err = outcome.callback_error.unwrap_or_else(|| panic!("{mode}: the sign-in went through"));
        err.assert_error(400, "E113004");
        assert!(err.body["errorMessage"].as_str().unwrap().contains(why), "{mode}: {}", err.body);
    }
    oauth.mode("normal").await;
    assert_eq!(user_count(&app).await, 0, "nothing stored by rejected sign-ins");
    app.api.get_token("frank@example.com", "acme", false).await.assert_error(400, "E112102");

    // And a clean sign-in still works afterwards.
    let ok = sign_in(&app, "frank").await;
    assert_eq!(exchange(&app, &ok.code.unwrap()).await.status, 200);
}

#[tokio::test]
async fn an_expired_state_is_rejected() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn_with(&["--oauth-state-ttl", "1s"]);
    setup(&app, &oauth).await;
    let r = start(&app, APP_REDIRECT).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let outcome = browse(r.body["url"].as_str().unwrap(), "gina", &app.server.base_url).await;
    outcome.callback_error.unwrap().assert_error(400, "E113001");
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn an_existing_user_with_the_verified_email_is_linked() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;
    let existing = app.api.create_user(json!({"loginId": "hank@example.com", "verifiedEmail": true})).await;
    let r = exchange(&app, &sign_in(&app, "hank").await.code.unwrap()).await;
    assert_eq!(r.body["user"]["userId"], existing["userId"]);
    assert_eq!(r.body["firstSeen"], false);
    assert_eq!(user_count(&app).await, 1);
}

fn kid_of(jwt: &str) -> Value {
    let header = jwt.split('.').next().unwrap();
    serde_json::from_slice::<Value>(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap())
        .unwrap()["kid"]
        .clone()
}

#[tokio::test]
async fn signing_key_rotation_keeps_old_keys_published() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;
    let pid = app.server.project_id.clone().unwrap();
    let first = exchange(&app, &sign_in(&app, "ivy").await.code.unwrap()).await;
    let old_session = first.body["sessionJwt"].as_str().unwrap().to_owned();
    let refresh = first.body["refreshJwt"].as_str().unwrap().to_owned();
    let old_kid = kid_of(&old_session);

    let rotated = app.api.post("/v1/mgmt/auth/signingkey/rotate", json!({})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_ne!(rotated.body["kid"], old_kid);
    let keys = auth_call(&app, reqwest::Method::GET, &format!("/v2/keys/{pid}"), None, None).await;
    let kids: Vec<Value> = keys.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect();
    assert!(kids.contains(&old_kid) && kids.contains(&rotated.body["kid"]), "{kids:?}");

    // The refresh JWT signed by the old key still works, and new session JWTs use the new key.
    let renewed = auth_call(&app, reqwest::Method::POST, "/v1/auth/refresh", Some(&refresh), None).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert_eq!(kid_of(renewed.body["sessionJwt"].as_str().unwrap()), rotated.body["kid"]);
}
