"""Passkeys on the hosted pages (docs/mfa.md): /account/passkeys, where the browser's signed-in
user lists, adds and removes theirs; "Sign in with a passkey" on the sign-in page; a passkey
as the sign-in's second step; and passkeys.js, the pages' one script.

A WebAuthn ceremony is two requests: passkeys.js POSTs the form to an options URL here (JSON
in, as the form's fields; JSON out, or a problem+json), then sends the form with the
authenticator's answer. Both carry the form's CSRF token, and the options' challenge is bound
to the browser's CSRF cookie (or the waiting sign-in's mfa_token). The workflows are the API's
(factors.py, auth.py, browser.py)."""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from userbase import auth
from userbase.admission import HASHING_TURN
from userbase.database import SessionDep
from userbase.mfa import challenges, factors, passkeys
from userbase.oidc import browser as browsers
from userbase.oidc import csrf, templates
from userbase.oidc.browser import BrowserUser
from userbase.problem import problem
from userbase.routers.console_account_forms import PAGES, PASSKEYS_URL
from userbase.routers.dependencies import RequestContextDep
from userbase.routers.hosted import RETURN_TO, BrowserCookie, CsrfCookie, FormPairs, Page
from userbase.routers.oidc_pages import (
    PASSKEY_SIGN_IN_PATH,
    SECOND_FACTOR_PATH,
    SECOND_FACTOR_PURPOSE,
    SIGN_IN_PATH,
    SIGN_IN_PURPOSE,
    DeviceCookie,
    answer_refused,
    answer_signed_in,
    query_pairs,
)
from userbase.security import token_digest

router = APIRouter(include_in_schema=False)

_NOTICES = {"added": "Your passkey was added.", "removed": "The passkey was removed."}
# What a form of /account/passkeys answers on the page itself, and with which status.
_STATUS: dict[type[Exception], int] = {
    passkeys.PasskeyRejected: 400,
    passkeys.PasskeyExists: 409,
    passkeys.InvalidPasskeyName: 422,
    passkeys.PasskeyNotFound: 404,
    auth.WrongPassword: 403,
    auth.LoginThrottled: 429,
}
_PAGE_REFUSALS = tuple(_STATUS)


def _options(options: str) -> Response:
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


def _form_expired(request: Request) -> Response:
    return problem(403, "This form expired: load the page again.", instance=request.url.path)


def _binding(csrf_cookie: str | None) -> str:
    """What a page's challenge is bound to: this browser's CSRF cookie (checked valid)."""
    return token_digest(csrf_cookie or "")


@router.get(f"/oauth/{templates.PASSKEYS_SCRIPT}")
def passkeys_script() -> Response:
    return Response(
        templates.script(), media_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )


# Sign in with a passkey: no username, any discoverable credential of this RP.


@router.post(f"{PASSKEY_SIGN_IN_PATH}/options")
def passkey_sign_in_options(
    request: Request, form: FormPairs, db: SessionDep, csrf_cookie: CsrfCookie = None
) -> Response:
    fields = dict(reversed(form))
    if not csrf.is_valid(csrf_cookie, SIGN_IN_PURPOSE, fields.get(csrf.FIELD)):
        return _form_expired(request)
    return _options(auth.passkey_sign_in_options(db, binding=_binding(csrf_cookie)))


@router.post(PASSKEY_SIGN_IN_PATH)
def sign_in_with_passkey(
    request: Request,
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
    device: DeviceCookie = None,
) -> Response:
    """The sign-in page's passkey form: the authorization request it came with goes on."""
    pairs = query_pairs(request)
    fields = dict(reversed(form))
    page = Page(csrf_cookie)
    if not csrf.is_valid(csrf_cookie, SIGN_IN_PURPOSE, fields.get(csrf.FIELD)):
        refused = passkeys.PasskeyRejected("form expired")
        return answer_refused(page, pairs, refused)
    try:
        made = browsers.sign_in_with_passkey(
            db,
            credential=fields.get("credential", ""),
            binding=_binding(csrf_cookie),
            context=context,
            device_token=device,
            previous=browsers.current(db, sso),
        )
    except (passkeys.PasskeyRejected, auth.EmailNotVerified) as refused:
        # Answered, not raised: get_db commits the audit event and the spent challenge.
        return answer_refused(page, pairs, refused)
    return answer_signed_in(db, context, page, pairs, made)


# The sign-in's second step with a passkey: the options here, the answer goes to the
# second step's own form (oidc_pages.sign_in_second_factor).


