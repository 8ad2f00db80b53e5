"""The hosted sign-in page's two links: "Forgot your password?" and "Create an account".
Plain forms like the sign-in page; they carry the authorization request along (in their
URL), so a person who signs up goes back to signing in to the application that sent them."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.responses import HTMLResponse, Response

from userbase import accounts, mail_links
from userbase.admission import HASHING_TURN
from userbase.database import SessionDep
from userbase.oidc import csrf
from userbase.routers.dependencies import RequestContextDep
from userbase.routers.hosted import CsrfCookie, Page
from userbase.schemas import ForgotPassword, UserCreate

router = APIRouter(prefix="/oauth", include_in_schema=False)

_SIGN_UP_FIELDS = ("username", "email", "password")
_FIELD_NAMES = {"username": "Username", "email": "Email address", "password": "Password"}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


Form = Annotated[dict[str, str], Depends(_form)]


def _page(
    request: Request, csrf_cookie: str | None, template: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    page = Page(csrf_cookie)
    query = f"?{urlencode(request.query_params.multi_items())}" if request.query_params else ""
    return page.html(
        template,
        status=status,
        action=f"{request.url.path}{query}",
        sign_in_url=f"/oauth/authorize{query}" if query else "/oauth/sign-in",
        csrf_token=page.token(template),
        **context,
    )


@router.get("/forgot-password")
def forgot_password_page(request: Request, csrf_cookie: CsrfCookie = None) -> Response:
    return _page(request, csrf_cookie, "forgot_password.html", sent=False, error=None, email="")


@router.post("/forgot-password")
def forgot_password(
    request: Request,
    form: Form,
    db: SessionDep,
    context: RequestContextDep,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """The same answer whether or not the address has an account (mail_links.py)."""
    email = form.get("email", "").strip()
    page = "forgot_password.html"
    if not csrf.is_valid(csrf_cookie, page, form.get(csrf.FIELD)):
        error = "This form expired. Send it again."
        return _page(request, csrf_cookie, page, status=403, sent=False, error=error, email=email)
    try:
        address = ForgotPassword.model_validate({"email": email}).email
    except ValidationError:
        error = "Enter an email address, like name@example.com."
        return _page(request, csrf_cookie, page, status=422, sent=False, error=error, email=email)
    try:
        mail_links.request_password_reset(db, address, context)
    except mail_links.RateLimited as limited:
        response = _page(
            request, csrf_cookie, page, status=429, sent=False, error=str(limited), email=email
        )
        response.headers["Retry-After"] = str(limited.retry_after)
        return response
    return _page(request, csrf_cookie, page, sent=True, error=None, email=email)


@router.get("/sign-up")
def sign_up_page(request: Request, csrf_cookie: CsrfCookie = None) -> Response:
    return _page(request, csrf_cookie, "sign_up.html", errors={}, values={}, created=False)


@router.post("/sign-up", dependencies=[HASHING_TURN])
def sign_up(
    request: Request,
    form: Form,
    db: SessionDep,
    context: RequestContextDep,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """accounts.register, as POST /users/ calls it; each refusal shown at its field."""
    values = {name: form.get(name, "").strip() for name in ("username", "email")}
    page = "sign_up.html"
    errors: dict[str, str] = {}
    if not csrf.is_valid(csrf_cookie, page, form.get(csrf.FIELD)):
        errors["form"] = "This form expired. Send it again."
        return _page(request, csrf_cookie, page, status=403, errors=errors, values=values)
    try:
        body = UserCreate.model_validate({name: form.get(name, "") for name in _SIGN_UP_FIELDS})
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(field, f"{_FIELD_NAMES.get(field, field)}: {error['msg']}.")
        return _page(request, csrf_cookie, page, status=422, errors=errors, values=values)
    try:
        accounts.register(
            db,
            username=body.username,
            email=body.email,
            password=body.password,
            display_name=None,
            context=context,
        )
    except accounts.SignUpRefused as taken:  # answered, not raised: the count is kept
        errors[taken.field] = str(taken)
        return _page(request, csrf_cookie, page, status=409, errors=errors, values=values)
    except mail_links.RateLimited as limited:
        errors["form"] = str(limited)
        return _page(request, csrf_cookie, page, status=429, errors=errors, values=values)
    return _page(request, csrf_cookie, page, errors={}, values=values, created=True)
