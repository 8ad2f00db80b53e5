"""/console/: the admins' console (docs/console.md). Server-rendered pages over the same domain
functions as the API, so each action is checked and audited as it is there; plain forms,
POST then redirect to a GET, a CSRF token bound to the browser sign-in on every form.

Every request reads the browser sign-in and its account afresh (oidc/browser.py): an admin
demoted or deactivated meanwhile is kept out at their next click.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from userbase import accounts, audit, auth, mail_links, sign_ins, users
from userbase.audit import EventKind
from userbase.console import client_form, search_form, user_actions
from userbase.database import SessionDep
from userbase.mfa import factors
from userbase.oidc import browser as browsers
from userbase.oidc import csrf
from userbase.oidc.browser import BrowserUser
from userbase.permissions import Forbidden
from userbase.routers.dependencies import RequestContextDep
from userbase.routers.hosted import RETURN_TO, BrowserCookie, CsrfCookie, FormPairs, Page
from userbase.tokens import clients
from userbase.tokens.oauth_errors import (
    ClientNotFound,
    InvalidClientSettings,
    PublicClientHasNoSecret,
)

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
    request: Request, db: SessionDep, sso: str | None, csrf_cookie: str | None
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
            "console/kept_out.html", status=403, app="console", reason=reason, **shared
        )
    return Console(browser, page)


def _enter_form(
    request: Request, db: SessionDep, sso: str | None, csrf_cookie: str | None, pairs: FormPairs
) -> tuple[Console, dict[str, str]] | Response:
    """As _enter, for a form: its fields once its CSRF token is this sign-in's."""
    console = _enter(request, db, sso, csrf_cookie)
    if isinstance(console, Response):
        return console
    fields = dict(pairs)
    if not console.page.is_valid(console.purpose, fields.get(csrf.FIELD)):
        return console.html(
            "console/kept_out.html",
            status=403,
            reason="This form expired, or came from another page. Reload the page and try again.",
        )
    return console, fields


def _attempt(db: SessionDep, action: Callable[[], Any]) -> tuple[Any, Exception | None]:
    """Run a domain action in a savepoint: a refusal undoes its work alone, and the page
    that tells it is answered in a unit of work that still commits."""
    try:
        with db.begin_nested():
            return action(), None
    except _REFUSALS as refused:
        return None, refused


def _status_of(refused: Exception) -> int:
    return next(code for kind, code in _REFUSED.items() if isinstance(refused, kind))


def _see(path: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'done': done})}", status_code=303)


def _notice(request: Request) -> str | None:
    return user_actions.NOTICES.get(request.query_params.get("done", ""))


# Users


