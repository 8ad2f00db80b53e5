"""What every hosted page shares (the sign-in, sign-up and consent pages, /account/ and
/console/): the page being answered with its CSRF cookie, a form's fields, the cookies they
read, and where a sign-in may send the browser back to."""

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Cookie, Depends, Request
from starlette.responses import HTMLResponse, Response

from userbase import console
from userbase.config import get_settings
from userbase.oidc import browser as browsers
from userbase.oidc import csrf, templates
from userbase.oidc.browser import BrowserUser

# The console's static files (its stylesheet and scripts), from the package.
router = APIRouter(include_in_schema=False)

BrowserCookie = Annotated[str | None, Cookie(alias=browsers.COOKIE)]
CsrfCookie = Annotated[str | None, Cookie(alias=csrf.CSRF_COOKIE)]

# `/oauth/sign-in?return_to=/account/`: after signing in, the browser goes back to that page.
# Only paths below these prefixes are followed (no open redirect: never another origin).
RETURN_TO = "return_to"
RETURN_PREFIXES = ("/account/", "/console/")


async def _form_pairs(request: Request) -> list[tuple[str, str]]:
    """Every field of a form body, in order (an authorization request may be POSTed)."""
    form = await request.form()
    return [(key, value) for key, value in form.multi_items() if isinstance(value, str)]


FormPairs = Annotated[list[tuple[str, str]], Depends(_form_pairs)]


def secure() -> bool:
    """Cookies get the Secure flag when userbase is served over https."""
    return get_settings().public_url.startswith("https://")


def return_to(pairs: list[tuple[str, str]]) -> str | None:
    """The page of this server a sign-in came from, when the query is exactly a valid
    `return_to`; else None (an authorization request, or nothing)."""
    if len(pairs) != 1 or pairs[0][0] != RETURN_TO:
        return None
    path = pairs[0][1]
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or "\\" in path or not path.isprintable():
        return None
    return path if path.startswith(RETURN_PREFIXES) else None


class Page:
    """A page being answered, with the CSRF cookie it needs (made when the browser has none)."""

    def __init__(self, csrf_cookie: str | None) -> None:
        self.csrf_cookie = csrf_cookie or csrf.new_cookie()
        self.new_cookie = csrf_cookie is None

    def token(self, purpose: str) -> str:
        return csrf.form_token(self.csrf_cookie, purpose)

    def is_valid(self, purpose: str, token: str | None) -> bool:
        """The form's CSRF token is this browser's for this purpose (a new cookie never is)."""
        return not self.new_cookie and csrf.is_valid(self.csrf_cookie, purpose, token)

    def html(
        self,
        template: str,
        *,
        status: int = 200,
        form_targets: tuple[str, ...] = (),
        scripts: bool = False,
        **context: object,
    ) -> HTMLResponse:
        response = HTMLResponse(
            templates.render(template, **context),
            status_code=status,
            headers=templates.headers(form_targets, scripts=scripts),
        )
        if self.new_cookie:
            response.set_cookie(
                csrf.CSRF_COOKIE,
                self.csrf_cookie,
                path="/",
                secure=secure(),
                httponly=True,
                samesite="lax",
            )
        return response

    def error(self, status: int, message: str, title: str = "Something went wrong") -> HTMLResponse:
        return self.html("error.html", status=status, title=title, message=message)

    def signed_in(self, browser: BrowserUser) -> dict[str, object]:
        """What console_base.html's header needs: who is signed in and the sign-out form's
        token (the logout page's purpose, bound to this sign-in)."""
        return {
            "signed_in": browser.user,
            "logout_csrf_token": self.token(f"logout:{browser.sign_in_id}"),
        }


@router.get(f"{console.STATIC_PATH}/{{name}}")
def static_file(name: str) -> Response:
    found = console.static_file(name)
    if found is None:
        return Response(status_code=404)
    media_type = console.MEDIA_TYPES[name.rsplit(".", 1)[1]]
    return Response(
        found.read_bytes(), media_type=media_type, headers={"Cache-Control": "no-cache"}
    )
