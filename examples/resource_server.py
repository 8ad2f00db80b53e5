"""A service that checks userbase's access tokens itself: no call to userbase per request.

It fetches userbase's public keys once (and again when a token names a key it has not seen,
after a rotation), then verifies each token's signature, expiry, issuer and audience locally.
Run it next to userbase:

    USERBASE_URL=http://127.0.0.1:8000 uvicorn examples.resource_server:app --port 8001
    curl -H "Authorization: Bearer $ACCESS_TOKEN" localhost:8001/hello

Settings: USERBASE_URL (the issuer, userbase's USERBASE_PUBLIC_URL), TOKEN_AUDIENCE (what
userbase puts in `aud`: its USERBASE_TOKEN_AUDIENCE, by default the same URL) and
USERBASE_JWKS_URL (by default USERBASE_URL/.well-known/jwks.json).
"""

import os
from typing import Annotated, Any

import jwt  # PyJWT
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ISSUER = os.environ.get("USERBASE_URL", "http://127.0.0.1:8000").rstrip("/")
AUDIENCE = os.environ.get("TOKEN_AUDIENCE", ISSUER)
# Where to fetch the keys, when this service reaches userbase by another address.
JWKS_URL = os.environ.get("USERBASE_JWKS_URL", f"{ISSUER}/.well-known/jwks.json")
# Keys cached for 5 minutes (userbase's Cache-Control says the same); an unknown kid refetches.
jwks = jwt.PyJWKClient(JWKS_URL, lifespan=300)


def claims(
    credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))
    ],
) -> dict[str, Any]:
    """The verified claims of the bearer token, or 401."""
    if credentials is None:
        raise HTTPException(401, "Send a bearer token.", {"WWW-Authenticate": "Bearer"})
    token = credentials.credentials
    try:
        if jwt.get_unverified_header(token).get("typ") != "at+jwt":  # RFC 9068: access tokens only
            raise jwt.InvalidTokenError("not an access token")
        key = jwks.get_signing_key_from_jwt(token)
        verified: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["ES256", "RS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "client_id"]},
        )
    except jwt.PyJWTError as exc:
        raise HTTPException(
            401, "Invalid or expired token.", {"WWW-Authenticate": "Bearer"}
        ) from exc
    return verified


app = FastAPI(title="example resource server")


# `claims` is a plain `def`: FastAPI runs it in a worker thread, since fetching the keys
# blocks. This route does nothing that blocks, so it stays on the event loop (one thread hop
# per request instead of two).
@app.get("/hello")
async def hello(token: Annotated[dict[str, Any], Depends(claims)]) -> dict[str, Any]:
    return {"user": token["sub"], "client": token["client_id"], "scope": token.get("scope", "")}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
