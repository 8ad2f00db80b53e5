"""Headers every response carries: not cached unless it says so, and never content-sniffed.

No-store is the default, not a mark on the routes that need it: the answers that hold an email
or a token (an account view, a sign-in, a session list, the audit trail, a created user) are
most of the API, a route's answer can depend on who asks (`GET /users/{id}` is the account
view for an admin), and a route added later is covered without anyone remembering to. The
API has no conditional GET (no `If-None-Match`), so caching would save nothing anyway.
OWASP's REST Security Cheat Sheet asks for both headers on every API response.
A response that sets its own Cache-Control (the docs' static assets) keeps it.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Also sent by the answers made outside this middleware: the 500 (errors.py) and the
# protocol's own 400, 408 and 431 (http_protocol.py).
EVERY_RESPONSE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_DEFAULTS = tuple((name.lower().encode(), value.encode()) for name, value in EVERY_RESPONSE.items())


class SecurityHeaders:
    """Pure ASGI middleware: add each of EVERY_RESPONSE to every HTTP response lacking it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name for name, _ in headers}
                headers.extend(header for header in _DEFAULTS if header[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
