"""Answers holding an email or a token are never cached; no answer is content-sniffed; the HTML
pages may not be framed and run only their own scripts."""

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.accounts import PASSWORD, bearer, sign_up, signed_in_user, token_for
from tests.conftest import new_user
from tests.smtp import SMTPServer
from tests.test_lifecycle import deliver, link_in, smtp  # noqa: F401 (smtp: a fixture)
from userbase.app import create_app

# Each route whose answer holds an email address or a token, called as its users call it.
Call = Callable[[Any, dict[str, Any]], Any]
ROUTES_WITH_SECRETS: dict[str, Call] = {
    "POST /users/": lambda client, ctx: client.post("/users/", json=new_user("new")),
    "GET /users/me": lambda client, ctx: client.get("/users/me", headers=ctx["user"]),
    "GET /users/{id} (admin)": lambda client, ctx: client.get(
        f"/users/{ctx['user_id']}", headers=ctx["admin"]
    ),
    "PATCH /users/{id}": lambda client, ctx: client.patch(
        f"/users/{ctx['user_id']}", json={"display_name": "Ada"}, headers=ctx["user"]
    ),
    "POST /users/batch": lambda client, ctx: client.post(
        "/users/batch", json=[new_user("batched")], headers=ctx["admin"]
    ),
    "POST /auth/token": lambda client, ctx: client.post(
        "/auth/token", data={"username": "user1", "password": "correct horse battery"}
    ),
    "GET /users/me/sessions": lambda client, ctx: client.get(
        "/users/me/sessions", headers=ctx["user"]
    ),
    "GET /users/{id}/sessions": lambda client, ctx: client.get(
        f"/users/{ctx['user_id']}/sessions", headers=ctx["admin"]
    ),
    "GET /users/{id}/lockout": lambda client, ctx: client.get(
        f"/users/{ctx['user_id']}/lockout", headers=ctx["admin"]
    ),
    "GET /admin/events": lambda client, ctx: client.get("/admin/events", headers=ctx["admin"]),
    "POST /auth/verify": lambda client, ctx: client.post(
        "/auth/verify", json={"token": ctx["verify_token"]}
    ),
    "PATCH /users/{id} (email)": lambda client, ctx: client.patch(
        f"/users/{ctx['user_id']}",
        json={"email": "moved@example.com", "current_password": PASSWORD},
        headers=ctx["user"],
    ),
    "GET /verify-email": lambda client, ctx: client.get("/verify-email"),
    "GET /reset-password": lambda client, ctx: client.get("/reset-password"),
    "GET /undo-email-change": lambda client, ctx: client.get("/undo-email-change"),
}


@pytest.fixture
def accounts(client: Any, smtp: SMTPServer) -> dict[str, Any]:  # noqa: F811
    user = sign_up(client, 1)
    deliver()
    _, admin_token = signed_in_user(client, "admin", admin=True)
    return {
        "user_id": user["id"],
        "user": bearer(token_for(client, "user1")),
        "admin": bearer(admin_token),
        "verify_token": link_in(smtp.mailbox.to("user1@example.com")[0], "verify-email"),
    }


@pytest.mark.parametrize("call", ROUTES_WITH_SECRETS.values(), ids=ROUTES_WITH_SECRETS.keys())
def test_answers_with_an_email_or_a_token_are_no_store(
    client: Any, accounts: dict[str, Any], call: Call
) -> None:
    response = call(client, accounts)
    assert response.status_code < 300, response.text
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "path", ["/users/", "/users/999", "/healthz", "/metrics", "/openapi.json", "/docs", "/nowhere"]
)
def test_every_answer_is_nosniff_and_no_store(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_undoing_an_email_change_is_no_store(
    client: Any,
    accounts: dict[str, Any],
    smtp: SMTPServer,  # noqa: F811
) -> None:
    ROUTES_WITH_SECRETS["PATCH /users/{id} (email)"](client, accounts)
    deliver()
    undo = link_in(smtp.mailbox.to("user1@example.com")[-1], "undo-email-change")

    response = client.post("/auth/undo-email-change", json={"token": undo})

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"


def test_the_headers_are_sent_once_when_a_route_sets_them_itself(
    client: Any, accounts: dict[str, Any]
) -> None:
    response = ROUTES_WITH_SECRETS["POST /auth/token"](client, accounts)
    assert response.headers.get_list("cache-control") == ["no-store"]
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


def test_a_500_is_nosniff_and_no_store_too() -> None:
    app = create_app()

    @app.get("/test/fail")
    def fail() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/test/fail")
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "path",
    [
        "/docs",
        "/redoc",
        "/docs/oauth2-redirect",
        "/verify-email",
        "/reset-password",
        "/undo-email-change",
    ],
)
def test_html_pages_may_not_be_framed_and_load_nothing_from_elsewhere(
    client: Any, path: str
) -> None:
    policy = client.get(path).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] in ("'self'", "'none'")


@pytest.mark.parametrize("page", ["verify-email", "reset-password", "undo-email-change"])
def test_the_mail_pages_run_only_their_own_script(client: Any, page: str) -> None:
    response = client.get(f"/{page}")
    [script] = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = response.headers["content-security-policy"]
    assert f"script-src 'sha256-{digest}';" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_the_docs_assets_may_be_cached_once_revalidated(client: Any) -> None:
    asset = "/docs-assets/swagger-ui.css"
    first = client.get(asset)
    assert first.headers["cache-control"] == "no-cache"
    again = client.get(asset, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