@router.get("/")
def users_page(
    request: Request, db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Response:
    """The search of `GET /users/` for admins (users.search_users), a keyset page at a time."""
    console = _enter(request, db, sso, csrf_cookie)
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
        notice=_notice(request),
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
        sign_ins=[(token, sign_ins.sign_in_kind(token)) for token in found],
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
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    console = _enter(request, db, sso, csrf_cookie)
    if isinstance(console, Response):
        return console
    return _user_page(console, db, user_id, notice=_notice(request))


@router.get("/users/{user_id}/delete")
def confirm_delete_page(
    request: Request,
    user_id: int,
    db: SessionDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """The step before a deletion: what goes, and a button that does it."""
    console = _enter(request, db, sso, csrf_cookie)
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
    pairs: FormPairs,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """One of the user page's buttons (user_actions.ACTIONS), then back to the page
    (POST-redirect-GET); a refusal is told on the page, the account as it is now."""
    entered = _enter_form(request, db, sso, csrf_cookie, pairs)
    if isinstance(entered, Response):
        return entered
    console, fields = entered
    act = user_actions.ACTIONS.get(action)
    if act is None:
        return console.html("console/missing.html", status=404, message="No such action.")
    press = user_actions.Press(
        console.browser.user, console.browser.sign_in_id, user_id, fields, context
    )
    done, refused = _attempt(db, lambda: act(db, press))
    if refused is not None:
        return _user_page(console, db, user_id, status=_status_of(refused), error=str(refused))
    return _see("/console/" if done == "deleted" else f"/console/users/{user_id}", done)


# The audit trail


@router.get("/audit")
def audit_page(
    request: Request, db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Response:
    """The events of `GET /admin/events` (audit.list_events): oldest first, by user and kind."""
    console = _enter(request, db, sso, csrf_cookie)
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


# Clients of the OpenID Connect provider


def _clients_page(
    console: Console,
    db: SessionDep,
    *,
    status: int = 200,
    form: client_form.ClientForm | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    return console.html(
        "console/clients.html",
        status=status,
        clients=[clients.client_view(client) for client in clients.list_clients(db)],
        form=form or client_form.ClientForm(),
        grant_choices=clients.GRANT_TYPES,
        errors=errors or {},
        error=error,
        notice=notice,
    )


@router.get("/clients")
def clients_page(
    request: Request, db: SessionDep, sso: BrowserCookie = None, csrf_cookie: CsrfCookie = None
) -> Response:
    console = _enter(request, db, sso, csrf_cookie)
    if isinstance(console, Response):
        return console
    return _clients_page(console, db, notice=_notice(request))


def _secret_page(console: Console, client: Any, secret: str, heading: str) -> Response:
    # Answered to the POST itself, not after a redirect: the secret is kept nowhere (only its
    # SHA-256), so this is the one time it can be shown. Cache-Control: no-store.
    return console.html(
        "console/client_secret.html",
        client=clients.client_view(client),
        secret=secret,
        heading=heading,
    )


@router.post("/clients")
def create_client(
    request: Request,
    db: SessionDep,
    context: RequestContextDep,
    pairs: FormPairs,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """Register a client as `POST /admin/clients` does; a confidential one's secret, once."""
    entered = _enter_form(request, db, sso, csrf_cookie, pairs)
    if isinstance(entered, Response):
        return entered
    console, _fields = entered
    form = client_form.read(pairs)
    try:
        with db.begin_nested():
            registered = clients.create_client(
                db,
                name=form.name,
                redirect_uris=form.uris(),
                public=form.public,
                first_party=form.first_party,
                grant_types=form.grant_types or None,
                scope=form.scope,
                post_logout_redirect_uris=form.logout_uris(),
                actor_id=console.browser.user.id,
                context=context,
            )
    except InvalidClientSettings as refused:
        errors = {client_form.field_of(refused, form): f"Not registered: {refused}."}
        return _clients_page(console, db, status=422, form=form, errors=errors)
    if registered.client_secret is None:
        return _see("/console/clients", "client-created")
    return _secret_page(
        console, registered.client, registered.client_secret, "The client is registered"
    )


@router.post("/clients/{client_id}/secret")
def rotate_secret(
    request: Request,
    client_id: str,
    db: SessionDep,
    context: RequestContextDep,
    pairs: FormPairs,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """A new secret, as `POST /admin/clients/{id}/secret`: the old one stops working now."""
    entered = _enter_form(request, db, sso, csrf_cookie, pairs)
    if isinstance(entered, Response):
        return entered
    console, _fields = entered
    secret, refused = _attempt(
        db,
        lambda: clients.rotate_secret(
            db, client_id, actor_id=console.browser.user.id, context=context
        ),
    )
    if refused is not None:
        return _clients_page(console, db, status=_status_of(refused), error=str(refused))
    client = clients.get_client(db, client_id)
    return _secret_page(console, client, secret, "The client has a new secret")


@router.get("/clients/{client_id}/delete")
def confirm_client_delete_page(
    request: Request,
    client_id: str,
    db: SessionDep,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    console = _enter(request, db, sso, csrf_cookie)
    if isinstance(console, Response):
        return console
    try:
        client = clients.get_client(db, client_id)
    except ClientNotFound as missing:
        return console.html("console/missing.html", status=404, message=str(missing))
    return console.html(
        "console/confirm.html",
        title=f"Delete the client {client.name}?",
        explanation=(
            f"The client {client.name} ({client.client_id}) is deleted for good, and every "
            "sign-in through it ends: its users must sign in again once it is registered anew."
        ),
        action=f"/console/clients/{client.client_id}/delete",
        version=None,
        button="Delete the client",
        cancel="/console/clients",
    )


@router.post("/clients/{client_id}/delete")
def delete_client(
    request: Request,
    client_id: str,
    db: SessionDep,
    context: RequestContextDep,
    pairs: FormPairs,
    sso: BrowserCookie = None,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    entered = _enter_form(request, db, sso, csrf_cookie, pairs)
    if isinstance(entered, Response):
        return entered
    console, _fields = entered
    _, refused = _attempt(
        db,
        lambda: clients.delete_client(
            db, client_id, actor_id=console.browser.user.id, context=context
        ),
    )
    if refused is not None:
        return _clients_page(console, db, status=_status_of(refused), error=str(refused))
    return _see("/console/clients", "client-deleted")
