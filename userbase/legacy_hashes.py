"""Verifiers for password hashes made by other systems, so imported users keep their password.

Each is a pwdlib hasher: userbase's PasswordHash lists them after argon2id, so a successful
sign-in with one of these hashes replaces it by argon2id at our parameters (pwdlib's
verify_and_update). The cryptography is the libraries' (bcrypt, hashlib); only the formats are
parsed here.
"""

import base64
import hashlib
import hmac
import re
import secrets

import bcrypt
from pwdlib.hashers.base import ensure_bytes, ensure_str
from pwdlib.hashers.bcrypt import BcryptHasher

# Classic bcrypt reads at most 72 bytes of the password and silently ignored the rest; bcrypt 5
# refuses longer passwords instead. A user imported with a bcrypt hash whose password is longer
# than 72 bytes could therefore only ever have been checked on its first 72 bytes: we verify
# exactly that, so they can sign in, and the argon2id hash made at that sign-in covers the
# whole password from then on.
BCRYPT_MAX_BYTES = 72

# Django's formats (django.contrib.auth.hashers): algorithm$iterations$salt$base64(hash) and
# scrypt$N$salt$r$p$base64(hash).
_DJANGO_PBKDF2 = re.compile(r"^pbkdf2_sha256\$(\d{1,9})\$([^$]{1,128})\$([A-Za-z0-9+/=]{1,128})$")
_DJANGO_SCRYPT = re.compile(
    r"^scrypt\$(\d{1,9})\$([^$]{1,128})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/=]{1,256})$"
)
# Bounds on work factors we accept from a foreign hash, so an imported row cannot make one
# sign-in burn gigabytes or minutes.
_PBKDF2_MAX_ITERATIONS = 10_000_000
_SCRYPT_MAX_MEMORY = 256 * 1024 * 1024


class LegacyBcryptHasher(BcryptHasher):
    """$2a$, $2b$ and $2y$ bcrypt hashes (checked on the password's first 72 bytes)."""

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        return bcrypt.checkpw(ensure_bytes(password)[:BCRYPT_MAX_BYTES], ensure_bytes(hash))


class DjangoPbkdf2Hasher:
    """Django's default `pbkdf2_sha256$<iterations>$<salt>$<hash>`."""

    @classmethod
    def identify(cls, hash: str | bytes) -> bool:
        match = _DJANGO_PBKDF2.match(ensure_str(hash))
        return match is not None and 0 < int(match.group(1)) <= _PBKDF2_MAX_ITERATIONS

    def hash(
        self, password: str | bytes, *, salt: bytes | None = None, iterations: int = 870_000
    ) -> str:
        salt_text = ensure_str(salt) if salt else secrets.token_urlsafe(16)
        digest = hashlib.pbkdf2_hmac(
            "sha256", ensure_bytes(password), salt_text.encode(), iterations
        )
        return f"pbkdf2_sha256${iterations}${salt_text}${base64.b64encode(digest).decode()}"

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        match = _DJANGO_PBKDF2.match(ensure_str(hash))
        if match is None:
            return False
        iterations, salt = int(match.group(1)), match.group(2)
        expected = self.hash(password, salt=salt.encode(), iterations=iterations)
        return hmac.compare_digest(expected.encode(), ensure_bytes(hash))

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        return True


class DjangoScryptHasher:
    """Django's `scrypt$<N>$<salt>$<r>$<p>$<hash>` (64-byte key, base64)."""

    @classmethod
    def identify(cls, hash: str | bytes) -> bool:
        match = _DJANGO_SCRYPT.match(ensure_str(hash))
        if match is None:
            return False
        n, r = int(match.group(1)), int(match.group(3))
        return n > 1 and n & (n - 1) == 0 and 128 * r * n <= _SCRYPT_MAX_MEMORY

    def hash(
        self,
        password: str | bytes,
        *,
        salt: bytes | None = None,
        n: int = 2**14,
        r: int = 8,
        p: int = 1,
    ) -> str:
        salt_text = ensure_str(salt) if salt else secrets.token_urlsafe(16)
        digest = hashlib.scrypt(
            ensure_bytes(password),
            salt=salt_text.encode(),
            n=n,
            r=r,
            p=p,
            maxmem=2 * 128 * r * n,
            dklen=64,
        )
        return f"scrypt${n}${salt_text}${r}${p}${base64.b64encode(digest).decode()}"

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        match = _DJANGO_SCRYPT.match(ensure_str(hash))
        if match is None:
            return False
        n, salt, r, p = (
            int(match.group(1)),
            match.group(2),
            int(match.group(3)),
            int(match.group(4)),
        )
        expected = self.hash(password, salt=salt.encode(), n=n, r=r, p=p)
        return hmac.compare_digest(expected.encode(), ensure_bytes(hash))

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        return True
