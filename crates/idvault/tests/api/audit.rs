//! The audit trail over HTTP: what is recorded (failed key checks, user changes, token reads),
//! who the actor is, the search filters, that no secret reaches a record, that a clean shutdown
//! writes every queued record, the retention purge; and management keys created, renamed and
//! expired over the API.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::run_ok;
use crate::helpers::*;

/// Records reach the database within a batch interval (100 ms): searches poll until `done`
/// says the answer is complete, for at most 10 s.
pub(crate) async fn search_until(api: &Api, body: Value, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = api.post("/v1/mgmt/audit/search", body.clone()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let audits = r.body["audits"].as_array().cloned().unwrap_or_default();
        if done(&audits) || std::time::Instant::now() >= deadline {
            return audits;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn with_action<'a>(audits: &'a [Value], action: &str) -> Vec<&'a Value> {
    audits.iter().filter(|a| a["action"] == action).collect()
}

/// Creates a named key over the API and answers (key id, full key).
async fn create_key(api: &Api, name: &str) -> (String, String) {
    let r = api.post("/v1/mgmt/managementkey/create", json!({"name": name})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["key"]["name"], name);
    assert_eq!(r.body["key"]["status"], "active");
    let cleartext = r.body["cleartext"].as_str().unwrap().to_owned();
    (r.body["key"]["id"].as_str().unwrap().to_owned(), cleartext)
}

/// The same key with its last character changed: the right key id, a wrong secret.
fn tampered_key(key: &str) -> String {
    let last = if key.ends_with('A') { 'B' } else { 'A' };
    format!("{}{last}", &key[..key.len() - 1])
}

fn project_of(app: &TestApp) -> String {
    app.server.project_id.clone().unwrap()
}

#[tokio::test]
async fn failed_key_checks_and_user_changes_are_audited_with_the_key_as_actor() {
    let app = TestApp::spawn();
    seed_directory(&app.api).await;
    let project = project_of(&app);
    let (key_id, key) = create_key(&app.api, "ci-robot").await;
    let ci = Api::new(&app.server.base_url, &project, &key);

    let user =
        ci.create_user(json!({"loginId": "audited@example.com", "userTenants": [{"tenantId": "t1"}]})).await;
    let user_id = user["userId"].as_str().unwrap().to_owned();
    let r =
        ci.post("/v1/mgmt/user/update/name", json!({"loginId": "audited@example.com", "name": "Ada"})).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A wrong secret for a real key id, and a key id that does not exist.
    let wrong_secret = Api::new(&app.server.base_url, &project, &tampered_key(&key));
    wrong_secret.get("/v1/mgmt/user?loginId=audited@example.com").await.assert_error(401, "E011401");
    let unknown = Api::new(&app.server.base_url, &project, "idv_AAAAAAAAAAAAAAAA.not-a-key");
    unknown.get("/v1/mgmt/user?loginId=audited@example.com").await.assert_error(401, "E011401");

    let audits = search_until(&app.api, json!({}), |a| {
        with_action(a, "ManagementKeyCheckFailed").len() >= 2 && !with_action(a, "UserModified").is_empty()
    })
    .await;

    let created = with_action(&audits, "UserCreated");
    assert_eq!(created.len(), 1, "{audits:?}");
    let created = created[0];
    assert_eq!(created["projectId"], project.as_str());
    assert_eq!(created["userId"], user_id.as_str());
    assert_eq!(created["externalIds"], json!(["audited@example.com"]));
    assert_eq!(created["tenants"], json!(["t1"]));
    assert_eq!(created["actorType"], "managementKey");
    assert_eq!(created["actorId"], key_id.as_str());
    assert_eq!(created["actorName"], "ci-robot");
    assert_eq!(created["remoteAddress"], "127.0.0.1", "the TCP peer");
    let occurred: i64 = created["occurred"].as_str().unwrap().parse().unwrap();
    assert!(occurred > 1_600_000_000_000, "Unix milliseconds: {occurred}");

    let modified = with_action(&audits, "UserModified");
    assert_eq!(modified.len(), 1, "{audits:?}");
    assert_eq!(modified[0]["data"]["change"], "names");
    assert_eq!(modified[0]["actorId"], key_id.as_str());
    assert_eq!(modified[0]["data"].get("name"), None, "values of a change are not recorded");

    let failed = with_action(&audits, "ManagementKeyCheckFailed");
    assert_eq!(failed.len(), 2, "{failed:?}");
    let reasons: Vec<&str> = failed.iter().map(|f| f["data"]["reason"].as_str().unwrap()).collect();
    assert!(reasons.contains(&"wrong key") && reasons.contains(&"unknown key"), "{reasons:?}");
    for f in &failed {
        assert_eq!(f["type"], "warn");
        assert_eq!(f["actorType"], "", "nobody authenticated");
        assert_eq!(f["remoteAddress"], "127.0.0.1");
    }
    let wrong = failed.iter().find(|f| f["data"]["reason"] == "wrong key").unwrap();
    assert_eq!(wrong["data"]["keyId"], key_id.as_str(), "the key that was guessed at");

    // The key's creation names the bootstrap key as its actor.
    let key_created = with_action(&audits, "ManagementKeyCreated");
    assert!(key_created
        .iter()
        .any(|k| k["data"]["keyId"] == key_id.as_str() && k["actorName"] == "bootstrap"));

    // Filters, each as the SDKs send them.
    let only = |body: Value| {
        let api = &app.api;
        async move {
            let r = api.post("/v1/mgmt/audit/search", body).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };
    let by_user = only(json!({"userIds": [user_id]})).await;
    let actions: Vec<&str> =
        by_user["audits"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["UserModified", "UserCreated"], "newest first, this user only");
    assert_eq!(by_user["total"], 2);
    let excluded = only(json!({"userIds": [user_id], "excludedActions": ["UserModified"]})).await;
    assert_eq!(excluded["audits"].as_array().unwrap().len(), 1);
    assert_eq!(only(json!({"externalIds": ["audited@example.com"]})).await["total"], 2);
    assert_eq!(only(json!({"tenants": ["t1"], "actions": ["UserCreated"]})).await["total"], 1);
    assert_eq!(only(json!({"tenants": ["nope"]})).await["total"], 0);
    let with_untenanted = only(json!({"tenants": ["nope"], "noTenants": true})).await;
    assert!(with_untenanted["audits"].as_array().unwrap().iter().all(|a| a["tenants"] == json!([])));
    assert!(with_untenanted["total"].as_u64().unwrap() >= 2, "{with_untenanted}");
    assert_eq!(only(json!({"remoteAddresses": ["192.0.2.1"]})).await["total"], 0);
    assert_eq!(only(json!({"text": "CI-ROBOT", "actions": ["UserCreated"]})).await["total"], 1);
    assert_eq!(only(json!({"methods": ["oauth"]})).await["total"], 0);
    assert_eq!(only(json!({"to": occurred - 1, "userIds": [user_id]})).await["total"], 0);
    assert_eq!(only(json!({"from": occurred, "to": occurred, "actions": ["UserCreated"]})).await["total"], 1);
    // Paging (idvault extension): pages of one, the total over all.
    let page = only(json!({"userIds": [user_id], "limit": 1, "page": 1})).await;
    assert_eq!(page["audits"].as_array().unwrap().len(), 1);
    assert_eq!(page["audits"][0]["action"], "UserCreated");
    assert_eq!(page["total"], 2);
    app.api.post("/v1/mgmt/audit/search", json!({"limit": 1001})).await.assert_error(400, "E011004");
    app.api.post("/v1/mgmt/audit/search", json!({"from": 10, "to": 5})).await.assert_error(400, "E011004");
}

#[tokio::test]
async fn token_reads_are_audited_and_no_secret_reaches_any_record_even_when_stopped_at_once() {
    let app = TestApp::spawn();
    let project = project_of(&app);
    let (_, second_key) = create_key(&app.api, "second").await;
    app.api.create_user(json!({"loginId": "reader@example.com"})).await;
    let access = "ya29.AUDIT-ACCESS-7f3c9e";
    let refresh = "1//AUDIT-REFRESH-b8d2a1";
    assert_eq!(app.api.put_token(google_token("reader@example.com", access, refresh)).await.status, 200);
    // Failed checks that carry real secrets: a key of the project with one character changed,
    // and the second key presented for another project.
    let tampered = tampered_key(&second_key);
    Api::new(&app.server.base_url, &project, &tampered)
        .get("/v1/mgmt/managementkey/list")
        .await
        .assert_error(401, "E011401");
    Api::new(&app.server.base_url, "P2AAAAAAAAAAAAAAAAAAAAAAAAAA", &second_key)
        .get("/v1/mgmt/managementkey/list")
        .await
        .assert_error(401, "E011401");
    // A burst of reads, then an immediate clean stop: the shutdown writes what is still queued.
    const READS: usize = 40;
    for _ in 0..READS {
        let r = app.api.get_token("reader@example.com", "google", true).await;
        assert_eq!(r.body["refreshToken"], refresh);
    }
    let TestApp { server, api: _, dir } = app;
    let data = server.data_dir.clone();
    let bootstrap_key = server.management_key.clone().unwrap();
    assert!(server.stop().success());

    let export = run_ok(&data, &["audit", "export", "--project", &project]);
    let records: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let reads: Vec<&Value> = records.iter().filter(|r| r["action"] == "ProviderTokenRead").collect();
    assert_eq!(reads.len(), READS, "every read before the stop is stored");
    assert_eq!(reads[0]["data"]["provider"], "google");
    assert_eq!(reads[0]["externalIds"], json!(["reader@example.com"]));
    assert!(records.iter().any(|r| r["action"] == "ProviderTokenUploaded"));
    // The key presented for another project is that project's record, not this one's.
    assert_eq!(records.iter().filter(|r| r["action"] == "ManagementKeyCheckFailed").count(), 1);
    // Oldest first.
    let times: Vec<i64> = records.iter().map(|r| r["occurred"].as_str().unwrap().parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));

    let secret_of = |key: &str| key.split_once('.').unwrap().1.to_owned();
    for secret in [
        access.to_owned(),
        refresh.to_owned(),
        secret_of(&second_key),
        secret_of(&tampered),
        secret_of(&bootstrap_key),
    ] {
        assert!(!export.contains(&secret), "an audit record holds a secret");
    }
    drop(dir);
}

#[tokio::test]
async fn create_event_is_found_by_search_and_is_validated() {
    let app = TestApp::spawn();
    let r = app
        .api
        .post(
            "/v1/mgmt/audit/event",
            json!({"action": "pencil.created", "type": "info", "actorId": "actor-7", "tenantId": "t9", "userId": "U1", "data": {"n": 1}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({}));
    let found = search_until(&app.api, json!({"actions": ["pencil.created"]}), |a| !a.is_empty()).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["actorId"], "actor-7");
    assert_eq!(found[0]["actorType"], "external");
    assert_eq!(found[0]["tenants"], json!(["t9"]));
    assert_eq!(found[0]["userId"], "U1");
    assert_eq!(found[0]["data"]["n"], 1);

    let event = json!({"action": "a", "type": "info", "actorId": "x", "tenantId": "t"});
    for missing in ["action", "type", "actorId", "tenantId"] {
        let mut body = event.clone();
        body.as_object_mut().unwrap().remove(missing);
        app.api.post("/v1/mgmt/audit/event", body).await.assert_error(400, "E011002");
    }
    let mut bad_type = event.clone();
    bad_type["type"] = json!("fatal");
    app.api.post("/v1/mgmt/audit/event", bad_type).await.assert_error(400, "E011004");
    // Without a key: refused, and the refusal is no event of the project.
    let anonymous = Api::new(&app.server.base_url, &project_of(&app), "");
    assert_eq!(anonymous.post("/v1/mgmt/audit/event", event).await.status, 401);
}

#[tokio::test]
async fn keys_are_created_renamed_expired_and_revoked_over_the_api() {
    let app = TestApp::spawn();
    let project = project_of(&app);
    app.api.post("/v1/mgmt/managementkey/create", json!({})).await.assert_error(400, "E011002");
    app.api
        .post("/v1/mgmt/managementkey/create", json!({"name": "x", "expireTime": 1}))
        .await
        .assert_error(400, "E011004");
    let (key_id, key) = create_key(&app.api, "deploy").await;
    let deploy = Api::new(&app.server.base_url, &project, &key);
    assert_eq!(deploy.get("/v1/mgmt/managementkey/list").await.status, 200);

    let r = deploy.post("/v1/mgmt/managementkey/update", json!({"keyId": key_id, "name": "deploy-2"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["key"]["name"], "deploy-2");
    let listed = app.api.get("/v1/mgmt/managementkey/list").await;
    assert!(listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["id"] == key_id.as_str() && k["name"] == "deploy-2"));
    assert!(
        !listed.body.to_string().contains(key.split_once('.').unwrap().1),
        "a listing never shows a secret"
    );

    let r = app.api.post("/v1/mgmt/managementkey/expire", json!({"keyId": key_id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["key"]["status"], "expired");
    deploy.get("/v1/mgmt/managementkey/list").await.assert_error(401, "E011401");
    // An expired key can be given a new life (a revoked one cannot).
    let r = app.api.post("/v1/mgmt/managementkey/update", json!({"keyId": key_id, "expireTime": 0})).await;
    assert_eq!(r.body["key"]["status"], "active", "{}", r.body);
    assert_eq!(deploy.get("/v1/mgmt/managementkey/list").await.status, 200);
    assert_eq!(app.api.post("/v1/mgmt/managementkey/revoke", json!({"keyId": key_id})).await.status, 200);
    app.api
        .post("/v1/mgmt/managementkey/update", json!({"keyId": key_id, "name": "again"}))
        .await
        .assert_error(400, "E011004");
    app.api
        .post("/v1/mgmt/managementkey/update", json!({"keyId": "AAAAAAAAAAAAAAAA", "name": "n"}))
        .await
        .assert_error(400, "E011004");

    let audits =
        search_until(&app.api, json!({"actions": ["ManagementKeyUpdated", "ManagementKeyRevoked"]}), |a| {
            a.len() >= 4
        })
        .await;
    let actions: Vec<&str> = audits.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["ManagementKeyRevoked", "ManagementKeyUpdated", "ManagementKeyUpdated", "ManagementKeyUpdated"]
    );
    assert_eq!(audits[3]["actorName"], "deploy", "the rename was made by the key itself, under its old name");
}

#[tokio::test]
async fn records_past_the_retention_are_purged() {
    let app = TestApp::spawn_with(&["--audit-retention-days", "1", "--audit-purge-interval", "200ms"]);
    let project = project_of(&app);
    let old_ms = 1_000_000_000_000i64; // 2001: far past any retention
    exec_sql(
        &app.server.data_dir,
        &format!(
            "INSERT INTO audit_events (project_id, occurred_ms, action, kind, actor_type, actor_id, actor_name, \
             user_id, login_ids, tenants, remote_address, device, method, geo, data) VALUES \
             ('{project}', {old_ms}, 'Ancient', 'info', '', '', '', '', '[]', '[]', '', '', '', '', '{{}}')"
        ),
    );
    app.api.create_user(json!({"loginId": "kept@example.com"})).await;
    search_until(&app.api, json!({"actions": ["UserCreated"]}), |a| !a.is_empty()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let data = app.server.data_dir.clone();
    loop {
        let export = run_ok(&data, &["audit", "export", "--project", &project]);
        if !export.contains("Ancient") {
            assert!(export.contains("UserCreated"), "recent records stay");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the old record was never purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
