"""Set-up for the token tests: registered clients, a user, Authlib's OAuth client."""

from dataclasses import dataclass
from typing import Any

from authlib.integrations.httpx_client import OAuth2Client

from tests.accounts import PASSWORD
from userbase import accounts, audit
from userbase.database import SessionLocal
from userbase.tokens import clients


@dataclass(frozen=True)
class Registered:
    client_id: str
    client_secret: str | None


def register_client(
    *,
    grants: tuple[str, ...] = ("password", "refresh_token"),
    public: bool = False,
    first_party: bool = True,
    scope: str = "read write",
) -> Registered:
    with SessionLocal.begin() as session:
        registered = clients.create_client(
            session,
            name="test app",
            redirect_uris=["https://app.example.com/callback"],
            public=public,
            first_party=first_party,
            grant_types=list(grants),
            scope=scope,
            actor_id=None,
            context=audit.CLI,
        )
        return Registered(registered.client.client_id, registered.client_secret)


def create_user(n: int | str) -> int:
    with SessionLocal.begin() as session:
        user = accounts.register(
            session,
            username=f"user{n}",
            email=f"user{n}@example.com",
            password=PASSWORD,
            display_name=None,
            context=audit.CLI,
        )
        assert user is not None
        return user.id


def oauth_client(registered: Registered, **kwargs: Any) -> OAuth2Client:
    return OAuth2Client(registered.client_id, registered.client_secret, **kwargs)


def signed_in(base_url: str, registered: Registered, n: int | str = 1) -> dict[str, Any]:
    """A user signed in through the client (password grant): Authlib's token."""
    create_user(n)
    with oauth_client(registered) as client:
        token: dict[str, Any] = client.fetch_token(
            f"{base_url}/oauth/token", username=f"user{n}", password=PASSWORD
        )
    return token
