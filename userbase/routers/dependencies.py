"""Annotated dependencies shared by routers: the signed-in user and the client's address."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from userbase import auth
from userbase.client_address import client_address
from userbase.config import get_settings
from userbase.database import SessionDep

# auto_error=False: we raise our own NotAuthenticated, which errors.py turns into problem+json.
_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
BearerToken = Annotated[str | None, Depends(_bearer)]


def get_principal(db: SessionDep, token: BearerToken) -> auth.Principal:
    if token is None:
        raise auth.NotAuthenticated
    return auth.resolve_token(db, token)


def get_optional_principal(db: SessionDep, token: BearerToken) -> auth.Principal | None:
    """The signed-in user when a token is sent (an invalid one is still a 401), else None."""
    return None if token is None else auth.resolve_token(db, token)


def get_client_address(request: Request) -> str:
    return client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        get_settings().trusted_proxies,
    )


PrincipalDep = Annotated[auth.Principal, Depends(get_principal)]
OptionalPrincipalDep = Annotated[auth.Principal | None, Depends(get_optional_principal)]
ClientAddress = Annotated[str, Depends(get_client_address)]
