"""Every `search_all` filter of the official Descope Python SDK (descope==2.16.1), alone and
combined, plus sorting, time bounds and paging edges, against idvault.

`search_all` sends POST /v2/mgmt/user/search with `tenantIds`, `roleNames`, `limit`, `page`,
`testUsersOnly` and `withTestUser` always, and `statuses`, `emails`, `phones`, `customAttributes`,
`ssoAppIds`, `loginIds`, `userIds`, `text`, `sort` ([{field, desc}]), `fromCreatedTime`,
`toCreatedTime`, `fromModifiedTime`, `toModifiedTime` (Unix epoch MILLISECONDS, bounds included),
`tenantRoleIds` and `tenantRoleNames` ({tenantId: {"values": [...], "and": bool}}) when given.

Semantics asserted: a list filter matches users having any of its values; different filters
combine with AND; within tenantRoleNames/Ids, "and": true needs every listed role in that tenant
and "and": false any of them; limit 0 means the default page size (100); `total` counts every
match whatever the page.

A filter "alone" is checked against the whole project: all pages are read, and among the users a
test made, exactly the expected ones must be found.
"""

from __future__ import annotations

import time
import uuid

from descope import AssociatedTenant, UserObj
from descope.management.common import Sort

from idvault_sdk_helpers import new_role, new_tenant, now_ms, role_named, unique_phone

DEFAULT_LIMIT = 100


def _all_ids(client, **filters) -> list[str]:
    """Every match of a search, reading all pages of 1000."""
    ids: list[str] = []
    page = 0
    while True:
        resp = client.mgmt.user.search_all(limit=1000, page=page, **filters)
        ids.extend(u["userId"] for u in resp["users"])
        if not resp["users"] or len(ids) >= resp["total"]:
            assert len(ids) == resp["total"], (len(ids), resp["total"])
            return ids
        page += 1


def _found(client, ours: dict, **filters) -> set:
    """Which of our users (name -> user) a search finds."""
    ids = set(_all_ids(client, **filters))
    return {name for name, user in ours.items() if user["userId"] in ids}


def _create(client, **kwargs) -> dict:
    login_id = kwargs.pop("login_id", None) or f"sf-{uuid.uuid4().hex}"
    return client.mgmt.user.create(login_id=login_id, **kwargs)["user"]


def _marker() -> str:
    return f"mk{uuid.uuid4().hex[:16]}"


# ---------------------------------------------------------------------------------------------
# Each filter alone
# ---------------------------------------------------------------------------------------------


def test_tenant_ids(client):
    t1, t2, t3 = (new_tenant(client) for _ in range(3))
    ours = {
        "t1": _create(client, user_tenants=[AssociatedTenant(t1)]),
        "t2": _create(client, user_tenants=[AssociatedTenant(t2)]),
        "t1t2": _create(client, user_tenants=[AssociatedTenant(t1), AssociatedTenant(t2)]),
        "none": _create(client),
    }
    assert _found(client, ours, tenant_ids=[t1]) == {"t1", "t1t2"}
    assert _found(client, ours, tenant_ids=[t1, t2]) == {"t1", "t2", "t1t2"}
    assert _found(client, ours, tenant_ids=[t3]) == set()


def test_role_names(client):
    tenant = new_tenant(client)
    r1, r2 = new_role(client), new_role(client)
    ours = {
        "project-r1": _create(client, role_names=[r1]),
        "tenant-r1": _create(client, user_tenants=[AssociatedTenant(tenant, [r1])]),
        "project-r2": _create(client, role_names=[r2]),
        "none": _create(client, user_tenants=[AssociatedTenant(tenant)]),
    }
    # A role matches whether it is held at project level or in a tenant.
    assert _found(client, ours, role_names=[r1]) == {"project-r1", "tenant-r1"}
    assert _found(client, ours, role_names=[r1, r2]) == {"project-r1", "tenant-r1", "project-r2"}


def test_statuses(client):
    ours = {
        "invited": _create(client, login_id=f"sf-{uuid.uuid4().hex}@example.com"),
        "enabled": _create(client),
        "disabled": _create(client, status="disabled"),
    }
    assert ours["invited"]["status"] == "invited"
    assert ours["disabled"]["status"] == "disabled"
    for status in ("invited", "enabled", "disabled"):
        assert _found(client, ours, statuses=[status]) == {status}
    assert _found(client, ours, statuses=["enabled", "disabled"]) == {"enabled", "disabled"}


