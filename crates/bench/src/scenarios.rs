//! The scenarios `run` measures, one table entry each, and the wrk Lua scripts made from them.
//!
//! A scenario is a Lua fragment that builds one request from a random user (or a fresh login id
//! for creates) and says what its answer must hold. The same fragment drives the load (a script
//! without a `response()` callback, so wrk never parses bodies while measuring) and the sanity
//! check before it (a script whose `response()` checks status, content and total, run with one
//! connection: requests go one at a time). Adding a scenario is adding one entry to [`SCENARIOS`].
//!
//! Globals a fragment may use (defined by the script's prelude from `bench.json`):
//! `users`, `token_users`, `tenants`, `tenant_every`, `provider`, `app_id`; helpers `rand_user()`,
//! `rand_token_user()`, `login(i)` (`user{i}@example.com`), `login_q(i)` (URL-encoded),
//! `uid(i)` (the seeded user id of user i), `fresh()` (a login id never used before, unique per
//! wrk process, thread and request), `tenant_members(k)`.
//! A fragment sets `path`, and may set `body` (JSON), `expect` (plain strings the answer must
//! contain), `total_eq` / `total_min` (the answer's `"total"`).

use std::path::Path;

use crate::meta::{self, BenchMeta};

/// What the scenarios need to know of the seeded data: `bench.json`, old and new fields.
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    pub project_id: String,
    pub management_key: String,
    pub users: u64,
    pub token_users: u64,
    pub provider: String,
    pub database_url: Option<String>,
    pub user_id_pattern: Option<String>,
    pub outbound_app_id: Option<String>,
    pub tenants: u64,
    pub tenant_every: u64,
}

impl Seeded {
    pub fn read(dir: &Path) -> anyhow::Result<(BenchMeta, Seeded)> {
        let path = crate::meta_path(dir);
        let m = meta::read(&path)?;
        let seeded = Seeded {
            project_id: m.project_id.clone(),
            management_key: m.management_key.clone(),
            users: m.users,
            token_users: m.token_users,
            provider: m.provider.clone(),
            database_url: m.database_url.clone(),
            user_id_pattern: m.user_id_pattern.clone(),
            outbound_app_id: m.outbound_app_id.clone(),
            tenants: m.tenants,
            tenant_every: m.tenant_every,
        };
        Ok((m, seeded))
    }

    pub fn authorization(&self) -> String {
        format!("Bearer {}:{}", self.project_id, self.management_key)
    }
}

/// Which server a scenario is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The axum hello-world reference.
    Hello,
    Idvault,
    /// The peer product (`--peer`), same reads as idvault's scenario named in `Scenario::peer_of`.
    Peer,
}

/// Reads run first; writes change the data, so they run last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Reference,
    Read,
    Write,
}

/// What a scenario needs from the seeded data; without it the scenario is skipped with a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// Provider tokens (`token_users > 0`).
    ProviderTokens,
    /// Known user ids (`user_id_pattern`).
    UserIds,
    /// Outbound tokens (`outbound_app_id`) and known user ids to fetch them by.
    OutboundTokens,
    /// Tenants with members (`tenants > 0`).
    Tenants,
}

impl Needs {
    /// None when the data has what the scenario needs; otherwise why it is skipped.
    pub fn missing(self, meta: &Seeded) -> Option<&'static str> {
        match self {
            Needs::Nothing => None,
            Needs::ProviderTokens if meta.token_users == 0 => Some("the seed stored no provider tokens"),
            Needs::UserIds if meta.user_id_pattern.is_none() => {
                Some("the seed gave users random ids (bench.json has no user_id_pattern)")
            }
            Needs::OutboundTokens if meta.outbound_app_id.is_none() => {
                Some("the seed stored no outbound tokens (bench.json has no outbound_app_id)")
            }
            Needs::OutboundTokens if meta.user_id_pattern.is_none() || meta.token_users == 0 => Some(
                "outbound tokens are fetched by user id: bench.json needs user_id_pattern and token users",
            ),
            Needs::Tenants if meta.tenants == 0 || meta.tenant_every == 0 => {
                Some("the seed put no user in a tenant (bench.json tenants = 0)")
            }
            _ => None,
        }
    }
}

