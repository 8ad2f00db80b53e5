"""/console/: the admins' console (docs/console.md). Server-rendered pages over the same domain
functions as the API, so each action is checked and audited as it is there; plain forms,
POST then redirect to a GET, a CSRF token bound to the browser sign-in on every form.

Every request reads the browser sign-in and its account afresh (oidc/browser.py): an admin
demoted or deactivated meanwhile is kept out at their next click. Here: who gets in (Entered,
EnteredForm), the users' pages and the audit trail; the clients' pages are console_clients.py.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from userbase import accounts, audit, auth, mail_links, sign_ins, users
from userbase.audit import EventKind
from userbase.console import attempts, search_form, user_actions, user_agents
from userbase.database import SessionDep
from userbase.mfa import factors
from userbase.oidc import browser as browsers
from userbase.oidc import csrf
from userbase.oidc.browser import BrowserUser
from userbase.permissions import Forbidden
from userbase.routers.dependencies import RequestContextDep
from userbase.routers.hosted import RETURN_TO, BrowserCookie, CsrfCookie, FormPairs, Page
from userbase.tokens.oauth_errors import ClientNotFound, PublicClientHasNoSecret

router = APIRouter(prefix="/console", include_in_schema=False)

USERS_PAGE = 50
EVENTS_PAGE = 50
RECENT_EVENTS = 10

# Domain refusals a form may meet, and the status of the page that tells them.
_REFUSED: dict[type[Exception], int] = {
    Forbidden: 403,
    users.UserNotFound: 404,
    sign_ins.SignInNotFound: 404,
    ClientNotFound: 404,
    users.LastAdmin: 409,
    users.StaleVersion: 409,
    accounts.AccountInactive: 409,
    PublicClientHasNoSecret: 409,
    mail_links.RateLimited: 429,
}
_REFUSALS = tuple(_REFUSED)


@dataclass(frozen=True, slots=True)
class Console:
    """A request of a signed-in admin: who, and the page being answered."""

    browser: BrowserUser
    page: Page

    @property
    def purpose(self) -> str:
        # Bound to the browser sign-in: a token of another sign-in (or of a page before
        # signing in again) serves no form here.
        return f"console:{self.browser.sign_in_id}"

    def html(
        self, template: str, *, status: int = 200, scripts: bool = False, **context: Any
    ) -> HTMLResponse:
        shared: dict[str, Any] = self.page.signed_in(self.browser)
        return self.page.html(
            template,
            status=status,
            scripts=scripts,
            app="console",
            csrf_token=self.page.token(self.purpose),
            **shared,
            **context,
        )


def _enter(
    request: Request, db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Console | Response:
    """The Console of a signed-in admin, else the answer: a redirect to sign in (back here
    afterwards), or a 403 page that shows nothing of anyone else."""
    page = Page(csrf_cookie)
    browser = browsers.current(db, sso)
    if browser is None:
        back = request.url.path if request.method == "GET" else "/console/"
        if request.method == "GET" and request.url.query:
            back = f"{back}?{request.url.query}"
        return RedirectResponse(f"/oauth/sign-in?{urlencode({RETURN_TO: back})}", 303)
    reason = None
    if not browser.user.is_admin:
        reason = "The console is for admins, and this account is not one."
    else:
        try:
            factors.ensure_enrolled_if_required(db, browser.user)
        except factors.EnrolmentRequired:
            reason = "Admins must have a second factor here: enrol one on your account page."
    if reason is not None:
        shared: dict[str, Any] = page.signed_in(browser)
        return page.html(
            "console/kept_out.html",
            status=403,
            app="console",
            title="Not for this account",
            reason=reason,
            **shared,
        )
    return Console(browser, page)


Entered = Annotated[Console | Response, Depends(_enter)]


def _enter_form(console: Entered, pairs: FormPairs) -> tuple[Console, dict[str, str]] | Response:
    """As Entered, for a form: its fields once its CSRF token is this sign-in's."""
    if isinstance(console, Response):
        return console
    fields = dict(pairs)
    if not console.page.is_valid(console.purpose, fields.get(csrf.FIELD)):
        return console.html(
            "console/kept_out.html",
            status=403,
            title="This form expired",
            reason="This form expired, or came from another page. Reload the page and try again.",
        )
    return console, fields


EnteredForm = Annotated[tuple[Console, dict[str, str]] | Response, Depends(_enter_form)]


def attempt(db: SessionDep, action: Callable[[], Any]) -> tuple[Any, Exception | None]:
    """`action()`'s result in a savepoint (console/attempts.py), or the refusal a page tells:
    its writes undone, the page answered in a unit of work that still commits."""
    try:
        return attempts.attempt(db, action), None
    except _REFUSALS as refused:
        return None, refused


def refusal_status(refused: Exception) -> int:
    return next(code for kind, code in _REFUSED.items() if isinstance(refused, kind))


def see(path: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'done': done})}", status_code=303)


def notice_of(request: Request) -> str | None:
    return user_actions.NOTICES.get(request.query_params.get("done", ""))


# Users


