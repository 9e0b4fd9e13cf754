//! The parts of docs/api.md that the code declares, rendered from it so that the document
//! cannot drift: the error table (from [`crate::error::ERROR_CODES`]) and the limits table (from
//! `idvault_core::limits` and the HTTP layer's defaults). Each sits in docs/api.md between
//! `<!-- BEGIN GENERATED: <name> ... -->` and `<!-- END GENERATED: <name> -->`; the test
//! `crates/idvault/tests/api/contract_docs.rs` fails when the committed text differs, and
//! `UPDATE_DOCS=1 cargo test -p idvault --test api contract_docs` rewrites it.

use idvault_core::limits::*;

use crate::error::{ErrorCodeDoc, ERROR_CODES};
use crate::{FailureLimit, RateLimit};

/// The generated blocks of docs/api.md: (name, rendered Markdown).
pub fn api_md_blocks() -> Vec<(&'static str, String)> {
    vec![("errors", error_table()), ("limits", limits_table())]
}

/// `doc` with every generated block replaced by its rendering; an error names a block whose
/// markers are missing or out of order.
pub fn render_api_md(doc: &str) -> Result<String, String> {
    let mut out = doc.to_owned();
    for (name, body) in api_md_blocks() {
        let begin = format!("<!-- BEGIN GENERATED: {name} ");
        let end = format!("<!-- END GENERATED: {name} -->");
        let start = out.find(&begin).ok_or_else(|| format!("no `{begin}...-->` line"))?;
        let body_start = out[start..].find('\n').map(|i| start + i + 1).ok_or("marker line without end")?;
        let body_end = out[body_start..]
            .find(&end)
            .map(|i| body_start + i)
            .ok_or_else(|| format!("no `{end}` after `{begin}...`"))?;
        out.replace_range(body_start..body_end, &body);
    }
    Ok(out)
}

/// The "Errors" table: one row per Descope code, by HTTP status, then code.
pub fn error_table() -> String {
    let mut rows: Vec<&ErrorCodeDoc> = ERROR_CODES.iter().collect();
    rows.sort_by_key(|row| (row.status.as_u16(), row.error_code));
    let mut out = String::from("| HTTP | errorCode | errorDescription | when |\n|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            row.status.as_u16(),
            row.error_code,
            row.description,
            row.when
        ));
    }
    out
}

/// A limits table row: what is limited, the limit, and the constants it is rendered from (the
/// test below checks that every constant of `idvault_core::limits` is shown somewhere).
struct Limit {
    what: &'static str,
    limit: String,
    from: &'static [&'static str],
}

/// `limit!("what", "text with {CONST}...", CONST, ...)`: a row whose text names its constants.
macro_rules! limit {
    ($what:literal, $($constant:ident),* => $limit:expr) => {
        Limit { what: $what, limit: $limit, from: &[$(stringify!($constant)),*] }
    };
}

/// Constants of `idvault_core::limits` that are not a client-visible limit (internal pacing).
const NOT_IN_THE_TABLE: &[&str] = &["SIGNING_KEY_RELOAD_INTERVAL_MS"];

