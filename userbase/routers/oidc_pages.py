"""The OpenID Connect provider's browser side: the authorization endpoint, the hosted sign-in
and consent pages, and logout (the end_session endpoint). HTML forms, and one script for
passkeys (routers/passkey_pages.py); the decisions are userbase/oidc/'s, this module only
reads forms and cookies and answers."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Cookie, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from userbase import auth
from userbase.admission import HASHING_TURN
from userbase.config import get_settings
from userbase.database import SessionDep
from userbase.mfa import challenges, factors, passkeys
from userbase.mfa.factors import Status
from userbase.oidc import authorize as flow
from userbase.oidc import browser as browsers
from userbase.oidc import csrf, logout, templates
from userbase.oidc.browser import BrowserUser
from userbase.routers.auth import DEVICE_COOKIE
from userbase.routers.dependencies import RequestContextDep
from userbase.routers.hosted import BrowserCookie, CsrfCookie, FormPairs, Page, return_to, secure

router = APIRouter(prefix="/oauth", include_in_schema=False)

SIGN_IN_PATH = "/oauth/sign-in"
# Below SIGN_IN_PATH: the device cookie (path SIGN_IN_PATH) reaches it.
SECOND_FACTOR_PATH = "/oauth/sign-in/second-factor"
FORGOT_PASSWORD_PATH = "/oauth/forgot-password"
# "Sign in with a passkey" (routers/passkey_pages.py): the form's target; its CSRF token is
# the password form's (one page, one purpose).
PASSKEY_SIGN_IN_PATH = "/oauth/sign-in/passkey"
SIGN_IN_PURPOSE = "sign-in"
SECOND_FACTOR_PURPOSE = "second-factor"  # the second step's forms' CSRF purpose

DeviceCookie = Annotated[str | None, Cookie(alias=DEVICE_COOKIE)]


def query_pairs(request: Request) -> list[tuple[str, str]]:
    return request.query_params.multi_items()


def _sign_in_page(
    page: Page,
    pairs: list[tuple[str, str]],
    *,
    client_name: str = "",
    username: str = "",
    redirect_uri: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    query = f"?{urlencode(pairs)}" if pairs else ""
    return page.html(
        "sign_in.html",
        status=status,
        form_targets=(redirect_uri,) if redirect_uri else (),
        scripts=True,
        action=f"{SIGN_IN_PATH}{query}",
        csrf_token=page.token(SIGN_IN_PURPOSE),
        passkey_action=f"{PASSKEY_SIGN_IN_PATH}{query}",
        passkey_options_url=f"{PASSKEY_SIGN_IN_PATH}/options",
        client_name=client_name,
        username=username,
        error=error,
        forgot_password_url=FORGOT_PASSWORD_PATH,
        sign_up_url="/oauth/sign-up",
    )


def _answer(
    outcome: flow.Outcome,
    page: Page,
    pairs: list[tuple[str, str]],
    browser: BrowserUser | None,
    *,
    after_form: bool,
) -> Response:
    if isinstance(outcome, flow.ErrorPage):
        return page.error(outcome.status, outcome.message)
    if isinstance(outcome, flow.Redirect):
        # 303 after a form: the browser follows with a GET, never re-sending the form.
        response = RedirectResponse(outcome.location, status_code=303 if after_form else 302)
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    if isinstance(outcome, flow.SignInPage):
        return _sign_in_page(
            page,
            pairs,
            client_name=outcome.client_name,
            username=outcome.login_hint,
            redirect_uri=outcome.redirect_uri,
        )
    if browser is None:
        raise RuntimeError("consent is asked of a signed-in browser only")
    return page.html(
        "consent.html",
        form_targets=(outcome.redirect_uri,),
        action=f"/oauth/consent?{urlencode(pairs)}",
        csrf_token=page.token(f"consent:{browser.sign_in_id}"),
        client_name=outcome.client_name,
        permissions=outcome.permissions,
        username=browser.user.username,
    )


def _authorization(
    db: SessionDep,
    context: RequestContextDep,
    pairs: list[tuple[str, str]],
    sso: str | None,
    csrf_cookie: str | None,
) -> Response:
    browser = browsers.current(db, sso)
    outcome = flow.authorize(db, pairs, browser=browser, context=context)
    return _answer(outcome, Page(csrf_cookie), pairs, browser, after_form=False)


@router.get("/authorize")
def authorize(
    request: Request,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    return _authorization(db, context, query_pairs(request), sso, csrf_cookie)


@router.post("/authorize")
def authorize_posted(
    pairs: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    return _authorization(db, context, pairs, sso, csrf_cookie)


def answer_refused(
    page: Page,
    pairs: list[tuple[str, str]],
    refused: auth.SignInRefused | challenges.InvalidMfaToken | passkeys.PasskeyRejected,
    *,
    username: str = "",
) -> HTMLResponse:
    """The sign-in page again, saying why: 429 with Retry-After when throttled, 403 for an
    address not verified yet, else 401."""
    status = {auth.LoginThrottled: 429, auth.EmailNotVerified: 403}.get(type(refused), 401)
    refusal = _sign_in_page(page, pairs, username=username, error=str(refused), status=status)
    if isinstance(refused, auth.LoginThrottled):
        refusal.headers["Retry-After"] = str(refused.retry_after)
    return refusal


def _second_factor_page(
    page: Page,
    pairs: list[tuple[str, str]],
    *,
    mfa_token: str,
    factors: Status | None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The second step, asking for the factors the account has (`factors`; all of them when
    the waiting sign-in is not known here: a form whose CSRF token expired)."""
    query = f"?{urlencode(pairs)}" if pairs else ""
    return page.html(
        "second_factor.html",
        status=status,
        scripts=factors is None or factors.passkeys > 0,
        factors=factors,
        action=f"{SECOND_FACTOR_PATH}{query}",
        passkey_options_url=f"{SECOND_FACTOR_PATH}/passkey-options",
        csrf_token=page.token(SECOND_FACTOR_PURPOSE),
        mfa_token=mfa_token,
        error=error,
    )


