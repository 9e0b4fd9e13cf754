"""The audit trail through the SDK's `client.mgmt.audit` (descope==2.16.1): `create_event`, then
`search` finds it; a provider-token read (the token stored with idvault's PUT extension, read with
`get_provider_token`) is found by user, by login id, by action and by time window; role,
permission and user role changes, access key changes and refused exchanges (`LoginFailed`), and
every logout (`logout`, `logout_all`, `mgmt.user.logout_user`, `logout_user_by_user_id`) are found
with `search(actions=[...])`."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from descope import AuthException, DescopeClient

from idvault_sdk_helpers import put_provider_token, record_secret, unique_login_id
from test_sdk_signin import APP_REDIRECT, _browse, signin_ready  # noqa: F401  (signin_ready is a fixture)

# Records are written by the server's background writer within ~100 ms: searches poll briefly.
POLL_SECONDS = 10.0


def search_until(client, found, **filters) -> list[dict]:
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        audits = client.mgmt.audit.search(**filters)["audits"]
        if found(audits) or time.monotonic() >= deadline:
            return audits
        time.sleep(0.05)


def test_create_event_then_search_finds_it(client):
    action = f"pencil.created.{unique_login_id('a').split('@')[0]}"
    client.mgmt.audit.create_event(
        action=action, type="info", actor_id="actor-1", tenant_id="tenant-1", user_id="user-1", data={"pencil": "red"}
    )
    audits = search_until(client, lambda a: len(a) > 0, actions=[action])
    assert len(audits) == 1, audits
    record = audits[0]
    assert record["action"] == action
    assert record["userId"] == "user-1"
    assert record["tenants"] == ["tenant-1"]
    assert record["data"] == {"pencil": "red", "managementKeyId": record["data"]["managementKeyId"]}
    assert isinstance(record["occurred"], datetime)
    assert abs(record["occurred"] - datetime.utcnow()) < timedelta(minutes=5)
    assert record["remoteAddress"] == "127.0.0.1"
    # The other filters the SDK sends narrow it down, or out.
    assert len(client.mgmt.audit.search(actions=[action], tenants=["tenant-1"])["audits"]) == 1
    assert client.mgmt.audit.search(actions=[action], tenants=["other"])["audits"] == []
    assert client.mgmt.audit.search(actions=[action], excluded_actions=[action])["audits"] == []
    assert len(client.mgmt.audit.search(text="PENCIL.CREATED", actions=[action])["audits"]) == 1


def test_a_provider_token_read_is_found_by_user_action_and_time(client, idvault_server):
    login_id = unique_login_id("audit")
    user = client.mgmt.user.create(login_id=login_id)["user"]
    resp = put_provider_token(
        idvault_server, login_id, provider="google", provider_user_id="g-audit", access_token="ya29.audit-secret"
    )
    assert resp.status_code == 200, resp.text
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    token = client.mgmt.user.get_provider_token(login_id, "google")
    assert token["accessToken"] == "ya29.audit-secret"
    after = datetime.now(timezone.utc) + timedelta(seconds=1)

    reads = search_until(
        client,
        lambda a: len(a) > 0,
        user_ids=[user["userId"]],
        actions=["ProviderTokenRead"],
        from_ts=before,
        to_ts=after,
    )
    assert len(reads) == 1, reads
    read = reads[0]
    assert read["userId"] == user["userId"]
    assert read["loginIds"] == [login_id]
    assert read["data"]["provider"] == "google"
    assert "ya29.audit-secret" not in str(read)

    by_login = client.mgmt.audit.search(login_ids=[login_id], actions=["ProviderTokenRead"])["audits"]
    assert len(by_login) == 1
    by_user = client.mgmt.audit.search(user_ids=[user["userId"]])["audits"]
    assert {a["action"] for a in by_user} >= {"UserCreated", "ProviderTokenUploaded", "ProviderTokenRead"}
    # A window that ends before the read does not find it.
    assert client.mgmt.audit.search(user_ids=[user["userId"]], actions=["ProviderTokenRead"], to_ts=before)["audits"] == []


def test_role_permission_and_user_role_changes_are_found_by_action(client, uid):
    perm = f"perm-{uid}"
    role = f"role-{uid}"
    client.mgmt.permission.create(perm)
    client.mgmt.role.create(role, permission_names=[perm])
    login_id = unique_login_id("roles")
    user = client.mgmt.user.create(login_id=login_id)["user"]
    client.mgmt.user.add_roles(login_id, [role])
    client.mgmt.role.delete(role)
    client.mgmt.permission.delete(perm)

    actions = ["PermissionCreated", "RoleCreated", "RoleDeleted", "PermissionDeleted"]
    found = search_until(client, lambda a: len(a) >= 4, actions=actions, text=uid)
    assert [a["action"] for a in found] == list(reversed(actions)), found
    created = next(a for a in found if a["action"] == "RoleCreated")
    assert created["data"]["name"] == role
    assert created["data"]["permissionNames"] == [perm]

    added = search_until(client, lambda a: len(a) >= 1, actions=["UserModified"], user_ids=[user["userId"]])
    assert len(added) == 1, added
    assert added[0]["data"]["change"] == "roles"
    assert added[0]["data"]["rolesAdded"] == [role]
    assert added[0]["data"]["fields"] == ["roleNames"]


def test_access_key_changes_and_a_refused_exchange_are_found_by_action(client, idvault_server, uid):
    created = client.mgmt.access_key.create(name=f"audit-{uid}")
    cleartext = created["cleartext"]
    record_secret("access key", cleartext)
    key_id = created["key"]["id"]
    machine = DescopeClient(project_id=idvault_server.project_id, base_url=idvault_server.base_url)
    assert machine.exchange_access_key(cleartext)["keyId"] == key_id
    client.mgmt.access_key.deactivate(key_id)
    with pytest.raises(AuthException) as refused:
        machine.exchange_access_key(cleartext)
    assert refused.value.status_code == 401
    client.mgmt.access_key.delete(key_id)

    actions = ["AccessKeyCreated", "LoginSucceed", "AccessKeyModified", "LoginFailed", "AccessKeyDeleted"]
    found = search_until(client, lambda a: len(a) >= 5, actions=actions, text=key_id)
    assert [a["action"] for a in found] == list(reversed(actions)), found
    failed = next(a for a in found if a["action"] == "LoginFailed")
    assert failed["data"]["keyId"] == key_id
    assert failed["data"]["error_message"] == "the access key is deactivated"
    assert failed["method"] == "accessKey"
    assert cleartext.split(".", 1)[1] not in str(found)


def test_every_logout_is_found_by_action(client, signin_ready):
    account = f"audit-out-{uuid.uuid4().hex[:10]}"

    def sign_in() -> dict:
        started = client.oauth.start("acme", return_url=APP_REDIRECT)
        return client.oauth.exchange_token(_browse(started["url"], account))

    first = sign_in()
    user = first["user"]
    client.logout(first["refreshSessionToken"]["jwt"])
    client.logout_all(sign_in()["refreshSessionToken"]["jwt"])
    client.mgmt.user.logout_user(user["loginIds"][0])
    client.mgmt.user.logout_user_by_user_id(user["userId"])

    outs = search_until(client, lambda a: len(a) >= 4, actions=["UserLoggedOut"], user_ids=[user["userId"]])
    assert [a["data"]["sessions"] for a in outs] == ["all", "all", "all", "current"], outs
    assert all(a["loginIds"] == user["loginIds"] for a in outs)
