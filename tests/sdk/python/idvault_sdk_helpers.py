"""Helpers shared by the SDK conformance tests: the server handle, unique ids, the one idvault
extension the SDK cannot call (storing a provider token), error checks, and making tenants, roles
and permissions through the SDK."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import httpx


@dataclass(frozen=True)
class IdvaultServer:
    base_url: str
    project_id: str
    management_key: str
    data_dir: Path


# ---------------------------------------------------------------------------------------------
# Secrets used, recorded for scripts/scan-secrets
# ---------------------------------------------------------------------------------------------

# The JSON fields that carry a secret (the same list as crates/idvault/tests/api/helpers.rs).
SECRET_FIELDS = frozenset({
    "accessToken", "refreshToken", "access_token", "refresh_token", "id_token", "clientSecret",
    "client_secret", "apiKey", "sessionJwt", "refreshJwt", "managementKey", "code",
    "cleartext",
})


def log_dir() -> Optional[Path]:
    """IDVAULT_TEST_LOG_DIR: where the servers' console output goes and the secrets used are
    recorded (scripts/test.sh sets it; scripts/scan-secrets reads it). None when unset."""
    value = os.environ.get("IDVAULT_TEST_LOG_DIR", "")
    if not value:
        return None
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def record_secret(kind: str, secret) -> None:
    """Appends one secret to the log directory's secrets.jsonl, in one write of one line (so that
    parallel writers never interleave within a line)."""
    directory = log_dir()
    if directory is None or not isinstance(secret, str) or not secret:
        return
    line = json.dumps({"kind": kind, "secret": secret}) + "\n"
    fd = os.open(directory / "secrets.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def record_secrets_in(value) -> None:
    """Records every secret field of a JSON value, at any depth."""
    if isinstance(value, dict):
        for name, item in value.items():
            if name in SECRET_FIELDS and isinstance(item, str):
                record_secret(name, item)
            else:
                record_secrets_in(item)
    elif isinstance(value, list):
        for item in value:
            record_secrets_in(item)


def record_master_keys(data_dir: Path) -> None:
    """Records the keys of a data directory's master.key: `#` comment lines, entries
    `<version>:<base64 key>` (or one bare key) separated by newlines, commas or blanks."""
    try:
        keyring = (data_dir / "master.key").read_text()
    except OSError:
        return
    for line in keyring.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for entry in line.replace(",", " ").split():
            record_secret("master key", entry.split(":", 1)[-1])


def unique_login_id(prefix: str = "x") -> str:
    return f"{prefix}-{uuid.uuid4().hex}@example.com"


def unique_phone() -> str:
    """An E.164 number that no other test uses (+1 and 10 random digits)."""
    return "+1" + str(uuid.uuid4().int % 10**10).zfill(10)


def put_provider_token(
    server: IdvaultServer,
    login_id: str,
    provider: str,
    provider_user_id: str,
    access_token: str,
    refresh_token: Optional[str] = None,
    expiration: Optional[int] = None,
    scopes: Optional[list[str]] = None,
    management_key: Optional[str] = None,
) -> httpx.Response:
    """The idvault extension `PUT /v1/mgmt/user/provider/token`, which the SDKs do not have."""
    body: dict = {
        "loginId": login_id,
        "provider": provider,
        "providerUserId": provider_user_id,
        "accessToken": access_token,
    }
    if refresh_token is not None:
        body["refreshToken"] = refresh_token
    if expiration is not None:
        body["expiration"] = expiration
    if scopes is not None:
        body["scopes"] = scopes
    key = management_key if management_key is not None else server.management_key
    record_secrets_in(body)
    record_secret("management key", key)
    return httpx.put(
        f"{server.base_url}/v1/mgmt/user/provider/token",
        json=body,
        headers={"Authorization": f"Bearer {server.project_id}:{key}"},
        timeout=10.0,
    )


def tampered_key(key: str) -> str:
    """The same management key with its last character changed: right key id, wrong secret."""
    return key[:-1] + ("B" if key.endswith("A") else "A")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

USER_NOT_FOUND = "E112102"
USER_ALREADY_EXISTS = "E062107"
# Route-level answers: a request that gets one of these never reached the operation it names.
NO_SUCH_ROUTE = "E011404"
METHOD_NOT_ALLOWED = "E011405"


def error_code(exc) -> Optional[str]:
    """The Descope `errorCode` of an `AuthException` raised for an HTTP answer, if it has one."""
    try:
        body = json.loads(exc.error_message)
    except (TypeError, ValueError):
        return None
    return body.get("errorCode") if isinstance(body, dict) else None


def assert_refused(exc, *statuses: int) -> None:
    """The operation was reached and refused with a 4xx (one of `statuses` when given).

    A 404 "no such route" or a 405 does not count: it would let a test of a missing endpoint pass."""
    code = error_code(exc)
    assert code not in (NO_SUCH_ROUTE, METHOD_NOT_ALLOWED), f"endpoint missing: {exc.status_code} {exc.error_message}"
    if statuses:
        assert exc.status_code in statuses, f"{exc.status_code} {exc.error_message}"
    else:
        assert 400 <= exc.status_code < 500, f"{exc.status_code} {exc.error_message}"


def assert_user_not_found(exc) -> None:
    assert exc.status_code == 400, f"{exc.status_code} {exc.error_message}"
    assert error_code(exc) == USER_NOT_FOUND, exc.error_message


# ---------------------------------------------------------------------------------------------
# Tenants, roles, permissions (through the SDK)
# ---------------------------------------------------------------------------------------------


def new_tenant(client, name: Optional[str] = None, tenant_id: Optional[str] = None, **kwargs) -> str:
    """Creates a tenant through `mgmt.tenant.create` and answers its id."""
    suffix = uuid.uuid4().hex
    name = name if name is not None else f"Tenant {suffix}"
    tenant_id = tenant_id if tenant_id is not None else f"t-{suffix}"
    resp = client.mgmt.tenant.create(name=name, id=tenant_id, **kwargs)
    assert resp["id"] == tenant_id, resp
    return tenant_id


def new_role(client, name: Optional[str] = None, permission_names: Optional[list[str]] = None,
             tenant_id: Optional[str] = None, description: Optional[str] = None) -> str:
    """Creates a role through `mgmt.role.create` (which answers nothing) and answers its name."""
    name = name if name is not None else f"role-{uuid.uuid4().hex}"
    client.mgmt.role.create(name, description=description, permission_names=permission_names, tenant_id=tenant_id)
    return name


def new_permission(client, name: Optional[str] = None, description: Optional[str] = None) -> str:
    name = name if name is not None else f"perm-{uuid.uuid4().hex}"
    client.mgmt.permission.create(name, description=description)
    return name


def role_named(client, name: str, tenant_id: Optional[str] = None) -> dict:
    """The role of that name, as `role.search` answers it."""
    body = {"role_names": [name]}
    if tenant_id is not None:
        body["tenant_ids"] = [tenant_id]
    roles = [r for r in client.mgmt.role.search(**body)["roles"] if r["name"] == name]
    assert len(roles) == 1, roles
    return roles[0]


def now_ms() -> int:
    return int(time.time() * 1000)
