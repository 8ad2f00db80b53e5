"""`/oauth/sign-in?return_to=...`: the console's pages send a browser to sign in and get it back;
nothing else can use that to send a browser off the server (no open redirect)."""

from typing import Any

import pytest

from tests.oidc import submit_sign_in
from tests.tokens import create_user


def test_signing_in_with_return_to_goes_back_to_that_page(client: Any) -> None:
    create_user(1)
    page = client.get("/oauth/sign-in?return_to=/account/")
    assert page.status_code == 200
    signed_in = submit_sign_in(client, page, "user1")
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/account/"
    # Signed in already: the sign-in page sends the browser straight back.
    again = client.get("/oauth/sign-in?return_to=/console/users", follow_redirects=False)
    assert again.status_code == 302
    assert again.headers["location"] == "/console/users"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/account/",
        "//evil.example/account/",
        "/\\evil.example/account/",
        "/oauth/authorize?client_id=x",
        "/users/me",
        "account/",
        "/account/\nLocation: https://evil.example",
    ],
)
def test_return_to_is_never_followed_off_the_console(client: Any, target: str) -> None:
    create_user(1)
    page = client.get("/oauth/sign-in", params={"return_to": target})
    signed_in = submit_sign_in(client, page, "user1")
    # Not a page of the console: the query is read as an authorization request, which this
    # is not (no client): an error page, and the browser goes nowhere.
    assert signed_in.status_code == 400
    assert "location" not in signed_in.headers


def test_return_to_among_other_parameters_is_an_authorization_request(client: Any) -> None:
    """With anything beside it, the query is an authorization request (and this one is bad)."""
    create_user(1)
    page = client.get("/oauth/sign-in?return_to=/account/&client_id=nobody")
    signed_in = submit_sign_in(client, page, "user1")
    assert signed_in.status_code == 400
    assert "location" not in signed_in.headers


def test_the_console_stylesheet_is_served_and_nothing_else_of_the_package(client: Any) -> None:
    sheet = client.get("/console/static/console.css")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/css")
    for name in ("__init__.py", "..%2F__init__.py", "console_base.html", "missing.js"):
        assert client.get(f"/console/static/{name}").status_code == 404
