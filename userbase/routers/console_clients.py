"""/console/clients: the OpenID Connect provider's clients in the admins' console, over the
functions of `/admin/clients` (tokens/clients.py): list, register (a confidential client's
secret shown once), a new secret, delete after a confirmation step. Who gets in and the
forms' CSRF tokens: console_admin.py's Entered and EnteredForm."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from userbase.console import attempts, client_form
from userbase.database import SessionDep
from userbase.models import OAuthClient
from userbase.routers.console_admin import (
    Console,
    Entered,
    EnteredForm,
    attempt,
    notice_of,
    refusal_status,
    see,
)
from userbase.routers.dependencies import RequestContextDep
from userbase.routers.hosted import FormPairs
from userbase.tokens import clients
from userbase.tokens.oauth_errors import ClientNotFound, InvalidClientSettings

router = APIRouter(prefix="/console/clients", include_in_schema=False)


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


def _secret_page(console: Console, client: OAuthClient, secret: str, heading: str) -> Response:
    # Answered to the POST itself, not after a redirect: userbase keeps only the secret's
    # SHA-256, so this is the one time it can be shown (the page is Cache-Control: no-store).
    return console.html(
        "console/client_secret.html",
        client=clients.client_view(client),
        secret=secret,
        heading=heading,
    )


@router.get("")
def clients_page(request: Request, db: SessionDep, console: Entered) -> Response:
    if isinstance(console, Response):
        return console
    return _clients_page(console, db, notice=notice_of(request))


@router.post("")
def create_client(
    db: SessionDep, context: RequestContextDep, pairs: FormPairs, entered: EnteredForm
) -> Response:
    """Register a client as `POST /admin/clients` does; a confidential one's secret, once."""
    if isinstance(entered, Response):
        return entered
    console, _fields = entered
    form = client_form.read(pairs)
    try:
        registered = attempts.attempt(
            db,
            lambda: clients.create_client(
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
            ),
        )
    except InvalidClientSettings as refused:
        errors = {client_form.field_of(refused, form): f"Not registered: {refused}."}
        return _clients_page(console, db, status=422, form=form, errors=errors)
    if registered.client_secret is None:
        return see("/console/clients", "client-created")
    return _secret_page(
        console, registered.client, registered.client_secret, "The client is registered"
    )


@router.post("/{client_id}/secret")
def rotate_secret(
    client_id: str, db: SessionDep, context: RequestContextDep, entered: EnteredForm
) -> Response:
    """A new secret, as `POST /admin/clients/{id}/secret`: the old one stops working now."""
    if isinstance(entered, Response):
        return entered
    console, _fields = entered
    secret, refused = attempt(
        db,
        lambda: clients.rotate_secret(
            db, client_id, actor_id=console.browser.user.id, context=context
        ),
    )
    if refused is not None:
        return _clients_page(console, db, status=refusal_status(refused), error=str(refused))
    client = clients.get_client(db, client_id)
    return _secret_page(console, client, secret, "The client has a new secret")


@router.get("/{client_id}/delete")
def confirm_delete_page(client_id: str, db: SessionDep, console: Entered) -> Response:
    """The step before a deletion: what it ends, and a button that does it."""
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


@router.post("/{client_id}/delete")
def delete_client(
    client_id: str, db: SessionDep, context: RequestContextDep, entered: EnteredForm
) -> Response:
    if isinstance(entered, Response):
        return entered
    console, _fields = entered
    _, refused = attempt(
        db,
        lambda: clients.delete_client(
            db, client_id, actor_id=console.browser.user.id, context=context
        ),
    )
    if refused is not None:
        return _clients_page(console, db, status=refusal_status(refused), error=str(refused))
    return see("/console/clients", "client-deleted")
