"""A user's sessions (live bearer tokens) and the sign-in lockout, for the user and admins."""

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from userbase import audit, auth, users
from userbase.audit import EventKind
from userbase.database import SessionDep
from userbase.errors import PROBLEM_RESPONSE as PROBLEM
from userbase.models import Token
from userbase.permissions import ensure_can_manage
from userbase.responses import JSONBytes
from userbase.routers.dependencies import AdminDep, PrincipalDep, RequestContextDep
from userbase.schemas import LockoutOut, SessionOut

router = APIRouter(prefix="/users", tags=["sessions"])

_AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {401: PROBLEM, 403: PROBLEM, 404: PROBLEM}


def _session(token: Token, current_token_id: int) -> dict[str, Any]:
    return {
        "id": token.id,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "expires_at": token.expires_at,
        "client_address": token.client_address,
        "user_agent": token.user_agent,
        "current": token.id == current_token_id,
    }


def _list(db: SessionDep, principal: auth.Principal, user_id: int) -> Response:
    ensure_can_manage(principal.user, user_id)
    users.get_user(db, user_id)
    tokens = auth.list_sessions(db, user_id)
    return JSONBytes([_session(token, principal.token_id) for token in tokens])


def _revoke(
    db: SessionDep,
    principal: auth.Principal,
    context: audit.RequestContext,
    user_id: int,
    session_id: int,
) -> Response:
    ensure_can_manage(principal.user, user_id)
    auth.revoke_session(db, user_id, session_id)
    audit.record(
        db,
        EventKind.SESSION_REVOKED,
        context,
        user_id=user_id,
        actor_id=principal.user.id,
        detail=f"session={session_id}",
    )
    return Response(status_code=204)


def _revoke_others(
    db: SessionDep, principal: auth.Principal, context: audit.RequestContext, user_id: int
) -> Response:
    ensure_can_manage(principal.user, user_id)
    users.get_user(db, user_id)
    # Signed out everywhere but here; an admin acting on someone else ends all their sessions.
    keep = principal.token_id if principal.user.id == user_id else None
    auth.revoke_other_sessions(db, user_id, keep)
    audit.record(
        db,
        EventKind.SESSION_REVOKED,
        context,
        user_id=user_id,
        actor_id=principal.user.id,
        detail="all others" if keep else "all",
    )
    return Response(status_code=204)


@router.get("/me/sessions", response_model=list[SessionOut], responses=_AUTH_PROBLEMS)
def list_my_sessions(principal: PrincipalDep, db: SessionDep) -> Response:
    """Your live tokens: where and when they were made and last used."""
    return _list(db, principal, principal.user.id)


@router.delete("/me/sessions/{session_id}", status_code=204, responses=_AUTH_PROBLEMS)
def revoke_my_session(
    session_id: int, principal: PrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    return _revoke(db, principal, context, principal.user.id, session_id)


@router.delete("/me/sessions", status_code=204, responses=_AUTH_PROBLEMS)
def revoke_my_other_sessions(
    principal: PrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    """Sign out everywhere except with the token of this request."""
    return _revoke_others(db, principal, context, principal.user.id)


@router.get("/{user_id}/sessions", response_model=list[SessionOut], responses=_AUTH_PROBLEMS)
def list_sessions(user_id: int, principal: PrincipalDep, db: SessionDep) -> Response:
    """A user's live tokens (the user themself or an admin)."""
    return _list(db, principal, user_id)


@router.delete("/{user_id}/sessions/{session_id}", status_code=204, responses=_AUTH_PROBLEMS)
def revoke_session(
    user_id: int,
    session_id: int,
    principal: PrincipalDep,
    db: SessionDep,
    context: RequestContextDep,
) -> Response:
    return _revoke(db, principal, context, user_id, session_id)


@router.delete("/{user_id}/sessions", status_code=204, responses=_AUTH_PROBLEMS)
def revoke_other_sessions(
    user_id: int, principal: PrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    """All the user's tokens (but the caller's own, when they act on themself)."""
    return _revoke_others(db, principal, context, user_id)


@router.get("/{user_id}/lockout", response_model=LockoutOut, responses=_AUTH_PROBLEMS)
def read_lockout(user_id: int, _admin: AdminDep, db: SessionDep) -> Response:
    """Whether failed sign-ins lock the account now (admins)."""
    users.get_user(db, user_id)
    retry_after = auth.lockout(db, user_id)
    return JSONBytes({"locked": retry_after is not None, "retry_after": retry_after})


@router.post("/{user_id}/unlock", status_code=204, responses=_AUTH_PROBLEMS)
def unlock(user_id: int, admin: AdminDep, db: SessionDep, context: RequestContextDep) -> Response:
    """Lift a sign-in lockout now (admins); recorded in the audit trail."""
    users.get_user(db, user_id)
    auth.unlock(db, user_id)
    audit.record(db, EventKind.ACCOUNT_UNLOCKED, context, user_id=user_id, actor_id=admin.user.id)
    return Response(status_code=204)