@router.post(f"{SECOND_FACTOR_PATH}/passkey-options")
def second_factor_passkey_options(
    request: Request, form: FormPairs, db: SessionDep, csrf_cookie: CsrfCookie = None
) -> Response:
    fields = dict(reversed(form))
    if not csrf.is_valid(csrf_cookie, SECOND_FACTOR_PURPOSE, fields.get(csrf.FIELD)):
        return _form_expired(request)
    return _options(challenges.passkey_options(db, fields.get("mfa_token", ""), client_id=None))


# /account/passkeys: the signed-in browser's own passkeys.


def _purpose(browser: BrowserUser) -> str:
    return f"passkeys:{browser.sign_in_id}"


def _list_page(
    db: SessionDep,
    page: Page,
    browser: BrowserUser | None,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """The page of /account/ that lists the passkeys (account/layout.html, as its other pages);
    a signed-out browser goes to sign in first, and comes back."""
    if browser is None:
        return RedirectResponse(f"{SIGN_IN_PATH}?{RETURN_TO}={PASSKEYS_URL}", 303)
    shared: dict[str, Any] = page.signed_in(browser)
    return page.html(
        "account/passkeys.html",
        status=status,
        scripts=True,
        app="account",
        section="passkeys",
        pages=PAGES,
        passkeys=passkeys.list_passkeys(db, browser.user.id),
        action=PASSKEYS_URL,
        csrf_token=page.token(_purpose(browser)),
        done=notice,
        errors={"form": error} if error else {},
        **shared,
    )


def _done(notice: str) -> Response:
    # 303: the browser follows with a GET, and a reload sends nothing again.
    return RedirectResponse(f"{PASSKEYS_URL}?done={notice}", status_code=303)


@router.get(PASSKEYS_URL)
def account_passkeys(
    request: Request, db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Response:
    notice = _NOTICES.get(request.query_params.get("done", ""))
    return _list_page(db, Page(csrf_cookie), browsers.current(db, sso), notice=notice)


@router.post(f"{PASSKEYS_URL}/registration", dependencies=[HASHING_TURN])
def begin_registration(
    request: Request,
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """The options for navigator.credentials.create(), with the current password (as the
    API asks it): problem+json for a wrong one, which errors.py maps."""
    fields = dict(reversed(form))
    browser = browsers.current(db, sso)
    if browser is None:
        return problem(401, "Sign in first.", instance=request.url.path)
    if not csrf.is_valid(csrf_cookie, _purpose(browser), fields.get(csrf.FIELD)):
        return _form_expired(request)
    options = factors.begin_passkey(
        db,
        browser.user,
        current_password=fields.get("current_password", ""),
        binding=_binding(csrf_cookie),
        context=context,
    )
    return _options(options)


def _account_form(
    form: list[tuple[str, str]],
    db: SessionDep,
    sso: str | None,
    csrf_cookie: str | None,
    action: Callable[[BrowserUser, dict[str, str]], object],
    done: str,
) -> Response:
    """A form of /account/passkeys: its CSRF token, then `action`; a refusal is shown on the
    page (answered, not raised: get_db commits the audit event and the spent challenge)."""
    fields = dict(reversed(form))
    page = Page(csrf_cookie)
    browser = browsers.current(db, sso)
    if browser is None:
        return _list_page(db, page, None)
    if not csrf.is_valid(csrf_cookie, _purpose(browser), fields.get(csrf.FIELD)):
        return _list_page(db, page, browser, error="This form expired. Try again.", status=403)
    try:
        action(browser, fields)
    except _PAGE_REFUSALS as refused:
        return _list_page(db, page, browser, error=str(refused), status=_STATUS[type(refused)])
    return _done(done)


@router.post(PASSKEYS_URL)
def add_passkey(
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    def add(browser: BrowserUser, fields: dict[str, str]) -> None:
        factors.add_passkey(
            db,
            browser.user,
            fields.get("credential", ""),
            name=fields.get("name", ""),
            binding=_binding(csrf_cookie),
            context=context,
        )

    return _account_form(form, db, sso, csrf_cookie, add, "added")


@router.post(f"{PASSKEYS_URL}/{{passkey_id}}/delete", dependencies=[HASHING_TURN])
def remove_passkey(
    passkey_id: int,
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    def remove(browser: BrowserUser, fields: dict[str, str]) -> None:
        factors.remove_passkey(
            db,
            browser.user,
            passkey_id,
            current_password=fields.get("current_password", ""),
            context=context,
        )

    return _account_form(form, db, sso, csrf_cookie, remove, "removed")
