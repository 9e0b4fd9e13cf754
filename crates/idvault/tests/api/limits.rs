//! Limits, walked over the whole route table: oversized bodies, 1 MB strings in every text field,
//! 10,000-item lists, deep and wide JSON, huge `limit`/`page`, invalid UTF-8, control and bidi
//! characters. Every such request gets a Descope-style 4xx (never a 5xx, never a dropped
//! connection; only a request head over the HTTP layer's bound gets hyper's bare 431), emoji and
//! bidi text round-trip exactly, and the server's peak resident memory over the whole run stays
//! bounded (`VmHWM`, read from /proc at the end).
//!
//! The requests start from the isolation test's per-operation map ([`isolation::requests`]),
//! built from the ids of the project's own objects, so that each request is valid but for the one
//! value this test breaks.

use std::io::{Read, Write};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::isolation::{self, call, management_operations, Answer, Ids, Req};

/// A string of `n` bytes.
fn long(n: usize) -> String {
    "x".repeat(n)
}

/// The paths (object keys and array indexes) of every string in a JSON value.
fn string_leaves(v: &Value, at: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::String(_) => out.push(at.clone()),
        Value::Object(m) => {
            for (k, v) in m {
                at.push(json!(k));
                string_leaves(v, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                at.push(json!(i));
                string_leaves(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// The paths of every array in a JSON value.
fn array_leaves(v: &Value, at: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Array(a) => {
            out.push(at.clone());
            for (i, v) in a.iter().enumerate() {
                at.push(json!(i));
                array_leaves(v, at, out);
                at.pop();
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                at.push(json!(k));
                array_leaves(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn replaced(v: &Value, path: &[Value], with: Value) -> Value {
    let mut v = v.clone();
    let mut cur = &mut v;
    for step in path {
        cur = match step {
            Value::String(k) => &mut cur[k.as_str()],
            Value::Number(i) => &mut cur[i.as_u64().unwrap() as usize],
            _ => unreachable!(),
        };
    }
    *cur = with;
    v
}

/// What the run measured, for the report.
#[derive(Default)]
struct Tally {
    sent: usize,
}

impl Tally {
    /// A bad request's answer: a 4xx with a Descope error body.
    fn refused(&mut self, what: &str, a: &Answer) {
        self.sent += 1;
        assert!(
            (400..500).contains(&a.status),
            "{what}: expected a 4xx, got {} {}",
            a.status,
            short(&a.text)
        );
        descope_error(what, a);
    }

    /// A bad request's answer where a batch may instead answer 200 with the item refused in its
    /// list of failures (Descope's batch shape).
    fn refused_or_batch_failure(&mut self, what: &str, a: &Answer) {
        if a.status == 200 {
            let v = a.json();
            let failures = v["failures"].as_array().or(v["failedUsers"].as_array());
            assert!(
                failures.is_some_and(|f| !f.is_empty()),
                "{what}: expected a 4xx or a failure, got {}",
                short(&a.text)
            );
            assert!(a.text.len() < 8192, "{what}: an answer of {} bytes (echoing the input?)", a.text.len());
            self.sent += 1;
        } else {
            self.refused(what, a);
        }
    }

    /// An answer that may accept or refuse, but never fails: below 500, and a Descope error body
    /// when it refuses.
    fn not_failed(&mut self, what: &str, a: &Answer) {
        self.sent += 1;
        assert!(a.status < 500, "{what}: {} {}", a.status, short(&a.text));
        if a.status >= 400 {
            descope_error(what, a);
        }
    }
}

fn descope_error(what: &str, a: &Answer) {
    let v: Value = serde_json::from_str(&a.text)
        .unwrap_or_else(|_| panic!("{what}: a {} without a JSON body: {}", a.status, short(&a.text)));
    for field in ["errorCode", "errorDescription", "errorMessage"] {
        assert!(v[field].as_str().is_some_and(|s| !s.is_empty()), "{what}: no {field}: {v}");
    }
    let message = v["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.len() <= idvault_core::limits::MAX_ERROR_MESSAGE_LEN,
        "{what}: an error message of {} bytes",
        message.len()
    );
}

fn short(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Whether `v` holds an object (at any depth) for which `pred` holds.
fn any_object(v: &Value, pred: &dyn Fn(&Value) -> bool) -> bool {
    match v {
        Value::Object(m) => pred(v) || m.values().any(|v| any_object(v, pred)),
        Value::Array(a) => a.iter().any(|v| any_object(v, pred)),
        _ => false,
    }
}

/// The peak resident set size of a process, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends raw bytes as the body of a request.
///
/// A body over the limit is refused from its `Content-Length`, before it is read, and the server
/// then closes the connection (it cannot carry another request). A client still writing the body
/// can meet that close (a reset) before it reads the 413, which happened once in a few hundred
/// oversized requests on a loaded machine: such a send is tried again, a few times at most.
async fn raw(api: &Api, method: Method, path: &str, bytes: Vec<u8>) -> Answer {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let sent = api
            .http
            .request(method.clone(), format!("{}{path}", api.base_url))
            .header("Authorization", &api.auth)
            .header("Content-Type", "application/json")
            .body(bytes.clone())
            .send()
            .await;
        match sent {
            Ok(resp) => return Answer { status: resp.status().as_u16(), text: resp.text().await.unwrap() },
            Err(e) if attempts < 5 && bytes.len() > idvault_core::limits::MAX_BODY_BYTES => {
                eprintln!("{path}: {e}; sending again");
            }
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

/// Sends a request line as given (bytes that no HTTP client would send) and answers the status.
fn raw_request_line(base_url: &str, target: &[u8]) -> u16 {
    let addr = base_url.strip_prefix("http://").unwrap();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: idvault\r\nConnection: close\r\n\r\n");
    conn.write_all(&req).unwrap();
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"))
}

const BATCH_UPLOADS: &[&str] = &["batch_upload_user_tokens", "batch_upload_tenant_tokens"];

/// The emoji and bidi text every free-text field must keep exactly (a flag, a ZWJ family, a
/// skin tone, a character outside the BMP, a right-to-left override and its pop).
const FANCY: &str = "🇫🇷 👩‍👩‍👧 👍🏽 𝄞 \u{202E}abc\u{202C} ünï";

#[tokio::test]
async fn oversized_deep_wide_and_malformed_input_is_a_descope_4xx_and_memory_stays_bounded() {
    let app = TestApp::spawn();
    let api = &app.api;
    let pid = app.server.child.id();
    api.create_user(json!({"loginId": isolation::A_LOGIN})).await;
    let ids: Ids = isolation::seed(api).await;
    let ops = management_operations(&app.server.base_url).await;
    let mut t = Tally::default();

    // 1. Bodies over the limit, on every route that reads one: 413 E011413. The two batch
    //    uploads accept more, up to their own limit.
    let pad = |n: usize| {
        let mut body = b"{\"pad\":\"".to_vec();
        body.resize(n - 2, b'x');
        body.extend_from_slice(b"\"}");
        body
    };
    // (A route that takes no body never reads one: what is sent costs the server nothing.)
    for op in ops.iter().filter(|op| op.has_body) {
        let what = format!("{} {} with a 1 MiB + 1 body", op.method, op.path);
        let a = raw(api, op.method.clone(), &op.path, pad(idvault_core::limits::MAX_BODY_BYTES + 1)).await;
        if BATCH_UPLOADS.contains(&op.id.as_str()) {
            t.refused(&what, &a);
            assert_ne!(a.status, 413, "{what}: the batch uploads take up to 64 MiB");
            let what = format!("{} {} with a 64 MiB + 1 body", op.method, op.path);
            let a =
                raw(api, op.method.clone(), &op.path, pad(idvault_core::limits::MAX_BATCH_BODY_BYTES + 1))
                    .await;
            t.refused(&what, &a);
            assert_eq!(a.status, 413, "{what}: {}", a.text);
        } else {
            t.refused(&what, &a);
            assert_eq!(a.status, 413, "{what}: {}", a.text);
        }
    }

    // 2. 1 MB in every string of every request body, and 10,000 items in every list: a 4xx for
    //    the string; the list never fails (some lists may hold that many, and a refusal is a 4xx).
    //    Control characters in every string: never a failure.
    let huge = long(1_000_000);
    for op in &ops {
        let reqs: Vec<Req> = isolation::requests(&op.id, &ids).unwrap().into_iter().map(|(_, r)| r).collect();
        for req in &reqs {
            let Some(base) = &req.body else { continue };
            let mut strings = Vec::new();
            string_leaves(base, &mut Vec::new(), &mut strings);
            for path in strings {
                let what = format!("{} {} with 1 MB at {path:?}", op.method, op.path);
                let body = replaced(base, &path, json!(huge));
                t.refused_or_batch_failure(
                    &what,
                    &call(api, op, &Req { body: Some(body), ..req.clone() }).await,
                );
                for bad in ["a\u{1}b", "a\u{7f}b", "line\nbreak", "a\u{85}b"] {
                    let what = format!("{} {} with {bad:?} at {path:?}", op.method, op.path);
                    let body = replaced(base, &path, json!(bad));
                    t.not_failed(&what, &call(api, op, &Req { body: Some(body), ..req.clone() }).await);
                }
            }
            let mut arrays = Vec::new();
            array_leaves(base, &mut Vec::new(), &mut arrays);
            for path in arrays {
                let what = format!("{} {} with 10,000 items at {path:?}", op.method, op.path);
                let many: Vec<String> = (0..10_000).map(|i| format!("item-{i}@example.com")).collect();
                let body = replaced(base, &path, json!(many));
                t.not_failed(&what, &call(api, op, &Req { body: Some(body), ..req.clone() }).await);
            }
        }
        // Query strings: 16 KiB in every parameter (well past every field limit, within the
        // HTTP layer's bound on a request head).
        for req in reqs.iter().filter(|r| !r.query.is_empty()) {
            for i in 0..req.query.len() {
                let mut q = req.query.clone();
                q[i].1 = long(16 * 1024);
                let what = format!("{} {} with 16 KiB in {}", op.method, op.path, q[i].0);
                t.refused(&what, &call(api, op, &Req { query: q, ..req.clone() }).await);
            }
        }
    }

    // 3. 10,000 login ids or user ids where a list of them is taken: refused with a 400.
    let ten_k: Vec<String> = (0..10_000).map(|i| format!("login-{i}@example.com")).collect();
    for (path, body) in [
        ("/v1/mgmt/users/load", json!({"userIds": ten_k})),
        ("/v1/mgmt/user/delete/batch", json!({"userIds": ten_k})),
        ("/v1/mgmt/user/history", json!(ten_k)),
        ("/v2/mgmt/user/search", json!({"loginIds": ten_k})),
        ("/v2/mgmt/user/search", json!({"userIds": ten_k})),
        ("/v1/mgmt/user/create", json!({"loginId": "many", "additionalLoginIds": ten_k})),
        (
            "/v1/mgmt/user/create/batch",
            json!({"users": ten_k.iter().map(|l| json!({"loginId": l})).collect::<Vec<_>>()}),
        ),
        (
            "/v1/mgmt/user/patch/batch",
            json!({"users": ten_k.iter().map(|l| json!({"loginId": l})).collect::<Vec<_>>()}),
        ),
    ] {
        let a = raw(api, Method::POST, path, serde_json::to_vec(&body).unwrap()).await;
        let method_ok = if path.contains("patch") { Method::PATCH } else { Method::POST };
        let a = if a.status == 405 {
            raw(api, method_ok, path, serde_json::to_vec(&body).unwrap()).await
        } else {
            a
        };
        t.refused(&format!("{path} with 10,000 login ids"), &a);
        assert_eq!(a.status, 400, "{path}: {}", a.text);
    }
    // Nothing of those was created.
    let r = api.post("/v2/mgmt/user/search", json!({"loginIds": ["login-0@example.com", "many"]})).await;
    assert_eq!(r.body["total"], 0, "{}", r.body);

    // 4. Huge `limit` and `page`.
    for (body, expect_400) in [
        (json!({"limit": i64::MAX}), true),
        (json!({"limit": 1u64 << 32}), true),
        (json!({"limit": u64::MAX}), true),
        (json!({"limit": 1e300}), true),
        (json!({"page": i64::MAX, "limit": 1000}), false),
        (json!({"page": i64::MAX}), false),
        (json!({"page": u64::MAX}), true),
        (json!({"page": 1u64 << 31, "limit": 1000}), false),
        (json!({"page": 1e300}), true),
        (json!({"page": -9_223_372_036_854_775_807i64}), true),
    ] {
        let what = format!("search {body}");
        let a = raw(api, Method::POST, "/v2/mgmt/user/search", serde_json::to_vec(&body).unwrap()).await;
        if expect_400 {
            t.refused(&what, &a);
        } else {
            t.not_failed(&what, &a);
            if a.status == 200 {
                assert_eq!(a.json()["users"], json!([]), "{what}: a page past the end is empty");
            }
        }
    }

    // 5. Deep and wide JSON. serde_json stops at 128 levels: 100,000 nested arrays or objects
    //    are a 400, not a stack overflow.
    for (name, body) in [
        ("100,000 nested arrays", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
        ("100,000 nested objects", format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000))),
        (
            "100,000 nested arrays in a custom attribute",
            format!(
                "{{\"loginId\":\"deep\",\"customAttributes\":{{\"x\":{}{}}}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
        ),
    ] {
        for path in ["/v1/mgmt/user/create", "/v2/mgmt/user/search", "/v1/mgmt/tenant/create"] {
            let a = raw(api, Method::POST, path, body.clone().into_bytes()).await;
            if name.contains("objects") {
                // Under a field the request does not have, nesting is skipped without recursion,
                // as any unknown field: the rest of the request decides.
                t.not_failed(&format!("{path} with {name}"), &a);
            } else {
                t.refused(&format!("{path} with {name}"), &a);
                assert_eq!(a.json()["errorCode"], "E011001", "{path} {name}: {}", a.text);
            }
        }
    }
    // Nesting within the parser's limit, in the values stored as given (custom attributes of
    // users and tenants): stored or refused, never a failure, and the server still answers.
    let nested = |depth: usize| -> Value {
        serde_json::from_str(&format!("{}1{}", "[".repeat(depth), "]".repeat(depth))).unwrap()
    };
    for (path, body) in [
        (
            "/v1/mgmt/user/create",
            json!({"loginId": "nested@example.com", "customAttributes": {&ids.attribute: nested(120)}}),
        ),
        (
            "/v1/mgmt/tenant/create",
            json!({"id": "nested", "name": "Nested", "customAttributes": {"x": nested(120)}}),
        ),
        ("/v2/mgmt/user/search", json!({"customAttributes": {&ids.attribute: nested(120)}})),
        ("/v1/mgmt/tenant/search", json!({"customAttributes": {"x": nested(120)}})),
    ] {
        t.not_failed(
            &format!("{path} with 120 levels"),
            &raw(api, Method::POST, path, serde_json::to_vec(&body).unwrap()).await,
        );
    }
    // Wide: 100,000 keys (1 MiB) where maps are taken, and as unknown fields.
    let wide = |prefix: &str| -> Value {
        Value::Object((0..60_000).map(|i| (format!("{prefix}{i}"), json!(i))).collect())
    };
    for (path, body) in [
        ("/v1/mgmt/user/create", json!({"loginId": "wide@example.com", "customAttributes": wide("k")})),
        ("/v1/mgmt/tenant/create", json!({"id": "wide", "name": "Wide", "customAttributes": wide("k")})),
        ("/v2/mgmt/user/search", json!({"customAttributes": wide("k")})),
        (
            "/v2/mgmt/user/search",
            json!({"tenantRoleNames": Value::Object((0..40_000).map(|i| (format!("t{i}"), json!({"values": ["r"]}))).collect())}),
        ),
        ("/v1/mgmt/tenant/search", json!({"customAttributes": wide("k")})),
    ] {
        let a = raw(api, Method::POST, path, serde_json::to_vec(&body).unwrap()).await;
        t.refused(&format!("{path} with 60,000 keys"), &a);
    }
    let mut unknown = wide("unknown");
    unknown["loginId"] = json!("wide-unknown@example.com");
    t.not_failed(
        "create with 60,000 unknown fields",
        &raw(api, Method::POST, "/v1/mgmt/user/create", serde_json::to_vec(&unknown).unwrap()).await,
    );

    // 6. Invalid UTF-8: in a body (raw bytes, a lone surrogate escape), a 400 E011001; in a query
    //    string (percent-encoded), never a failure; raw in the request line, a 4xx.
    // (A field the request does not have is skipped unread, as serde_json does: each body
    // breaks a field of its route.)
    for (path, field) in [
        ("/v1/mgmt/user/create", "loginId"),
        ("/v1/mgmt/tenant/create", "name"),
        ("/v2/mgmt/user/search", "text"),
    ] {
        let f = field.as_bytes();
        let bodies: [Vec<u8>; 4] = [
            [b"{\"".as_slice(), f, b"\":\"\xff\xfe\"}"].concat(),
            [b"{\"".as_slice(), f, b"\":\"a\xc3\"}"].concat(),
            [b"{\"".as_slice(), f, b"\":\"\\ud800\"}"].concat(),
            [b"{\"".as_slice(), f, b"\":\"ok\",\"\xff\":1}"].concat(),
        ];
        for (n, body) in bodies.into_iter().enumerate() {
            let a = raw(api, Method::POST, path, body.clone()).await;
            if n == 3 {
                // An unknown key is skipped unread, invalid or not.
                t.not_failed(&format!("{path} with invalid UTF-8 {body:?}"), &a);
                continue;
            }
            t.refused(&format!("{path} with invalid UTF-8 {body:?}"), &a);
            assert_eq!(a.json()["errorCode"], "E011001", "{path}: {}", a.text);
        }
    }
    for op in &ops {
        let reqs = isolation::requests(&op.id, &ids).unwrap();
        for (_, req) in reqs.iter().filter(|(_, r)| !r.query.is_empty()) {
            let q: Vec<String> = req.query.iter().map(|(k, _)| format!("{k}=%FF%FEa%C3")).collect();
            let what = format!("{} {}?{}", op.method, op.path, q.join("&"));
            let resp = api
                .http
                .request(op.method.clone(), format!("{}{}?{}", api.base_url, op.path, q.join("&")))
                .header("Authorization", &api.auth)
                .send()
                .await
                .unwrap();
            let a = Answer { status: resp.status().as_u16(), text: resp.text().await.unwrap() };
            t.not_failed(&what, &a);
        }
    }
    let base = app.server.base_url.clone();
    for target in [b"/v1/mgmt/tenant?id=\xff\xfe".as_slice(), b"/v1/mgmt/\xff".as_slice()] {
        let (base, target) = (base.clone(), target.to_vec());
        let status = tokio::task::spawn_blocking(move || raw_request_line(&base, &target)).await.unwrap();
        t.sent += 1;
        assert!((400..500).contains(&status), "raw invalid UTF-8 in the request line: {status}");
    }
    // A query string far over the HTTP layer's bound on a request head: a 4xx from the HTTP
    // layer (before any route), and the connection is closed.
    // (No HTTP client library builds such a URL: sent by hand.)
    let target = format!("/v1/mgmt/tenant?id={}", long(1 << 20)).into_bytes();
    let status = tokio::task::spawn_blocking(move || raw_request_line(&base, &target)).await.unwrap();
    t.sent += 1;
    assert!((400..500).contains(&status), "1 MiB query: {status}");
    println!("a 1 MiB request line answers {status}");

    // 7. Emoji and bidi text in every free-text field are kept exactly; control characters in
    //    names and login ids are refused (E011004), as in every other text field.
    round_trips(api, &mut t).await;

    // The server still works, and its memory stayed bounded over the whole run.
    let r = api.get("/v1/mgmt/tenant/all").await;
    assert_eq!(r.status, 200);
    let peak = peak_rss_kib(pid);
    println!(
        "limits ({}): {} operations walked, {} requests sent, server peak RSS {} MiB",
        if postgres_mode() { "postgres" } else { "sqlite" },
        ops.len(),
        t.sent,
        peak / 1024
    );
    assert!(peak < 300 * 1024, "the server's peak RSS was {} MiB", peak / 1024);
}

async fn round_trips(api: &Api, t: &mut Tally) {
    let ok = |r: &Resp, what: &str| assert_eq!(r.status, 200, "{what}: {}", r.body);
    let f = FANCY;
    let login = format!("{f}@example.com");
    let r = api
        .post(
            "/v1/mgmt/user/customattribute/create",
            json!({"attributes": [{"name": format!("attr {f}"), "type": 1, "displayName": f}]}),
        )
        .await;
    ok(&r, "attribute");
    let r = api.post("/v1/mgmt/permission/create", json!({"name": f, "description": f})).await;
    ok(&r, "permission");
    let r =
        api.post("/v1/mgmt/role/create", json!({"name": f, "description": f, "permissionNames": [f]})).await;
    ok(&r, "role");
    let r = api
        .post(
            "/v1/mgmt/tenant/create",
            json!({"id": f, "name": f, "customAttributes": {f: f}, "selfProvisioningDomains": []}),
        )
        .await;
    ok(&r, "tenant");
    let r = api
        .post("/v1/mgmt/role/create", json!({"name": format!("t {f}"), "tenantId": f, "description": f}))
        .await;
    ok(&r, "tenant role");
    let user = api
        .create_user(json!({"loginId": login, "additionalLoginIds": [f], "displayName": f, "givenName": f,
            "middleName": f, "familyName": f, "picture": f, "roleNames": [f], "ssoAppIds": [f],
            "userTenants": [{"tenantId": f, "roleNames": [format!("t {f}")]}],
            "customAttributes": {format!("attr {f}"): f}}))
        .await;
    t.sent += 6;
    let loaded = api.get(&format!("/v1/mgmt/user?loginId={}", urlencode(&login))).await;
    ok(&loaded, "load by emoji login id");
    let u = &loaded.body["user"];
    assert_eq!(u["userId"], user["userId"]);
    assert_eq!(u["loginIds"], json!([login, f]));
    for field in ["name", "givenName", "middleName", "familyName", "picture"] {
        assert_eq!(u[field], f, "{field}: {u}");
    }
    assert_eq!(u["roleNames"], json!([f]));
    assert_eq!(u["ssoAppIds"], json!([f]));
    assert_eq!(u["userTenants"][0]["tenantId"], f);
    assert_eq!(u["userTenants"][0]["tenantName"], f);
    assert_eq!(u["userTenants"][0]["roleNames"], json!([format!("t {f}")]));
    assert_eq!(u["customAttributes"][format!("attr {f}")], f);
    let found = api.post("/v2/mgmt/user/search", json!({"text": f})).await;
    assert_eq!(found.body["total"], 1, "{}", found.body);
    let found =
        api.post("/v2/mgmt/user/search", json!({"loginIds": [f], "roleNames": [f], "tenantIds": [f]})).await;
    assert_eq!(found.body["total"], 1, "{}", found.body);
    let tenant = api.get(&format!("/v1/mgmt/tenant?id={}", urlencode(f))).await;
    ok(&tenant, "load tenant");
    assert_eq!(tenant.body["name"], f, "{}", tenant.body);
    assert_eq!(tenant.body["customAttributes"][f], f, "{}", tenant.body);
    let roles = api.get("/v1/mgmt/role/all").await;
    assert!(
        roles.body["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == f && r["description"] == f && r["permissionNames"] == json!([f])),
        "{}",
        roles.body
    );
    let perms = api.get("/v1/mgmt/permission/all").await;
    assert!(
        perms.body["permissions"].as_array().unwrap().iter().any(|p| p["name"] == f && p["description"] == f),
        "{}",
        perms.body
    );
    let attrs = api.get("/v1/mgmt/user/customattributes").await;
    assert!(
        any_object(&attrs.body, &|o| o["name"] == format!("attr {f}") && o["displayName"] == f),
        "{}",
        attrs.body
    );

    // A provider token and an outbound app and token with emoji in every text field. The tokens
    // are text of their own: the harness records them as secrets, and scripts/scan-secrets would
    // find them in every audit record naming the user (whose login id is `f`).
    let secret = format!("token {f}");
    let r = api
        .put_token(json!({"loginId": login, "provider": "b-idp", "providerUserId": f, "accessToken": secret,
            "refreshToken": secret, "expiration": 4102444800i64, "scopes": [f]}))
        .await;
    ok(&r, "provider token");
    let tok = api.get_token(&login, "b-idp", true).await;
    ok(&tok, "read provider token");
    assert_eq!(tok.body["accessToken"], secret.as_str(), "{}", tok.body);
    assert_eq!(tok.body["refreshToken"], secret.as_str(), "{}", tok.body);
    assert_eq!(tok.body["providerUserId"], f, "{}", tok.body);
    assert_eq!(tok.body["scopes"], json!([f]), "{}", tok.body);
    // OAuth scopes are space-free by definition.
    let scope = f.replace(' ', "");
    let r =
        api.post("/v1/mgmt/outbound/app/create", json!({"id": "fancy", "name": f, "description": f})).await;
    ok(&r, "outbound app");
    let app = api.get("/v1/mgmt/outbound/app/fancy").await;
    assert_eq!(
        (app.body["app"]["name"].clone(), app.body["app"]["description"].clone()),
        (json!(f), json!(f)),
        "{}",
        app.body
    );
    let r = api
        .post(
            "/v1/mgmt/outbound/app/user/oauthtoken/upload",
            json!({"appId": "fancy", "userId": user["userId"], "tenantId": f, "accessToken": secret, "refreshToken": secret,
                "scopes": [scope], "externalIdentifier": f, "grantedBy": f, "accessTokenType": f}),
        )
        .await;
    ok(&r, "outbound token");
    let got = api
        .post(
            "/v1/mgmt/outbound/app/user/token/latest",
            json!({"appId": "fancy", "userId": user["userId"], "tenantId": f}),
        )
        .await;
    ok(&got, "outbound token back");
    let tk = &got.body["token"];
    assert_eq!(tk["accessToken"], secret.as_str(), "{tk}");
    for field in ["externalIdentifier", "grantedBy", "accessTokenType"] {
        assert_eq!(tk[field], f, "{field}: {tk}");
    }
    assert_eq!(tk["scopes"], json!([scope]), "{tk}");
    t.sent += 14;

    // Control characters in names and login ids: refused with E011004.
    for bad in ["a\u{1}b", "a\u{1b}[31mb", "a\u{7f}", "a\u{9b}b"] {
        for (path, body) in [
            ("/v1/mgmt/user/create", json!({"loginId": bad})),
            ("/v1/mgmt/user/create", json!({"loginId": "ctl@example.com", "displayName": bad})),
            ("/v1/mgmt/tenant/create", json!({"name": bad})),
            ("/v1/mgmt/role/create", json!({"name": bad})),
            ("/v1/mgmt/permission/create", json!({"name": bad})),
            ("/v1/mgmt/outbound/app/create", json!({"name": bad})),
        ] {
            let r = api.post(path, body.clone()).await;
            t.sent += 1;
            r.assert_error(400, "E011004");
        }
    }
}
