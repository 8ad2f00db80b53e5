"""The console: two server-rendered web apps on top of the domain functions, `/account/` for
every user and `/console/` for admins (docs/console.md). Their templates (templates/, which
extend the hosted pages' base.html) and their static files (static/: a stylesheet and a little
JavaScript, served by userbase itself, never from a CDN)."""

import re
from importlib.resources import files
from importlib.resources.abc import Traversable

STATIC_PATH = "/console/static"
_STATIC_NAME = re.compile(r"[a-z0-9_-]+\.(css|js)")
MEDIA_TYPES = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8"}


def static_file(name: str) -> Traversable | None:
    """A file of static/ by its plain name (no folders, only .css and .js), or None."""
    if not _STATIC_NAME.fullmatch(name):
        return None
    found = files(__name__) / "static" / name
    return found if found.is_file() else None
