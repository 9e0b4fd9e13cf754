"""Tenants, roles and permissions through the official Descope Python SDK (descope==2.16.1)
against idvault, and what they do to the users that hold them.

What the SDK sends (descope/management/{tenant,_tenant_base,role,permission}.py):
- tenant.create: POST /v1/mgmt/tenant/create {name, id, selfProvisioningDomains, enforceSSO, disabled
  [, customAttributes, enforceSSOExclusions, federatedAppIds]}; answers {"id"}.
- tenant.update: POST /v1/mgmt/tenant/update, the same body; "Empty fields will override".
- tenant.patch_tenant: PATCH /v1/mgmt/tenant/patch {id, and only the given fields}.
- tenant.delete: POST /v1/mgmt/tenant/delete {id, cascade}.
- tenant.load: GET /v1/mgmt/tenant?id=; tenant.load_all: GET /v1/mgmt/tenant/all -> {"tenants"}.
- tenant.search_all: POST /v1/mgmt/tenant/search {tenantIds, tenantNames,
  tenantSelfProvisioningDomains, customAttributes} (absent ones sent as null).
- role.create / role.update: POST /v1/mgmt/role/create|update {name[, newName], description,
  permissionNames, tenantId, default, private}; both answer nothing the SDK reads.
- role.delete: POST /v1/mgmt/role/delete {name, tenantId}; role.load_all: GET /v1/mgmt/role/all;
  role.search: POST /v1/mgmt/role/search {tenantIds?, roleNames?, roleNameLike?, permissionNames?,
  includeProjectRoles?, roleIds?} -> {"roles"}.
- permission.create/update/delete: POST /v1/mgmt/permission/create|update|delete {name[, newName],
  description}; permission.load_all: GET /v1/mgmt/permission/all -> {"permissions"}.
"""

from __future__ import annotations

import time
import uuid

import pytest
from descope import AssociatedTenant, AuthException

from idvault_sdk_helpers import assert_refused, new_permission, new_role, new_tenant, role_named
from test_sdk_signin import APP_REDIRECT, _browse, signin_ready  # noqa: F401  (signin_ready is a fixture)


def _roles(client) -> dict:
    return {r["name"]: r for r in client.mgmt.role.load_all()["roles"]}


def _permissions(client) -> dict:
    return {p["name"]: p for p in client.mgmt.permission.load_all()["permissions"]}


def _user_tenant(client, login_id: str, tenant_id: str) -> dict:
    tenants = [t for t in client.mgmt.user.load(login_id)["user"]["userTenants"] if t["tenantId"] == tenant_id]
    assert len(tenants) == 1, tenants
    return tenants[0]


# ---------------------------------------------------------------------------------------------
# Tenants
# ---------------------------------------------------------------------------------------------


def test_tenant_create_with_id_then_load(client, uid):
    before = time.time()
    resp = client.mgmt.tenant.create(name=f"Acme {uid}", id=f"acme-{uid}", self_provisioning_domains=[f"{uid}.example.com"])
    after = time.time()
    assert resp == {"id": f"acme-{uid}"}

    tenant = client.mgmt.tenant.load(f"acme-{uid}")
    assert tenant["id"] == f"acme-{uid}"
    assert tenant["name"] == f"Acme {uid}"
    assert tenant["selfProvisioningDomains"] == [f"{uid}.example.com"]
    assert tenant.get("enforceSSO", False) is False
    assert tenant.get("disabled", False) is False
    # createdTime is Unix seconds, like the user's.
    assert isinstance(tenant["createdTime"], int)
    assert before - 5 <= tenant["createdTime"] <= after + 5


def test_tenant_create_without_id_generates_one(client, uid):
    tenant_id = client.mgmt.tenant.create(name=f"Generated {uid}")["id"]
    assert isinstance(tenant_id, str) and tenant_id
    assert client.mgmt.tenant.load(tenant_id)["name"] == f"Generated {uid}"


def test_tenant_duplicate_id_is_refused(client, uid):
    tenant_id = new_tenant(client, name=f"Original {uid}")
    with pytest.raises(AuthException) as exc:
        client.mgmt.tenant.create(name=f"Copy {uid}", id=tenant_id)
    assert_refused(exc.value)
    assert client.mgmt.tenant.load(tenant_id)["name"] == f"Original {uid}"


def test_tenant_load_unknown_is_refused(client, uid):
    with pytest.raises(AuthException) as exc:
        client.mgmt.tenant.load(f"no-such-tenant-{uid}")
    assert_refused(exc.value)


