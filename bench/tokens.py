"""The token cases' set-up: clients registered with `userbase clients create`, and tokens got
from userbase's own /oauth/token, the way an application gets them.

The refresh grant rotates its refresh token on every use, so a load generator cannot send one
token again and again: each wrk connection is a client that keeps the refresh token of its own
sign-in and spends the one its last answer brought (`refresh` in bench/wrk.lua). Those chains
start from refresh tokens made here, one sign-in per connection, fresh for every wrk run (a run
ends with answers unread, so its chains cannot be carried over).
"""

import base64
import json
import os
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass

from bench.database import ROOT, BenchDatabase
from bench.hashing import PASSWORD
from bench.servers import BIN


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str

    @property
    def basic(self) -> str:
        """client_secret_basic (RFC 6749 section 2.3.1: form-encoded, then Base64)."""
        quote = urllib.parse.quote_plus
        pair = f"{quote(self.client_id)}:{quote(self.client_secret)}"
        return "Basic " + base64.b64encode(pair.encode()).decode()


def register_client(database: BenchDatabase, name: str, *grants: str) -> Client:
    """A confidential first-party client, registered as an operator would."""
    argv = [str(BIN / "userbase"), "clients", "create", "--name", name, "--first-party"]
    for grant in grants:
        argv += ["--grant", grant]
    env = {k: v for k, v in os.environ.items() if k.startswith("USERBASE_")}
    env.update(PATH="/usr/bin:/bin", DATABASE_URL=database.sqlalchemy_url)
    done = subprocess.run(argv, check=True, cwd=ROOT, env=env, capture_output=True, text=True)
    line = json.loads(done.stdout.strip().splitlines()[-1])
    return Client(line["client_id"], line["client_secret"])


def _token_request(base_url: str, client: Client, form: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(  # noqa: S310 (the bench's own server on 127.0.0.1)
        f"{base_url}/oauth/token",
        data=urllib.parse.urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": client.basic,
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        document: dict[str, str] = json.load(answer)
        return document


class TokenSource:
    """Tokens of the bench's user, signed in through the bench's first-party app."""

    def __init__(self, base_url: str, app: Client, username: str) -> None:
        self.base_url = base_url
        self.app = app
        self.username = username
        self._refresh_token = self.sign_in()["refresh_token"]

    def sign_in(self) -> dict[str, str]:
        """A new sign-in (the password grant: one argon2 hash on the server)."""
        return _token_request(
            self.base_url,
            self.app,
            {"grant_type": "password", "username": self.username, "password": PASSWORD},
        )

    def access_token(self) -> str:
        """A fresh access token of one sign-in (a refresh: no hash), so that a case never
        runs into the token's expiry (5 minutes by default)."""
        answer = _token_request(
            self.base_url,
            self.app,
            {"grant_type": "refresh_token", "refresh_token": self._refresh_token},
        )
        self._refresh_token = answer["refresh_token"]
        return answer["access_token"]

    def refresh_chains(self, count: int) -> tuple[str, ...]:
        """wrk.lua's `refresh` arguments: `count` refresh tokens, each of its own sign-in."""
        return (str(count), *(self.sign_in()["refresh_token"] for _ in range(count)))