fn limits() -> Vec<Limit> {
    vec![
        limit!("request body", MAX_BODY_BYTES => size(MAX_BODY_BYTES)),
        limit!("request body of the outbound batch uploads (`.../oauthtoken/batch/upload`)", MAX_BATCH_BODY_BYTES =>
            size(MAX_BATCH_BODY_BYTES)),
        limit!("tokens per outbound batch upload", MAX_BATCH_TOKENS =>
            format!("{} (more: 400, nothing written)", count(MAX_BATCH_TOKENS))),
        limit!("search `limit`", SEARCH_MAX_LIMIT, SEARCH_DEFAULT_LIMIT => format!(
            "1 to {} (0 or absent = {}); a larger value is refused, not clamped",
            count(SEARCH_MAX_LIMIT as usize),
            count(SEARCH_DEFAULT_LIMIT as usize)
        )),
        limit!("values per search filter list", MAX_FILTER_VALUES => count(MAX_FILTER_VALUES)),
        limit!("values in all filters of one search", MAX_SEARCH_VALUES_TOTAL => count(MAX_SEARCH_VALUES_TOTAL)),
        limit!("custom attributes, tenants (`tenantRoleNames`/`tenantRoleIds`) per search", MAX_SEARCH_FILTERS =>
            format!("{} each", count(MAX_SEARCH_FILTERS))),
        limit!("custom attribute name", MAX_ATTRIBUTE_NAME_LEN => format!(
            "1 to {MAX_ATTRIBUTE_NAME_LEN} bytes, printable, no `\"` or `\\`, no surrounding spaces"
        )),
        limit!("sort keys per search", MAX_SORT_FIELDS => count(MAX_SORT_FIELDS)),
        limit!("free-text search string", MAX_SEARCH_TEXT_LEN => format!("{MAX_SEARCH_TEXT_LEN} bytes")),
        limit!("users per batch create", MAX_BATCH_USERS => count(MAX_BATCH_USERS)),
        limit!("ids per `users/load`", MAX_LOAD_USERS => count(MAX_LOAD_USERS)),
        limit!("login ids per user", MAX_LOGIN_IDS => count(MAX_LOGIN_IDS)),
        limit!("roles, tenants, SSO app ids per user", MAX_LIST_ITEMS => format!("{} each", count(MAX_LIST_ITEMS))),
        limit!("any string field (login id, email, name, picture...)", MAX_FIELD_LEN =>
            format!("{} bytes, no control characters", count(MAX_FIELD_LEN))),
        limit!("user id in a request", MAX_USER_ID_LEN =>
            format!("1 to {MAX_USER_ID_LEN} bytes, no control characters")),
        limit!("custom attributes per user or tenant", MAX_CUSTOM_ATTRIBUTES_BYTES =>
            format!("{} serialized", size(MAX_CUSTOM_ATTRIBUTES_BYTES))),
        limit!("provider access or refresh token", MAX_TOKEN_LEN => size(MAX_TOKEN_LEN)),
        limit!("scopes per token", MAX_SCOPES => count(MAX_SCOPES)),
        limit!("provider name", MAX_PROVIDER_NAME_LEN => format!("1 to {MAX_PROVIDER_NAME_LEN} of `a-z 0-9 - _`")),
        limit!("provider URL (issuer, endpoints)", MAX_URL_LEN => format!(
            "absolute `https://` (http only for `--provider-allowed-hosts`), {} bytes; see [security.md](security.md)",
            count(MAX_URL_LEN)
        )),
        limit!("outbound apps per project (providers count too)", MAX_OUTBOUND_APPS => format!("{} (checked when an app is created)", count(MAX_OUTBOUND_APPS))),
        limit!("outbound app URL parameters (`authorizationUrlParams`, `tokenUrlParams`) and `prompt` values", MAX_APP_URL_PARAMS =>
            format!("{} each", count(MAX_APP_URL_PARAMS))),
        limit!("outbound tokens per owner (user, user and tenant, or tenant) and app: one per scope set", MAX_TOKENS_PER_OWNER =>
            format!("{} (a new scope set beyond it: 400)", count(MAX_TOKENS_PER_OWNER))),
        limit!("outbound app name, token id, tenant id, `grantedBy`, `externalIdentifier`, `accessTokenType`", MAX_OUTBOUND_TEXT_LEN =>
            format!("{MAX_OUTBOUND_TEXT_LEN} bytes, no control characters")),
        limit!("allowed redirect URLs of a project", MAX_REDIRECT_URLS, MAX_URL_LEN =>
            format!("{} URLs, each absolute `http(s)://`, {} bytes", count(MAX_REDIRECT_URLS), count(MAX_URL_LEN))),
        limit!("audit event (`/v1/mgmt/audit/event`) `action`, `actorId`, `tenantId`, `userId`", MAX_AUDIT_FIELD_LEN =>
            format!("{MAX_AUDIT_FIELD_LEN} bytes, no control characters")),
        limit!("audit event `data`", MAX_AUDIT_DATA_BYTES => format!("{} serialized", size(MAX_AUDIT_DATA_BYTES))),
        limit!("records per audit search page (`limit`, idvault extension)", AUDIT_SEARCH_MAX_LIMIT =>
            format!("{} (also the default)", count(AUDIT_SEARCH_MAX_LIMIT))),
        limit!("sign-in `redirectURL`", MAX_REDIRECT_URL_LEN =>
            format!("{} bytes, no `code` query parameter", count(MAX_REDIRECT_URL_LEN))),
        limit!("sign-in `loginHint`", MAX_LOGIN_HINT_LEN => format!("{MAX_LOGIN_HINT_LEN} bytes")),
        limit!("pending sign-ins and outbound connects per project (started, unexpired)", MAX_PENDING_SIGN_INS =>
            format!("{} (then 429)", count(MAX_PENDING_SIGN_INS as usize))),
        limit!("`/v1/auth/*` and outbound connect (`/v1/outbound/oauth/*`, `/v1/mgmt/outbound/app/connect`) requests per client address (`--auth-rate-limit`, `--auth-rate-burst`)", => format!(
            "{} per second, bursts of {} by default; `0` disables",
            RateLimit::AUTH_DEFAULT.per_second,
            RateLimit::AUTH_DEFAULT.burst
        )),
        limit!("wrong management keys and forged session tokens per client address, before its requests with \
            credentials answer 429 (`--credential-failure-limit`, `--credential-failure-burst`)", => format!(
            "bursts of {}, then {} a minute, by default; `0` disables",
            FailureLimit::DEFAULT.burst,
            FailureLimit::DEFAULT.per_minute
        )),
        limit!("`errorMessage` of an error answer", MAX_ERROR_MESSAGE_LEN => format!(
            "{} bytes: a message repeating a value far over its limit is cut, ending in `…`",
            count(MAX_ERROR_MESSAGE_LEN)
        )),
        limit!("JSON nesting of a request body", =>
            "128 levels in what a request reads (serde_json's bound); deeper: 400 `E011001`".to_owned()),
        limit!("NUL character (`\\u0000`, `%00`)", =>
            "refused anywhere in a request (`E011004`), on every backend".to_owned()),
    ]
}