@router.get("/sign-in")
def sign_in_page(
    request: Request, db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Response:
    """The sign-in page by itself (no application asking): the authorization request's
    page is the same form, reached through /oauth/authorize."""
    page = Page(csrf_cookie)
    pairs = query_pairs(request)
    browser = browsers.current(db, sso)
    if browser is not None:
        back = return_to(pairs)
        if back is not None:
            return RedirectResponse(back, status_code=302)
        if not pairs:
            return page.html(
                "signed_in.html", username=browser.user.username, logout_url="/oauth/logout"
            )
    return _sign_in_page(page, pairs)


@router.post("/sign-in", dependencies=[HASHING_TURN])
def sign_in(
    request: Request,
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
    device: DeviceCookie = None,
) -> Response:
    """The sign-in form: auth.sign_in's throttle, enumeration-safe errors and audit; then
    the authorization request it came with goes on (or the page says who is signed in)."""
    pairs = query_pairs(request)
    fields = dict(reversed(form))
    page = Page(csrf_cookie)
    username = fields.get("username", "").strip()
    if not csrf.is_valid(csrf_cookie, SIGN_IN_PURPOSE, fields.get(csrf.FIELD)):
        return _sign_in_page(
            page,
            pairs,
            username=username,
            error="This form expired. Enter your password again.",
            status=403,
        )
    try:
        made = browsers.sign_in_with_password(
            db,
            login=username,
            password=fields.get("password", ""),
            context=context,
            device_token=device,
            previous=browsers.current(db, sso),
        )
    except auth.SecondFactorRequired as waiting:
        # Answered, not raised: get_db commits the waiting sign-in.
        return _second_factor_page(
            page,
            pairs,
            mfa_token=waiting.mfa_token,
            factors=factors.status(db, waiting.user_id),
        )
    except auth.SignInRefused as refused:
        # Answered, not raised: get_db commits the failure count and the audit event.
        return answer_refused(page, pairs, refused, username=username)
    return answer_signed_in(db, context, page, pairs, made)


def answer_signed_in(
    db: SessionDep,
    context: RequestContextDep,
    page: Page,
    pairs: list[tuple[str, str]],
    made: browsers.NewBrowserSignIn,
) -> Response:
    """After the last step of a sign-in: its cookies, and the authorization request it came
    with goes on (or the page says who is signed in)."""
    browser = made.signed_in
    response: Response
    back = return_to(pairs)
    if back is not None:  # /account/ or /console/ sent the browser here
        response = RedirectResponse(back, status_code=303)
    elif pairs:
        outcome = flow.authorize(db, pairs, browser=browser, context=context, signed_in_now=True)
        response = _answer(outcome, page, pairs, browser, after_form=True)
    else:
        response = page.html(
            "signed_in.html", username=browser.user.username, logout_url="/oauth/logout"
        )
    response.set_cookie(
        browsers.COOKIE,
        made.cookie,
        max_age=made.max_age,
        path="/",
        secure=secure(),
        httponly=True,
        samesite="lax",
    )
    if made.device_token is not None:
        response.set_cookie(
            DEVICE_COOKIE,
            made.device_token,
            max_age=get_settings().device_cookie_days * 86400,
            path=SIGN_IN_PATH,
            secure=secure(),
            httponly=True,
            samesite="strict",
        )
    return response


@router.post("/sign-in/second-factor")
def sign_in_second_factor(
    request: Request,
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
    device: DeviceCookie = None,
) -> Response:
    """The sign-in's second step (docs/mfa.md): a code of the user's authenticator app, a
    passkey's answer (`credential`, from passkeys.js) or a recovery code, for the waiting
    sign-in the password step made."""
    pairs = query_pairs(request)
    fields = dict(reversed(form))
    page = Page(csrf_cookie)
    mfa_token = fields.get("mfa_token", "")
    if not csrf.is_valid(csrf_cookie, SECOND_FACTOR_PURPOSE, fields.get(csrf.FIELD)):
        error = "This form expired. Enter the code again."
        return _second_factor_page(
            page, pairs, mfa_token=mfa_token, factors=None, error=error, status=403
        )
    passkey = fields.get("credential") or None
    code = None if passkey else fields.get("code", "").replace(" ", "") or None
    recovery_code = None if code or passkey else fields.get("recovery_code", "").strip() or None
    try:
        made = browsers.sign_in_with_second_factor(
            db,
            mfa_token=mfa_token,
            code=code,
            recovery_code=recovery_code,
            passkey=passkey,
            context=context,
            device_token=device,
            previous=browsers.current(db, sso),
        )
    except (challenges.InvalidMfaToken, auth.LoginThrottled) as refused:
        # The waiting sign-in is over (spent, expired) or the account is throttled: back to
        # the password. Answered, not raised: get_db commits what the refusal counted.
        return answer_refused(page, pairs, refused)
    except challenges.WrongSecondFactor as wrong:
        return _second_factor_page(
            page,
            pairs,
            mfa_token=mfa_token,
            factors=factors.status(db, wrong.user_id),
            error=str(wrong),
            status=401,
        )
    return answer_signed_in(db, context, page, pairs, made)


@router.post("/consent")
def consent(
    request: Request,
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    pairs = query_pairs(request)
    fields = dict(reversed(form))
    page = Page(csrf_cookie)
    browser = browsers.current(db, sso)
    if browser is None:  # signed out meanwhile: the request starts over with the sign-in
        outcome = flow.authorize(db, pairs, browser=None, context=context)
        return _answer(outcome, page, pairs, None, after_form=True)
    purpose = f"consent:{browser.sign_in_id}"
    if not csrf.is_valid(csrf_cookie, purpose, fields.get(csrf.FIELD)):
        return page.error(403, "This form expired or was not sent from userbase's page.")
    decision = fields.get("decision") == "allow"
    outcome = flow.authorize(db, pairs, browser=browser, context=context, decision=decision)
    return _answer(outcome, page, pairs, browser, after_form=True)


def _end_session(
    db: SessionDep,
    context: RequestContextDep,
    pairs: list[tuple[str, str]],
    sso: str | None,
    csrf_cookie: str | None,
    *,
    confirmed: bool,
) -> Response:
    page = Page(csrf_cookie)
    try:
        asked = logout.check(db, pairs)
    except logout.LogoutRefused as refused:
        return page.error(400, str(refused), title="Cannot sign out from here")
    browser = browsers.current(db, sso)
    if browser is not None and not confirmed and not asked.confirmed_for(browser):
        return page.html(
            "logout.html",
            action=f"/oauth/logout?{urlencode(pairs)}",
            form_targets=(asked.return_to,) if asked.return_to else (),
            csrf_token=page.token(f"logout:{browser.sign_in_id}"),
            username=browser.user.username,
            client_name=asked.client.name if asked.client else "",
        )
    logout.log_out(db, asked, browser, context)
    if asked.return_to is not None:
        response: Response = RedirectResponse(asked.return_to, status_code=303)
    else:
        response = page.html("signed_out.html")
    response.delete_cookie(
        browsers.COOKIE, path="/", secure=secure(), httponly=True, samesite="lax"
    )
    return response


@router.get("/logout")
def end_session(
    request: Request,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """RP-initiated logout: signs out at once with an id_token_hint of the browser's user,
    else asks first."""
    return _end_session(db, context, query_pairs(request), sso, csrf_cookie, confirmed=False)


@router.post("/logout")
def end_session_posted(
    request: Request,
    form: FormPairs,
    db: SessionDep,
    context: RequestContextDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """The confirmation form (its parameters in the query), or a client's POSTed request."""
    fields = dict(reversed(form))
    if csrf.FIELD not in fields:  # a client POSTing the logout request itself
        return _end_session(db, context, form, sso, csrf_cookie, confirmed=False)
    browser = browsers.current(db, sso)
    purpose = f"logout:{browser.sign_in_id if browser else ''}"
    if browser is not None and not csrf.is_valid(csrf_cookie, purpose, fields[csrf.FIELD]):
        return Page(csrf_cookie).error(
            403, "This form expired or was not sent from userbase's page."
        )
    return _end_session(db, context, query_pairs(request), sso, csrf_cookie, confirmed=True)


@router.get(f"/{templates.STYLESHEET}")
def stylesheet() -> Response:
    return Response(
        templates.stylesheet(), media_type="text/css", headers={"Cache-Control": "no-cache"}
    )
