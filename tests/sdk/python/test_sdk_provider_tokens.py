"""Provider tokens: stored through idvault's PUT extension, read through the SDK's
`client.mgmt.user.get_provider_token` (descope==2.16.1)."""

from __future__ import annotations

import time

import pytest
from descope import AuthException

from idvault_sdk_helpers import put_provider_token, tampered_key, unique_login_id

PROVIDER_TOKEN_NOT_FOUND = "E112103"
USER_NOT_FOUND = "E112102"


def _put_ok(server, login_id, **kwargs) -> None:
    resp = put_provider_token(server, login_id, **kwargs)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {}


@pytest.fixture
def user_login(client) -> str:
    login_id = unique_login_id("tokens")
    client.mgmt.user.create(login_id=login_id, verified_email=True)
    return login_id


def test_get_provider_token_without_refresh_token(client, idvault_server, user_login):
    expiration = int(time.time()) + 3600
    _put_ok(
        idvault_server,
        user_login,
        provider="google",
        provider_user_id="google-uid-123",
        access_token="ya29.access-one",
        refresh_token="1//refresh-one",
        expiration=expiration,
        scopes=["openid", "email", "https://www.googleapis.com/auth/calendar"],
    )

    token = client.mgmt.user.get_provider_token(user_login, "google")
    assert token["provider"] == "google"
    assert token["providerUserId"] == "google-uid-123"
    assert token["accessToken"] == "ya29.access-one"
    assert token["expiration"] == expiration
    assert token["scopes"] == ["openid", "email", "https://www.googleapis.com/auth/calendar"]
    assert "refreshToken" not in token


def test_get_provider_token_with_refresh_token(client, idvault_server, user_login):
    expiration = int(time.time()) + 3600
    _put_ok(
        idvault_server,
        user_login,
        provider="google",
        provider_user_id="google-uid-456",
        access_token="ya29.access-two",
        refresh_token="1//refresh-two",
        expiration=expiration,
        scopes=["openid"],
    )

    token = client.mgmt.user.get_provider_token(user_login, "google", withRefreshToken=True)
    assert token["refreshToken"] == "1//refresh-two"
    assert token["accessToken"] == "ya29.access-two"
    assert token["providerUserId"] == "google-uid-456"
    assert token["expiration"] == expiration
    assert token["scopes"] == ["openid"]

    # Asking explicitly for no refresh token leaves it out again.
    token = client.mgmt.user.get_provider_token(user_login, "google", withRefreshToken=False)
    assert "refreshToken" not in token


def test_unknown_provider_for_user_is_404(client, idvault_server, user_login):
    _put_ok(idvault_server, user_login, provider="google", provider_user_id="g-1", access_token="a")
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.get_provider_token(user_login, "github")
    assert exc.value.status_code == 404
    assert PROVIDER_TOKEN_NOT_FOUND in exc.value.error_message


def test_user_without_any_token_is_404(client, user_login):
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.get_provider_token(user_login, "google")
    assert exc.value.status_code == 404


def test_token_of_unknown_user(client, idvault_server):
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.get_provider_token(unique_login_id("nobody"), "google")
    assert exc.value.status_code == 400
    assert USER_NOT_FOUND in exc.value.error_message

    resp = put_provider_token(
        idvault_server, unique_login_id("nobody"), provider="google", provider_user_id="g", access_token="a"
    )
    assert resp.status_code == 400
    assert resp.json()["errorCode"] == USER_NOT_FOUND


def test_second_put_replaces_token(client, idvault_server, user_login):
    _put_ok(
        idvault_server,
        user_login,
        provider="google",
        provider_user_id="g-old",
        access_token="old-access",
        refresh_token="old-refresh",
        expiration=int(time.time()) + 60,
        scopes=["openid"],
    )
    new_expiration = int(time.time()) + 7200
    _put_ok(
        idvault_server,
        user_login,
        provider="google",
        provider_user_id="g-new",
        access_token="new-access",
        refresh_token="new-refresh",
        expiration=new_expiration,
        scopes=["openid", "profile"],
    )

    token = client.mgmt.user.get_provider_token(user_login, "google", withRefreshToken=True)
    assert token["accessToken"] == "new-access"
    assert token["refreshToken"] == "new-refresh"
    assert token["providerUserId"] == "g-new"
    assert token["expiration"] == new_expiration
    assert token["scopes"] == ["openid", "profile"]


