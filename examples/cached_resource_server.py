"""The checks of examples/resource_server.py, for a service whose every request counts: a plain
ASGI app (no framework) that keeps the tokens it has verified until they expire.

A token is a fixed string: once its signature, issuer, audience and type have been verified,
the same string always passes them again, so only its expiry is checked on later requests
(userbase's own API keeps such a cache too, `userbase/tokens/access_tokens.py`). A token seen
for the first time, or one whose key this service has not fetched yet, is verified in full by
PyJWT. What the cache changes for revocation: nothing, since a JWT checked locally stays valid
until it expires either way (docs/tokens.md, "How rotation and revocation reach you").

    USERBASE_URL=http://127.0.0.1:8000 uvicorn examples.cached_resource_server:app --port 8001
    curl -H "Authorization: Bearer $ACCESS_TOKEN" localhost:8001/hello

Settings as examples/resource_server.py: USERBASE_URL, TOKEN_AUDIENCE, USERBASE_JWKS_URL.
"""

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt  # PyJWT

ISSUER = os.environ.get("USERBASE_URL", "http://127.0.0.1:8000").rstrip("/")
AUDIENCE = os.environ.get("TOKEN_AUDIENCE", ISSUER)
JWKS_URL = os.environ.get("USERBASE_JWKS_URL", f"{ISSUER}/.well-known/jwks.json")
jwks = jwt.PyJWKClient(JWKS_URL, lifespan=300)

# Verified tokens: token -> its claims. Bounded: when full, expired entries go first, then the
# oldest half (a flood of distinct valid tokens costs verifications, never memory).
CACHE_SIZE = 10_000
verified: dict[str, dict[str, Any]] = {}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Refused(Exception):
    """The request's token is missing or does not pass."""


def verify(token: str) -> dict[str, Any]:
    """The claims of a token not seen before, checked in full (blocks when keys are fetched)."""
    if jwt.get_unverified_header(token).get("typ") != "at+jwt":  # RFC 9068: access tokens only
        raise jwt.InvalidTokenError("not an access token")
    claims: dict[str, Any] = jwt.decode(
        token,
        jwks.get_signing_key_from_jwt(token),
        algorithms=["ES256", "RS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "sub", "client_id"]},
    )
    return claims


def _remember(token: str, claims: dict[str, Any]) -> None:
    if len(verified) >= CACHE_SIZE:
        now = time.time()
        for old in [key for key, seen in verified.items() if seen["exp"] <= now]:
            del verified[old]
        if len(verified) >= CACHE_SIZE:  # dicts keep insertion order: the oldest first
            for old in list(verified)[: CACHE_SIZE // 2]:
                del verified[old]
    verified[token] = claims


async def claims_of(scope: Scope) -> dict[str, Any]:
    """The verified claims of the request's bearer token, or Refused."""
    authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused("Send a bearer token.")
    claims = verified.get(token)
    if claims is None:
        try:  # in a thread: fetching the keys blocks
            claims = await asyncio.to_thread(verify, token)
        except jwt.PyJWTError as exc:
            raise Refused("Invalid or expired token.") from exc
        _remember(token, claims)
    if claims["exp"] <= time.time():  # as PyJWT checks it (no leeway)
        verified.pop(token, None)
        raise Refused("Invalid or expired token.")
    return claims


async def _answer(
    send: Send, status: int, body: dict[str, Any], *extra: tuple[bytes, bytes]
) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": payload})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/healthz":
        return await _answer(send, 200, {"status": "ok"})
    if scope["path"] != "/hello" or scope["method"] != "GET":
        return await _answer(send, 404, {"detail": "Not Found"})
    try:
        claims = await claims_of(scope)
    except Refused as refused:
        return await _answer(send, 401, {"detail": str(refused)}, (b"www-authenticate", b"Bearer"))
    body = {"user": claims["sub"], "client": claims["client_id"], "scope": claims.get("scope", "")}
    await _answer(send, 200, body)
