"""A user's sign-ins (live bearer tokens, "sessions" in the API's paths) and the sign-in lockout,
for the user and admins."""

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from userbase import accounts, auth, sign_ins, users
from userbase.database import SessionDep
from userbase.permissions import ensure_can_manage
from userbase.problem import PROBLEM_RESPONSE as PROBLEM
from userbase.responses import JSONBytes
from userbase.routers.dependencies import AdminDep, PrincipalDep, RequestContextDep
from userbase.schemas import LockoutOut, SignIn, SignInOut, shaped

router = APIRouter(prefix="/users", tags=["sessions"])

_AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {401: PROBLEM, 403: PROBLEM, 404: PROBLEM}


def _list(db: SessionDep, principal: auth.Principal, user_id: int) -> Response:
    ensure_can_manage(principal.user, user_id)
    users.get_user(db, user_id)
    return JSONBytes(
        [
            {
                **shaped(SignIn, token),
                "kind": sign_ins.sign_in_kind(token),
                "client": token.client.client_id if token.client else None,
                "current": token.id == principal.token_id,
            }
            for token in sign_ins.list_sign_ins(db, user_id)
        ]
    )


@router.get("/me/sessions", response_model=list[SignInOut], responses=_AUTH_PROBLEMS)
def list_my_sessions(principal: PrincipalDep, db: SessionDep) -> Response:
    """Your live tokens: where and when they were made and last used."""
    return _list(db, principal, principal.user.id)


@router.delete("/me/sessions/{session_id}", status_code=204, responses=_AUTH_PROBLEMS)
def revoke_my_session(
    session_id: int, principal: PrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    accounts.end_sign_in(db, principal.user, principal.user.id, session_id, context=context)
    return Response(status_code=204)


@router.delete("/me/sessions", status_code=204, responses=_AUTH_PROBLEMS)
def revoke_my_other_sessions(
    principal: PrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    """Sign out everywhere except with the token of this request."""
    accounts.end_other_sign_ins(
        db, principal.user, principal.user.id, keep_token_id=principal.token_id, context=context
    )
    return Response(status_code=204)


@router.get("/{user_id}/sessions", response_model=list[SignInOut], responses=_AUTH_PROBLEMS)
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
    accounts.end_sign_in(db, principal.user, user_id, session_id, context=context)
    return Response(status_code=204)


@router.delete("/{user_id}/sessions", status_code=204, responses=_AUTH_PROBLEMS)
def revoke_other_sessions(
    user_id: int, principal: PrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    """All the user's tokens (but the caller's own, when they act on themself)."""
    accounts.end_other_sign_ins(
        db, principal.user, user_id, keep_token_id=principal.token_id, context=context
    )
    return Response(status_code=204)


@router.get("/{user_id}/lockout", response_model=LockoutOut, responses=_AUTH_PROBLEMS)
def read_lockout(user_id: int, _admin: AdminDep, db: SessionDep) -> Response:
    """Whether failed sign-ins lock the account now (admins)."""
    users.get_user(db, user_id)
    retry_after = auth.lockout(db, user_id)
    return JSONBytes({"locked": retry_after is not None, "retry_after": retry_after})


@router.post("/{user_id}/unlock", status_code=204, responses=_AUTH_PROBLEMS)
def unlock(user_id: int, admin: AdminDep, db: SessionDep, context: RequestContextDep) -> Response:
    """Lift a sign-in lockout now (admins); recorded in the audit trail."""
    accounts.unlock(db, admin.user, user_id, context=context)
    return Response(status_code=204)
