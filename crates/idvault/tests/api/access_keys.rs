//! Access keys: management (`/v1/mgmt/accesskey/*`), the exchange for a session JWT
//! (`/v1/auth/accesskey/exchange`) and what is refused, and that the cleartext is never stored.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::signin::claims;

/// `POST /v1/auth/accesskey/exchange` with `Bearer <projectId>:<key>`.
async fn exchange(app: &TestApp, key: &str, body: Value) -> Resp {
    let pid = app.server.project_id.clone().unwrap();
    let api = Api {
        http: reqwest::Client::new(),
        base_url: app.server.base_url.clone(),
        auth: format!("Bearer {pid}:{key}"),
    };
    api.post("/v1/auth/accesskey/exchange", body).await
}

/// Creates a key; answers (id, cleartext).
async fn create(app: &TestApp, body: Value) -> (String, String) {
    let r = app.api.post("/v1/mgmt/accesskey/create", body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["key"]["id"].as_str().unwrap().to_owned();
    let cleartext = r.body["cleartext"].as_str().unwrap().to_owned();
    record_secret("access key", &cleartext);
    (id, cleartext)
}

/// A reader role with the `read` permission, besides the shared directory (tenants t1 and acme,
/// roles admin, viewer, r, boss).
async fn directory(app: &TestApp) {
    seed_directory(&app.api).await;
    let r = app.api.post("/v1/mgmt/permission/create", json!({"name": "read"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r =
        app.api.post("/v1/mgmt/role/create", json!({"name": "reader", "permissionNames": ["read"]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .api
        .post(
            "/v1/mgmt/role/create",
            json!({"name": "t1-auditor", "tenantId": "t1", "permissionNames": ["read"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn manage_exchange_and_refuse_access_keys() {
    let app = TestApp::spawn();
    directory(&app).await;
    let pid = app.server.project_id.clone().unwrap();

    let r = app
        .api
        .post(
            "/v1/mgmt/accesskey/create",
            json!({"name": "ci", "expireTime": 0, "roleNames": ["reader"],
                   "keyTenants": [{"tenantId": "t1", "roleNames": ["viewer", "t1-auditor"]}],
                   "userId": null, "customClaims": {"team": "ops"}, "description": "the CI",
                   "permittedIps": null, "customAttributes": {"env": "prod"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let key = r.body["key"].clone();
    let cleartext = r.body["cleartext"].as_str().unwrap().to_owned();
    record_secret("access key", &cleartext);
    let id = key["id"].as_str().unwrap().to_owned();
    assert!(cleartext.starts_with(&format!("{id}.")), "the cleartext names its key");
    assert_eq!(key["status"], "active");
    assert_eq!(key["roleNames"], json!(["reader"]));
    assert_eq!(
        key["keyTenants"],
        json!([{"tenantId": "t1", "roleNames": ["viewer", "t1-auditor"], "tenantName": "Tenant One"}])
    );
    assert_eq!(key["customClaims"], json!({"team": "ops"}));
    assert_eq!(key["expireTime"], 0);
    assert!(key["createdTime"].as_i64().unwrap() > 0);
    assert!(!key["createdBy"].as_str().unwrap().is_empty(), "the creating management key's id");
    assert!(!r.body.to_string().contains("Hash") && key.get("secretHash").is_none());

    // Load and search never show the cleartext.
    let loaded = app.api.get(&format!("/v1/mgmt/accesskey?id={id}")).await;
    assert_eq!(loaded.status, 200, "{}", loaded.body);
    assert_eq!(loaded.body["key"], key);
    assert!(!loaded.body.to_string().contains(&cleartext[id.len() + 1..]));
    let (other, _) = create(&app, json!({"name": "other", "keyTenants": [{"tenantId": "acme"}]})).await;
    let all = app.api.post("/v1/mgmt/accesskey/search", json!({})).await;
    let ids: Vec<&str> =
        all.body["keys"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str(), other.as_str()], "oldest first");
    let t1 =
        app.api.post("/v1/mgmt/accesskey/search", json!({"tenantIds": ["t1"], "boundUserId": null})).await;
    assert_eq!(t1.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(t1.body["keys"][0]["id"], id.as_str());
    let by_attr =
        app.api.post("/v1/mgmt/accesskey/search", json!({"customAttributes": {"env": "prod"}})).await;
    assert_eq!(by_attr.body["keys"].as_array().unwrap().len(), 1);

    // The exchange: a session JWT with the key's authorization, signed by a published key. The
    // answer is Descope's: keyId, sessionJwt, expiration, and no refresh JWT.
    let r = exchange(&app, &cleartext, json!({"loginOptions": {"customClaims": {"job": "nightly"}}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut fields: Vec<&str> = r.body.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["expiration", "keyId", "sessionJwt"]);
    assert_eq!(r.body["keyId"], id.as_str());
    let jwt = r.body["sessionJwt"].as_str().unwrap();
    let c = claims(jwt);
    assert_eq!(
        (c["sub"].as_str(), c["iss"].as_str(), c["drn"].as_str()),
        (Some(id.as_str()), Some(pid.as_str()), Some("DS"))
    );
    assert_eq!(c["roles"], json!(["reader"]));
    assert_eq!(c["permissions"], json!(["read"]));
    assert_eq!(c["tenants"], json!({"t1": {"roles": ["viewer", "t1-auditor"], "permissions": ["read"]}}));
    // The key's own claims are top-level; the ones the caller asked for are under `nsec`, as
    // Descope puts a client's claims, so they cannot pass for the key's.
    assert_eq!(c["team"], "ops");
    assert_eq!(c["nsec"], json!({"job": "nightly"}));
    assert!(c.get("job").is_none());
    assert_eq!(r.body["expiration"], c["exp"]);
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    let jwks = app.api.get(&format!("/v2/keys/{pid}")).await;
    assert!(jwks.body["keys"].as_array().unwrap().iter().any(|k| k["kid"] == header["kid"]));
    // The caller's claims cannot replace the session's own or the key's: under `nsec`, any name.
    let r = exchange(
        &app,
        &cleartext,
        json!({"loginOptions": {"customClaims": {"sub": "someone", "team": "x"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = claims(r.body["sessionJwt"].as_str().unwrap());
    assert_eq!((c["sub"].as_str(), c["team"].as_str()), (Some(id.as_str()), Some("ops")));
    assert_eq!(c["nsec"], json!({"sub": "someone", "team": "x"}));
    // Without any, there is no `nsec` claim.
    let r = exchange(&app, &cleartext, json!({})).await;
    assert!(claims(r.body["sessionJwt"].as_str().unwrap()).get("nsec").is_none());

    // Update: name and the fields given; the rest stays.
    let r = app
        .api
        .post("/v1/mgmt/accesskey/update", json!({"id": id, "name": "ci-2", "description": "renamed"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["key"]["name"].as_str(), r.body["key"]["description"].as_str()),
        (Some("ci-2"), Some("renamed"))
    );
    assert_eq!(r.body["key"]["roleNames"], json!(["reader"]));
    assert_eq!(r.body["key"]["customClaims"], json!({"team": "ops"}));

    // Deactivated keys are refused until activated again.
    assert_eq!(app.api.post("/v1/mgmt/accesskey/deactivate", json!({"id": id})).await.status, 200);
    assert_eq!(app.api.get(&format!("/v1/mgmt/accesskey?id={id}")).await.body["key"]["status"], "inactive");
    exchange(&app, &cleartext, json!({})).await.assert_error(401, "E011401");
    assert_eq!(app.api.post("/v1/mgmt/accesskey/activate", json!({"id": id})).await.status, 200);
    assert_eq!(exchange(&app, &cleartext, json!({})).await.status, 200);

    // A wrong secret, another project's bearer, nothing at all.
    exchange(&app, &format!("{id}.not-the-secret"), json!({})).await.assert_error(401, "E011401");
    exchange(&app, "garbage", json!({})).await.assert_error(401, "E011401");
    let wrong_project = Api {
        http: reqwest::Client::new(),
        base_url: app.server.base_url.clone(),
        auth: format!("Bearer P2abcdefghijklmnopqrstuvwxyz1:{cleartext}"),
    };
    wrong_project.post("/v1/auth/accesskey/exchange", json!({})).await.assert_error(401, "E011401");

    // Rotation: the old cleartext stops working, the new one works.
    let r = app.api.post("/v1/mgmt/accesskey/rotate", json!({"id": id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rotated = r.body["cleartext"].as_str().unwrap().to_owned();
    record_secret("access key", &rotated);
    assert_ne!(rotated, cleartext);
    assert_eq!(r.body["key"]["name"], "ci-2");
    exchange(&app, &cleartext, json!({})).await.assert_error(401, "E011401");
    assert_eq!(exchange(&app, &rotated, json!({})).await.status, 200);

    // Expired keys are refused; so is a key whose permitted IPs leave out the client.
    let (_, expired) = create(&app, json!({"name": "old", "expireTime": 1})).await;
    exchange(&app, &expired, json!({})).await.assert_error(401, "E011401");
    let (_, elsewhere) =
        create(&app, json!({"name": "far", "permittedIps": ["10.0.0.0/8", "192.168.7.7"]})).await;
    exchange(&app, &elsewhere, json!({})).await.assert_error(401, "E011401");
    let (here_id, here) = create(&app, json!({"name": "near", "permittedIps": ["127.0.0.0/8"]})).await;
    assert_eq!(exchange(&app, &here, json!({})).await.status, 200);
    let r = app
        .api
        .post("/v1/mgmt/accesskey/update", json!({"id": here_id, "name": "near", "permittedIps": ["::1"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    exchange(&app, &here, json!({})).await.assert_error(401, "E011401");

    // Bad input is a 4xx.
    app.api
        .post("/v1/mgmt/accesskey/create", json!({"name": "x", "permittedIps": ["nope"]}))
        .await
        .assert_error(400, "E011004");
    app.api
        .post("/v1/mgmt/accesskey/create", json!({"name": "x", "roleNames": ["ghost"]}))
        .await
        .assert_error(404, "E011406");
    app.api
        .post("/v1/mgmt/accesskey/create", json!({"name": "x", "expireTime": -5}))
        .await
        .assert_error(400, "E011004");
    app.api.post("/v1/mgmt/accesskey/create", json!({"name": ""})).await.assert_error(400, "E011002");
    for reserved in ["roles", "nsec"] {
        app.api
            .post("/v1/mgmt/accesskey/create", json!({"name": "x", "customClaims": {reserved: []}}))
            .await
            .assert_error(400, "E011004");
    }
    app.api.get("/v1/mgmt/accesskey?id=Knope").await.assert_error(404, "E011406");

    // Batches are all or nothing; deleting removes the key for good.
    app.api
        .post("/v1/mgmt/accesskey/delete/batch", json!({"ids": [other, "Knope"]}))
        .await
        .assert_error(404, "E011406");
    assert_eq!(app.api.get(&format!("/v1/mgmt/accesskey?id={other}")).await.status, 200, "nothing deleted");
    assert_eq!(
        app.api.post("/v1/mgmt/accesskey/deactivate/batch", json!({"ids": [id, other]})).await.status,
        200
    );
    exchange(&app, &rotated, json!({})).await.assert_error(401, "E011401");
    assert_eq!(
        app.api.post("/v1/mgmt/accesskey/activate/batch", json!({"ids": [id, other]})).await.status,
        200
    );
    assert_eq!(app.api.post("/v1/mgmt/accesskey/delete/batch", json!({"ids": [other]})).await.status, 200);
    assert_eq!(app.api.post("/v1/mgmt/accesskey/delete", json!({"id": id})).await.status, 200);
    app.api.get(&format!("/v1/mgmt/accesskey?id={id}")).await.assert_error(404, "E011406");
    exchange(&app, &rotated, json!({})).await.assert_error(401, "E011401");
}

#[tokio::test]
async fn a_bound_key_carries_its_users_authorization() {
    let app = TestApp::spawn();
    directory(&app).await;
    let user = app
        .api
        .create_user(json!({"loginId": "robot@example.com", "roleNames": ["reader"], "userTenants": [{"tenantId": "acme", "roleNames": ["boss"]}]}))
        .await;
    let user_id = user["userId"].as_str().unwrap().to_owned();
    let (_, key) = create(&app, json!({"name": "bound", "userId": user_id, "roleNames": ["admin"]})).await;
    let r = exchange(&app, &key, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = claims(r.body["sessionJwt"].as_str().unwrap());
    assert_eq!(c["roles"], json!(["reader"]), "the user's roles, not the key's");
    assert_eq!(c["tenants"]["acme"]["roles"], json!(["boss"]));

    // A disabled user's key is refused.
    let r = app
        .api
        .post("/v1/mgmt/user/update/status", json!({"loginId": "robot@example.com", "status": "disabled"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    exchange(&app, &key, json!({})).await.assert_error(401, "E011401");
    // An unknown user cannot be bound.
    app.api
        .post("/v1/mgmt/accesskey/create", json!({"name": "x", "userId": "U2nobodyatall"}))
        .await
        .assert_error(400, "E112102");
}

/// Only the digest of a key is stored: neither its cleartext nor its secret part is anywhere in
/// the data directory (the SQLite file and its WAL) or, on PostgreSQL, in a dump of the database,
/// while the key id is (so that the search could find it).
#[tokio::test]
async fn an_access_key_is_stored_only_as_a_digest() {
    let app = TestApp::spawn();
    let (id, cleartext) = create(&app, json!({"name": "stored"})).await;
    assert_eq!(exchange(&app, &cleartext, json!({})).await.status, 200);
    let r = app.api.post("/v1/mgmt/accesskey/rotate", json!({"id": id})).await;
    let rotated = r.body["cleartext"].as_str().unwrap().to_owned();
    record_secret("access key", &rotated);
    let data = &app.server.data_dir;
    assert!(storage_contains(data, &id), "the key id is stored, so the search can find what it looks for");
    for secret in [&cleartext, &rotated] {
        assert!(!storage_contains(data, secret), "a cleartext is stored");
        assert!(!storage_contains(data, &secret[id.len() + 1..]), "a secret part is stored");
    }
}

/// Wrong access keys count against the client address's brute-force budget (10 at once by
/// default), like wrong management keys; refusals of a real key (deactivated) do not, so a
/// machine with a stale key does not lock out its address.
#[tokio::test]
async fn wrong_access_keys_spend_the_brute_force_budget_and_refused_real_ones_do_not() {
    let app = TestApp::spawn();
    let pid = app.server.project_id.clone().unwrap();
    let (id, cleartext) = create(&app, json!({"name": "guarded"})).await;
    let from = |host: u8, key: &str| Api {
        http: reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, host]))
            .build()
            .unwrap(),
        base_url: app.server.base_url.clone(),
        auth: format!("Bearer {pid}:{key}"),
    };

    let guesser = from(7, &format!("{id}.guessed-secret"));
    for _ in 0..10 {
        guesser.post("/v1/auth/accesskey/exchange", json!({})).await.assert_error(401, "E011401");
    }
    guesser.post("/v1/auth/accesskey/exchange", json!({})).await.assert_error(429, "E130429");

    assert_eq!(app.api.post("/v1/mgmt/accesskey/deactivate", json!({"id": id})).await.status, 200);
    let stale = from(8, &cleartext);
    for _ in 0..15 {
        stale.post("/v1/auth/accesskey/exchange", json!({})).await.assert_error(401, "E011401");
    }
    assert_eq!(app.api.post("/v1/mgmt/accesskey/activate", json!({"id": id})).await.status, 200);
    assert_eq!(stale.post("/v1/auth/accesskey/exchange", json!({})).await.status, 200, "not locked out");
}

/// Each key tenant is answered with the tenant's name as it is now (Descope's `tenantName`): by
/// create, load, search, update and rotate; a renamed tenant shows its new name, a deleted one an
/// empty name. Past a few tenants the names come from one listing of the project's tenants
/// instead of a read per tenant; both ways answer the same.
#[tokio::test]
async fn key_tenants_carry_the_tenant_s_current_name() {
    let app = TestApp::spawn();
    directory(&app).await;
    let named = |key: &Value| -> Vec<(String, String)> {
        key["keyTenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (t["tenantId"].as_str().unwrap().to_owned(), t["tenantName"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let pair = |id: &str, name: &str| (id.to_owned(), name.to_owned());

    let r = app
        .api
        .post(
            "/v1/mgmt/accesskey/create",
            json!({"name": "named", "keyTenants": [{"tenantId": "t1"}, {"tenantId": "acme", "roleNames": ["boss"]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    record_secret("access key", r.body["cleartext"].as_str().unwrap());
    let id = r.body["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(named(&r.body["key"]), [pair("t1", "Tenant One"), pair("acme", "Acme Inc")]);

    let r = app.api.post("/v1/mgmt/tenant/update", json!({"id": "t1", "name": "Tenant Uno"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let loaded = app.api.get(&format!("/v1/mgmt/accesskey?id={id}")).await;
    assert_eq!(named(&loaded.body["key"]), [pair("t1", "Tenant Uno"), pair("acme", "Acme Inc")]);
    let found = app.api.post("/v1/mgmt/accesskey/search", json!({"tenantIds": ["acme"]})).await;
    assert_eq!(named(&found.body["keys"][0]), [pair("t1", "Tenant Uno"), pair("acme", "Acme Inc")]);
    let r = app.api.post("/v1/mgmt/accesskey/update", json!({"id": id, "name": "named-2"})).await;
    assert_eq!(named(&r.body["key"]), [pair("t1", "Tenant Uno"), pair("acme", "Acme Inc")]);

    let r = app.api.post("/v1/mgmt/tenant/delete", json!({"id": "acme"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.api.post("/v1/mgmt/accesskey/rotate", json!({"id": id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    record_secret("access key", r.body["cleartext"].as_str().unwrap());
    assert_eq!(named(&r.body["key"]), [pair("t1", "Tenant Uno"), pair("acme", "")]);

    // A search over keys with many tenants names them all from one listing.
    let mut tenants = Vec::new();
    for i in 0..20 {
        let tid = format!("many-{i:02}");
        let r =
            app.api.post("/v1/mgmt/tenant/create", json!({"id": tid, "name": format!("Many {i:02}")})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        tenants.push(json!({"tenantId": tid}));
    }
    let (many_id, _) = create(&app, json!({"name": "many", "keyTenants": tenants})).await;
    let found = app.api.post("/v1/mgmt/accesskey/search", json!({})).await;
    let keys = found.body["keys"].as_array().unwrap();
    assert_eq!(named(&keys[0]), [pair("t1", "Tenant Uno"), pair("acme", "")]);
    let many = keys.iter().find(|k| k["id"] == many_id.as_str()).unwrap();
    let expected: Vec<(String, String)> =
        (0..20).map(|i| pair(&format!("many-{i:02}"), &format!("Many {i:02}"))).collect();
    assert_eq!(named(many), expected);
}
