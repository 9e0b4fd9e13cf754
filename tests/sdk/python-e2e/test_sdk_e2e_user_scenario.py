"""The Descope Python SDK's own end-to-end user-management scenario, run against idvault.

The PyPI sdist of descope 2.16.1 holds only the `descope` package (no `tests/`), so the scenario
of the SDK repository's `tests/e2e/management/test_user.py` is reproduced here step by step, in
our own words, and set up the way that suite sets itself up (`tests/e2e/conftest.py`):
- the project id and management key come from DESCOPE_PROJECT_ID and DESCOPE_MANAGEMENT_KEY;
- the base URL is not passed to the client: the SDK reads DESCOPE_BASE_URI itself;
- TLS verification is skipped when that URL's host is localhost or a loopback address;
- the scenario runs twice, once with `DescopeClient` and once with `DescopeClientAsync`, through
  one body that awaits what the async client returns.
One deliberate difference: without those variables this file fails instead of skipping, so that a
misconfigured run cannot pass.

Steps of the original that are left out, because they belong to OTP sign-in, not to user
management (idvault has no OTP):
- `mgmt.user.generate_otp_for_test_user` for a login id that does not exist yet must raise;
- `mgmt.user.generate_otp_for_test_user` for the test user, then `otp.verify_code` with the code,
  and the checks on the JWT response (`firstSeen`, session and refresh JWTs, user id).
Everything else is kept, in the original order, with the original assertions.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from urllib.parse import urlparse

import pytest
from descope import AuthException, DescopeClient
from descope.descope_client_async import DescopeClientAsync
from descope.management.user import UserObj

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _settings() -> tuple[str, str, bool]:
    project_id = os.environ.get("DESCOPE_PROJECT_ID")
    management_key = os.environ.get("DESCOPE_MANAGEMENT_KEY")
    if not project_id or not management_key:
        pytest.fail("set DESCOPE_PROJECT_ID, DESCOPE_MANAGEMENT_KEY and DESCOPE_BASE_URI (run.sh does)")
    base_uri = os.environ.get("DESCOPE_BASE_URI", "")
    skip_verify = urlparse(base_uri).hostname in LOOPBACK_HOSTS
    if base_uri and not skip_verify and urlparse(base_uri).scheme != "https":
        pytest.fail(f"DESCOPE_BASE_URI must use https for a remote target, got: {base_uri}")
    return project_id, management_key, skip_verify


async def _call(result):
    """Awaits what the async client returns; passes the sync client's answers through."""
    if asyncio.iscoroutine(result):
        return await result
    return result


def _has_login_id(users: list, login_id: str) -> bool:
    return any(login_id in (u.get("loginIds") or []) for u in users)


