//! The OpenAPI document: served at `/openapi.json`, equal to the committed `docs/openapi.json`,
//! and true to the router (every documented operation is routed).
//!
//! After a deliberate change of a route or a wire type, regenerate the committed document with
//! `UPDATE_OPENAPI=1 cargo test -p idvault --test api openapi` and commit it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use crate::helpers::*;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

async fn served(app: &TestApp) -> Value {
    let r = reqwest::get(app.server.url("/openapi.json")).await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    r.json().await.unwrap()
}

/// Every (method, path) the document lists.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.push((m.to_owned(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn served_document_matches_the_committed_one() {
    let app = TestApp::spawn();
    let doc = served(&app).await;

    // The document the library builds without a server is the one served.
    assert_eq!(serde_json::to_value(idvault_api::openapi()).unwrap(), doc);

    let path = committed_path();
    let committed: Option<Value> =
        std::fs::read_to_string(&path).ok().and_then(|text| serde_json::from_str(&text).ok());
    if committed.as_ref() != Some(&doc) {
        if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
            let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
            std::fs::write(&path, text).unwrap();
            eprintln!("rewrote {}", path.display());
        } else {
            let ops = |d: Option<&Value>| -> BTreeSet<(String, String)> {
                d.map(operations).unwrap_or_default().into_iter().collect()
            };
            let (now, then) = (ops(Some(&doc)), ops(committed.as_ref()));
            let schemas = |d: Option<&Value>| d.and_then(|d| d["components"]["schemas"].as_object().cloned());
            let (now_s, then_s) =
                (schemas(Some(&doc)).unwrap_or_default(), schemas(committed.as_ref()).unwrap_or_default());
            let changed: BTreeSet<&String> =
                now_s.keys().chain(then_s.keys()).filter(|k| now_s.get(*k) != then_s.get(*k)).collect();
            panic!(
                "docs/openapi.json is not the document the server serves (routes or wire types changed).\n\
                 operations added: {:?}\noperations removed: {:?}\nschemas changed: {:?}\n\
                 If the change is deliberate, regenerate it with\n  \
                 UPDATE_OPENAPI=1 cargo test -p idvault --test api openapi\nand commit docs/openapi.json.",
                now.difference(&then).collect::<Vec<_>>(),
                then.difference(&now).collect::<Vec<_>>(),
                changed,
            );
        }
    }
}