pub struct Scenario {
    pub name: &'static str,
    pub target: Target,
    pub kind: Kind,
    pub method: &'static str,
    pub needs: Needs,
    /// For a peer scenario: the idvault scenario it is compared with.
    pub peer_of: Option<&'static str>,
    /// The body of the script's `request()`, before the request is formatted.
    pub lua: &'static str,
}

impl Scenario {
    pub fn has_body(&self) -> bool {
        self.method != "GET"
    }
}

/// Every scenario, in the order they run (hello is also measured at the end, and in the middle
/// of long runs). Reads, then the peer's reads, then writes.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "hello",
        target: Target::Hello,
        kind: Kind::Reference,
        method: "GET",
        needs: Needs::Nothing,
        peer_of: None,
        // The same random query string as load-user, ignored: wrk does the same work per request.
        lua: r#"path = "/?loginId=" .. login_q(rand_user())
  expect = { "Hello, World!" }"#,
    },
    Scenario {
        name: "load-user",
        target: Target::Idvault,
        kind: Kind::Read,
        method: "GET",
        needs: Needs::Nothing,
        peer_of: None,
        lua: r#"local i = rand_user()
  path = "/v1/mgmt/user?loginId=" .. login_q(i)
  expect = { '"' .. login(i) .. '"' }"#,
    },
    Scenario {
        name: "load-user-by-id",
        target: Target::Idvault,
        kind: Kind::Read,
        method: "GET",
        needs: Needs::UserIds,
        peer_of: None,
        lua: r#"local i = rand_user()
  path = "/v1/mgmt/user?userId=" .. uid_q(i)
  expect = { '"userId":"' .. uid(i) .. '"', '"' .. login(i) .. '"' }"#,
    },
    Scenario {
        name: "token-read",
        target: Target::Idvault,
        kind: Kind::Read,
        method: "GET",
        needs: Needs::ProviderTokens,
        peer_of: None,
        lua: r#"local i = rand_token_user()
  path = "/v1/mgmt/user/provider/token?loginId=" .. login_q(i) .. "&provider=" .. provider
    .. "&withRefreshToken=false&forceRefresh=false"
  expect = { '"bench-access-' .. i .. '"' }"#,
    },
    Scenario {
        // What the SDKs' outbound user-token fetch sends (`fetch_user_token` / `fetchToken`).
        name: "outbound-token",
        target: Target::Idvault,
        kind: Kind::Read,
        method: "POST",
        needs: Needs::OutboundTokens,
        peer_of: None,
        lua: r#"local i = rand_token_user()
  path = "/v1/mgmt/outbound/app/user/token"
  body = '{"appId":"' .. app_id .. '","userId":"' .. uid(i) .. '","scopes":["read"]}'
  expect = { '"accessToken":"bench-outbound-' .. i .. '"' }"#,
    },
    Scenario {
        name: "search-tenant-role",
        target: Target::Idvault,
        kind: Kind::Read,
        method: "POST",
        needs: Needs::Tenants,
        peer_of: None,
        lua: r#"local k = math.random(0, tenants - 1)
  path = "/v2/mgmt/user/search"
  body = '{"tenantIds":["bench-t' .. k .. '"],"roleNames":["bench-role"]}'
  total_eq = tenant_members(k)"#,
    },
    Scenario {
        name: "search-status",
        target: Target::Idvault,
        kind: Kind::Read,
        method: "POST",
        needs: Needs::Nothing,
        peer_of: None,
        // A random page of 100 among all users: deep pages are what an admin UI's last page
        // asks. Both statuses: users created with an email and no verified flag start `invited`
        // (Descope's rule, and the seed's users), so `enabled` alone could match nobody.
        lua: r#"local page = math.random(0, math.max(0, math.floor((users - 1) / 100)))
  path = "/v2/mgmt/user/search"
  body = '{"statuses":["enabled","invited"],"limit":100,"page":' .. page .. '}'
  total_min = users
  expect = { '"user' }"#,
    },
    Scenario {
        name: "search-email",
        target: Target::Idvault,
        kind: Kind::Read,
        method: "POST",
        needs: Needs::Nothing,
        peer_of: None,
        lua: r#"local i = rand_user()
  path = "/v2/mgmt/user/search"
  body = '{"emails":["' .. login(i) .. '"]}'
  total_eq = 1
  expect = { '"' .. login(i) .. '"' }"#,
    },
    Scenario {
        // `user{i}` also matches user{i}0, user{i}1...: from 1 to 1/10 of the users.
        name: "search-text",
        target: Target::Idvault,
        kind: Kind::Read,
        method: "POST",
        needs: Needs::Nothing,
        peer_of: None,
        lua: r#"local i = rand_user()
  path = "/v2/mgmt/user/search"
  body = '{"text":"user' .. i .. '"}'
  total_min = 1"#,
    },
    Scenario {
        // Every user's login id holds example.com: the worst case of a text search, with its total.
        name: "search-text-all",
        target: Target::Idvault,
        kind: Kind::Read,
        method: "POST",
        needs: Needs::Nothing,
        peer_of: None,
        lua: r#"path = "/v2/mgmt/user/search"
  body = '{"text":"example.com"}'
  total_min = users"#,
    },
    Scenario {
        name: "peer-load-user",
        target: Target::Peer,
        kind: Kind::Read,
        method: "GET",
        needs: Needs::Nothing,
        peer_of: Some("load-user"),
        lua: r#"local i = rand_user()
  path = "/user?loginId=" .. login_q(i)
  expect = { '"email":"' .. login(i) .. '"' }"#,
    },
    Scenario {
        name: "peer-token-read",
        target: Target::Peer,
        kind: Kind::Read,
        method: "GET",
        needs: Needs::ProviderTokens,
        peer_of: Some("token-read"),
        lua: r#"local i = rand_token_user()
  path = "/token?loginId=" .. login_q(i) .. "&provider=" .. provider
    .. "&withRefreshToken=false&forceRefresh=false"
  expect = { '"accessToken":"bench-access-' .. i .. '"' }"#,
    },
    Scenario {
        // better-auth's `contains` on one field: the email, as idvault's text matches login ids.
        name: "peer-search-text",
        target: Target::Peer,
        kind: Kind::Read,
        method: "GET",
        needs: Needs::Nothing,
        peer_of: Some("search-text"),
        lua: r#"local i = rand_user()
  path = "/search?field=email&text=user" .. i
  total_min = 1"#,
    },
    Scenario {
        name: "peer-search-text-all",
        target: Target::Peer,
        kind: Kind::Read,
        method: "GET",
        needs: Needs::Nothing,
        peer_of: Some("search-text-all"),
        lua: r#"path = "/search?field=email&text=example.com"
  total_min = users"#,
    },
    Scenario {
        name: "create-user",
        target: Target::Idvault,
        kind: Kind::Write,
        method: "POST",
        needs: Needs::Nothing,
        peer_of: None,
        lua: r#"local l = fresh()
  path = "/v1/mgmt/user/create"
  body = '{"loginId":"' .. l .. '","email":"' .. l .. '","displayName":"Bench New ' .. n .. '"}'
  expect = { '"' .. l .. '"' }"#,
    },
    Scenario {
        name: "patch-user",
        target: Target::Idvault,
        kind: Kind::Write,
        method: "PATCH",
        needs: Needs::Nothing,
        peer_of: None,
        // The given name only: login ids, emails and display names stay what searches expect.
        lua: r#"local i = rand_user()
  path = "/v1/mgmt/user/patch"
  body = '{"loginId":"' .. login(i) .. '","givenName":"Patched ' .. n .. '"}'
  expect = { '"' .. login(i) .. '"', '"Patched ' .. n .. '"' }"#,
    },
    Scenario {
        // Rewrites a token user's token with the values the seed gave it, so that token-read's
        // checks still hold in the next run.
        name: "token-store",
        target: Target::Idvault,
        kind: Kind::Write,
        method: "PUT",
        needs: Needs::ProviderTokens,
        peer_of: None,
        lua: r#"local i = rand_token_user()
  path = "/v1/mgmt/user/provider/token"
  body = '{"loginId":"' .. login(i) .. '","provider":"' .. provider .. '","providerUserId":"google-' .. i
    .. '","accessToken":"bench-access-' .. i .. '","refreshToken":"bench-refresh-' .. i
    .. '","expiration":' .. (os.time() + 365 * 86400) .. ',"scopes":["openid","email"]}'
  expect = { "{}" }"#,
    },
    Scenario {
        name: "create-batch-100",
        target: Target::Idvault,
        kind: Kind::Write,
        method: "POST",
        needs: Needs::Nothing,
        peer_of: None,
        lua: r#"local parts = {}
  for j = 1, 100 do
    local l = fresh() .. "-" .. j
    parts[j] = '{"loginId":"' .. l .. '","email":"' .. l .. '","displayName":"Bench Batch ' .. n .. '"}'
  end
  path = "/v1/mgmt/user/create/batch"
  body = '{"users":[' .. table.concat(parts, ",") .. ']}'
  expect = { '"failedUsers":[]' }"#,
    },
];

pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// A Lua string literal.
fn lua_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The text before and after `{i}` in a pattern such as `Ubench{i}`.
fn split_pattern(pattern: &str) -> (String, String) {
    match pattern.split_once("{i}") {
        Some((before, after)) => (before.to_owned(), after.to_owned()),
        None => (pattern.to_owned(), String::new()),
    }
}

/// Script for the load (`check_samples` None) or for the sanity check before it (stops after
/// that many answers and prints what it checked).
pub fn script(scenario: &Scenario, meta: &Seeded, authorization: &str, check_samples: Option<u32>) -> String {
    let (uid_prefix, uid_suffix) = split_pattern(meta.user_id_pattern.as_deref().unwrap_or("{i}"));
    let mut s = String::new();
    s.push_str(&format!(
        "-- Generated by idvault-bench: scenario {name}{mode}. See docs/benchmarks.md.\n\
         -- Run by hand: wrk -c64 -d10s --latency -s THIS_FILE http://ADDR/ -- TAG\n",
        name = scenario.name,
        mode = if check_samples.is_some() { " (sanity check)" } else { "" }
    ));
    s.push_str(&format!(
        r#"local users = {users}
local token_users = {token_users}
local tenants = {tenants}
local tenant_every = {tenant_every}
local provider = {provider}
local app_id = {app_id}
local uid_prefix = {uid_prefix}
local uid_suffix = {uid_suffix}
wrk.method = {method}
wrk.headers["Authorization"] = {authorization}
"#,
        users = meta.users.max(1),
        token_users = meta.token_users.max(1),
        tenants = meta.tenants,
        tenant_every = meta.tenant_every.max(1),
        provider = lua_str(&meta.provider),
        app_id = lua_str(meta.outbound_app_id.as_deref().unwrap_or("")),
        uid_prefix = lua_str(&uid_prefix),
        uid_suffix = lua_str(&uid_suffix),
        method = lua_str(scenario.method),
        authorization = lua_str(authorization),
    ));
    if scenario.has_body() {
        s.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
    }
    s.push_str(PRELUDE);
    s.push_str("\nfunction request()\n  n = n + 1\n  path, body, expect, total_eq, total_min = nil, nil, nil, nil, nil\n  ");
    s.push_str(scenario.lua);
    s.push_str("\n  return wrk.format(nil, path, nil, body)\nend\n");
    if let Some(samples) = check_samples {
        s.push_str(&CHECK.replace("SAMPLES", &samples.max(1).to_string()));
    }
    s.push_str(DONE);
    s
}