def test_tenant_update_replaces(client, uid):
    tenant_id = new_tenant(client, name=f"Before {uid}", self_provisioning_domains=[f"a.{uid}.example.com"])

    client.mgmt.tenant.update(tenant_id, name=f"After {uid}")
    tenant = client.mgmt.tenant.load(tenant_id)
    assert tenant["name"] == f"After {uid}"
    assert tenant["selfProvisioningDomains"] == []  # not given, so overridden

    client.mgmt.tenant.update(tenant_id, name=f"After {uid}", self_provisioning_domains=[f"b.{uid}.example.com"])
    assert client.mgmt.tenant.load(tenant_id)["selfProvisioningDomains"] == [f"b.{uid}.example.com"]

    with pytest.raises(AuthException) as exc:
        client.mgmt.tenant.update(f"no-such-tenant-{uid}", name="x")
    assert_refused(exc.value)


def test_tenant_patch_changes_only_given_fields(client, uid):
    tenant_id = new_tenant(client, name=f"Patch {uid}", self_provisioning_domains=[f"p.{uid}.example.com"])
    client.mgmt.tenant.patch_tenant(tenant_id, name=f"Patched {uid}")
    tenant = client.mgmt.tenant.load(tenant_id)
    assert tenant["name"] == f"Patched {uid}"
    assert tenant["selfProvisioningDomains"] == [f"p.{uid}.example.com"]


def test_tenant_load_all(client, uid):
    a = new_tenant(client, name=f"All A {uid}")
    b = new_tenant(client, name=f"All B {uid}")
    tenants = {t["id"]: t for t in client.mgmt.tenant.load_all()["tenants"]}
    assert tenants[a]["name"] == f"All A {uid}"
    assert tenants[b]["name"] == f"All B {uid}"


def test_tenant_search_all_by_each_filter(client, uid):
    a = new_tenant(client, name=f"Search A {uid}", self_provisioning_domains=[f"a.{uid}.example.com"])
    b = new_tenant(client, name=f"Search B {uid}", self_provisioning_domains=[f"b.{uid}.example.com"])

    def ids(**kwargs) -> list:
        return sorted(t["id"] for t in client.mgmt.tenant.search_all(**kwargs)["tenants"])

    assert ids(ids=[a]) == [a]
    assert ids(ids=[a, b]) == sorted([a, b])
    assert ids(names=[f"Search B {uid}"]) == [b]
    assert ids(self_provisioning_domains=[f"a.{uid}.example.com"]) == [a]
    # Different filters combine with AND.
    assert ids(ids=[a, b], names=[f"Search B {uid}"]) == [b]
    assert ids(ids=[a], names=[f"Search B {uid}"]) == []
    # No filter: every tenant.
    assert {a, b} <= set(ids())


def test_tenant_rename_shows_in_users(client, uid):
    tenant_id = new_tenant(client, name=f"Old Name {uid}")
    login_id = f"tenant-name-{uid}"
    client.mgmt.user.create(login_id=login_id, user_tenants=[AssociatedTenant(tenant_id)])
    assert _user_tenant(client, login_id, tenant_id)["tenantName"] == f"Old Name {uid}"

    client.mgmt.tenant.update(tenant_id, name=f"New Name {uid}")
    assert _user_tenant(client, login_id, tenant_id)["tenantName"] == f"New Name {uid}"


def test_tenant_delete_removes_it_from_users(client, uid):
    doomed = new_tenant(client)
    kept = new_tenant(client)
    role = new_role(client)
    login_id = f"tenant-delete-{uid}"
    client.mgmt.user.create(
        login_id=login_id, user_tenants=[AssociatedTenant(doomed, [role]), AssociatedTenant(kept, [role])]
    )

    client.mgmt.tenant.delete(doomed)

    with pytest.raises(AuthException) as exc:
        client.mgmt.tenant.load(doomed)
    assert_refused(exc.value)
    assert doomed not in {t["id"] for t in client.mgmt.tenant.load_all()["tenants"]}
    # The user stays (cascade=False), without the tenant.
    user = client.mgmt.user.load(login_id)["user"]
    assert [t["tenantId"] for t in user["userTenants"]] == [kept]
    resp = client.mgmt.user.search_all(tenant_ids=[doomed])
    assert resp["users"] == []
    assert resp["total"] == 0


def test_tenant_delete_with_cascade_deletes_users_only_in_it(client, uid):
    # The Go SDK: "Pass true on `cascade` in case you want to delete all users/keys associated only
    # with this tenant".
    doomed = new_tenant(client)
    other = new_tenant(client)
    only = client.mgmt.user.create(login_id=f"cascade-only-{uid}", user_tenants=[AssociatedTenant(doomed)])["user"]
    both = client.mgmt.user.create(
        login_id=f"cascade-both-{uid}", user_tenants=[AssociatedTenant(doomed), AssociatedTenant(other)]
    )["user"]
    neither = client.mgmt.user.create(login_id=f"cascade-neither-{uid}")["user"]

    client.mgmt.tenant.delete(doomed, cascade=True)

    found = client.mgmt.user.search_all(user_ids=[only["userId"], both["userId"], neither["userId"]])["users"]
    assert sorted(u["userId"] for u in found) == sorted([both["userId"], neither["userId"]])
    assert [t["tenantId"] for t in client.mgmt.user.load(f"cascade-both-{uid}")["user"]["userTenants"]] == [other]


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------


