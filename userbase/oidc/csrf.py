"""CSRF tokens of the pages' forms: OWASP's signed double-submit cookie.

The browser holds a random cookie (CSRF_COOKIE, HttpOnly, SameSite=Lax); each form carries an
HMAC of it under a key of its own (sealing.derived_key) and of the form's purpose, which names
the browser sign-in where there is one. Another site can neither read the cookie nor make
the HMAC, so it cannot make a form that passes; a token of one form or sign-in serves no other.
"""

import hashlib
import hmac
import secrets

from userbase.sealing import derived_key

CSRF_COOKIE = "userbase_csrf"
FIELD = "csrf_token"


def new_cookie() -> str:
    return secrets.token_urlsafe(32)


def form_token(cookie: str, purpose: str) -> str:
    key = derived_key(b"userbase csrf")
    return hmac.new(key, f"{purpose}\n{cookie}".encode(), hashlib.sha256).hexdigest()


def is_valid(cookie: str | None, purpose: str, token: str | None) -> bool:
    if not cookie or not token or len(cookie) > 64:
        return False
    return hmac.compare_digest(form_token(cookie, purpose), token)