/// Helpers shared by every scenario. `tid` is set by setup() in each thread's Lua state; the
/// run tag (wrk's first argument after `--`) makes `fresh()` unique across wrk processes.
const PRELUDE: &str = r#"
local thread_count = 0
local threads = {}
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

tag = "t"
n = 0
function init(args)
  tag = args[1] or tostring(os.time())
  math.randomseed(os.time() * 1009 + (tid or 0) * 7919 + #tag)
end

function rand_user() return math.random(0, users - 1) end
function rand_token_user() return math.random(0, token_users - 1) end
function login(i) return "user" .. i .. "@example.com" end
function login_q(i) return "user" .. i .. "%40example.com" end
function uid(i) return uid_prefix .. i .. uid_suffix end
function uid_q(i) return (uid(i):gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end)) end
function fresh() return "bench-new-" .. tag .. "-" .. (tid or 0) .. "-" .. n .. "@example.com" end
-- Members of tenant k: users i with i % tenant_every == 0 and (i / tenant_every) % tenants == k.
function tenant_members(k)
  local m = math.floor((users + tenant_every - 1) / tenant_every)
  if k >= m then return 0 end
  return math.floor((m - 1 - k) / tenants) + 1
end
"#;

/// The sanity check's `response()`: status 200, every expected string, the total. Counts live
/// in globals, which `done()` reads from each thread.
const CHECK: &str = r#"
checked = 0
failed = 0
first_failure = ""
local function verdict(status, answer)
  local sent = path .. (body and (" " .. body) or "")
  if status ~= 200 then return "status " .. status .. " for " .. sent .. ": " .. string.sub(answer, 1, 300) end
  for _, e in ipairs(expect or {}) do
    if not string.find(answer, e, 1, true) then
      return "no " .. e .. " in the answer to " .. sent .. ": " .. string.sub(answer, 1, 300)
    end
  end
  if total_eq or total_min then
    local total = tonumber(string.match(answer, '"total":(%d+)'))
    if not total then return "no total in the answer to " .. sent .. ": " .. string.sub(answer, 1, 300) end
    if total_eq and total ~= total_eq then return "total " .. total .. " instead of " .. total_eq .. " for " .. sent end
    if total_min and total < total_min then return "total " .. total .. " below " .. total_min .. " for " .. sent end
  end
  return nil