def test_emails_ignore_case(client, uid):
    ours = {
        "a": _create(client, email=f"Mixed.Case-{uid}@Example.com"),
        "b": _create(client, email=f"other-{uid}@example.com"),
    }
    assert _found(client, ours, emails=[f"mixed.case-{uid}@example.com"]) == {"a"}
    assert _found(client, ours, emails=[f"MIXED.CASE-{uid}@EXAMPLE.COM", f"other-{uid}@example.com"]) == {"a", "b"}


def test_phones(client):
    p1, p2 = unique_phone(), unique_phone()
    ours = {"a": _create(client, phone=p1), "b": _create(client, phone=p2), "c": _create(client)}
    assert _found(client, ours, phones=[p1]) == {"a"}
    assert _found(client, ours, phones=[p1, p2]) == {"a", "b"}


def test_custom_attributes(client):
    team = f"team{uuid.uuid4().hex[:10]}"
    level = f"level{uuid.uuid4().hex[:10]}"
    client.mgmt.user.create_custom_attribute(team, "Team", "string")
    client.mgmt.user.create_custom_attribute(level, "Level", "number")
    ours = {
        "red1": _create(client, custom_attributes={team: "red", level: 1}),
        "blue2": _create(client, custom_attributes={team: "blue", level: 2}),
        "red2": _create(client, custom_attributes={team: "red", level: 2}),
        "none": _create(client),
    }
    assert _found(client, ours, custom_attributes={team: "red"}) == {"red1", "red2"}
    # A list of values matches any of them (the Go SDK documents this form).
    assert _found(client, ours, custom_attributes={team: ["red", "blue"]}) == {"red1", "blue2", "red2"}
    assert _found(client, ours, custom_attributes={level: 2}) == {"blue2", "red2"}
    # Several attributes must all match.
    assert _found(client, ours, custom_attributes={team: "red", level: 2}) == {"red2"}


def test_sso_app_ids(client, uid):
    a, b = f"sso-a-{uid}", f"sso-b-{uid}"
    ours = {
        "a": _create(client, sso_app_ids=[a]),
        "b": _create(client, sso_app_ids=[b]),
        "ab": _create(client, sso_app_ids=[a, b]),
        "none": _create(client),
    }
    assert _found(client, ours, sso_app_ids=[a]) == {"a", "ab"}
    assert _found(client, ours, sso_app_ids=[a, b]) == {"a", "b", "ab"}


def test_login_ids_including_additional_ones_and_user_ids(client, uid):
    ours = {
        "a": _create(client, login_id=f"sfl-a-{uid}", additional_login_ids=[f"sfl-a2-{uid}"]),
        "b": _create(client, login_id=f"sfl-b-{uid}"),
        "c": _create(client),
    }
    assert _found(client, ours, login_ids=[f"sfl-a2-{uid}"]) == {"a"}
    assert _found(client, ours, login_ids=[f"sfl-a-{uid}", f"sfl-b-{uid}"]) == {"a", "b"}
    assert _found(client, ours, user_ids=[ours["b"]["userId"], ours["c"]["userId"]]) == {"b", "c"}


def test_text_matches_login_id_email_phone_and_names_ignoring_case(client):
    marker = _marker()
    phone = unique_phone()
    ours = {
        "login": _create(client, login_id=f"login-{marker}-x"),
        "email": _create(client, email=f"{marker}@example.com"),
        "name": _create(client, display_name=f"Name {marker.upper()}"),
        "given": _create(client, given_name=f"{marker}given"),
        "family": _create(client, family_name=f"family{marker}"),
        "none": _create(client, display_name="Unrelated"),
    }
    assert _found(client, ours, text=marker.upper()) == {"login", "email", "name", "given", "family"}
    ours["phone"] = _create(client, phone=phone)
    assert _found(client, ours, text=phone[3:]) == {"phone"}


