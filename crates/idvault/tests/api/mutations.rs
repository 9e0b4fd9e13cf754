//! Changing users: patch, replace, single fields, roles, tenants, SSO apps; and no lost updates.

use serde_json::{json, Value};

use crate::helpers::*;

async fn ok(api: &Api, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = api.send(method, path, Some(body)).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body["user"].clone()
}

#[tokio::test]
async fn every_single_field_update() {
    let app = TestApp::spawn();
    let api = &app.api;
    seed_directory(api).await;
    api.create_user(json!({"loginId": "pat@example.com"})).await;
    let post = reqwest::Method::POST;

    let u = ok(api, reqwest::Method::PATCH, "/v1/mgmt/user/patch", json!({"loginId": "pat@example.com", "phone": "+12025550100", "middleName": "Q", "roleNames": ["admin"]})).await;
    assert_eq!(
        (u["phone"].as_str(), u["verifiedPhone"].as_bool(), u["middleName"].as_str()),
        (Some("+12025550100"), Some(true), Some("Q"))
    );
    assert_eq!(u["roleNames"], json!(["admin"]));
    assert_eq!(u["email"], "pat@example.com", "untouched by the patch");
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/status",
        json!({"loginId": "pat@example.com", "status": "disabled"}),
    )
    .await;
    assert_eq!(u["status"], "disabled");
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/email",
        json!({"loginId": "pat@example.com", "email": "p2@example.com", "verified": true}),
    )
    .await;
    assert_eq!((u["email"].as_str(), u["verifiedEmail"].as_bool()), (Some("p2@example.com"), Some(true)));
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/phone",
        json!({"loginId": "pat@example.com", "phone": "+12025550199"}),
    )
    .await;
    assert_eq!((u["phone"].as_str(), u["verifiedPhone"].as_bool()), (Some("+12025550199"), Some(false)));
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/name",
        json!({"loginId": "pat@example.com", "displayName": "Pat", "givenName": "P", "familyName": "T"}),
    )
    .await;
    assert_eq!(
        (u["name"].as_str(), u["givenName"].as_str(), u["familyName"].as_str()),
        (Some("Pat"), Some("P"), Some("T"))
    );
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/picture",
        json!({"loginId": "pat@example.com", "picture": "https://img.example/p.png"}),
    )
    .await;
    assert_eq!(u["picture"], "https://img.example/p.png");
    let u = ok(
        api,
        post.clone(),
        "/v2/mgmt/user/update/role/add",
        json!({"loginId": "pat@example.com", "roleNames": ["viewer", "admin"]}),
    )
    .await;
    assert_eq!(u["roleNames"], json!(["admin", "viewer"]));
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/role/remove",
        json!({"loginId": "pat@example.com", "roleNames": ["admin"]}),
    )
    .await;
    assert_eq!(u["roleNames"], json!(["viewer"]));
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/tenant/add",
        json!({"loginId": "pat@example.com", "tenantId": "acme"}),
    )
    .await;
    assert_eq!(u["userTenants"][0]["tenantName"], "Acme Inc");
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/role/set",
        json!({"loginId": "pat@example.com", "tenantId": "acme", "roleNames": ["r", "boss"]}),
    )
    .await;
    assert_eq!(u["userTenants"][0]["roleNames"], json!(["r", "boss"]));
    api.post("/v1/mgmt/user/update/role/set", json!({"loginId": "pat@example.com", "roleNames": ["ghost"]}))
        .await
        .assert_error(400, "E011004");
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/tenant/remove",
        json!({"loginId": "pat@example.com", "tenantId": "acme"}),
    )
    .await;
    assert_eq!(u["userTenants"], json!([]));
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/ssoapp/set",
        json!({"loginId": "pat@example.com", "ssoAppIds": ["a1", "a2"]}),
    )
    .await;
    assert_eq!(u["ssoAppIds"], json!(["a1", "a2"]));
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/ssoapp/remove",
        json!({"loginId": "pat@example.com", "ssoAppIds": ["a1"]}),
    )
    .await;
    assert_eq!(u["ssoAppIds"], json!(["a2"]));
    let u = ok(
        api,
        post.clone(),
        "/v1/mgmt/user/update/loginid",
        json!({"loginId": "pat@example.com", "newLoginId": "pat"}),
    )
    .await;
    assert_eq!(u["loginIds"], json!(["pat"]));
    api.get("/v1/mgmt/user?loginId=pat%40example.com").await.assert_error(400, "E112102");
    api.create_user(json!({"loginId": "taken"})).await;
    api.post("/v1/mgmt/user/update/loginid", json!({"loginId": "pat", "newLoginId": "taken"}))
        .await
        .assert_error(409, "E062107");
    api.post("/v1/mgmt/user/update/loginid", json!({"loginId": "pat", "newLoginId": ""}))
        .await
        .assert_error(400, "E011004");

    // Replace: what is not sent is cleared.
    let u = ok(api, post.clone(), "/v1/mgmt/user/update", json!({"loginId": "pat", "email": null, "phone": null, "displayName": "Only Name", "roleNames": [], "userTenants": [], "picture": null, "customAttributes": null, "additionalLoginIds": ["pat-2"], "ssoAppIDs": null, "test": false})).await;
    assert_eq!(
        (u["name"].as_str(), u["email"].as_str(), u["picture"].as_str()),
        (Some("Only Name"), Some(""), Some(""))
    );
    assert_eq!(u["loginIds"], json!(["pat", "pat-2"]));
    assert_eq!(u["status"], "disabled", "status is kept by a replace");
    assert_eq!(api.get("/v1/mgmt/user?loginId=pat-2").await.body["user"]["userId"], u["userId"]);
    api.post("/v1/mgmt/user/update", json!({"loginId": "ghost"})).await.assert_error(400, "E112102");
}