end

-- One connection: this answers the request() just made, whose globals are still set.
function response(status, headers, answer)
  local why = verdict(status, answer)
  checked = checked + 1
  if why then
    failed = failed + 1
    if first_failure == "" then first_failure = why end
  end
  if checked >= SAMPLES then wrk.thread:stop() end
end
"#;

/// One parseable line with what wrk's own report lacks (p99.9 and the exact percentiles, in
/// microseconds), and the sanity check's counts when there are any.
const DONE: &str = r#"
function done(summary, latency, requests)
  io.write(string.format("idvault-bench latency p50=%.0f p75=%.0f p90=%.0f p99=%.0f p99.9=%.0f max=%.0f requests=%.0f\n",
    latency:percentile(50), latency:percentile(75), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, summary.requests))
  local c, f, why = 0, 0, ""
  for _, t in ipairs(threads) do
    c = c + (tonumber(t:get("checked")) or 0)
    f = f + (tonumber(t:get("failed")) or 0)
    local w = t:get("first_failure")
    if why == "" and w and w ~= "" then why = w end
  end
  if c > 0 then
    io.write(string.format("idvault-bench check checked=%d failed=%d\n", c, f))
    if why ~= "" then io.write("idvault-bench check first_failure=" .. string.gsub(why, "\n", " ") .. "\n") end
  end
