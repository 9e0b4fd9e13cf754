"""User custom attribute definitions and values through the official Descope Python SDK
(descope==2.16.1) against idvault.

What the SDK sends (descope/management/user.py):
- `create_custom_attribute(name, display_name, type, required?, options?)`:
  POST /v1/mgmt/user/customattribute/create {"attributes": [{"name", "displayName", "type",
  "required"?, "options"?}]}. Python sends `type` as a name ("string", "number", "boolean",
  "singleselect", "multiselect", "date") and `options` as a list of strings.
- `delete_custom_attribute(name)`: POST /v1/mgmt/user/customattribute/delete {"names": [name]}.
- `load_custom_attributes()`: GET /v1/mgmt/user/customattributes.
All three answer the project's definitions as {"data": [...]} (the Go SDK reads `data`). The Go
SDK sends and reads `type` as an int32 (descope.CustomAttribute; the Python SDK's own
CustomAttribute class documents 1 = string, 2 = number, 3 = boolean, 4 = single select,
5 = multi select, 6 = date), so the answer carries the number whatever name Python sent.

Values are checked against the definition: the SDK says the keys must be "previously configured".
"""

from __future__ import annotations

import uuid

import pytest
from descope import AuthException

from idvault_sdk_helpers import assert_refused, assert_user_not_found

TYPE_NUMBERS = {"string": 1, "number": 2, "boolean": 3, "singleselect": 4, "multiselect": 5, "date": 6}


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def _definitions(client) -> dict:
    return {a["name"]: a for a in client.mgmt.user.load_custom_attributes()["data"]}


def _option_values(attribute: dict) -> list:
    """Option values, whether answered as plain strings or as {value, label} objects."""
    return [o["value"] if isinstance(o, dict) else o for o in attribute.get("options") or []]


def test_create_each_type_then_load(client):
    created = {}
    for type_name, number in TYPE_NUMBERS.items():
        name = _name(type_name[:6])
        options = ["red", "green", "blue"] if type_name.endswith("select") else None
        client.mgmt.user.create_custom_attribute(name, f"My {type_name}", type_name, options=options)
        created[name] = (type_name, number, options)

    loaded = _definitions(client)
    for name, (type_name, number, options) in created.items():
        attribute = loaded[name]
        assert attribute["displayName"] == f"My {type_name}"
        assert attribute["type"] == number, (type_name, attribute)
        if options:
            assert _option_values(attribute) == options


def test_create_answers_every_definition(client):
    first = _name("first")
    second = _name("second")
    resp = client.mgmt.user.create_custom_attribute(first, "First", "string")
    assert first in {a["name"] for a in resp["data"]}
    resp = client.mgmt.user.create_custom_attribute(second, "Second", "number")
    names = {a["name"] for a in resp["data"]}
    assert {first, second} <= names


def test_create_of_an_existing_name_keeps_one_definition(client):
    # Whether a second create is refused or replaces the definition is not documented by the
    # SDKs; either way the project keeps a single definition of that name.
    name = _name("dup")
    client.mgmt.user.create_custom_attribute(name, "Dup", "string")
    try:
        client.mgmt.user.create_custom_attribute(name, "Dup again", "string")
    except AuthException as exc:
        assert_refused(exc)
    loaded = client.mgmt.user.load_custom_attributes()["data"]
    assert [a["name"] for a in loaded].count(name) == 1


def test_create_with_an_unknown_type_is_refused(client):
    blob = _name("blob")
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.create_custom_attribute(blob, "Blob", "blob")
    assert_refused(exc.value, 400)
    assert blob not in _definitions(client)


def test_delete_removes_the_definition(client):
    keep = _name("keep")
    drop = _name("drop")
    client.mgmt.user.create_custom_attribute(keep, "Keep", "string")
    client.mgmt.user.create_custom_attribute(drop, "Drop", "string")

    resp = client.mgmt.user.delete_custom_attribute(drop)
    remaining = {a["name"] for a in resp["data"]}
    assert drop not in remaining
    assert keep in remaining
    loaded = _definitions(client)
    assert drop not in loaded and keep in loaded


# (type, options, values accepted, values refused)
VALUE_CASES = {
    "string": ("string", None, ["engineering", ""], [5, True]),
    "number": ("number", None, [42, 3.5, 0], ["forty-two", True]),
    "boolean": ("boolean", None, [True, False], ["yes", 1]),
    "singleselect": ("singleselect", ["red", "green"], ["red", "green"], ["blue", ["red"]]),
    "multiselect": ("multiselect", ["red", "green", "blue"], [["red", "blue"], []], [["red", "purple"]]),
    "date": ("date", None, [], ["not a date", True]),
}


@pytest.mark.parametrize("case", list(VALUE_CASES), ids=list(VALUE_CASES))
def test_values_are_checked_against_the_type(client, case):
    type_name, options, good, bad = VALUE_CASES[case]
    attr = _name(case[:6])
    client.mgmt.user.create_custom_attribute(attr, attr, type_name, options=options)

    for i, value in enumerate(good):
        login_id = f"attr-good{i}-{uuid.uuid4().hex}"
        user = client.mgmt.user.create(login_id=login_id, custom_attributes={attr: value})["user"]
        assert user["customAttributes"][attr] == value, value
        user = client.mgmt.user.update_custom_attribute(login_id, attr, value)["user"]
        assert user["customAttributes"][attr] == value, value

    holder = f"attr-holder-{uuid.uuid4().hex}"
    client.mgmt.user.create(login_id=holder)
    for value in bad:
        login_id = f"attr-bad-{uuid.uuid4().hex}"
        with pytest.raises(AuthException) as exc:
            client.mgmt.user.create(login_id=login_id, custom_attributes={attr: value})
        assert_refused(exc.value, 400)
        with pytest.raises(AuthException) as exc:
            client.mgmt.user.load(login_id)
        assert_user_not_found(exc.value)

        with pytest.raises(AuthException) as exc:
            client.mgmt.user.update_custom_attribute(holder, attr, value)
        assert_refused(exc.value, 400)
        assert attr not in client.mgmt.user.load(holder)["user"]["customAttributes"]


def test_undefined_attribute_is_refused(client):
    ghost = _name("ghost")
    login_id = f"attr-undefined-{uuid.uuid4().hex}"
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.create(login_id=login_id, custom_attributes={ghost: "x"})
    assert_refused(exc.value, 400)

    client.mgmt.user.create(login_id=login_id)
    with pytest.raises(AuthException) as exc:
        client.mgmt.user.update_custom_attribute(login_id, ghost, "x")
    assert_refused(exc.value, 400)
    assert client.mgmt.user.load(login_id)["user"]["customAttributes"] == {}


def test_update_replaces_custom_attributes_and_patch_keeps_them(client):
    a = _name("alpha")
    b = _name("beta")
    client.mgmt.user.create_custom_attribute(a, "Alpha", "string")
    client.mgmt.user.create_custom_attribute(b, "Beta", "number")
    login_id = f"attr-replace-{uuid.uuid4().hex}"
    client.mgmt.user.create(login_id=login_id, custom_attributes={a: "one", b: 1})

    # patch without custom_attributes leaves them.
    assert client.mgmt.user.patch(login_id, display_name="x")["user"]["customAttributes"] == {a: "one", b: 1}
    # update overrides them with what it is given.
    assert client.mgmt.user.update(login_id, custom_attributes={b: 2})["user"]["customAttributes"] == {b: 2}
    assert client.mgmt.user.update(login_id)["user"]["customAttributes"] == {}
    assert client.mgmt.user.load(login_id)["user"]["customAttributes"] == {}
