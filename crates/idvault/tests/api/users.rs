//! User create, load, search and delete over HTTP.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn create_applies_descope_rules_and_echoes_every_field() {
    let app = TestApp::spawn();
    seed_directory(&app.api).await;
    let u = app.api.create_user(json!({"loginId": "dana@example.com"})).await;
    assert_eq!(u["email"], "dana@example.com");
    assert_eq!(u["verifiedEmail"], true);
    assert_eq!(u["status"], "invited");
    assert_eq!(u["loginIds"], json!(["dana@example.com"]));
    assert!(u["userId"].as_str().unwrap().starts_with('U'));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let created = u["createdTime"].as_i64().unwrap();
    assert!((now - created).abs() < 60, "createdTime is Unix seconds: {created}");

    // The Python SDK's create body: explicit nulls mean "not given".
    let full = app
        .api
        .create_user(json!({
            "loginId": "lee", "email": "lee@example.com", "phone": "+14155550123", "displayName": "Lee Roy",
            "givenName": "Lee", "middleName": "M", "familyName": "Roy", "roleNames": ["admin"],
            "userTenants": [{"tenantId": "t1", "roleNames": ["viewer"]}], "test": false, "picture": null,
            "customAttributes": {"plan": "pro", "seats": 3}, "additionalLoginIds": ["lee2"], "ssoAppIDs": null,
            "invite": false, "verifiedPhone": true
        }))
        .await;
    assert_eq!(full["name"], "Lee Roy");
    assert_eq!(full["givenName"], "Lee");
    assert_eq!(full["middleName"], "M");
    assert_eq!(full["familyName"], "Roy");
    assert_eq!(full["phone"], "+14155550123");
    assert_eq!(full["verifiedPhone"], true);
    assert_eq!(full["verifiedEmail"], false);
    assert_eq!(full["status"], "enabled", "a verified flag was given");
    assert_eq!(full["roleNames"], json!(["admin"]));
    assert_eq!(full["userTenants"][0]["tenantId"], "t1");
    assert_eq!(full["userTenants"][0]["roleNames"], json!(["viewer"]));
    assert_eq!(full["customAttributes"], json!({"plan": "pro", "seats": 3}));
    assert_eq!(full["loginIds"], json!(["lee", "lee2"]));
    assert_eq!(full["test"], false);
    assert_eq!(full["oauth"], json!({}));

    let plain = app.api.create_user(json!({"loginId": "plain-user"})).await;
    assert_eq!(plain["status"], "enabled");
    assert_eq!(plain["email"], "");
}

#[tokio::test]
async fn load_by_login_id_user_id_and_many() {
    let app = TestApp::spawn();
    let a = app.api.create_user(json!({"loginId": "a@example.com"})).await;
    let b = app.api.create_user(json!({"loginId": "b@example.com"})).await;
    let by_login = app.api.get("/v1/mgmt/user?loginId=a%40example.com").await;
    assert_eq!(by_login.status, 200);
    assert_eq!(by_login.body["user"], a);
    let by_id = app.api.get(&format!("/v1/mgmt/user?userId={}", a["userId"].as_str().unwrap())).await;
    assert_eq!(by_id.body["user"], a);
    // The Node SDK may put a user id in loginId.
    let id_as_login = app.api.get(&format!("/v1/mgmt/user?loginId={}", a["userId"].as_str().unwrap())).await;
    assert_eq!(id_as_login.body["user"], a);

    let many =
        app.api.post("/v1/mgmt/users/load", json!({"userIds": [b["userId"], a["userId"], "Unope"]})).await;
    assert_eq!(many.status, 200);
    assert_eq!(many.body["users"], json!([b, a]));
}