def test_role_create_then_load_all(client, uid):
    perm = new_permission(client)
    name = f"auditor-{uid}"
    before = time.time()
    assert client.mgmt.role.create(name, description="Reads the audit log", permission_names=[perm]) is None
    after = time.time()

    role = _roles(client)[name]
    assert role["description"] == "Reads the audit log"
    assert role["permissionNames"] == [perm]
    assert isinstance(role["id"], str) and role["id"]
    assert isinstance(role["createdTime"], int)
    assert before - 5 <= role["createdTime"] <= after + 5


def test_role_duplicate_name_is_refused(client, uid):
    name = new_role(client, description="first")
    with pytest.raises(AuthException) as exc:
        client.mgmt.role.create(name, description="second")
    assert_refused(exc.value)
    assert _roles(client)[name]["description"] == "first"


def test_role_rename_to_a_taken_name_is_refused(client, uid):
    a = new_role(client, description="a")
    b = new_role(client, description="b")
    with pytest.raises(AuthException) as exc:
        client.mgmt.role.update(a, b, description="clash")
    assert_refused(exc.value)
    roles = _roles(client)
    assert roles[a]["description"] == "a"
    assert roles[b]["description"] == "b"


def test_role_update_replaces_and_renames_everywhere(client, uid):
    p1 = new_permission(client)
    p2 = new_permission(client)
    tenant = new_tenant(client)
    old = new_role(client, description="old", permission_names=[p1])
    new = f"renamed-{uid}"
    login_id = f"role-rename-{uid}"
    client.mgmt.user.create(login_id=login_id, role_names=[old], user_tenants=[AssociatedTenant(tenant, [old])])

    client.mgmt.role.update(old, new, permission_names=[p2])

    roles = _roles(client)
    assert old not in roles
    assert roles[new]["permissionNames"] == [p2]
    assert roles[new].get("description", "") == ""  # not given, so overridden
    user = client.mgmt.user.load(login_id)["user"]
    assert user["roleNames"] == [new]
    assert user["userTenants"][0]["roleNames"] == [new]
    assert user["userTenants"][0]["permissions"] == [p2]

    with pytest.raises(AuthException) as exc:
        client.mgmt.role.update(f"no-such-role-{uid}", f"other-{uid}")
    assert_refused(exc.value)


def test_role_delete_removes_it_from_users(client, uid):
    tenant = new_tenant(client)
    doomed = new_role(client)
    kept = new_role(client)
    login_id = f"role-delete-{uid}"
    client.mgmt.user.create(
        login_id=login_id, role_names=[doomed, kept], user_tenants=[AssociatedTenant(tenant, [doomed, kept])]
    )

    client.mgmt.role.delete(doomed)

    assert doomed not in _roles(client)
    user = client.mgmt.user.load(login_id)["user"]
    assert user["roleNames"] == [kept]
    assert user["userTenants"][0]["roleNames"] == [kept]
    assert client.mgmt.user.search_all(role_names=[doomed])["users"] == []


def test_role_search_filters(client, uid):
    p1 = new_permission(client)
    p2 = new_permission(client)
    tenant = new_tenant(client)
    alpha = new_role(client, f"Searchable-{uid}-alpha", permission_names=[p1])
    beta = new_role(client, f"searchable-{uid}-beta", permission_names=[p1, p2])
    scoped = new_role(client, f"scoped-{uid}", tenant_id=tenant)

    def names(**kwargs) -> list:
        return sorted(r["name"] for r in client.mgmt.role.search(**kwargs)["roles"])

    assert names(role_names=[alpha]) == [alpha]
    # roleNameLike: contains, ignoring case.
    assert names(role_name_like=f"SEARCHABLE-{uid}") == sorted([alpha, beta])
    assert names(permission_names=[p2]) == [beta]
    assert names(role_ids=[role_named(client, beta)["id"]]) == [beta]
    # Tenant roles are found through their tenant, with the project's roles when asked.
    in_tenant = names(tenant_ids=[tenant])
    assert scoped in in_tenant and alpha not in in_tenant
    with_project = names(tenant_ids=[tenant], include_project_roles=True)
    assert {scoped, alpha, beta} <= set(with_project)


def test_tenant_scoped_role_is_deleted_in_its_tenant(client, uid):
    tenant = new_tenant(client)
    scoped = new_role(client, f"scoped-delete-{uid}", tenant_id=tenant)
    assert role_named(client, scoped, tenant_id=tenant)["tenantId"] == tenant
    client.mgmt.role.delete(scoped, tenant_id=tenant)
    assert scoped not in [r["name"] for r in client.mgmt.role.search(tenant_ids=[tenant])["roles"]]


