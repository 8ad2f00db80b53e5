"""Annotated dependencies shared by routers: the signed-in user, the client's address, the
request's context for the audit trail."""

import logging
from datetime import datetime
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.exc import SQLAlchemyError

from userbase import auth
from userbase.admission import database_slot
from userbase.audit import RequestContext
from userbase.client_address import client_address
from userbase.config import get_settings
from userbase.database import READ_ONLY_METHODS, SessionDep, SessionLocal
from userbase.logs import request_id_var
from userbase.mfa import factors
from userbase.permissions import ensure_admin
from userbase.tokens import access_tokens, grants

logger = logging.getLogger("userbase.auth")

# auto_error=False: we raise our own NotAuthenticated, which errors.py turns into problem+json.
_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
BearerToken = Annotated[str | None, Depends(_bearer)]


# The dependencies below are `async def` on purpose: FastAPI runs a plain `def` dependency in
# the thread pool, a hop that costs more than these functions do. Only the token lookup blocks,
# and it goes to the thread pool explicitly, and only when a token was sent.


async def get_principal(
    request: Request, db: SessionDep, token: BearerToken, background: BackgroundTasks
) -> auth.Principal:
    if token is None:
        raise auth.NotAuthenticated
    principal = await _resolve(request, db, token, background)
    await _ensure_enrolled(db, principal)
    return principal


async def get_enrolling_principal(
    request: Request, db: SessionDep, token: BearerToken, background: BackgroundTasks
) -> auth.Principal:
    """The signed-in user, also an admin who must still enrol a second factor: only for
    the routes that enrol one (and read the account, sign out)."""
    if token is None:
        raise auth.NotAuthenticated
    return await _resolve(request, db, token, background)


async def _ensure_enrolled(db: SessionDep, principal: auth.Principal) -> None:
    # USERBASE_REQUIRE_MFA_FOR_ADMINS: only admins' requests pay the query, only when it is on.
    if principal.user.is_admin and get_settings().require_mfa_for_admins:
        await run_in_threadpool(factors.ensure_enrolled_if_required, db, principal.user)


async def get_optional_principal(
    request: Request, db: SessionDep, token: BearerToken, background: BackgroundTasks
) -> auth.Principal | None:
    """The signed-in user when a token is sent (an invalid one is still a 401), else None."""
    if token is None:
        return None
    principal = await _resolve(request, db, token, background)
    await _ensure_enrolled(db, principal)
    return principal


async def _resolve(
    request: Request, db: SessionDep, token: str, background: BackgroundTasks
) -> auth.Principal:
    if access_tokens.looks_like_jwt(token):
        # A JWT access token of an OAuth client's sign-in (userbase/tokens/): its signature,
        # then its sign-in, so a sign-out is refused here at once. No last use to stamp.
        return await run_in_threadpool(grants.resolve_access_token, db, token)
    principal = await run_in_threadpool(auth.resolve_token, db, token)
    used_at = principal.last_used_due
    if used_at is not None:  # at most once a minute per token (auth.LAST_USED_RESOLUTION)
        if request.method in READ_ONLY_METHODS:
            # A read never writes: the stamp is its own small unit of work, after the answer.
            background.add_task(_record_use_after_answer, principal.token_id, used_at)
        else:
            await run_in_threadpool(auth.record_use, db, principal.token_id, used_at)
    return principal


async def _record_use_after_answer(token_id: int, used_at: datetime) -> None:
    try:
        # A slot like any request's session, so the pool always backs the sessions in use.
        async with database_slot():
            await run_in_threadpool(_record_use, token_id, used_at)
    except (SQLAlchemyError, OSError) as exc:  # bookkeeping: a busy or absent database skips it
        logger.warning("token last use not recorded: %s", type(exc).__name__)


def _record_use(token_id: int, used_at: datetime) -> None:
    with SessionLocal.begin() as session:
        auth.record_use(session, token_id, used_at)


def _address_of(request: Request) -> str:
    return client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        get_settings().trusted_proxies,
    )


async def get_client_address(request: Request) -> str:
    return _address_of(request)


def request_context(request: Request) -> RequestContext:
    return RequestContext(
        client_address=_address_of(request),
        user_agent=request.headers.get("user-agent"),
        # The id ObserveRequests took or made, which the response carries in X-Request-ID.
        request_id=request_id_var.get(),
    )


async def get_request_context(request: Request) -> RequestContext:
    return request_context(request)


async def get_admin(principal: "PrincipalDep") -> auth.Principal:
    ensure_admin(principal.user)
    return principal


PrincipalDep = Annotated[auth.Principal, Depends(get_principal)]
EnrollingPrincipalDep = Annotated[auth.Principal, Depends(get_enrolling_principal)]
OptionalPrincipalDep = Annotated[auth.Principal | None, Depends(get_optional_principal)]
ClientAddress = Annotated[str, Depends(get_client_address)]
RequestContextDep = Annotated[RequestContext, Depends(get_request_context)]
AdminDep = Annotated[auth.Principal, Depends(get_admin)]