#[tokio::test]
async fn search_filters_paging_total_and_test_users() {
    let app = TestApp::spawn();
    seed_directory(&app.api).await;
    for i in 0..7 {
        app.api
            .create_user(json!({"loginId": format!("s{i}@example.com"), "userTenants": [{"tenantId": "acme", "roleNames": ["r"]}],
                "verifiedEmail": true, "displayName": format!("Searchable {i}")}))
            .await;
    }
    app.api.create_user(json!({"loginId": "other", "phone": "+14155550100", "roleNames": ["boss"]})).await;
    let t = app.api.post("/v1/mgmt/user/create/test", json!({"loginId": "tester", "test": true})).await;
    assert_eq!(t.body["user"]["test"], true);

    let mut seen = std::collections::HashSet::new();
    for (page, expect) in [(0, 3), (1, 3), (2, 1), (3, 0)] {
        let r = app
            .api
            .post(
                "/v2/mgmt/user/search",
                json!({"tenantIds": ["acme"], "roleNames": [], "limit": 3, "page": page,
                "testUsersOnly": false, "withTestUser": false}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["total"], 7);
        let users = r.body["users"].as_array().unwrap();
        assert_eq!(users.len(), expect, "page {page}");
        for u in users {
            assert!(seen.insert(u["userId"].as_str().unwrap().to_owned()));
        }
    }

    let all = app.api.post("/v2/mgmt/user/search", json!({})).await;
    assert_eq!(all.body["total"], 8, "empty body: all non-test users");
    let with_test = app.api.post("/v2/mgmt/user/search", json!({"withTestUser": true})).await;
    assert_eq!(with_test.body["total"], 9);
    let only_test = app.api.post("/v2/mgmt/user/search/test", json!({})).await;
    assert_eq!(only_test.body["total"], 1);
    assert_eq!(only_test.body["users"][0]["loginIds"], json!(["tester"]));

    let cases = [
        (json!({"loginIds": ["s1@example.com", "other"]}), 2),
        (json!({"emails": ["s2@example.com"]}), 1),
        (json!({"phones": ["+14155550100"]}), 1),
        (json!({"roleNames": ["boss"]}), 1),
        (json!({"roleNames": ["r"]}), 7),
        (json!({"statuses": ["enabled"]}), 7),
        (json!({"statuses": ["invited"]}), 1),
        (json!({"text": "searchable 4"}), 1),
        (json!({"text": "SEARCHABLE"}), 7),
        (json!({"tenantIds": ["acme"], "statuses": ["invited"]}), 0),
    ];
    for (body, expect) in cases {
        let r = app.api.post("/v2/mgmt/user/search", body.clone()).await;
        assert_eq!(r.status, 200, "{body}: {}", r.body);
        assert_eq!(r.body["total"], expect, "{body}");
        assert_eq!(r.body["users"].as_array().unwrap().len(), expect, "{body}");
    }
    let uid = app.api.create_user(json!({"loginId": "by-id"})).await["userId"].clone();
    let r = app.api.post("/v2/mgmt/user/search", json!({"userIds": [uid]})).await;
    assert_eq!(r.body["users"][0]["userId"], uid);
}

#[tokio::test]
async fn batch_create_reports_each_failure_and_creates_the_rest() {
    let app = TestApp::spawn();
    let r = app
        .api
        .post(
            "/v1/mgmt/user/create/batch",
            json!({"users": [{"loginId": "b1"}, {"loginId": "b2", "email": "b2@example.com"}], "invite": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["createdUsers"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["failedUsers"], json!([]));

    let mixed = app
        .api
        .post(
            "/v1/mgmt/user/create/batch",
            json!({"users": [{"loginId": "b3"}, {"loginId": "b1"}, {"loginId": "b4", "email": "nope"}, {"loginId": "b5", "roleNames": ["ghost"]}]}),
        )
        .await;
    assert_eq!(mixed.status, 200, "{}", mixed.body);
    let created: Vec<&Value> = mixed.body["createdUsers"].as_array().unwrap().iter().collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["loginIds"], json!(["b3"]));
    let failed = mixed.body["failedUsers"].as_array().unwrap();
    assert_eq!(failed.len(), 3, "{}", mixed.body);
    let why = |login: &str| {
        failed
            .iter()
            .find(|f| f["user"]["loginIds"][0] == login)
            .map(|f| f["failure"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert!(why("b1").contains("already exists"));
    assert!(why("b4").contains("email"));
    assert!(why("b5").contains("unknown role"));
    assert_eq!(app.api.get("/v1/mgmt/user?loginId=b3").await.status, 200);
    app.api.get("/v1/mgmt/user?loginId=b5").await.assert_error(400, "E112102");
}

#[tokio::test]
async fn delete_by_login_id_user_id_and_all_test_users() {
    let app = TestApp::spawn();
    app.api.create_user(json!({"loginId": "del1"})).await;
    let d2 = app.api.create_user(json!({"loginId": "del2"})).await;
    app.api.post("/v1/mgmt/user/create/test", json!({"loginId": "t1"})).await;
    app.api.post("/v1/mgmt/user/create/test", json!({"loginId": "t2"})).await;

    let r = app.api.post("/v1/mgmt/user/delete", json!({"loginId": "del1"})).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    app.api.get("/v1/mgmt/user?loginId=del1").await.assert_error(400, "E112102");
    let r = app.api.post("/v1/mgmt/user/delete", json!({"userId": d2["userId"]})).await;
    assert_eq!(r.status, 200);
    app.api.get("/v1/mgmt/user?loginId=del2").await.assert_error(400, "E112102");
    // Deleting again is not an error.
    assert_eq!(app.api.post("/v1/mgmt/user/delete", json!({"loginId": "del1"})).await.status, 200);

    app.api.create_user(json!({"loginId": "keeper"})).await;
    let r = app.api.send(reqwest::Method::DELETE, "/v1/mgmt/user/test/delete/all", None).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    assert_eq!(app.api.post("/v2/mgmt/user/search/test", json!({})).await.body["total"], 0);
    assert_eq!(app.api.get("/v1/mgmt/user?loginId=keeper").await.status, 200);
}
