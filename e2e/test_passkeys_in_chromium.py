"""Passkeys in real headless Chromium, with its virtual authenticator (the DevTools WebAuthn
domain, a platform authenticator with user verification): register one at /account/passkeys,
sign out, sign in to a relying party with the passkey alone; the sign-in's second step with
the passkey; and from another origin (127.0.0.1 while USERBASE_PUBLIC_URL says localhost) the
passkey signs nobody in. py_webauthn checks what Chromium's authenticator made; axe-core finds
no serious accessibility violation on the pages."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from e2e.browser_checks import serious_violations
from e2e.relying_party import RelyingParty, free_port
from e2e.test_oidc_in_chromium import register
from tests.accounts import PASSWORD
from tests.conftest import LiveServer
from tests.tokens import create_user
from userbase.database import SessionLocal
from userbase.models import BrowserSignIn, Passkey, SecurityEvent

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def issuer(database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(database_url, public_url_is_own=True, public_host="localhost")
    yield server
    server.stop()


def virtual_authenticator(page: Any) -> Any:
    """Chromium's virtual platform authenticator on this page: resident keys, and a user it
    verifies (as a fingerprint or PIN would) without asking anyone."""
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable", {"enableUI": False})
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return devtools


def browser_methods() -> list[str]:
    with SessionLocal() as session:
        return list(session.scalars(select(BrowserSignIn.methods)))


def sign_out(page: Any, base: str) -> None:
    page.goto(f"{base}/oauth/logout")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="You are signed out").wait_for()
    assert browser_methods() == []


def test_a_passkey_registered_in_chromium_signs_in_alone_and_as_second_step(
    issuer: LiveServer, page: Any, artifacts: Path
) -> None:
    user_id = create_user(1)
    base = f"http://localhost:{issuer.port}"  # USERBASE_PUBLIC_URL: the relying party id
    virtual_authenticator(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    rp_port = free_port()
    app = RelyingParty("Notes", base, register("Notes", rp_port, first_party=True), rp_port)
    try:
        # Signed in with the password, the user adds a passkey on /account/passkeys.
        page.goto(f"{base}/oauth/sign-in")
        page.get_by_label("Username or email").fill("user1")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_role("link", name="Your account").click()
        page.get_by_role("navigation", name="Your account").get_by_role(
            "link", name="Passkeys"
        ).click()
        page.get_by_text("You have no passkeys yet.").wait_for()
        page.screenshot(path=artifacts / "passkeys-account-empty.png", full_page=True)
        assert serious_violations(page) == []
        page.get_by_label("Name, to tell your passkeys apart").fill("Chromium")
        page.get_by_label("Your password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Add a passkey").click()
        page.get_by_text("Your passkey was added.").wait_for()
        assert page.locator("#passkeys td").first.inner_text() == "Chromium"
        page.screenshot(path=artifacts / "passkeys-account-added.png", full_page=True)
        assert serious_violations(page) == []
        page.set_viewport_size({"width": 390, "height": 844})  # a phone, as the console's pages
        page.screenshot(path=artifacts / "passkeys-account-added-390.png", full_page=True)
        assert serious_violations(page) == []
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.set_viewport_size({"width": 1280, "height": 900})
        with SessionLocal() as session:
            passkey = session.scalars(select(Passkey)).one()
            assert (passkey.user_id, passkey.transports) == (user_id, "internal")

        # Signed out, the user signs in to Notes with the passkey alone: no username typed.
        sign_out(page, base)
        page.goto(f"{app.url}/login")
        page.get_by_role("button", name="Sign in with a passkey").wait_for()
        page.screenshot(path=artifacts / "passkeys-sign-in.png", full_page=True)
        assert serious_violations(page) == []
        page.get_by_role("button", name="Sign in with a passkey").click()
        page.wait_for_url(f"{app.url}/")
        assert page.locator("#status").inner_text() == "Signed in as user1"
        assert browser_methods() == ["swk mfa"]

        # With the password, the passkey is the second step.
        sign_out(page, base)
        page.goto(f"{base}/oauth/sign-in")
        page.get_by_label("Username or email").fill("user1")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_role("heading", name="Second step").wait_for()
        page.screenshot(path=artifacts / "passkeys-second-step.png", full_page=True)
        assert serious_violations(page) == []
        page.get_by_role("button", name="Use a passkey").click()
        page.get_by_role("heading", name="You are signed in").wait_for()
        assert browser_methods() == ["pwd swk mfa"]
        with SessionLocal() as session:
            assert session.scalars(select(Passkey.sign_count)).one() >= 0
            assert session.scalars(select(Passkey.last_used_at)).one() is not None
    finally:
        app.stop()
    assert errors == []


def test_from_another_origin_the_passkey_signs_nobody_in(
    issuer: LiveServer, page: Any, artifacts: Path
) -> None:
    """The same server reached as 127.0.0.1 while USERBASE_PUBLIC_URL says localhost: the
    options name the relying party localhost, which Chromium refuses for this origin, and
    nothing is signed in."""
    create_user(2)
    virtual_authenticator(page)
    page.goto(f"http://127.0.0.1:{issuer.port}/oauth/sign-in")
    page.get_by_role("button", name="Sign in with a passkey").click()
    error = page.locator("[data-passkey-error]").first
    error.wait_for()
    page.screenshot(path=artifacts / "passkeys-wrong-origin.png", full_page=True)
    assert error.inner_text()
    assert browser_methods() == []
    with SessionLocal() as session:
        kinds = session.scalars(select(SecurityEvent.kind)).all()
    assert "login_succeeded" not in kinds