/// The constants declared in `limits_source` (the text of crates/core/src/limits.rs) that the
/// limits table neither shows nor lists as internal: a new limit must be documented.
pub fn undocumented_limits(limits_source: &str) -> Vec<String> {
    let shown: Vec<&str> = limits().iter().flat_map(|row| row.from.iter().copied()).collect();
    limits_source
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("pub const "))
        .map(|rest| rest.split(':').next().unwrap_or_default().trim())
        .filter(|name| !shown.contains(name) && !NOT_IN_THE_TABLE.contains(name))
        .map(str::to_owned)
        .collect()
}

/// The "Limits" table.
pub fn limits_table() -> String {
    let mut out = String::from("| what | limit |\n|---|---|\n");
    for row in limits() {
        out.push_str(&format!("| {} | {} |\n", row.what, row.limit));
    }
    out
}

/// `10000` as `10,000`.
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte size in the largest binary unit that divides it: `1 MiB`, `16 KiB`, `300 bytes`.
fn size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{} bytes", count(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_constant_is_in_the_table_or_named_internal() {
        let undocumented = undocumented_limits(include_str!("../../core/src/limits.rs"));
        assert!(
            undocumented.is_empty(),
            "idvault_core::limits constants missing from docs/api.md's limits table \
             (crates/api/src/docs.rs), or to be listed as internal there: {undocumented:?}"
        );
        let bogus =
            "pub const NEW_LIMIT: usize = 1;\n/// Most sort keys\npub const MAX_SORT_FIELDS: usize = 5;";
        assert_eq!(undocumented_limits(bogus), vec!["NEW_LIMIT".to_owned()]);
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(count(5), "5");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(10_000), "10,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(size(1024 * 1024), "1 MiB");
        assert_eq!(size(16 * 1024), "16 KiB");
        assert_eq!(size(1500), "1,500 bytes");
    }

    #[test]
    fn blocks_are_replaced_between_their_markers_only() {
        let doc =
            "intro\n<!-- BEGIN GENERATED: errors (x) -->\nold\n<!-- END GENERATED: errors -->\nmiddle\n\
                   <!-- BEGIN GENERATED: limits (y) -->\n<!-- END GENERATED: limits -->\nend\n";
        let out = render_api_md(doc).unwrap();
        assert!(out.starts_with("intro\n<!-- BEGIN GENERATED: errors (x) -->\n| HTTP |"));
        assert!(!out.contains("old"));
        assert!(out.contains("<!-- END GENERATED: errors -->\nmiddle\n"));
        assert!(out.ends_with("<!-- END GENERATED: limits -->\nend\n"));
        assert_eq!(render_api_md(&out).unwrap(), out, "rendering is idempotent");
        assert!(render_api_md("no markers").is_err());
    }
}
