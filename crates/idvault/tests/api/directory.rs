//! Tenants, roles, permissions, custom attributes, and how users follow them.

use serde_json::{json, Value};

use crate::helpers::*;

async fn ok(api: &Api, path: &str, body: Value) -> Value {
    let r = api.post(path, body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

#[tokio::test]
async fn tenants_roles_permissions_and_users_stay_consistent() {
    let app = TestApp::spawn();
    let api = &app.api;
    let created =
        ok(api, "/v1/mgmt/tenant/create", json!({"name": "Acme", "selfProvisioningDomains": ["acme.com"]}))
            .await;
    let acme = created["id"].as_str().unwrap().to_owned();
    ok(
        api,
        "/v1/mgmt/tenant/create",
        json!({"id": "globex", "name": "Globex", "customAttributes": {"tier": "gold"}}),
    )
    .await;
    api.post("/v1/mgmt/tenant/create", json!({"name": "acme"})).await.assert_error(409, "E011409");
    // A NUL character would be stored by SQLite but refused by PostgreSQL: refused on both.
    api.post("/v1/mgmt/tenant/create", json!({"name": "Nul", "customAttributes": {"k": "a\u{0}b"}}))
        .await
        .assert_error(400, "E011004");
    api.post("/v1/mgmt/tenant/create", json!({"id": "globex", "name": "Other"}))
        .await
        .assert_error(409, "E011409");
    let loaded = api.get("/v1/mgmt/tenant?id=globex").await;
    assert_eq!(loaded.body["name"], "Globex", "the tenant itself, not wrapped");
    assert_eq!(loaded.body["customAttributes"], json!({"tier": "gold"}));
    assert_eq!(api.get("/v1/mgmt/tenant/all").await.body["tenants"].as_array().unwrap().len(), 2);
    let found =
        ok(api, "/v1/mgmt/tenant/search", json!({"tenantSelfProvisioningDomains": ["acme.com"]})).await;
    assert_eq!(found["tenants"][0]["id"], acme.as_str());

    ok(api, "/v1/mgmt/permission/create", json!({"name": "read", "description": "Read"})).await;
    ok(api, "/v1/mgmt/permission/create", json!({"name": "write"})).await;
    ok(api, "/v1/mgmt/role/create", json!({"name": "editor", "permissionNames": ["read", "write"]})).await;
    ok(
        api,
        "/v1/mgmt/role/create",
        json!({"name": "auditor", "tenantId": "globex", "permissionNames": ["read"]}),
    )
    .await;
    api.post("/v1/mgmt/role/create", json!({"name": "x", "permissionNames": ["fly"]}))
        .await
        .assert_error(400, "E011004");

    let u = api
        .create_user(json!({"loginId": "member", "roleNames": ["editor"],
            "userTenants": [{"tenantId": acme, "roleNames": ["editor"]}, {"tenantId": "globex", "roleNames": ["auditor"]}]}))
        .await;
    let tenants = u["userTenants"].as_array().unwrap();
    assert_eq!(tenants[0]["tenantName"], "Acme");
    assert_eq!(tenants[0]["permissions"], json!(["read", "write"]));
    assert_eq!(tenants[1]["tenantName"], "Globex");
    assert_eq!(tenants[1]["permissions"], json!(["read"]));
    // A tenant role is not usable in another tenant, nor at project level.
    api.post("/v1/mgmt/user/create", json!({"loginId": "bad1", "roleNames": ["auditor"]}))
        .await
        .assert_error(400, "E011004");
    api.post("/v1/mgmt/user/create", json!({"loginId": "bad2", "userTenants": [{"tenantId": "nope"}]}))
        .await
        .assert_error(400, "E011004");

    // Renaming a permission and a role carries through to users; renaming a tenant shows at once.
    ok(api, "/v1/mgmt/permission/update", json!({"name": "write", "newName": "edit"})).await;
    ok(
        api,
        "/v1/mgmt/role/update",
        json!({"name": "editor", "newName": "author", "permissionNames": ["read", "edit"]}),
    )
    .await;
    ok(api, "/v1/mgmt/tenant/update", json!({"id": acme, "name": "Acme Corp"})).await;
    let u = api.get("/v1/mgmt/user?loginId=member").await.body["user"].clone();
    assert_eq!(u["roleNames"], json!(["author"]));
    assert_eq!(u["userTenants"][0]["roleNames"], json!(["author"]));
    assert_eq!(u["userTenants"][0]["tenantName"], "Acme Corp");
    assert_eq!(u["userTenants"][0]["permissions"], json!(["edit", "read"]));
    let roles = ok(api, "/v1/mgmt/role/search", json!({"roleNameLike": "AUTH"})).await;
    assert_eq!(roles["roles"].as_array().unwrap().len(), 1);
    let roles = ok(api, "/v1/mgmt/role/search", json!({"tenantIds": ["globex"]})).await;
    assert_eq!(roles["roles"][0]["name"], "auditor");

    // Deleting a role or a tenant removes it from users; deleting a permission from roles.
    ok(api, "/v1/mgmt/permission/delete", json!({"name": "edit"})).await;
    assert_eq!(
        api.get("/v1/mgmt/role/all").await.body["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "author")
            .unwrap()["permissionNames"],
        json!(["read"])
    );
    ok(api, "/v1/mgmt/role/delete", json!({"name": "author"})).await;
    ok(api, "/v1/mgmt/tenant/delete", json!({"id": "globex"})).await;
    let u = api.get("/v1/mgmt/user?loginId=member").await.body["user"].clone();
    assert_eq!(u["roleNames"], json!([]));
    assert_eq!(u["userTenants"].as_array().unwrap().len(), 1);
    assert_eq!(u["userTenants"][0]["roleNames"], json!([]));
    assert_eq!(
        api.get("/v1/mgmt/role/all").await.body["roles"],
        json!([]),
        "the tenant's roles went with it"
    );
    api.get("/v1/mgmt/tenant?id=globex").await.assert_error(404, "E011406");
}

#[tokio::test]
async fn custom_attributes_are_typed() {
    let app = TestApp::spawn();
    let api = &app.api;
    let defs = ok(
        api,
        "/v1/mgmt/user/customattribute/create",
        json!({"attributes": [
            {"name": "plan", "type": "singleselect", "displayName": "Plan", "options": ["free", "pro"]},
            {"name": "seats", "type": 2, "displayName": "Seats"},
            {"name": "beta", "type": "boolean", "displayName": "Beta"},
            {"name": "tags", "type": 5, "displayName": "Tags", "options": [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}]}
        ]}),
    )
    .await;
    assert_eq!(defs["data"].as_array().unwrap().len(), 4);
    assert_eq!(
        api.get("/v1/mgmt/user/customattributes").await.body["data"][0]["type"],
        3,
        "sorted by name: beta is boolean (3)"
    );
    let u = api.create_user(json!({"loginId": "typed", "customAttributes": {"plan": "pro", "seats": 5, "beta": true, "tags": ["a"]}})).await;
    assert_eq!(u["customAttributes"]["seats"], 5);
    for bad in [
        json!({"plan": "gold"}),
        json!({"seats": "five"}),
        json!({"beta": "yes"}),
        json!({"tags": ["z"]}),
        json!({"undefined": 1}),
    ] {
        api.post("/v1/mgmt/user/create", json!({"loginId": "bad", "customAttributes": bad}))
            .await
            .assert_error(400, "E011004");
    }
    api.post(
        "/v1/mgmt/user/update/customAttribute",
        json!({"loginId": "typed", "attributeKey": "seats", "attributeValue": "x"}),
    )
    .await
    .assert_error(400, "E011004");
    let r = ok(
        api,
        "/v1/mgmt/user/update/customAttribute",
        json!({"loginId": "typed", "attributeKey": "seats", "attributeValue": 9}),
    )
    .await;
    assert_eq!(r["user"]["customAttributes"]["seats"], 9);
    let after = ok(api, "/v1/mgmt/user/customattribute/delete", json!({"names": ["tags"]})).await;
    assert_eq!(after["data"].as_array().unwrap().len(), 3);
}
