"""The brute-force limit as the official Descope Python SDK (descope==2.16.1) reports it.

After a client address has presented its budget of wrong management keys, idvault answers 429
`E130429` with `Retry-After`; the SDK raises `RateLimitException` (not `AuthException`) with the
header's seconds in `rate_limit_parameters["Retry-After"]`, and it puts the Descope errorCode in
`status_code`. The server here has its own small budget (3, refilling one a minute, so nothing
refills during the test), apart from the suite's shared server."""

from __future__ import annotations

import pytest
from descope import (
    API_RATE_LIMIT_RETRY_AFTER_HEADER,
    ERROR_TYPE_API_RATE_LIMIT,
    AuthException,
    DescopeClient,
    RateLimitException,
)

from idvault_sdk_helpers import tampered_key, unique_login_id

BURST = 3
# Read by conftest's own_idvault_server fixture.
SERVE_ARGS = ["--credential-failure-limit", "1", "--credential-failure-burst", str(BURST)]


def test_repeated_wrong_management_keys_raise_rate_limit_exception_with_retry_after(own_idvault_server):
    server = own_idvault_server
    # The constructor's license handshake presents the wrong key: the first failure.
    bad = DescopeClient(
        project_id=server.project_id,
        management_key=tampered_key(server.management_key),
        base_url=server.base_url,
    )
    refused = 0
    limited = None
    for _ in range(BURST + 2):
        try:
            bad.mgmt.user.load(unique_login_id("victim"))
        except RateLimitException as exc:
            limited = exc
            break
        except AuthException as exc:
            assert exc.status_code == 401, exc
            refused += 1
    assert limited is not None, f"never limited after {refused} refusals"
    assert refused == BURST - 1, "the handshake and the loads share the budget"
    assert limited.error_type == ERROR_TYPE_API_RATE_LIMIT
    assert limited.status_code == "E130429"
    assert limited.error_description == "Too many requests"
    assert "retry after" in limited.error_message
    retry_after = limited.rate_limit_parameters[API_RATE_LIMIT_RETRY_AFTER_HEADER]
    assert isinstance(retry_after, int) and 1 <= retry_after <= 60, limited.rate_limit_parameters

    # Other calls from this address are refused before any key check, the right key's included
    # (every client here connects from 127.0.0.1; other addresses are unaffected, see the API
    # suite's brute_force.rs).
    with pytest.raises(RateLimitException):
        bad.mgmt.user.search_all()
    good = DescopeClient(
        project_id=server.project_id, management_key=server.management_key, base_url=server.base_url
    )
    with pytest.raises(RateLimitException) as exc:
        good.mgmt.user.search_all()
    assert exc.value.rate_limit_parameters[API_RATE_LIMIT_RETRY_AFTER_HEADER] >= 1
