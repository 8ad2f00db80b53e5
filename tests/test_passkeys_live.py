"""Passkeys against a live server, used at once by several clients: one answer signs in (or
registers) once, whoever sends it at the same moment."""

import threading
from typing import Any

import httpx2 as httpx

from tests.accounts import PASSWORD, bearer
from tests.conftest import LiveServer
from tests.passkeys import SoftAuthenticator
from tests.tokens import create_user

USES = 4


def race(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[int]:
    """POST the same body USES times at once (threads released together)."""
    start = threading.Barrier(USES)
    statuses: list[int] = []

    def use() -> None:
        with httpx.Client() as client:
            start.wait()
            statuses.append(client.post(url, json=body, headers=headers or {}).status_code)

    threads = [threading.Thread(target=use) for _ in range(USES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def signed_in(server: LiveServer) -> str:
    create_user(1)
    response = httpx.post(
        f"{server.url}/auth/token", data={"username": "user1", "password": PASSWORD}
    )
    token: str = response.json()["access_token"]
    return token


def registration(server: LiveServer, token: str, authenticator: SoftAuthenticator) -> Any:
    options = httpx.post(
        f"{server.url}/users/me/mfa/passkeys/registration",
        json={"current_password": PASSWORD},
        headers=bearer(token),
    ).json()
    return {"name": "Laptop", "credential": authenticator.create(options)}


def test_one_registration_answer_sent_at_once_registers_once(live_server: LiveServer) -> None:
    token = signed_in(live_server)
    body = registration(live_server, token, SoftAuthenticator())

    statuses = race(f"{live_server.url}/users/me/mfa/passkeys", body, bearer(token))

    assert statuses == [201] + [400] * (USES - 1)


def test_one_assertion_sent_at_once_signs_in_once(live_server: LiveServer) -> None:
    token = signed_in(live_server)
    authenticator = SoftAuthenticator()
    body = registration(live_server, token, authenticator)
    added = httpx.post(f"{live_server.url}/users/me/mfa/passkeys", json=body, headers=bearer(token))
    assert added.status_code == 201, added.text
    waiting = httpx.post(
        f"{live_server.url}/auth/token", data={"username": "user1", "password": PASSWORD}
    ).json()["mfa_token"]
    options = httpx.post(
        f"{live_server.url}/auth/token/mfa/passkey", json={"mfa_token": waiting}
    ).json()
    answer = {"mfa_token": waiting, "passkey": authenticator.get(options)}

    statuses = race(f"{live_server.url}/auth/token/mfa", answer)

    assert statuses == [200] + [401] * (USES - 1)
