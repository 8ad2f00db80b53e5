"""The authorization endpoint's decision, for every way a browser reaches it: the request
itself, the sign-in page's form, the consent page's form. No HTTP here: the answer says what
to show or where to send the browser, and routers/oidc_pages.py does it.

An unknown client, or a redirect URI that is not registered exactly, is an error page and
never a redirect (RFC 6749 section 4.1.2.1): Authlib marks such errors with no redirect_uri.
Every redirect back to a client carries `iss` (RFC 9207), and `state` when one was sent.

`acr_values` naming ACR_MULTI_FACTOR is honoured as a requirement (Core 1.0 makes acr_values
voluntary; a client that asks for a second factor means it): a browser signed in with one
factor signs in again, and the account's second factor is asked for; an account without one
ends the request with `unmet_authentication_requirements` (OpenID Connect Unmet
Authentication Requirements 1.0). Other acr values are ignored.
"""

from dataclasses import dataclass

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidRequestError, OAuth2Error
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    LoginRequiredError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)
from sqlalchemy.orm import Session

from userbase.audit import RequestContext
from userbase.mfa import factors
from userbase.models import utcnow
from userbase.oidc import consent
from userbase.oidc.browser import ACR_MULTI_FACTOR, BrowserUser
from userbase.oidc.scopes import describe
from userbase.oidc.server import Request, Server
from userbase.tokens import access_tokens

AUTHORIZE_PATH = "/oauth/authorize"


class UnmetAuthenticationRequirements(OAuth2Error):  # type: ignore[misc]
    """The sign-in cannot meet the client's acr_values: the account has no second factor."""

    error = "unmet_authentication_requirements"


@dataclass(frozen=True, slots=True)
class ErrorPage:
    status: int
    message: str


@dataclass(frozen=True, slots=True)
class Redirect:
    location: str
    # Where the browser goes back to: the CSP of a form that leads there must allow it.
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class SignInPage:
    client_name: str
    login_hint: str
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class ConsentPage:
    client_name: str
    permissions: list[str]
    redirect_uri: str


Outcome = ErrorPage | Redirect | SignInPage | ConsentPage


def authorize(
    session: Session,
    pairs: list[tuple[str, str]],
    *,
    browser: BrowserUser | None,
    context: RequestContext,
    signed_in_now: bool = False,
    decision: bool | None = None,
) -> Outcome:
    """What the authorization request `pairs` leads to for this browser.

    `signed_in_now`: the sign-in page's form just signed the browser in (prompt=login and
    max_age are then met). `decision`: the consent page's answer, when it is one.
    """
    try:
        request = Request("GET", AUTHORIZE_PATH, pairs)
    except OAuth2Error as error:  # USERBASE_PUBLIC_URL is plain http on a public name
        return ErrorPage(500, str(error.description))
    server = Server(session, context, browser=browser)
    user = browser.user if browser is not None else None
    # Known once Authlib found it registered for the client: errors past that point go back
    # to the client.
    redirect_uri: str | None = None
    try:
        grant = server.get_consent_grant(request, end_user=user)
        redirect_uri = str(grant.redirect_uri)
        client = grant.request.client.row
        data = request.payload.data
        # Request objects are not supported (discovery says so): refused, never half-read
        # (Core 1.0 sections 6.1 and 6.2), so no parameter inside one is silently dropped.
        if "request" in data:
            raise RequestNotSupportedError()
        if "request_uri" in data:
            raise RequestURINotSupportedError()
        prompts = set(data.get("prompt", "").split())
        wants_mfa = ACR_MULTI_FACTOR in data.get("acr_values", "").split()
        if browser is None or (
            not signed_in_now
            and (
                _must_sign_in_again(browser, data, prompts)
                or (wants_mfa and _can_step_up(session, browser))
            )
        ):
            if "none" in prompts:
                raise LoginRequiredError()
            return SignInPage(client.name, data.get("login_hint", "")[:320], redirect_uri)
        if wants_mfa and not browser.multi_factor:
            raise UnmetAuthenticationRequirements(
                "A second factor was asked for (acr_values), and this account has none."
            )
        scope: str = grant.request.scope
        ask = not client.first_party and (
            "consent" in prompts or consent.needs_consent(session, browser.user.id, client, scope)
        )
        if ask and decision is None:
            if "none" in prompts:
                raise ConsentRequiredError()
            return ConsentPage(client.name, describe(scope), redirect_uri)
        if ask and decision is False:
            raise AccessDeniedError()
        if ask:
            consent.grant(session, browser.user.id, client, scope, context)
        _status, _body, headers = grant.create_authorization_response(redirect_uri, browser.user)
    except OAuth2Error as error:
        return _error(error, request, redirect_uri)
    except ValueError:
        # Authlib refuses to describe an error with characters RFC 6749 forbids in one
        # (a redirect URI with a quote in it): the request is malformed, said on a page.
        return ErrorPage(400, "The authorization request is malformed.")
    return Redirect(_with_issuer(dict(headers)["Location"]), redirect_uri)


def _can_step_up(session: Session, browser: BrowserUser) -> bool:
    """Signed in with one factor, by an account that has a second one."""
    return not browser.multi_factor and factors.has_second_factor(session, browser.user.id)


def _must_sign_in_again(browser: BrowserUser, data: dict[str, str], prompts: set[str]) -> bool:
    """prompt=login, or a sign-in older than max_age (Core 1.0 section 3.1.2.1)."""
    if "login" in prompts:
        return True
    max_age = data.get("max_age")
    if max_age is None:
        return False
    if not max_age.isdigit() or len(max_age) > 10:
        raise InvalidRequestError("max_age must be a number of seconds.")
    age = (utcnow() - browser.authenticated_at).total_seconds()
    return age > int(max_age)


def _error(error: OAuth2Error, request: Request, redirect_uri: str | None) -> Outcome:
    """An error for the client (a redirect, once its redirect URI was found registered)
    or, before that, for the person at the browser (a page)."""
    if error.redirect_uri is None:
        error.redirect_uri = redirect_uri
    if error.redirect_uri is None:
        return ErrorPage(400, str(error.description or error.error))
    error.state = request.payload.state
    _status, _body, headers = error()
    return Redirect(_with_issuer(dict(headers)["Location"]), error.redirect_uri)


def _with_issuer(location: str) -> str:
    return str(add_params_to_uri(location, [("iss", access_tokens.issuer())]))