# ---------------------------------------------------------------------------------------------
# Permissions
# ---------------------------------------------------------------------------------------------


def test_permission_create_then_load_all(client, uid):
    name = f"reports.read-{uid}"
    assert client.mgmt.permission.create(name, description="Read reports") is None
    perm = _permissions(client)[name]
    assert perm["description"] == "Read reports"
    assert perm.get("systemDefault", False) is False


def test_permission_duplicate_name_is_refused(client, uid):
    name = new_permission(client, description="first")
    with pytest.raises(AuthException) as exc:
        client.mgmt.permission.create(name, description="second")
    assert_refused(exc.value)
    assert _permissions(client)[name]["description"] == "first"


def test_permission_rename_to_a_taken_name_is_refused(client, uid):
    a = new_permission(client, description="a")
    b = new_permission(client, description="b")
    with pytest.raises(AuthException) as exc:
        client.mgmt.permission.update(a, b, description="clash")
    assert_refused(exc.value)
    perms = _permissions(client)
    assert perms[a]["description"] == "a"
    assert perms[b]["description"] == "b"


def test_permission_update_renames_it_in_roles(client, uid):
    old = new_permission(client, description="old")
    new = f"renamed-perm-{uid}"
    role = new_role(client, permission_names=[old])

    client.mgmt.permission.update(old, new, description="new")

    perms = _permissions(client)
    assert old not in perms
    assert perms[new]["description"] == "new"
    assert _roles(client)[role]["permissionNames"] == [new]


def test_permission_delete_removes_it_from_roles(client, uid):
    doomed = new_permission(client)
    kept = new_permission(client)
    role = new_role(client, permission_names=[doomed, kept])

    client.mgmt.permission.delete(doomed)

    assert doomed not in _permissions(client)
    assert _roles(client)[role]["permissionNames"] == [kept]


# ---------------------------------------------------------------------------------------------
# What users see: tenant names and the permissions their roles grant
# ---------------------------------------------------------------------------------------------


def test_user_tenants_carry_tenant_name_and_granted_permissions(client, uid):
    p1, p2, p3 = (new_permission(client) for _ in range(3))
    r1 = new_role(client, permission_names=[p1, p2])
    r2 = new_role(client, permission_names=[p2, p3])
    tenant = new_tenant(client, name=f"Granted {uid}")
    login_id = f"granted-{uid}"

    user = client.mgmt.user.create(login_id=login_id, user_tenants=[AssociatedTenant(tenant, [r1, r2])])["user"]
    entry = user["userTenants"][0]
    assert entry["tenantId"] == tenant
    assert entry["tenantName"] == f"Granted {uid}"
    assert entry["roleNames"] == [r1, r2]
    # The union of the roles' permissions, each once.
    assert sorted(entry["permissions"]) == sorted([p1, p2, p3])

    # Computed from the roles as they are now.
    client.mgmt.role.update(r2, r2, permission_names=[p3])
    assert sorted(_user_tenant(client, login_id, tenant)["permissions"]) == sorted([p1, p2, p3])
    client.mgmt.role.update(r1, r1, permission_names=[])
    assert _user_tenant(client, login_id, tenant)["permissions"] == [p3]
    client.mgmt.permission.delete(p3)
    assert _user_tenant(client, login_id, tenant)["permissions"] == []


def test_roles_and_permissions_reach_the_session_jwt(client, signin_ready, uid):
    project_perm = new_permission(client)
    tenant_perm = new_permission(client)
    project_role = new_role(client, permission_names=[project_perm])
    tenant_role = new_role(client, permission_names=[tenant_perm])
    tenant = new_tenant(client)

    started = client.oauth.start("acme", return_url=APP_REDIRECT)
    jwt = client.oauth.exchange_token(_browse(started["url"], f"claims-{uuid.uuid4().hex[:10]}"))
    login_id = jwt["user"]["loginIds"][0]

    client.mgmt.user.set_roles(login_id, [project_role])
    client.mgmt.user.add_tenant(login_id, tenant)
    client.mgmt.user.set_tenant_roles(login_id, tenant, [tenant_role])

    refreshed = client.refresh_session(jwt["refreshSessionToken"]["jwt"])
    claims = client.validate_session(refreshed["sessionToken"]["jwt"])
    assert client.validate_roles(claims, [project_role])
    assert client.validate_permissions(claims, [project_perm])
    assert client.validate_tenant_roles(claims, tenant, [tenant_role])
    assert client.validate_tenant_permissions(claims, tenant, [tenant_perm])
    assert not client.validate_tenant_roles(claims, tenant, [project_role])
