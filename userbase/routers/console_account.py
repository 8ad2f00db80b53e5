"""/account/: every user's own account in the browser (docs/console.md).

Each page is a GET; each action a plain form POSTed with a CSRF token bound to the browser
sign-in and run by the API's own domain function (accounts, mail_links, mfa.factors), in a
savepoint (console/attempts.py). It is answered by a redirect back to its page
(POST-redirect-GET) or, when refused, by the page again with the API's status and the error at
its field. What is shown once (a new authenticator's secret, recovery codes) is the POST's own
answer: it is stored nowhere to be shown again.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, RedirectResponse, Response

from userbase import accounts, auth, mail_links, sign_ins, users
from userbase.admission import HASHING_TURN
from userbase.audit import RequestContext
from userbase.console import user_agents
from userbase.console.attempts import attempt
from userbase.database import SessionDep
from userbase.mfa import factors
from userbase.oidc import browser as browsers
from userbase.oidc import csrf
from userbase.oidc.browser import BrowserUser
from userbase.routers.dependencies import RequestContextDep
from userbase.routers.hosted import BrowserCookie, CsrfCookie, FormPairs, Page, secure
from userbase.schemas import CurrentPassword, PasswordChange, TotpCodeIn, UserUpdate

router = APIRouter(prefix="/account", include_in_schema=False)

SIGN_IN_URL = "/oauth/sign-in?return_to=/account/"
PASSKEYS_URL = "/account/passkeys"  # the passkeys' own pages

T = TypeVar("T")

# The pages of /account/: their path and template (account/*.html).
_PAGES = {
    "profile": "/account/",
    "password": "/account/password",
    "sessions": "/account/sessions",
    "two-factor": "/account/two-factor",
    "delete": "/account/delete",
}

# What a page says after an action (`?done=...`): fixed texts, never the query's own words.
_DONE = {
    "name": "Your display name is saved.",
    "email": "Your address is changed. Follow the link mailed to it to verify it. Your old "
    "address was told, and your other sign-ins ended.",
    "verification": "A new verification link is on its way.",
    "ended": "That sign-in ended.",
    "others-ended": "Every other sign-in ended.",
    "totp-removed": "Your authenticator app is removed, and its recovery codes with it.",
}

# The API's status for each refusal of an action (errors.py's, which only the app imports).
_STATUS: dict[type[Exception], int] = {
    factors.WrongCode: 400,
    auth.WrongPassword: 403,
    factors.EnrolmentRequired: 403,
    sign_ins.SignInNotFound: 404,
    users.UserExists: 409,
    users.LastAdmin: 409,
    mail_links.AlreadyVerified: 409,
    factors.AlreadyEnrolled: 409,
    factors.NoEnrolment: 409,
    factors.NoSecondFactor: 409,
    auth.LoginThrottled: 429,
    mail_links.RateLimited: 429,
}
_REFUSED = tuple(_STATUS)
# The field a refusal is about (else the form as a whole).
_FIELD: dict[type[Exception], str] = {
    auth.WrongPassword: "current_password",
    auth.LoginThrottled: "current_password",
    users.UserExists: "email",
    factors.WrongCode: "code",
}
# The API's words for these name its paths; a page names its own.
_SAYS: dict[type[Exception], str] = {
    factors.EnrolmentRequired: "Admins must have a second factor: set up an authenticator app "
    "(Two-factor) before anything else.",
    factors.NoEnrolment: "No authenticator app is waiting to be confirmed: start again.",
    factors.AlreadyEnrolled: "An authenticator app is set up already: remove it first to set "
    "up another.",
    sign_ins.SignInNotFound: "That sign-in has ended already, or is not one of yours.",
}
_EXPIRED = "This form expired or was not sent from this page. Nothing changed: try again."


def _purpose(browser: BrowserUser) -> str:
    return f"account:{browser.sign_in_id}"


@dataclass(frozen=True, slots=True)
class _Posted:
    """A form POSTed by a signed-in browser with a valid CSRF token."""

    page: Page
    browser: BrowserUser
    fields: dict[str, str]


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "Not recorded"


def _context(db: Session, browser: BrowserUser, name: str) -> dict[str, Any]:
    """What a page shows besides the form: the sign-ins, the second factors."""
    if name == "sessions":
        return {
            "sign_ins": [
                {
                    "id": token.id,
                    "current": token.id == browser.sign_in_id,
                    "device": user_agents.describe(token.user_agent),
                    "user_agent": token.user_agent,
                    "kind": sign_ins.sign_in_kind(token),
                    "client": token.client.name if token.client else None,
                    "address": token.client_address or "Unknown",
                    "created_at": _when(token.created_at),
                    "last_used_at": _when(token.last_used_at),
                }
                for token in sign_ins.list_sign_ins(db, browser.user.id)
            ]
        }
    if name == "two-factor":
        return {"factors": factors.status(db, browser.user.id), "passkeys_url": PASSKEYS_URL}
    return {}


def _show(
    page: Page,
    db: Session,
    browser: BrowserUser,
    name: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    done: str | None = None,
    template: str | None = None,
    **context: Any,
) -> HTMLResponse:
    shown: dict[str, Any] = {**page.signed_in(browser), **_context(db, browser, name), **context}
    return page.html(
        f"account/{template or name}.html",
        status=status,
        app="account",
        section=name,
        pages=_PAGES,
        csrf_token=page.token(_purpose(browser)),
        errors=errors or {},
        values=values or {},
        done=_DONE.get(done or ""),
        **shown,
    )


def _get(
    db: Session, name: str, sso: str | None, csrf_cookie: str | None, done: str | None
) -> Response:
    browser = browsers.current(db, sso)
    if browser is None:
        return RedirectResponse(SIGN_IN_URL, status_code=303)
    return _show(Page(csrf_cookie), db, browser, name, done=done)


def _posted(
    db: Session, form: list[tuple[str, str]], sso: str | None, csrf_cookie: str | None, name: str
) -> _Posted | Response:
    """The signed-in browser's form, or the answer when there is none: to the sign-in page
    (signed out), or the page again, changing nothing (a CSRF token that is missing, wrong
    or another sign-in's)."""
    browser = browsers.current(db, sso)
    if browser is None:
        return RedirectResponse(SIGN_IN_URL, status_code=303)
    page = Page(csrf_cookie)
    fields = dict(reversed(form))
    if not page.is_valid(_purpose(browser), fields.get(csrf.FIELD)):
        return _show(page, db, browser, name, status=403, errors={"form": _EXPIRED})
    return _Posted(page, browser, fields)


def _refused(
    posted: _Posted,
    db: Session,
    name: str,
    refused: Exception,
    *,
    values: dict[str, str] | None = None,
    template: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """The page again, with the API's status and the refusal at its field."""
    kind = next(kind for kind in _STATUS if isinstance(refused, kind))
    field = _FIELD.get(kind, "form")
    answer = _show(
        posted.page,
        db,
        posted.browser,
        name,
        status=_STATUS[kind],
        errors={field: _SAYS.get(kind, str(refused))},
        values=values,
        template=template,
        **context,
    )
    if isinstance(refused, auth.LoginThrottled | mail_links.RateLimited):
        answer.headers["Retry-After"] = str(refused.retry_after)
    return answer


def _run(
    posted: _Posted,
    db: Session,
    name: str,
    action: Callable[[], T],
    answer: Callable[[T], Response],
    *,
    values: dict[str, str] | None = None,
    enrolling: bool = False,
) -> Response:
    """The action, and `answer` with its result; refused, the page again saying why.

    An admin who must have a second factor (USERBASE_REQUIRE_MFA_FOR_ADMINS) and has none may
    only set one up (`enrolling`), as over the API."""

    def checked() -> T:
        if not enrolling:
            factors.ensure_enrolled_if_required(db, posted.browser.user)
        return action()

    try:
        result = attempt(db, checked)
    except _REFUSED as refused:
        return _refused(posted, db, name, refused, values=values)
    return answer(result)


def _back(name: str, done: str) -> Callable[[object], Response]:
    return lambda _result: RedirectResponse(f"{_PAGES[name]}?done={done}", status_code=303)


def _invalid(
    posted: _Posted,
    db: Session,
    name: str,
    errors: dict[str, str],
    values: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    return _show(
        posted.page, db, posted.browser, name, status=422, errors=errors, values=values, **context
    )


def _signed_out(location: str) -> Response:
    """After an action that ended this browser's sign-in too: its cookie goes with it."""
    response = RedirectResponse(location, status_code=303)
    response.delete_cookie(
        browsers.COOKIE, path="/", secure=secure(), httponly=True, samesite="lax"
    )
    return response


# The pages.


@router.get("/")
def profile_page(
    db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None, done: str = ""
) -> Response:
    return _get(db, "profile", sso, csrf_cookie, done)


@router.get("/password")
def password_page(
    db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Response:
    return _get(db, "password", sso, csrf_cookie, None)


@router.get("/sessions")
def sessions_page(
    db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None, done: str = ""
) -> Response:
    return _get(db, "sessions", sso, csrf_cookie, done)


@router.get("/two-factor")
def two_factor_page(
    db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None, done: str = ""
) -> Response:
    return _get(db, "two-factor", sso, csrf_cookie, done)


@router.get("/delete")
def delete_page(
    db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Response:
    return _get(db, "delete", sso, csrf_cookie, None)


_AFTER = {
    "password-changed": (
        "Password changed",
        "Your password is changed, and every sign-in of yours ended, this one too. Sign in "
        "again with your new password.",
    ),
    "deleted": ("Account deleted", "Your account and every sign-in of yours are deleted."),
}


@router.get("/password-changed")
def password_changed_page(csrf_cookie: CsrfCookie = None) -> Response:
    title, message = _AFTER["password-changed"]
    return Page(csrf_cookie).html(
        "account/after.html", title=title, message=message, sign_in_url=SIGN_IN_URL
    )


@router.get("/deleted")
def deleted_page(csrf_cookie: CsrfCookie = None) -> Response:
    title, message = _AFTER["deleted"]
    return Page(csrf_cookie).html("account/after.html", title=title, message=message)


# The actions.


def _change_account(
    db: Session,
    posted: _Posted,
    context: RequestContext,
    changes: dict[str, Any],
    current_password: str | None = None,
) -> Callable[[], object]:
    browser = posted.browser
    return lambda: accounts.change_account(
        db,
        browser.user,
        browser.user.id,
        changes,
        versions=None,
        context=context,
        current_password=current_password,
        current_token_id=browser.sign_in_id,
    )


def _first_message(exc: ValidationError) -> str:
    return str(exc.errors()[0]["msg"])


@router.post("/name")
def change_name(
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """The display name (empty: none), as PATCH /users/{id} changes it."""
    posted = _posted(db, form, sso, csrf_cookie, "profile")
    if not isinstance(posted, _Posted):
        return posted
    values = {"display_name": posted.fields.get("display_name", "")}
    try:
        update = UserUpdate.model_validate({"display_name": values["display_name"] or None})
    except ValidationError as exc:
        message = f"Choose another name: {_first_message(exc)}."
        return _invalid(posted, db, "profile", {"display_name": message}, values)
    action = _change_account(db, posted, context, update.changes())
    return _run(posted, db, "profile", action, _back("profile", "name"), values=values)


@router.post("/email", dependencies=[HASHING_TURN])
def change_email(
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """A new address, confirmed with the current password (accounts.change_account: the new
    address is mailed a link, the old one a way back, and the other sign-ins end)."""
    posted = _posted(db, form, sso, csrf_cookie, "profile")
    if not isinstance(posted, _Posted):
        return posted
    values = {"email": posted.fields.get("email", "").strip()}
    password = posted.fields.get("current_password", "")
    errors = {}
    if not password:
        errors["current_password"] = "Enter your current password."
    try:
        update = UserUpdate.model_validate({"email": values["email"], "current_password": password})
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"] == ("email",):
                errors["email"] = "Enter an email address, like name@example.com."
            else:
                errors.setdefault("current_password", "Enter your current password.")
    if errors:
        return _invalid(posted, db, "profile", errors, values)
    action = _change_account(db, posted, context, update.changes(), password)
    return _run(posted, db, "profile", action, _back("profile", "email"), values=values)


@router.post("/verification")
def resend_verification(
    form: FormPairs, db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Response:
    """A new link to verify the address, as POST /auth/verify/resend (its throttle)."""
    posted = _posted(db, form, sso, csrf_cookie, "profile")
    if not isinstance(posted, _Posted):
        return posted
    user_id = posted.browser.user.id

    def resend() -> None:
        mail_links.resend_verification(db, users.lock_user(db, user_id))

    return _run(posted, db, "profile", resend, _back("profile", "verification"))


@router.post("/password", dependencies=[HASHING_TURN])
def change_password(
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """As PUT /users/me/password: every sign-in ends, this browser's too."""
    posted = _posted(db, form, sso, csrf_cookie, "password")
    if not isinstance(posted, _Posted):
        return posted
    current = posted.fields.get("current_password", "")
    new = posted.fields.get("new_password", "")
    errors = {}
    if not current:
        errors["current_password"] = "Enter your current password."
    try:
        PasswordChange.model_validate({"current_password": current, "new_password": new})
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"] == ("new_password",):
                errors["new_password"] = "Choose a password of 8 to 128 characters."
            else:
                errors.setdefault("current_password", "Enter your current password.")
    if errors:
        return _invalid(posted, db, "password", errors)
    user = posted.browser.user
    return _run(
        posted,
        db,
        "password",
        lambda: accounts.change_password(db, user, current=current, new=new, context=context),
        lambda _: _signed_out("/account/password-changed"),
    )


@router.post("/sessions/{sign_in_id}/end")
def end_sign_in(
    sign_in_id: int,
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """One sign-in of the user's, as DELETE /users/me/sessions/{id}: only their own."""
    posted = _posted(db, form, sso, csrf_cookie, "sessions")
    if not isinstance(posted, _Posted):
        return posted
    user = posted.browser.user
    return _run(
        posted,
        db,
        "sessions",
        lambda: accounts.end_sign_in(db, user, user.id, sign_in_id, context=context),
        _back("sessions", "ended"),
    )


@router.post("/sessions/end-others")
def end_other_sign_ins(
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """Every sign-in of the user but this browser's, as DELETE /users/me/sessions."""
    posted = _posted(db, form, sso, csrf_cookie, "sessions")
    if not isinstance(posted, _Posted):
        return posted
    browser = posted.browser
    return _run(
        posted,
        db,
        "sessions",
        lambda: accounts.end_other_sign_ins(
            db, browser.user, browser.user.id, keep_token_id=browser.sign_in_id, context=context
        ),
        _back("sessions", "others-ended"),
    )


def _current_password(posted: _Posted, db: Session, name: str) -> str | HTMLResponse:
    """The form's current password, or the page again asking for it."""
    password = posted.fields.get("current_password", "")
    try:
        CurrentPassword.model_validate({"current_password": password})
    except ValidationError:
        password = ""
    if not password:
        return _invalid(posted, db, name, {"current_password": "Enter your current password."})
    return password


@router.post("/two-factor/start", dependencies=[HASHING_TURN])
def start_totp(
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """A new authenticator's secret (factors.begin_totp), shown once with the form that
    confirms it with a code."""
    posted = _posted(db, form, sso, csrf_cookie, "two-factor")
    if not isinstance(posted, _Posted):
        return posted
    password = _current_password(posted, db, "two-factor")
    if isinstance(password, HTMLResponse):
        return password
    user = posted.browser.user
    return _run(
        posted,
        db,
        "two-factor",
        lambda: factors.begin_totp(db, user, current_password=password, context=context),
        lambda enrolment: _enrolment_page(posted, db, enrolment),
        enrolling=True,
    )


def _enrolment_page(
    posted: _Posted,
    db: Session,
    enrolment: factors.Enrolment,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    return _show(
        posted.page,
        db,
        posted.browser,
        "two-factor",
        template="totp_enrol",
        status=status,
        errors=errors,
        enrolment=enrolment,
    )


# The secret and URI the enrolment page shows come back with its form, to be shown again if
# the code is wrong (the secret is stored sealed, and never read back out to be shown).
_SHOWN_MAX = 512


@router.post("/two-factor/confirm")
def confirm_totp(
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """The code the app shows activates it (factors.confirm_totp); the ten recovery codes,
    shown once."""
    posted = _posted(db, form, sso, csrf_cookie, "two-factor")
    if not isinstance(posted, _Posted):
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
        return _enrolment_page(posted, db, shown, status=422, errors=errors)
    user = posted.browser.user
    try:
        codes = attempt(db, lambda: factors.confirm_totp(db, user, code=code, context=context))
    except factors.WrongCode as wrong:
        return _enrolment_page(posted, db, shown, status=400, errors={"code": str(wrong)})
    except (factors.NoEnrolment, factors.AlreadyEnrolled) as refused:
        return _refused(posted, db, "two-factor", refused)
    return _codes_page(posted, db, codes, first=True)


def _codes_page(posted: _Posted, db: Session, codes: list[str], *, first: bool) -> HTMLResponse:
    return _show(
        posted.page,
        db,
        posted.browser,
        "two-factor",
        template="recovery_codes",
        codes=codes,
        first=first,
    )


@router.post("/two-factor/recovery-codes", dependencies=[HASHING_TURN])
def new_recovery_codes(
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """A new set of ten (factors.regenerate_recovery_codes): the old set stops working."""
    posted = _posted(db, form, sso, csrf_cookie, "two-factor")
    if not isinstance(posted, _Posted):
        return posted
    password = _current_password(posted, db, "two-factor")
    if isinstance(password, HTMLResponse):
        return password
    user = posted.browser.user
    return _run(
        posted,
        db,
        "two-factor",
        lambda: factors.regenerate_recovery_codes(
            db, user, current_password=password, context=context
        ),
        lambda codes: _codes_page(posted, db, codes, first=False),
    )


@router.post("/two-factor/remove", dependencies=[HASHING_TURN])
def remove_totp(
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """The authenticator app and its recovery codes, as DELETE /users/me/mfa/totp."""
    posted = _posted(db, form, sso, csrf_cookie, "two-factor")
    if not isinstance(posted, _Posted):
        return posted
    password = _current_password(posted, db, "two-factor")
    if isinstance(password, HTMLResponse):
        return password
    user = posted.browser.user
    return _run(
        posted,
        db,
        "two-factor",
        lambda: factors.remove_totp(db, user, current_password=password, context=context),
        _back("two-factor", "totp-removed"),
    )


@router.post("/delete", dependencies=[HASHING_TURN])
def delete_account(
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """The account, as DELETE /users/{id}, confirmed with the current password."""
    posted = _posted(db, form, sso, csrf_cookie, "delete")
    if not isinstance(posted, _Posted):
        return posted
    password = _current_password(posted, db, "delete")
    if isinstance(password, HTMLResponse):
        return password
    user = posted.browser.user
    return _run(
        posted,
        db,
        "delete",
        lambda: accounts.delete_account(
            db, user, user.id, versions=None, context=context, current_password=password
        ),
        lambda _: _signed_out("/account/deleted"),
    )
