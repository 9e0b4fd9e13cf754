//! `idvault import --project P --users FILE.jsonl` beside a running server: imported users load,
//! search (free text included), and their provider and outbound tokens open through the API; a
//! file with any bad line writes nothing and names each bad line.

use serde_json::{json, Value};

use crate::cli::{run_err, run_ok};
use crate::helpers::*;

fn write_lines(dir: &TestDir, name: &str, lines: &[Value]) -> String {
    let path = dir.path().join(name);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

async fn setup() -> (TestApp, String) {
    let app = TestApp::spawn();
    seed_directory(&app.api).await;
    let r = app.api.post("/v1/mgmt/outbound/app/create", json!({"id": "docs", "name": "Docs"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pid = app.server.project_id.clone().unwrap();
    (app, pid)
}

#[tokio::test]
async fn imported_users_load_search_and_open_their_tokens() {
    let (app, pid) = setup().await;
    let api = &app.api;
    let lines = [
        json!({"loginId": "ada@example.com", "displayName": "Imported Ada Lovelace", "userId": "Ukeptada",
            "roleNames": ["admin"], "userTenants": [{"tenantId": "acme", "roleNames": ["viewer"]}],
            "customAttributes": {"plan": "pro", "seats": 3},
            "tokens": {
                "provider": [{"provider": "google", "accessToken": "ada-google-access", "refreshToken": "ada-google-refresh",
                              "expiration": 4_102_444_800_i64, "scopes": ["openid"], "providerUserId": "g-ada"}],
                "outbound": [{"appId": "docs", "accessToken": "ada-docs-access", "expiresIn": 3600, "scopes": ["read"]}]}}),
        json!({"loginId": "bob", "phone": "+14155550123", "givenName": "Bob"}),
        json!({"loginId": "carol@example.com", "verifiedEmail": false, "status": "disabled", "test": false}),
    ];
    let file = write_lines(&app.dir, "users.jsonl", &lines);
    // The server keeps running on the same database meanwhile.
    let out = run_ok(&app.server.data_dir, &["import", "--project", &pid, "--users", &file, "--batch", "2"]);
    assert!(out.contains("imported 3 users, 1 provider tokens, 1 outbound tokens"), "{out}");

    let ada = api.get("/v1/mgmt/user?loginId=ada%40example.com").await;
    assert_eq!(ada.status, 200, "{}", ada.body);
    let user = &ada.body["user"];
    assert_eq!(user["userId"], "Ukeptada");
    assert_eq!(user["name"], "Imported Ada Lovelace");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["roleNames"], json!(["admin"]));
    assert_eq!(user["userTenants"][0]["tenantName"], "Acme Inc");
    assert_eq!(user["customAttributes"], json!({"plan": "pro", "seats": 3}));
    let carol = api.get("/v1/mgmt/user?loginId=carol%40example.com").await;
    assert_eq!(carol.body["user"]["status"], "disabled");

    // The free-text index is filled: a substring of the display name finds the user.
    let found = api.post("/v2/mgmt/user/search", json!({"text": "ada lovel"})).await;
    assert_eq!(found.status, 200, "{}", found.body);
    let ids: Vec<&str> =
        found.body["users"].as_array().unwrap().iter().map(|u| u["userId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["Ukeptada"]);
    let in_tenant = api.post("/v2/mgmt/user/search", json!({"tenantIds": ["acme"]})).await;
    assert_eq!(in_tenant.body["users"].as_array().unwrap().len(), 1);

    let token = api.get_token("ada@example.com", "google", true).await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(token.body["accessToken"], "ada-google-access");
    assert_eq!(token.body["refreshToken"], "ada-google-refresh");
    let outbound = api
        .post("/v1/mgmt/outbound/app/user/token/latest", json!({"appId": "docs", "userId": "Ukeptada"}))
        .await;
    assert_eq!(outbound.status, 200, "{}", outbound.body);
    assert_eq!(outbound.body["token"]["accessToken"], "ada-docs-access");
    assert!(!storage_contains(&app.server.data_dir, "ada-google-access"), "tokens are sealed at rest");

    // Importing the same file again: every line's login id is taken now.
    let again = run_err(&app.server.data_dir, &["import", "--project", &pid, "--users", &file]);
    assert!(again.contains("line 1: E062107") && again.contains("nothing was written"), "{again}");
}

#[tokio::test]
async fn a_file_with_a_bad_line_writes_nothing_and_names_each_bad_line() {
    let (app, pid) = setup().await;
    let api = &app.api;
    api.create_user(json!({"loginId": "existing@example.com"})).await;
    let lines = [
        json!({"loginId": "good@example.com", "displayName": "Good"}),
        json!({"loginId": "stray", "userTenants": [{"tenantId": "nope"}]}),
        json!({"loginId": "bademail", "email": "not-an-email"}),
        json!({"loginId": "good@example.com"}),
        json!({"loginId": "existing@example.com"}),
        json!({"loginId": "noapp", "tokens": {"outbound": [{"appId": "missing", "accessToken": "x"}]}}),
    ];
    let mut file = write_lines(&app.dir, "bad.jsonl", &lines);
    // A malformed line too.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"loginId\": \n");
    std::fs::write(&file, text).unwrap();
    let err = run_err(&app.server.data_dir, &["import", "--project", &pid, "--users", &file]);
    for want in [
        "line 2: E011004",
        "unknown tenant 'nope'",
        "line 3: E011004",
        "line 4: E062107",
        "line 5: E062107",
        "line 6: ",
        "line 7: E011001",
        "nothing was written",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    assert!(!err.contains("line 1:"), "{err}");
    let good = api.get("/v1/mgmt/user?loginId=good%40example.com").await;
    assert_eq!(good.status, 400, "nothing written: {}", good.body);
    let all = api.post("/v2/mgmt/user/search", json!({})).await;
    assert_eq!(all.body["users"].as_array().unwrap().len(), 1, "only the user created through the API");

    // Without the bad lines, the file imports.
    file = write_lines(&app.dir, "good.jsonl", &lines[..1]);
    run_ok(&app.server.data_dir, &["import", "--project", &pid, "--users", &file]);
    assert_eq!(api.get("/v1/mgmt/user?loginId=good%40example.com").await.status, 200);
}

#[test]
fn import_help_describes_the_users_file_and_what_a_bad_line_writes() {
    let dir = TestDir::new();
    let help = run_ok(&dir.path().join("d"), &["import", "--help"]);
    for want in ["--users", "--in", "JSON Lines", "userId", "nothing is written"] {
        assert!(help.contains(want), "missing {want:?} in {help}");
    }
    let err = run_err(&dir.path().join("d"), &["import", "--users", "x.jsonl"]);
    assert!(err.contains("--project"), "{err}");
}
