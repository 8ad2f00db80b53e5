"""Unusable password hashes: what an imported user without a password gets."""

import time

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


def test_refusing_an_unusable_hash_takes_as_long_as_a_real_verification() -> None:
    real = hash_password("the right one")
    unusable = unusable_password_hash()

    def timed(password_hash: str) -> float:
        # CPU time of this thread (argon2 runs in it): what the work costs, whatever else the
        # machine is doing; wall-clock time on a busy machine says little.
        start = time.thread_time()
        verify_password("a wrong guess", password_hash)
        return time.thread_time() - start

    pairs = [(timed(real), timed(unusable)) for _ in range(5)]
    fastest_real = min(r for r, _ in pairs)
    fastest_unusable = min(u for _, u in pairs)
    assert fastest_unusable > fastest_real / 2


def test_real_hashes_are_usable() -> None:
    assert is_usable_password_hash(hash_password("any password"))
