//! Bad input gets a Descope-style JSON error and a 4xx.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn malformed_bodies_wrong_types_and_limits() {
    let app = TestApp::spawn();
    let raw = |body: &'static str| {
        app.api
            .http
            .post(app.server.url("/v1/mgmt/user/create"))
            .header("Authorization", &app.api.auth)
            .header("Content-Type", "application/json")
            .body(body)
    };
    for body in
        ["{", "[1,2]", "\"str\"", "{\"loginId\": 5}", "{\"loginId\": \"x\", \"roleNames\": \"admin\"}"]
    {
        let r = raw(body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["errorCode"], "E011001", "{body}: {v}");
    }
    app.api.post("/v1/mgmt/user/create", json!({})).await.assert_error(400, "E011002");
    app.api
        .post("/v1/mgmt/user/create", json!({"loginId": "x", "email": "nope"}))
        .await
        .assert_error(400, "E011004");
    app.api
        .post("/v1/mgmt/user/create", json!({"loginId": "x", "phone": "555"}))
        .await
        .assert_error(400, "E011004");
    app.api
        .post("/v1/mgmt/user/create", json!({"loginId": "x", "status": "sleeping"}))
        .await
        .assert_error(400, "E011004");
    app.api
        .post("/v1/mgmt/user/create", json!({"loginId": "x".repeat(2000)}))
        .await
        .assert_error(400, "E011004");

    app.api.create_user(json!({"loginId": "dup"})).await;
    app.api.post("/v1/mgmt/user/create", json!({"loginId": "dup"})).await.assert_error(409, "E062107");

    let big = json!({"loginId": "big", "customAttributes": {"blob": "x".repeat(2 * 1024 * 1024)}});
    app.api.post("/v1/mgmt/user/create", big).await.assert_error(413, "E011413");

    app.api.post("/v2/mgmt/user/search", json!({"limit": 1001})).await.assert_error(400, "E011004");
    app.api.post("/v2/mgmt/user/search", json!({"page": -1})).await.assert_error(400, "E011004");
    app.api.post("/v2/mgmt/user/search", json!({"limit": -1})).await.assert_error(400, "E011004");
    app.api.post("/v2/mgmt/user/search", json!({"statuses": ["nope"]})).await.assert_error(400, "E011004");
    app.api
        .post("/v2/mgmt/user/search", json!({"sort": [{"field": "shoeSize"}]}))
        .await
        .assert_error(400, "E011004");
    app.api.post("/v2/mgmt/user/search", json!({"limit": "ten"})).await.assert_error(400, "E011001");
    app.api.post("/v1/mgmt/users/load", json!({"userIds": []})).await.assert_error(400, "E011002");
    app.api.get("/v1/mgmt/user").await.assert_error(400, "E011002");
    app.api.get("/v1/mgmt/user?loginId=ghost").await.assert_error(400, "E112102");

    // Nothing of the refused creates was written.
    let all = app.api.post("/v2/mgmt/user/search", json!({})).await;
    assert_eq!(all.body["total"], 1);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn();
    app.api.get("/v1/mgmt/nothing-here").await.assert_error(404, "E011404");
    app.api.send(reqwest::Method::DELETE, "/v1/mgmt/user/create", None).await.assert_error(405, "E011405");
    let r = reqwest::get(app.server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::get(app.server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
}

/// A NUL character is stored by SQLite and refused by PostgreSQL with an error that became a 500:
/// in any string or key of a body, or a query, it is now a 400 `E011004` on every backend.
#[tokio::test]
async fn nul_characters_are_refused_with_a_400_on_every_backend() {
    let app = TestApp::spawn();
    let api = &app.api;
    api.create_user(json!({"loginId": "nul@example.com"})).await;
    let nul = "a\u{0}b";
    for (path, body) in [
        ("/v2/mgmt/user/search", json!({"loginIds": [nul]})),
        ("/v2/mgmt/user/search", json!({"text": nul})),
        ("/v2/mgmt/user/search", json!({"customAttributes": {"k": nul}})),
        ("/v2/mgmt/user/search", json!({"customAttributes": {nul: 1}})),
        ("/v2/mgmt/user/search", json!({"tenantRoleNames": {"t": {"values": [nul]}}})),
        ("/v1/mgmt/tenant/create", json!({"name": "T", "selfProvisioningDomains": [nul]})),
        ("/v1/mgmt/tenant/delete", json!({"id": nul})),
        ("/v1/mgmt/permission/create", json!({"name": "p", "description": nul})),
        ("/v1/mgmt/role/create", json!({"name": "r", "description": nul})),
        ("/v1/mgmt/user/customattribute/delete", json!({"names": [nul]})),
        ("/v1/mgmt/user/update/tenant/add", json!({"loginId": "nul@example.com", "tenantId": nul})),
        ("/v1/mgmt/user/history", json!([nul])),
        ("/v1/mgmt/provider/set", json!({"name": "google", "clientId": nul})),
    ] {
        let r = api.post(path, body.clone()).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
        r.assert_error(400, "E011004");
    }
    let r = api
        .send(
            reqwest::Method::PUT,
            "/v1/mgmt/user/provider/token",
            Some(json!({"loginId": "nul@example.com", "provider": "google", "accessToken": "t", "providerUserId": nul})),
        )
        .await;
    r.assert_error(400, "E011004");
    api.get("/v1/mgmt/tenant?id=a%00b").await.assert_error(400, "E011004");
    // A backslash followed by the text `u0000` is no NUL, and `%2500` is the text `%00`.
    let r = api.post("/v2/mgmt/user/search", json!({"text": "\\u0000"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    api.get("/v1/mgmt/tenant?id=a%2500b").await.assert_error(404, "E011406");
}
