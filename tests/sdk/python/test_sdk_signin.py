"""OAuth sign-in and sessions through the official SDK: `oauth.start`, `oauth.exchange_token`,
`validate_session`, `refresh_session`, `validate_and_refresh_session`, `me` and `logout`, against
idvault in front of a real OIDC provider (oidc-provider). The browser part (provider login and
consent forms) is driven with httpx."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
import pytest
from descope import AuthException

APP_REDIRECT = "http://app.example/done"


def _mgmt(server) -> dict:
    return {"Authorization": f"Bearer {server.project_id}:{server.management_key}"}


@pytest.fixture(scope="module")
def signin_ready(idvault_server, oauth_server):
    callback = f"{idvault_server.base_url}/v1/auth/oauth/callback"
    httpx.post(f"{oauth_server}/__test/redirect_uris", json={"redirect_uris": [callback]}, timeout=10).raise_for_status()
    r = httpx.post(
        f"{idvault_server.base_url}/v1/mgmt/provider/set",
        json={
            "name": "acme",
            "clientId": "idvault-test",
            "clientSecret": "idvault-test-secret",
            "issuer": oauth_server,
            "scopes": ["openid", "email", "profile", "offline_access"],
        },
        headers=_mgmt(idvault_server),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    r = httpx.post(
        f"{idvault_server.base_url}/v1/mgmt/auth/settings",
        json={"redirectUrls": [APP_REDIRECT]},
        headers=_mgmt(idvault_server),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return oauth_server


def _browse(url: str, account: str) -> str:
    """Follows the provider's redirects and submits its login and consent forms; answers the
    code idvault hands to the application's redirect URL."""
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        form = None
        for _ in range(20):
            if url.startswith(APP_REDIRECT):
                return parse_qs(urlparse(url).query)["code"][0]
            resp = browser.post(url, data=form) if form else browser.get(url)
            form = None
            if 300 <= resp.status_code < 400:
                url = urljoin(url, resp.headers["location"])
                continue
            assert resp.status_code == 200, f"{url}: {resp.status_code} {resp.text[:300]}"
            if re.search(r'name="prompt" value="login"', resp.text):
                form = {"prompt": "login", "login": account, "password": "anything"}
            elif re.search(r'name="prompt" value="consent"', resp.text):
                form = {"prompt": "consent"}
            else:
                raise AssertionError(f"unexpected page at {url}: {resp.text[:300]}")
    raise AssertionError("too many redirects")


def signin_ready_project(client) -> str:
    return client._auth.project_id


def test_oauth_sign_in_then_sessions_with_the_sdk(client, signin_ready):
    account = f"sdk-{uuid.uuid4().hex[:10]}"
    started = client.oauth.start("acme", return_url=APP_REDIRECT)
    assert started["url"].startswith(signin_ready)

    code = _browse(started["url"], account)
    jwt = client.oauth.exchange_token(code)
    assert jwt["firstSeen"] is True
    assert jwt["user"]["email"] == f"{account}@example.com"
    user_id = jwt["user"]["userId"]
    assert jwt["userId"] == user_id
    assert jwt["projectId"] == signin_ready_project(client)
    session = jwt["sessionToken"]["jwt"]
    refresh = jwt["refreshSessionToken"]["jwt"]
    assert jwt["sessionToken"]["drn"] == "DS"
    assert jwt["refreshSessionToken"]["drn"] == "DSR"

    # Validated locally by the SDK with the keys idvault publishes at /v2/keys/<projectId>.
    claims = client.validate_session(session)
    assert claims["sub"] == user_id
    assert claims["userId"] == user_id

    # Refresh JWTs rotate: the answer carries a new one, and the one presented stops working.
    refreshed = client.refresh_session(refresh)
    assert refreshed["sessionToken"]["sub"] == user_id
    rotated = refreshed["refreshSessionToken"]["jwt"]
    assert rotated != refresh
    assert refreshed["refreshSessionToken"]["sid"] == jwt["refreshSessionToken"]["sid"]
    refresh = rotated
    both = client.validate_and_refresh_session(session, refresh)
    assert both["sessionToken"]["sub"] == user_id

    me = client.me(refresh)
    assert me["userId"] == user_id
    assert me["email"] == f"{account}@example.com"

    # The provider tokens issued at sign-in are in the vault, and they refresh.
    login_id = f"{account}@example.com"
    token = client.mgmt.user.get_provider_token(login_id, "acme", withRefreshToken=True)
    assert token["accessToken"] and token["refreshToken"]
    forced = client.mgmt.user.get_provider_token(login_id, "acme", forceRefresh=True)
    assert forced["accessToken"] != token["accessToken"]

    client.logout(refresh)
    with pytest.raises(AuthException) as exc:
        client.refresh_session(refresh)
    assert exc.value.status_code == 401
    assert "E064001" in str(exc.value.error_message)


def test_exchange_of_a_used_or_unknown_code_fails(client, signin_ready):
    code = _browse(client.oauth.start("acme", return_url=APP_REDIRECT)["url"], f"sdk-{uuid.uuid4().hex[:10]}")
    client.oauth.exchange_token(code)
    for bad in (code, "not-a-code"):
        with pytest.raises(AuthException) as exc:
            client.oauth.exchange_token(bad)
        assert exc.value.status_code == 400
        assert "E113005" in str(exc.value.error_message)


def test_start_with_a_disallowed_redirect_fails(client, signin_ready):
    with pytest.raises(AuthException) as exc:
        client.oauth.start("acme", return_url="http://evil.example/")
    assert exc.value.status_code == 400
    assert "E113002" in str(exc.value.error_message)
