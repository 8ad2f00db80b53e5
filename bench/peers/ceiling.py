"""The ceiling: a raw ASGI app, an asyncpg pool and orjson, running the same SQL as userbase.

No framework, no validation, no ORM: what one core can serve for these queries. It answers
`GET /users/?limit=&after=`, `GET /users/{id}` and `GET /users/me` (the account of the bearer
token's owner) with the same JSON as userbase, nothing else.
"""

import hashlib
import os
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson

PAGE_SQL = (
    "SELECT id, username, display_name, created_at FROM users WHERE id > $1 ORDER BY id LIMIT $2"
)
ONE_SQL = "SELECT id, username, display_name, created_at FROM users WHERE id = $1"
# userbase stores the token's SHA-256 (userbase.security.token_digest) and answers the account
# view (userbase.routers.users._account) of an active owner of a live token.
ME_SQL = (
    "SELECT u.id, u.username, u.email, u.display_name, u.is_active, u.is_admin, "
    "u.email_verified, u.created_at FROM tokens t JOIN users u ON u.id = t.user_id "
    "WHERE t.token_hash = $1 AND t.expires_at > now() AND u.is_active"
)
_UNAUTHORIZED = b'{"detail":"not authenticated"}'

Send = Any
Scope = dict[str, Any]

_pool: asyncpg.Pool | None = None


async def _lifespan(receive: Any, send: Send) -> None:
    global _pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            dsn = os.environ["CEILING_DSN"]
            _pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _pool is not None:
                await _pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_UTC_Z)


async def app(scope: Scope, receive: Any, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    assert _pool is not None
    path: str = scope["path"]
    if path == "/users/":
        query = dict(parse_qsl(scope["query_string"].decode()))
        after, limit = int(query.get("after", 0)), int(query.get("limit", 100))
        rows = await _pool.fetch(PAGE_SQL, after, limit)
        await _respond(send, 200, _dumps([dict(row) for row in rows]))
    elif path == "/users/me":
        await _me(scope, send)
    elif path.startswith("/users/") and path[7:].isdigit():
        row = await _pool.fetchrow(ONE_SQL, int(path[7:]))
        if row is None:
            await _respond(send, 404, b'{"detail":"not found"}')
        else:
            await _respond(send, 200, _dumps(dict(row)))
    else:
        await _respond(send, 404, b'{"detail":"not found"}')


async def _me(scope: Scope, send: Send) -> None:
    assert _pool is not None
    authorization = dict(scope["headers"]).get(b"authorization", b"")
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token:
        await _respond(send, 401, _UNAUTHORIZED)
        return
    row = await _pool.fetchrow(ME_SQL, hashlib.sha256(token.encode()).hexdigest())
    if row is None:
        await _respond(send, 401, _UNAUTHORIZED)
    else:
        await _respond(send, 200, _dumps(dict(row)))
