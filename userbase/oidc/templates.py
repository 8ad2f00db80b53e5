"""The hosted pages' templates: Jinja2 files in the package (userbase/oidc/templates/), each
replaceable by a file of the same name in USERBASE_TEMPLATES_DIR, and their headers."""

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined
from markupsafe import Markup

from userbase.config import get_settings

STYLESHEET = "pages.css"
# The one script of the pages (WebAuthn needs JavaScript): a file of the package, in the
# static/ folder beside templates/, served from this origin.
PASSKEYS_SCRIPT = "passkeys.js"


@lru_cache(maxsize=2)
def _environment(directory: Path | None) -> Environment:
    loaders: list[Any] = [FileSystemLoader(directory)] if directory is not None else []
    loaders.append(PackageLoader("userbase.oidc", "templates"))
    # The console's pages (/account/, /console/) extend the same base.html.
    loaders.append(PackageLoader("userbase.console", "templates"))
    # Autoescape everything: the pages show a client's name and an error's description.
    # No auto_reload: templates are read once per process (a changed one is read on restart),
    # not checked on disk at every page.
    environment = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=True,
        undefined=StrictUndefined,
        auto_reload=False,
    )
    environment.globals["when"] = when
    return environment


def when(moment: datetime | None) -> Markup:
    """A time as the pages show it (UTC, to the minute), machine-readable in <time>; "-" for
    none. A function, not a macro: the console's tables call it on every row (a macro imported
    `with context` is evaluated anew at each page)."""
    if moment is None:
        return Markup("-")
    return Markup('<time datetime="{}">{}</time>').format(
        moment.isoformat(), moment.strftime("%Y-%m-%d %H:%M")
    )


def render(name: str, **context: Any) -> str:
    environment = _environment(get_settings().templates_dir)
    return environment.get_template(name).render(
        stylesheet=f"/oauth/{STYLESHEET}", passkeys_script=f"/oauth/{PASSKEYS_SCRIPT}", **context
    )


def stylesheet() -> str:
    environment = _environment(get_settings().templates_dir)
    source, _filename, _uptodate = environment.loader.get_source(environment, STYLESHEET)  # type: ignore[union-attr]
    return source


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"  # a native app's own scheme (RFC 8252)


def script() -> str:
    """passkeys.js, the one script of the oidc pages (a file of the package)."""
    return (files("userbase.oidc") / "static" / PASSKEYS_SCRIPT).read_text()


def headers(form_targets: Iterable[str] = (), *, scripts: bool = False) -> dict[str, str]:
    """No framing by anyone (clickjacking), no script (or, where `scripts`, scripts from this
    origin only: never inline), styles from this origin only, forms only to this origin and,
    where a form's answer redirects to a client, the client's (Chromium checks form-action on
    the redirects that follow a form)."""
    targets = " ".join(sorted({_origin(uri) for uri in form_targets}))
    script = "script-src 'self'; connect-src 'self'; " if scripts else ""
    csp = (
        f"default-src 'none'; {script}style-src 'self'; img-src 'self'; base-uri 'none'; "
        f"form-action 'self' {targets}".rstrip()
        + "; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
