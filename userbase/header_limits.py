"""Refuse oversized request headers (431) and header values that are not UTF-8 (400).

uvicorn already refuses control characters, an over-long request line and a malformed
Content-Length; it accepts headers of any total size and any byte above 0x7f.
"""

from starlette.types import ASGIApp, Receive, Scope, Send

from userbase.problem import problem


class HeaderLimits:
    """Pure ASGI middleware, in front of everything else."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        # Name, ": " and CRLF, as on the wire.
        size = sum(len(name) + len(value) + 4 for name, value in headers)
        if size > self.max_bytes:
            detail = f"The request headers are larger than {self.max_bytes} bytes."
            await problem(431, detail, instance=scope["path"])(scope, receive, send)
            return
        for name, value in headers:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                detail = f"The {name.decode('latin-1')} header is not valid UTF-8."
                await problem(400, detail, instance=scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)