@router.get("/")
def users_page(request: Request, db: SessionDep, console: Entered) -> Response:
    """The search of `GET /users/` for admins (users.search_users), a keyset page at a time."""
    if isinstance(console, Response):
        return console
    search = search_form.read(request.query_params)
    found, next_url = [], None
    status = 422 if search.errors else 200
    if not search.errors:
        after = _after(request)
        page = users.search_users(
            db,
            after=after,
            limit=USERS_PAGE,
            username_prefix=search.username_prefix,
            filters=search.filters,
        )
        found = list(page.users)
        if page.next_after is not None:
            next_url = f"/console/?{urlencode([*search.query(), ('after', page.next_after)])}"
    return console.html(
        "console/users.html",
        status=status,
        scripts=True,
        search=search,
        found=found,
        next_url=next_url,
        later_page=request.query_params.get("after") not in (None, "", "0"),
        first_url=f"/console/?{urlencode(search.query())}",
        notice=notice_of(request),
    )


def _after(request: Request) -> int:
    """The keyset position of the page: ids after this one (a bad value reads as the start)."""
    return user_actions.whole_number(request.query_params.get("after")) or 0


def _user_page(
    console: Console,
    db: SessionDep,
    user_id: int,
    *,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    try:
        user = users.get_user(db, user_id)
    except users.UserNotFound as missing:
        return console.html("console/missing.html", status=404, message=str(missing))
    found = sign_ins.list_sign_ins(db, user.id)
    return console.html(
        "console/user.html",
        status=status,
        user=user,
        sign_ins=[
            (token, sign_ins.sign_in_kind(token), user_agents.describe(token.user_agent))
            for token in found
        ],
        current_sign_in=console.browser.sign_in_id,
        locked_for=auth.lockout(db, user.id),
        factors=factors.status(db, user.id),
        events=audit.latest_events(db, user_id=user.id, limit=RECENT_EVENTS),
        error=error,
        notice=notice,
    )


@router.get("/users/{user_id}")
def user_page(
    request: Request,
    user_id: int,
    db: SessionDep,
    console: Entered,
) -> Response:
    if isinstance(console, Response):
        return console
    return _user_page(console, db, user_id, notice=notice_of(request))


@router.get("/users/{user_id}/delete")
def confirm_delete_page(
    request: Request,
    user_id: int,
    db: SessionDep,
    console: Entered,
) -> Response:
    """The step before a deletion: what goes, and a button that does it."""
    if isinstance(console, Response):
        return console
    try:
        user = users.get_user(db, user_id)
    except users.UserNotFound as missing:
        return console.html("console/missing.html", status=404, message=str(missing))
    return console.html(
        "console/confirm.html",
        title=f"Delete {user.username}?",
        explanation=(
            f"The account {user.username} ({user.email}) and every sign-in of it are deleted "
            "for good. Its events stay in the audit trail."
        ),
        action=f"/console/users/{user.id}/delete",
        version=user.version,
        button="Delete the user",
        cancel=f"/console/users/{user.id}",
    )


@router.post("/users/{user_id}/{action}")
def act_on_user(
    request: Request,
    user_id: int,
    action: str,
    db: SessionDep,
    context: RequestContextDep,
    entered: EnteredForm,
) -> Response:
    """One of the user page's buttons (user_actions.ACTIONS), then back to the page
    (POST-redirect-GET); a refusal is told on the page, the account as it is now."""
    if isinstance(entered, Response):
        return entered
    console, fields = entered
    act = user_actions.ACTIONS.get(action)
    if act is None:
        return console.html("console/missing.html", status=404, message="No such action.")
    press = user_actions.Press(
        console.browser.user, console.browser.sign_in_id, user_id, fields, context
    )
    done, refused = attempt(db, lambda: act(db, press))
    if refused is not None:
        return _user_page(console, db, user_id, status=refusal_status(refused), error=str(refused))
    return see("/console/" if done == "deleted" else f"/console/users/{user_id}", done)


# The audit trail


@router.get("/audit")
def audit_page(request: Request, db: SessionDep, console: Entered) -> Response:
    """The events of `GET /admin/events` (audit.list_events): oldest first, by user and kind."""
    if isinstance(console, Response):
        return console
    params = request.query_params
    values = {name: params.get(name, "").strip() for name in ("user_id", "kind")}
    errors = {}
    user_id = None
    if values["user_id"]:
        user_id = user_actions.whole_number(values["user_id"])
        if user_id is None or not 1 <= user_id <= audit.MAX_ID:
            user_id = None
            errors["user_id"] = "Enter a user's id: a whole number, like 42."
    kinds = [kind.value for kind in EventKind]
    if values["kind"] and values["kind"] not in kinds:
        errors["kind"] = "Choose a kind from the list."
    events, next_url = [], None
    if not errors:
        page = audit.list_events(
            db,
            user_id=user_id,
            kind=values["kind"] or None,
            after=_after(request),
            limit=EVENTS_PAGE,
        )
        events = list(page.events)
        if page.next_after is not None:
            filled = [(name, value) for name, value in values.items() if value]
            next_url = f"/console/audit?{urlencode([*filled, ('after', page.next_after)])}"
    return console.html(
        "console/audit.html",
        status=422 if errors else 200,
        values=values,
        errors=errors,
        kinds=kinds,
        events=events,
        next_url=next_url,
    )
