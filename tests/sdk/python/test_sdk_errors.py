"""Errors as the official Descope Python SDK (descope==2.16.1) surfaces them from idvault.

The SDK raises `AuthException(status_code, "server error", <response body text>)` for any
non-2xx answer, so Descope error codes are checked as substrings of `error_message`."""

from __future__ import annotations

import json
import logging

import pytest
from descope import AuthException, DescopeClient
from descope.exceptions import ERROR_TYPE_INVALID_ARGUMENT, ERROR_TYPE_SERVER_ERROR
from descope.management.common import MgmtV1

from idvault_sdk_helpers import tampered_key, unique_login_id

USER_NOT_FOUND = "E112102"
USER_ALREADY_EXISTS = "E062107"


def _client_with_key(server, key: str) -> DescopeClient:
    return DescopeClient(project_id=server.project_id, management_key=key, base_url=server.base_url)


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param(lambda good: tampered_key(good), id="right-key-id-wrong-secret"),
        pytest.param(lambda good: "idv_doesnotexist.secretsecretsecret", id="unknown-key-id"),
        pytest.param(lambda good: "not-a-key", id="malformed"),
    ],
)
def test_wrong_management_key_is_401(idvault_server, client, caplog, bad_key):
    login_id = unique_login_id("victim")
    client.mgmt.user.create(login_id=login_id)

    caplog.set_level(logging.WARNING)
    # Construction does not raise: the SDK only logs that the license handshake failed.
    bad = _client_with_key(idvault_server, bad_key(idvault_server.management_key))
    assert any("License handshake" in r.getMessage() and "401" in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]

    with pytest.raises(AuthException) as exc:
        bad.mgmt.user.load(login_id)
    assert exc.value.status_code == 401
    assert exc.value.error_type == ERROR_TYPE_SERVER_ERROR

    with pytest.raises(AuthException) as exc:
        bad.mgmt.user.create(login_id=unique_login_id("intruder"))
    assert exc.value.status_code == 401


def test_key_of_another_project_id_is_401(idvault_server, client):
    other_project = "P" + "x" * (len(idvault_server.project_id) - 1)
    bad = DescopeClient(
        project_id=other_project, management_key=idvault_server.management_key, base_url=idvault_server.base_url
    )
    with pytest.raises(AuthException) as exc:
        bad.mgmt.user.search_all()
    assert exc.value.status_code == 401


def test_unknown_user_load_is_400_e112102(client):
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.load(unique_login_id("ghost"))
    assert exc.value.status_code == 400
    assert USER_NOT_FOUND in exc.value.error_message
    body = json.loads(exc.value.error_message)
    assert body["errorCode"] == USER_NOT_FOUND
    assert body["errorDescription"]


def test_duplicate_create_is_409_e062107(client):
    login_id = unique_login_id("dup")
    client.mgmt.user.create(login_id=login_id)
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.create(login_id=login_id)
    assert exc.value.status_code == 409
    assert USER_ALREADY_EXISTS in exc.value.error_message
    # A test user cannot take a regular user's login id either.
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.create_test_user(login_id=login_id)
    assert exc.value.status_code == 409
    assert USER_ALREADY_EXISTS in exc.value.error_message


def test_search_limit_over_1000_is_400(client):
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.search_all(limit=1001)
    assert exc.value.status_code == 400
    # The largest page size is accepted.
    assert "users" in client.mgmt.user.search_all(limit=1000)


def test_search_negative_page_is_refused_by_the_sdk_itself(client):
    # descope 2.16.1 validates pagination client-side (UserBase._validate_search_pagination) and
    # raises before sending any request.
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.search_all(page=-1)
    assert exc.value.status_code == 400
    assert exc.value.error_type == ERROR_TYPE_INVALID_ARGUMENT
    assert exc.value.error_message == "page must be non-negative"

    with pytest.raises(AuthException) as exc:
        client.mgmt.user.search_all(limit=-1)
    assert exc.value.error_type == ERROR_TYPE_INVALID_ARGUMENT
    assert exc.value.error_message == "limit must be non-negative"


def test_search_negative_page_is_refused_by_the_server_too(client):
    # An older or different SDK may send page=-1; the server must refuse it, not clamp it.
    # Sent through the SDK's own management HTTP client (same headers, same error handling).
    http = client.mgmt.user._http
    with pytest.raises(AuthException) as exc:
        http.post(MgmtV1.users_search_path, body={"limit": 10, "page": -1})
    assert exc.value.status_code == 400
    with pytest.raises(AuthException) as exc:
        http.post(MgmtV1.users_search_path, body={"limit": -1, "page": 0})
    assert exc.value.status_code == 400


def test_load_users_requires_ids_client_side(client):
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.load_users([])
    assert exc.value.error_type == ERROR_TYPE_INVALID_ARGUMENT


def test_invalid_status_filter_is_400(client):
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.search_all(statuses=["sleeping"])
    assert exc.value.status_code == 400
