"""Password hashing with argon2id (bounded so a burst cannot exhaust memory) and bearer tokens."""

import functools
import hashlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from userbase.config import get_settings
from userbase.legacy_hashes import DjangoPbkdf2Hasher, DjangoScryptHasher, LegacyBcryptHasher
from userbase.metrics import PASSWORD_HASHES_IN_FLIGHT

_FORMAT_NAMES = {
    Argon2Hasher: "argon2",
    LegacyBcryptHasher: "bcrypt",
    DjangoPbkdf2Hasher: "django-pbkdf2-sha256",
    DjangoScryptHasher: "django-scrypt",
}

# 32 random bytes, URL-safe base64 without padding: always 43 characters.
TOKEN_BYTES = 32
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{43}$"

# A stored hash that no password matches: what an imported user without a password gets
# (Django's convention: "!" and random characters, so it is never a valid hash of anything).
UNUSABLE_PASSWORD_PREFIX = "!"

P = ParamSpec("P")
R = TypeVar("R")


@functools.lru_cache
def _password_hash() -> PasswordHash:
    settings = get_settings()
    # The first hasher makes every new hash; the others only verify hashes brought in from
    # other systems, which are replaced by argon2id at the first successful sign-in.
    return PasswordHash(
        (
            Argon2Hasher(
                time_cost=settings.argon2_time_cost,
                memory_cost=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            ),
            LegacyBcryptHasher(),
            DjangoPbkdf2Hasher(),
            DjangoScryptHasher(),
        )
    )


def hash_format(password_hash: str) -> str | None:
    """The name of a hash format we can verify (argon2, bcrypt, ...), or None."""
    for hasher in _password_hash().hashers:
        if hasher.identify(password_hash):
            return _FORMAT_NAMES[type(hasher)]
    return None


@functools.lru_cache
def _hashing_threads() -> ThreadPoolExecutor:
    """The only threads that run argon2: USERBASE_HASH_CONCURRENCY of them.

    Measured on this machine kind: 16 hashes at once cost ~300 MiB at m=19 MiB, ~1 GiB at the
    library's m=64 MiB, so hashes in flight are bounded. And where they run matters as much:
    glibc keeps each thread's freed 19 MiB in that thread's arena, so hashing on any of the 40
    request threads left a worker at ~430 MB after a burst of sign-ups (`make bench`); on a
    fixed set of threads, what stays allocated is bounded by their number.
    """
    return ThreadPoolExecutor(
        max_workers=get_settings().hash_concurrency, thread_name_prefix="argon2"
    )


def hash_password(password: str) -> str:
    """The argon2id hash of `password`. Blocks the caller (a worker thread) until it is done."""
    return _on_hashing_thread(_password_hash().hash, password)


def hash_passwords(passwords: Sequence[str]) -> Iterator[str]:
    """Hash many passwords, as many at once as there are hashing threads; in order."""
    futures = [_hashing_threads().submit(_tracked, _password_hash().hash, p) for p in passwords]
    return iter([future.result() for future in futures])


def _tracked(work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    with PASSWORD_HASHES_IN_FLIGHT.track_inprogress():
        return work(*args, **kwargs)


def _on_hashing_thread(work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    return _hashing_threads().submit(functools.partial(_tracked, work, *args, **kwargs)).result()


def _verify(password: str, password_hash: str) -> tuple[bool, str | None] | None:
    try:
        return _password_hash().verify_and_update(password, password_hash)
    except UnknownHashError:
        return None


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """Whether `password` matches, and a fresh hash when the stored one has outdated parameters.

    A hash in no known format (an unusable password, say) never matches, and costs the time a
    real verification takes, so the answer does not tell whether the account has a password.
    """
    outcome = _on_hashing_thread(_verify, password, password_hash)
    if outcome is not None:
        return outcome
    _on_hashing_thread(_verify, password, _dummy_hash())
    return False, None


def unusable_password_hash() -> str:
    """A value for password_hash that no password verifies against (see verify_password)."""
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30)


def is_usable_password_hash(password_hash: str) -> bool:
    return not password_hash.startswith(UNUSABLE_PASSWORD_PREFIX)


@functools.lru_cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_password_or_dummy(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """verify_password, but for an unknown user (None) spend the same time on a dummy hash.

    Without it, "no such user" answers in microseconds and "wrong password" in ~40 ms, which
    tells an attacker which usernames exist.
    """
    if password_hash is None:
        verify_password(password, _dummy_hash())
        return False, None
    return verify_password(password, password_hash)


def new_token() -> tuple[str, str]:
    """A fresh bearer token and the digest to store in its place."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    # A plain SHA-256 suffices: tokens have 256 bits of entropy, so nothing can be guessed
    # from the digest, and lookups stay one indexed equality.
    return hashlib.sha256(token.encode()).hexdigest()