def test_sort_ascending_descending_and_by_two_fields(client):
    marker = _marker()
    for name, given in (("Bravo", "same"), ("Alpha", "other"), ("Charlie", "same"), ("Delta", "same")):
        _create(client, display_name=f"{name} {marker}", given_name=given, email=f"{name.lower()}-{marker}@example.com")

    def names(sort) -> list:
        users = client.mgmt.user.search_all(text=marker, sort=sort)["users"]
        return [u["name"].split()[0] for u in users]

    assert names([Sort("name")]) == ["Alpha", "Bravo", "Charlie", "Delta"]
    assert names([Sort("name", desc=True)]) == ["Delta", "Charlie", "Bravo", "Alpha"]
    assert names([Sort("email", desc=True)]) == ["Delta", "Charlie", "Bravo", "Alpha"]
    # The second field orders what the first leaves equal.
    assert names([Sort("givenName"), Sort("name", desc=True)]) == ["Alpha", "Delta", "Charlie", "Bravo"]


def test_created_time_bounds_are_milliseconds_and_inclusive(client):
    marker = _marker()
    t0 = now_ms()
    first = _create(client, display_name=f"first {marker}")
    t1 = now_ms()
    time.sleep(0.05)
    t2 = now_ms()
    second = _create(client, display_name=f"second {marker}")
    t3 = now_ms()
    ours = {"first": first, "second": second}

    assert _found(client, ours, from_created_time=t2) == {"second"}
    assert _found(client, ours, to_created_time=t1) == {"first"}
    assert _found(client, ours, from_created_time=t0, to_created_time=t3) == {"first", "second"}
    assert _found(client, ours, from_created_time=t1 + 1, to_created_time=t2 - 1) == set()
    # A user's own creation instant is inside [from, to] when both bounds are that instant.
    stamps = sorted(set(range(t0, t1 + 1)))
    hits = [t for t in stamps if _found(client, ours, from_created_time=t, to_created_time=t, text=marker)]
    assert len(hits) == 1, "exactly one millisecond in [t0, t1] is the creation time of the first user"


def test_modified_time_bounds_are_milliseconds(client):
    marker = _marker()
    touched = _create(client, display_name=f"touched {marker}")
    untouched = _create(client, display_name=f"untouched {marker}")
    time.sleep(0.05)
    middle = now_ms()
    time.sleep(0.05)
    client.mgmt.user.update_display_name(touched["loginIds"][0], display_name=f"touched again {marker}")
    ours = {"touched": touched, "untouched": untouched}

    assert _found(client, ours, from_modified_time=middle) == {"touched"}
    assert _found(client, ours, to_modified_time=middle) == {"untouched"}
    # createdTime stays where it was.
    assert _found(client, ours, to_created_time=middle) == {"touched", "untouched"}


def _tenant_role_fixture(client):
    tenant, other = new_tenant(client), new_tenant(client)
    ra, rb = new_role(client), new_role(client)
    ours = {
        "a": _create(client, user_tenants=[AssociatedTenant(tenant, [ra])]),
        "b": _create(client, user_tenants=[AssociatedTenant(tenant, [rb])]),
        "ab": _create(client, user_tenants=[AssociatedTenant(tenant, [ra, rb])]),
        # Holds the roles, but not in that tenant.
        "project": _create(client, role_names=[ra, rb], user_tenants=[AssociatedTenant(tenant)]),
        "other": _create(client, user_tenants=[AssociatedTenant(other, [ra, rb])]),
    }
    return tenant, ra, rb, ours


def test_tenant_role_names_any_and_all(client):
    tenant, ra, rb, ours = _tenant_role_fixture(client)
    any_of = {tenant: {"values": [ra, rb], "and": False}}
    all_of = {tenant: {"values": [ra, rb], "and": True}}
    assert _found(client, ours, tenant_role_names=any_of) == {"a", "b", "ab"}
    assert _found(client, ours, tenant_role_names=all_of) == {"ab"}
    assert _found(client, ours, tenant_role_names={tenant: {"values": [ra], "and": True}}) == {"a", "ab"}


def test_tenant_role_ids_any_and_all(client):
    tenant, ra, rb, ours = _tenant_role_fixture(client)
    ids = [role_named(client, ra)["id"], role_named(client, rb)["id"]]
    assert _found(client, ours, tenant_role_ids={tenant: {"values": ids, "and": False}}) == {"a", "b", "ab"}
    assert _found(client, ours, tenant_role_ids={tenant: {"values": ids, "and": True}}) == {"ab"}


# ---------------------------------------------------------------------------------------------
# Filters combined (AND)
# ---------------------------------------------------------------------------------------------