#[tokio::test]
async fn patch_batch_reports_each_user() {
    let app = TestApp::spawn();
    let api = &app.api;
    seed_directory(api).await;
    api.create_user(json!({"loginId": "pb1"})).await;
    api.create_user(json!({"loginId": "pb2"})).await;
    let r = api
        .send(
            reqwest::Method::PATCH,
            "/v1/mgmt/user/patch/batch",
            Some(json!({"users": [
                {"loginId": "pb1", "displayName": "One"},
                {"loginId": "pb2", "roleNames": ["ghost"]},
                {"loginId": "nobody", "displayName": "X"}
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["patchedUsers"][0]["name"], "One");
    assert_eq!(r.body["failedUsers"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn concurrent_changes_to_one_user_are_never_lost() {
    let app = TestApp::spawn();
    let api = &app.api;
    for i in 0..20 {
        let r = api.post("/v1/mgmt/role/create", json!({"name": format!("role{i}")})).await;
        assert_eq!(r.status, 200);
    }
    api.create_user(json!({"loginId": "busy"})).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let api =
            Api { http: reqwest::Client::new(), base_url: api.base_url.clone(), auth: api.auth.clone() };
        tasks.push(tokio::spawn(async move {
            api.post(
                "/v2/mgmt/user/update/role/add",
                json!({"loginId": "busy", "roleNames": [format!("role{i}")]}),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let roles =
        api.get("/v1/mgmt/user?loginId=busy").await.body["user"]["roleNames"].as_array().unwrap().len();
    assert_eq!(roles, 20, "every concurrent role add kept");
}

/// Where the two stores used to answer differently, both now answer as docs/api.md says.
#[tokio::test]
async fn search_text_covers_middle_names_and_a_null_attribute_filter_matches_nobody() {
    let app = TestApp::spawn();
    let api = &app.api;
    seed_directory(api).await;
    api.create_user(json!({"loginId": "m1", "middleName": "Qz", "customAttributes": {"plan": "null"}})).await;
    api.create_user(json!({"loginId": "m2", "customAttributes": {"plan": "pro"}})).await;
    let total = |body: Value| async move {
        let r = api.post("/v2/mgmt/user/search", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["total"].as_u64()
    };
    // Text shorter than a trigram scans the same fields as the index: names include the middle one.
    assert_eq!(total(json!({"text": "qz"})).await, Some(1));
    // A JSON null equals nothing, not the text "null".
    assert_eq!(total(json!({"customAttributes": {"plan": null}})).await, Some(0));
    assert_eq!(total(json!({"customAttributes": {"plan": [null, "pro"]}})).await, Some(1));
    assert_eq!(total(json!({"customAttributes": {"plan": "null"}})).await, Some(1));
}

#[tokio::test]
async fn full_search_filters_sort_and_time_bounds() {
    let app = TestApp::spawn();
    let api = &app.api;
    seed_directory(api).await;
    api.post("/v1/mgmt/role/create", json!({"name": "viewer2"})).await;
    let before =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    for (i, name) in ["Charlie Brown", "alice Smith", "Bob Stone"].iter().enumerate() {
        api.create_user(json!({"loginId": format!("s{i}"), "displayName": name,
            "customAttributes": {"plan": if i == 0 { "pro" } else { "free" }, "seats": i},
            "ssoAppIDs": if i == 2 { json!(["app1"]) } else { json!([]) },
            "userTenants": [{"tenantId": "acme", "roleNames": if i == 1 { json!(["admin", "viewer"]) } else { json!(["admin"]) }}]}))
            .await;
    }
    let after =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let names = |r: &Resp| {
        r.body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let search = |body: Value| async move {
        let r = api.post("/v2/mgmt/user/search", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r
    };

    assert_eq!(names(&search(json!({"customAttributes": {"plan": "pro"}})).await), vec!["Charlie Brown"]);
    assert_eq!(
        search(json!({"customAttributes": {"plan": ["pro", "free"], "seats": 2}})).await.body["total"],
        1
    );
    assert_eq!(names(&search(json!({"ssoAppIds": ["app1"]})).await), vec!["Bob Stone"]);
    assert_eq!(
        names(&search(json!({"sort": [{"field": "name", "desc": true}]})).await),
        vec!["Charlie Brown", "Bob Stone", "alice Smith"]
    );
    assert_eq!(
        names(&search(json!({"sort": [{"field": "createdTime", "desc": true}]})).await)[0],
        "Bob Stone"
    );
    assert_eq!(search(json!({"fromCreatedTime": before, "toCreatedTime": after})).await.body["total"], 3);
    assert_eq!(search(json!({"fromCreatedTime": after + 1000})).await.body["total"], 0);
    assert_eq!(search(json!({"toModifiedTime": before - 1000})).await.body["total"], 0);
    assert_eq!(
        search(json!({"tenantRoleNames": {"acme": {"values": ["admin", "viewer"], "and": true}}})).await.body
            ["total"],
        1
    );
    assert_eq!(
        search(json!({"tenantRoleNames": {"acme": {"values": ["admin", "viewer"], "and": false}}}))
            .await
            .body["total"],
        3
    );
    let viewer_id = api.get("/v1/mgmt/role/all").await.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "viewer")
        .unwrap()["id"]
        .clone();
    assert_eq!(search(json!({"tenantRoleIds": {"acme": {"values": [viewer_id]}}})).await.body["total"], 1);
    // Free text through the trigram index (3+ characters), any case, inside words.
    assert_eq!(names(&search(json!({"text": "STON"})).await), vec!["Bob Stone"]);
    assert_eq!(search(json!({"text": "mit"})).await.body["total"], 1);
    assert_eq!(search(json!({"text": "o"})).await.body["total"], 2, "short text falls back to a scan");
    assert_eq!(search(json!({"text": "s1"})).await.body["total"], 1, "login ids are searched");
    // Renames reach the index.
    api.post("/v1/mgmt/user/update/name", json!({"loginId": "s2", "displayName": "Robert Rock"})).await;
    assert_eq!(search(json!({"text": "stone"})).await.body["total"], 0);
    assert_eq!(search(json!({"text": "rock"})).await.body["total"], 1);
    // Paging edges.
    let last = search(json!({"limit": 2, "page": 1})).await;
    assert_eq!((last.body["users"].as_array().unwrap().len(), last.body["total"].as_u64()), (1, Some(3)));
    let past = search(json!({"limit": 2, "page": 5})).await;
    assert_eq!((past.body["users"].as_array().unwrap().len(), past.body["total"].as_u64()), (0, Some(3)));
}

/// failOnConflict is checked inside the write transaction: of many users concurrently given one
/// address (in any letter case, as emails compare), exactly one gets it.
#[tokio::test]
async fn concurrent_fail_on_conflict_updates_give_an_address_to_exactly_one_user() {
    let app = TestApp::spawn();
    let api = &app.api;
    for i in 0..12 {
        api.create_user(json!({"loginId": format!("racer{i}")})).await;
    }
    for (path, field, address) in [
        ("/v1/mgmt/user/update/email", "email", "Shared@Example.com"),
        ("/v1/mgmt/user/update/phone", "phone", "+12025550199"),
    ] {
        let mut tasks = Vec::new();
        for i in 0..12 {
            let value = if i % 2 == 0 { address.to_owned() } else { address.to_lowercase() };
            let body = json!({"loginId": format!("racer{i}"), field: value, "failOnConflict": true});
            let api =
                Api { http: reqwest::Client::new(), base_url: api.base_url.clone(), auth: api.auth.clone() };
            tasks.push(tokio::spawn(async move { api.post(path, body).await }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        let won = answers.iter().filter(|r| r.status == 200).count();
        assert_eq!(won, 1, "{path}: {:?}", answers.iter().map(|r| &r.body).collect::<Vec<_>>());
        for lost in answers.iter().filter(|r| r.status != 200) {
            lost.assert_error(409, "E062107");
        }
    }
}
