"""How uvicorn serves userbase: which proxies it believes, and the HTTP protocol it runs.

Only USERBASE_TRUSTED_PROXIES decides whose X-Forwarded-For (and X-Forwarded-Proto) is
believed. uvicorn's own default believes them from 127.0.0.1 and ::1 (`--proxy-headers`, on,
with FORWARDED_ALLOW_IPS): behind any local proxy, every client could then pick the address
the throttle counts and the audit trail records. `userbase serve` passes these options to
uvicorn; `uvicorn main:app`, the tutorial's command, builds its server before it imports the
app, so the app (`ServedApp`) applies the same options to that server at start-up, before it
accepts its first connection.
"""

import ipaddress
import logging
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.lifespan.on import LifespanOn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from userbase.config import Settings, get_settings
from userbase.http_protocol import BoundedHeadProtocol

logger = logging.getLogger("userbase")


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.run` that follow userbase's settings."""
    return {
        "http": BoundedHeadProtocol,
        # With no trusted proxy, no proxy header is read at all; else only from those proxies.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies),
        # Used only if someone picks `http="h11"` instead of our protocol.
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }


def apply_to_uvicorn(config: Config, settings: Settings) -> None:
    """Make a uvicorn server that is starting follow `uvicorn_options`.

    uvicorn reads `config.loaded_app` and `config.http_protocol_class` afresh for each new
    connection and starts listening only after the lifespan start-up, so replacing them then
    applies to every request (uvicorn 0.54's `Server.startup` and protocol constructors).
    """
    app: Any = config.loaded_app
    if isinstance(app, ProxyHeadersMiddleware):
        app = app.app
    options = uvicorn_options(settings)
    if options["proxy_headers"]:
        app = ProxyHeadersMiddleware(app, trusted_hosts=options["forwarded_allow_ips"])
    config.loaded_app = app
    config.proxy_headers = options["proxy_headers"]
    config.forwarded_allow_ips = options["forwarded_allow_ips"]
    config.h11_max_incomplete_event_size = options["h11_max_incomplete_event_size"]
    # uvicorn's default (httptools) gets its bounded variant; a protocol chosen on purpose
    # (`--http h11`, bounded in size by the line above) is left alone.
    if config.http_protocol_class is HttpToolsProtocol:
        config.http_protocol_class = BoundedHeadProtocol


class ServedApp(FastAPI):
    """FastAPI, which on its lifespan start-up under uvicorn calls `apply_to_uvicorn`.

    The lifespan is the one moment the app hears from uvicorn before any connection: the
    `receive` uvicorn passes is a method of its LifespanOn, which holds the server's Config.
    FastAPI wraps that `receive` before any middleware sees it, hence a subclass. Under another
    server, or with `--lifespan off`, nothing is changed (docs/security.md).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            lifespan = getattr(receive, "__self__", None)
            if isinstance(lifespan, LifespanOn):
                apply_to_uvicorn(lifespan.config, get_settings())
        await super().__call__(scope, receive, send)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name, which may resolve anywhere
        return False


def warn_if_metrics_exposed(host: str, settings: Settings) -> None:
    """`userbase serve` on an address others can reach, with /metrics open to anyone."""
    if settings.metrics_token is None and not _is_loopback(host):
        logger.warning(
            "GET /metrics is public and the server listens on %s: anyone who reaches it reads "
            "the request counts, the routes and the process's memory. Set "
            "USERBASE_METRICS_TOKEN (the scraper then sends it as a bearer token), or keep "
            "/metrics away from the public at your proxy.",
            host,
        )
