"""/users/me/mfa/passkeys: a signed-in user's passkeys (docs/mfa.md): list, register (the
options, then the authenticator's answer), rename, remove. The pages of /account/passkeys
call the same workflows (routers/passkey_pages.py)."""

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from userbase.admission import HASHING_TURN
from userbase.database import SessionDep
from userbase.mfa import factors, passkeys
from userbase.problem import PROBLEM_RESPONSE as PROBLEM
from userbase.responses import JSONBytes
from userbase.routers.dependencies import (
    EnrollingPrincipalDep,
    PrincipalDep,
    RequestContextDep,
)
from userbase.schemas import CurrentPassword, PasskeyIn, PasskeyOut, PasskeyRename, PasskeysOut

router = APIRouter(prefix="/users/me/mfa/passkeys", tags=["mfa"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {401: PROBLEM, 403: PROBLEM, 422: PROBLEM}
_WITH_PASSWORD: dict[int | str, dict[str, Any]] = {**_PROBLEMS, 429: PROBLEM, 503: PROBLEM}
_OPTIONS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "PublicKeyCredentialCreationOptionsJSON: give it to "
        "PublicKeyCredential.parseCreationOptionsFromJSON(), then navigator.credentials.create()",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _out(passkey: passkeys.PasskeyView) -> dict[str, Any]:
    return PasskeyOut(
        id=passkey.id,
        name=passkey.name,
        transports=passkey.transports,
        created_at=passkey.created_at,
        last_used_at=passkey.last_used_at,
    ).model_dump(mode="json")


@router.get("", response_model=PasskeysOut, responses={401: PROBLEM})
def list_my_passkeys(principal: EnrollingPrincipalDep, db: SessionDep) -> Response:
    return JSONBytes({"passkeys": [_out(p) for p in passkeys.list_passkeys(db, principal.user.id)]})


@router.post(
    "/registration",
    responses={**_OPTIONS, **_WITH_PASSWORD},
    summary="Start registering a passkey: the options for navigator.credentials.create()",
    dependencies=[HASHING_TURN],
)
def begin_passkey(
    body: CurrentPassword,
    principal: EnrollingPrincipalDep,
    db: SessionDep,
    context: RequestContextDep,
) -> Response:
    """With the current password: a passkey signs in alone. The options' challenge serves
    once, for 5 minutes."""
    options = factors.begin_passkey(
        db, principal.user, current_password=body.current_password, binding=None, context=context
    )
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.post(
    "",
    status_code=201,
    response_model=PasskeyOut,
    responses={**_PROBLEMS, 400: PROBLEM, 409: PROBLEM},
    summary="Finish registering a passkey: the authenticator's answer, and a name",
)
def add_passkey(
    body: PasskeyIn, principal: EnrollingPrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    """400 when the answer fails a check (origin, RP id, challenge, user verification)."""
    passkey = factors.add_passkey(
        db, principal.user, body.credential, name=body.name, binding=None, context=context
    )
    return JSONBytes(_out(passkey), status_code=201)


@router.patch(
    "/{passkey_id}",
    response_model=PasskeyOut,
    responses={**_PROBLEMS, 404: PROBLEM},
    summary="Rename a passkey",
)
def rename_passkey(
    passkey_id: int, body: PasskeyRename, principal: PrincipalDep, db: SessionDep
) -> Response:
    return JSONBytes(_out(passkeys.rename(db, principal.user.id, passkey_id, body.name)))


@router.delete(
    "/{passkey_id}",
    status_code=204,
    responses={**_WITH_PASSWORD, 404: PROBLEM},
    summary="Remove a passkey (with the current password)",
    dependencies=[HASHING_TURN],
)
def remove_passkey(
    passkey_id: int,
    body: CurrentPassword,
    principal: PrincipalDep,
    db: SessionDep,
    context: RequestContextDep,
) -> Response:
    factors.remove_passkey(
        db, principal.user, passkey_id, current_password=body.current_password, context=context
    )
    return Response(status_code=204)
