"""Outbound applications (Descope's token vault) through the SDK's
`client.mgmt.outbound_application` (descope==2.16.1), sync and async: apps, user and tenant
tokens, API keys, batch uploads (all or nothing), refresh at a real OAuth server, deletes and
listing. `outbound_application_by_token` (inbound-app token auth) is answered 401."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from descope import AuthException, DescopeClient, DescopeClientAsync
from descope.management.common import AccessType, PromptType, URLParam

from idvault_sdk_helpers import unique_login_id

APP_NOT_FOUND = "E152101"
TOKEN_NOT_FOUND = "E152102"


def _app_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _user(client: DescopeClient, prefix: str) -> str:
    return client.mgmt.user.create(login_id=unique_login_id(prefix))["user"]["userId"]


def _tenant(client: DescopeClient) -> str:
    tenant_id = f"t{uuid.uuid4().hex[:12]}"
    client.mgmt.tenant.create(name=f"Tenant {tenant_id}", id=tenant_id)
    return tenant_id


def _error(exc: pytest.ExceptionInfo, status: int, code: str) -> None:
    assert exc.value.status_code == status, exc.value
    assert code in exc.value.error_message, exc.value.error_message


def test_create_load_update_list_and_delete_apps(client):
    ob = client.mgmt.outbound_application
    app_id = _app_id("crm")
    created = ob.create_application(
        name=f"CRM {app_id}",
        description="Test Description",
        logo="https://example.com/logo.png",
        id=app_id,
        client_secret="sdk-secret-value",
        client_id="test-client-id",
        authorization_url="https://crm.example.com/authorize",
        authorization_url_params=[URLParam("response_type", "code")],
        token_url="https://crm.example.com/token",
        token_url_params=[URLParam("grant_type", "authorization_code")],
        revocation_url="https://crm.example.com/revoke",
        default_scopes=["contacts.read"],
        default_redirect_url="https://myapp.example.com/callback",
        callback_domain="myapp.example.com",
        pkce=True,
        access_type=AccessType.OFFLINE,
        prompt=[PromptType.LOGIN, PromptType.CONSENT],
    )
    app = created["app"]
    assert app["id"] == app_id
    assert app["clientId"] == "test-client-id"
    assert app["authorizationUrlParams"] == [{"key": "response_type", "value": "code"}]
    assert app["pkce"] is True
    assert app["prompt"] == ["login", "consent"]
    assert app["accessType"] == "offline"
    assert "clientSecret" not in app and "sdk-secret-value" not in str(created)

    # The minimal create: Python sends id, description and logo as null.
    minimal = ob.create_application(name=f"Minimal {app_id}")
    assert minimal["app"]["id"]

    loaded = ob.load_application(app_id)
    assert loaded["app"]["name"] == f"CRM {app_id}"
    listed = ob.load_all_applications()["apps"]
    assert {app_id, minimal["app"]["id"]} <= {a["id"] for a in listed}
    assert "sdk-secret-value" not in str(listed)

    updated = ob.update_application(
        id=app_id,
        name=f"CRM 2 {app_id}",
        client_id="test-client-id",
        authorization_url="https://crm.example.com/authorize",
        token_url="https://crm.example.com/token",
    )
    assert updated["app"]["name"] == f"CRM 2 {app_id}"
    assert updated["app"]["hasClientSecret"] is True, "an absent secret is kept"
    assert updated["app"]["description"] == ""

    with pytest.raises(AuthException) as exc:
        ob.create_application(name="Other", id=app_id)
    _error(exc, 409, "E011409")

    ob.delete_application(app_id)
    with pytest.raises(AuthException) as exc:
        ob.load_application(app_id)
    _error(exc, 404, APP_NOT_FOUND)


def test_user_tokens_by_scopes_latest_and_deletes(client):
    ob = client.mgmt.outbound_application
    app_id = _app_id("docs")
    ob.create_application(name=f"Docs {app_id}", id=app_id)
    tenant_id = _tenant(client)
    user_id = _user(client, "outbound")

    assert ob.upload_user_token(app_id, user_id, access_token="read-only", scopes=["read"]) == {}
    ob.upload_user_token(
        app_id,
        user_id,
        refresh_token="rw-refresh",
        access_token="read-write",
        access_token_expiry=int(time.time()) + 3600,
        access_token_type="Bearer",
        scopes=["read", "write"],
        external_identifier="ext-1",
        id_token="not-stored",
        granted_by="admin@example.com",
    )
    ob.upload_user_token(app_id, user_id, tenant_id=tenant_id, access_token="tenant-scoped", scopes=["read"])

    token = ob.fetch_token_by_scopes(app_id, user_id, ["write"])["token"]
    assert token["accessToken"] == "read-write"
    assert token["hasRefreshToken"] is True
    assert "refreshToken" not in token
    assert token["grantedBy"] == "admin@example.com"
    assert token["externalIdentifier"] == "ext-1"
    # Unknown option keys are ignored (the SDK's own unit test passes {"refreshToken": True}).
    token = ob.fetch_token_by_scopes(app_id, user_id, ["read", "write"], {"withRefreshToken": True, "refreshToken": True})["token"]
    assert token["refreshToken"] == "rw-refresh"
    in_tenant = ob.fetch_token_by_scopes(app_id, user_id, ["read"], None, tenant_id)["token"]
    assert in_tenant["accessToken"] == "tenant-scoped"
    assert in_tenant["tenantId"] == tenant_id
    latest = ob.fetch_token(app_id, user_id)["token"]
    assert latest["accessToken"] == "tenant-scoped"
    with pytest.raises(AuthException) as exc:
        ob.fetch_token_by_scopes(app_id, user_id, ["admin"])
    _error(exc, 404, TOKEN_NOT_FOUND)

    assert ob.list_apps_with_user_token(user_id)["appIds"] == [app_id]
    assert ob.list_apps_with_user_token(user_id, tenant_id)["appIds"] == [app_id]

    ob.delete_token(in_tenant["id"])
    with pytest.raises(AuthException) as exc:
        ob.fetch_token(app_id, user_id, tenant_id)
    _error(exc, 404, TOKEN_NOT_FOUND)
    ob.delete_user_tokens(app_id=app_id)
    with pytest.raises(AuthException) as exc:
        ob.fetch_token(app_id, user_id)
    _error(exc, 404, TOKEN_NOT_FOUND)
    ob.upload_user_token(app_id, user_id, access_token="again")
    ob.delete_user_tokens(user_id=user_id)
    assert ob.list_apps_with_user_token(user_id)["appIds"] == []


def test_tenant_tokens_and_api_keys(client, idvault_server):
    ob = client.mgmt.outbound_application
    oauth_app, key_app = _app_id("org"), _app_id("keys")
    ob.create_application(name=f"Org {oauth_app}", id=oauth_app)
    # API-key apps: idvault's `appType` extension (no SDK parameter), so a plain HTTP call.
    resp = httpx.post(
        f"{idvault_server.base_url}/v1/mgmt/outbound/app/create",
        json={"id": key_app, "name": f"Keys {key_app}", "appType": "apikey"},
        headers={"Authorization": f"Bearer {idvault_server.project_id}:{idvault_server.management_key}"},
        timeout=10.0,
    )
    assert resp.status_code == 200, resp.text
    tenant_id = _tenant(client)
    user_id = _user(client, "keys")

    assert ob.upload_tenant_token(oauth_app, tenant_id, access_token="org-token", access_token_expiry=int(time.time()) + 600, scopes=["read"]) == {}
    token = ob.fetch_tenant_token_by_scopes(oauth_app, tenant_id, ["read"], {"withRefreshToken": True})["token"]
    assert token["accessToken"] == "org-token"
    assert token["tenantId"] == tenant_id
    assert token["userId"] == ""
    assert ob.fetch_tenant_token(oauth_app, tenant_id)["token"]["id"] == token["id"]

    assert ob.upload_user_api_key(key_app, user_id, "sk-user", tenant_id) == {}
    assert ob.upload_tenant_api_key(key_app, tenant_id, "sk-tenant") == {}
    user_key = ob.fetch_token(key_app, user_id, tenant_id)["token"]
    assert user_key["accessToken"] == "sk-user"
    assert user_key["accessTokenExpiry"] == 0
    assert user_key["hasRefreshToken"] is False
    assert ob.fetch_tenant_token(key_app, tenant_id)["token"]["accessToken"] == "sk-tenant"
    with pytest.raises(AuthException) as exc:
        ob.upload_user_api_key(oauth_app, user_id, "sk")
    _error(exc, 400, "E011004")


def test_refresh_at_the_provider_verify_refresh_and_invalid_grant(client, oauth_server):
    ob = client.mgmt.outbound_application
    app_id = _app_id("acme")
    ob.create_application(
        name=f"Acme {app_id}",
        id=app_id,
        client_id="idvault-test",
        client_secret="idvault-test-secret",
        discovery_url=f"{oauth_server}/.well-known/openid-configuration",
    )
    login_id = unique_login_id("obref")
    user_id = client.mgmt.user.create(login_id=login_id)["user"]["userId"]
    grant = httpx.post(f"{oauth_server}/__test/grant", json={"accountId": login_id}, timeout=10.0).json()

    # verifyRefresh: the refresh token is used at the provider before anything is stored.
    ob.upload_user_token(app_id, user_id, refresh_token=grant["refresh_token"], scopes=["openid"], verify_refresh=True)
    first = ob.fetch_token(app_id, user_id, None, {"withRefreshToken": True})["token"]
    assert first["accessToken"] and first["accessToken"] != grant["access_token"]
    assert first["refreshToken"] != grant["refresh_token"], "rotation followed"
    assert first["accessTokenExpiry"] > int(time.time())

    forced = ob.fetch_token_by_scopes(app_id, user_id, ["openid"], {"forceRefresh": True})["token"]
    assert forced["accessToken"] != first["accessToken"]

    with pytest.raises(AuthException) as exc:
        ob.upload_user_token(app_id, user_id, refresh_token="not-a-grant", scopes=["x"], verify_refresh=True)
    _error(exc, 409, "E112105")
    with pytest.raises(AuthException) as exc:
        ob.fetch_token_by_scopes(app_id, user_id, ["x"])
    _error(exc, 404, TOKEN_NOT_FOUND)

    httpx.post(f"{oauth_server}/__test/revoke", json={"account_id": login_id}, timeout=10.0)
    with pytest.raises(AuthException) as exc:
        ob.fetch_token(app_id, user_id, None, {"forceRefresh": True})
    _error(exc, 409, "E112105")
    assert ob.list_apps_with_user_token(user_id)["appIds"] == []


def test_batch_uploads_are_all_or_nothing(client):
    ob = client.mgmt.outbound_application
    app_id = _app_id("batch")
    ob.create_application(name=f"Batch {app_id}", id=app_id)
    users = [_user(client, "batch") for _ in range(3)]
    tenant_id = _tenant(client)

    tokens = [
        {"appId": app_id, "userId": u, "accessToken": f"a{i}", "refreshToken": f"r{i}", "scopes": ["read"]}
        for i, u in enumerate(users)
    ]
    tokens.append({"appId": app_id, "userId": users[0], "accessToken": "in-tenant", "tenantId": tenant_id})
    assert ob.batch_upload_user_tokens(tokens) == {"failures": []}
    for i, u in enumerate(users):
        assert ob.fetch_token_by_scopes(app_id, u, ["read"])["token"]["accessToken"] == f"a{i}"
    assert ob.fetch_token(app_id, users[0], tenant_id)["token"]["accessToken"] == "in-tenant"

    # One bad item: its failure is answered and nothing of the batch is written.
    bad = [
        {"appId": app_id, "userId": users[1], "accessToken": "changed", "scopes": ["read"]},
        {"appId": app_id, "userId": "U-nobody-here", "accessToken": "x"},
        {"appId": _app_id("ghost"), "userId": users[2], "accessToken": "x"},
    ]
    failures = ob.batch_upload_user_tokens(bad)["failures"]
    assert {(f["userId"], f["errorCode"]) for f in failures} == {("U-nobody-here", "E112102"), (users[2], APP_NOT_FOUND)}
    assert all(f["reason"] for f in failures)
    assert ob.fetch_token(app_id, users[1])["token"]["accessToken"] == "a1"

    assert ob.batch_upload_tenant_tokens([{"appId": app_id, "tenantId": tenant_id, "accessToken": "t1"}]) == {
        "failures": []
    }
    assert ob.fetch_tenant_token(app_id, tenant_id)["token"]["accessToken"] == "t1"
    failures = ob.batch_upload_tenant_tokens([{"appId": app_id, "tenantId": "no-such-tenant", "accessToken": "t"}])[
        "failures"
    ]
    assert [(f["tenantId"], f["errorCode"]) for f in failures] == [("no-such-tenant", "E011406")]


def test_inbound_app_token_auth_is_refused(idvault_server):
    by_token = DescopeClient(project_id=idvault_server.project_id, base_url=idvault_server.base_url)
    with pytest.raises(AuthException) as exc:
        by_token.mgmt.outbound_application_by_token.fetch_token("an-inbound-app-token", "app", "user")
    assert exc.value.status_code == 401


def test_the_async_client_does_the_same(idvault_server):
    async def scenario() -> None:
        async with DescopeClientAsync(
            project_id=idvault_server.project_id,
            management_key=idvault_server.management_key,
            base_url=idvault_server.base_url,
        ) as client:
            ob = client.mgmt.outbound_application
            app_id = _app_id("async")
            created = await ob.create_application(name=f"Async {app_id}", id=app_id)
            assert created["app"]["id"] == app_id
            assert (await ob.load_application(app_id))["app"]["id"] == app_id
            assert app_id in {a["id"] for a in (await ob.load_all_applications())["apps"]}
            await ob.update_application(id=app_id, name=f"Async 2 {app_id}")
            user_id = (await client.mgmt.user.create(login_id=unique_login_id("async")))["user"]["userId"]
            tenant_id = f"t{uuid.uuid4().hex[:12]}"
            await client.mgmt.tenant.create(name=f"Tenant {tenant_id}", id=tenant_id)
            assert await ob.upload_user_token(app_id, user_id, access_token="a1", scopes=["s"]) == {}
            assert await ob.upload_tenant_token(app_id, tenant_id, access_token="t1") == {}
            token = (await ob.fetch_token_by_scopes(app_id, user_id, ["s"]))["token"]
            assert token["accessToken"] == "a1"
            assert (await ob.fetch_token(app_id, user_id))["token"]["id"] == token["id"]
            assert (await ob.fetch_tenant_token(app_id, tenant_id))["token"]["accessToken"] == "t1"
            assert (await ob.fetch_tenant_token_by_scopes(app_id, tenant_id, []))["token"]["accessToken"] == "t1"
            assert (await ob.list_apps_with_user_token(user_id))["appIds"] == [app_id]
            batch = [{"appId": app_id, "userId": user_id, "accessToken": "b1", "scopes": ["batch"]}]
            assert await ob.batch_upload_user_tokens(batch) == {"failures": []}
            assert (await ob.fetch_token_by_scopes(app_id, user_id, ["batch"]))["token"]["accessToken"] == "b1"
            tenant_batch = [{"appId": app_id, "tenantId": tenant_id, "accessToken": "tb", "scopes": ["b"]}]
            assert await ob.batch_upload_tenant_tokens(tenant_batch) == {"failures": []}
            missing = [{"appId": app_id, "tenantId": tenant_id}]
            failed = (await ob.batch_upload_tenant_tokens(missing))["failures"]
            assert [f["errorCode"] for f in failed] == ["E011002"]
            key_app = _app_id("async-keys")
            await ob.update_application(id=app_id, name=f"Async 3 {app_id}")
            resp = httpx.post(
                f"{idvault_server.base_url}/v1/mgmt/outbound/app/create",
                json={"id": key_app, "name": f"Keys {key_app}", "appType": "apikey"},
                headers={"Authorization": f"Bearer {idvault_server.project_id}:{idvault_server.management_key}"},
                timeout=10.0,
            )
            assert resp.status_code == 200, resp.text
            assert await ob.upload_user_api_key(key_app, user_id, "sk-async") == {}
            assert await ob.upload_tenant_api_key(key_app, tenant_id, "sk-async-t") == {}
            assert (await ob.fetch_token(key_app, user_id))["token"]["accessToken"] == "sk-async"
            assert (await ob.fetch_tenant_token(key_app, tenant_id))["token"]["accessToken"] == "sk-async-t"
            await ob.delete_token(token["id"])
            await ob.delete_user_tokens(app_id, user_id)
            await ob.delete_application(app_id)
            with pytest.raises(AuthException) as exc:
                await ob.load_application(app_id)
            assert exc.value.status_code == 404

    asyncio.run(scenario())
