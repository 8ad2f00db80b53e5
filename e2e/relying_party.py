"""A relying party nobody here wrote the protocol of: a small Starlette web app that signs its
users in with userbase through Authlib's Starlette client (discovery, PKCE S256, nonce, the
ID token checked against the JWKS, RP-initiated logout). Started by the browser tests in a
thread of their own, as docs/oidc.md's FastAPI example would be deployed."""

import html
import socket
import threading
import time
from typing import Any

import uvicorn
from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _page(name: str, body: str) -> HTMLResponse:
    icon = '<link rel="icon" href="data:,">'  # no favicon request
    return HTMLResponse(f'<!doctype html><html lang="en"><title>{name}</title>{icon}{body}</html>')


def create_app(
    name: str, issuer: str, client_id: str, client_secret: str, base_url: str
) -> Starlette:
    oauth = OAuth()
    oauth.register(
        "userbase",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
    )

    async def home(request: Request) -> Response:
        user = request.session.get("user")
        if user is None:
            status, link = "Not signed in.", '<a href="/login">Sign in with userbase</a>'
        else:
            status = f"Signed in as {html.escape(user['preferred_username'])}"
            link = '<a href="/logout">Sign out</a>'
        return _page(name, f'<h1>{name}</h1><p id="status">{status}</p>{link}')

    async def login(request: Request) -> Response:
        return await oauth.userbase.authorize_redirect(request, f"{base_url}/callback")  # type: ignore[no-any-return]

    async def callback(request: Request) -> Response:
        token = await oauth.userbase.authorize_access_token(request)  # checks the ID token
        request.session["user"] = dict(token["userinfo"])
        request.session["id_token"] = token["id_token"]
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        id_token = request.session.pop("id_token", None)
        request.session.pop("user", None)
        return await oauth.userbase.logout_redirect(  # type: ignore[no-any-return]
            request, post_logout_redirect_uri=f"{base_url}/signed-out", id_token_hint=id_token
        )

    async def signed_out(request: Request) -> Response:
        await oauth.userbase.validate_logout_response(request)  # the state it sent came back
        return _page(name, '<p id="status">Signed out.</p>')

    return Starlette(
        routes=[
            Route("/", home),
            Route("/login", login),
            Route("/callback", callback),
            Route("/logout", logout),
            Route("/signed-out", signed_out),
        ],
        # Its own cookie name: the relying parties of a test share the host 127.0.0.1.
        middleware=[
            Middleware(SessionMiddleware, secret_key=f"e2e {name}", session_cookie=f"rp-{name}")
        ],
    )


class RelyingParty:
    """The app served by uvicorn in a thread, on a port of its own."""

    def __init__(self, name: str, issuer: str, client: Any, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        app = create_app(name, issuer, client.client_id, client.client_secret, self.url)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relying party {name} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
