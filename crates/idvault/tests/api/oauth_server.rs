//! The real OAuth/OIDC server the refresh tests run against: `oidc-provider` from npm, driven by
//! tests/oauth-server/server.js (run `npm ci` there once; scripts/test.sh does).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub struct OAuthServer {
    child: Child,
    pub issuer: String,
    http: reqwest::Client,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oauth-server/server.js")
}

impl OAuthServer {
    pub fn start() -> OAuthServer {
        let dir = script().parent().unwrap().to_owned();
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "tests/oauth-server has no node_modules: run `npm ci` in {} (scripts/test.sh does)",
            dir.display()
        );
        // A start normally takes under 4 s even with 16 at once; rarely (seen twice in full suite
        // runs, never reproduced alone) node printed nothing for minutes. A fresh process then
        // starts normally, so a stuck start is killed and retried, and only repeated failures
        // fail the test, with what node said.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match spawn_node(Duration::from_secs(60)) {
                Ok((child, issuer)) => return OAuthServer { child, issuer, http: reqwest::Client::new() },
                Err(why) => failures.push(why),
            }
        }
        panic!("the OAuth test server did not start in 3 attempts:\n{}", failures.join("\n---\n"));
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = self.http.post(format!("{}/__test/{path}", self.issuer)).json(&body).send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Mints a grant for `account` and answers its tokens.
    pub async fn grant(&self, account: &str) -> Value {
        self.control("grant", json!({"accountId": account})).await
    }

    pub async fn stats(&self) -> Value {
        self.http.get(format!("{}/__test/stats", self.issuer)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn refresh_requests(&self) -> u64 {
        self.stats().await["refresh_requests"].as_u64().unwrap()
    }

    pub async fn mode(&self, mode: &str) {
        self.control("mode", json!({"mode": mode})).await;
    }
}

/// Starts tests/oauth-server/server.js on a free port and answers it with its issuer URL, or why
/// it did not print its listening line within `wait`.
fn spawn_node(wait: Duration) -> Result<(Child, String), String> {
    let mut child = Command::new("node")
        .arg(script())
        .args(["--port", "0", "--exit-on-stdin-close"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed to run the OAuth tests");
    let stdout = child.stdout.take().unwrap();
    // Kept for the failure message only: why node did not start says more than a timeout.
    let stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("oauth-server listening on ") {
                    return Ok((child, url.trim().to_owned()));
                }
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let stderr = errors.join().unwrap_or_default();
                return Err(format!("no listening line ({e}; node {status}):\n{stderr}"));
            }
        }
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
