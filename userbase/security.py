"""Password hashing with argon2id, bounded so a burst of requests cannot exhaust memory."""

import secrets
import threading
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from userbase.config import get_settings
from userbase.metrics import PASSWORD_HASHES_IN_FLIGHT

# A stored hash that no password matches: what an imported user without a password gets
# (Django's convention: "!" and random characters, so it is never a valid hash of anything).
UNUSABLE_PASSWORD_PREFIX = "!"  # noqa: S105 (a marker, not a password)


@lru_cache
def _password_hash() -> PasswordHash:
    settings = get_settings()
    return PasswordHash(
        (
            Argon2Hasher(
                time_cost=settings.argon2_time_cost,
                memory_cost=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            ),
        )
    )


@lru_cache
def _hash_slots() -> threading.BoundedSemaphore:
    # Measured on this machine kind: 16 hashes at once cost ~300 MiB at m=19 MiB, ~1 GiB at
    # the library's m=64 MiB. More hashes in flight than cores only adds memory, not speed.
    return threading.BoundedSemaphore(get_settings().hash_concurrency)


def hash_password(password: str) -> str:
    """The argon2id hash of `password`. Blocking and CPU-bound: call it from a worker thread."""
    with _hash_slots(), PASSWORD_HASHES_IN_FLIGHT.track_inprogress():
        return _password_hash().hash(password)


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """Whether `password` matches, and a fresh hash when the stored one has outdated parameters."""
    if not is_usable_password_hash(password_hash):
        # Spend the time a real verification takes, so the answer does not tell whether the
        # account has a usable password; then refuse.
        hash_password(password)
        return False, None
    with _hash_slots(), PASSWORD_HASHES_IN_FLIGHT.track_inprogress():
        return _password_hash().verify_and_update(password, password_hash)


def unusable_password_hash() -> str:
    """A value for password_hash that no password verifies against (see verify_password)."""
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30)


def is_usable_password_hash(password_hash: str) -> bool:
    return not password_hash.startswith(UNUSABLE_PASSWORD_PREFIX)
