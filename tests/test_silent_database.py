"""A database that stops answering without closing its connections (a silent network partition,
a hung server): requests answer 503 within the read timeout instead of hanging, and the service
recovers by itself when the database answers again."""

import time

import httpx2 as httpx
import pytest
from sqlalchemy.engine import make_url

from tests.blackhole_proxy import BlackholeProxy
from tests.conftest import LiveServer, new_user

pytestmark = pytest.mark.engines("postgresql", "mariadb")

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
# Statement timeout 1 s, so reads time out after 1 + 2 s (read_timeouts.py); connections that
# cannot be made give up after 2 s (libpq's minimum). The request deadline is far above both:
# a 504 would mean the wait was not bounded by the database client.
SETTINGS = {
    "USERBASE_STATEMENT_TIMEOUT_MS": "1000",
    "USERBASE_CONNECT_TIMEOUT": "2",
    "USERBASE_REQUEST_TIMEOUT": "60",
}
READ_TIMEOUT = 3.0


def _through(proxy: BlackholeProxy, database_url: str) -> str:
    return (
        make_url(database_url)
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False)
    )


def _is_503_to_retry(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0


def test_a_database_gone_silent_is_503_within_the_read_timeout_and_then_recovers(
    database_url: str,
) -> None:
    target = make_url(database_url)
    with BlackholeProxy(
        target.host or "127.0.0.1", target.port or DEFAULT_PORTS[target.get_backend_name()]
    ) as proxy:
        server = LiveServer(_through(proxy, database_url), **SETTINGS)
        try:
            with httpx.Client(base_url=server.url, timeout=20) as client:
                user = client.post("/users/", json=new_user(1))
                assert user.status_code == 201
                assert client.get(f"/users/{user.json()['id']}").status_code == 200

                proxy.blackhole()
                # A read in flight on a pooled connection: its query goes out, no answer comes.
                started = time.monotonic()
                in_flight = client.get(f"/users/{user.json()['id']}")
                waited = time.monotonic() - started
                _is_503_to_retry(in_flight)
                assert READ_TIMEOUT - 0.5 <= waited < READ_TIMEOUT + 4, waited
                # Readiness says so too, within the connect timeout, and so does a write.
                started = time.monotonic()
                _is_503_to_retry(client.get("/readyz"))
                _is_503_to_retry(client.post("/users/", json=new_user(2)))
                assert time.monotonic() - started < 2 * (READ_TIMEOUT + 4)

                proxy.forward()

                deadline = time.monotonic() + 20
                while (answer := client.post("/users/", json=new_user(3))).status_code != 201:
                    _is_503_to_retry(answer)
                    assert time.monotonic() < deadline, "no 201 within 20 s of the database back"
                    time.sleep(0.2)
                assert client.get("/readyz").status_code == 200
                assert client.get("/users/", params={"limit": 5}).status_code == 200
        finally:
            server.stop()


_SLEEP = {"postgresql": "SELECT pg_sleep(3.5)", "mysql": "SELECT SLEEP(3.5)"}
_NO_STATEMENT_TIMEOUT = {
    "postgresql": "SET statement_timeout = 0",
    "mysql": "SET SESSION max_statement_time = 0",
}


def test_reads_past_the_read_timeout_fail_except_where_it_is_lifted(database_url: str) -> None:
    """Migrations lift it (env.py), as they lift the statement timeout: a statement may take
    as long as rewriting a table takes."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from userbase.config import Settings
    from userbase.database import build_engine
    from userbase.read_timeouts import no_read_timeout

    # Read timeout 0.5 + 2 s: a 3.5 s statement outlasts it.
    engine = build_engine(Settings(DATABASE_URL=database_url, statement_timeout_ms=500))  # type: ignore[call-arg]
    backend = engine.dialect.name
    try:
        with engine.connect() as connection:
            connection.execute(text(_NO_STATEMENT_TIMEOUT[backend]))
            with pytest.raises(OperationalError) as lost:
                connection.execute(text(_SLEEP[backend]))
            assert lost.value.connection_invalidated
        with engine.connect() as connection:
            connection.execute(text(_NO_STATEMENT_TIMEOUT[backend]))
            with no_read_timeout(connection.connection.dbapi_connection):
                connection.execute(text(_SLEEP[backend]))
    finally:
        engine.dispose()
