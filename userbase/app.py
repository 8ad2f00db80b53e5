"""create_app(): routers, error handlers, middleware, offline docs and the start-up schema check."""

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import PathLike
from starlette.types import Scope

from userbase import __version__, mail, mail_delivery
from userbase.admission import RequestDeadline, size_thread_pool
from userbase.body_limit import BodySizeLimit
from userbase.clock import CLOCK, RESYNC_SECONDS, WARN_ABOVE_SECONDS
from userbase.config import get_settings
from userbase.database import SessionLocal, engine, read_engine
from userbase.errors import install_error_handlers
from userbase.header_limits import HeaderLimits
from userbase.logs import configure_logging
from userbase.memory import release_free_memory, share_one_heap, tune_garbage_collector
from userbase.metrics import register_pool
from userbase.models import utcnow
from userbase.observe import ObserveRequests
from userbase.openapi import document_common_responses
from userbase.readiness import ensure_fit_to_serve, warn_about_durability
from userbase.routers import (
    account_pages,
    admin,
    auth,
    console_account,
    console_admin,
    console_clients,
    health,
    hosted,
    metrics,
    mfa,
    oidc,
    oidc_pages,
    pages,
    passkey_pages,
    passkeys,
    sign_ins,
    tokens,
    users,
)
from userbase.sealing import uses_development_key
from userbase.security_headers import SecurityHeaders
from userbase.serving import ServedApp
from userbase.throttle import prune_throttle_events
from userbase.tokens import keys as signing_keys
from userbase.worker_metrics import forget_dead_workers, worker_exiting

logger = logging.getLogger("userbase")

# Swagger UI 5.x and ReDoc, shipped inside the fastapi-offline wheel: the docs work with no
# internet. (swagger-ui-bundle 1.x ships Swagger UI 4, which cannot render OpenAPI 3.1.)
_DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
_ASSETS_URL = "/docs-assets"
# The docs pages may load nothing from elsewhere: ReDoc's bundle fetches its "API docs by
# Redocly" logo from cdn.redoc.ly otherwise (seen in e2e/test_docs_in_chromium.py). Inline
# script and style: the pages' own bootstrap; blob: workers: ReDoc's search. No other site
# may frame them (clickjacking the Authorize dialog).
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)


class _RevalidatedStaticFiles(StaticFiles):
    """The docs' assets (2.7 MB of Swagger UI and ReDoc) may be cached and reused once their
    ETag is checked: the no-store of every other response (security_headers.py) would fetch
    them again on each visit."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


async def _release_memory_forever(interval: float) -> None:
    """Every `interval` seconds, give the allocator's free pages back (memory.py)."""
    while True:
        await asyncio.sleep(interval)
        # In a thread: trimming takes milliseconds on a large heap, and the loop must not wait.
        await run_in_threadpool(release_free_memory)


def _synchronize_clock() -> None:
    offset = CLOCK.synchronize(engine).total_seconds()
    if abs(offset) > WARN_ABOVE_SECONDS:
        logger.warning(
            "HOST CLOCK OFF: this host's clock is %.1f s %s the database's; userbase keeps "
            "the database's time (clock.py), but fix the host's (NTP).",
            abs(offset),
            "behind" if offset > 0 else "ahead of",
        )


def _prune_throttle() -> None:
    # READ COMMITTED: no gap locks, so the prune never deadlocks requests counting events.
    pruning = SessionLocal(
        bind=engine.execution_options(isolation_level="READ COMMITTED")
        if engine.dialect.name != "sqlite"
        else engine
    )
    with pruning, pruning.begin():
        prune_throttle_events(pruning, utcnow())


async def _housekeeping_forever(interval: float) -> None:
    """Every `interval` seconds: the database's clock read again (clock.py), and the throttle's
    events that left every window deleted."""
    while True:
        await asyncio.sleep(interval)
        for chore in (_synchronize_clock, _prune_throttle):
            try:
                await run_in_threadpool(chore)
            except Exception:
                logger.warning(
                    "housekeeping: %s failed; next round in %ss", chore.__name__, interval
                )


