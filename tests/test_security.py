"""Unusable password hashes: what an imported user without a password gets."""

import pytest

from userbase.security import (
    hash_password,
    is_usable_password_hash,
    unusable_password_hash,
    verify_password,
)


def test_no_password_verifies_against_an_unusable_hash() -> None:
    unusable = unusable_password_hash()
    assert not is_usable_password_hash(unusable)
    for guess in ("", "password", unusable, unusable[1:]):
        assert verify_password(guess, unusable) == (False, None)


def test_unusable_hashes_differ_and_fit_the_column() -> None:
    hashes = {unusable_password_hash() for _ in range(100)}
    assert len(hashes) == 100
    assert all(len(h) <= 255 for h in hashes)


def test_refusing_an_unusable_hash_costs_one_argon2_verification_like_a_real_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not a timing test: it counts the argon2 verifications each refusal runs."""
    from pwdlib.hashers.argon2 import Argon2Hasher

    real = hash_password("the right one")
    calls: list[str] = []
    original = Argon2Hasher.verify

    def counting(self: Argon2Hasher, password: str | bytes, hash: str | bytes) -> bool:
        calls.append("argon2")
        return original(self, password, hash)

    monkeypatch.setattr(Argon2Hasher, "verify", counting)

    assert verify_password("a wrong guess", real) == (False, None)
    assert calls == ["argon2"]
    calls.clear()
    assert verify_password("a wrong guess", unusable_password_hash()) == (False, None)
    assert calls == ["argon2"]


def test_real_hashes_are_usable() -> None:
    assert is_usable_password_hash(hash_password("any password"))
