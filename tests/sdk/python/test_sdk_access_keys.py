"""Access keys through the official Descope Python SDK (descope==2.16.1) against idvault: the
management calls, and the exchange of a key for a session JWT that `validate_session` accepts.

What the SDK sends (descope/management/access_key.py, _access_key_base.py, descope/auth.py):
- access_key.create: POST /v1/mgmt/accesskey/create {name, expireTime, roleNames, keyTenants
  [{tenantId, roleNames}], userId, customClaims, description, permittedIps, customAttributes}
  (absent ones as null); answers {"key", "cleartext"}.
- access_key.load: GET /v1/mgmt/accesskey?id= -> {"key"}; each of the key's "keyTenants" is
  {tenantId, roleNames, tenantName} as Descope answers it.
- access_key.search_all_access_keys: POST /v1/mgmt/accesskey/search {tenantIds, boundUserId,
  creatingUser, customAttributes} -> {"keys"}.
- access_key.update: POST /v1/mgmt/accesskey/update {id, name[, description, customClaims,
  permittedIps, customAttributes]}.
- access_key.activate/deactivate/delete/rotate: POST /v1/mgmt/accesskey/<verb> {id}; the batch
  variants POST .../<verb>/batch {ids}. rotate answers {"key", "cleartext"}.
- exchange_access_key: POST /v1/auth/accesskey/exchange {loginOptions: {customClaims,
  selectedTenant}} with `Authorization: Bearer <projectId>:<accessKey>[:<managementKey>]`; reads
  `sessionJwt` (and `refreshJwt` when there is one: Descope's exchange answers none, nor does
  idvault's) and validates it against the JWKS at /v2/keys/<projectId>. The claims of
  loginOptions land under the session's `nsec` claim, as the SDK's own e2e test against Descope
  expects (tests/e2e/test_access_keys.py); the key's own customClaims are top-level.
"""

from __future__ import annotations

import time

import pytest
from descope import AccessKeyLoginOptions, AssociatedTenant, AuthException, DescopeClient
from descope.common import REFRESH_SESSION_TOKEN_NAME, SESSION_TOKEN_NAME

from idvault_sdk_helpers import assert_refused, new_permission, new_role, new_tenant, record_secret


@pytest.fixture(scope="module")
def machine(idvault_server) -> DescopeClient:
    """A client as a machine holds it: the project id, no management key."""
    return DescopeClient(project_id=idvault_server.project_id, base_url=idvault_server.base_url)


def _create(client, name: str, **kwargs) -> tuple[str, str]:
    resp = client.mgmt.access_key.create(name=name, **kwargs)
    record_secret("access key", resp["cleartext"])
    return resp["key"]["id"], resp["cleartext"]


def _refused(machine, cleartext: str) -> None:
    with pytest.raises(AuthException) as e:
        machine.exchange_access_key(cleartext)
    assert e.value.status_code == 401, f"{e.value.status_code} {e.value.error_message}"


def test_create_load_search_update_and_delete(client, uid):
    tenant = new_tenant(client, name=f"Tenant {uid}")
    role = new_role(client)
    key_id, cleartext = _create(
        client,
        f"ci-{uid}",
        role_names=[role],
        key_tenants=[AssociatedTenant(tenant, [role])],
        description="the nightly job",
        custom_claims={"team": "ops"},
        custom_attributes={"owner": uid},
    )
    assert cleartext.startswith(f"{key_id}.")

    key = client.mgmt.access_key.load(key_id)["key"]
    assert key["id"] == key_id
    assert key["name"] == f"ci-{uid}"
    assert key["status"] == "active"
    assert key["roleNames"] == [role]
    assert key["keyTenants"] == [{"tenantId": tenant, "roleNames": [role], "tenantName": f"Tenant {uid}"}]
    assert key["description"] == "the nightly job"
    assert key["customClaims"] == {"team": "ops"}
    assert key["expireTime"] == 0
    assert cleartext not in str(key) and cleartext[len(key_id) + 1:] not in str(key)

    found = client.mgmt.access_key.search_all_access_keys(tenant_ids=[tenant])["keys"]
    assert [k["id"] for k in found] == [key_id]
    client.mgmt.tenant.update(tenant, name=f"Renamed {uid}")
    found = client.mgmt.access_key.search_all_access_keys(tenant_ids=[tenant])["keys"]
    assert found[0]["keyTenants"][0]["tenantName"] == f"Renamed {uid}", "the tenant's name now"
    found = client.mgmt.access_key.search_all_access_keys(custom_attributes={"owner": uid})["keys"]
    assert [k["id"] for k in found] == [key_id]
    assert client.mgmt.access_key.search_all_access_keys(tenant_ids=[f"none-{uid}"])["keys"] == []

    client.mgmt.access_key.update(key_id, f"ci-{uid}-renamed", description="renamed", permitted_ips=["127.0.0.1"])
    key = client.mgmt.access_key.load(key_id)["key"]
    assert (key["name"], key["description"], key["permittedIps"]) == (f"ci-{uid}-renamed", "renamed", ["127.0.0.1"])
    assert key["roleNames"] == [role], "fields not sent stay"
    assert key["customClaims"] == {"team": "ops"}

    client.mgmt.access_key.delete(key_id)
    with pytest.raises(AuthException) as e:
        client.mgmt.access_key.load(key_id)
    assert_refused(e.value, 404)


