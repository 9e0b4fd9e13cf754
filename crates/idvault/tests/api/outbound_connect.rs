//! Outbound connect (consent, incremental scopes) end to end against a real OIDC provider
//! (oidc-provider): a signed-in user connects an app, the browser goes through the provider's
//! login and consent, idvault's outbound callback stores the provider's token, and the
//! management API answers it; a second connect asks for the union of the scopes.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::oauth_server::OAuthServer;
use crate::signin::{auth_call, browse_to, exchange, setup, sign_in, APP_REDIRECT};

const CONNECT: &str = "/v1/outbound/oauth/connect";
const MGMT_CONNECT: &str = "/v1/mgmt/outbound/app/connect";

struct Connected {
    app: TestApp,
    oauth: OAuthServer,
    user_id: String,
    refresh_jwt: String,
}

fn callback(app: &TestApp) -> String {
    format!("{}/v1/outbound/oauth/callback", app.server.base_url)
}

/// A signed-in user (`dana`) and the outbound app `crm` at the test provider.
async fn signed_in() -> Connected {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;
    let sign_in_callback = format!("{}/v1/auth/oauth/callback", app.server.base_url);
    oauth.control("redirect_uris", json!({"redirect_uris": [sign_in_callback, callback(&app)]})).await;
    let r = app
        .api
        .post(
            "/v1/mgmt/outbound/app/create",
            json!({"id": "crm", "name": "CRM", "clientId": "idvault-test", "clientSecret": "idvault-test-secret",
                "discoveryUrl": format!("{}/.well-known/openid-configuration", oauth.issuer),
                "defaultScopes": ["openid", "email"], "prompt": ["consent"],
                "authorizationUrlParams": [{"name": "ui_locales", "value": "en"}, {"name": "state", "value": "forged"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let code = sign_in(&app, "dana").await.code.expect("signed in");
    let session = exchange(&app, &code).await;
    assert_eq!(session.status, 200, "{}", session.body);
    Connected {
        user_id: session.body["user"]["userId"].as_str().unwrap().to_owned(),
        refresh_jwt: session.body["refreshJwt"].as_str().unwrap().to_owned(),
        app,
        oauth,
    }
}

async fn start(c: &Connected, path: &str, body: Value) -> Resp {
    auth_call(&c.app, reqwest::Method::POST, path, Some(&c.refresh_jwt), Some(body)).await
}

fn query_of(url: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(url).unwrap().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    query_of(url).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Connect, then drive the browser through the provider to the app's redirect URL.
async fn connect(c: &Connected, path: &str, body: Value) -> (String, crate::signin::Outcome) {
    let r = start(c, path, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.body["url"].as_str().unwrap().to_owned();
    let outcome = browse_to(&url, "dana", &callback(&c.app), APP_REDIRECT).await;
    (url, outcome)
}

async fn latest(c: &Connected) -> Resp {
    c.app
        .api
        .post("/v1/mgmt/outbound/app/user/token/latest", json!({"appId": "crm", "userId": c.user_id}))
        .await
}

/// Who the provider says the access token belongs to (its userinfo endpoint).
async fn provider_subject(oauth: &OAuthServer, access_token: &str) -> Value {
    let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", oauth.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let userinfo = discovery["userinfo_endpoint"].as_str().unwrap();
    let r = reqwest::Client::new().get(userinfo).bearer_auth(access_token).send().await.unwrap();
    assert!(r.status().is_success(), "userinfo: {}", r.status());
    r.json::<Value>().await.unwrap()["sub"].clone()
}

fn scopes(token: &Value) -> Vec<String> {
    token["scopes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn connect_stores_the_providers_token_and_a_second_connect_adds_scopes() {
    let c = signed_in().await;

    let (url, outcome) =
        connect(&c, CONNECT, json!({"appId": "crm", "options": {"redirectUrl": APP_REDIRECT, "scopes": ["openid", "email", "offline_access"]}}))
            .await;
    assert_eq!(outcome.app_url.as_deref(), Some(APP_REDIRECT), "no error on the redirect");
    assert_eq!(param(&url, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param(&url, "redirect_uri"), Some(callback(&c.app)));
    assert_eq!(param(&url, "scope").as_deref(), Some("email offline_access openid"));
    assert_eq!(param(&url, "prompt").as_deref(), Some("consent"));
    assert_eq!(param(&url, "ui_locales").as_deref(), Some("en"));
    assert_eq!(
        query_of(&url).iter().filter(|(k, _)| k == "state").count(),
        1,
        "an app param cannot set the state"
    );
    assert_ne!(param(&url, "state").as_deref(), Some("forged"));

    let first = latest(&c).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let token = &first.body["token"];
    assert_eq!(token["grantedBy"], c.user_id.as_str());
    assert_eq!(token["userId"], c.user_id.as_str());
    assert_eq!(token["hasRefreshToken"], true, "offline_access with consent gives a refresh token");
    assert!(scopes(token).contains(&"email".to_owned()), "{token}");
    let first_access = token["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(provider_subject(&c.oauth, &first_access).await, "dana", "the provider's own token");

    // Incremental consent: the second connect asks only for `profile`, through the management
    // path; the provider is asked for the union.
    let (url, outcome) = connect(
        &c,
        MGMT_CONNECT,
        json!({"appId": "crm", "options": {"redirectURL": APP_REDIRECT, "scopes": ["profile"]}}),
    )
    .await;
    assert_eq!(outcome.app_url.as_deref(), Some(APP_REDIRECT));
    assert_eq!(param(&url, "scope").as_deref(), Some("email offline_access openid profile"));
    let second = latest(&c).await.body["token"].clone();
    let granted = scopes(&second);
    for s in ["email", "openid", "profile"] {
        assert!(granted.contains(&s.to_owned()), "{s} in {granted:?}");
    }
    assert_ne!(second["id"], token["id"], "a new scope set is a new token");
    assert_eq!(provider_subject(&c.oauth, second["accessToken"].as_str().unwrap()).await, "dana");
    let by_scopes = c
        .app
        .api
        .post(
            "/v1/mgmt/outbound/app/user/token",
            json!({"appId": "crm", "userId": c.user_id, "scopes": ["profile", "email"]}),
        )
        .await;
    assert_eq!(by_scopes.body["token"]["id"], second["id"], "{}", by_scopes.body);

    // The state of a finished connect cannot be replayed.
    let used = outcome.callback_url.expect("the provider called back");
    let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = replay.get(&used).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "E113001");
}

#[tokio::test]
async fn connect_refuses_bad_states_foreign_projects_disabled_users_and_open_redirects() {
    let c = signed_in().await;
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get = |url: String| {
        let browser = browser.clone();
        async move { browser.get(url).send().await.unwrap() }
    };

    // Unknown and missing states answer 400: there is no redirect URL to trust.
    for query in ["state=bogus&code=x", "code=x"] {
        let r = get(format!("{}?{query}", callback(&c.app))).await;
        assert_eq!(r.status().as_u16(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E113001");
    }
    // A sign-in's state is refused at the connect callback (and spent).
    let signin_start = crate::signin::start(&c.app, APP_REDIRECT).await;
    let signin_state = param(signin_start.body["url"].as_str().unwrap(), "state").unwrap();
    let r = get(format!("{}?state={signin_state}&code=x", callback(&c.app))).await;
    assert_eq!(r.status().as_u16(), 400);

    // And a connect's state is refused at the sign-in callback (and spent there too).
    let r = start(&c, CONNECT, json!({"appId": "crm"})).await;
    let connect_state = param(r.body["url"].as_str().unwrap(), "state").unwrap();
    let r =
        get(format!("{}/v1/auth/oauth/callback?state={connect_state}&code=x", c.app.server.base_url)).await;
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E113001");
    let r = get(format!("{}?state={connect_state}&code=x", callback(&c.app))).await;
    assert_eq!(r.status().as_u16(), 400, "spent");

    // A provider error comes back to the app as an error code, never the provider's text.
    let r = start(&c, CONNECT, json!({"appId": "crm"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let state = param(r.body["url"].as_str().unwrap(), "state").unwrap();
    let r = get(format!(
        "{}?state={state}&error=access_denied&error_description=secret-provider-detail",
        callback(&c.app)
    ))
    .await;
    assert_eq!(r.status().as_u16(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(APP_REDIRECT), "{location}");
    assert_eq!(param(&location, "error").as_deref(), Some("E113003"));
    assert!(!location.contains("secret-provider-detail"), "{location}");
    assert!(latest(&c).await.status == 404, "nothing stored");

    // Requests that never reach the provider.
    start(&c, CONNECT, json!({"appId": "crm", "options": {"redirectUrl": "https://evil.example/cb"}}))
        .await
        .assert_error(400, "E113002");
    start(&c, CONNECT, json!({"appId": "ghost"})).await.assert_error(404, "E152101");
    start(&c, CONNECT, json!({})).await.assert_error(400, "E011002");
    start(&c, CONNECT, json!({"appId": "crm", "tenantId": "nope", "tenantLevel": true}))
        .await
        .assert_error(404, "E011406");
    start(&c, CONNECT, json!({"appId": "crm", "options": {"scopes": ["has space"]}}))
        .await
        .assert_error(400, "E011004");
    auth_call(&c.app, reqwest::Method::POST, CONNECT, None, Some(json!({"appId": "crm"})))
        .await
        .assert_error(401, "E061001");
    // A management key is not a user's session.
    c.app.api.post(MGMT_CONNECT, json!({"appId": "crm"})).await.assert_error(401, "E061001");

    // Another project: the refresh JWT of this project's user is worth nothing there.
    let data = c.app.server.data_dir.clone();
    let pid_b = crate::cli::run_ok(&data, &["project", "create", "--name", "B"]).trim().to_owned();
    let foreign = Api {
        http: reqwest::Client::new(),
        base_url: c.app.server.base_url.clone(),
        auth: format!("Bearer {pid_b}:{}", c.refresh_jwt),
    };
    foreign.post(CONNECT, json!({"appId": "crm"})).await.assert_error(401, "E061001");

    // A disabled user cannot connect, and a connect started before the user was disabled stores
    // nothing.
    let r = start(&c, CONNECT, json!({"appId": "crm"})).await;
    let pending = r.body["url"].as_str().unwrap().to_owned();
    let r = c
        .app
        .api
        .post("/v1/mgmt/user/update/status", json!({"userId": c.user_id, "status": "disabled"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    start(&c, CONNECT, json!({"appId": "crm"})).await.assert_error(401, "E061001");
    let outcome = browse_to(&pending, "dana", &callback(&c.app), APP_REDIRECT).await;
    let ended = outcome.app_url.expect("back at the app");
    assert_eq!(param(&ended, "error").as_deref(), Some("E113006"), "{ended}");
    assert_eq!(latest(&c).await.status, 404);
}

#[tokio::test]
async fn a_tenant_member_connects_a_tenant_token_and_a_user_token_for_the_tenant() {
    let c = signed_in().await;
    for t in ["t1", "t2"] {
        let r = c.app.api.post("/v1/mgmt/tenant/create", json!({"id": t, "name": t})).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = c
        .app
        .api
        .post("/v1/mgmt/user/update/tenant/add", json!({"userId": c.user_id, "tenantId": "t1"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Not a member of t2: refused before the provider is involved.
    start(&c, CONNECT, json!({"appId": "crm", "tenantId": "t2", "tenantLevel": true}))
        .await
        .assert_error(400, "E011004");

    // Tenant level: the token is t1's, granted by the user (the API reference's form: in options).
    let (_, outcome) = connect(
        &c,
        MGMT_CONNECT,
        json!({"appId": "crm", "options": {"redirectUrl": APP_REDIRECT, "tenantId": "t1", "tenantLevel": true,
            "externalIdentifier": "acct-7"}}),
    )
    .await;
    assert_eq!(outcome.app_url.as_deref(), Some(APP_REDIRECT));
    let t = c
        .app
        .api
        .post("/v1/mgmt/outbound/app/tenant/token/latest", json!({"appId": "crm", "tenantId": "t1"}))
        .await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.body["token"]["tenantId"], "t1");
    assert_eq!(t.body["token"]["userId"], "");
    assert_eq!(t.body["token"]["grantedBy"], c.user_id.as_str());
    assert_eq!(t.body["token"]["externalIdentifier"], "acct-7");
    assert_eq!(provider_subject(&c.oauth, t.body["token"]["accessToken"].as_str().unwrap()).await, "dana");
    assert_eq!(latest(&c).await.status, 404, "no user token was stored");

    // User level for the tenant: a user token of t1 (core-js moves tenantId to the top level).
    let (_, outcome) = connect(
        &c,
        CONNECT,
        json!({"appId": "crm", "tenantId": "t1", "options": {"redirectUrl": APP_REDIRECT}}),
    )
    .await;
    assert_eq!(outcome.app_url.as_deref(), Some(APP_REDIRECT));
    let u = c
        .app
        .api
        .post(
            "/v1/mgmt/outbound/app/user/token/latest",
            json!({"appId": "crm", "userId": c.user_id, "tenantId": "t1"}),
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.body);
    assert_eq!(u.body["token"]["tenantId"], "t1");
    assert_eq!(u.body["token"]["userId"], c.user_id.as_str());
}
