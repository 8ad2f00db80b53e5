"""Users brought in with another system's password hash sign in with their old password,
and leave with an argon2id hash."""

from collections.abc import Callable
from typing import Any

import bcrypt
import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import select, update

from tests.accounts import sign_in, sign_up
from userbase.database import SessionLocal, engine
from userbase.legacy_hashes import DjangoPbkdf2Hasher, DjangoScryptHasher
from userbase.models import User
from userbase.security import hash_format

OLD_PASSWORD = "my old password"


def bcrypt_hash(prefix: bytes) -> Callable[[str], str]:
    def make(password: str) -> str:
        made = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4))
        return (prefix + made[3:]).decode()

    return make


FORMATS: dict[str, Callable[[str], str]] = {
    "argon2id-weaker": lambda pw: PasswordHasher(time_cost=1, memory_cost=8192).hash(pw),
    "argon2i": lambda pw: PasswordHasher(type=Type.I, time_cost=3, memory_cost=8192).hash(pw),
    "bcrypt-2a": bcrypt_hash(b"$2a"),
    "bcrypt-2b": bcrypt_hash(b"$2b"),
    "bcrypt-2y": bcrypt_hash(b"$2y"),
    "django-pbkdf2": lambda pw: DjangoPbkdf2Hasher().hash(pw, iterations=1000),
    "django-scrypt": lambda pw: DjangoScryptHasher().hash(pw, n=2**10),
}
# Made by Django 5.2.19's own hashers for the password "my old password" with salt "abc":
# PBKDF2PasswordHasher().encode(password, "abc", 1000) and
# ScryptPasswordHasher().encode(password, "abc", n=2**10, r=8, p=1).
DJANGO_VECTORS = {
    "pbkdf2": "pbkdf2_sha256$1000$abc$Wmfi1FtCGFDzaP5yn9pADdfAUf8uKqU/rZRHt/ceyTQ=",
    "scrypt": (
        "scrypt$1024$abc$8$1$r+fHtrFKN5EJfLJz3jwDO05F70YvX6JmpHdxOI0b+19DCmuIW+DoUsIQY3fFOt+F"
        "XmWYPpzRMfMuGIcc1UBh6A=="
    ),
}


def stored_hash(user_id: int) -> str:
    with SessionLocal() as session:
        value = session.scalar(select(User.password_hash).where(User.id == user_id))
    assert value is not None
    return value


def with_hash(user_id: int, password_hash: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(User).where(User.id == user_id).values(password_hash=password_hash)
        )


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_imported_hash_signs_in_and_becomes_argon2id(client: Any, fmt: str) -> None:
    user = sign_up(client, 1)
    with_hash(user["id"], FORMATS[fmt](OLD_PASSWORD))

    assert sign_in(client, "user1", "not my old password").status_code == 401
    assert sign_in(client, "user1", OLD_PASSWORD).status_code == 200

    upgraded = stored_hash(user["id"])
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert sign_in(client, "user1", OLD_PASSWORD).status_code == 200


def test_a_refused_sign_in_leaves_the_foreign_hash_as_it_was(client: Any) -> None:
    user = sign_up(client, 1)
    foreign = FORMATS["bcrypt-2b"](OLD_PASSWORD)
    with_hash(user["id"], foreign)
    sign_in(client, "user1", "wrong password!")
    assert stored_hash(user["id"]) == foreign


def test_bcrypt_passwords_over_72_bytes_are_checked_on_their_first_72(client: Any) -> None:
    long_password = "p" * 72 + "-and-a-tail-classic-bcrypt-ignored"
    user = sign_up(client, 1)
    with_hash(user["id"], FORMATS["bcrypt-2b"](long_password))

    assert sign_in(client, "user1", long_password).status_code == 200

    # From then on the argon2id hash covers the whole password: the tail matters again.
    assert sign_in(client, "user1", "p" * 72 + "-another-tail").status_code == 401
    assert sign_in(client, "user1", long_password).status_code == 200


@pytest.mark.parametrize(
    ("password_hash", "expected"),
    [
        (FORMATS["argon2id-weaker"]("x"), "argon2"),
        (FORMATS["bcrypt-2y"]("x"), "bcrypt"),
        (FORMATS["django-pbkdf2"]("x"), "django-pbkdf2-sha256"),
        (FORMATS["django-scrypt"]("x"), "django-scrypt"),
        ("md5$abc$0123456789abcdef", None),
        ("plaintext", None),
        ("", None),
        ("pbkdf2_sha256$999999999$salt$aGFzaA==", None),  # iterations beyond our bound
        ("scrypt$1048576$salt$64$1$aGFzaA==", None),  # 8 GiB of memory per check
    ],
)
def test_hash_formats_are_recognised_or_refused(password_hash: str, expected: str | None) -> None:
    assert hash_format(password_hash) == expected


@pytest.mark.parametrize("vector", DJANGO_VECTORS)
def test_hashes_made_by_django_itself_sign_in(client: Any, vector: str) -> None:
    user = sign_up(client, 1)
    with_hash(user["id"], DJANGO_VECTORS[vector])
    assert sign_in(client, "user1", "my old passwore").status_code == 401
    assert sign_in(client, "user1", OLD_PASSWORD).status_code == 200
