"""User management through the official Descope Python SDK (descope==2.16.1) against idvault."""

from __future__ import annotations

import logging
import time
import warnings

import pytest
from descope import AssociatedTenant, AuthException, DescopeClient, UserObj

from idvault_sdk_helpers import new_role, new_tenant, unique_login_id, unique_phone

USER_NOT_FOUND = "E112102"


def _login_ids(users: list[dict]) -> list[str]:
    return [u["loginIds"][0] for u in users]


def _assert_user_gone(client: DescopeClient, login_id: str) -> None:
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.load(login_id)
    assert exc.value.status_code == 400
    assert USER_NOT_FOUND in exc.value.error_message


# ---------------------------------------------------------------------------------------------
# Construction and the license handshake
# ---------------------------------------------------------------------------------------------


def test_construction_does_license_handshake_without_warnings(idvault_server, caplog):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = DescopeClient(
            project_id=idvault_server.project_id,
            management_key=idvault_server.management_key,
            base_url=idvault_server.base_url,
        )
    assert [str(w.message) for w in caught] == []
    problems = [r for r in caplog.records if r.name.startswith("descope") and r.levelno >= logging.WARNING]
    assert problems == [], [r.getMessage() for r in problems]
    # The handshake succeeded: the SDK cached the tier it will send as x-descope-license.
    assert c._mgmt_http_client.rate_limit_tier

    login_id = unique_login_id("handshake")
    created = c.mgmt.user.create(login_id=login_id)
    assert created["user"]["loginIds"] == [login_id]
    assert c.mgmt.user.load(login_id)["user"]["userId"] == created["user"]["userId"]


# ---------------------------------------------------------------------------------------------
# Create
# ---------------------------------------------------------------------------------------------


def test_create_with_email_login_id(client):
    login_id = unique_login_id()
    resp = client.mgmt.user.create(login_id=login_id)
    user = resp["user"]
    assert user["loginIds"] == [login_id]
    assert user["email"] == login_id
    assert user["verifiedEmail"] is True
    assert user["status"] == "invited"
    assert user["test"] is False
    assert isinstance(user["userId"], str) and user["userId"]


def test_create_with_all_fields_echoes_them(client, uid):
    login_id = f"full-{uid}"
    email = f"full-{uid}@example.com"
    phone = unique_phone()
    # Tenants and roles must exist before a user can hold them (unknown ones are refused).
    tenant_id = new_tenant(client, tenant_id=f"tenant-{uid}")
    role = new_role(client, f"role-{uid}")
    tenant_admin = new_role(client, f"tenant-admin-{uid}")
    viewer = new_role(client, f"viewer-{uid}")
    # So must the custom attributes (their definitions).
    suffix = uid[:10]
    for name, kind in ((f"department{suffix}", "string"), (f"level{suffix}", "number"), (f"beta{suffix}", "boolean")):
        client.mgmt.user.create_custom_attribute(name, name.capitalize(), kind)
    attrs = {f"department{suffix}": "engineering", f"level{suffix}": 3, f"beta{suffix}": True}

    before = time.time()
    resp = client.mgmt.user.create(
        login_id=login_id,
        email=email,
        phone=phone,
        display_name="Dana Scully",
        role_names=[role],
        user_tenants=[AssociatedTenant(tenant_id, role_names=[tenant_admin, viewer])],
        custom_attributes=attrs,
    )
    after = time.time()
    user = resp["user"]

    assert user["loginIds"] == [login_id]
    assert user["name"] == "Dana Scully"
    assert user["email"] == email
    assert user["phone"] == phone
    assert user["verifiedEmail"] is False
    assert user["verifiedPhone"] is False
    assert user["roleNames"] == [role]
    assert len(user["userTenants"]) == 1
    assert user["userTenants"][0]["tenantId"] == tenant_id
    assert user["userTenants"][0]["roleNames"] == [tenant_admin, viewer]
    assert user["customAttributes"] == attrs
    assert user["test"] is False
    # createdTime is Unix seconds (not milliseconds).
    assert isinstance(user["createdTime"], int)
    assert before - 5 <= user["createdTime"] <= after + 5

    # What load answers is what create answered.
    loaded = client.mgmt.user.load(login_id)["user"]
    for field in ("userId", "loginIds", "name", "email", "phone", "roleNames", "userTenants",
                  "customAttributes", "test", "createdTime", "status"):
        assert loaded[field] == user[field], field


def test_create_with_verified_email_is_enabled(client):
    login_id = unique_login_id("verified")
    user = client.mgmt.user.create(login_id=login_id, verified_email=True)["user"]
    assert user["status"] == "enabled"
    assert user["verifiedEmail"] is True
    assert user["email"] == login_id


