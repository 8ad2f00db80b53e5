"""Set-up for tests about accounts: sign up, sign in, become admin."""

from typing import Any

from sqlalchemy import update

from tests.conftest import new_user
from userbase.database import engine
from userbase.models import User

PASSWORD = "correct horse battery"


def sign_up(client: Any, n: int | str, **overrides: Any) -> dict[str, Any]:
    response = client.post("/users/", json=new_user(n, **overrides))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def sign_in(client: Any, login: str, password: str = PASSWORD) -> Any:
    return client.post("/auth/token", data={"username": login, "password": password})


def token_for(client: Any, login: str, password: str = PASSWORD) -> str:
    response = sign_in(client, login, password)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_admin(user_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(User).where(User.id == user_id).values(is_admin=True, version=User.version + 1)
        )


def signed_in_user(client: Any, n: int | str, *, admin: bool = False) -> tuple[dict[str, Any], str]:
    """A new user (an admin if asked) and a bearer token of theirs."""
    user = sign_up(client, n)
    if admin:
        make_admin(user["id"])
    return user, token_for(client, user["username"])
