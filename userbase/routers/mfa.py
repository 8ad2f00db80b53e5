"""/users/.../mfa: a user's second factors (docs/mfa.md): enrol an authenticator app, confirm it,
new recovery codes, remove it; an admin's reset for a user who lost their device."""

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from userbase.admission import HASHING_TURN
from userbase.database import SessionDep
from userbase.mfa import factors
from userbase.problem import PROBLEM_RESPONSE as PROBLEM
from userbase.responses import JSONBytes
from userbase.routers.dependencies import (
    AdminDep,
    EnrollingPrincipalDep,
    PrincipalDep,
    RequestContextDep,
)
from userbase.schemas import (
    CurrentPassword,
    RecoveryCodesOut,
    SecondFactorsOut,
    TotpCodeIn,
    TotpEnrolmentOut,
)

router = APIRouter(prefix="/users", tags=["mfa"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: PROBLEM,
    403: PROBLEM,
    409: PROBLEM,
    422: PROBLEM,
}
_WITH_PASSWORD: dict[int | str, dict[str, Any]] = {**_PROBLEMS, 429: PROBLEM, 503: PROBLEM}


@router.get("/me/mfa", response_model=SecondFactorsOut, responses={401: PROBLEM})
def read_my_second_factors(principal: EnrollingPrincipalDep, db: SessionDep) -> Response:
    """Whether an authenticator is active, how many passkeys there are, and how many
    recovery codes are left."""
    status = factors.status(db, principal.user.id)
    return JSONBytes(
        {
            "totp": status.totp,
            "passkeys": status.passkeys,
            "recovery_codes_left": status.recovery_codes_left,
        }
    )


@router.post(
    "/me/mfa/totp",
    status_code=201,
    response_model=TotpEnrolmentOut,
    responses=_WITH_PASSWORD,
    summary="Enrol an authenticator app: its secret, active once confirmed",
    dependencies=[HASHING_TURN],
)
def begin_totp(
    body: CurrentPassword,
    principal: EnrollingPrincipalDep,
    db: SessionDep,
    context: RequestContextDep,
) -> Response:
    enrolment = factors.begin_totp(
        db, principal.user, current_password=body.current_password, context=context
    )
    return JSONBytes(
        {"secret": enrolment.secret, "otpauth_uri": enrolment.otpauth_uri}, status_code=201
    )


@router.post(
    "/me/mfa/totp/confirm",
    response_model=RecoveryCodesOut,
    responses={**_PROBLEMS, 400: PROBLEM},
    summary="Activate the authenticator with a code it shows; the recovery codes, once",
)
def confirm_totp(
    body: TotpCodeIn, principal: EnrollingPrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    codes = factors.confirm_totp(db, principal.user, code=body.code, context=context)
    return JSONBytes({"recovery_codes": codes})


@router.post(
    "/me/mfa/recovery-codes",
    response_model=RecoveryCodesOut,
    responses=_WITH_PASSWORD,
    summary="A new set of recovery codes: the old set stops working",
    dependencies=[HASHING_TURN],
)
def regenerate_recovery_codes(
    body: CurrentPassword, principal: PrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    codes = factors.regenerate_recovery_codes(
        db, principal.user, current_password=body.current_password, context=context
    )
    return JSONBytes({"recovery_codes": codes})


@router.delete(
    "/me/mfa/totp",
    status_code=204,
    responses=_WITH_PASSWORD,
    summary="Remove your authenticator app (and your recovery codes)",
    dependencies=[HASHING_TURN],
)
def remove_totp(
    body: CurrentPassword, principal: PrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    factors.remove_totp(db, principal.user, current_password=body.current_password, context=context)
    return Response(status_code=204)


@router.delete(
    "/{user_id}/mfa",
    status_code=204,
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 422: PROBLEM},
    summary="Remove every second factor of a user who lost their device (admins)",
)
def reset_second_factors(
    user_id: int, admin: AdminDep, db: SessionDep, context: RequestContextDep
) -> Response:
    """Audited (mfa_reset); the user is mailed."""
    factors.reset(db, admin.user, user_id, context=context)
    return Response(status_code=204)
