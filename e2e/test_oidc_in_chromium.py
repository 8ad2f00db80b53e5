"""Sign in with userbase, in real headless Chromium: relying parties (Authlib's Starlette
client, e2e/relying_party.py) send the browser to userbase's hosted sign-in page, it signs
in, consents and comes back; a second application signs in by single sign-on without a
page; logout from one application signs the browser out of userbase and of the other."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from e2e.relying_party import RelyingParty, free_port
from tests.accounts import PASSWORD
from tests.conftest import LiveServer
from tests.tokens import Registered, create_user
from userbase import audit
from userbase.database import SessionLocal
from userbase.models import BrowserSignIn, Token
from userbase.tokens import clients

pytestmark = pytest.mark.live


def register(name: str, port: int, *, first_party: bool) -> Registered:
    base = f"http://127.0.0.1:{port}"
    with SessionLocal.begin() as session:
        registered = clients.create_client(
            session,
            name=name,
            redirect_uris=[f"{base}/callback"],
            public=False,
            first_party=first_party,
            grant_types=["authorization_code", "refresh_token"],
            scope="",
            actor_id=None,
            context=audit.CLI,
            post_logout_redirect_uris=[f"{base}/signed-out"],
        )
        return Registered(registered.client.client_id, registered.client_secret)


@pytest.fixture(scope="module")
def issuer(database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(database_url, public_url_is_own=True)
    yield server
    server.stop()


def test_relying_parties_sign_in_through_chromium_with_single_sign_on_and_logout(
    issuer: LiveServer, page: Any, artifacts: Path
) -> None:
    create_user(1)
    notes_port, calendar_port = free_port(), free_port()
    notes = RelyingParty(
        "Notes", issuer.url, register("Notes", notes_port, first_party=False), notes_port
    )
    calendar = RelyingParty(
        "Calendar", issuer.url, register("Calendar", calendar_port, first_party=True), calendar_port
    )
    visited: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: visited.append(f"{request.method} {request.url}"))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda response: (
            errors.append(f"{response.status} {response.url}") if response.status >= 400 else None
        ),
    )
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    try:
        # Notes sends the browser to userbase's sign-in page.
        page.goto(f"{notes.url}/login")
        assert page.url.startswith(f"{issuer.url}/oauth/authorize?")
        assert "Notes" in page.locator("main").inner_text()
        page.screenshot(path=artifacts / "oidc-sign-in.png", full_page=True)
        page.get_by_label("Username or email").fill("user1")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()

        # A third-party application: the consent page, then back to Notes, signed in.
        page.get_by_role("heading", name="Allow Notes to use your account?").wait_for()
        page.screenshot(path=artifacts / "oidc-consent.png", full_page=True)
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(f"{notes.url}/")
        assert page.locator("#status").inner_text() == "Signed in as user1"
        page.screenshot(path=artifacts / "oidc-signed-in.png", full_page=True)

        # Single sign-on: Calendar gets the user without any page of userbase's.
        signed_in_posts = sum(v.startswith("POST ") for v in visited)
        page.goto(f"{calendar.url}/login")
        page.wait_for_url(f"{calendar.url}/")
        assert page.locator("#status").inner_text() == "Signed in as user1"
        assert sum(v.startswith("POST ") for v in visited) == signed_in_posts
        with SessionLocal() as session:
            browser_sign_in = session.scalar(select(BrowserSignIn.sign_in_id))
            through_it = session.scalars(
                select(Token.client_id).where(Token.browser_sign_in_id == browser_sign_in)
            ).all()
        assert len(through_it) == 2  # Notes' and Calendar's sign-ins hang off the browser's

        # Logout from Notes: userbase signs the browser out (its ID token is the hint) and
        # sends it back to Notes' registered address.
        page.goto(f"{notes.url}/logout")
        page.wait_for_url(lambda url: url.startswith(f"{notes.url}/signed-out?state="))
        assert page.locator("#status").inner_text() == "Signed out."
        with SessionLocal() as session:
            assert session.scalars(select(Token)).all() == []  # Calendar's sign-in ended too

        # No single sign-on left: Calendar's next sign-in shows the page again.
        page.goto(f"{calendar.url}/login")
        page.get_by_label("Password").wait_for()
        assert page.url.startswith(f"{issuer.url}/oauth/authorize?")
        page.screenshot(path=artifacts / "oidc-after-logout.png", full_page=True)
    finally:
        notes.stop()
        calendar.stop()
    origins = (issuer.url, notes.url, calendar.url)
    assert [v for v in visited if not v.split(" ", 1)[1].startswith(origins)] == []
    assert errors == []
