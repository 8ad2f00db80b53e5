"""The one place where exceptions become error responses (RFC 9457 problem+json, problem.py).

app.py installs these handlers; the rest of userbase raises its exceptions (domain ones stay in
the domain) and builds a problem response, when it answers one itself, with problem.py.
"""

import logging
import re
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from userbase import accounts, auth, mail_links, sign_ins, users
from userbase.admission import HashingBusy
from userbase.db_errors import is_database_unavailable
from userbase.logs import request_id_var
from userbase.mfa import challenges, factors, passkeys
from userbase.oidc.consent import ConsentNotFound
from userbase.permissions import Forbidden
from userbase.problem import RETRY_AFTER_SECONDS, ProblemResponse, problem
from userbase.responses import dumps
from userbase.security_headers import EVERY_RESPONSE
from userbase.throttle import StoreUnavailable
from userbase.tokens.oauth_errors import (
    ClientNotFound,
    InvalidClient,
    InvalidClientSettings,
    OAuthError,
    PublicClientHasNoSecret,
)

logger = logging.getLogger("userbase.errors")


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only where and why: the rejected input is never echoed (it may be a password).
    errors = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            # FastAPI puts the character offset in loc; it is not a field.
            loc = ["body"]
        errors.append(
            {
                "loc": loc,
                "field": ".".join(str(part) for part in loc[1:]) or None,
                "type": error.get("type"),
                "msg": error.get("msg"),
            }
        )
    return errors


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method the API offers at this path, as its OpenAPI document says.

    A path the document names literally (/users/me, /users/batch) is that resource alone: the
    /users/{user_id} operations match it by shape but would refuse "me" as an id. Paths left
    out of the document (/users without its slash) fall back to asking the router.
    """
    paths = request.app.openapi()["paths"]
    path = request.url.path
    operations = paths.get(path)
    if operations is None:
        matching = [ops for template, ops in paths.items() if _template(template).fullmatch(path)]
        operations = {method: None for ops in matching for method in ops}
    if operations:
        return ", ".join(m for m in _METHODS if m.lower() in operations)
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    )


@lru_cache(maxsize=256)
def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)))


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


async def _on_http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem(exc.status_code, detail, instance=request.url.path, headers=headers)


async def _on_validation_error(request: Request, exc: RequestValidationError) -> Response:
    literal = request.app.openapi()["paths"].get(request.url.path)
    if literal is not None and request.method.lower() not in literal:
        # GET /users/batch reached GET /users/{user_id} by shape only: "batch" is a resource
        # of its own, and it has no GET.
        return problem(
            405,
            HTTPStatus(405).phrase,
            instance=request.url.path,
            headers={"Allow": _allowed_methods(request)},
        )
    errors = _validation_errors(exc)
    body_unreadable = any(e["loc"] == ["body"] for e in errors)
    if body_unreadable and request.headers.get("content-type") and not _is_json(request):
        return problem(415, "Send the body as application/json.", instance=request.url.path)
    if any(e["type"] == "json_invalid" for e in errors):
        return problem(422, "The body is not valid JSON.", instance=request.url.path, errors=errors)
    fields = ", ".join(sorted({e["field"] or e["loc"][0] for e in errors}))
    return problem(
        422, f"Invalid request: check {fields}.", instance=request.url.path, errors=errors
    )


# Domain exceptions and their status; the exception's message is the problem's detail.
_STATUS_OF: dict[type[Exception], int] = {
    mail_links.InvalidActionToken: 400,
    factors.WrongCode: 400,
    passkeys.PasskeyRejected: 400,
    auth.InvalidCredentials: 401,
    auth.NotAuthenticated: 401,
    challenges.SecondFactorRequired: 401,
    challenges.InvalidMfaToken: 401,
    challenges.WrongSecondFactor: 401,
    Forbidden: 403,
    auth.WrongPassword: 403,
    auth.PasswordConfirmationRequired: 403,
    auth.EmailNotVerified: 403,
    factors.EnrolmentRequired: 403,
    users.UserNotFound: 404,
    ClientNotFound: 404,
    sign_ins.SignInNotFound: 404,
    ConsentNotFound: 404,
    passkeys.PasskeyNotFound: 404,
    users.UserExists: 409,
    PublicClientHasNoSecret: 409,
    users.LastAdmin: 409,
    accounts.EmailMismatch: 409,
    mail_links.AlreadyVerified: 409,
    factors.AlreadyEnrolled: 409,
    factors.NoEnrolment: 409,
    factors.NoSecondFactor: 409,
    passkeys.PasskeyExists: 409,
    users.StaleVersion: 412,
    InvalidClientSettings: 422,
    passkeys.InvalidPasskeyName: 422,
    auth.LoginThrottled: 429,
    mail_links.RateLimited: 429,
}


def problem_response(request: Request, exc: Exception) -> ProblemResponse:
    """The problem document for a domain exception (see _STATUS_OF)."""
    status = next(code for kind, code in _STATUS_OF.items() if isinstance(exc, kind))
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"  # RFC 6750: say which scheme would work
    if isinstance(exc, auth.LoginThrottled | mail_links.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return problem(
        status, str(exc), instance=request.url.path, headers=headers, extensions=_members(exc)
    )


def _members(exc: Exception) -> dict[str, Any] | None:
    """The problem's own members (RFC 9457 section 3.2) that a client acts on."""
    if isinstance(exc, challenges.SecondFactorRequired):
        return {"mfa_required": True, "mfa_token": exc.mfa_token, "expires_in": exc.expires_in}
    if isinstance(exc, challenges.WrongSecondFactor):
        return {"attempts_left": exc.attempts_left}
    if isinstance(exc, factors.EnrolmentRequired):
        return {"mfa_enrolment_required": True}
    return None


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    return problem_response(request, exc)


