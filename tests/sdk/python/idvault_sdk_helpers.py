"""Helpers shared by the SDK conformance tests: the server handle, unique ids, and the one
idvault extension the SDK cannot call (storing a provider token)."""

from __future__ import annotations

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
    return httpx.put(
        f"{server.base_url}/v1/mgmt/user/provider/token",
        json=body,
        headers={"Authorization": f"Bearer {server.project_id}:{key}"},
        timeout=10.0,
    )


def tampered_key(key: str) -> str:
    """The same management key with its last character changed: right key id, wrong secret."""
    return key[:-1] + ("B" if key.endswith("A") else "A")
