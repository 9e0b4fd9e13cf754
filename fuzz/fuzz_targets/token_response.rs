//! A provider's token endpoint answer (refresh and code exchange): status, `Content-Type` and
//! body, JSON or form-encoded, parsed by `idvault_oauth::grant_from`. Any answer must become a
//! grant with an access token or a provider failure, never a panic.
#![no_main]

use idvault_oauth::grant_from;
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;

/// The content types providers send, and none.
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "text/plain",
    "text/html",
    "",
];

fuzz_target!(|data: &[u8]| {
    let [status_hi, status_lo, kind, body @ ..] = data else {
        return;
    };
    // Statuses 100..=599, weighted towards the ones providers answer.
    let status = match status_hi % 4 {
        0 => 200,
        1 => 400,
        _ => 100 + u16::from_be_bytes([*status_hi, *status_lo]) % 500,
    };
    let content_type = CONTENT_TYPES[usize::from(*kind) % CONTENT_TYPES.len()];
    if let Ok(grant) = grant_from(status, content_type, body) {
        assert!((200..300).contains(&status), "a grant from an HTTP {status}");
        assert!(!grant.access_token.expose_secret().is_empty(), "a grant without an access token");
        assert!(grant.expires_in.is_none_or(|s| s > 0), "a non-positive lifetime is kept");
        assert!(grant.id_token.as_deref().is_none_or(|t| !t.is_empty()), "an empty id_token is kept");
    }
});