async def _on_stale_data(request: Request, exc: Exception) -> Response:
    # The version column did not match at UPDATE time: someone changed the row meanwhile.
    return problem_response(request, users.StaleVersion())


async def _on_database_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("database unavailable: %s", type(exc).__name__)
    return _try_again_shortly(request, "The database is unavailable; try again shortly.")


async def _on_hashing_busy(request: Request, exc: Exception) -> Response:
    logger.warning("busy: %s", exc)
    return _try_again_shortly(request, "The service is busy checking passwords; try again shortly.")


def _try_again_shortly(request: Request, detail: str) -> Response:
    return problem(
        503, detail, instance=request.url.path, headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


async def _on_database_error(request: Request, exc: Exception) -> Response:
    if is_database_unavailable(exc):
        return await _on_database_unavailable(request, exc)
    # A bug (bad SQL, a broken constraint we did not expect): the traceback goes to the log.
    logger.error("database error on %s", request.url.path, exc_info=exc)
    return await _on_unexpected(request, exc)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware re-raises after this, so the server logs the traceback;
    # the client gets no details. It runs outside the request-id middleware, so the id is added
    # here: the client can quote it, and the log lines of the failed request carry it. So are
    # the headers every response carries.
    request_id = request_id_var.get()
    headers = {**EVERY_RESPONSE, "X-Request-ID": request_id} if request_id else EVERY_RESPONSE
    return problem(500, "An unexpected error occurred.", instance=request.url.path, headers=headers)


async def _on_oauth_error(request: Request, exc: OAuthError) -> Response:
    # OAuth's endpoints answer as RFC 6749 section 5.2 says: what OAuth libraries parse.
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if isinstance(exc, InvalidClient):
        headers["WWW-Authenticate"] = 'Basic realm="userbase"'
    body = {"error": exc.error, "error_description": exc.description, **exc.parameters()}
    return Response(
        dumps(body), status_code=exc.status, headers=headers, media_type="application/json"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    for kind in _STATUS_OF:
        app.add_exception_handler(kind, _on_domain_error)
    app.add_exception_handler(OAuthError, _on_oauth_error)  # type: ignore[arg-type]
    app.add_exception_handler(StaleDataError, _on_stale_data)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(PoolTimeoutError, _on_database_unavailable)
    app.add_exception_handler(HashingBusy, _on_hashing_busy)
    # Redis (the optional throttle store) down or slow: the same answer, try again shortly.
    app.add_exception_handler(StoreUnavailable, _on_database_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)
