"""JWT access tokens (RFC 9068): minted with the current key, checked against the published
ones. joserfc does the signing, the base64url and the claim checks."""

import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from userbase.config import get_settings
from userbase.models import utcnow
from userbase.tokens.keys import ALGORITHMS, RING

TOKEN_TYPE = "at+jwt"  # RFC 9068 section 2.1
# Seconds of clock difference tolerated on exp and iat (userbase itself keeps one clock,
# clock.py; this is for the checks other services make, and documented for them).
LEEWAY_SECONDS = 0


class InvalidAccessToken(ValueError):
    """Not a token of ours: bad signature, unknown key, expired, wrong issuer or audience."""


def issuer() -> str:
    return get_settings().public_url.rstrip("/")


def audience() -> str:
    settings = get_settings()
    return (settings.token_audience or settings.public_url).rstrip("/")


@dataclass(frozen=True, slots=True)
class MintedToken:
    token: str
    expires_in: int
    claims: dict[str, Any]


def mint(
    *,
    subject: str,
    client_id: str,
    scope: str,
    sign_in_id: int | None,
    audience_: str | None = None,
    ttl_seconds: int | None = None,
) -> MintedToken:
    """Sign an access token for `subject` (a user id, or the client itself)."""
    settings = get_settings()
    ttl = ttl_seconds if ttl_seconds is not None else settings.access_token_ttl_seconds
    now = int(utcnow().timestamp())
    claims: dict[str, Any] = {
        "iss": issuer(),
        "sub": subject,
        "aud": audience_ or audience(),
        "client_id": client_id,
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(16),
    }
    if scope:
        claims["scope"] = scope
    if sign_in_id is not None:
        claims["sid"] = str(sign_in_id)
    alg = settings.access_token_algorithm
    key = RING.signing_key(alg)
    header = {"alg": alg, "kid": key.kid, "typ": TOKEN_TYPE}
    return MintedToken(jwt.encode(header, claims, key, algorithms=[alg]), ttl, claims)


_CLAIMS = JWTClaimsRegistry(
    leeway=LEEWAY_SECONDS,
    now=lambda: int(utcnow().timestamp()),
    iss={"essential": True},
    sub={"essential": True},
    exp={"essential": True},
    iat={"essential": True},
    jti={"essential": True},
    client_id={"essential": True},
)
# Tokens whose signature, issuer and audience were checked, by key generation: a client uses
# its access token for minutes, and the ES256 verification is most of a request's CPU
# (~1.2 ms here against ~0.01 ms for a hit: `python -m bench.in_process` measures it whole).
# The expiry is checked on every use, hit or not.
VERIFIED_CACHE_SIZE = 4096


def looks_like_jwt(token: str) -> bool:
    """A compact JWS has three dot-separated parts; our opaque tokens have no dot."""
    return token.count(".") == 2


def verify(token: str) -> dict[str, Any]:
    """The claims of a valid access token of ours for our audience, or InvalidAccessToken."""
    claims = dict(_signed_by_us(token, RING.generation))  # a copy: callers may change theirs
    try:
        _CLAIMS.validate(claims)  # exp and iat against now: never cached
    except (JoseError, ValueError) as exc:
        raise InvalidAccessToken("The access token is invalid or expired.") from exc
    return claims


@lru_cache(maxsize=VERIFIED_CACHE_SIZE)
def _signed_by_us(token: str, generation: int) -> dict[str, Any]:
    """Signature, type, issuer and audience (what cannot change while the keys do not)."""
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise InvalidAccessToken("The access token is malformed.") from exc
    if header.get("typ") != TOKEN_TYPE:  # RFC 9068 section 4: no ID token as access token
        raise InvalidAccessToken("The token is not an access token.")
    try:
        decoded = jwt.decode(
            token, RING.verifying_keys(header.get("kid")), algorithms=list(ALGORITHMS)
        )
    except (JoseError, ValueError) as exc:
        raise InvalidAccessToken("The access token is invalid or expired.") from exc
    claims = decoded.claims
    if claims.get("iss") != issuer():
        raise InvalidAccessToken("The access token was issued by someone else.")
    aud = claims.get("aud")
    if audience() not in (aud if isinstance(aud, list) else [aud]):
        raise InvalidAccessToken("The access token is meant for another audience.")
    return claims
