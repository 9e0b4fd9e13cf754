//! The provider-token vault over HTTP.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn store_then_read_with_and_without_refresh_token() {
    let app = TestApp::spawn();
    app.api.create_user(json!({"loginId": "dana@example.com"})).await;
    let r = app.api.put_token(google_token("dana@example.com", "ya29.access-one", "1//refresh-one")).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));

    let r = app.api.get_token("dana@example.com", "google", false).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"provider": "google", "providerUserId": "g-1234", "accessToken": "ya29.access-one",
               "expiration": 4102444800i64, "scopes": ["openid", "email"]})
    );
    let r = app.api.get_token("dana@example.com", "google", true).await;
    assert_eq!(r.body["refreshToken"], "1//refresh-one");

    // The user object now says the user has a google identity.
    let u = app.api.get("/v1/mgmt/user?loginId=dana%40example.com").await;
    assert_eq!(u.body["user"]["oauth"], json!({"google": true}));

    // Replace: the new token wins, and a token without refresh token has none.
    let r = app
        .api
        .put_token(json!({"loginId": "dana@example.com", "provider": "google", "providerUserId": "g-1234",
                          "accessToken": "ya29.access-two"}))
        .await;
    assert_eq!(r.status, 200);
    let r = app.api.get_token("dana@example.com", "google", true).await;
    assert_eq!(r.body["accessToken"], "ya29.access-two");
    assert_eq!(r.body["expiration"], 0);
    assert!(r.body.get("refreshToken").is_none(), "{}", r.body);
}

#[tokio::test]
async fn expired_token_is_returned_as_stored_and_user_id_works() {
    let app = TestApp::spawn();
    let u = app.api.create_user(json!({"loginId": "exp"})).await;
    let mut body = google_token("exp", "old-access", "old-refresh");
    body["expiration"] = json!(1_000_000_000);
    assert_eq!(app.api.put_token(body).await.status, 200);
    let r = app.api.get_token("exp", "google", false).await;
    assert_eq!(r.body["accessToken"], "old-access");
    assert_eq!(r.body["expiration"], 1_000_000_000);
    let by_id = app
        .api
        .get(&format!(
            "/v1/mgmt/user/provider/token?userId={}&provider=google",
            u["userId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_id.body["accessToken"], "old-access");
}

#[tokio::test]
async fn missing_tokens_unknown_users_and_delete() {
    let app = TestApp::spawn();
    app.api.create_user(json!({"loginId": "gh-user"})).await;
    app.api.get_token("gh-user", "github", false).await.assert_error(404, "E112103");
    app.api.get_token("nobody", "github", false).await.assert_error(400, "E112102");
    app.api.put_token(google_token("nobody", "a", "r")).await.assert_error(400, "E112102");

    assert_eq!(app.api.put_token(google_token("gh-user", "a", "r")).await.status, 200);
    let r = app
        .api
        .send(reqwest::Method::DELETE, "/v1/mgmt/user/provider/token?loginId=gh-user&provider=google", None)
        .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    app.api.get_token("gh-user", "google", false).await.assert_error(404, "E112103");
    let u = app.api.get("/v1/mgmt/user?loginId=gh-user").await;
    assert_eq!(u.body["user"]["oauth"], json!({}));
}

#[tokio::test]
async fn bad_token_requests_are_refused_without_writing() {
    let app = TestApp::spawn();
    app.api.create_user(json!({"loginId": "v"})).await;
    let cases = [
        (json!({"loginId": "v", "provider": "google"}), "E011002"),
        (json!({"loginId": "v", "provider": "Goo gle", "accessToken": "x"}), "E011004"),
        (json!({"loginId": "v", "provider": "google", "accessToken": "x", "expiration": -5}), "E011004"),
        (json!({"loginId": "v", "provider": "google", "accessToken": "x".repeat(20_000)}), "E011004"),
        (json!({"provider": "google", "accessToken": "x"}), "E011002"),
        (json!({"loginId": "v", "provider": "google", "accessToken": 42}), "E011001"),
    ];
    for (body, code) in cases {
        let r = app.api.put_token(body.clone()).await;
        r.assert_error(400, code);
    }
    app.api.get_token("v", "google", false).await.assert_error(404, "E112103");
    app.api
        .get("/v1/mgmt/user/provider/token?loginId=v&provider=google&withRefreshToken=maybe")
        .await
        .assert_error(400, "E011001");
    app.api.get("/v1/mgmt/user/provider/token?loginId=v").await.assert_error(400, "E011002");
}
