"""/docs and /redoc in real headless Chromium: they render from the service alone, and work:
a user signs in with "Authorize" and runs GET /users/me from the page."""

from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import LiveServer, new_user

pytestmark = pytest.mark.live


def record_requests(page: Any) -> list[str]:
    """Every URL the page reached or tried to reach, except those its CSP stopped in the browser."""
    urls: list[str] = []

    def failed(request: Any) -> None:
        # Chromium reports a request its Content-Security-Policy refused as failed with "csp".
        if (request.failure or "").lower() not in ("csp", "net::err_blocked_by_csp"):
            urls.append(request.url)

    page.on("response", lambda response: urls.append(response.url))
    page.on("requestfailed", failed)
    return urls


def assert_only_local(urls: list[str], server: LiveServer) -> None:
    outside = [u for u in urls if not u.startswith((server.url, "data:", "blob:"))]
    assert outside == []


def test_swagger_ui_renders_every_operation(
    live_server: LiveServer, page: Any, artifacts: Path
) -> None:
    urls = record_requests(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)

    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    expected = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
    }
    rendered = {
        (method, path)
        for method, path in page.locator(".opblock").evaluate_all(
            """blocks => blocks.map(b => [
                b.querySelector('.opblock-summary-method').textContent.trim(),
                b.querySelector('.opblock-summary-path').getAttribute('data-path'),
            ])"""
        )
    }
    page.screenshot(path=artifacts / "docs-swagger-ui.png", full_page=True)

    assert rendered == expected
    assert page.get_by_text("Unable to render this definition").count() == 0
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("userbase")
    assert errors == []
    assert_only_local(urls, live_server)


def test_try_it_out_lists_users_from_the_page(
    live_server: LiveServer, page: Any, artifacts: Path
) -> None:
    created = httpx.post(f"{live_server.url}/users/", json=new_user("browser"))
    assert created.status_code == 201

    page.goto(f"{live_server.url}/docs")
    operation = page.locator("#operations-users-list_users_users__get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    response = operation.locator(".live-responses-table .response")
    response.wait_for(timeout=30_000)
    page.screenshot(path=artifacts / "docs-try-it-out.png", full_page=True)

    assert response.locator(".response-col_status").first.inner_text().strip() == "200"
    body = operation.locator(".live-responses-table .microlight").first.inner_text()
    assert '"username": "userbrowser"' in body


def test_authorize_then_read_me_from_the_page(
    live_server: LiveServer, page: Any, artifacts: Path
) -> None:
    body = new_user("docsuser")
    assert httpx.post(f"{live_server.url}/users/", json=body).status_code == 201

    page.goto(f"{live_server.url}/docs")
    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator("#oauth_username").fill(body["username"])
    dialog.locator("#oauth_password").fill(body["password"])
    dialog.locator(".auth-btn-wrapper .authorize").click()
    dialog.locator("button", has_text="Logout").wait_for(timeout=30_000)
    page.screenshot(path=artifacts / "docs-authorized.png")
    dialog.locator("button", has_text="Close").click()

    operation = page.locator("#operations-users-read_me_users_me_get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    response = operation.locator(".live-responses-table .response")
    response.wait_for(timeout=30_000)
    page.screenshot(path=artifacts / "docs-users-me.png", full_page=True)

    assert response.locator(".response-col_status").first.inner_text().strip() == "200"
    shown = operation.locator(".live-responses-table .microlight").first.inner_text()
    assert '"username": "userdocsuser"' in shown
    assert '"email": "userdocsuser@example.com"' in shown


def test_redoc_renders_the_operations(live_server: LiveServer, page: Any, artifacts: Path) -> None:
    urls = record_requests(page)

    page.goto(f"{live_server.url}/redoc")
    headings = page.locator("h2")
    headings.filter(has_text="Create a user").wait_for(timeout=30_000)
    page.screenshot(path=artifacts / "redoc.png")

    shown = headings.all_inner_texts()
    for summary in (
        "Create a user",
        "List users, a keyset page at a time",
        "Read one user (admins see the private view)",
    ):
        assert summary in shown
    assert_only_local(urls, live_server)
