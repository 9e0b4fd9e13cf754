//! Logs: a request id on every answer and every line of a request, JSON lines on request, one
//! access line per request with the route template, never the query string.

use serde_json::Value;

use crate::helpers::*;

async fn get(app: &TestApp, path: &str, request_id: Option<&str>) -> (u16, String) {
    let mut req = app.api.http.get(app.server.url(path)).header("Authorization", &app.api.auth);
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let resp = req.send().await.unwrap();
    let id = resp.headers().get("x-request-id").expect("every answer has x-request-id").to_str().unwrap();
    (resp.status().as_u16(), id.to_owned())
}

#[tokio::test]
async fn json_lines_carry_the_request_id_route_and_status_and_no_query() {
    let app = TestApp::spawn_with(&["--log-format", "json"]);
    let login = "logged-person@example.com";
    app.api.create_user(serde_json::json!({"loginId": login})).await;

    // An incoming id is echoed; none, or an unacceptable one, gets a fresh one.
    let path = format!("/v1/mgmt/user?loginId={}", urlencode(login));
    let (status, id) = get(&app, &path, Some("client-req-42")).await;
    assert_eq!((status, id.as_str()), (200, "client-req-42"));
    let (_, generated) = get(&app, &path, None).await;
    let (_, another) = get(&app, &path, None).await;
    assert!(!generated.is_empty() && generated != another, "{generated} {another}");
    let (_, replaced) = get(&app, &path, Some("bad id\twith spaces")).await;
    assert!(replaced != "bad id\twith spaces" && !replaced.contains(' '), "{replaced}");
    let (_, unmatched) = get(&app, "/nowhere?code=oauth-code-77", Some("client-req-43")).await;
    assert_eq!(unmatched, "client-req-43");

    let stderr = app.server.stderr();
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let access = |id: &str| {
        lines
            .iter()
            .find(|l| l["target"] == "idvault::access" && l["span"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id}:\n{stderr}"))
            .clone()
    };
    let line = access("client-req-42");
    assert_eq!(line["span"]["route"], "/v1/mgmt/user", "{line}");
    assert_eq!(line["span"]["method"], "GET", "{line}");
    assert_eq!(line["span"]["project"].as_str(), app.server.project_id.as_deref(), "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line["latency_ms"].as_f64().is_some(), "{line}");
    assert_eq!(access(&generated)["span"]["route"], "/v1/mgmt/user");
    let line = access("client-req-43");
    assert_eq!(line["span"]["route"], "unmatched", "{line}");
    assert_eq!(line["status"], 404, "{line}");

    // Neither the query (login ids, OAuth codes) nor the key reaches the log.
    let key_secret = app.server.management_key.as_deref().unwrap().split('.').nth(1).unwrap();
    for needle in [login, &urlencode(login), "oauth-code-77", "loginId=", "/nowhere", key_secret] {
        assert!(!stderr.contains(needle), "the log shows {needle}:\n{stderr}");
    }
}

#[tokio::test]
async fn human_lines_name_the_request_too() {
    let app = TestApp::spawn();
    let (status, _) = get(&app, "/v1/mgmt/tenant/all", Some("human-req-7")).await;
    assert_eq!(status, 200);
    let stderr = app.server.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("idvault::access") && l.contains("human-req-7"))
        .unwrap_or_else(|| panic!("no access line:\n{stderr}"));
    assert!(line.contains("route=/v1/mgmt/tenant/all") && line.contains("status=200"), "{line}");
    assert!(!line.starts_with('{'), "human format by default: {line}");
}