end
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Seeded {
        Seeded {
            project_id: "P1".into(),
            management_key: "k".into(),
            users: 1000,
            token_users: 10,
            provider: "google".into(),
            user_id_pattern: Some("Ubench{i}".into()),
            tenants: 4,
            tenant_every: 10,
            ..Seeded::default()
        }
    }

    #[test]
    fn old_and_new_bench_json_files_both_read() {
        let dir = std::env::temp_dir().join(format!("idv-bench-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = serde_json::json!({
            "project_id": "P1", "management_key": "k", "users": 1000, "token_users": 10,
            "provider": "google", "login_id_pattern": "user{i}@example.com", "seeded_at": "x",
            "seed_seconds": 1.0, "users_seconds": 1.0, "tokens_seconds": 1.0
        });
        std::fs::write(crate::meta_path(&dir), old.to_string()).unwrap();
        let (_, s) = Seeded::read(&dir).unwrap();
        assert_eq!((s.users, s.tenants, s.user_id_pattern.as_deref()), (1000, 0, None));
        let mut new = old.clone();
        new["user_id_pattern"] = "Ubench{i}".into();
        new["outbound_app_id"] = "bench-app".into();
        new["database_url"] = "postgres://u@h/db".into();
        new["tenants"] = 100.into();
        new["tenant_every"] = 10.into();
        new["import_seconds"] = 3.5.into();
        std::fs::write(crate::meta_path(&dir), new.to_string()).unwrap();
        let (_, s) = Seeded::read(&dir).unwrap();
        assert_eq!(s.user_id_pattern.as_deref(), Some("Ubench{i}"));
        assert_eq!(s.outbound_app_id.as_deref(), Some("bench-app"));
        assert_eq!(s.database_url.as_deref(), Some("postgres://u@h/db"));
        assert_eq!((s.tenants, s.tenant_every), (100, 10));
        assert_eq!(s.authorization(), "Bearer P1:k");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_are_unique_and_peers_name_an_idvault_scenario() {
        for (i, s) in SCENARIOS.iter().enumerate() {
            assert!(SCENARIOS[..i].iter().all(|o| o.name != s.name), "{} twice", s.name);
            if let Some(of) = s.peer_of {
                assert_eq!(s.target, Target::Peer);
                assert_eq!(find(of).map(|o| o.target), Some(Target::Idvault), "{}", s.name);
            }
        }
        // Writes change the data the reads check: they come last.
        let first_write = SCENARIOS.iter().position(|s| s.kind == Kind::Write).unwrap();
        assert!(SCENARIOS[first_write..].iter().all(|s| s.kind == Kind::Write));
    }

    #[test]
    fn scripts_hold_the_fragment_the_constants_and_the_check_only_when_asked() {
        let m = meta();
        let s = script(find("search-tenant-role").unwrap(), &m, "Bearer P1:k", None);
        assert!(s.contains("local users = 1000\n"));
        assert!(s.contains("local tenants = 4\n"));
        assert!(s.contains("local uid_prefix = \"Ubench\"\n"));
        assert!(s.contains("wrk.headers[\"Authorization\"] = \"Bearer P1:k\""));
        assert!(s.contains("wrk.headers[\"Content-Type\"] = \"application/json\""));
        assert!(s.contains("bench-t"));
        assert!(!s.contains("function response"), "the load must not make wrk parse bodies");
        assert!(s.contains("latency:percentile(99.9)"));
        let c = script(find("load-user").unwrap(), &m, "Bearer P1:k", Some(5));
        assert!(c.contains("function response"));
        assert!(c.contains("if checked >= 5 then"));
        assert!(!c.contains("Content-Type"));
    }

    #[test]
    fn lua_strings_are_escaped_and_patterns_split() {
        assert_eq!(lua_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(split_pattern("Ubench{i}"), ("Ubench".to_owned(), String::new()));
        assert_eq!(split_pattern("a{i}b"), ("a".to_owned(), "b".to_owned()));
    }

    #[test]
    fn needs_follow_the_seeded_data() {
        let mut m = meta();
        assert_eq!(Needs::UserIds.missing(&m), None);
        assert_eq!(Needs::Tenants.missing(&m), None);
        assert!(Needs::OutboundTokens.missing(&m).is_some());
        m.outbound_app_id = Some("bench-app".into());
        assert_eq!(Needs::OutboundTokens.missing(&m), None);
        m.user_id_pattern = None;
        assert!(Needs::UserIds.missing(&m).is_some());
        assert!(Needs::OutboundTokens.missing(&m).is_some());
        m.tenants = 0;
        assert!(Needs::Tenants.missing(&m).is_some());
    }
}