#[tokio::test]
async fn document_is_openapi_3_1_and_self_consistent() {
    let app = TestApp::spawn();
    let doc = served(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "idvault");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["management_key"]["scheme"], "bearer");
    assert_eq!(schemes["project"]["scheme"], "bearer");

    // Every reference resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "unresolved $ref {r}");
    }

    // Every operation has a declared tag, a 200 (or 302) answer and, under /mgmt/, the
    // management key.
    let tags: BTreeSet<&str> =
        doc["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let op_tags = op["tags"].as_array().unwrap_or_else(|| panic!("{method} {path}: no tags"));
        assert!(
            op_tags.iter().all(|t| tags.contains(t.as_str().unwrap())) && !op_tags.is_empty(),
            "{method} {path}: {op_tags:?}"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.contains_key("200") || responses.contains_key("302"), "{method} {path}");
        if path == "/v1/mgmt/outbound/app/connect" {
            // Descope's connect is authorised by the user's refresh JWT, under /mgmt/ all the same.
            assert_eq!(op["security"], serde_json::json!([{"project": []}]), "{method} {path}");
        } else if path.contains("/mgmt/") {
            assert_eq!(op["security"], serde_json::json!([{"management_key": []}]), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn();
    let doc = served(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() > 50, "{}", ops.len());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (method, path) in ops {
        let mut url = String::new();
        for (i, piece) in path.split('{').enumerate() {
            match piece.split_once('}') {
                Some((_, rest)) if i > 0 => {
                    url.push('x');
                    url.push_str(rest);
                }
                _ => url.push_str(piece),
            }
        }
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = http.request(m, app.server.url(&url)).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let code = body["errorCode"].as_str().unwrap_or_default();
        assert!(
            code != "E011404" && code != "E011405" && status != 405,
            "{method} {path} is documented but not routed: {status} {body}"
        );
    }
}

#[tokio::test]
async fn sdk_critical_operations_are_documented() {
    let app = TestApp::spawn();
    let doc = served(&app).await;
    let ops: BTreeSet<(String, String)> = operations(&doc).into_iter().collect();
    for (method, path) in [
        ("get", "/v1/mgmt/user/provider/token"),
        ("put", "/v1/mgmt/user/provider/token"),
        ("delete", "/v1/mgmt/user/provider/token"),
        ("get", "/v1/mgmt/user"),
        ("post", "/v2/mgmt/user/search"),
        ("post", "/v1/mgmt/user/create"),
        ("post", "/v1/mgmt/user/update"),
        ("patch", "/v1/mgmt/user/patch"),
        ("post", "/v1/mgmt/user/delete"),
        ("post", "/v1/mgmt/tenant/create"),
        ("post", "/v1/mgmt/role/create"),
        ("post", "/v1/mgmt/permission/create"),
        ("get", "/v1/mgmt/license"),
        ("post", "/v1/auth/oauth/authorize"),
        ("post", "/v1/auth/oauth/exchange"),
        ("post", "/v1/auth/refresh"),
        ("get", "/v2/keys/{project_id}"),
    ] {
        assert!(ops.contains(&(method.to_owned(), path.to_owned())), "{method} {path} is not documented");
    }
    // The key read's query and answer are described.
    let get = &doc["paths"]["/v1/mgmt/user/provider/token"]["get"];
    // A parameter is a query field, or an object exploded into its fields (`loginId`/`userId`).
    let mut params = BTreeSet::new();
    for p in get["parameters"].as_array().unwrap() {
        params.insert(p["name"].as_str().unwrap());
        if p["explode"] == true {
            for part in p["schema"]["allOf"].as_array().unwrap() {
                params.extend(part["properties"].as_object().into_iter().flatten().map(|(k, _)| k.as_str()));
            }
        }
    }
    for p in ["loginId", "userId", "provider", "withRefreshToken", "forceRefresh"] {
        assert!(params.contains(p), "{p}: {params:?}");
    }
    let schema = &doc["components"]["schemas"]["TokenResponse"]["properties"];
    for f in ["provider", "providerUserId", "accessToken", "expiration", "scopes", "refreshToken"] {
        assert!(schema.get(f).is_some(), "TokenResponse.{f}");
    }
}

#[tokio::test]
async fn docs_page_is_html_that_loads_the_document() {
    let app = TestApp::spawn();
    let r = reqwest::get(app.server.url("/docs")).await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = r.text().await.unwrap();
    assert!(html.contains("openapi.json"), "{html}");
    // Neither page nor document needs auth, and other methods stay the JSON 405.
    let r = reqwest::Client::new().post(app.server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errorCode"], "E011405");
}

/// Resolves a `$ref` to the schema it names.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("unresolved {r}")),
        None => schema,
    }
}

fn has_type(schema: &Value, t: &str) -> bool {
    match &schema["type"] {
        Value::String(s) => s == t,
        Value::Array(a) => a.iter().any(|v| v == t),
        _ => false,
    }
}

/// Every string, array and integer a request may carry is bounded: strings by `maxLength` (or an
/// `enum`), arrays by `maxItems`, integers by `minimum` and `maximum`. `anyOf` items directly under
/// an `allOf` only add "which field is required" to the fields' own schemas and are skipped.
fn unbounded(doc: &Value, schema: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if has_type(schema, "string") && schema.get("maxLength").is_none() && schema.get("enum").is_none() {
        out.push(format!("{at}: string without maxLength"));
    }
    if has_type(schema, "array") && schema.get("maxItems").is_none() {
        out.push(format!("{at}: array without maxItems"));
    }
    if has_type(schema, "integer") && (schema.get("minimum").is_none() || schema.get("maximum").is_none()) {
        out.push(format!("{at}: integer without minimum and maximum"));
    }
    for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
        unbounded(doc, prop, &format!("{at}.{name}"), out);
    }
    for key in ["items", "additionalProperties", "propertyNames"] {
        if let Some(sub) = schema.get(key).filter(|s| s.is_object()) {
            unbounded(doc, sub, &format!("{at}[{key}]"), out);
        }
    }
    for (i, part) in schema["allOf"].as_array().into_iter().flatten().enumerate() {
        if part.get("anyOf").is_none() {
            unbounded(doc, part, &format!("{at}.allOf[{i}]"), out);
        }
    }
    for (i, part) in schema["anyOf"].as_array().into_iter().flatten().enumerate() {
        unbounded(doc, part, &format!("{at}.anyOf[{i}]"), out);
    }
}

