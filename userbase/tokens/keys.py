"""Signing keys: kept in the database, private halves sealed, published as a JWKS.

One key per algorithm is current (the newest not retired): ES256 signs access tokens, RS256
is there for OpenID Connect's ID tokens. `rotate` makes new current keys; a replaced key signs
nothing more but stays published until every token it signed has expired. Every process keeps
the keys in a KeyRing, read again from the database every RELOAD_SECONDS and whenever a token
names a key it does not know (another process rotated).
"""

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from userbase.config import get_settings
from userbase.database import SessionLocal, read_engine
from userbase.models import SigningKey, utcnow
from userbase.sealing import Unsealable, seal, unseal, uses_development_key

logger = logging.getLogger("userbase.tokens")

ALGORITHMS = ("ES256", "RS256")
# NIST SP 800-57: RSA 2048 is good until 2030; ES256 is P-256 (RFC 7518 section 3.4).
RSA_BITS = 2048
# The longest a token signed by a key can live (access tokens: at most 15 minutes, config.py)
# plus a minute for the clocks of the services that check them.
MAX_SIGNED_LIFETIME = timedelta(seconds=900 + 60)
RELOAD_SECONDS = 60.0
# A token naming an unknown key makes the ring read the database again, at most this often:
# forged kids cannot turn every request into a query.
UNKNOWN_KID_RELOAD_SECONDS = 1.0


class KeysUnreadable(RuntimeError):
    """The stored private keys were sealed under another USERBASE_SECRET_KEY (or none exist)."""


def secret_key_is_default() -> bool:
    """Whether the private keys are sealed under the development key (USERBASE_SECRET_KEY
    unset): fine on a laptop, a finding in production (sealing.py)."""
    return uses_development_key(get_settings())


def warn_if_default_secret() -> None:
    if secret_key_is_default():
        logger.warning(
            "USERBASE_SECRET_KEY is not set: the private signing keys are sealed under the "
            "development key, which is in the source. Set it (a long random string) in "
            "production, before the first start."
        )


def _generate(alg: str) -> ECKey | RSAKey:
    parameters: Any = {"use": "sig", "alg": alg}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=parameters, auto_kid=True)
    if alg == "RS256":
        return RSAKey.generate_key(RSA_BITS, parameters=parameters, auto_kid=True)
    raise ValueError(f"unsupported algorithm {alg}")


