"""How a page of /account/ is shown, and how its forms are read and answered (the routes are
in console_account.py).

A form counts only from a signed-in browser with its sign-in's CSRF token. Its action is the
API's own domain function, run in a savepoint (console/attempts.py) and answered by a redirect
back to its page (POST-redirect-GET) or, refused, by the page again with the API's status and
the error at its field.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, RedirectResponse, Response

from userbase import auth, mail_links, sign_ins, users
from userbase.console import user_agents
from userbase.console.attempts import attempt
from userbase.mfa import factors
from userbase.oidc import browser as browsers
from userbase.oidc import csrf
from userbase.oidc.browser import BrowserUser
from userbase.routers.hosted import BrowserCookie, CsrfCookie, FormPairs, Page, secure
from userbase.schemas import CurrentPassword

SIGN_IN_URL = "/oauth/sign-in?return_to=/account/"
PASSKEYS_URL = "/account/passkeys"  # the passkeys' own pages

T = TypeVar("T")

# The pages of /account/ by name (their template: account/NAME.html).
PAGES = {
    "profile": "/account/",
    "password": "/account/password",
    "sessions": "/account/sessions",
    "two-factor": "/account/two-factor",
    "passkeys": PASSKEYS_URL,  # routers/passkey_pages.py
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
ENTER_PASSWORD = "Enter your current password."


def _purpose(browser: BrowserUser) -> str:
    """The CSRF tokens of /account/'s forms name the browser sign-in they were made for."""
    return f"account:{browser.sign_in_id}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "Not recorded"


def _context(db: Session, browser: BrowserUser, name: str) -> dict[str, Any]:
    """What a page shows besides its forms: the sign-ins, the second factors."""
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


def show(
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
    """The page `name` (or another `template` of its section): `errors` by field ("form":
    the whole form's), the `values` typed into it, what the last action did (`done`)."""
    shown: dict[str, Any] = {**page.signed_in(browser), **_context(db, browser, name), **context}
    return page.html(
        f"account/{template or name}.html",
        status=status,
        app="account",
        section=name,
        pages=PAGES,
        csrf_token=page.token(_purpose(browser)),
        errors=errors or {},
        values=values or {},
        done=_DONE.get(done or ""),
        **shown,
    )


def open_page(
    db: Session, name: str, sso: str | None, csrf_cookie: str | None, done: str | None = None
) -> Response:
    """A GET of a page: the sign-in page first for a signed-out browser."""
    browser = browsers.current(db, sso)
    if browser is None:
        return RedirectResponse(SIGN_IN_URL, status_code=303)
    return show(Page(csrf_cookie), db, browser, name, done=done)


@dataclass(frozen=True, slots=True)
class Sent:
    """A POSTed form's fields (the first of each name) and the browser's cookies."""

    fields: dict[str, str]
    sso: str | None
    csrf_cookie: str | None


async def _sent(form: FormPairs, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None) -> Sent:
    return Sent(dict(reversed(form)), sso, csrf_cookie)


SentForm = Annotated[Sent, Depends(_sent)]


@dataclass(frozen=True, slots=True)
class Posted:
    """A form of a signed-in browser with its sign-in's CSRF token, and the ways to answer."""

    db: Session
    page: Page
    browser: BrowserUser
    fields: dict[str, str]

    def show(self, name: str, **shown: Any) -> HTMLResponse:
        return show(self.page, self.db, self.browser, name, **shown)

    def invalid(
        self, name: str, errors: dict[str, str], values: dict[str, str] | None = None
    ) -> HTMLResponse:
        """The page again: what was typed cannot be right (422)."""
        return self.show(name, status=422, errors=errors, values=values)

    def refused(
        self, name: str, refused: Exception, *, values: dict[str, str] | None = None
    ) -> HTMLResponse:
        """The page again, with the API's status and the refusal at its field."""
        kind = next(kind for kind in _STATUS if isinstance(refused, kind))
        field = _FIELD.get(kind, "form")
        message = _SAYS.get(kind, str(refused))
        answer = self.show(name, status=_STATUS[kind], errors={field: message}, values=values)
        if isinstance(refused, auth.LoginThrottled | mail_links.RateLimited):
            answer.headers["Retry-After"] = str(refused.retry_after)
        return answer

    def run(
        self,
        name: str,
        action: Callable[[], T],
        answer: Callable[[T], Response],
        *,
        values: dict[str, str] | None = None,
        enrolling: bool = False,
    ) -> Response:
        """The action, and `answer` with its result; refused, the page again saying why.

        An admin who must have a second factor (USERBASE_REQUIRE_MFA_FOR_ADMINS) and has none
        may only set one up (`enrolling`), as over the API."""

        def checked() -> T:
            if not enrolling:
                factors.ensure_enrolled_if_required(self.db, self.browser.user)
            return action()

        try:
            result = attempt(self.db, checked)
        except _REFUSED as refused:
            return self.refused(name, refused, values=values)
        return answer(result)

    def current_password(self, name: str) -> str | HTMLResponse:
        """The form's current password, or the page again asking for it."""
        password = self.fields.get("current_password", "")
        try:
            CurrentPassword.model_validate({"current_password": password})
        except ValidationError:
            password = ""
        return password or self.invalid(name, {"current_password": ENTER_PASSWORD})


def receive(db: Session, sent: Sent, name: str) -> Posted | Response:
    """The signed-in browser's form, or the answer when there is none: to the sign-in page
    (signed out), or the page again, changing nothing (a CSRF token that is missing, wrong
    or another sign-in's: 403)."""
    browser = browsers.current(db, sent.sso)
    if browser is None:
        return RedirectResponse(SIGN_IN_URL, status_code=303)
    page = Page(sent.csrf_cookie)
    if not page.is_valid(_purpose(browser), sent.fields.get(csrf.FIELD)):
        return show(page, db, browser, name, status=403, errors={"form": _EXPIRED})
    return Posted(db, page, browser, sent.fields)


def back(name: str, done: str) -> Callable[[object], Response]:
    """The answer to a form that did its work: its page, saying so (POST-redirect-GET)."""
    return lambda _result: RedirectResponse(f"{PAGES[name]}?done={done}", status_code=303)


def signed_out(location: str) -> Response:
    """After an action that ended this browser's sign-in too: its cookie goes with it."""
    response = RedirectResponse(location, status_code=303)
    response.delete_cookie(
        browsers.COOKIE, path="/", secure=secure(), httponly=True, samesite="lax"
    )
    return response