/// The document states the bounds the API enforces on every request field, so that a client
/// (or a fuzzer) that follows it is not refused for a length or a count. Lengths and counts come
/// from `idvault_core::limits`, the same constants the checks use.
#[tokio::test]
async fn every_request_field_is_bounded() {
    let app = TestApp::spawn();
    let doc = served(&app).await;
    let mut problems = Vec::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let at = format!("{method} {path}");
        if let Some(body) = op["requestBody"]["content"]["application/json"]["schema"].as_object() {
            unbounded(&doc, &Value::Object(body.clone()), &format!("{at} body"), &mut problems);
        }
        for p in op["parameters"].as_array().into_iter().flatten() {
            // The provider's redirect carries the provider's values, which idvault does not bound.
            let from_provider = (path == "/v1/auth/oauth/callback" || path == "/v1/outbound/oauth/callback")
                && p["name"] != "state";
            if !from_provider {
                unbounded(&doc, &p["schema"], &format!("{at} {}", p["name"]), &mut problems);
            }
        }
    }
    assert!(problems.is_empty(), "unbounded request fields:\n{}", problems.join("\n"));

    // The numbers are core's limits.
    use idvault_core::limits::*;
    let schemas = &doc["components"]["schemas"];
    let fields = |name: &str| schemas[name]["allOf"][0]["properties"].clone();
    assert_eq!(schemas["CreateUserRequest"]["properties"]["loginId"]["maxLength"], MAX_FIELD_LEN);
    assert_eq!(schemas["CreateUserRequest"]["properties"]["roleNames"]["maxItems"], MAX_LIST_ITEMS);
    assert_eq!(
        schemas["CreateUserRequest"]["properties"]["additionalLoginIds"]["maxItems"],
        MAX_LOGIN_IDS - 1
    );
    assert_eq!(schemas["BatchCreateRequest"]["properties"]["users"]["maxItems"], MAX_BATCH_USERS);
    assert_eq!(schemas["LoadUsersRequest"]["properties"]["userIds"]["maxItems"], MAX_LOAD_USERS);
    assert_eq!(fields("UserRefBody")["userId"]["maxLength"], MAX_USER_ID_LEN);
    assert_eq!(schemas["SearchRequest"]["properties"]["limit"]["maximum"], SEARCH_MAX_LIMIT);
    assert_eq!(schemas["SearchRequest"]["properties"]["loginIds"]["maxItems"], MAX_FILTER_VALUES);
    assert_eq!(schemas["SearchRequest"]["properties"]["text"]["maxLength"], MAX_SEARCH_TEXT_LEN);
    assert_eq!(
        schemas["SearchRequest"]["properties"]["customAttributes"]["maxProperties"],
        MAX_SEARCH_FILTERS
    );
    assert_eq!(schemas["SearchRequest"]["properties"]["sort"]["maxItems"], MAX_SORT_FIELDS);
    assert_eq!(fields("PutTokenRequest")["accessToken"]["maxLength"], MAX_TOKEN_LEN);
    assert_eq!(fields("PutTokenRequest")["scopes"]["maxItems"], MAX_SCOPES);
    assert_eq!(fields("PutTokenRequest")["provider"]["maxLength"], MAX_PROVIDER_NAME_LEN);
    assert_eq!(fields("SetProviderRequest")["tokenEndpoint"]["maxLength"], MAX_URL_LEN);
    let revoke = &schemas["RevokeKeyRequest"]["properties"]["keyId"];
    assert_eq!(revoke["maxLength"], idvault_core::project::KEY_ID_LEN);
    assert_eq!(revoke["minLength"], idvault_core::project::KEY_ID_LEN);
    let authorize: BTreeMap<String, Value> = doc["paths"]["/v1/auth/oauth/authorize"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["schema"].clone()))
        .collect();
    assert_eq!(authorize["provider"]["maxLength"], MAX_PROVIDER_NAME_LEN);
    assert_eq!(authorize["redirectURL"]["maxLength"], MAX_REDIRECT_URL_LEN);
    assert_eq!(authorize["loginHint"]["maxLength"], MAX_LOGIN_HINT_LEN);
    // Statuses are an enum, null included where null is accepted.
    assert_eq!(
        schemas["CreateUserRequest"]["properties"]["status"]["enum"],
        serde_json::json!(["enabled", "disabled", "invited", "expired", null])
    );
}

