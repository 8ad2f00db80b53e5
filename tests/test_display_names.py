"""Display names that lie: controls, bidirectional overrides and invisible characters are refused
by every way in (create, PATCH, batch, import), with a 422 that says which character."""

import re
import unicodedata
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.accounts import bearer, signed_in_user
from tests.conftest import new_user
from userbase.app import app
from userbase.cli import app as cli
from userbase.database import SessionLocal
from userbase.models import User
from userbase.schemas import HIDDEN_CHARACTERS, UserCreate

# One of each kind the hostile look found, and the neighbours of each kind.
LYING_NAMES = {
    "C1 control (CSI, the terminal escape introducer)": "Ada\u009b31m",
    "C1 control (NEL)": "Ada\u0085",
    "right-to-left override": "Ada \u202egnp.exe",
    "left-to-right embedding": "\u202aAda",
    "pop directional formatting": "Ada\u202c",
    "right-to-left isolate": "\u2067Ada\u2069",
    "first strong isolate": "\u2068Ada",
    "zero-width space": "Ad\u200ba",
    "zero-width non-joiner": "Ad\u200ca",
    "zero-width joiner": "Ad\u200da",
    "right-to-left mark": "Ada\u200f",
    "word joiner": "Ad\u2060a",
    "byte order mark": "\ufeffAda",
    "soft hyphen": "Ad\u00ada",
    "Arabic letter mark": "Ada\u061c",
    "line separator": "Ada\u2028Admin",
    "tag characters (invisible text)": "Ada\U000e0041\U000e0042",
}
HONEST_NAMES = [
    "Ada Lovelace",
    "Zoë Ørsted-Ñúñez",
    "李小龍",
    "محمد الخوارزمي",  # right-to-left by its letters, not by a control
    "דוד בן-גוריון",
    "Ꭰꮣ 🚀",
    "A" * 100,
]
runner = CliRunner()


def user_count() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def stored_display_name(user_id: int) -> str | None:
    with SessionLocal() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.display_name


def _the_422_names(response: Any, code_point: str) -> None:
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "display_name"
    assert error["type"] == "hidden_character"
    assert f"U+{code_point}" in error["msg"]


def _first_hidden(name: str) -> str:
    return next(f"{ord(c):04X}" for c in name if unicodedata.category(c) in ("Cc", "Cf", "Zl"))


@pytest.mark.parametrize("name", LYING_NAMES.values(), ids=LYING_NAMES.keys())
def test_sign_up_with_a_lying_display_name_is_422_naming_the_character(
    client: Any, name: str
) -> None:
    response = client.post("/users/", json=new_user(1, display_name=name))

    _the_422_names(response, _first_hidden(name))
    assert user_count() == 0


@pytest.mark.parametrize("name", LYING_NAMES.values(), ids=LYING_NAMES.keys())
def test_patch_with_a_lying_display_name_is_422_and_keeps_the_old_one(
    client: Any, name: str
) -> None:
    user, token = signed_in_user(client, 1)

    response = client.patch(
        f"/users/{user['id']}", json={"display_name": name}, headers=bearer(token)
    )

    _the_422_names(response, _first_hidden(name))
    assert stored_display_name(user["id"]) is None


def test_a_batch_refuses_the_lying_name_and_creates_the_others(client: Any) -> None:
    _, admin = signed_in_user(client, "admin", admin=True)
    items = [new_user("b1", display_name="Bea"), new_user("b2", display_name="Bea\u202e")]

    response = client.post("/users/batch", json=items, headers=bearer(admin))

    assert response.status_code == 207
    assert [(r["index"], r["status"]) for r in response.json()] == [(0, 201), (1, 422)]
    [error] = response.json()[1]["error"]["errors"]
    assert (error["field"], error["type"]) == ("display_name", "hidden_character")
    assert user_count() == 2


def test_an_import_rejects_the_lying_name_with_the_same_reason(tmp_path: Path) -> None:
    file = tmp_path / "users.jsonl"
    rows = [
        {"username": "ada", "email": "ada@example.com", "display_name": "Ada\u2066"},
        {"username": "bob", "email": "bob@example.com", "display_name": "Bob"},
    ]
    file.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))

    result = runner.invoke(cli, ["import", str(file)])

    assert "imported 1 rows, rejected 1" in result.output
    rejected = (tmp_path / "users.jsonl.rejected.csv").read_text(encoding="utf-8")
    assert "display_name: control, format and invisible characters are not allowed" in rejected
    assert "(found U+2066)" in rejected
    assert user_count() == 1


@pytest.mark.parametrize("name", HONEST_NAMES)
def test_names_in_any_script_are_accepted_as_sent(client: Any, name: str) -> None:
    response = client.post("/users/", json=new_user(1, display_name=name))

    assert response.status_code == 201, response.text
    assert stored_display_name(response.json()["id"]) == name


def test_every_control_format_and_separator_character_is_refused() -> None:
    # The list in schemas.py is Unicode 14's; a newer Python may know more such characters.
    refused = {c for start, end in HIDDEN_CHARACTERS for c in map(chr, range(start, end + 1))}
    for code_point in range(0x110000):
        c = chr(code_point)
        if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp"):
            assert c in refused, f"U+{code_point:04X} ({unicodedata.category(c)}) is not refused"
        elif c in refused:
            raise AssertionError(f"U+{code_point:04X} is refused but not a control or format")


def _accepted(name: str) -> bool:
    try:
        UserCreate(**new_user(1, display_name=name))
    except ValidationError:
        return False
    return True


_SCHEMA_PATTERN = re.compile(
    app.openapi()["components"]["schemas"]["UserCreate"]["properties"]["display_name"]["anyOf"][0][
        "pattern"
    ]
)


@settings(deadline=None, max_examples=500)
@given(
    st.text(max_size=100)
    | st.text(alphabet=st.sampled_from([*"Ada ", *(chr(s) for s, _ in HIDDEN_CHARACTERS)]))
)
def test_the_schema_pattern_states_exactly_the_rule_the_api_applies(name: str) -> None:
    # Clients and schemathesis read the pattern; the validator decides. They must agree.
    assert bool(_SCHEMA_PATTERN.fullmatch(name)) == _accepted(name)
