//! `idvault export` / `idvault import`: a project moved between data directories reads back
//! identical, tokens included.

use serde_json::{json, Value};

use crate::cli::run_ok;
use crate::helpers::*;

async fn snapshot(api: &Api) -> (Value, Vec<Value>) {
    let users = api.post("/v2/mgmt/user/search", json!({"withTestUser": true, "limit": 1000})).await.body
        ["users"]
        .clone();
    let mut tokens = Vec::new();
    for u in users.as_array().unwrap() {
        let login = u["loginIds"][0].as_str().unwrap();
        let t = api.get_token(login, "google", true).await;
        tokens.push(json!({"status": t.status, "body": t.body}));
    }
    (users, tokens)
}

#[tokio::test]
async fn export_then_import_reads_back_identical() {
    let app = TestApp::spawn();
    seed_directory(&app.api).await;
    for i in 0..30 {
        let login = format!("mover{i}@example.com");
        app.api
            .create_user(json!({"loginId": login, "displayName": format!("Mover {i}"), "roleNames": ["admin"],
                "userTenants": [{"tenantId": "acme", "roleNames": ["viewer"]}], "customAttributes": {"seats": i}}))
            .await;
        if i % 3 == 0 {
            assert_eq!(
                app.api
                    .put_token(google_token(&login, &format!("access-{i}"), &format!("refresh-{i}")))
                    .await
                    .status,
                200
            );
        }
    }
    app.api.post("/v1/mgmt/user/create/test", json!({"loginId": "tester"})).await;
    let provider = app
        .api
        .post("/v1/mgmt/provider/set", json!({"name": "google", "clientId": "cid", "clientSecret": "s3cret"}))
        .await;
    assert_eq!(provider.status, 200);
    // Outbound apps and their user and tenant tokens travel too (and still open: same AAD).
    let app_body =
        json!({"app": {"id": "google", "name": "Google Drive", "clientId": "cid", "description": "drive"}});
    assert_eq!(app.api.post("/v1/mgmt/outbound/app/update", app_body).await.status, 200);
    let mover0 =
        app.api.get("/v1/mgmt/user?loginId=mover0%40example.com").await.body["user"]["userId"].clone();
    let uploads = [
        (
            "user",
            json!({"appId": "google", "userId": mover0, "accessToken": "ob-user-secret", "scopes": ["drive"], "tenantId": "acme"}),
        ),
        (
            "tenant",
            json!({"appId": "google", "tenantId": "acme", "accessToken": "ob-tenant-secret", "refreshToken": "ob-r"}),
        ),
    ];
    for (kind, body) in uploads {
        let r = app.api.post(&format!("/v1/mgmt/outbound/app/{kind}/oauthtoken/upload"), body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let outbound = |api: &Api| {
        let (api, mover0) = (
            Api { http: api.http.clone(), base_url: api.base_url.clone(), auth: api.auth.clone() },
            mover0.clone(),
        );
        async move {
            let user = api
                .post(
                    "/v1/mgmt/outbound/app/user/token",
                    json!({"appId": "google", "userId": mover0, "scopes": ["drive"]}),
                )
                .await;
            let tenant = api
                .post(
                    "/v1/mgmt/outbound/app/tenant/token/latest",
                    json!({"appId": "google", "tenantId": "acme", "options": {"withRefreshToken": true}}),
                )
                .await;
            let app = api.get("/v1/mgmt/outbound/app/google").await;
            json!({"user": user.body, "tenant": tenant.body, "app": app.body})
        }
    };
    let outbound_before = outbound(&app.api).await;
    assert_eq!(outbound_before["user"]["token"]["accessToken"], "ob-user-secret");
    // Access keys travel as digests: the cleartext made before works after.
    let created = app
        .api
        .post(
            "/v1/mgmt/accesskey/create",
            json!({"name": "mover", "roleNames": ["admin"], "permittedIps": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let access_key = created.body["cleartext"].as_str().unwrap().to_owned();
    record_secret("access key", &access_key);
    let keys_before = app.api.post("/v1/mgmt/accesskey/search", json!({})).await.body;
    let before = snapshot(&app.api).await;
    let pid = app.server.project_id.clone().unwrap();
    let TestApp { server, api, dir } = app;
    let source = server.data_dir.clone();
    assert!(server.stop().success());

    let file = dir.path().join("project.jsonl");
    let out = run_ok(&source, &["export", "--project", &pid, "--out", file.to_str().unwrap()]);
    assert!(out.contains("exported"), "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    for secret in ["access-0", "refresh-0", "s3cret", "ob-user-secret", "ob-tenant-secret", &access_key] {
        assert!(!text.contains(secret), "the export holds no secret in clear ({secret})");
    }

    // A new data directory with the same master keyring.
    let target = dir.path().join("target-data");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(source.join("master.key"), target.join("master.key")).unwrap();
    run_ok(&target, &["migrate"]);
    let out = run_ok(&target, &["import", "--in", file.to_str().unwrap()]);
    assert!(out.contains("verified: every count matches"), "{out}");

    let server = TestServer::start(&target);
    let api = Api { base_url: server.base_url.clone(), ..api };
    let after = snapshot(&api).await;
    assert_eq!(after.0, before.0, "users identical");
    assert_eq!(after.1, before.1, "tokens identical");
    assert_eq!(outbound(&api).await, outbound_before, "outbound apps and tokens identical");
    assert_eq!(
        api.post("/v1/mgmt/accesskey/search", json!({})).await.body,
        keys_before,
        "access keys identical"
    );
    let machine = Api {
        http: reqwest::Client::new(),
        base_url: server.base_url.clone(),
        auth: format!("Bearer {pid}:{access_key}"),
    };
    let exchanged = machine.post("/v1/auth/accesskey/exchange", json!({})).await;
    assert_eq!(exchanged.status, 200, "{}", exchanged.body);
    let p = api.get("/v1/mgmt/provider?name=google").await;
    assert_eq!(p.body["provider"]["hasClientSecret"], true);
    // The same key works against the moved project.
    assert_eq!(api.get("/v1/mgmt/license").await.status, 200);
    // Importing twice is refused.
    let again = crate::cli::run_err(&target, &["import", "--in", file.to_str().unwrap()]);
    assert!(again.contains("already exists"), "{again}");
    drop(server);
    drop(dir);
}
