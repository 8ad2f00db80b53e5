"""/account/: every user's own account in the browser (docs/console.md): the pages and their
forms, each action the API's own domain function (accounts, mail_links, mfa.factors). How a
form is read and answered: console_account_forms.py. What is shown once (a new
authenticator's key, recovery codes) is the POST's own answer: it is stored nowhere to be shown
again."""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from starlette.responses import HTMLResponse, Response

from userbase import accounts, mail_links, users
from userbase.admission import HASHING_TURN
from userbase.audit import RequestContext
from userbase.console.attempts import attempt
from userbase.database import SessionDep
from userbase.mfa import factors
from userbase.routers.console_account_forms import (
    ENTER_PASSWORD,
    SIGN_IN_URL,
    Posted,
    SentForm,
    back,
    open_page,
    receive,
    signed_out,
)
from userbase.routers.dependencies import RequestContextDep
from userbase.routers.hosted import BrowserCookie, CsrfCookie, Page
from userbase.schemas import PasswordChange, TotpCodeIn, UserUpdate

router = APIRouter(prefix="/account", include_in_schema=False)


# The pages.


@router.get("/")
def profile_page(
    db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None, done: str = ""
) -> Response:
    return open_page(db, "profile", sso, csrf_cookie, done)


@router.get("/password")
def password_page(
    db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Response:
    return open_page(db, "password", sso, csrf_cookie)


@router.get("/sessions")
def sessions_page(
    db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None, done: str = ""
) -> Response:
    return open_page(db, "sessions", sso, csrf_cookie, done)


@router.get("/two-factor")
def two_factor_page(
    db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None, done: str = ""
) -> Response:
    return open_page(db, "two-factor", sso, csrf_cookie, done)


@router.get("/delete")
def delete_page(
    db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Response:
    return open_page(db, "delete", sso, csrf_cookie)


# After an action that ended the browser's sign-in: no one is signed in to be shown more.


@router.get("/password-changed")
def password_changed_page(csrf_cookie: CsrfCookie = None) -> Response:
    return Page(csrf_cookie).html(
        "account/after.html",
        title="Password changed",
        message="Your password is changed, and every sign-in of yours ended, this one too. "
        "Sign in again with your new password.",
        sign_in_url=SIGN_IN_URL,
    )


@router.get("/deleted")
def deleted_page(csrf_cookie: CsrfCookie = None) -> Response:
    return Page(csrf_cookie).html(
        "account/after.html",
        title="Account deleted",
        message="Your account and every sign-in of yours are deleted.",
    )


# Profile.


def _change_account(
    posted: Posted,
    context: RequestContext,
    changes: dict[str, Any],
    current_password: str | None = None,
) -> Callable[[], object]:
    """accounts.change_account as PATCH /users/{id} calls it for its owner: this browser's
    sign-in is the caller's own, which a change of address keeps."""
    browser = posted.browser
    return lambda: accounts.change_account(
        posted.db,
        browser.user,
        browser.user.id,
        changes,
        versions=None,
        context=context,
        current_password=current_password,
        current_token_id=browser.sign_in_id,
    )


@router.post("/name")
def change_name(sent: SentForm, db: SessionDep, context: RequestContextDep) -> Response:
    """The display name (empty: none)."""
    posted = receive(db, sent, "profile")
    if not isinstance(posted, Posted):
        return posted
    values = {"display_name": posted.fields.get("display_name", "")}
    try:
        update = UserUpdate.model_validate({"display_name": values["display_name"] or None})
    except ValidationError as exc:
        message = f"Choose another name: {exc.errors()[0]['msg']}."
        return posted.invalid("profile", {"display_name": message}, values)
    action = _change_account(posted, context, update.changes())
    return posted.run("profile", action, back("profile", "name"), values=values)


@router.post("/email", dependencies=[HASHING_TURN])
def change_email(sent: SentForm, db: SessionDep, context: RequestContextDep) -> Response:
    """A new address, confirmed with the current password: the new address is mailed a link,
    the old one a way back, and the other sign-ins end."""
    posted = receive(db, sent, "profile")
    if not isinstance(posted, Posted):
        return posted
    values = {"email": posted.fields.get("email", "").strip()}
    password = posted.fields.get("current_password", "")
    errors = {} if password else {"current_password": ENTER_PASSWORD}
    try:
        update = UserUpdate.model_validate({"email": values["email"], "current_password": password})
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"] == ("email",):
                errors["email"] = "Enter an email address, like name@example.com."
            else:
                errors.setdefault("current_password", ENTER_PASSWORD)
    if errors:
        return posted.invalid("profile", errors, values)
    action = _change_account(posted, context, update.changes(), password)
    return posted.run("profile", action, back("profile", "email"), values=values)


@router.post("/verification")
def resend_verification(sent: SentForm, db: SessionDep) -> Response:
    """A new link to verify the address, as POST /auth/verify/resend (its throttle)."""
    posted = receive(db, sent, "profile")
    if not isinstance(posted, Posted):
        return posted
    user_id = posted.browser.user.id

    def resend() -> None:
        mail_links.resend_verification(db, users.lock_user(db, user_id))

    return posted.run("profile", resend, back("profile", "verification"))


# Password.


@router.post("/password", dependencies=[HASHING_TURN])
def change_password(sent: SentForm, db: SessionDep, context: RequestContextDep) -> Response:
    """As PUT /users/me/password: every sign-in ends, this browser's too."""
    posted = receive(db, sent, "password")
    if not isinstance(posted, Posted):
        return posted
    current = posted.fields.get("current_password", "")
    new = posted.fields.get("new_password", "")
    errors = {} if current else {"current_password": ENTER_PASSWORD}
    try:
        PasswordChange.model_validate({"current_password": current, "new_password": new})
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"] == ("new_password",):
                errors["new_password"] = "Choose a password of 8 to 128 characters."
            else:
                errors.setdefault("current_password", ENTER_PASSWORD)
    if errors:
        return posted.invalid("password", errors)
    user = posted.browser.user
    return posted.run(
        "password",
        lambda: accounts.change_password(db, user, current=current, new=new, context=context),
        lambda _: signed_out("/account/password-changed"),
    )


# Sign-ins.


@router.post("/sessions/{sign_in_id}/end")
def end_sign_in(
    sign_in_id: int, sent: SentForm, db: SessionDep, context: RequestContextDep
) -> Response:
    """One sign-in of the user's, as DELETE /users/me/sessions/{id}: only their own."""
    posted = receive(db, sent, "sessions")
    if not isinstance(posted, Posted):
        return posted
    user = posted.browser.user
    return posted.run(
        "sessions",
        lambda: accounts.end_sign_in(db, user, user.id, sign_in_id, context=context),
        back("sessions", "ended"),
    )


@router.post("/sessions/end-others")
def end_other_sign_ins(sent: SentForm, db: SessionDep, context: RequestContextDep) -> Response:
    """Every sign-in of the user but this browser's, as DELETE /users/me/sessions."""
    posted = receive(db, sent, "sessions")
    if not isinstance(posted, Posted):
        return posted
    browser = posted.browser
    return posted.run(
        "sessions",
        lambda: accounts.end_other_sign_ins(
            db, browser.user, browser.user.id, keep_token_id=browser.sign_in_id, context=context
        ),
        back("sessions", "others-ended"),
    )


# Two-factor.


def _enrolment_page(
    posted: Posted,
    enrolment: factors.Enrolment,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    return posted.show(
        "two-factor", template="totp_enrol", status=status, errors=errors, enrolment=enrolment
    )


def _codes_page(posted: Posted, codes: list[str], *, first: bool) -> HTMLResponse:
    return posted.show("two-factor", template="recovery_codes", codes=codes, first=first)


@router.post("/two-factor/start", dependencies=[HASHING_TURN])
def start_totp(sent: SentForm, db: SessionDep, context: RequestContextDep) -> Response:
    """A new authenticator's key (factors.begin_totp), shown once with the form that turns it
    on with a code."""
    posted = receive(db, sent, "two-factor")
    if not isinstance(posted, Posted):
        return posted
    password = posted.current_password("two-factor")
    if isinstance(password, HTMLResponse):
        return password
    user = posted.browser.user
    return posted.run(
        "two-factor",
        lambda: factors.begin_totp(db, user, current_password=password, context=context),
        lambda enrolment: _enrolment_page(posted, enrolment),
        enrolling=True,
    )


# The key and URI the enrolment page shows come back with its form, only to be shown again if
# the code is wrong: the key is stored sealed, and never read back out to be shown.
_SHOWN_MAX = 512


@router.post("/two-factor/confirm")
def confirm_totp(sent: SentForm, db: SessionDep, context: RequestContextDep) -> Response:
    """The code the app shows turns it on (factors.confirm_totp); the ten recovery codes,
    shown once."""
    posted = receive(db, sent, "two-factor")
    if not isinstance(posted, Posted):
        return posted
    shown = factors.Enrolment(
        posted.fields.get("secret", "")[:_SHOWN_MAX],
        posted.fields.get("otpauth_uri", "")[:_SHOWN_MAX],
    )
    code = posted.fields.get("code", "").replace(" ", "")
    try:
        TotpCodeIn.model_validate({"code": code})
    except ValidationError:
        errors = {"code": "Enter the 6 digits your authenticator app shows now."}
        return _enrolment_page(posted, shown, status=422, errors=errors)
    user = posted.browser.user
    try:
        codes = attempt(db, lambda: factors.confirm_totp(db, user, code=code, context=context))
    except factors.WrongCode as wrong:
        return _enrolment_page(posted, shown, status=400, errors={"code": str(wrong)})
    except (factors.NoEnrolment, factors.AlreadyEnrolled) as refused:
        return posted.refused("two-factor", refused)
    return _codes_page(posted, codes, first=True)


@router.post("/two-factor/recovery-codes", dependencies=[HASHING_TURN])
def new_recovery_codes(sent: SentForm, db: SessionDep, context: RequestContextDep) -> Response:
    """A new set of ten (factors.regenerate_recovery_codes): the old set stops working."""
    posted = receive(db, sent, "two-factor")
    if not isinstance(posted, Posted):
        return posted
    password = posted.current_password("two-factor")
    if isinstance(password, HTMLResponse):
        return password
    user = posted.browser.user
    return posted.run(
        "two-factor",
        lambda: factors.regenerate_recovery_codes(
            db, user, current_password=password, context=context
        ),
        lambda codes: _codes_page(posted, codes, first=False),
    )


@router.post("/two-factor/remove", dependencies=[HASHING_TURN])
def remove_totp(sent: SentForm, db: SessionDep, context: RequestContextDep) -> Response:
    """The authenticator app and its recovery codes, as DELETE /users/me/mfa/totp."""
    posted = receive(db, sent, "two-factor")
    if not isinstance(posted, Posted):
        return posted
    password = posted.current_password("two-factor")
    if isinstance(password, HTMLResponse):
        return password
    user = posted.browser.user
    return posted.run(
        "two-factor",
        lambda: factors.remove_totp(db, user, current_password=password, context=context),
        back("two-factor", "totp-removed"),
    )


# Deleting the account.


@router.post("/delete", dependencies=[HASHING_TURN])
def delete_account(sent: SentForm, db: SessionDep, context: RequestContextDep) -> Response:
    """The account, as DELETE /users/{id}, confirmed with the current password."""
    posted = receive(db, sent, "delete")
    if not isinstance(posted, Posted):
        return posted
    password = posted.current_password("delete")
    if isinstance(password, HTMLResponse):
        return password
    user = posted.browser.user
    return posted.run(
        "delete",
        lambda: accounts.delete_account(
            db, user, user.id, versions=None, context=context, current_password=password
        ),
        lambda _: signed_out("/account/deleted"),
    )
