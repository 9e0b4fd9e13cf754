"""The audit trail through the SDK's `client.mgmt.audit` (descope==2.16.1): `create_event`, then
`search` finds it; a provider-token read (the token stored with idvault's PUT extension, read with
`get_provider_token`) is found by user, by login id, by action and by time window."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from idvault_sdk_helpers import put_provider_token, unique_login_id

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
