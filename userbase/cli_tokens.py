"""`userbase keys ...` and `userbase clients ...`: the operator's side of userbase/tokens/.
Every change is recorded in the audit trail with the channel "cli"."""

import json
from typing import Annotated

import typer

from userbase.cli_output import console
from userbase.responses import dumps

keys_app = typer.Typer(help="The keys that sign userbase's tokens.", no_args_is_help=True)
clients_app = typer.Typer(
    help="Applications registered to get tokens (OAuth clients).", no_args_is_help=True
)


@keys_app.command("list")
def list_keys() -> None:
    """Every signing key: kid, algorithm, when made, whether current, published until when.

    Example: userbase keys list
    """
    from userbase.database import SessionLocal
    from userbase.tokens import keys

    with SessionLocal() as session:
        rows = keys.list_keys(session)
        for row in rows:
            state = "current" if row.retired_at is None else "retired"
            until = (
                f" published until {row.publish_until:%Y-%m-%d %H:%M:%S} UTC"
                if (row.publish_until)
                else ""
            )
            typer.echo(
                f"{row.kid}  {row.alg}  created {row.created_at:%Y-%m-%d %H:%M:%S} UTC  "
                f"{state}{until}"
            )


@keys_app.command("rotate")
def rotate_keys(
    alg: Annotated[
        list[str] | None, typer.Option("--alg", help="ES256 or RS256 (default: both).")
    ] = None,
) -> None:
    """Make new current signing keys. The ones they replace sign nothing more and stay
    published until every token they signed has expired; servers pick the new ones up
    within a minute.

    Example: userbase keys rotate
    """
    from userbase import audit
    from userbase.audit import EventKind
    from userbase.database import SessionLocal
    from userbase.tokens import keys

    algorithms = alg or list(keys.ALGORITHMS)
    unknown = [name for name in algorithms if name not in keys.ALGORITHMS]
    if unknown:
        console.print(f"[red]unknown algorithm {unknown[0]}; one of ES256, RS256[/red]")
        raise typer.Exit(1)
    keys.warn_if_default_secret()
    with SessionLocal.begin() as session:
        created = keys.rotate(session, algorithms)
        kids = [(row.kid, row.alg) for row in created]
        audit.record(
            session,
            EventKind.SIGNING_KEYS_ROTATED,
            audit.CLI,
            user_id=None,
            detail=" ".join(f"{alg}={kid}" for kid, alg in kids),
        )
    keys.RING.forget()
    for kid, alg_name in kids:
        console.print(f"new current {alg_name} key {kid}")


def _fail(message: str) -> None:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(1)


@clients_app.command("create")
def create_client(
    name: Annotated[str, typer.Option(help="What the users see the client as.")],
    redirect_uri: Annotated[
        list[str] | None, typer.Option("--redirect-uri", help="Exactly as it will be sent.")
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="No secret (a browser or mobile app).")
    ] = False,
    first_party: Annotated[
        bool, typer.Option("--first-party", help="One of this service's own applications.")
    ] = False,
    grant: Annotated[
        list[str] | None,
        typer.Option(
            "--grant",
            help="authorization_code, refresh_token, client_credentials, password "
            "(first party); default: authorization_code and refresh_token.",
        ),
    ] = None,
    scope: Annotated[str, typer.Option(help="The scopes it may ask for, space-separated.")] = "",
    post_logout_redirect_uri: Annotated[
        list[str] | None,
        typer.Option(
            "--post-logout-redirect-uri", help="Where logout may send the browser back to."
        ),
    ] = None,
) -> None:
    """Register a client. Prints one line of JSON with its client_id and, for a confidential
    client, its client_secret: shown this once, stored only as a digest.

    Example: userbase clients create --name "Billing" --redirect-uri https://billing.example.com/cb
    """
    from userbase import audit
    from userbase.database import SessionLocal
    from userbase.tokens import clients
    from userbase.tokens.oauth_errors import InvalidClientSettings

    try:
        with SessionLocal.begin() as session:
            registered = clients.create_client(
                session,
                name=name,
                redirect_uris=redirect_uri or [],
                public=public,
                first_party=first_party,
                grant_types=grant,
                scope=scope,
                actor_id=None,
                context=audit.CLI,
                post_logout_redirect_uris=post_logout_redirect_uri or [],
            )
            line = {"client_id": registered.client.client_id}
    except InvalidClientSettings as exc:
        _fail(str(exc))
    if registered.client_secret is not None:
        line["client_secret"] = registered.client_secret
    typer.echo(json.dumps(line))


@clients_app.command("list")
def list_clients() -> None:
    """Every client, one JSON line each (never a secret).

    Example: userbase clients list
    """
    from userbase.database import SessionLocal
    from userbase.tokens import clients

    with SessionLocal() as session:
        for client in clients.list_clients(session):
            # The API's encoder: the same line as GET /admin/clients shows.
            typer.echo(dumps(clients.client_view(client)).decode())


@clients_app.command("delete")
def delete_client(
    client_id: Annotated[str, typer.Argument(help="The client's client_id.")],
) -> None:
    """Delete a client; every sign-in through it ends.

    Example: userbase clients delete 3vQ0...
    """
    from userbase import audit
    from userbase.database import SessionLocal
    from userbase.tokens import clients
    from userbase.tokens.oauth_errors import ClientNotFound

    try:
        with SessionLocal.begin() as session:
            clients.delete_client(session, client_id, actor_id=None, context=audit.CLI)
    except ClientNotFound as exc:
        _fail(str(exc))
    console.print(f"deleted client {client_id}")


@clients_app.command("rotate-secret")
def rotate_secret(
    client_id: Annotated[str, typer.Argument(help="The client's client_id.")],
) -> None:
    """A new secret for a confidential client (the old one stops working at once); printed
    as one JSON line, this once.

    Example: userbase clients rotate-secret 3vQ0...
    """
    from userbase import audit
    from userbase.database import SessionLocal
    from userbase.tokens import clients
    from userbase.tokens.oauth_errors import (
        ClientNotFound,
        PublicClientHasNoSecret,
    )

    try:
        with SessionLocal.begin() as session:
            secret = clients.rotate_secret(session, client_id, actor_id=None, context=audit.CLI)
    except (ClientNotFound, PublicClientHasNoSecret) as exc:
        _fail(str(exc))
    typer.echo(json.dumps({"client_id": client_id, "client_secret": secret}))


def register(app: typer.Typer) -> None:
    """Add `keys` and `clients` to the `userbase` command."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(clients_app, name="clients")