class _MailSender:
    """The outbox sender: every `interval` seconds, deliver all that is due, until stopped."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        # Seen by the delivery thread between mails, and by the loop between rounds.
        self.stopping = threading.Event()
        self.woken = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                await run_in_threadpool(
                    mail_delivery.deliver_until_done, SessionLocal, self.stopping
                )
            except Exception:
                # The database may be away for a while; mail waits in the outbox meanwhile.
                logger.exception("mail sender: round failed; next round in %ss", self.interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.woken.wait(), self.interval)

    async def stop(self, grace: float) -> None:
        """Let the round finish the mail in flight and hand the rest of its batch back.

        Not task.cancel(): that would abandon the delivery thread in the middle of its batch
        (run_in_threadpool returns at once when cancelled), leaving its mails leased.
        """
        self.stopping.set()
        self.woken.set()
        try:
            await asyncio.wait_for(self.task, grace)
        except TimeoutError:
            logger.warning("mail sender: still sending after %ss; its lease will expire", grace)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    if settings.memory_trim_seconds > 0:
        share_one_heap()  # before the first worker thread starts (memory.py)
    size_thread_pool()
    configure_logging(settings)
    # One process's pool at least must fit; `userbase serve` checks all its workers' together.
    await run_in_threadpool(ensure_fit_to_serve, engine, settings, workers=1)
    await run_in_threadpool(signing_keys.prepare)
    await run_in_threadpool(warn_about_durability, engine)
    await run_in_threadpool(_synchronize_clock)
    if not settings.smtp_url:
        logger.warning(
            "USERBASE_SMTP_URL is not set: mails (with their links) are written to this log "
            "instead of being sent. Fine for development, not for production."
        )
    elif uses_development_key(settings):
        logger.warning(
            "USERBASE_SECRET_KEY is not set: the links in queued mails are sealed under a "
            "development key anyone with this code has. Set it to a long random string."
        )
    tune_garbage_collector()
    forget_dead_workers()
    tasks = [asyncio.create_task(_housekeeping_forever(RESYNC_SECONDS))]
    sender = _MailSender(settings.mail_poll_seconds) if settings.mail_background else None
    if settings.memory_trim_seconds > 0:
        tasks.append(asyncio.create_task(_release_memory_forever(settings.memory_trim_seconds)))
    yield
    if sender is not None:
        # The mail in flight ends within the SMTP timeout of its current step, the rest of the
        # batch goes back to the outbox at once for another instance to send.
        await sender.stop(grace=settings.shutdown_grace)
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # After uvicorn's graceful shutdown: no request is left to hand a connection back.
    logger.info("closing the pool; %s", engine.pool.status())
    engine.dispose()
    worker_exiting()


def _add_offline_docs(app: FastAPI) -> None:
    app.mount(_ASSETS_URL, _RevalidatedStaticFiles(directory=_DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title="userbase - Swagger UI",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{_ASSETS_URL}/favicon.png",
        )
        page.headers["Content-Security-Policy"] = _DOCS_CSP
        return page

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        page = get_swagger_ui_oauth2_redirect_html()
        page.headers["Content-Security-Policy"] = _DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}/openapi.json",
            title="userbase - ReDoc",
            redoc_js_url=f"{root}{_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = _DOCS_CSP
        return page


def create_app() -> FastAPI:
    settings = get_settings()
    # ServedApp: `uvicorn main:app` then serves as `userbase serve` does (serving.py).
    app = ServedApp(
        title="userbase",
        version=__version__,
        summary="The users service of the FastAPI + SQLAlchemy tutorial, built for real.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=None
        if settings.opentelemetry
        else {"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    register_pool(engine)
    mail.expose_given_up(read_engine)
    # In the order requests are most often matched: FastAPI 0.163 tries the included routers
    # one after another, each a scan of its routes, so the hot reads of users.router come
    # first (/users/5 587 -> 526 µs, a list page 810 -> 762 µs of CPU in one process,
    # `python -m bench.in_process`, 2026-12-03).
    # No path of one router is shadowed by another's: /users/{user_id} is one segment, and a
    # /users/me/... route and its /users/{user_id}/... twin are in the same router, "me" first.
    for router in (
        users.router,
        auth.router,
        tokens.router,
        sign_ins.router,
        mfa.router,
        passkeys.router,
        oidc.router,
        oidc_pages.router,
        account_pages.router,
        passkey_pages.router,
        hosted.router,
        console_account.router,
        console_admin.router,
        console_clients.router,
        admin.router,
        tokens.admin_router,
        pages.router,
        health.router,
        metrics.router,
    ):
        app.include_router(router)
    _add_offline_docs(app)
    document_common_responses(app)
    # The last one added runs first: ObserveRequests sees every request, preflights included.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestDeadline, seconds=settings.request_timeout)
    app.add_middleware(HeaderLimits, max_bytes=settings.max_header_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "X-Request-ID"],
            expose_headers=["ETag", "Location", "Link", "Retry-After", "X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(ObserveRequests, access_log=settings.access_log)
    return app


app = create_app()