def create_key(session: Session, alg: str) -> SigningKey:
    """A new current key for `alg`, in the caller's unit of work."""
    key = _generate(alg)
    row = SigningKey(
        kid=key.kid,
        alg=alg,
        # Sealed (sealing.py): a copy of the table is no copy of the keys.
        private_pem=seal(key.as_pem(private=True)),
        public_jwk=json.dumps(key.as_dict(private=False)),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def _current(session: Session, alg: str) -> SigningKey | None:
    return session.scalars(
        select(SigningKey)
        .where(SigningKey.alg == alg, SigningKey.retired_at.is_(None))
        .order_by(SigningKey.id.desc())
        .limit(1)
    ).first()


def ensure_keys(session: Session) -> list[SigningKey]:
    """Create a current key for each algorithm that has none; returns those created."""
    return [create_key(session, alg) for alg in ALGORITHMS if _current(session, alg) is None]


def rotate(session: Session, algorithms: Sequence[str] = ALGORITHMS) -> list[SigningKey]:
    """New current keys; the ones they replace stay published until their tokens expired."""
    now = utcnow()
    created = []
    for alg in algorithms:
        for old in session.scalars(
            select(SigningKey).where(SigningKey.alg == alg, SigningKey.retired_at.is_(None))
        ):
            old.retired_at = now
            old.publish_until = now + MAX_SIGNED_LIFETIME
        created.append(create_key(session, alg))
    return created


def list_keys(session: Session) -> Sequence[SigningKey]:
    return session.scalars(select(SigningKey).order_by(SigningKey.id)).all()


def _published(session: Session) -> Sequence[SigningKey]:
    return session.scalars(
        select(SigningKey)
        .where(or_(SigningKey.publish_until.is_(None), SigningKey.publish_until > utcnow()))
        .order_by(SigningKey.id)
    ).all()


@dataclass(frozen=True, slots=True)
class _Loaded:
    signing: dict[str, ECKey | RSAKey]  # alg -> current private key
    verifying: KeySet
    jwks: dict[str, Any]


def _import_private(row: SigningKey) -> ECKey | RSAKey:
    parameters: Any = {"kid": row.kid, "use": "sig", "alg": row.alg}
    key_type = ECKey if row.alg == "ES256" else RSAKey
    try:
        return key_type.import_key(unseal(row.private_pem), parameters=parameters)
    except Unsealable as exc:
        raise KeysUnreadable(
            f"signing key {row.kid} cannot be decrypted: USERBASE_SECRET_KEY is not the one "
            "it was sealed under"
        ) from exc


class KeyRing:
    """This process's copy of the published keys (thread-safe).

    It reads them in a transaction of its own, never the request's, and creates none: keys
    are made by `userbase migrate`, at start-up (prepare) and by `userbase keys rotate`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._loaded_at = 0.0
        # Bumped whenever the published keys change: what was verified with older ones is
        # not trusted any more (access_tokens.py caches by it).
        self.generation = 0

    def _load(self) -> _Loaded:
        # A read: on SQLite a second write transaction would wait for the request's own.
        with SessionLocal(bind=read_engine) as session, session.begin():
            rows = _published(session)
            signing: dict[str, ECKey | RSAKey] = {}
            public = []
            for row in rows:
                public.append(json.loads(row.public_jwk))
                if row.retired_at is None:  # the newest wins (rows are in id order)
                    signing[row.alg] = _import_private(row)
        if not rows:
            if self._loaded is not None:  # deleted under a running server: keep signing
                logger.error("no signing keys in the database; run `userbase keys rotate`")
                return self._loaded
            raise KeysUnreadable("no signing keys in the database: run `userbase migrate`")
        jwks = {"keys": public}
        return _Loaded(signing, KeySet.import_key_set(jwks), jwks)  # type: ignore[arg-type]

    def _get(self, *, older_than: float) -> _Loaded:
        loaded = self._loaded
        if loaded is not None and time.monotonic() - self._loaded_at < older_than:
            return loaded
        with self._lock:
            if self._loaded is None or time.monotonic() - self._loaded_at >= older_than:
                try:
                    loaded = self._load()
                    if self._loaded is None or loaded.jwks != self._loaded.jwks:
                        self.generation += 1
                    self._loaded = loaded
                except KeysUnreadable:
                    if self._loaded is None:
                        raise
                    # Keys rotated under a new USERBASE_SECRET_KEY while this server runs
                    # with the old one: it keeps the keys it has until it is restarted.
                    logger.exception("signing keys not reloaded; keeping the ones loaded")
                self._loaded_at = time.monotonic()
            return self._loaded

    def signing_key(self, alg: str) -> ECKey | RSAKey:
        return self._get(older_than=RELOAD_SECONDS).signing[alg]

    def verifying_keys(self, kid: str | None) -> KeySet:
        """The published keys; read again first when `kid` is not among them."""
        loaded = self._get(older_than=RELOAD_SECONDS)
        if kid is not None and all(key.kid != kid for key in loaded.verifying.keys):
            loaded = self._get(older_than=UNKNOWN_KID_RELOAD_SECONDS)
        return loaded.verifying

    def jwks(self) -> dict[str, Any]:
        """The published keys, read again when over a second old: a key made by a rotation
        (in another process) is published here within a second, while a server starts
        signing with it only at its next reading, up to RELOAD_SECONDS later. So a service
        that meets a new `kid` and fetches the keys again finds it, whichever worker answers."""
        return self._get(older_than=UNKNOWN_KID_RELOAD_SECONDS).jwks

    def forget(self) -> None:
        """Read the database again at the next use (after a rotation in this process)."""
        with self._lock:
            self._loaded = None
            self.generation += 1


RING = KeyRing()


def prepare() -> None:
    """At start-up and after `userbase migrate`: say whether the secret is the default, and
    create the keys a new database lacks (in a transaction of their own)."""
    warn_if_default_secret()
    with SessionLocal.begin() as session:
        ensure_keys(session)
    RING.forget()