def test_tokens_are_per_provider(client, idvault_server, user_login):
    _put_ok(idvault_server, user_login, provider="google", provider_user_id="g", access_token="google-access")
    _put_ok(idvault_server, user_login, provider="github", provider_user_id="gh", access_token="github-access")
    assert client.mgmt.user.get_provider_token(user_login, "google")["accessToken"] == "google-access"
    assert client.mgmt.user.get_provider_token(user_login, "github")["accessToken"] == "github-access"


def test_expired_token_is_returned_as_stored(client, idvault_server, user_login):
    expired_at = int(time.time()) - 3600
    _put_ok(
        idvault_server,
        user_login,
        provider="google",
        provider_user_id="g-expired",
        access_token="stale-access",
        refresh_token="stale-refresh",
        expiration=expired_at,
        scopes=["openid"],
    )
    token = client.mgmt.user.get_provider_token(user_login, "google", withRefreshToken=True)
    assert token["accessToken"] == "stale-access"
    assert token["refreshToken"] == "stale-refresh"
    assert token["expiration"] == expired_at
    assert token["providerUserId"] == "g-expired"


def test_put_with_wrong_key_is_refused(client, idvault_server, user_login):
    resp = put_provider_token(
        idvault_server,
        user_login,
        provider="google",
        provider_user_id="g",
        access_token="a",
        management_key=tampered_key(idvault_server.management_key),
    )
    assert resp.status_code == 401
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.get_provider_token(user_login, "google")
    assert exc.value.status_code == 404


def test_deleted_user_loses_tokens(client, idvault_server):
    login_id = unique_login_id("token-owner")
    client.mgmt.user.create(login_id=login_id)
    _put_ok(idvault_server, login_id, provider="google", provider_user_id="g", access_token="secret-access")
    client.mgmt.user.delete(login_id)
    # A new user under the same login id does not inherit the old user's tokens.
    client.mgmt.user.create(login_id=login_id)
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.get_provider_token(login_id, "google")
    assert exc.value.status_code == 404


def test_force_refresh_through_the_sdk_returns_a_refreshed_token(client, idvault_server, oauth_server):
    """forceRefresh=True makes idvault refresh at a real OAuth server (oidc-provider) and the SDK
    returns the new token; the provider is configured through idvault's provider extension."""
    import httpx

    auth = {"Authorization": f"Bearer {idvault_server.project_id}:{idvault_server.management_key}"}
    resp = httpx.post(
        f"{idvault_server.base_url}/v1/mgmt/provider/set",
        json={
            "name": "acme",
            "clientId": "idvault-test",
            "clientSecret": "idvault-test-secret",
            "issuer": oauth_server,
        },
        headers=auth,
        timeout=10.0,
    )
    assert resp.status_code == 200, resp.text

    # Not "refresh-...": the test OAuth server's refresh tokens are "refresh-<n>", and the secret
    # scan would find one inside this login id in the audit records.
    login_id = unique_login_id("forced")
    client.mgmt.user.create(login_id=login_id, verified_email=True)
    grant = httpx.post(f"{oauth_server}/__test/grant", json={"accountId": login_id}, timeout=10.0).json()
    _put_ok(
        idvault_server,
        login_id,
        provider="acme",
        provider_user_id=login_id,
        access_token=grant["access_token"],
        refresh_token=grant["refresh_token"],
        expiration=int(time.time()) + 3600,
        scopes=["openid", "email", "offline_access"],
    )

    plain = client.mgmt.user.get_provider_token(login_id, "acme")
    assert plain["accessToken"] == grant["access_token"]

    refreshed = client.mgmt.user.get_provider_token(login_id, "acme", withRefreshToken=True, forceRefresh=True)
    assert refreshed["accessToken"] != grant["access_token"]
    assert refreshed["refreshToken"] != grant["refresh_token"], "oidc-provider rotates refresh tokens"
    assert refreshed["expiration"] > int(time.time())

    # The refreshed token is what is stored now.
    again = client.mgmt.user.get_provider_token(login_id, "acme")
    assert again["accessToken"] == refreshed["accessToken"]

    # Revoked at the provider: the SDK surfaces idvault's E112105.
    httpx.post(f"{oauth_server}/__test/revoke", json={"account_id": login_id}, timeout=10.0)
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.get_provider_token(login_id, "acme", forceRefresh=True)
    assert exc.value.status_code == 409
    assert "E112105" in exc.value.error_message
