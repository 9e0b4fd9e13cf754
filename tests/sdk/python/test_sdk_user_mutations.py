"""User mutations through the official Descope Python SDK (descope==2.16.1) against idvault.

Covers `update` (replace), `patch`, `patch_batch`, `invite_batch` per-user failures,
`activate`/`deactivate`, `update_login_id`, `update_email`, `update_phone`, `update_display_name`,
`update_picture`, `update_custom_attribute`, project roles, tenants, tenant roles, SSO apps,
`logout_user`/`logout_user_by_user_id`, `history` and additional login ids.

What each SDK call sends (descope/management/user.py, _user_base.py):
- `update`: POST /v1/mgmt/user/update with every field (absent ones as null or [], `ssoAppIDs`).
  Descope: "All parameters are used as overrides ... Empty fields will override populated fields".
- `patch`: PATCH /v1/mgmt/user/patch with only the given fields (`ssoAppIds`, `status`).
  Descope: "Only the given fields will be used to update the user".
- single-field updates (`update_email`, `update_phone`, `update_picture`, `update_login_id`) send
  the field as null when it is not given, and the SDK documents that as "leave empty to remove".
- `update_display_name` sends only the names it is given: the Go SDK sends `displayName` alone
  (UpdateDisplayName) or the three other names alone (UpdateUserNames) to the same path, so a
  name that is absent is kept and a name that is "" is removed.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from descope import AssociatedTenant, AuthException, UserObj

from idvault_sdk_helpers import (
    USER_ALREADY_EXISTS,
    assert_refused,
    assert_user_not_found,
    error_code,
    new_role,
    new_tenant,
    unique_login_id,
    unique_phone,
)
from test_sdk_signin import APP_REDIRECT, _browse, signin_ready  # noqa: F401  (signin_ready is a fixture)


def _new_user(client, **kwargs) -> dict:
    login_id = kwargs.pop("login_id", None) or f"mut-{uuid.uuid4().hex}"
    return client.mgmt.user.create(login_id=login_id, **kwargs)["user"]


def _load(client, login_id: str) -> dict:
    return client.mgmt.user.load(login_id)["user"]


def _tenants(user: dict) -> dict:
    """userTenants as {tenantId: sorted role names}."""
    return {t["tenantId"]: sorted(t["roleNames"]) for t in user["userTenants"]}


def _sign_in(client, account: str) -> dict:
    started = client.oauth.start("acme", return_url=APP_REDIRECT)
    return client.oauth.exchange_token(_browse(started["url"], account))


# ---------------------------------------------------------------------------------------------
# update (replace)
# ---------------------------------------------------------------------------------------------


def test_update_replaces_every_field(client, uid):
    login_id = f"upd-{uid}"
    created = client.mgmt.user.create(
        login_id=login_id,
        email=f"upd-{uid}@example.com",
        phone=unique_phone(),
        display_name="Before",
        given_name="Given",
        middle_name="Middle",
        family_name="Family",
        picture="https://example.com/before.png",
        verified_email=True,
        verified_phone=True,
        sso_app_ids=[f"app-{uid}"],
    )["user"]
    assert created["status"] == "enabled"
    assert created["ssoAppIds"] == [f"app-{uid}"]

    updated = client.mgmt.user.update(login_id, display_name="After")["user"]

    assert updated["userId"] == created["userId"]
    assert updated["loginIds"] == [login_id]
    assert updated["name"] == "After"
    # Everything not given is overridden with empty.
    assert updated["email"] == ""
    assert updated["phone"] == ""
    assert updated["verifiedEmail"] is False
    assert updated["verifiedPhone"] is False
    assert updated["givenName"] == ""
    assert updated["middleName"] == ""
    assert updated["familyName"] == ""
    assert updated["picture"] == ""
    assert updated["roleNames"] == []
    assert updated["userTenants"] == []
    assert updated["ssoAppIds"] == []
    # Identity and lifecycle are not fields of the update.
    assert updated["status"] == "enabled"
    assert updated["createdTime"] == created["createdTime"]
    assert updated["test"] is False

    loaded = _load(client, login_id)
    for field in ("userId", "loginIds", "name", "email", "phone", "givenName", "middleName", "familyName",
                  "picture", "roleNames", "userTenants", "status", "verifiedEmail", "verifiedPhone"):
        assert loaded[field] == updated[field], field


def test_update_sets_every_field(client, uid):
    login_id = f"upd-set-{uid}"
    created = _new_user(client, login_id=login_id)
    email = f"upd-set-{uid}@example.com"
    phone = unique_phone()

    user = client.mgmt.user.update(
        login_id,
        email=email,
        phone=phone,
        display_name="Fox Mulder",
        given_name="Fox",
        middle_name="William",
        family_name="Mulder",
        picture="https://example.com/fox.png",
        verified_email=True,
        verified_phone=False,
    )["user"]

    assert user["userId"] == created["userId"]
    assert user["email"] == email
    assert user["phone"] == phone
    assert user["verifiedEmail"] is True
    assert user["verifiedPhone"] is False
    assert (user["name"], user["givenName"], user["middleName"], user["familyName"]) == (
        "Fox Mulder", "Fox", "William", "Mulder")
    assert user["picture"] == "https://example.com/fox.png"
    assert _load(client, login_id)["email"] == email


def test_update_replaces_roles_and_tenants(client, uid):
    t1 = new_tenant(client, name=f"Upd One {uid}")
    t2 = new_tenant(client, name=f"Upd Two {uid}")
    r1 = new_role(client)
    r2 = new_role(client)
    login_id = f"upd-roles-{uid}"
    _new_user(client, login_id=login_id, role_names=[r1])
    client.mgmt.user.update(login_id, user_tenants=[AssociatedTenant(t1, [r1])], role_names=[r1])

    user = client.mgmt.user.update(login_id, role_names=[r2])["user"]
    assert user["roleNames"] == [r2]
    assert user["userTenants"] == []  # not given, so overridden with none

    user = client.mgmt.user.update(login_id, user_tenants=[AssociatedTenant(t2, [r2])])["user"]
    assert user["roleNames"] == []
    assert len(user["userTenants"]) == 1
    tenant = user["userTenants"][0]
    assert tenant["tenantId"] == t2
    assert tenant["tenantName"] == f"Upd Two {uid}"
    assert tenant["roleNames"] == [r2]
    assert _tenants(_load(client, login_id)) == {t2: [r2]}


# ---------------------------------------------------------------------------------------------
# patch, patch_batch
# ---------------------------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(client, uid):
    login_id = f"patch-{uid}"
    before = client.mgmt.user.create(
        login_id=login_id,
        email=f"patch-{uid}@example.com",
        phone=unique_phone(),
        display_name="Dana Scully",
        given_name="Dana",
        middle_name="Katherine",
        family_name="Scully",
        picture="https://example.com/dana.png",
        verified_email=True,
        verified_phone=True,
    )["user"]

    after = client.mgmt.user.patch(login_id, display_name="Agent Scully")["user"]
    assert after["name"] == "Agent Scully"
    for field in ("userId", "loginIds", "email", "phone", "verifiedEmail", "verifiedPhone", "givenName",
                  "middleName", "familyName", "picture", "roleNames", "userTenants", "status", "createdTime"):
        assert after[field] == before[field], field

    after = client.mgmt.user.patch(login_id, given_name="D.", picture="https://example.com/new.png")["user"]
    assert after["givenName"] == "D."
    assert after["picture"] == "https://example.com/new.png"
    assert after["name"] == "Agent Scully"
    assert after["familyName"] == "Scully"

    new_email = f"patched-{uid}@example.com"
    after = client.mgmt.user.patch(login_id, email=new_email, verified_email=True)["user"]
    assert after["email"] == new_email
    assert after["verifiedEmail"] is True
    assert _load(client, login_id)["email"] == new_email


def test_patch_phone_middle_name_and_roles_as_in_descopes_own_e2e(client, uid):
    # The steps of the SDK's own e2e scenario (tests/e2e/management/test_user.py), run there
    # against hosted Descope: a patched phone comes back verified, and role_names=[] clears roles.
    r1 = new_role(client)
    r2 = new_role(client)
    login_id = f"patch-e2e-{uid}@example.com"
    client.mgmt.user.create(login_id)
    client.mgmt.user.update(login_id, display_name="Desmond Copeland")

    phone = unique_phone()
    client.mgmt.user.patch(login_id, phone=phone, middle_name="Middle", role_names=[r1])
    user = _load(client, login_id)
    assert user["name"] == "Desmond Copeland"
    assert user["middleName"] == "Middle"
    assert user["phone"] == phone
    assert user["verifiedPhone"] is True
    assert user["roleNames"] == [r1]

    client.mgmt.user.patch(login_id, role_names=[r1, r2])
    assert sorted(_load(client, login_id)["roleNames"]) == sorted([r1, r2])

    client.mgmt.user.patch(login_id, role_names=[])
    user = _load(client, login_id)
    assert user["roleNames"] == []
    assert user["phone"] == phone


def test_patch_verified_phone_false_is_kept(client, uid):
    login_id = f"patch-unverified-{uid}"
    _new_user(client, login_id=login_id)
    user = client.mgmt.user.patch(login_id, phone=unique_phone(), verified_phone=False)["user"]
    assert user["verifiedPhone"] is False


def test_patch_user_tenants_replaces_the_tenant_list_only(client, uid):
    t1 = new_tenant(client)
    t2 = new_tenant(client)
    role = new_role(client)
    project_role = new_role(client)
    login_id = f"patch-tenants-{uid}"
    _new_user(client, login_id=login_id, role_names=[project_role], user_tenants=[AssociatedTenant(t1, [role])])

    user = client.mgmt.user.patch(login_id, user_tenants=[AssociatedTenant(t2, [role])])["user"]
    assert _tenants(user) == {t2: [role]}
    assert user["roleNames"] == [project_role]


def test_patch_status(client, uid):
    login_id = f"patch-status-{uid}"
    assert _new_user(client, login_id=login_id)["status"] == "enabled"
    assert client.mgmt.user.patch(login_id, status="disabled")["user"]["status"] == "disabled"
    assert _load(client, login_id)["status"] == "disabled"
    assert client.mgmt.user.patch(login_id, status="enabled")["user"]["status"] == "enabled"


def test_patch_sso_app_ids(client, uid):
    # patch sends the key as `ssoAppIds` (update and create send `ssoAppIDs`).
    login_id = f"patch-sso-{uid}"
    _new_user(client, login_id=login_id)
    user = client.mgmt.user.patch(login_id, sso_app_ids=[f"app-a-{uid}", f"app-b-{uid}"])["user"]
    assert sorted(user["ssoAppIds"]) == [f"app-a-{uid}", f"app-b-{uid}"]


def test_patch_batch_reports_each_user(client, uid):
    a = f"pb-a-{uid}"
    b = f"pb-b-{uid}"
    ghost = f"pb-ghost-{uid}"
    _new_user(client, login_id=a, display_name="A")
    _new_user(client, login_id=b, display_name="B")

    resp = client.mgmt.user.patch_batch(
        [UserObj(a, display_name="A2"), UserObj(ghost, display_name="Nobody"), UserObj(b, given_name="Bee")]
    )

    patched = resp["patchedUsers"]
    assert sorted(u["loginIds"][0] for u in patched) == sorted([a, b])
    failed = resp["failedUsers"]
    assert len(failed) == 1
    assert failed[0]["failure"]
    assert ghost in json.dumps(failed[0]["user"])

    assert _load(client, a)["name"] == "A2"
    user_b = _load(client, b)
    assert user_b["givenName"] == "Bee"
    assert user_b["name"] == "B"  # not given in the batch, so kept
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.load(ghost)
    assert_user_not_found(exc.value)


# ---------------------------------------------------------------------------------------------
# invite_batch: each user succeeds or fails on its own
# ---------------------------------------------------------------------------------------------


def test_invite_batch_duplicate_login_id_fails_alone(client, uid):
    existing = _new_user(client, login_id=f"ib-existing-{uid}@example.com")
    fresh = [f"ib-fresh{i}-{uid}@example.com" for i in range(2)]

    resp = client.mgmt.user.invite_batch(
        [UserObj(fresh[0]), UserObj(existing["loginIds"][0], display_name="Impostor"), UserObj(fresh[1])]
    )

    assert sorted(u["loginIds"][0] for u in resp["createdUsers"]) == sorted(fresh)
    for created in resp["createdUsers"]:
        assert created["status"] == "invited"
        assert created["verifiedEmail"] is True
    failed = resp["failedUsers"]
    assert len(failed) == 1
    assert failed[0]["failure"]
    assert existing["loginIds"][0] in json.dumps(failed[0]["user"])
    for login_id in fresh:
        assert _load(client, login_id)["loginIds"] == [login_id]
    kept = _load(client, existing["loginIds"][0])
    assert kept["userId"] == existing["userId"]
    assert kept["name"] == ""


def test_invite_batch_unknown_tenant_or_role_fails_alone(client, uid):
    good = f"ib-good-{uid}@example.com"
    bad_tenant = f"ib-badtenant-{uid}@example.com"
    bad_role = f"ib-badrole-{uid}@example.com"

    resp = client.mgmt.user.invite_batch([
        UserObj(bad_tenant, user_tenants=[AssociatedTenant(f"no-such-tenant-{uid}")]),
        UserObj(good),
        UserObj(bad_role, role_names=[f"no-such-role-{uid}"]),
    ])

    assert [u["loginIds"][0] for u in resp["createdUsers"]] == [good]
    failed = resp["failedUsers"]
    assert len(failed) == 2
    assert all(f["failure"] for f in failed)
    dumped = json.dumps(failed)
    assert bad_tenant in dumped and bad_role in dumped
    for login_id in (bad_tenant, bad_role):
        with pytest.raises(AuthException) as exc:
            client.mgmt.user.load(login_id)
        assert_user_not_found(exc.value)


# ---------------------------------------------------------------------------------------------
# Status
# ---------------------------------------------------------------------------------------------


def test_deactivate_and_activate(client, uid):
    login_id = f"status-{uid}"
    assert _new_user(client, login_id=login_id)["status"] == "enabled"

    resp = client.mgmt.user.deactivate(login_id)
    assert resp["user"]["status"] == "disabled"
    assert _load(client, login_id)["status"] == "disabled"

    resp = client.mgmt.user.activate(login_id)
    assert resp["user"]["status"] == "enabled"
    assert _load(client, login_id)["status"] == "enabled"


def test_load_users_leaves_out_disabled_users_unless_asked(client, uid):
    # The Go SDK documents includeInvalidUsers: "whether to include invalid users such as expired
    # or disabled in the response". Python sends the key only when it is given.
    enabled = _new_user(client, login_id=f"lu-enabled-{uid}")
    disabled = _new_user(client, login_id=f"lu-disabled-{uid}", status="disabled")
    ids = [enabled["userId"], disabled["userId"]]

    assert [u["userId"] for u in client.mgmt.user.load_users(ids)["users"]] == [enabled["userId"]]
    assert [u["userId"] for u in client.mgmt.user.load_users(ids, include_invalid_users=False)["users"]] == [
        enabled["userId"]]
    assert sorted(u["userId"] for u in client.mgmt.user.load_users(ids, include_invalid_users=True)["users"]) == sorted(ids)


def test_deactivated_user_cannot_refresh(client, signin_ready):
    jwt = _sign_in(client, f"deactivated-{uuid.uuid4().hex[:10]}")
    refresh = jwt["refreshSessionToken"]["jwt"]
    # Refresh JWTs rotate: keep the new one.
    refresh = client.refresh_session(refresh)["refreshSessionToken"]["jwt"]
    client.mgmt.user.deactivate(jwt["user"]["userId"])
    with pytest.raises(AuthException) as exc:
        client.refresh_session(refresh)
    assert exc.value.status_code == 401


def test_activate_an_invited_user(client):
    login_id = unique_login_id("invited")
    assert client.mgmt.user.create(login_id)["user"]["status"] == "invited"
    assert client.mgmt.user.activate(login_id)["user"]["status"] == "enabled"


# ---------------------------------------------------------------------------------------------
# Login ids
# ---------------------------------------------------------------------------------------------


def test_create_with_additional_login_ids_then_load_by_each(client, uid):
    primary = f"primary-{uid}"
    extra = [f"extra1-{uid}@example.com", unique_phone()]
    created = client.mgmt.user.create(login_id=primary, additional_login_ids=extra)["user"]
    assert created["loginIds"] == [primary, *extra]

    for login_id in (primary, *extra):
        assert _load(client, login_id)["userId"] == created["userId"], login_id
    found = client.mgmt.user.search_all(login_ids=[extra[1]])["users"]
    assert [u["userId"] for u in found] == [created["userId"]]

    # An additional login id is taken like a primary one.
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.create(login_id=extra[0])
    assert exc.value.status_code == 409
    assert error_code(exc.value) == USER_ALREADY_EXISTS
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.create(login_id=f"other-{uid}", additional_login_ids=[primary])
    assert exc.value.status_code == 409
    assert error_code(exc.value) == USER_ALREADY_EXISTS


def test_update_login_id_replaces_it(client, uid):
    old = f"old-{uid}@example.com"
    new = f"new-{uid}@example.com"
    created = client.mgmt.user.create(old)["user"]

    resp = client.mgmt.user.update_login_id(old, new)
    assert resp["user"]["loginIds"] == [new]
    assert _load(client, new)["userId"] == created["userId"]
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.load(old)
    assert_user_not_found(exc.value)


def test_update_login_id_to_a_taken_one_is_refused(client, uid):
    a = _new_user(client, login_id=f"lid-a-{uid}")
    b = _new_user(client, login_id=f"lid-b-{uid}")
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.update_login_id(a["loginIds"][0], b["loginIds"][0])
    assert_refused(exc.value)
    assert _load(client, a["loginIds"][0])["userId"] == a["userId"]
    assert _load(client, b["loginIds"][0])["userId"] == b["userId"]


def test_update_login_id_to_none_removes_it_but_not_the_last(client, uid):
    primary = f"keep-{uid}"
    extra = f"drop-{uid}"
    client.mgmt.user.create(login_id=primary, additional_login_ids=[extra])

    resp = client.mgmt.user.update_login_id(extra, None)
    assert resp["user"]["loginIds"] == [primary]
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.load(extra)
    assert_user_not_found(exc.value)

    # "A user must have at least one login ID. Trying to remove the last one will fail."
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.update_login_id(primary, None)
    assert_refused(exc.value)
    assert _load(client, primary)["loginIds"] == [primary]


# ---------------------------------------------------------------------------------------------
# Email, phone, names, picture, custom attribute
# ---------------------------------------------------------------------------------------------


def test_update_email_sets_verifies_and_removes(client, uid):
    login_id = f"email-{uid}"
    _new_user(client, login_id=login_id)

    first = f"first-{uid}@example.com"
    user = client.mgmt.user.update_email(login_id, first, verified=True)["user"]
    assert (user["email"], user["verifiedEmail"]) == (first, True)

    second = f"second-{uid}@example.com"
    user = client.mgmt.user.update_email(login_id, second, verified=False)["user"]
    assert (user["email"], user["verifiedEmail"]) == (second, False)
    assert _load(client, login_id)["email"] == second

    user = client.mgmt.user.update_email(login_id, None)["user"]
    assert user["email"] == ""
    assert user["verifiedEmail"] is False
    assert user["loginIds"] == [login_id]


def test_update_email_fail_on_conflict(client, uid):
    taken = f"taken-{uid}@example.com"
    client.mgmt.user.create(taken)
    login_id = f"email-conflict-{uid}"
    _new_user(client, login_id=login_id)

    with pytest.raises(AuthException) as exc:
        client.mgmt.user.update_email(login_id, taken, verified=True, fail_on_conflict=True)
    assert_refused(exc.value)
    assert _load(client, login_id)["email"] == ""


def test_update_phone_sets_verifies_and_removes(client, uid):
    login_id = f"phone-{uid}"
    _new_user(client, login_id=login_id)

    first = unique_phone()
    user = client.mgmt.user.update_phone(login_id, first, verified=True)["user"]
    assert (user["phone"], user["verifiedPhone"]) == (first, True)

    second = unique_phone()
    user = client.mgmt.user.update_phone(login_id, second, verified=False)["user"]
    assert (user["phone"], user["verifiedPhone"]) == (second, False)

    user = client.mgmt.user.update_phone(login_id, None)["user"]
    assert user["phone"] == ""
    assert user["verifiedPhone"] is False


def test_update_phone_invalid_or_conflicting_is_refused(client, uid):
    login_id = f"phone-bad-{uid}"
    _new_user(client, login_id=login_id)
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.update_phone(login_id, "not-a-phone", verified=True)
    assert_refused(exc.value, 400)

    taken = unique_phone()
    client.mgmt.user.create(login_id=taken)  # a phone-shaped login id
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.update_phone(login_id, taken, verified=True, fail_on_conflict=True)
    assert_refused(exc.value)
    assert _load(client, login_id)["phone"] == ""


def test_update_display_name_and_the_other_names(client, uid):
    login_id = f"names-{uid}"
    _new_user(client, login_id=login_id)

    user = client.mgmt.user.update_display_name(
        login_id, display_name="Walter Sergei Skinner", given_name="Walter", middle_name="Sergei",
        family_name="Skinner",
    )["user"]
    assert (user["name"], user["givenName"], user["middleName"], user["familyName"]) == (
        "Walter Sergei Skinner", "Walter", "Sergei", "Skinner")

    # Only the names that are sent change.
    user = client.mgmt.user.update_display_name(login_id, given_name="Walt")["user"]
    assert (user["name"], user["givenName"], user["middleName"], user["familyName"]) == (
        "Walter Sergei Skinner", "Walt", "Sergei", "Skinner")
    user = client.mgmt.user.update_display_name(login_id, display_name="AD Skinner")["user"]
    assert (user["name"], user["givenName"]) == ("AD Skinner", "Walt")

    # An empty name removes it.
    user = client.mgmt.user.update_display_name(login_id, display_name="", middle_name="")["user"]
    assert (user["name"], user["givenName"], user["middleName"], user["familyName"]) == (
        "", "Walt", "", "Skinner")
    assert _load(client, login_id)["familyName"] == "Skinner"


def test_update_picture_sets_and_removes(client, uid):
    login_id = f"picture-{uid}"
    _new_user(client, login_id=login_id)
    url = f"https://example.com/{uid}.png"
    assert client.mgmt.user.update_picture(login_id, url)["user"]["picture"] == url
    assert _load(client, login_id)["picture"] == url
    assert client.mgmt.user.update_picture(login_id, None)["user"]["picture"] == ""
    assert _load(client, login_id)["picture"] == ""


def test_update_custom_attribute_changes_one_key(client, uid):
    team = f"team{uid[:10]}"
    level = f"level{uid[:10]}"
    client.mgmt.user.create_custom_attribute(team, "Team", "string")
    client.mgmt.user.create_custom_attribute(level, "Level", "number")
    login_id = f"attr-{uid}"
    _new_user(client, login_id=login_id, custom_attributes={team: "red"})

    user = client.mgmt.user.update_custom_attribute(login_id, level, 3)["user"]
    assert user["customAttributes"] == {team: "red", level: 3}
    user = client.mgmt.user.update_custom_attribute(login_id, team, "blue")["user"]
    assert user["customAttributes"] == {team: "blue", level: 3}
    assert _load(client, login_id)["customAttributes"] == {team: "blue", level: 3}


# ---------------------------------------------------------------------------------------------
# Project roles
# ---------------------------------------------------------------------------------------------


def test_set_add_remove_project_roles(client, uid):
    r1, r2, r3 = (new_role(client) for _ in range(3))
    login_id = f"roles-{uid}"
    _new_user(client, login_id=login_id)

    assert sorted(client.mgmt.user.set_roles(login_id, [r1, r2])["user"]["roleNames"]) == sorted([r1, r2])
    assert sorted(client.mgmt.user.add_roles(login_id, [r3])["user"]["roleNames"]) == sorted([r1, r2, r3])
    # Adding a role the user has does not duplicate it.
    assert sorted(client.mgmt.user.add_roles(login_id, [r1])["user"]["roleNames"]) == sorted([r1, r2, r3])
    assert sorted(client.mgmt.user.remove_roles(login_id, [r1])["user"]["roleNames"]) == sorted([r2, r3])
    assert sorted(_load(client, login_id)["roleNames"]) == sorted([r2, r3])
    # set replaces.
    assert client.mgmt.user.set_roles(login_id, [r1])["user"]["roleNames"] == [r1]
    assert client.mgmt.user.set_roles(login_id, [])["user"]["roleNames"] == []


def test_project_role_calls_leave_tenant_roles_alone(client, uid):
    tenant = new_tenant(client)
    r1 = new_role(client)
    r2 = new_role(client)
    login_id = f"roles-tenant-{uid}"
    _new_user(client, login_id=login_id, user_tenants=[AssociatedTenant(tenant, [r1])])

    user = client.mgmt.user.set_roles(login_id, [r2])["user"]
    assert user["roleNames"] == [r2]
    assert _tenants(user) == {tenant: [r1]}
    user = client.mgmt.user.remove_roles(login_id, [r2, r1])["user"]
    assert user["roleNames"] == []
    assert _tenants(user) == {tenant: [r1]}


# ---------------------------------------------------------------------------------------------
# Tenants and tenant roles
# ---------------------------------------------------------------------------------------------


def test_add_and_remove_tenant(client, uid):
    name = f"Membership {uid}"
    tenant = new_tenant(client, name=name)
    other = new_tenant(client)
    login_id = f"tenants-{uid}"
    _new_user(client, login_id=login_id)

    user = client.mgmt.user.add_tenant(login_id, tenant)["user"]
    assert len(user["userTenants"]) == 1
    assert user["userTenants"][0]["tenantId"] == tenant
    assert user["userTenants"][0]["tenantName"] == name
    assert user["userTenants"][0]["roleNames"] == []
    # Adding it again does not duplicate it.
    assert _tenants(client.mgmt.user.add_tenant(login_id, tenant)["user"]) == {tenant: []}
    assert _tenants(client.mgmt.user.add_tenant(login_id, other)["user"]) == {tenant: [], other: []}

    assert _tenants(client.mgmt.user.remove_tenant(login_id, tenant)["user"]) == {other: []}
    assert _tenants(_load(client, login_id)) == {other: []}
    assert [u["loginIds"][0] for u in client.mgmt.user.search_all(tenant_ids=[tenant], login_ids=[login_id])["users"]] == []


def test_set_add_remove_tenant_roles(client, uid):
    tenant = new_tenant(client)
    project_role = new_role(client)
    r1, r2, r3 = (new_role(client) for _ in range(3))
    login_id = f"tenant-roles-{uid}"
    _new_user(client, login_id=login_id, role_names=[project_role], user_tenants=[AssociatedTenant(tenant)])

    user = client.mgmt.user.set_tenant_roles(login_id, tenant, [r1, r2])["user"]
    assert _tenants(user) == {tenant: sorted([r1, r2])}
    user = client.mgmt.user.add_tenant_roles(login_id, tenant, [r3, r1])["user"]
    assert _tenants(user) == {tenant: sorted([r1, r2, r3])}
    user = client.mgmt.user.remove_tenant_roles(login_id, tenant, [r1])["user"]
    assert _tenants(user) == {tenant: sorted([r2, r3])}
    # Tenant role calls do not touch project roles.
    assert user["roleNames"] == [project_role]
    user = client.mgmt.user.set_tenant_roles(login_id, tenant, [r1])["user"]
    assert _tenants(user) == {tenant: [r1]}
    assert _tenants(_load(client, login_id)) == {tenant: [r1]}


def test_tenant_scoped_role_can_be_given_in_its_tenant(client, uid):
    tenant = new_tenant(client)
    scoped = new_role(client, tenant_id=tenant)
    login_id = f"scoped-{uid}"
    _new_user(client, login_id=login_id, user_tenants=[AssociatedTenant(tenant)])
    user = client.mgmt.user.add_tenant_roles(login_id, tenant, [scoped])["user"]
    assert _tenants(user) == {tenant: [scoped]}


# ---------------------------------------------------------------------------------------------
# Unknown tenants and roles are refused, and change nothing
# ---------------------------------------------------------------------------------------------

UNKNOWN_ROLE_CALLS = {
    "set_roles": lambda c, login, tenant, ghost: c.mgmt.user.set_roles(login, [ghost]),
    "add_roles": lambda c, login, tenant, ghost: c.mgmt.user.add_roles(login, [ghost]),
    "update": lambda c, login, tenant, ghost: c.mgmt.user.update(login, role_names=[ghost]),
    "patch": lambda c, login, tenant, ghost: c.mgmt.user.patch(login, role_names=[ghost]),
    "patch_tenant_roles": lambda c, login, tenant, ghost: c.mgmt.user.patch(
        login, user_tenants=[AssociatedTenant(tenant, [ghost])]),
    "set_tenant_roles": lambda c, login, tenant, ghost: c.mgmt.user.set_tenant_roles(login, tenant, [ghost]),
    "add_tenant_roles": lambda c, login, tenant, ghost: c.mgmt.user.add_tenant_roles(login, tenant, [ghost]),
}


@pytest.mark.parametrize("call", list(UNKNOWN_ROLE_CALLS), ids=list(UNKNOWN_ROLE_CALLS))
def test_unknown_role_is_refused(client, uid, call):
    tenant = new_tenant(client)
    role = new_role(client)
    login_id = f"ghost-role-{uid}"
    _new_user(client, login_id=login_id, role_names=[role], user_tenants=[AssociatedTenant(tenant, [role])])

    with pytest.raises(AuthException) as exc:
        UNKNOWN_ROLE_CALLS[call](client, login_id, tenant, f"no-such-role-{uid}")
    assert_refused(exc.value)
    user = _load(client, login_id)
    assert user["roleNames"] == [role]
    assert _tenants(user) == {tenant: [role]}


UNKNOWN_TENANT_CALLS = {
    "add_tenant": lambda c, login, ghost, role: c.mgmt.user.add_tenant(login, ghost),
    "update": lambda c, login, ghost, role: c.mgmt.user.update(login, user_tenants=[AssociatedTenant(ghost)]),
    "patch": lambda c, login, ghost, role: c.mgmt.user.patch(login, user_tenants=[AssociatedTenant(ghost)]),
    "set_tenant_roles": lambda c, login, ghost, role: c.mgmt.user.set_tenant_roles(login, ghost, [role]),
    "add_tenant_roles": lambda c, login, ghost, role: c.mgmt.user.add_tenant_roles(login, ghost, [role]),
}


@pytest.mark.parametrize("call", list(UNKNOWN_TENANT_CALLS), ids=list(UNKNOWN_TENANT_CALLS))
def test_unknown_tenant_is_refused(client, uid, call):
    tenant = new_tenant(client)
    role = new_role(client)
    login_id = f"ghost-tenant-{uid}"
    _new_user(client, login_id=login_id, user_tenants=[AssociatedTenant(tenant, [role])])

    with pytest.raises(AuthException) as exc:
        UNKNOWN_TENANT_CALLS[call](client, login_id, f"no-such-tenant-{uid}", role)
    assert_refused(exc.value)
    assert _tenants(_load(client, login_id)) == {tenant: [role]}


@pytest.mark.parametrize("test_user", [False, True], ids=["create", "create_test_user"])
def test_create_with_unknown_tenant_or_role_is_refused(client, uid, test_user):
    create = client.mgmt.user.create_test_user if test_user else client.mgmt.user.create
    tenant = new_tenant(client)
    attempts = {
        f"ct-ghost-tenant-{uid}": dict(user_tenants=[AssociatedTenant(f"no-such-tenant-{uid}")]),
        f"ct-ghost-role-{uid}": dict(role_names=[f"no-such-role-{uid}"]),
        f"ct-ghost-tenant-role-{uid}": dict(user_tenants=[AssociatedTenant(tenant, [f"no-such-role-{uid}"])]),
    }
    for login_id, kwargs in attempts.items():
        with pytest.raises(AuthException) as exc:
            create(login_id=login_id, **kwargs)
        assert_refused(exc.value)
        with pytest.raises(AuthException) as exc:
            client.mgmt.user.load(login_id)
        assert_user_not_found(exc.value)


# ---------------------------------------------------------------------------------------------
# SSO apps
# ---------------------------------------------------------------------------------------------


def test_set_add_remove_sso_apps(client, uid):
    a, b, c = (f"app-{x}-{uid}" for x in "abc")
    login_id = f"sso-{uid}"
    _new_user(client, login_id=login_id)

    assert sorted(client.mgmt.user.set_sso_apps(login_id, [a, b])["user"]["ssoAppIds"]) == [a, b]
    assert sorted(client.mgmt.user.add_sso_apps(login_id, [c, a])["user"]["ssoAppIds"]) == [a, b, c]
    assert sorted(client.mgmt.user.remove_sso_apps(login_id, [a])["user"]["ssoAppIds"]) == [b, c]
    assert sorted(_load(client, login_id)["ssoAppIds"]) == [b, c]
    assert client.mgmt.user.set_sso_apps(login_id, [])["user"]["ssoAppIds"] == []


# ---------------------------------------------------------------------------------------------
# Addressing: unknown users, user ids
# ---------------------------------------------------------------------------------------------

UNKNOWN_USER_CALLS = {
    "update": lambda c, g: c.mgmt.user.update(g, display_name="x"),
    "patch": lambda c, g: c.mgmt.user.patch(g, display_name="x"),
    "activate": lambda c, g: c.mgmt.user.activate(g),
    "deactivate": lambda c, g: c.mgmt.user.deactivate(g),
    "update_login_id": lambda c, g: c.mgmt.user.update_login_id(g, f"{g}-new"),
    "update_email": lambda c, g: c.mgmt.user.update_email(g, f"{g}@example.com", verified=True),
    "update_phone": lambda c, g: c.mgmt.user.update_phone(g, unique_phone(), verified=True),
    "update_display_name": lambda c, g: c.mgmt.user.update_display_name(g, display_name="x"),
    "update_picture": lambda c, g: c.mgmt.user.update_picture(g, "https://example.com/x.png"),
    "set_sso_apps": lambda c, g: c.mgmt.user.set_sso_apps(g, ["app"]),
    "add_sso_apps": lambda c, g: c.mgmt.user.add_sso_apps(g, ["app"]),
    "remove_sso_apps": lambda c, g: c.mgmt.user.remove_sso_apps(g, ["app"]),
    "logout_user": lambda c, g: c.mgmt.user.logout_user(g),
    "logout_user_by_user_id": lambda c, g: c.mgmt.user.logout_user_by_user_id(g),
}


@pytest.mark.parametrize("call", list(UNKNOWN_USER_CALLS), ids=list(UNKNOWN_USER_CALLS))
def test_mutation_of_an_unknown_user_is_e112102(client, uid, call):
    with pytest.raises(AuthException) as exc:
        UNKNOWN_USER_CALLS[call](client, f"ghost-{uid}")
    assert_user_not_found(exc.value)


def test_delete_batch_by_user_ids(client, uid):
    # POST /v1/mgmt/user/delete/batch {"userIds": [...]}
    doomed = [_new_user(client, login_id=f"batch-del{i}-{uid}") for i in range(2)]
    kept = _new_user(client, login_id=f"batch-keep-{uid}")
    client.mgmt.user.delete_batch([u["userId"] for u in doomed])
    for user in doomed:
        with pytest.raises(AuthException) as exc:
            client.mgmt.user.load_by_user_id(user["userId"])
        assert_user_not_found(exc.value)
    assert _load(client, f"batch-keep-{uid}")["userId"] == kept["userId"]


def test_mutations_accept_a_user_id_as_login_id(client, uid):
    # The Go and Node SDKs name this parameter loginIdOrUserId.
    user = _new_user(client, login_id=f"by-id-{uid}")
    resp = client.mgmt.user.update_display_name(user["userId"], display_name="By Id")
    assert resp["user"]["userId"] == user["userId"]
    assert _load(client, f"by-id-{uid}")["name"] == "By Id"
    assert client.mgmt.user.deactivate(user["userId"])["user"]["status"] == "disabled"


# ---------------------------------------------------------------------------------------------
# Logout and history (sessions come from a real OAuth sign-in, see test_sdk_signin.py)
# ---------------------------------------------------------------------------------------------


def test_logout_user_without_sessions_succeeds(client, uid):
    user = _new_user(client, login_id=f"logout-idle-{uid}")
    client.mgmt.user.logout_user(f"logout-idle-{uid}")
    client.mgmt.user.logout_user_by_user_id(user["userId"])
    assert _load(client, f"logout-idle-{uid}")["status"] == "enabled"


@pytest.mark.parametrize("by", ["login_id", "user_id"])
def test_logout_user_revokes_every_session(client, signin_ready, by):
    account = f"logout-{uuid.uuid4().hex[:10]}"
    first = _sign_in(client, account)
    second = _sign_in(client, account)
    user = first["user"]
    assert second["user"]["userId"] == user["userId"]
    refresh_tokens = [first["refreshSessionToken"]["jwt"], second["refreshSessionToken"]["jwt"]]
    # Live before the logout; refresh JWTs rotate, so keep the new one.
    refresh_tokens[0] = client.refresh_session(refresh_tokens[0])["refreshSessionToken"]["jwt"]

    if by == "login_id":
        client.mgmt.user.logout_user(user["loginIds"][0])
    else:
        client.mgmt.user.logout_user_by_user_id(user["userId"])

    for refresh in refresh_tokens:
        with pytest.raises(AuthException) as exc:
            client.refresh_session(refresh)
        assert exc.value.status_code == 401
    # The user can sign in again.
    again = _sign_in(client, account)
    assert again["user"]["userId"] == user["userId"]
    client.refresh_session(again["refreshSessionToken"]["jwt"])


def test_history_of_a_user_who_never_signed_in_is_empty(client, uid):
    user = _new_user(client, login_id=f"history-none-{uid}")
    assert client.mgmt.user.history([user["userId"]]) == []


def test_history_lists_sign_ins(client, signin_ready, uid):
    idle = _new_user(client, login_id=f"history-idle-{uid}")
    before = time.time()
    account = f"history-{uuid.uuid4().hex[:10]}"
    jwt = _sign_in(client, account)
    _sign_in(client, account)
    after = time.time()
    user_id = jwt["user"]["userId"]

    # POST /v1/mgmt/user/history: the body is a JSON array of user ids, and so is the answer.
    history = client.mgmt.user.history([user_id, idle["userId"]])
    assert isinstance(history, list)
    assert len(history) == 2
    for entry in history:
        assert entry["userId"] == user_id
        # loginTime is Unix seconds.
        assert isinstance(entry["loginTime"], int)
        assert before - 5 <= entry["loginTime"] <= after + 5
