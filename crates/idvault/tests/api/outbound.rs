//! Outbound apps (Descope's token vault API): apps, user and tenant tokens, API keys, refresh
//! against a real OAuth server (oidc-provider), and isolation between projects.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::oauth_server::OAuthServer;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn ok(api: &Api, path: &str, body: Value) -> Value {
    let r = api.post(path, body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

async fn delete(api: &Api, path: &str) -> Resp {
    api.send(reqwest::Method::DELETE, path, None).await
}

/// An app whose client is registered at the test OAuth server, endpoints by discovery.
async fn oauth_app(api: &Api, oauth: &OAuthServer, id: &str) -> Value {
    ok(
        api,
        "/v1/mgmt/outbound/app/create",
        json!({"id": id, "name": format!("App {id}"), "clientId": "idvault-test",
            "clientSecret": "idvault-test-secret",
            // Sent with every refresh; a parameter of the grant itself would be left out.
            "tokenUrlParams": [{"key": "idvault_probe", "value": "1"}, {"key": "grant_type", "value": "password"}],
            "discoveryUrl": format!("{}/.well-known/openid-configuration", oauth.issuer)}),
    )
    .await["app"]
        .clone()
}

async fn user(api: &Api, login: &str) -> String {
    api.create_user(json!({"loginId": login})).await["userId"].as_str().unwrap().to_owned()
}

async fn fetch(api: &Api, path: &str, body: Value) -> Resp {
    api.post(&format!("/v1/mgmt/outbound/app/{path}"), body).await
}

#[tokio::test]
async fn apps_are_created_updated_listed_and_deleted_without_ever_answering_the_secret() {
    let app = TestApp::spawn();
    let api = &app.api;
    let created = ok(
        api,
        "/v1/mgmt/outbound/app/create",
        json!({"id": "crm", "name": "CRM", "description": "d", "logo": "https://example.com/l.png",
            "clientId": "cid", "clientSecret": "top-secret-value",
            "authorizationUrl": "https://crm.example.com/authorize", "tokenUrl": "https://crm.example.com/token",
            "revocationUrl": "https://crm.example.com/revoke",
            "authorizationUrlParams": [{"name": "audience", "value": "api"}],
            "tokenUrlParams": [{"key": "resource", "value": "r"}],
            "defaultScopes": ["read", "write"], "defaultRedirectUrl": "https://myapp.example.com/cb",
            "callbackDomain": "myapp.example.com", "pkce": true, "accessType": "offline",
            "prompt": ["login", "consent"]}),
    )
    .await;
    let a = &created["app"];
    assert_eq!(a["id"], "crm");
    assert_eq!(a["name"], "CRM");
    assert_eq!(a["hasClientSecret"], true);
    assert_eq!(a["tokenUrl"], "https://crm.example.com/token");
    assert_eq!(a["authorizationUrlParams"], json!([{"key": "audience", "value": "api"}]));
    assert_eq!(a["tokenUrlParams"], json!([{"key": "resource", "value": "r"}]));
    assert_eq!(a["prompt"], json!(["login", "consent"]));
    assert_eq!(a["appType"], "oauth");
    assert!(!created.to_string().contains("top-secret-value"));

    // A generated id; Python's explicit nulls read as absent.
    let generated = ok(
        api,
        "/v1/mgmt/outbound/app/create",
        json!({"name": "Second", "id": null, "description": null, "logo": null}),
    )
    .await;
    let gen_id = generated["app"]["id"].as_str().unwrap().to_owned();
    assert!(gen_id.starts_with("app-"), "{gen_id}");
    assert_eq!(api.get(&format!("/v1/mgmt/outbound/app/{gen_id}")).await.body["app"]["name"], "Second");

    // Ids and names are unique; reserved ids and unusable URLs are refused.
    api.post("/v1/mgmt/outbound/app/create", json!({"id": "crm", "name": "Other"}))
        .await
        .assert_error(409, "E011409");
    api.post("/v1/mgmt/outbound/app/create", json!({"id": "crm2", "name": "crm"}))
        .await
        .assert_error(409, "E011409");
    api.post("/v1/mgmt/outbound/app/create", json!({"id": "create", "name": "R"}))
        .await
        .assert_error(400, "E011004");
    api.post("/v1/mgmt/outbound/app/create", json!({"id": "Bad Id", "name": "R"}))
        .await
        .assert_error(400, "E011004");
    api.post("/v1/mgmt/outbound/app/create", json!({"description": "no name"}))
        .await
        .assert_error(400, "E011002");
    for (field, url) in [
        ("tokenUrl", "https://169.254.169.254/token"),
        ("revocationUrl", "https://192.168.1.1/revoke"),
        ("discoveryUrl", "https://10.0.0.1/.well-known/openid-configuration"),
    ] {
        api.post("/v1/mgmt/outbound/app/create", json!({"id": "ssrf", "name": "S", field: url}))
            .await
            .assert_error(400, "E011004");
    }
    api.post("/v1/mgmt/outbound/app/create", json!({"id": "p", "name": "P", "prompt": ["maybe"]}))
        .await
        .assert_error(400, "E011004");

    // Update overrides the fields; an absent secret is kept while the client and endpoints stay.
    let updated = ok(
        api,
        "/v1/mgmt/outbound/app/update",
        json!({"app": {"id": "crm", "name": "CRM 2", "clientId": "cid",
            "authorizationUrl": "https://crm.example.com/authorize", "tokenUrl": "https://crm.example.com/token"}}),
    )
    .await;
    assert_eq!(updated["app"]["name"], "CRM 2");
    assert_eq!(updated["app"]["hasClientSecret"], true);
    assert_eq!(updated["app"]["description"], "");
    assert_eq!(updated["app"]["pkce"], false);
    api.post("/v1/mgmt/outbound/app/update", json!({"app": {"id": "nope", "name": "N"}}))
        .await
        .assert_error(404, "E152101");
    // Renaming to another app's name is a conflict, which the document lists (the API fuzz run
    // found it answered but undocumented).
    api.post("/v1/mgmt/outbound/app/update", json!({"app": {"id": "crm", "name": "second"}}))
        .await
        .assert_error(409, "E011409");
    let doc = api.get("/openapi.json").await.body;
    let update = &doc["paths"]["/v1/mgmt/outbound/app/update"]["post"]["responses"];
    assert!(update.get("409").is_some(), "{update}");

    // By template: the preset's endpoints, overrides win.
    let hub = ok(
        api,
        "/v1/mgmt/outbound/app/create/bytemplate",
        json!({"templateId": "hubspot", "id": "hubspot", "clientId": "client-id", "clientSecret": "shhh",
            "tenantId": "t1", "overrides": {"name": "HubSpot", "defaultScopes": ["crm.objects.contacts.read"], "pkce": true}}),
    )
    .await;
    assert_eq!(hub["app"]["tokenUrl"], "https://api.hubapi.com/oauth/v1/token");
    assert_eq!(hub["app"]["defaultScopes"], json!(["crm.objects.contacts.read"]));
    assert_eq!(hub["app"]["pkce"], true);
    assert_eq!(hub["app"]["templateId"], "hubspot");
    let google = ok(api, "/v1/mgmt/outbound/app/create/bytemplate", json!({"templateId": "google"})).await;
    assert_eq!(google["app"]["tokenUrl"], "https://oauth2.googleapis.com/token");
    api.post("/v1/mgmt/outbound/app/create/bytemplate", json!({"templateId": "nope"}))
        .await
        .assert_error(400, "E011004");

    // A provider is an app: the provider endpoints see it, and provider/set keeps the app fields.
    let as_provider = api.get("/v1/mgmt/provider?name=crm").await;
    assert_eq!(as_provider.body["provider"]["clientId"], "cid");
    let all = api.get("/v1/mgmt/outbound/apps").await;
    let ids: Vec<&str> =
        all.body["apps"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    for id in ["crm", gen_id.as_str(), "hubspot", google["app"]["id"].as_str().unwrap()] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert_eq!(google["app"]["name"], "google", "a template's name when none is given");
    assert!(!all.body.to_string().contains("shhh"));

    ok(api, "/v1/mgmt/outbound/app/delete", json!({"id": "crm"})).await;
    api.get("/v1/mgmt/outbound/app/crm").await.assert_error(404, "E152101");
    api.post("/v1/mgmt/outbound/app/delete", json!({"id": "crm"})).await.assert_error(404, "E152101");

    // The client secret is sealed at rest.
    let TestApp { server, dir, .. } = app;
    let data = server.data_dir.clone();
    assert!(server.stop().success());
    let db = storage_dump(&data);
    assert!(!db.windows(16).any(|w| w == b"top-secret-value"));
    drop(dir);
}

#[tokio::test]
async fn tokens_are_chosen_by_scopes_or_latest_and_deleted_by_id_user_or_app() {
    let app = TestApp::spawn();
    let api = &app.api;
    ok(api, "/v1/mgmt/outbound/app/create", json!({"id": "docs", "name": "Docs"})).await;
    ok(api, "/v1/mgmt/outbound/app/create", json!({"id": "mail", "name": "Mail"})).await;
    ok(api, "/v1/mgmt/tenant/create", json!({"id": "t1", "name": "T1"})).await;
    let u = user(api, "alice").await;
    let upload =
        |body: Value| async move { ok(api, "/v1/mgmt/outbound/app/user/oauthtoken/upload", body).await };

    upload(json!({"appId": "docs", "userId": u, "accessToken": "read-only", "scopes": ["read"], "grantedBy": "admin"})).await;
    upload(json!({"appId": "docs", "userId": u, "accessToken": "read-write", "scopes": ["write", "read"],
        "accessTokenExpiry": now() + 3600, "refreshToken": "rw-refresh"}))
    .await;
    upload(json!({"appId": "docs", "userId": u, "tenantId": "t1", "accessToken": "tenant-scoped", "scopes": ["read"]})).await;

    // By scopes: the newest token whose scopes include the request.
    let rw = fetch(
        api,
        "user/token",
        json!({"appId": "docs", "userId": u, "scopes": ["write"], "options": null, "tenantId": null}),
    )
    .await;
    assert_eq!(rw.status, 200, "{}", rw.body);
    assert_eq!(rw.body["token"]["accessToken"], "read-write");
    assert_eq!(rw.body["token"]["hasRefreshToken"], true);
    assert!(rw.body["token"].get("refreshToken").is_none(), "only when asked");
    assert_eq!(rw.body["token"]["scopes"], json!(["read", "write"]));
    assert_eq!(rw.body["token"]["appId"], "docs");
    assert_eq!(rw.body["token"]["userId"], u.as_str());
    let with_refresh = fetch(
        api,
        "user/token",
        json!({"appId": "docs", "userId": u, "scopes": ["read", "write"], "options": {"withRefreshToken": true, "unknown": 1}}),
    )
    .await;
    assert_eq!(with_refresh.body["token"]["refreshToken"], "rw-refresh");
    let read = fetch(api, "user/token", json!({"appId": "docs", "userId": u, "scopes": ["read"]})).await;
    assert_eq!(read.body["token"]["accessToken"], "tenant-scoped", "the newest covering token");
    let read_t =
        fetch(api, "user/token", json!({"appId": "docs", "userId": u, "scopes": ["read"], "tenantId": "t1"}))
            .await;
    assert_eq!(read_t.body["token"]["tenantId"], "t1");
    fetch(api, "user/token", json!({"appId": "docs", "userId": u, "scopes": ["admin"]}))
        .await
        .assert_error(404, "E152102");
    fetch(api, "user/token", json!({"appId": "nope", "userId": u, "scopes": ["read"]}))
        .await
        .assert_error(404, "E152101");

    // Same scope set again: replaced in place (same id), not added.
    let before =
        fetch(api, "user/token/latest", json!({"appId": "docs", "userId": u, "tenantId": "t1"})).await;
    upload(json!({"appId": "docs", "userId": u, "tenantId": "t1", "accessToken": "tenant-scoped-2", "scopes": ["read"]})).await;
    let after =
        fetch(api, "user/token/latest", json!({"appId": "docs", "userId": u, "tenantId": "t1"})).await;
    assert_eq!(after.body["token"]["accessToken"], "tenant-scoped-2");
    assert_eq!(after.body["token"]["id"], before.body["token"]["id"]);
    assert_eq!(after.body["token"]["accessTokenType"], "Bearer");

    // Tenant tokens.
    ok(
        api,
        "/v1/mgmt/outbound/app/tenant/oauthtoken/upload",
        json!({"appId": "docs", "tenantId": "t1", "accessToken": "org", "scopes": ["read"]}),
    )
    .await;
    let org = fetch(
        api,
        "tenant/token",
        json!({"appId": "docs", "tenantId": "t1", "scopes": ["read"], "options": {"withRefreshToken": true}}),
    )
    .await;
    assert_eq!(org.body["token"]["accessToken"], "org");
    assert_eq!(org.body["token"]["userId"], "");
    assert_eq!(org.body["token"]["tenantId"], "t1");
    assert_eq!(
        fetch(api, "tenant/token/latest", json!({"appId": "docs", "tenantId": "t1"})).await.body["token"]
            ["accessToken"],
        "org"
    );
    api.post(
        "/v1/mgmt/outbound/app/tenant/oauthtoken/upload",
        json!({"appId": "docs", "tenantId": "nope", "accessToken": "x"}),
    )
    .await
    .assert_error(404, "E011406");
    api.post("/v1/mgmt/outbound/app/user/oauthtoken/upload", json!({"appId": "docs", "userId": u}))
        .await
        .assert_error(400, "E011002");
    api.post(
        "/v1/mgmt/outbound/app/user/oauthtoken/upload",
        json!({"appId": "docs", "userId": "Unobody", "accessToken": "x"}),
    )
    .await
    .assert_error(400, "E112102");

    // Apps with a user token.
    upload(json!({"appId": "mail", "userId": u, "accessToken": "m"})).await;
    let apps = api.get(&format!("/v1/mgmt/outbound/apps-with-user-token?userId={u}")).await;
    assert_eq!(apps.body["appIds"], json!(["docs", "mail"]));
    let in_t1 = api.get(&format!("/v1/mgmt/outbound/apps-with-user-token?userId={u}&tenantId=t1")).await;
    assert_eq!(in_t1.body["appIds"], json!(["docs"]));

    // Deletes: by id, then (Node's literal "undefined") all of an app's user tokens, then by user.
    let id = rw.body["token"]["id"].as_str().unwrap().to_owned();
    assert_eq!(delete(api, &format!("/v1/mgmt/outbound/token?id={id}")).await.status, 200);
    delete(api, &format!("/v1/mgmt/outbound/token?id={id}")).await.assert_error(404, "E152102");
    assert_eq!(delete(api, "/v1/mgmt/outbound/user/tokens?appId=docs&userId=undefined").await.status, 200);
    fetch(api, "user/token/latest", json!({"appId": "docs", "userId": u})).await.assert_error(404, "E152102");
    assert_eq!(
        fetch(api, "tenant/token/latest", json!({"appId": "docs", "tenantId": "t1"})).await.status,
        200,
        "tenant tokens stay"
    );
    assert_eq!(fetch(api, "user/token/latest", json!({"appId": "mail", "userId": u})).await.status, 200);
    delete(api, "/v1/mgmt/outbound/user/tokens?appId=undefined&userId=undefined")
        .await
        .assert_error(400, "E011002");
    assert_eq!(delete(api, &format!("/v1/mgmt/outbound/user/tokens?userId={u}")).await.status, 200);
    let none = api.get(&format!("/v1/mgmt/outbound/apps-with-user-token?userId={u}")).await;
    assert_eq!(none.body["appIds"], json!([]));

    // Deleting the app, the user or the tenant deletes their tokens.
    upload(json!({"appId": "mail", "userId": u, "accessToken": "m2"})).await;
    ok(api, "/v1/mgmt/user/delete", json!({"loginId": "alice"})).await;
    let u2 = user(api, "alice").await;
    assert_ne!(u, u2);
    fetch(api, "user/token/latest", json!({"appId": "mail", "userId": u})).await.assert_error(404, "E152102");
    ok(api, "/v1/mgmt/tenant/delete", json!({"id": "t1"})).await;
    fetch(api, "tenant/token/latest", json!({"appId": "docs", "tenantId": "t1"}))
        .await
        .assert_error(404, "E152102");
    upload(json!({"appId": "mail", "userId": u2, "accessToken": "m3"})).await;
    ok(api, "/v1/mgmt/outbound/app/delete", json!({"id": "mail"})).await;
    ok(api, "/v1/mgmt/outbound/app/create", json!({"id": "mail", "name": "Mail"})).await;
    fetch(api, "user/token/latest", json!({"appId": "mail", "userId": u2}))
        .await
        .assert_error(404, "E152102");
}

#[tokio::test]
async fn api_key_apps_store_keys_answered_as_access_tokens() {
    let app = TestApp::spawn();
    let api = &app.api;
    ok(api, "/v1/mgmt/outbound/app/create", json!({"id": "keys", "name": "Keys", "appType": "apikey"})).await;
    ok(api, "/v1/mgmt/outbound/app/create", json!({"id": "oauthy", "name": "OAuthy"})).await;
    ok(api, "/v1/mgmt/tenant/create", json!({"id": "t9", "name": "T9"})).await;
    let u = user(api, "kim").await;
    ok(
        api,
        "/v1/mgmt/outbound/app/user/apikey/upload",
        json!({"appId": "keys", "userId": u, "apiKey": "sk-user-secret"}),
    )
    .await;
    ok(
        api,
        "/v1/mgmt/outbound/app/tenant/apikey/upload",
        json!({"appId": "keys", "tenantId": "t9", "apiKey": "sk-tenant"}),
    )
    .await;
    let k = fetch(
        api,
        "user/token/latest",
        json!({"appId": "keys", "userId": u, "options": {"withRefreshToken": true}}),
    )
    .await;
    assert_eq!(k.body["token"]["accessToken"], "sk-user-secret");
    assert_eq!(k.body["token"]["accessTokenExpiry"], 0);
    assert_eq!(k.body["token"]["hasRefreshToken"], false);
    assert!(k.body["token"].get("refreshToken").is_none());
    let by_scopes =
        fetch(api, "tenant/token", json!({"appId": "keys", "tenantId": "t9", "scopes": []})).await;
    assert_eq!(by_scopes.body["token"]["accessToken"], "sk-tenant");
    // A new key replaces the old one.
    ok(
        api,
        "/v1/mgmt/outbound/app/user/apikey/upload",
        json!({"appId": "keys", "userId": u, "apiKey": "sk-2"}),
    )
    .await;
    assert_eq!(
        fetch(api, "user/token/latest", json!({"appId": "keys", "userId": u})).await.body["token"]
            ["accessToken"],
        "sk-2"
    );
    // Keys only on API-key apps, OAuth tokens only on OAuth apps.
    api.post(
        "/v1/mgmt/outbound/app/user/apikey/upload",
        json!({"appId": "oauthy", "userId": u, "apiKey": "k"}),
    )
    .await
    .assert_error(400, "E011004");
    api.post(
        "/v1/mgmt/outbound/app/user/oauthtoken/upload",
        json!({"appId": "keys", "userId": u, "accessToken": "a"}),
    )
    .await
    .assert_error(400, "E011004");
    let TestApp { server, dir, .. } = app;
    let data = server.data_dir.clone();
    assert!(server.stop().success());
    assert!(!storage_dump(&data).windows(14).any(|w| w == b"sk-user-secret"), "keys are sealed at rest");
    drop(dir);
}

#[tokio::test]
async fn outbound_tokens_refresh_through_the_shared_machinery() {
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    let api = &app.api;
    oauth_app(api, &oauth, "acme").await;
    let u = user(api, "ref@example.com").await;

    // A refresh-only upload: the first fetch refreshes.
    let grant = oauth.grant("ref@example.com").await;
    ok(
        api,
        "/v1/mgmt/outbound/app/user/oauthtoken/upload",
        json!({"appId": "acme", "userId": u, "refreshToken": grant["refresh_token"], "scopes": ["openid", "offline_access"]}),
    )
    .await;
    oauth.control("stats/reset", json!({})).await;
    let first = fetch(
        api,
        "user/token/latest",
        json!({"appId": "acme", "userId": u, "options": {"withRefreshToken": true}}),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(oauth.refresh_requests().await, 1);
    let t = &first.body["token"];
    assert!(t["accessToken"].as_str().is_some_and(|a| !a.is_empty()));
    assert_ne!(t["refreshToken"], grant["refresh_token"], "rotation followed");
    assert!((t["accessTokenExpiry"].as_i64().unwrap() - (now() + 3600)).abs() < 30);
    assert!(t["lastRefreshTime"].as_i64().unwrap() >= now() - 30);

    // Fresh now: served as stored. Forced: refreshed with the rotated refresh token.
    let again = fetch(api, "user/token/latest", json!({"appId": "acme", "userId": u})).await;
    assert_eq!(again.body["token"]["accessToken"], t["accessToken"]);
    assert_eq!(oauth.refresh_requests().await, 1);
    let forced = fetch(
        api,
        "user/token",
        json!({"appId": "acme", "userId": u, "scopes": ["openid"], "options": {"forceRefresh": true}}),
    )
    .await;
    assert_eq!(forced.status, 200, "{}", forced.body);
    assert_ne!(forced.body["token"]["accessToken"], t["accessToken"]);
    assert_eq!(oauth.refresh_requests().await, 2);
    assert_eq!(oauth.stats().await["refresh_reuse_detected"], 0);

    // 100 concurrent forced fetches: one upstream refresh, one new token for all.
    oauth.control("delay", json!({"ms": 300})).await;
    oauth.control("stats/reset", json!({})).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let api =
            Api { http: reqwest::Client::new(), base_url: api.base_url.clone(), auth: api.auth.clone() };
        let u = u.clone();
        tasks.push(tokio::spawn(async move {
            fetch(
                &api,
                "user/token/latest",
                json!({"appId": "acme", "userId": u, "options": {"forceRefresh": true}}),
            )
            .await
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        tokens.insert(r.body["token"]["accessToken"].as_str().unwrap().to_owned());
    }
    assert_eq!(oauth.refresh_requests().await, 1, "exactly one upstream refresh");
    assert_eq!(tokens.len(), 1);
    oauth.control("delay", json!({"ms": 0})).await;

    // verifyRefresh: a working refresh token is used before storing; a refused one stores nothing.
    let tenant_grant = oauth.grant("tenant-admin").await;
    ok(api, "/v1/mgmt/tenant/create", json!({"id": "t1", "name": "T1"})).await;
    ok(
        api,
        "/v1/mgmt/outbound/app/tenant/oauthtoken/upload",
        json!({"appId": "acme", "tenantId": "t1", "refreshToken": tenant_grant["refresh_token"], "verifyRefresh": true}),
    )
    .await;
    let org = fetch(api, "tenant/token/latest", json!({"appId": "acme", "tenantId": "t1"})).await;
    assert_eq!(org.status, 200, "{}", org.body);
    assert_ne!(
        org.body["token"]["accessToken"], tenant_grant["access_token"],
        "the verifying refresh's token"
    );
    let calls = oauth.refresh_requests().await;
    let bad = api
        .post(
            "/v1/mgmt/outbound/app/user/oauthtoken/upload",
            json!({"appId": "acme", "userId": u, "refreshToken": "not-a-grant", "scopes": ["other"], "verifyRefresh": true}),
        )
        .await;
    bad.assert_error(409, "E112105");
    assert_eq!(oauth.refresh_requests().await, calls + 1);
    fetch(api, "user/token", json!({"appId": "acme", "userId": u, "scopes": ["other"]}))
        .await
        .assert_error(404, "E152102");

    // invalid_grant: flagged, later fetches fail fast, and the app leaves apps-with-user-token.
    let fresh = oauth.grant("ref@example.com").await;
    oauth.control("revoke", json!({"grant_id": grant["grant_id"]})).await;
    oauth.control("stats/reset", json!({})).await;
    fetch(api, "user/token/latest", json!({"appId": "acme", "userId": u, "options": {"forceRefresh": true}}))
        .await
        .assert_error(409, "E112105");
    assert_eq!(oauth.refresh_requests().await, 1);
    fetch(api, "user/token/latest", json!({"appId": "acme", "userId": u, "options": {"forceRefresh": true}}))
        .await
        .assert_error(409, "E112105");
    assert_eq!(oauth.refresh_requests().await, 1, "flagged: no further provider calls");
    let apps = api.get(&format!("/v1/mgmt/outbound/apps-with-user-token?userId={u}")).await;
    assert_eq!(apps.body["appIds"], json!([]));
    // A new upload with the same scope set replaces the flagged token and clears the flag.
    ok(
        api,
        "/v1/mgmt/outbound/app/user/oauthtoken/upload",
        json!({"appId": "acme", "userId": u, "accessToken": fresh["access_token"], "refreshToken": fresh["refresh_token"],
            "accessTokenExpiry": now() + 3600, "scopes": ["offline_access", "openid"]}),
    )
    .await;
    let back = fetch(
        api,
        "user/token/latest",
        json!({"appId": "acme", "userId": u, "options": {"forceRefresh": true}}),
    )
    .await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(back.body["token"]["lastRefreshError"], "");
}

#[tokio::test]
async fn a_key_of_project_a_never_reaches_project_b_apps_or_tokens() {
    let app = TestApp::spawn();
    let api = &app.api;
    ok(api, "/v1/mgmt/outbound/app/create", json!({"id": "shared", "name": "Shared", "appType": "apikey"}))
        .await;
    let u = user(api, "iso").await;
    ok(
        api,
        "/v1/mgmt/outbound/app/user/apikey/upload",
        json!({"appId": "shared", "userId": u, "apiKey": "a-key"}),
    )
    .await;
    let token_id = fetch(api, "user/token/latest", json!({"appId": "shared", "userId": u})).await.body
        ["token"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let data = app.server.data_dir.clone();
    let pid_b = crate::cli::run_ok(&data, &["project", "create", "--name", "B"]).trim().to_owned();
    let key_b = crate::cli::run_ok(&data, &["key", "create", "--project", &pid_b]).trim().to_owned();
    let b = Api::new(&app.server.base_url, &pid_b, &key_b);
    b.get("/v1/mgmt/outbound/app/shared").await.assert_error(404, "E152101");
    assert_eq!(b.get("/v1/mgmt/outbound/apps").await.body["apps"], json!([]));
    fetch(&b, "user/token/latest", json!({"appId": "shared", "userId": u}))
        .await
        .assert_error(404, "E152101");
    b.send(reqwest::Method::DELETE, &format!("/v1/mgmt/outbound/token?id={token_id}"), None)
        .await
        .assert_error(404, "E152102");
    assert_eq!(
        b.get(&format!("/v1/mgmt/outbound/apps-with-user-token?userId={u}")).await.body["appIds"],
        json!([])
    );
    // B may use the same app id: a different app.
    ok(&b, "/v1/mgmt/outbound/app/create", json!({"id": "shared", "name": "Shared", "appType": "apikey"}))
        .await;
    fetch(&b, "user/token/latest", json!({"appId": "shared", "userId": u}))
        .await
        .assert_error(404, "E152102");
    // A's token is untouched.
    assert_eq!(
        fetch(api, "user/token/latest", json!({"appId": "shared", "userId": u})).await.body["token"]
            ["accessToken"],
        "a-key"
    );
}
