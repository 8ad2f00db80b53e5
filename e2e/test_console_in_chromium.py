"""/console/ in real headless Chromium: an admin signs in, finds a user by address, deactivates
them (their API token stops working, checked over HTTP), activates them again and reads the
events in the audit trail; `/` brings the focus to the search box; a non-admin is kept out.
Every page is checked with axe-core, for requests off the server's origin and for console
errors, and photographed at 390 px and 1280 px wide (artifacts/console-*.png)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.browser_checks import PageWatch, serious_violations, watch
from tests.accounts import PASSWORD, make_admin
from tests.conftest import LiveServer
from tests.tokens import create_user, register_client

pytestmark = pytest.mark.live

WIDTHS = (390, 1280)
# The elements that stick out of the screen's right edge (to tell which one when some do).
WIDER = """() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
    .slice(0, 8).map((e) => `${e.tagName}.${e.className}`)"""


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(database_url, public_url_is_own=True)
    yield server
    server.stop()


def check(page: Any, seen: PageWatch, artifacts: Path, name: str) -> None:
    """The page as it is now: no serious axe-core violation at either width, nothing asked
    of another origin, no console error; a full-page screenshot at each width."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        assert serious_violations(page) == [], f"{name} at {width} px"
        if width == 390:
            # Readable on a phone: nothing but a table's own scroller is wider than the screen.
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{name} is {overflow} px wide: {page.evaluate(WIDER)}"
        page.screenshot(path=artifacts / f"console-{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert seen.problems() == [], name


def sign_in(page: Any, login: str) -> None:
    page.get_by_label("Username or email").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def api_token(server: LiveServer, login: str) -> str:
    answer = httpx.post(f"{server.url}/auth/token", data={"username": login, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def me(server: LiveServer, token: str) -> int:
    answer = httpx.get(f"{server.url}/users/me", headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


def test_an_admin_finds_deactivates_and_reactivates_a_user_in_chromium(
    server: LiveServer, page: Any, artifacts: Path
) -> None:
    make_admin(create_user(1))
    target = create_user(2)
    for n in range(3, 8):
        create_user(n)
    register_client()
    token = api_token(server, "user2")
    assert me(server, token) == 200
    page.context.clear_cookies()
    seen = watch(page, server.url)

    # Not signed in: the sign-in page, then back to the console.
    page.goto(f"{server.url}/console/")
    assert "/oauth/sign-in?return_to=" in page.url
    sign_in(page, "user1")
    page.wait_for_url(f"{server.url}/console/")
    page.get_by_role("heading", name="Users", exact=True).wait_for()
    check(page, seen, artifacts, "users")

    # "/" brings the focus to the search box, from anywhere but a field.
    page.locator("h1").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("user2@example.com")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "q=user2%40example.com" in url)
    rows = page.locator("table.users tbody tr")
    assert rows.count() == 1
    check(page, seen, artifacts, "search")
    page.get_by_role("link", name="user2", exact=True).click()
    page.wait_for_url(f"{server.url}/console/users/{target}")
    check(page, seen, artifacts, "user")

    # Deactivate: the user's API token stops working at once.
    page.get_by_role("button", name="Deactivate").click()
    page.get_by_text("The account is deactivated").wait_for()
    assert me(server, token) == 401
    check(page, seen, artifacts, "user-deactivated")
    page.get_by_role("button", name="Activate").click()
    page.get_by_text("The account is active again.").wait_for()
    assert me(server, api_token(server, "user2")) == 200

    # The audit trail tells both, by the admin.
    page.get_by_role("link", name="Every event of user2").click()
    page.get_by_role("heading", name="Audit trail").wait_for()
    trail = page.locator("table").inner_text()
    assert "activation_changed" in trail
    assert "is_active=False" in trail
    assert "is_active=True" in trail
    check(page, seen, artifacts, "audit")

    # The deletion's confirmation step (left unconfirmed) and the clients.
    page.goto(f"{server.url}/console/users/{target}/delete")
    check(page, seen, artifacts, "confirm-delete")
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(f"{server.url}/console/users/{target}")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Clients").click()
    page.get_by_role("heading", name="Clients", exact=True).wait_for()
    check(page, seen, artifacts, "clients")
    page.get_by_label("Name", exact=True).fill("Notes")
    page.get_by_label("Redirect URIs", exact=True).fill("https://notes.example/callback")
    page.get_by_role("button", name="Register").click()
    page.get_by_role("heading", name="The client is registered").wait_for()
    assert len(page.locator("code.secret").inner_text()) >= 40
    check(page, seen, artifacts, "client-secret")


def test_a_non_admin_is_kept_out_of_the_console_in_chromium(
    server: LiveServer, page: Any, artifacts: Path
) -> None:
    make_admin(create_user(1))
    create_user(2)
    page.context.clear_cookies()
    seen = watch(page, server.url)
    page.goto(f"{server.url}/console/")
    sign_in(page, "user2")
    page.wait_for_url(f"{server.url}/console/")
    page.get_by_role("heading", name="Not for this account").wait_for()
    text = page.locator("body").inner_text()
    assert "user1" not in text
    assert "Signed in as user2@example.com" in text
    # The 403 of the page itself is the one error Chromium reports.
    seen.console_errors = [e for e in seen.console_errors if "status of 403" not in e]
    check(page, seen, artifacts, "kept-out")