def test_filters_combine_with_and(client, uid):
    tenant = new_tenant(client)
    role = new_role(client)
    attr = f"dept{uuid.uuid4().hex[:10]}"
    client.mgmt.user.create_custom_attribute(attr, "Dept", "string")
    marker = _marker()
    ours = {
        "match": _create(client, display_name=f"match {marker}", status="disabled", custom_attributes={attr: "x"},
                         user_tenants=[AssociatedTenant(tenant, [role])], email=f"match-{uid}@example.com"),
        "enabled": _create(client, display_name=f"enabled {marker}", custom_attributes={attr: "x"},
                           user_tenants=[AssociatedTenant(tenant, [role])]),
        "no-role": _create(client, display_name=f"no-role {marker}", status="disabled",
                           custom_attributes={attr: "x"}, user_tenants=[AssociatedTenant(tenant)]),
        "no-tenant": _create(client, display_name=f"no-tenant {marker}", status="disabled", role_names=[role],
                             custom_attributes={attr: "y"}),
    }

    assert _found(client, ours, tenant_ids=[tenant], role_names=[role], statuses=["disabled"], text=marker) == {"match"}
    assert _found(client, ours, emails=[f"match-{uid}@example.com"], statuses=["enabled"]) == set()
    assert _found(client, ours, custom_attributes={attr: "x"}, tenant_ids=[tenant]) == {"match", "enabled", "no-role"}
    assert _found(client, ours, custom_attributes={attr: "x"}, statuses=["disabled"], role_names=[role]) == {"match"}
    ids = {name: u["userId"] for name, u in ours.items()}
    assert _found(
        client, ours,
        login_ids=[ours["match"]["loginIds"][0], ours["enabled"]["loginIds"][0]],
        user_ids=[ids["enabled"], ids["no-role"]],
    ) == {"enabled"}
    assert _found(
        client, ours, tenant_role_names={tenant: {"values": [role], "and": True}}, statuses=["enabled"]
    ) == {"enabled"}


# ---------------------------------------------------------------------------------------------
# Paging edges
# ---------------------------------------------------------------------------------------------


def test_paging_edges(client):
    marker = _marker()
    count = DEFAULT_LIMIT + 5
    resp = client.mgmt.user.invite_batch(
        [UserObj(f"pg{i}-{marker}@example.com", display_name=f"page {marker}") for i in range(count)]
    )
    assert len(resp["createdUsers"]) == count

    # limit 0 (the SDK's default) means the default page size.
    first = client.mgmt.user.search_all(text=marker)
    assert len(first["users"]) == DEFAULT_LIMIT
    assert first["total"] == count
    assert client.mgmt.user.search_all(text=marker, limit=0)["users"] == first["users"]
    second = client.mgmt.user.search_all(text=marker, limit=0, page=1)
    assert len(second["users"]) == count - DEFAULT_LIMIT
    assert second["total"] == count

    # Pages of 50: two full, the last one partial, then empty pages with the same total.
    seen: list[str] = []
    for page, size in ((0, 50), (1, 50), (2, 5), (3, 0), (40, 0)):
        resp = client.mgmt.user.search_all(text=marker, limit=50, page=page)
        assert len(resp["users"]) == size, page
        assert resp["total"] == count, page
        seen.extend(u["userId"] for u in resp["users"])
    assert len(seen) == len(set(seen)) == count
    assert set(seen) == {u["userId"] for u in first["users"] + second["users"]}

    # One page holds them all.
    resp = client.mgmt.user.search_all(text=marker, limit=1000)
    assert len(resp["users"]) == count

    # No match: an empty page and a zero total.
    resp = client.mgmt.user.search_all(text=_marker())
    assert resp["users"] == [] and resp["total"] == 0


def test_test_user_search_takes_the_same_filters(client):
    tenant = new_tenant(client)
    role = new_role(client)
    marker = _marker()
    tester = client.mgmt.user.create_test_user(
        login_id=f"tester-{marker}", display_name=f"t {marker}", user_tenants=[AssociatedTenant(tenant, [role])]
    )["user"]
    client.mgmt.user.create(login_id=f"regular-{marker}", display_name=f"r {marker}",
                            user_tenants=[AssociatedTenant(tenant, [role])])
    resp = client.mgmt.user.search_all_test_users(
        tenant_role_names={tenant: {"values": [role], "and": True}}, text=marker, sort=[Sort("name")]
    )
    assert [u["userId"] for u in resp["users"]] == [tester["userId"]]
    assert resp["total"] == 1