/// Sends `{}` (or no query) to every operation: when the API answers "missing argument: X"
/// (`E011002`), the document must say that X is required, directly or as one of the `anyOf`
/// alternatives. This ties the `required` lists to what the handlers and core actually refuse.
#[tokio::test]
async fn what_the_api_requires_the_document_requires() {
    let app = TestApp::spawn();
    let doc = served(&app).await;
    let project = app.server.project_id.clone().unwrap();
    // Core names a few arguments by their meaning rather than their wire name.
    let wire_name = |path: &str, arg: &str| -> String {
        match (path, arg) {
            ("/v1/mgmt/provider/set" | "/v1/mgmt/provider/delete" | "/v1/mgmt/provider", "provider") => {
                "name".to_owned()
            }
            _ => arg.to_owned(),
        }
    };
    // Everything a schema requires: `required`, and the `required` of each alternative.
    fn required(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) {
        let schema = resolve(doc, schema);
        for r in schema["required"].as_array().into_iter().flatten() {
            out.insert(r.as_str().unwrap().to_owned());
        }
        for key in ["allOf", "anyOf"] {
            for part in schema[key].as_array().into_iter().flatten() {
                required(doc, part, out);
            }
        }
    }
    let mut checked = 0;
    let mut problems = Vec::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let mut listed = BTreeSet::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["required"] == true {
                listed.insert(p["name"].as_str().unwrap().to_owned());
            }
            required(&doc, &p["schema"], &mut listed);
        }
        let body = op["requestBody"]["content"]["application/json"]["schema"].clone();
        let has_body = body.is_object();
        if has_body {
            required(&doc, &body, &mut listed);
        }
        let url = app.server.url(&path.replace("{project_id}", &project));
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let auth = if path.contains("/mgmt/") { app.api.auth.clone() } else { format!("Bearer {project}") };
        let mut req = app.api.http.request(m, url).header("Authorization", auth);
        if has_body {
            req = req.header("content-type", "application/json").body(if body["type"] == "array" {
                "[]"
            } else {
                "{}"
            });
        }
        let r = req.send().await.unwrap();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        if answer["errorCode"] != "E011002" {
            continue;
        }
        checked += 1;
        let message = answer["errorMessage"].as_str().unwrap_or_default();
        let arg = message.strip_prefix("missing argument: ").unwrap_or(message);
        let arg = wire_name(&path, arg);
        if !listed.contains(&arg) {
            problems
                .push(format!("{method} {path}: the API requires `{arg}`, the document requires {listed:?}"));
        }
    }
    assert!(checked > 20, "only {checked} operations answered a missing argument");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