def test_create_test_user(client):
    login_id = unique_login_id("test")
    user = client.mgmt.user.create_test_user(login_id=login_id)["user"]
    assert user["test"] is True
    assert user["loginIds"] == [login_id]
    assert client.mgmt.user.load(login_id)["user"]["test"] is True


def test_invite_batch_creates_users(client, uid):
    tenant_id = new_tenant(client, tenant_id=f"batch-tenant-{uid}")
    member = new_role(client, f"member-{uid}")
    users = [
        UserObj(
            login_id=f"batch{i}-{uid}@example.com",
            display_name=f"Batch User {i}",
            user_tenants=[AssociatedTenant(tenant_id, role_names=[member])],
        )
        for i in range(3)
    ]
    resp = client.mgmt.user.invite_batch(users=users)
    created = resp["createdUsers"]
    assert sorted(_login_ids(created)) == sorted(u.login_id for u in users)
    assert resp.get("failedUsers", []) == []
    by_login = {u["loginIds"][0]: u for u in created}
    for i, u in enumerate(users):
        c = by_login[u.login_id]
        assert c["name"] == f"Batch User {i}"
        assert c["email"] == u.login_id
        assert c["test"] is False
        assert [t["tenantId"] for t in c["userTenants"]] == [tenant_id]
        assert client.mgmt.user.load(u.login_id)["user"]["userId"] == c["userId"]


# ---------------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------------


def test_load_and_load_by_user_id_agree(client):
    login_id = unique_login_id("load")
    created = client.mgmt.user.create(login_id=login_id, display_name="Load Me")["user"]
    by_login = client.mgmt.user.load(login_id)["user"]
    by_id = client.mgmt.user.load_by_user_id(created["userId"])["user"]
    assert by_login == by_id
    assert by_login["userId"] == created["userId"]
    assert by_login["name"] == "Load Me"


def test_load_users_by_ids(client):
    ids = [client.mgmt.user.create(login_id=unique_login_id("many"))["user"]["userId"] for _ in range(3)]
    other = client.mgmt.user.create(login_id=unique_login_id("other"))["user"]["userId"]
    users = client.mgmt.user.load_users(ids)["users"]
    assert sorted(u["userId"] for u in users) == sorted(ids)
    assert other not in {u["userId"] for u in users}


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------


def test_search_by_login_ids_and_user_ids(client):
    a = client.mgmt.user.create(login_id=unique_login_id("sa"))["user"]
    b = client.mgmt.user.create(login_id=unique_login_id("sb"))["user"]
    client.mgmt.user.create(login_id=unique_login_id("sc"))

    resp = client.mgmt.user.search_all(login_ids=[a["loginIds"][0], b["loginIds"][0]])
    assert sorted(u["userId"] for u in resp["users"]) == sorted([a["userId"], b["userId"]])

    resp = client.mgmt.user.search_all(user_ids=[b["userId"]])
    assert [u["userId"] for u in resp["users"]] == [b["userId"]]


def test_search_by_emails_and_phones(client, uid):
    email = f"mail-{uid}@example.com"
    phone = unique_phone()
    a = client.mgmt.user.create(login_id=f"by-email-{uid}", email=email)["user"]
    b = client.mgmt.user.create(login_id=f"by-phone-{uid}", phone=phone)["user"]

    resp = client.mgmt.user.search_all(emails=[email])
    assert [u["userId"] for u in resp["users"]] == [a["userId"]]

    resp = client.mgmt.user.search_all(phones=[phone])
    assert [u["userId"] for u in resp["users"]] == [b["userId"]]


def test_search_by_tenant_ids_role_names_and_statuses(client, uid):
    tenant = new_tenant(client, tenant_id=f"t-{uid}")
    role = new_role(client, f"r-{uid}")
    in_tenant = client.mgmt.user.create(
        login_id=unique_login_id("tenant"), user_tenants=[AssociatedTenant(tenant)]
    )["user"]
    with_role = client.mgmt.user.create(login_id=unique_login_id("role"), role_names=[role])["user"]
    enabled_in_tenant = client.mgmt.user.create(
        login_id=unique_login_id("enabled"),
        verified_email=True,
        user_tenants=[AssociatedTenant(tenant, role_names=[role])],
    )["user"]
    assert in_tenant["status"] == "invited"
    assert enabled_in_tenant["status"] == "enabled"

    resp = client.mgmt.user.search_all(tenant_ids=[tenant])
    assert sorted(u["userId"] for u in resp["users"]) == sorted([in_tenant["userId"], enabled_in_tenant["userId"]])

    # A role matches whether held at project level or in a tenant.
    resp = client.mgmt.user.search_all(role_names=[role])
    assert sorted(u["userId"] for u in resp["users"]) == sorted([with_role["userId"], enabled_in_tenant["userId"]])

    resp = client.mgmt.user.search_all(tenant_ids=[tenant], statuses=["enabled"])
    assert [u["userId"] for u in resp["users"]] == [enabled_in_tenant["userId"]]
    resp = client.mgmt.user.search_all(tenant_ids=[tenant], statuses=["invited"])
    assert [u["userId"] for u in resp["users"]] == [in_tenant["userId"]]


