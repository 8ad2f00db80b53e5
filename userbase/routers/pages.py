"""The pages that links in mails open: verify an address, choose a new password, undo a change
of address."""

import base64
import hashlib
import re
from functools import lru_cache
from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

_PAGES = files("userbase") / "pages"
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


@lru_cache
def _page(name: str) -> tuple[str, dict[str, str]]:
    """The page and its headers. It holds a token in its URL fragment: no cache, no Referer,
    no frame on another site, and only its own script may run (named by its hash)."""
    html = (_PAGES / name).read_text()
    digests = (hashlib.sha256(script.encode()).digest() for script in _SCRIPT.findall(html))
    scripts = " ".join(f"'sha256-{base64.b64encode(digest).decode()}'" for digest in digests)
    csp = (
        f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html, {
        "Cache-Control": "no-store",
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


@router.get("/verify-email")
async def verify_email_page() -> HTMLResponse:
    html, headers = _page("verify-email.html")
    return HTMLResponse(html, headers=headers)


@router.get("/reset-password")
async def reset_password_page() -> HTMLResponse:
    html, headers = _page("reset-password.html")
    return HTMLResponse(html, headers=headers)


@router.get("/undo-email-change")
async def undo_email_change_page() -> HTMLResponse:
    html, headers = _page("undo-email-change.html")
    return HTMLResponse(html, headers=headers)
