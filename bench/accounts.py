"""The bench's own account on userbase: signed up and signed in like a client, for GET /users/me."""

import json
import secrets
import urllib.parse
import urllib.request

from bench.hashing import PASSWORD


def _post(url: str, body: bytes, content_type: str) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 (the bench's own server on 127.0.0.1)
        url, data=body, headers={"Content-Type": content_type}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        document: dict[str, object] = json.load(answer)
        return document


def sign_up_and_sign_in(base_url: str) -> str:
    """A bearer token of a user signed up through POST /users/ and POST /auth/token."""
    name = f"bench{secrets.token_hex(4)}"
    account = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    _post(f"{base_url}/users/", json.dumps(account).encode(), "application/json")
    form = urllib.parse.urlencode({"username": name, "password": PASSWORD}).encode()
    answer = _post(f"{base_url}/auth/token", form, "application/x-www-form-urlencoded")
    return str(answer["access_token"])