def test_exchange_gives_a_session_that_validate_session_accepts(client, machine, idvault_server, uid):
    tenant = new_tenant(client)
    permission = new_permission(client)
    role = new_role(client, permission_names=[permission])
    tenant_role = new_role(client)
    key_id, cleartext = _create(
        client,
        f"svc-{uid}",
        role_names=[role],
        key_tenants=[AssociatedTenant(tenant, [tenant_role])],
        custom_claims={"team": "ops"},
    )

    exchanged = machine.exchange_access_key(cleartext)
    assert exchanged["keyId"] == key_id
    session_jwt = exchanged["sessionToken"]["jwt"]
    record_secret("sessionJwt", session_jwt)

    validated = machine.validate_session(session_jwt)
    assert validated["sub"] == key_id
    assert validated["projectId"] == idvault_server.project_id
    assert validated["roles"] == [role]
    assert validated["permissions"] == [permission]
    assert validated["tenants"] == {tenant: {"roles": [tenant_role], "permissions": []}}
    assert validated["team"] == "ops"
    assert machine.validate_roles(validated, [role])
    assert machine.validate_permissions(validated, [permission])
    assert machine.validate_tenant_roles(validated, tenant, [tenant_role])
    assert not machine.validate_roles(validated, [tenant_role])

    # A client that also holds a management key sends it after the access key; same answer.
    assert client.exchange_access_key(cleartext)["keyId"] == key_id


def test_deactivated_and_rotated_keys_are_refused(client, machine, uid):
    key_id, cleartext = _create(client, f"toggle-{uid}")
    assert machine.exchange_access_key(cleartext)["keyId"] == key_id

    client.mgmt.access_key.deactivate(key_id)
    assert client.mgmt.access_key.load(key_id)["key"]["status"] == "inactive"
    _refused(machine, cleartext)
    client.mgmt.access_key.activate(key_id)
    assert machine.exchange_access_key(cleartext)["keyId"] == key_id

    rotated = client.mgmt.access_key.rotate(key_id)
    record_secret("access key", rotated["cleartext"])
    assert rotated["key"]["id"] == key_id and rotated["cleartext"] != cleartext
    _refused(machine, cleartext)
    assert machine.exchange_access_key(rotated["cleartext"])["keyId"] == key_id

    other_id, other = _create(client, f"toggle2-{uid}")
    client.mgmt.access_key.deactivate_batch([key_id, other_id])
    _refused(machine, rotated["cleartext"])
    _refused(machine, other)
    client.mgmt.access_key.activate_batch([key_id, other_id])
    assert machine.exchange_access_key(other)["keyId"] == other_id
    client.mgmt.access_key.delete_batch([key_id, other_id])
    _refused(machine, other)
    assert all(k["id"] not in (key_id, other_id) for k in client.mgmt.access_key.search_all_access_keys()["keys"])


def test_expired_keys_are_refused(client, machine, uid):
    _, expired = _create(client, f"expired-{uid}", expire_time=int(time.time()) - 60)
    _refused(machine, expired)
    key_id, later = _create(client, f"later-{uid}", expire_time=int(time.time()) + 3600)
    exchanged = machine.exchange_access_key(later)
    assert exchanged["keyId"] == key_id


def test_permitted_ips_are_checked_against_the_client_address(client, machine, uid):
    _, elsewhere = _create(client, f"far-{uid}", permitted_ips=["10.0.0.0/8", "192.168.1.1"])
    _refused(machine, elsewhere)
    near_id, near = _create(client, f"near-{uid}", permitted_ips=["127.0.0.1"])
    assert machine.exchange_access_key(near)["keyId"] == near_id
    client.mgmt.access_key.update(near_id, f"near-{uid}", permitted_ips=["127.0.0.2/32"])
    _refused(machine, near)


def test_wrong_and_malformed_keys_are_refused(client, machine, uid):
    key_id, _ = _create(client, f"wrong-{uid}")
    _refused(machine, f"{key_id}.not-the-secret")
    _refused(machine, "not-a-key")
    with pytest.raises(AuthException) as e:
        client.mgmt.access_key.create(name=f"bad-{uid}", permitted_ips=["not an address"])
    assert_refused(e.value, 400)


def test_exchange_answers_a_session_only_and_the_callers_claims_under_nsec(client, machine, idvault_server, uid):
    """What the SDK's own e2e test asserts against Descope (tests/e2e/test_access_keys.py of the
    python-sdk): the key's claims top-level, the exchange's under `nsec`, the project id; and no
    refresh token, since the exchange answers none."""
    key_id, cleartext = _create(client, f"claims-{uid}", custom_claims={"k1": "v1"}, description="hey")
    created = client.mgmt.access_key.load(key_id)["key"]
    assert (created["description"], created["permittedIps"]) == ("hey", [])

    exchanged = machine.exchange_access_key(
        access_key=cleartext, login_options=AccessKeyLoginOptions(custom_claims={"nsec-k1": "nsec-v1", "k1": "mine"})
    )
    token = exchanged[SESSION_TOKEN_NAME]
    record_secret("sessionJwt", token["jwt"])
    assert token["k1"] == "v1", "the caller cannot replace the key's claim"
    assert token["nsec"] == {"nsec-k1": "nsec-v1", "k1": "mine"}
    assert "nsec-k1" not in token
    assert exchanged["keyId"] == key_id
    assert exchanged["projectId"] == idvault_server.project_id
    assert REFRESH_SESSION_TOKEN_NAME not in exchanged

    plain = machine.exchange_access_key(cleartext)[SESSION_TOKEN_NAME]
    record_secret("sessionJwt", plain["jwt"])
    assert "nsec" not in plain
