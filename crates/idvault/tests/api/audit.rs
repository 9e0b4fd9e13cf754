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

/// The records of `action` that `audits` holds.
fn of<'a>(audits: &'a [Value], action: &str) -> Vec<&'a Value> {
    with_action(audits, action)
}

/// Waits until the trail holds at least `n` records of each `(action, n)`, and answers every
/// record of those actions.
async fn records_of(api: &Api, wanted: &[(&str, usize)]) -> Vec<Value> {
    let actions: Vec<&str> = wanted.iter().map(|(a, _)| *a).collect();
    search_until(api, json!({"actions": actions}), |a| {
        wanted.iter().all(|(action, n)| with_action(a, action).len() >= *n)
    })
    .await
}

/// Asserts that none of `secrets` appears in any of `records`.
fn holds_none(records: &[Value], secrets: &[&str]) {
    let text = serde_json::to_string(records).unwrap();
    for secret in secrets {
        assert!(!text.contains(secret), "an audit record holds a secret: {text}");
    }
}

#[tokio::test]
async fn refused_sign_ins_and_sessions_are_audited_as_login_failed() {
    use crate::oauth_server::OAuthServer;
    use crate::signin::{auth_call, exchange, setup, sign_in};
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;
    let refresh = |jwt: String| {
        let app = &app;
        async move { auth_call(app, reqwest::Method::POST, "/v1/auth/refresh", Some(&jwt), None).await }
    };

    // A sign-in, then its code used again, and a code that never was.
    let code = sign_in(&app, "lara").await.code.unwrap();
    let session = exchange(&app, &code).await;
    assert_eq!(session.status, 200, "{}", session.body);
    let lara = session.body["user"]["userId"].as_str().unwrap().to_owned();
    exchange(&app, &code).await.assert_error(400, "E113005");
    exchange(&app, "made-up-code-0123456789").await.assert_error(400, "E113005");

    // The provider answers the authorization with an error.
    oauth.mode("error_redirect").await;
    sign_in(&app, "lara").await.callback_error.unwrap().assert_error(400, "E113003");
    oauth.mode("normal").await;

    // Disabled: refused at the callback; disabled between callback and exchange: at the exchange.
    let status = |s: &'static str| {
        let app = &app;
        let lara = lara.clone();
        async move {
            let r = app.api.post("/v1/mgmt/user/update/status", json!({"userId": lara, "status": s})).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    status("disabled").await;
    sign_in(&app, "lara").await.callback_error.unwrap().assert_error(403, "E113006");
    status("enabled").await;
    let code = sign_in(&app, "lara").await.code.unwrap();
    status("disabled").await;
    exchange(&app, &code).await.assert_error(403, "E113006");
    // A refresh of a disabled user's session.
    let r0 = session.body["refreshJwt"].as_str().unwrap().to_owned();
    refresh(r0.clone()).await.assert_error(401, "E061001");
    status("enabled").await;

    // A rotated refresh JWT presented again (reuse), then the session it revoked refreshed.
    let r1 = refresh(r0.clone()).await.body["refreshJwt"].as_str().unwrap().to_owned();
    refresh(r0.clone()).await.assert_error(401, "E061001");
    refresh(r1.clone()).await.assert_error(401, "E064001");

    let audits = records_of(&app.api, &[("LoginFailed", 8), ("LoginSucceed", 1)]).await;
    let failed = of(&audits, "LoginFailed");
    let message = |f: &&Value| f["data"]["error_message"].as_str().unwrap().to_owned();
    let reasons: Vec<String> = failed.iter().map(message).collect();
    assert_eq!(failed.len(), 8, "{reasons:?}");
    for f in &failed {
        assert_eq!(f["type"], "warn", "{f}");
        assert_eq!(f["actorType"], "", "nobody authenticated: {f}");
        assert_eq!(f["remoteAddress"], "127.0.0.1");
    }
    // Newest first.
    let [revoked, reused, disabled_refresh, disabled_exchange, disabled_callback, provider_error, made_up, used] =
        failed.as_slice()
    else {
        panic!("{reasons:?}")
    };
    for f in [used, made_up] {
        assert_eq!(message(f), "invalid, expired or already used code");
        assert_eq!((f["method"].as_str(), f["userId"].as_str()), (Some("oauth"), Some("")), "{f}");
    }
    assert!(message(provider_error).contains("the provider returned an error"), "{provider_error}");
    assert_eq!(provider_error["data"]["provider"], "acme");
    assert_eq!(provider_error["method"], "oauth");
    for f in [disabled_callback, disabled_exchange] {
        assert_eq!(message(f), "sign-in refused: the user is disabled", "{f}");
        assert_eq!(f["userId"], lara.as_str());
        assert_eq!(f["externalIds"], json!(["lara@example.com"]));
    }
    assert_eq!(disabled_callback["data"]["provider"], "acme");
    assert_eq!(message(disabled_refresh), "invalid session token: the user is disabled");
    assert!(message(reused).contains("already used: the session is revoked"), "{reused}");
    assert_eq!(message(revoked), "the session was logged out");
    for f in [disabled_refresh, reused, revoked] {
        assert_eq!(f["data"]["operation"], "refresh");
        assert_eq!(f["userId"], lara.as_str());
    }
    holds_none(&audits, &[&code, &r0, &r1, session.body["sessionJwt"].as_str().unwrap()]);
}

#[tokio::test]
async fn every_logout_path_is_audited() {
    use crate::oauth_server::OAuthServer;
    use crate::signin::{auth_call, exchange, setup, sign_in};
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    setup(&app, &oauth).await;
    // Signs omar in: (user id, refresh JWT).
    async fn refresh_jwt(app: &TestApp) -> (String, String) {
        let r = exchange(app, &sign_in(app, "omar").await.code.unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        (
            r.body["user"]["userId"].as_str().unwrap().to_owned(),
            r.body["refreshJwt"].as_str().unwrap().to_owned(),
        )
    }
    let (omar, first) = refresh_jwt(&app).await;
    let r = auth_call(&app, reqwest::Method::POST, "/v1/auth/logout", Some(&first), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, second) = refresh_jwt(&app).await;
    let r = auth_call(&app, reqwest::Method::POST, "/v1/auth/logoutall", Some(&second), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.api.post("/v1/mgmt/user/logout", json!({"loginId": "omar@example.com"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.api.post("/v1/mgmt/user/logout", json!({"userId": omar})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Logging out an ended session again is refused, and is no refusal worth a record.
    auth_call(&app, reqwest::Method::POST, "/v1/auth/logout", Some(&first), None)
        .await
        .assert_error(401, "E064001");

    let audits = records_of(&app.api, &[("UserLoggedOut", 4)]).await;
    let outs = of(&audits, "UserLoggedOut");
    let seen: Vec<(&str, &str)> = outs
        .iter()
        .map(|o| (o["actorType"].as_str().unwrap(), o["data"]["sessions"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [("managementKey", "all"), ("managementKey", "all"), ("user", "all"), ("user", "current")],
        "newest first"
    );
    for o in &outs {
        assert_eq!(o["userId"], omar.as_str());
        assert_eq!(o["externalIds"], json!(["omar@example.com"]));
    }
    assert_eq!(outs[3]["actorId"], omar.as_str());
    let failed = app.api.post("/v1/mgmt/audit/search", json!({"actions": ["LoginFailed"]})).await;
    assert_eq!(failed.body["total"], 0, "{}", failed.body);
    holds_none(&audits, &[&first, &second]);
}

#[tokio::test]
async fn access_key_changes_and_exchanges_are_audited_without_the_key() {
    let app = TestApp::spawn();
    seed_directory(&app.api).await;
    let project = project_of(&app);
    let exchange = |key: String| {
        let app = &app;
        let project = project.clone();
        async move {
            let api = Api::new(&app.server.base_url, &project, &key);
            api.post("/v1/auth/accesskey/exchange", json!({})).await
        }
    };
    let create = |body: Value| {
        let api = &app.api;
        async move {
            let r = api.post("/v1/mgmt/accesskey/create", body).await;
            assert_eq!(r.status, 200, "{}", r.body);
            (
                r.body["key"]["id"].as_str().unwrap().to_owned(),
                r.body["cleartext"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (id, key) = create(json!({"name": "ci", "roleNames": ["viewer"],
        "keyTenants": [{"tenantId": "t1", "roleNames": ["admin"]}], "customClaims": {"team": "claim-value-7"}}))
    .await;
    let r = app
        .api
        .post(
            "/v1/mgmt/accesskey/update",
            json!({"id": id, "name": "ci-2", "roleNames": ["viewer", "r"],
            "customClaims": {"team": "claim-value-8"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(exchange(key.clone()).await.status, 200);
    // Refused: a wrong secret for the key, a key id the project does not have, no key shape.
    let wrong = format!("{id}.{}", "A".repeat(43));
    exchange(wrong.clone()).await.assert_error(401, "E011401");
    let unknown = format!("K{}.{}", "B".repeat(27), "C".repeat(43));
    exchange(unknown.clone()).await.assert_error(401, "E011401");
    // Deactivated, then active again and rotated: the old secret is refused.
    assert_eq!(app.api.post("/v1/mgmt/accesskey/deactivate", json!({"id": id})).await.status, 200);
    exchange(key.clone()).await.assert_error(401, "E011401");
    assert_eq!(app.api.post("/v1/mgmt/accesskey/activate", json!({"id": id})).await.status, 200);
    let rotated = app.api.post("/v1/mgmt/accesskey/rotate", json!({"id": id})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_key = rotated.body["cleartext"].as_str().unwrap().to_owned();
    // Expired, and restricted to addresses the client is not at.
    let (expired, expired_key) = create(json!({"name": "old", "expireTime": 1})).await;
    exchange(expired_key.clone()).await.assert_error(401, "E011401");
    let (fenced, fenced_key) = create(json!({"name": "fenced", "permittedIps": ["10.0.0.0/8"]})).await;
    exchange(fenced_key.clone()).await.assert_error(401, "E011401");
    // And deleted, in a batch.
    let r = app.api.post("/v1/mgmt/accesskey/delete/batch", json!({"ids": [expired, fenced]})).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let audits = records_of(
        &app.api,
        &[
            ("AccessKeyCreated", 3),
            ("AccessKeyModified", 4),
            ("AccessKeyDeleted", 2),
            ("LoginSucceed", 1),
            ("LoginFailed", 5),
        ],
    )
    .await;
    let created = of(&audits, "AccessKeyCreated");
    let ci = created.iter().find(|c| c["data"]["keyId"] == id.as_str()).unwrap();
    assert_eq!(ci["actorType"], "managementKey");
    assert_eq!(ci["data"]["name"], "ci");
    assert_eq!(ci["data"]["roleNames"], json!(["viewer"]));
    assert_eq!(ci["data"]["keyTenants"], json!([{"tenantId": "t1", "roleNames": ["admin"]}]));
    assert_eq!(ci["tenants"], json!(["t1"]));
    let changes: Vec<&str> =
        of(&audits, "AccessKeyModified").iter().map(|m| m["data"]["change"].as_str().unwrap()).collect();
    assert_eq!(changes, ["rotate", "activate", "deactivate", "update"], "newest first");
    let update = of(&audits, "AccessKeyModified")[3];
    assert_eq!(update["data"]["fields"], json!(["name", "roleNames", "customClaims"]));
    assert_eq!(update["data"]["roleNames"], json!(["viewer", "r"]));
    let mut deleted: Vec<&str> =
        of(&audits, "AccessKeyDeleted").iter().map(|d| d["data"]["keyId"].as_str().unwrap()).collect();
    deleted.sort_unstable();
    let mut expected = [expired.as_str(), fenced.as_str()];
    expected.sort_unstable();
    assert_eq!(deleted, expected);

    let login = of(&audits, "LoginSucceed")[0];
    assert_eq!(
        (login["actorType"].as_str(), login["actorId"].as_str()),
        (Some("accessKey"), Some(id.as_str()))
    );
    assert_eq!(login["method"], "accessKey");
    let failed = of(&audits, "LoginFailed");
    let seen: Vec<(&str, &str)> = failed
        .iter()
        .map(|f| (f["data"]["keyId"].as_str().unwrap_or(""), f["data"]["error_message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            (fenced.as_str(), "the access key may not be used from this address"),
            (expired.as_str(), "the access key has expired"),
            (id.as_str(), "the access key is deactivated"),
            ("", "invalid access key"),
            (id.as_str(), "invalid access key"),
        ],
        "newest first"
    );
    for f in &failed {
        assert_eq!(
            (f["type"].as_str(), f["method"].as_str(), f["actorType"].as_str()),
            (Some("warn"), Some("accessKey"), Some(""))
        );
    }
    let secret = |k: &str| k.split_once('.').unwrap().1.to_owned();
    let all = search_until(&app.api, json!({}), |_| true).await;
    holds_none(
        &all,
        &[
            &secret(&key),
            &secret(&new_key),
            &secret(&wrong),
            &unknown,
            &secret(&expired_key),
            &secret(&fenced_key),
            "claim-value",
        ],
    );
}

#[tokio::test]
async fn role_permission_provider_and_outbound_app_changes_are_audited_without_secrets() {
    let app = TestApp::spawn();
    let api = &app.api;
    seed_directory(api).await;
    let ok = |path: &'static str, body: Value| async move {
        let r = api.post(path, body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    };
    ok("/v1/mgmt/permission/create", json!({"name": "write"})).await;
    ok("/v1/mgmt/permission/update", json!({"name": "write", "newName": "edit"})).await;
    ok("/v1/mgmt/role/create", json!({"name": "editor", "permissionNames": ["edit"]})).await;
    ok("/v1/mgmt/role/create", json!({"name": "t1-editor", "tenantId": "t1"})).await;
    ok("/v1/mgmt/role/update", json!({"name": "editor", "newName": "author", "permissionNames": []})).await;
    ok("/v1/mgmt/role/delete", json!({"name": "t1-editor", "tenantId": "t1"})).await;
    ok("/v1/mgmt/permission/delete", json!({"name": "edit"})).await;
    // Deleting what is not there changes nothing, and records nothing.
    let _ = api.post("/v1/mgmt/role/delete", json!({"name": "no-such-role"})).await;

    let provider = json!({"name": "acme", "clientId": "cid", "clientSecret": "provider-secret-1",
        "tokenEndpoint": "https://idp.example.com/token", "authorizationEndpoint": "https://idp.example.com/auth"});
    ok("/v1/mgmt/provider/set", provider.clone()).await;
    let mut again = provider.clone();
    again["clientSecret"] = json!("provider-secret-2");
    again["scopes"] = json!(["openid", "email"]);
    ok("/v1/mgmt/provider/set", again).await;
    ok("/v1/mgmt/provider/delete", json!({"name": "acme"})).await;

    let app_body = json!({"id": "crm", "name": "CRM", "clientId": "cid", "clientSecret": "app-secret-1",
        "tokenUrl": "https://crm.example.com/token"});
    ok("/v1/mgmt/outbound/app/create", app_body.clone()).await;
    let mut renamed = app_body.clone();
    renamed["name"] = json!("CRM 2");
    renamed["description"] = json!("the CRM");
    renamed.as_object_mut().unwrap().remove("clientSecret");
    ok("/v1/mgmt/outbound/app/update", json!({"app": renamed})).await;
    ok("/v1/mgmt/outbound/app/delete", json!({"id": "crm"})).await;

    let audits = records_of(
        api,
        &[
            ("PermissionCreated", 1),
            ("PermissionModified", 1),
            ("PermissionDeleted", 1),
            ("RoleCreated", 6),
            ("RoleModified", 1),
            ("RoleDeleted", 1),
            ("ProviderConfigCreated", 1),
            ("ProviderConfigModified", 1),
            ("ProviderConfigDeleted", 1),
            ("OutboundAppCreated", 1),
            ("OutboundAppModified", 1),
            ("OutboundAppDeleted", 1),
        ],
    )
    .await;
    let one = |action: &str| {
        let found = of(&audits, action);
        assert_eq!(found.len(), 1, "{action}: {audits:?}");
        found[0].clone()
    };
    assert_eq!(one("PermissionCreated")["data"]["name"], "write");
    assert_eq!(one("PermissionModified")["data"]["newName"], "edit");
    assert_eq!(one("PermissionDeleted")["data"]["name"], "edit");
    // seed_directory's four roles, then editor and t1-editor.
    let roles = of(&audits, "RoleCreated");
    assert_eq!(roles.len(), 6);
    assert_eq!(roles[1]["data"]["permissionNames"], json!(["edit"]));
    assert_eq!(
        (roles[0]["data"]["tenantId"].as_str(), roles[0]["tenants"].clone()),
        (Some("t1"), json!(["t1"]))
    );
    assert_eq!(roles[0]["actorType"], "managementKey");
    let modified = one("RoleModified");
    assert_eq!(
        (modified["data"]["name"].as_str(), modified["data"]["newName"].as_str()),
        (Some("editor"), Some("author"))
    );
    assert_eq!(modified["data"]["permissionNames"], json!([]));
    assert_eq!(one("RoleDeleted")["data"], json!({"name": "t1-editor", "tenantId": "t1"}));

    assert_eq!(one("ProviderConfigCreated")["data"], json!({"provider": "acme", "fields": []}));
    let provider_change = one("ProviderConfigModified");
    assert_eq!(provider_change["data"]["fields"], json!(["clientSecret", "scopes"]));
    assert_eq!(one("ProviderConfigDeleted")["data"], json!({"provider": "acme"}));
    assert_eq!(one("OutboundAppCreated")["data"]["appId"], "crm");
    assert_eq!(one("OutboundAppModified")["data"]["fields"], json!(["name", "description"]));
    assert_eq!(one("OutboundAppDeleted")["data"], json!({"appId": "crm"}));
    holds_none(&audits, &["provider-secret-1", "provider-secret-2", "app-secret-1"]);
}

#[tokio::test]
async fn user_role_and_tenant_changes_record_what_changed() {
    let app = TestApp::spawn();
    let api = &app.api;
    seed_directory(api).await;
    let user = api
        .create_user(
            json!({"loginId": "rolf@example.com", "email": "rolf@example.com", "roleNames": ["viewer"]}),
        )
        .await;
    let user_id = user["userId"].as_str().unwrap().to_owned();
    let ok = |path: &'static str, body: Value| async move {
        let r = api.post(path, body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    };
    ok(
        "/v1/mgmt/user/update/role/add",
        json!({"loginId": "rolf@example.com", "roleNames": ["admin", "viewer"]}),
    )
    .await;
    ok("/v1/mgmt/user/update/role/remove", json!({"loginId": "rolf@example.com", "roleNames": ["viewer"]}))
        .await;
    ok(
        "/v1/mgmt/user/update/role/add",
        json!({"loginId": "rolf@example.com", "tenantId": "t1", "roleNames": ["boss"]}),
    )
    .await;
    ok("/v1/mgmt/user/update/tenant/add", json!({"loginId": "rolf@example.com", "tenantId": "acme"})).await;
    ok(
        "/v1/mgmt/user/update/role/remove",
        json!({"loginId": "rolf@example.com", "tenantId": "t1", "roleNames": ["boss"]}),
    )
    .await;
    ok("/v1/mgmt/user/update/tenant/remove", json!({"loginId": "rolf@example.com", "tenantId": "t1"})).await;
    ok("/v1/mgmt/user/update/status", json!({"loginId": "rolf@example.com", "status": "disabled"})).await;
    ok(
        "/v1/mgmt/user/update/email",
        json!({"loginId": "rolf@example.com", "email": "rolf.private@example.com"}),
    )
    .await;

    let audits =
        search_until(api, json!({"userIds": [user_id], "actions": ["UserModified"]}), |a| a.len() >= 8).await;
    assert_eq!(audits.len(), 8, "{audits:?}");
    let data: Vec<&Value> = audits.iter().rev().map(|a| &a["data"]).collect();
    assert_eq!(data[0]["change"], "roles");
    assert_eq!(data[0]["fields"], json!(["roleNames"]));
    assert_eq!(
        (data[0]["rolesAdded"].clone(), data[0]["rolesRemoved"].clone()),
        (json!(["admin"]), json!([]))
    );
    assert_eq!(
        (data[1]["rolesAdded"].clone(), data[1]["rolesRemoved"].clone()),
        (json!([]), json!(["viewer"]))
    );
    // A tenant role added to a user not yet in the tenant adds the membership too.
    assert_eq!(data[2]["fields"], json!(["userTenants"]));
    assert_eq!(data[2]["tenantsAdded"], json!(["t1"]));
    assert_eq!(
        data[2]["tenantRoles"],
        json!([{"tenantId": "t1", "rolesAdded": ["boss"], "rolesRemoved": []}])
    );
    assert_eq!((data[3]["tenantsAdded"].clone(), data[3].get("tenantRoles")), (json!(["acme"]), None));
    assert_eq!(
        data[4]["tenantRoles"],
        json!([{"tenantId": "t1", "rolesAdded": [], "rolesRemoved": ["boss"]}])
    );
    assert_eq!(
        (data[5]["tenantsRemoved"].clone(), data[5]["tenantsAdded"].clone()),
        (json!(["t1"]), json!([]))
    );
    assert_eq!(audits[2]["tenants"], json!(["acme", "t1"]), "the tenant left is named too");
    assert_eq!(
        (data[6]["fields"].clone(), data[6]["status"].clone()),
        (json!(["status"]), json!("disabled"))
    );
    assert!(data[7]["fields"].as_array().unwrap().contains(&json!("email")), "{}", data[7]);
    holds_none(&audits, &["rolf.private"]);
}