def test_search_by_text(client, uid):
    # The marker is only in the display name, so a match proves the name is searched.
    marker = uid[:12]
    named = client.mgmt.user.create(login_id=unique_login_id("text-a"), display_name=f"Fox Mulder {marker}")["user"]
    client.mgmt.user.create(login_id=unique_login_id("text-b"), display_name="Walter Skinner")
    resp = client.mgmt.user.search_all(text=marker)
    assert [u["userId"] for u in resp["users"]] == [named["userId"]]


def test_search_paging(client, uid):
    tenant = new_tenant(client, tenant_id=f"paging-{uid}")
    created = {
        client.mgmt.user.create(login_id=f"page{i}-{uid}@example.com", user_tenants=[AssociatedTenant(tenant)])[
            "user"
        ]["userId"]
        for i in range(7)
    }
    assert len(created) == 7

    seen: list[str] = []
    for page, expected in ((0, 3), (1, 3), (2, 1)):
        resp = client.mgmt.user.search_all(tenant_ids=[tenant], limit=3, page=page)
        assert len(resp["users"]) == expected, f"page {page}"
        assert resp["total"] == 7, f"page {page}"
        seen.extend(u["userId"] for u in resp["users"])
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created

    resp = client.mgmt.user.search_all(tenant_ids=[tenant], limit=3, page=3)
    assert resp["users"] == []
    assert resp["total"] == 7


def test_search_test_user_flags(client, uid):
    tenant = new_tenant(client, tenant_id=f"testflags-{uid}")
    regular = client.mgmt.user.create(login_id=unique_login_id("regular"), user_tenants=[AssociatedTenant(tenant)])[
        "user"
    ]
    test_user = client.mgmt.user.create_test_user(
        login_id=unique_login_id("tester"), user_tenants=[AssociatedTenant(tenant)]
    )["user"]

    default = client.mgmt.user.search_all(tenant_ids=[tenant])
    assert [u["userId"] for u in default["users"]] == [regular["userId"]]

    included = client.mgmt.user.search_all(tenant_ids=[tenant], with_test_user=True)
    assert sorted(u["userId"] for u in included["users"]) == sorted([regular["userId"], test_user["userId"]])

    only = client.mgmt.user.search_all(tenant_ids=[tenant], test_users_only=True)
    assert [u["userId"] for u in only["users"]] == [test_user["userId"]]

    test_search = client.mgmt.user.search_all_test_users(tenant_ids=[tenant])
    assert [u["userId"] for u in test_search["users"]] == [test_user["userId"]]
    assert all(u["test"] is True for u in test_search["users"])


def test_search_all_test_users_returns_only_test_users(client):
    test_login = unique_login_id("only-test")
    regular_login = unique_login_id("not-test")
    client.mgmt.user.create_test_user(login_id=test_login)
    client.mgmt.user.create(login_id=regular_login)
    resp = client.mgmt.user.search_all_test_users(login_ids=[test_login, regular_login])
    assert _login_ids(resp["users"]) == [test_login]
    # Without filters: every answer is a test user, and ours is among them.
    resp = client.mgmt.user.search_all_test_users(limit=1000)
    assert resp["users"], "expected at least the test user just created"
    assert all(u["test"] is True for u in resp["users"])


# ---------------------------------------------------------------------------------------------
# Delete
# ---------------------------------------------------------------------------------------------


def test_delete_by_login_id(client):
    login_id = unique_login_id("delete")
    client.mgmt.user.create(login_id=login_id)
    client.mgmt.user.delete(login_id)
    _assert_user_gone(client, login_id)


def test_delete_by_user_id(client):
    login_id = unique_login_id("delete-id")
    user_id = client.mgmt.user.create(login_id=login_id)["user"]["userId"]
    client.mgmt.user.delete_by_user_id(user_id)
    _assert_user_gone(client, login_id)
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.load_by_user_id(user_id)
    assert exc.value.status_code == 400
    assert USER_NOT_FOUND in exc.value.error_message


def test_delete_all_test_users_keeps_regular_users(client):
    test_logins = [unique_login_id("doomed") for _ in range(2)]
    for login_id in test_logins:
        client.mgmt.user.create_test_user(login_id=login_id)
    keeper = unique_login_id("keeper")
    client.mgmt.user.create(login_id=keeper)

    client.mgmt.user.delete_all_test_users()

    for login_id in test_logins:
        _assert_user_gone(client, login_id)
    assert client.mgmt.user.load(keeper)["user"]["loginIds"] == [keeper]
    assert client.mgmt.user.search_all_test_users()["users"] == []
