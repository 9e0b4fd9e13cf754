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
