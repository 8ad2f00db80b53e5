"""Secrets kept in the database only sealed: Fernet (AES-128-CBC + HMAC-SHA256) under a server key.

The key is derived from USERBASE_SECRET_KEY with HKDF, so any long random string will do. Without
it a fixed development key is used: sealed values are then as good as clear text to anyone who
has this code, which is why start-up and `userbase check` should say so.
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from userbase.config import Settings, get_settings

_DEVELOPMENT_SECRET = "userbase development key: set USERBASE_SECRET_KEY in production"


class Unsealable(Exception):
    """A value sealed under another key (USERBASE_SECRET_KEY changed), or damaged."""


def uses_development_key(settings: Settings) -> bool:
    """True when USERBASE_SECRET_KEY is unset: what is sealed is readable with this code alone."""
    return settings.secret_key is None


def seal(plain: bytes) -> str:
    return _fernet(_secret(get_settings())).encrypt(plain).decode("ascii")


def unseal(sealed: str) -> bytes:
    try:
        return _fernet(_secret(get_settings())).decrypt(sealed.encode("ascii"))
    except (InvalidToken, ValueError) as exc:
        raise Unsealable("sealed under another USERBASE_SECRET_KEY, or damaged") from exc


def _secret(settings: Settings) -> str:
    if settings.secret_key is None:
        return _DEVELOPMENT_SECRET
    return settings.secret_key.get_secret_value()


def derived_key(purpose: bytes) -> bytes:
    """A 256-bit key for `purpose` alone (e.g. b"userbase csrf"), derived from
    USERBASE_SECRET_KEY: what it keys cannot be made with another purpose's key."""
    return _derive(_secret(get_settings()), purpose)


@lru_cache(maxsize=8)
def _derive(secret: str, purpose: bytes) -> bytes:
    # HKDF, not a password hash: the secret is a server key, not something a person chose.
    # The `info` label keeps each key apart from any other one derived from the same secret.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(secret, b"userbase sealing")))
