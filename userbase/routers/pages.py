"""The pages that links in mails open: verify an address, choose a new password, undo a change
of address."""

from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

_PAGES = files("userbase") / "pages"
# The pages hold a token in their URL fragment: keep them out of caches and other origins' frames.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@router.get("/verify-email")
async def verify_email_page() -> HTMLResponse:
    return HTMLResponse((_PAGES / "verify-email.html").read_text(), headers=_HEADERS)


@router.get("/reset-password")
async def reset_password_page() -> HTMLResponse:
    return HTMLResponse((_PAGES / "reset-password.html").read_text(), headers=_HEADERS)


@router.get("/undo-email-change")
async def undo_email_change_page() -> HTMLResponse:
    return HTMLResponse((_PAGES / "undo-email-change.html").read_text(), headers=_HEADERS)
