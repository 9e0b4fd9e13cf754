//! No secret in answers or logs: credentials that are refused (a wrong or unknown management
//! key, a forged or expired JWT) and secrets in refused writes are never echoed in the error body,
//! and nothing the server was given or gave out appears in its trace-level log. The whole suite's
//! logs are scanned by scripts/scan-secrets at the end of scripts/test.sh; this test checks one
//! server end to end even when the suite runs without a log directory.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;

/// A value no test uses elsewhere, so that finding it anywhere means it came from here.
fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(37) ^ std::process::id() as u8;
    }
    format!("{prefix}-{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A JWT in idvault's shape (header, claims) whose signature is random: forged.
fn forged_jwt(project: &str, exp: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT", "kid": "forged"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"sub": "U1", "iss": project, "drn": "DSR", "exp": exp, "iat": exp - 3600}).to_string(),
    );
    let signature = URL_SAFE_NO_PAD.encode(unique("signature").repeat(8));
    format!("{header}.{claims}.{signature}")
}

/// Sends a request with this `Authorization` header and a raw body; answers the status and body.
async fn raw(
    base: &str,
    method: reqwest::Method,
    path: &str,
    auth: &str,
    body: Option<String>,
) -> (u16, String) {
    record_authorization(auth);
    let mut req =
        reqwest::Client::new().request(method, format!("{base}{path}")).header("Authorization", auth);
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn refused_credentials_and_secrets_are_echoed_in_no_body_and_no_log() {
    let app = TestApp::spawn();
    let base = app.server.base_url.clone();
    let project = app.server.project_id.clone().unwrap();
    let key = app.server.management_key.clone().unwrap();
    let mut secrets: Vec<(&str, String)> = vec![("management key", key.clone())];

    // Secrets that go through the server both ways: a provider token stored and read back.
    app.api.create_user(json!({"loginId": "logscan@example.com"})).await;
    let (access, refresh) = (unique("ya29.access"), unique("1//refresh"));
    let r = app.api.put_token(google_token("logscan@example.com", &access, &refresh)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.api.get_token("logscan@example.com", "google", true).await;
    assert_eq!(
        (r.body["accessToken"].as_str(), r.body["refreshToken"].as_str()),
        (Some(&*access), Some(&*refresh))
    );
    secrets.extend([("access token", access), ("refresh token", refresh)]);

    // Refused management keys: the right key id with a wrong secret, an unknown key id, no key
    // shape at all, and the right key for another project.
    let (key_id, key_secret) = key.split_once('.').unwrap();
    let wrong_secret = format!("{key_id}.{}", unique("wrong").replace('-', "x"));
    let unknown_id = format!("idv_AAAAAAAAAAAAAAAA.{key_secret}");
    let garbage = unique("not-a-key");
    let mut refused = Vec::new();
    for (p, k) in
        [(project.as_str(), &wrong_secret), (project.as_str(), &unknown_id), (project.as_str(), &garbage)]
    {
        let auth = format!("Bearer {p}:{k}");
        refused.push(
            raw(&base, reqwest::Method::GET, "/v1/mgmt/user?loginId=logscan%40example.com", &auth, None)
                .await,
        );
    }
    let auth = format!("Bearer P2zzzzzzzzzzzzzzzzzzzzzzzzzz:{key}");
    refused.push(
        raw(&base, reqwest::Method::GET, "/v1/mgmt/user?loginId=logscan%40example.com", &auth, None).await,
    );
    for (status, _) in &refused {
        assert_eq!(*status, 401, "{refused:?}");
    }
    secrets.extend([
        ("wrong management key", wrong_secret),
        ("unknown management key", unknown_id),
        ("garbage key", garbage),
    ]);

    // Forged and expired refresh JWTs, on the refresh and session endpoints.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for jwt in [forged_jwt(&project, now + 3600), forged_jwt(&project, now - 3600)] {
        let auth = format!("Bearer {project}:{jwt}");
        for path in ["/v1/auth/refresh", "/v1/auth/me"] {
            let r = raw(&base, reqwest::Method::POST, path, &auth, Some("{}".into())).await;
            let r = if r.0 == 405 { raw(&base, reqwest::Method::GET, path, &auth, None).await } else { r };
            assert_eq!(r.0, 401, "{path}: {r:?}");
            refused.push(r);
        }
        // In a body instead of the header.
        let r = raw(
            &base,
            reqwest::Method::POST,
            "/v1/auth/refresh",
            &format!("Bearer {project}"),
            Some(json!({"refreshJwt": jwt}).to_string()),
        )
        .await;
        assert!((400..500).contains(&r.0), "{r:?}");
        refused.push(r);
        secrets.push(("forged JWT", jwt));
    }

    // Secrets in writes that are refused: an unknown user, a bad provider name, a bad expiration,
    // a token over the size limit, a body cut short right after the token, a token of the wrong
    // type beside a good one, and a client secret with an unusable provider.
    let auth = app.api.auth.clone();
    let token = unique("refused-token");
    let long = format!("{}{}", unique("long-token"), "x".repeat(20_000));
    let client_secret = unique("client-secret");
    let writes: Vec<(reqwest::Method, &str, String)> = vec![
        (reqwest::Method::PUT, "/v1/mgmt/user/provider/token", google_token("nobody@example.com", &token, &token).to_string()),
        (reqwest::Method::PUT, "/v1/mgmt/user/provider/token", json!({"loginId": "logscan@example.com", "provider": "Goo gle", "accessToken": token}).to_string()),
        (reqwest::Method::PUT, "/v1/mgmt/user/provider/token", json!({"loginId": "logscan@example.com", "provider": "google", "accessToken": token, "expiration": "soon"}).to_string()),
        (reqwest::Method::PUT, "/v1/mgmt/user/provider/token", json!({"loginId": "logscan@example.com", "provider": "google", "accessToken": long}).to_string()),
        (reqwest::Method::PUT, "/v1/mgmt/user/provider/token", format!(r#"{{"loginId": "logscan@example.com", "provider": "google", "accessToken": "{token}"#)),
        (reqwest::Method::PUT, "/v1/mgmt/user/provider/token", json!({"loginId": "logscan@example.com", "provider": "google", "accessToken": 42, "refreshToken": token}).to_string()),
        (reqwest::Method::POST, "/v1/mgmt/provider/set", json!({"name": "acme", "clientId": "c", "clientSecret": client_secret, "tokenEndpoint": "not a url"}).to_string()),
    ];
    for (method, path, body) in writes {
        let r = raw(&base, method, path, &auth, Some(body)).await;
        assert!((400..500).contains(&r.0), "{path}: {r:?}");
        let parsed: Value =
            serde_json::from_str(&r.1).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", r.1));
        assert!(parsed["errorCode"].is_string(), "{path}: {}", r.1);
        refused.push(r);
    }
    secrets.extend([
        ("refused token", token),
        ("over-long token", long[..64].to_owned()),
        ("client secret", client_secret),
    ]);

    for (kind, secret) in &secrets {
        record_secret(kind, secret);
        for (status, body) in &refused {
            assert!(!body.contains(secret.as_str()), "a {status} body echoes the {kind}: {body}");
        }
    }
    // The secret halves alone, too: a body could quote the part after the key id.
    for (status, body) in &refused {
        assert!(!body.contains(key_secret), "a {status} body echoes the management key's secret: {body}");
    }

    // The master key, then every line the server logged at trace level (its stderr) and printed
    // (stdout, apart from the first-start banner that shows the key once, by design).
    let keyring = std::fs::read_to_string(app.server.data_dir.join("master.key")).unwrap();
    let master_keys: Vec<String> = keyring
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(_, k)| k.trim().to_owned())
        .collect();
    assert!(!master_keys.is_empty(), "{keyring:?}");
    secrets.extend(master_keys.into_iter().map(|k| ("master key", k)));
    let TestApp { server, dir, .. } = app;
    let (stdout_path, stderr_path) = (server.stdout_path.clone(), server.stderr_path.clone());
    assert!(server.stop().success());
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(log.lines().count() > 20, "the server logged at trace level: {log}");
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "the server logged below info: {log}");
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let banner_free: String = stdout.lines().filter(|l| !is_banner_line(l)).collect::<Vec<_>>().join("\n");
    for (kind, secret) in &secrets {
        for (name, text) in [("log (stderr)", &log), ("stdout", &banner_free)] {
            if let Some(at) = text.find(secret.as_str()) {
                let line = text[..at].lines().count();
                panic!("the {kind} ({} chars) is in the server's {name}, line {line}", secret.len());
            }
        }
    }
    assert!(!log.contains(key_secret), "the management key's secret half is in the log");
    // The server's filter asked for every dependency at debug: tokio-postgres, which logs each
    // statement's bound parameters (PKCE verifiers among them) there, stays capped at info.
    // (A line of that target reads `tokio_postgres::query: ...`; the filter itself, logged at
    // debug, names it as `tokio_postgres::query=info`.)
    assert!(!log.contains("tokio_postgres::query: "), "statement parameters were logged");
    drop(dir);
}

/// The three lines of the first-start banner that show the new management key (shown once to its
/// owner, by design; see startup.rs). scripts/scan-secrets allows the same three.
fn is_banner_line(line: &str) -> bool {
    ["Management key: ", "management_key=\"", "managementKey: '"].iter().any(|m| line.contains(m))
}
