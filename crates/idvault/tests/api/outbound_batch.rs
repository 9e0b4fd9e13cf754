//! Outbound batch uploads: all or nothing, per-item failures named as the SDKs expect, a body
//! larger than the global limit, and tokens read back through the fetch calls.

use serde_json::{json, Value};

use crate::helpers::*;

const USER_BATCH: &str = "/v1/mgmt/outbound/app/user/oauthtoken/batch/upload";
const TENANT_BATCH: &str = "/v1/mgmt/outbound/app/tenant/oauthtoken/batch/upload";

async fn ok(api: &Api, path: &str, body: Value) -> Value {
    let r = api.post(path, body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

/// `n` users, created in batches of 1,000; answers their ids in creation order.
async fn users(api: &Api, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for start in (0..n).step_by(1000) {
        let users: Vec<Value> =
            (start..n.min(start + 1000)).map(|i| json!({"loginId": format!("{prefix}{i}")})).collect();
        let r = ok(api, "/v1/mgmt/user/create/batch", json!({"users": users})).await;
        let created = r["createdUsers"].as_array().unwrap();
        assert_eq!(created.len(), users.len(), "{r}");
        ids.extend(created.iter().map(|u| u["userId"].as_str().unwrap().to_owned()));
    }
    ids
}

async fn latest(api: &Api, app: &str, user: &str) -> Resp {
    api.post("/v1/mgmt/outbound/app/user/token/latest", json!({"appId": app, "userId": user})).await
}

/// A token long enough that 2,000 of them pass the global 1 MiB body limit.
fn access(i: usize, round: &str) -> String {
    format!("{round}-{i}-{}", "x".repeat(600))
}

#[tokio::test]
async fn a_user_batch_is_written_whole_or_not_at_all() {
    let app = TestApp::spawn();
    let api = &app.api;
    ok(api, "/v1/mgmt/outbound/app/create", json!({"id": "crm", "name": "CRM"})).await;
    ok(api, "/v1/mgmt/outbound/app/create", json!({"id": "keys", "name": "Keys", "appType": "apikey"})).await;
    ok(api, "/v1/mgmt/tenant/create", json!({"id": "t1", "name": "T1"})).await;
    let ids = users(api, "batch", 2000).await;

    let tokens: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({"appId": "crm", "userId": u, "accessToken": access(i, "one"), "refreshToken": format!("r{i}"),
                "accessTokenExpiry": 4_000_000_000i64, "scopes": ["read", "write"], "grantedBy": "migration"})
        })
        .collect();
    let body = json!({ "tokens": tokens });
    assert!(body.to_string().len() > 1024 * 1024, "the batch is larger than the global body limit");
    let r = ok(api, USER_BATCH, body).await;
    assert_eq!(r, json!({"failures": []}));

    for i in [0, 777, 1999] {
        let t = latest(api, "crm", &ids[i]).await;
        assert_eq!(t.status, 200, "{}", t.body);
        assert_eq!(t.body["token"]["accessToken"], access(i, "one"));
        assert_eq!(t.body["token"]["scopes"], json!(["read", "write"]));
        assert_eq!(t.body["token"]["grantedBy"], "migration");
        assert_eq!(t.body["token"]["hasRefreshToken"], true);
        assert_eq!(t.body["token"]["accessTokenExpiry"], 4_000_000_000i64);
    }
    let by_scopes = api
        .post(
            "/v1/mgmt/outbound/app/user/token",
            json!({"appId": "crm", "userId": ids[5], "scopes": ["read"], "options": {"withRefreshToken": true}}),
        )
        .await;
    assert_eq!(by_scopes.body["token"]["refreshToken"], "r5", "{}", by_scopes.body);

    // A second round with one bad item of each kind among good ones: the failures name them,
    // and not one token of the round is written.
    let mut round: Vec<Value> = ids[..100]
        .iter()
        .enumerate()
        .map(|(i, u)| json!({"appId": "crm", "userId": u, "accessToken": access(i, "two"), "scopes": ["read", "write"]}))
        .collect();
    round.extend([
        json!({"appId": "crm", "userId": "U-nobody", "accessToken": "a"}),
        json!({"appId": "ghost", "userId": ids[1], "accessToken": "a"}),
        json!({"appId": "keys", "userId": ids[2], "accessToken": "a"}),
        json!({"appId": "crm", "userId": ids[3]}),
        json!({"appId": "crm", "userId": ids[4], "accessToken": "a", "tenantId": "no-such-tenant"}),
        json!({"appId": "crm", "userId": ids[6], "accessToken": "a", "scopes": ["has space"]}),
        json!({"appId": "crm", "userId": ids[7], "accessToken": "a", "accessTokenExpiry": -1}),
    ]);
    let r = ok(api, USER_BATCH, json!({ "tokens": round })).await;
    let failures = r["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 7, "{r}");
    let code_of = |app: &str, user: &str| {
        failures
            .iter()
            .find(|f| f["appId"] == app && f["userId"] == user)
            .map(|f| {
                assert!(f["reason"].as_str().is_some_and(|s| !s.is_empty()), "{f}");
                f["errorCode"].as_str().unwrap().to_owned()
            })
            .unwrap_or_else(|| panic!("no failure for {app}/{user} in {r}"))
    };
    assert_eq!(code_of("crm", "U-nobody"), "E112102");
    assert_eq!(code_of("ghost", &ids[1]), "E152101");
    assert_eq!(code_of("keys", &ids[2]), "E011004");
    assert_eq!(code_of("crm", &ids[3]), "E011002");
    assert_eq!(code_of("crm", &ids[4]), "E011406");
    assert_eq!(code_of("crm", &ids[6]), "E011004");
    assert_eq!(code_of("crm", &ids[7]), "E011004");
    let tenant_failure = failures.iter().find(|f| f["userId"] == ids[4].as_str()).unwrap();
    assert_eq!(tenant_failure["tenantId"], "no-such-tenant");
    for i in [0, 50, 99] {
        let t = latest(api, "crm", &ids[i]).await;
        assert_eq!(
            t.body["token"]["accessToken"],
            access(i, "one"),
            "nothing of the failed round was written"
        );
    }

    // A clean second round replaces the tokens of the same scope set (same id), and two items of
    // one slot in a batch store the later one.
    let before = latest(api, "crm", &ids[0]).await.body["token"]["id"].clone();
    let r = ok(
        api,
        USER_BATCH,
        json!({"tokens": [
            {"appId": "crm", "userId": ids[0], "accessToken": "first", "scopes": ["write", "read"]},
            {"appId": "crm", "userId": ids[0], "accessToken": "second", "scopes": ["read", "write", "read"]},
            {"appId": "crm", "userId": ids[1], "accessToken": "for-t1", "tenantId": "t1", "scopes": ["read"]},
        ]}),
    )
    .await;
    assert_eq!(r, json!({"failures": []}));
    let t = latest(api, "crm", &ids[0]).await.body;
    assert_eq!(t["token"]["accessToken"], "second");
    assert_eq!(t["token"]["id"], before, "an upload of the same scope set keeps the token's id");
    let t1 = api
        .post(
            "/v1/mgmt/outbound/app/user/token/latest",
            json!({"appId": "crm", "userId": ids[1], "tenantId": "t1"}),
        )
        .await;
    assert_eq!(t1.body["token"]["accessToken"], "for-t1", "{}", t1.body);
    assert_eq!(t1.body["token"]["tenantId"], "t1");
}

#[tokio::test]
async fn tenant_batches_and_the_request_limits() {
    let app = TestApp::spawn();
    let api = &app.api;
    ok(api, "/v1/mgmt/outbound/app/create", json!({"id": "crm", "name": "CRM"})).await;
    for t in ["t1", "t2"] {
        ok(api, "/v1/mgmt/tenant/create", json!({"id": t, "name": t})).await;
    }
    let r = ok(
        api,
        TENANT_BATCH,
        json!({"tokens": [
            {"appId": "crm", "tenantId": "t1", "accessToken": "a1"},
            {"appId": "crm", "tenantId": "t2", "refreshToken": "r2", "accessToken": "a2", "scopes": ["x"]},
        ]}),
    )
    .await;
    assert_eq!(r, json!({"failures": []}));
    let t = api
        .post(
            "/v1/mgmt/outbound/app/tenant/token",
            json!({"appId": "crm", "tenantId": "t2", "scopes": ["x"]}),
        )
        .await;
    assert_eq!(t.body["token"]["accessToken"], "a2", "{}", t.body);
    assert_eq!(t.body["token"]["tenantId"], "t2");

    let r = ok(
        api,
        TENANT_BATCH,
        json!({"tokens": [
            {"appId": "crm", "tenantId": "t1", "accessToken": "changed"},
            {"appId": "crm", "tenantId": "nope", "accessToken": "a"},
            {"appId": "crm", "accessToken": "a"},
        ]}),
    )
    .await;
    let failures = r["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{r}");
    assert_eq!(failures[0]["tenantId"], "nope");
    assert_eq!(failures[0]["errorCode"], "E011406");
    assert!(failures[0].get("userId").is_none(), "tenant failures name no user: {r}");
    assert_eq!(failures[1]["errorCode"], "E011002");
    let t = api
        .post("/v1/mgmt/outbound/app/tenant/token/latest", json!({"appId": "crm", "tenantId": "t1"}))
        .await;
    assert_eq!(t.body["token"]["accessToken"], "a1");

    // More scope sets for one owner than the per-owner bound: refused whole.
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"appId": "crm", "tenantId": "t1", "accessToken": "a", "scopes": [format!("s{i}")]}))
        .collect();
    let r = ok(api, TENANT_BATCH, json!({ "tokens": many })).await;
    assert_eq!(r["failures"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["failures"][0]["tenantId"], "t1");
    let t = api
        .post(
            "/v1/mgmt/outbound/app/tenant/token",
            json!({"appId": "crm", "tenantId": "t1", "scopes": ["s0"]}),
        )
        .await;
    t.assert_error(404, "E152102");

    // Whole-request errors: no `tokens`, more than 100,000 items, a body over the batch limit
    // elsewhere, and the management key.
    api.post(TENANT_BATCH, json!({})).await.assert_error(400, "E011002");
    let too_many: Vec<Value> = (0..100_001).map(|_| json!({})).collect();
    api.post(USER_BATCH, json!({ "tokens": too_many })).await.assert_error(400, "E011004");
    let big = json!({"appId": "crm", "tenantId": "t1", "accessToken": "a".repeat(1024 * 1024 + 1)});
    api.post("/v1/mgmt/outbound/app/tenant/oauthtoken/upload", big).await.assert_error(413, "E011413");
    let anonymous = Api::new(&app.server.base_url, app.server.project_id.as_deref().unwrap(), "K-wrong");
    anonymous.post(USER_BATCH, json!({"tokens": []})).await.assert_error(401, "E011401");
    assert_eq!(ok(api, USER_BATCH, json!({"tokens": []})).await, json!({"failures": []}));
}
