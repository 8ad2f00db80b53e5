"""Properties of the username and email rules, for any input hypothesis can think of."""

import re
from typing import Any

import pytest
from email_validator import EmailNotValidError, validate_email
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import delete

from userbase.app import app
from userbase.database import engine
from userbase.models import User
from userbase.schemas import UserCreate

# The rule as the README states it: 3 to 32 of A-Z a-z 0-9 _ . -
USERNAME_RULE = re.compile(r"[A-Za-z0-9_.-]{3,32}")
USERNAME_ALPHABET = "ABCXYZabcxyz0189_.-"

valid_usernames = st.text(alphabet=USERNAME_ALPHABET, min_size=3, max_size=32)
any_usernames = st.one_of(
    valid_usernames,
    st.text(max_size=40),
    st.text(alphabet=USERNAME_ALPHABET + " \n\t\x00é;'%", max_size=40),
)
FAST = settings(deadline=None, max_examples=200)
# Each example below hashes two passwords (argon2id, on purpose slow).
THROUGH_THE_API = settings(
    deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow]
)


def body(username: str = "someone", email: str = "someone@example.com") -> dict[str, Any]:
    return {"username": username, "email": email, "password": "correct horse battery"}


def accepted(**fields: Any) -> bool:
    try:
        UserCreate(**body(**fields))
    except ValidationError:
        return False
    return True


def email_validator_accepts(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@pytest.fixture(scope="module")
def api() -> Any:
    with TestClient(app) as client:
        yield client


def empty_users() -> None:
    with engine.begin() as connection:
        connection.execute(delete(User))


@FAST
@given(any_usernames)
def test_a_username_is_accepted_exactly_when_it_follows_the_rule(username: str) -> None:
    assert accepted(username=username) == bool(USERNAME_RULE.fullmatch(username))


@FAST
@given(st.emails())
def test_an_address_is_accepted_exactly_when_email_validator_accepts_it(address: str) -> None:
    assert accepted(email=address) == (email_validator_accepts(address) and len(address) <= 320)


@FAST
@given(st.text(max_size=60).filter(lambda s: "@" not in s))
def test_text_without_an_at_sign_is_never_an_address(text: str) -> None:
    assert not accepted(email=text)


@THROUGH_THE_API
@given(username=valid_usernames, data=st.data())
def test_a_username_in_another_letter_case_is_409(api: Any, username: str, data: Any) -> None:
    other_case = "".join(
        c.swapcase() if data.draw(st.booleans(), label=f"flip {i}") else c
        for i, c in enumerate(username)
    )
    try:
        assert api.post("/users/", json=body(username, "first@example.com")).status_code == 201
        second = api.post("/users/", json=body(other_case, "second@example.com"))
        assert second.status_code == 409
        assert "username" in second.json()["detail"]
    finally:
        empty_users()


@THROUGH_THE_API
@given(st.emails())
def test_an_address_in_another_letter_case_is_409(api: Any, address: str) -> None:
    assume(email_validator_accepts(address) and len(address) <= 320)
    normalized = validate_email(address, check_deliverability=False).normalized
    assume(normalized.swapcase() != normalized and normalized.isascii())
    try:
        assert api.post("/users/", json=body("first", address)).status_code == 201
        second = api.post("/users/", json=body("second", normalized.swapcase()))
        assert second.status_code == 409
        assert "email" in second.json()["detail"]
    finally:
        empty_users()


@THROUGH_THE_API
@given(any_usernames.filter(lambda u: not USERNAME_RULE.fullmatch(u)))
def test_a_username_outside_the_rule_is_422_and_stores_nothing(api: Any, username: str) -> None:
    response = api.post("/users/", json=body(username))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "username"
    assert api.get("/users/").json() == []
