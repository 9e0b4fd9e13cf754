//! Management-key authentication.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn missing_malformed_and_wrong_keys_get_401_without_echoing_the_key() {
    let app = TestApp::spawn();
    let pid = app.server.project_id.clone().unwrap();
    let key = app.server.management_key.clone().unwrap();
    let http = reqwest::Client::new();

    let r = http.get(app.server.url("/v1/mgmt/user?loginId=x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "E011401");

    let mut wrong = key.clone();
    wrong.replace_range(wrong.len() - 4.., "AAAA");
    for auth in [
        "Basic abc".to_owned(),
        format!("Bearer {pid}"),
        format!("Bearer {pid}:"),
        format!("Bearer {pid}:not-a-key"),
        format!("Bearer {pid}:{wrong}"),
        format!("Bearer PotherProject:{key}"),
    ] {
        let api = Api { http: http.clone(), base_url: app.server.base_url.clone(), auth: auth.clone() };
        let r = api.get("/v1/mgmt/user?loginId=x").await;
        r.assert_error(401, "E011401");
        assert!(!r.body.to_string().contains(&wrong), "error must not echo the presented key");
    }
    assert_eq!(app.api.get("/v1/mgmt/license").await.body["rateLimitTier"], "self-hosted");
}

#[tokio::test]
async fn a_key_of_project_a_never_touches_project_b() {
    let app = TestApp::spawn();
    app.api.create_user(json!({"loginId": "in-a"})).await;
    // Project B with its own key, made with the CLI on the same data directory while serving.
    let data = app.server.data_dir.clone();
    let pid_b = crate::cli::run_ok(&data, &["project", "create", "--name", "B"]).trim().to_owned();
    let key_b = crate::cli::run_ok(&data, &["key", "create", "--project", &pid_b]).trim().to_owned();
    let api_b = Api::new(&app.server.base_url, &pid_b, &key_b);
    api_b.get("/v1/mgmt/user?loginId=in-a").await.assert_error(400, "E112102");
    assert_eq!(api_b.post("/v2/mgmt/user/search", json!({})).await.body["total"], 0);
    // Same login id in B is a different user.
    let b_user = api_b.create_user(json!({"loginId": "in-a"})).await;
    let a_user = app.api.get("/v1/mgmt/user?loginId=in-a").await.body["user"].clone();
    assert_ne!(b_user["userId"], a_user["userId"]);
    // B's key presented with A's project id is refused.
    let pid_a = app.server.project_id.clone().unwrap();
    Api::new(&app.server.base_url, &pid_a, &key_b)
        .get("/v1/mgmt/user?loginId=in-a")
        .await
        .assert_error(401, "E011401");
}

#[tokio::test]
async fn revoked_and_expired_keys_are_refused() {
    let app = TestApp::spawn();
    let data = app.server.data_dir.clone();
    let pid = app.server.project_id.clone().unwrap();
    let key =
        crate::cli::run_ok(&data, &["key", "create", "--project", &pid, "--name", "temp"]).trim().to_owned();
    let api = Api::new(&app.server.base_url, &pid, &key);
    assert_eq!(api.get("/v1/mgmt/license").await.status, 200);
    let key_id = key.strip_prefix("idv_").unwrap().split('.').next().unwrap().to_owned();
    crate::cli::run_ok(&data, &["key", "revoke", "--project", &pid, &key_id]);
    // A revocation by another process reaches the server's key cache within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    api.get("/v1/mgmt/license").await.assert_error(401, "E011401");
    // The bootstrap key still works.
    assert_eq!(app.api.get("/v1/mgmt/license").await.status, 200);

    let short = crate::cli::run_ok(&data, &["key", "create", "--project", &pid, "--expires-in", "1s"])
        .trim()
        .to_owned();
    let api = Api::new(&app.server.base_url, &pid, &short);
    assert_eq!(api.get("/v1/mgmt/license").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = api.get("/v1/mgmt/license").await;
    r.assert_error(401, "E011401");
    assert!(r.body["errorMessage"].as_str().unwrap().contains("expired"));
}