async def _user_management_scenario(client) -> None:
    def tag() -> str:
        return uuid.uuid4().hex[:8]

    login_id = f"des-{tag()}@copeland.com"
    invited = f"des-invited-{tag()}@copeland.com"
    batch_invited = [f"des-1-invited-{tag()}@copeland.com", f"des-2-invited-{tag()}@copeland.com"]
    tester = f"test-{uuid.uuid4().hex[:10]}"
    roles = [f"role-{tag()}", f"role-{tag()}"]
    renamed = ""

    try:
        # --- A user's life: create, load, rename the login id, find, update, patch, delete ---
        user = (await _call(client.mgmt.user.create(login_id)))["user"]
        assert user
        assert user["email"] == login_id
        assert user["verifiedEmail"]
        assert user["status"] == "invited"

        loaded = (await _call(client.mgmt.user.load(login_id)))["user"]
        assert loaded["email"] == login_id
        assert loaded["verifiedEmail"]
        assert loaded["status"] == "invited"

        new_login_id = f"bane-{tag()}@copeland.com"
        changed = await _call(client.mgmt.user.update_login_id(login_id, new_login_id))
        renamed = new_login_id
        assert renamed in changed["user"]["loginIds"]

        everyone = (await _call(client.mgmt.user.search_all())).get("users", [])
        assert _has_login_id(everyone, renamed)

        await _call(client.mgmt.user.update(renamed, display_name="Desmond Copeland"))

        for role in roles:
            await _call(client.mgmt.role.create(role))

        await _call(client.mgmt.user.patch(renamed, phone="+1234567890", middle_name="Middle", role_names=[roles[0]]))
        patched = (await _call(client.mgmt.user.load(renamed)))["user"]
        assert renamed in patched["loginIds"]
        assert patched["name"] == "Desmond Copeland"
        assert patched.get("middleName") == "Middle"
        assert patched.get("phone") == "+1234567890"
        assert roles[0] in patched.get("roleNames", [])
        assert patched.get("verifiedPhone")

        await _call(client.mgmt.user.patch(renamed, role_names=roles))
        both = (await _call(client.mgmt.user.load(renamed)))["user"].get("roleNames", [])
        assert len(both) == 2
        assert roles[0] in both and roles[1] in both

        await _call(client.mgmt.user.patch(renamed, role_names=[]))
        cleared = (await _call(client.mgmt.user.load(renamed)))["user"]
        assert len(cleared.get("roleNames", [])) == 0
        assert cleared.get("phone") == "+1234567890"

        await _call(client.mgmt.user.delete(renamed))
        everyone = (await _call(client.mgmt.user.search_all())).get("users", [])
        assert not _has_login_id(everyone, renamed)

        # --- A test user: create, load by id, find among test users, delete ---
        # (the OTP steps of the original are left out: see the module docstring)
        created = await _call(
            client.mgmt.user.create_test_user(
                login_id=tester,
                email=f"e2e-{tag()}@example.com",
                phone="+12025550142",
                display_name="foo bar test",
            )
        )
        test_user = created["user"]
        assert test_user["loginIds"][0] == tester
        test_user_id = test_user["userId"]

        assert (await _call(client.mgmt.user.load_by_user_id(test_user_id)))["user"]

        test_users = (await _call(client.mgmt.user.search_all(test_users_only=True))).get("users", [])
        assert any(u["userId"] == test_user_id for u in test_users)

        await _call(client.mgmt.user.delete(tester))
        with pytest.raises(AuthException):
            await _call(client.mgmt.user.load_by_user_id(test_user_id))

        # --- Invitations: one, then a batch of two ---
        invitee = (await _call(client.mgmt.user.invite(invited)))["user"]
        assert invitee["email"] == invited
        assert invitee["verifiedEmail"]
        assert invitee["status"] == "invited"

        invitee = (await _call(client.mgmt.user.load(invited)))["user"]
        assert invitee["email"] == invited
        assert invitee["verifiedEmail"]
        assert invitee["status"] == "invited"

        batch = await _call(client.mgmt.user.invite_batch([UserObj(batch_invited[0]), UserObj(batch_invited[1])]))
        assert len(batch["createdUsers"]) == 2
        assert len(batch["failedUsers"]) == 0
        for member in batch["createdUsers"]:
            assert member["email"]
            assert member["verifiedEmail"]
            assert member["status"] == "invited"

        for member_login_id in batch_invited:
            await _call(client.mgmt.user.load(member_login_id))
    finally:
        # Clean up like the original: ignore refusals, fail on server errors.
        for role in roles:
            try:
                await _call(client.mgmt.role.delete(role))
            except AuthException as exc:
                if exc.status_code and exc.status_code >= 500:
                    raise
        for leftover in (login_id, renamed, tester, invited, *batch_invited):
            if not leftover:
                continue
            try:
                await _call(client.mgmt.user.delete(leftover))
            except AuthException as exc:
                if exc.status_code and exc.status_code >= 500:
                    raise


def test_user_management_scenario_sync():
    project_id, management_key, skip_verify = _settings()
    client = DescopeClient(project_id=project_id, management_key=management_key, skip_verify=skip_verify)
    asyncio.run(_user_management_scenario(client))


def test_user_management_scenario_async():
    project_id, management_key, skip_verify = _settings()

    async def run() -> None:
        client = DescopeClientAsync(project_id=project_id, management_key=management_key, skip_verify=skip_verify)
        try:
            await _user_management_scenario(client)
        finally:
            await client.aclose()

    asyncio.run(run())
