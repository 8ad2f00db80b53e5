"""Set-up for the second-factor tests: an authenticator app (pyotp), a clock moved by steps."""

from datetime import timedelta
from typing import Any

import pyotp
import pytest

from tests.accounts import PASSWORD, bearer
from userbase.clock import CLOCK, utcnow

STEP = timedelta(seconds=30)


class StepClock:
    """userbase's clock (clock.CLOCK) set to the middle of a TOTP time step and moved a step
    at a time, so codes of "this step" and "the next" mean the same to test and server."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        # The server's minutely re-reading of the database's clock must not undo it.
        monkeypatch.setattr(CLOCK, "synchronize", lambda engine: CLOCK.offset)
        into_step = utcnow().timestamp() % STEP.total_seconds()
        self.move(timedelta(seconds=15 - into_step))

    def move(self, by: timedelta) -> None:
        self._monkeypatch.setattr(CLOCK, "offset", CLOCK.offset + by)


def code(secret: str, steps: int = 0) -> str:
    """The code an authenticator app with `secret` shows, `steps` time steps from now."""
    return pyotp.TOTP(secret).at(utcnow() + steps * STEP)


def enrol(client: Any, token: str) -> tuple[str, list[str]]:
    """Enrol and confirm an authenticator (with this step's code): its secret, the codes."""
    started = client.post(
        "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=bearer(token)
    )
    assert started.status_code == 201, started.text
    secret: str = started.json()["secret"]
    confirmed = client.post(
        "/users/me/mfa/totp/confirm", json={"code": code(secret)}, headers=bearer(token)
    )
    assert confirmed.status_code == 200, confirmed.text
    codes: list[str] = confirmed.json()["recovery_codes"]
    return secret, codes


def mfa_token_for(client: Any, login: str, password: str = PASSWORD) -> str:
    """The first step of a sign-in with a second factor: the mfa_token of its 401."""
    response = client.post("/auth/token", data={"username": login, "password": password})
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["mfa_required"] is True
    token: str = body["mfa_token"]
    return token


def second_step(client: Any, mfa_token: str, **code_or_recovery_code: str) -> Any:
    return client.post("/auth/token/mfa", json={"mfa_token": mfa_token, **code_or_recovery_code})
