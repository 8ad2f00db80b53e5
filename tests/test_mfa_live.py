"""Second factors against a live server: one code used at once by several clients, and the
OAuth password grant's second step, driven by Authlib's client."""

import threading
from typing import Any

import httpx2 as httpx
import pyotp
import pytest
from authlib.integrations.httpx_client import OAuthError

from tests.accounts import PASSWORD, bearer
from tests.conftest import LiveServer
from tests.tokens import create_user, oauth_client, register_client
from userbase.clock import utcnow
from userbase.mfa.totp import DRIFT_STEPS
from userbase.tokens.grants import MFA_GRANT

USES = 4


def step_code(secret: str, steps: int) -> str:
    return pyotp.TOTP(secret).at(utcnow().timestamp() + 30 * steps)


def enrolled(server: LiveServer, n: int | str) -> tuple[str, list[str]]:
    """A user with an authenticator, confirmed with this step's code: its secret, its
    recovery codes."""
    create_user(n)
    signed_in = httpx.post(
        f"{server.url}/auth/token", data={"username": f"user{n}", "password": PASSWORD}
    )
    token = signed_in.json()["access_token"]
    started = httpx.post(
        f"{server.url}/users/me/mfa/totp",
        json={"current_password": PASSWORD},
        headers=bearer(token),
    )
    secret: str = started.json()["secret"]
    confirmed = httpx.post(
        f"{server.url}/users/me/mfa/totp/confirm",
        json={"code": step_code(secret, 0)},
        headers=bearer(token),
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


def mfa_token(server: LiveServer, n: int | str) -> str:
    response = httpx.post(
        f"{server.url}/auth/token", data={"username": f"user{n}", "password": PASSWORD}
    )
    assert response.status_code == 401, response.text
    token: str = response.json()["mfa_token"]
    return token


def race(server: LiveServer, bodies: list[dict[str, str]]) -> list[int]:
    """POST /auth/token/mfa with each body at once (threads released together)."""
    start = threading.Barrier(len(bodies))
    statuses: list[int] = []

    def use(body: dict[str, str]) -> None:
        with httpx.Client() as client:
            start.wait()
            statuses.append(client.post(f"{server.url}/auth/token/mfa", json=body).status_code)

    threads = [threading.Thread(target=use, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


@pytest.mark.parametrize("tokens", ["one mfa_token", "an mfa_token each"])
def test_concurrent_uses_of_one_code_at_most_one_succeeds(
    live_server: LiveServer, tokens: str
) -> None:
    secret, _ = enrolled(live_server, 1)
    # The next step's code: within the drift whether or not a step boundary passes meanwhile.
    assert DRIFT_STEPS >= 1
    code = step_code(secret, 1)
    if tokens == "one mfa_token":
        shared = mfa_token(live_server, 1)
        bodies = [{"mfa_token": shared, "code": code} for _ in range(USES)]
    else:
        bodies = [{"mfa_token": mfa_token(live_server, 1), "code": code} for _ in range(USES)]

    statuses = race(live_server, bodies)

    assert statuses == [200] + [401] * (USES - 1)


def test_concurrent_uses_of_one_recovery_code_at_most_one_succeeds(
    live_server: LiveServer,
) -> None:
    _, codes = enrolled(live_server, 1)

    statuses = race(
        live_server,
        [{"mfa_token": mfa_token(live_server, 1), "recovery_code": codes[0]} for _ in range(USES)],
    )

    assert statuses == [200] + [401] * (USES - 1)


def _password_grant_error(server: LiveServer, client_id: str, secret: str | None) -> Any:
    response = httpx.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "password", "username": "user1", "password": PASSWORD},
        auth=(client_id, secret or ""),
    )
    return response


def test_the_password_grant_asks_for_the_second_factor_and_the_mfa_grant_finishes_it(
    live_server: LiveServer,
) -> None:
    app = register_client()
    other_app = register_client()
    secret, _ = enrolled(live_server, 1)
    url = f"{live_server.url}/oauth/token"

    first = _password_grant_error(live_server, app.client_id, app.client_secret)
    assert first.status_code == 403
    body = first.json()
    assert body["error"] == "mfa_required"
    assert "access_token" not in body

    # Another client cannot finish this client's sign-in, nor can POST /auth/token/mfa.
    with oauth_client(other_app) as client, pytest.raises(OAuthError) as refused:
        client.fetch_token(
            url, grant_type=MFA_GRANT, mfa_token=body["mfa_token"], otp=step_code(secret, 1)
        )
    assert refused.value.error == "invalid_grant"
    direct = httpx.post(
        f"{live_server.url}/auth/token/mfa",
        json={"mfa_token": body["mfa_token"], "code": step_code(secret, 1)},
    )
    assert direct.status_code == 401

    with oauth_client(app) as client:
        token = client.fetch_token(
            url, grant_type=MFA_GRANT, mfa_token=body["mfa_token"], otp=step_code(secret, 1)
        )
    assert token["token_type"] == "Bearer"
    assert "refresh_token" in token
    me = httpx.get(f"{live_server.url}/users/me", headers=bearer(token["access_token"]))
    assert me.json()["username"] == "user1"
    # The refresh token goes on working without a code: it is the signed-in client's.
    with oauth_client(app) as client:
        refreshed = client.refresh_token(url, refresh_token=token["refresh_token"])
    assert "access_token" in refreshed


def test_the_mfa_grant_takes_a_recovery_code_once(live_server: LiveServer) -> None:
    app = register_client()
    _, codes = enrolled(live_server, 1)
    url = f"{live_server.url}/oauth/token"

    def finish() -> dict[str, Any]:
        mfa = _password_grant_error(live_server, app.client_id, app.client_secret).json()
        with oauth_client(app) as client:
            issued: dict[str, Any] = client.fetch_token(
                url, grant_type=MFA_GRANT, mfa_token=mfa["mfa_token"], recovery_code=codes[0]
            )
        return issued

    assert "access_token" in finish()
    with pytest.raises(OAuthError) as refused:
        finish()
    assert refused.value.error == "invalid_grant"
