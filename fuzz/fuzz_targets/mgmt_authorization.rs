//! The management `Authorization` header: `Bearer <projectId>:<managementKey>` split by
//! `parse_bearer`, then the key id read by `key_id_of`, both before any store is asked. Any
//! text must be refused with a 401 or give parts that are really in the header.
#![no_main]

use idvault_api::error::describe;
use idvault_core::error::Error;
use idvault_core::project::{key_id_of, parse_bearer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // axum hands over a header only as text (visible ASCII); any UTF-8 is a wider net.
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    match parse_bearer(header) {
        Ok((project, key)) => {
            assert!(!key.is_empty(), "an empty key is accepted");
            assert!(header.contains(project.as_str()) && header.contains(key), "parts not from the header");
            if let Some(key_id) = key_id_of(key) {
                assert!(key.contains(key_id));
                assert!(key_id.bytes().all(|b| b.is_ascii_alphanumeric()));
            }
        }
        Err(e) => {
            let status = describe(e.code()).0;
            assert_eq!(status.as_u16(), 401, "a malformed header answers {status}");
            // The refusal never repeats what was presented (it may hold a key): its text is a
            // fixed one (`&'static str`), not built from the header.
            assert!(matches!(e, Error::Unauthorized(_)), "{e:?}");
        }
    }
    let _ = key_id_of(header);
});
