"""/account/ in real headless Chromium: a user signs in, changes their display name, ends a sign-in
made elsewhere (over the API), enrols an authenticator app with a code from pyotp, then signs in
again through the sign-in page's second step (a wrong code refused, a recovery code). Each page
passes axe-core with no serious violation at 390 px and at 1280 px wide, asks nothing of another
origin and logs no error; its screenshots at both widths are kept in artifacts/account-*.png."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from e2e.browser_checks import serious_violations, watch
from tests.accounts import PASSWORD
from tests.conftest import LiveServer
from tests.tokens import create_user

pytestmark = pytest.mark.live

WIDTHS = (390, 1280)


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    live = LiveServer(database_url)
    yield live
    live.stop()


def check(page: Any, artifacts: Path, name: str) -> None:
    """axe-core at each width, and the screenshots."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        assert serious_violations(page) == [], f"{name} at {width} px"
        # Nothing wider than the screen: a phone scrolls down, never sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= width, name
        page.screenshot(path=artifacts / f"account-{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_user_manages_their_account_in_chromium(
    server: LiveServer, page: Any, artifacts: Path
) -> None:
    create_user(1)
    # A sign-in made elsewhere: a bearer token of the API.
    token = httpx.post(
        f"{server.url}/auth/token", data={"username": "user1", "password": PASSWORD}
    ).json()["access_token"]
    seen = watch(page, server.url)

    # Signed out: /account/ sends the browser to the sign-in page, and back.
    page.goto(f"{server.url}/account/")
    assert "/oauth/sign-in?return_to=" in page.url
    page.get_by_label("Username or email").fill("user1")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{server.url}/account/")
    assert "Signed in as user1@example.com" in page.locator("header").inner_text()
    check(page, artifacts, "profile")

    # The display name.
    page.get_by_role("textbox", name="Display name").fill("Ada Lovelace")
    page.get_by_role("button", name="Save the name").click()
    page.wait_for_url(f"{server.url}/account/?done=name")
    assert page.get_by_role("status").inner_text() == "Your display name is saved."
    assert page.get_by_role("textbox", name="Display name").input_value() == "Ada Lovelace"

    # A refused form: the error at its field, which says so to assistive technology.
    page.get_by_label("New email address").fill("ada@example.org")
    page.get_by_label("Current password").fill("not my password")
    page.get_by_role("button", name="Change the address").click()
    password = page.get_by_label("Current password")
    assert password.get_attribute("aria-invalid") == "true"
    assert password.get_attribute("aria-describedby") == "current_password-error"
    assert page.locator("#current_password-error").inner_text() == (
        "The current password is not correct."
    )
    check(page, artifacts, "profile-refused")
    # Chromium logs the refusal's status (the API's 403) as a failed load; nothing else.
    assert seen.console_errors == [
        "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    ]
    seen.console_errors.clear()

    # The sign-ins: this browser and the API's token; the token's ends.
    page.get_by_role("navigation", name="Your account").get_by_role("link", name="Sign-ins").click()
    page.wait_for_url(f"{server.url}/account/sessions")
    assert page.locator("li.sign-in").count() == 2
    check(page, artifacts, "sessions")
    page.get_by_role("button", name="End this sign-in").click()
    page.wait_for_url(f"{server.url}/account/sessions?done=ended")
    assert page.locator("li.sign-in").count() == 1
    me = httpx.get(f"{server.url}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401

    # An authenticator app, with a code from pyotp.
    page.get_by_role("navigation", name="Your account").get_by_role(
        "link", name="Two-factor"
    ).click()
    page.wait_for_url(f"{server.url}/account/two-factor")
    check(page, artifacts, "two-factor")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Set up an authenticator app").click()
    page.get_by_role("heading", name="Set up an authenticator app").wait_for()
    secret = page.locator(".secret code").inner_text().replace(" ", "")
    assert "otpauth://totp/" in page.locator(".otpauth").text_content()
    check(page, artifacts, "totp-enrol")
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn it on").click()
    page.get_by_role("heading", name="Your recovery codes").wait_for()
    assert page.locator(".codes li").count() == 10
    recovery_code = page.locator(".codes li").first.inner_text().strip()
    check(page, artifacts, "recovery-codes")
    page.get_by_role("link", name="I have kept them").click()
    assert "Recovery codes left: 10 of 10." in page.locator("main").inner_text()
    check(page, artifacts, "two-factor-on")

    # Signed out and in again: the password is not enough now. The sign-in page's second
    # step refuses a wrong code at its field, then takes a recovery code (the app's code of
    # this time step was spent on turning it on: a code works once).
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="You are signed out").wait_for()
    page.goto(f"{server.url}/account/")
    page.get_by_label("Username or email").fill("user1")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Second step").wait_for()
    check(page, artifacts, "second-step")
    page.get_by_label("Code from your authenticator app").fill("000000")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("alert").filter(has_text="code").first.wait_for()
    assert (
        page.get_by_label("Code from your authenticator app").get_attribute("aria-invalid")
        == "true"
    )
    check(page, artifacts, "second-step-refused")
    # The refusal's 401 is logged as a failed load, as the form's 403 above; nothing else.
    assert seen.console_errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    seen.console_errors.clear()
    page.get_by_label("Or a recovery code").fill(recovery_code)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{server.url}/account/")
    assert "Signed in as user1@example.com" in page.locator("header").inner_text()
    page.goto(f"{server.url}/account/two-factor")
    assert "Recovery codes left: 9 of 10." in page.locator("main").inner_text()

    # The two pages left: a password and deleting the account (not done).
    page.goto(f"{server.url}/account/password")
    check(page, artifacts, "password")
    page.goto(f"{server.url}/account/delete")
    check(page, artifacts, "delete")

    assert seen.problems() == []
