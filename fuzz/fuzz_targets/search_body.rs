//! The user search body (`POST /v2/mgmt/user/search` and `/search/test`): the bytes read as the
//! JSON extractor reads them, turned into a query and validated, as the server does before any
//! store sees it. Any input must become a valid query or a 4xx, never a panic.
#![no_main]

use std::future::Future;
use std::task::{Context, Poll, Waker};

use idvault_api::error::{describe, ApiError};
use idvault_api::extract::parse_json_body;
use idvault_api::routes::users::dto::SearchRequest;
use idvault_core::limits::SEARCH_MAX_LIMIT;
use idvault_core::user::search::check_filter_len;
use libfuzzer_sys::fuzz_target;

/// Runs a future that never waits (the stand-in role resolver answers at once).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("nothing here waits"),
    }
}

fn assert_4xx(error: ApiError) {
    let status = describe(error.code()).0;
    assert!(status.is_client_error(), "a bad search body answers {status}");
}

fuzz_target!(|data: &[u8]| {
    let request: SearchRequest = match parse_json_body(data) {
        Ok(request) => request,
        Err(e) => return assert_4xx(e),
    };
    let test_only = data.first().is_some_and(|b| b & 1 == 1);
    // The store's resolver checks the list's length first, as this stand-in does.
    let query = now(request.into_query_with(test_only, |_tenant, ids| async move {
        check_filter_len("tenantRoleIds", ids.len())?;
        Ok(ids)
    }));
    let query = match query {
        Ok(query) => query,
        Err(e) => return assert_4xx(e.into()),
    };
    match query.validate() {
        Ok(()) => {
            assert!((1..=SEARCH_MAX_LIMIT).contains(&query.limit), "limit {}", query.limit);
            let _ = query.offset();
        }
        Err(e) => assert_4xx(e.into()),
    }
});
