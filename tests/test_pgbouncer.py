"""userbase behind a real PgBouncer in transaction mode (USERBASE_PGBOUNCER=true).

The fixture starts a private pgbouncer (Debian's package, installed here if missing) on a free
port in front of the run's PostgreSQL database, with fewer server connections than userbase's
pool, so that consecutive transactions of one client connection land on different server
connections. If pgbouncer cannot be installed or started, the tests fail: they never skip.
"""

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import exc
from sqlalchemy.engine import make_url

from tests.conftest import LiveServer, _free_port, new_user, stop_process
from tests.databases import create_database
from userbase.config import Settings
from userbase.database import build_engine
from userbase.readiness import run_checks
from userbase.schema_revision import upgrade_to_head

pytestmark = pytest.mark.engines("postgresql")

# Fewer server connections than userbase's pool (10 + 5): the pooling is exercised for real.
SERVER_POOL_SIZE = 3
PARALLEL = 50


def _pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if found:
        return found
    # Debian's package; the index is refreshed only when the install cannot find it.
    if subprocess.run(["apt-get", "install", "-y", "pgbouncer"], capture_output=True).returncode:
        subprocess.run(["apt-get", "update"], capture_output=True, check=True)
        subprocess.run(["apt-get", "install", "-y", "pgbouncer"], capture_output=True, check=True)
    found = shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    assert found, "pgbouncer is not installed and `apt-get install -y pgbouncer` did not install it"
    return found


class PgBouncer:
    """A private pgbouncer in transaction mode, trust auth, on 127.0.0.1 and a free port."""

    def __init__(self, server_url: str) -> None:
        server = make_url(server_url)
        self.root = Path(tempfile.mkdtemp(prefix="userbase-pgbouncer-"))
        self.port = _free_port()
        self.server_port = server.port or 5432
        self.url = server.set(host="127.0.0.1", port=self.port).render_as_string(False)
        user = server.username or "postgres"
        (self.root / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={server.host or '127.0.0.1'} port={self.server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {SERVER_POOL_SIZE}\n"
            "max_client_conn = 500\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
        )
        # pgbouncer refuses to run as root; -u drops to postgres, which must read its files.
        for path in (self.root, *self.root.iterdir()):
            shutil.chown(path, "postgres")
        self.process = subprocess.Popen(
            [_pgbouncer_binary(), "-u", "postgres", str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_ready(server.database or "postgres", user)

    def _wait_until_ready(self, dbname: str, user: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=self.port, dbname=dbname, user=user, connect_timeout=2
                ) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        log = self.log()
        self.stop()
        raise RuntimeError(f"pgbouncer did not start on port {self.port}:\n{log}")

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text() if path.exists() else "(no log)"

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def pgbouncer(database_url: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(database_url)
    yield bouncer
    bouncer.stop()


@pytest.mark.live
def test_a_live_server_behind_pgbouncer_serves_parallel_creates_sign_ins_and_lists(
    pgbouncer: PgBouncer,
) -> None:
    server = LiveServer(pgbouncer.url, USERBASE_PGBOUNCER="true")
    try:
        with (
            httpx.Client(base_url=server.url, timeout=60) as client,
            ThreadPoolExecutor(PARALLEL) as pool,
        ):
            created = list(
                pool.map(lambda n: client.post("/users/", json=new_user(n)), range(PARALLEL))
            )
            assert [r.status_code for r in created] == [201] * PARALLEL

            def sign_in_and_read(n: int) -> list[int]:
                form = {"username": f"user{n}", "password": "correct horse battery"}
                token = client.post("/auth/token", data=form)
                auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
                me = client.get("/users/me", headers=auth)
                return [
                    token.status_code,
                    me.status_code,
                    me.json()["id"] == created[n].json()["id"],
                ]

            assert (
                list(pool.map(sign_in_and_read, range(PARALLEL))) == [[200, 200, True]] * PARALLEL
            )

            # The same statements again and again on every connection: past psycopg's
            # prepare_threshold (5), where server-side prepared statements would begin.
            def read(n: int) -> tuple[int, int]:
                listed = client.get("/users/", params={"limit": 10, "after": n % 40})
                one = client.get(f"/users/{created[n % PARALLEL].json()['id']}")
                return listed.status_code, one.status_code

            assert list(pool.map(read, range(PARALLEL * 6))) == [(200, 200)] * (PARALLEL * 6)
            assert len(client.get("/users/", params={"limit": 1000}).json()) == PARALLEL
    finally:
        server.stop()


def test_every_readiness_check_passes_through_pgbouncer_with_pools_larger_than_postgresql(
    pgbouncer: PgBouncer,
) -> None:
    """PostgreSQL's max_connections (100) limits PgBouncer's pools, not userbase's 4 x 400."""
    settings = Settings(
        database_url=pgbouncer.url,
        pgbouncer=True,
        pool_size=200,
        max_overflow=200,
        secret_key=SecretStr("a secret from the vault, 32 characters"),  # else "secret key" warns
    )
    engine = build_engine(settings)
    try:
        checks = list(run_checks(engine, settings, workers=4))
    finally:
        engine.dispose()
    assert {check.status for check in checks} == {"ok"}, checks
    budget = next(check for check in checks if check.name == "connection budget")
    assert "1600 connections to PgBouncer" in budget.detail


def test_without_the_setting_pgbouncer_refuses_our_connections(pgbouncer: PgBouncer) -> None:
    """The statement timeout travels in the startup packet's `options`, which PgBouncer rejects."""
    engine = build_engine(Settings(database_url=pgbouncer.url, pgbouncer=False))
    try:
        with (
            pytest.raises(exc.OperationalError, match="unsupported startup parameter"),
            engine.connect(),
        ):
            pass
    finally:
        engine.dispose()


def test_the_statement_timeout_holds_in_every_transaction_and_stays_in_it(
    pgbouncer: PgBouncer,
) -> None:
    engine = build_engine(
        Settings(database_url=pgbouncer.url, pgbouncer=True, statement_timeout_ms=300)
    )
    try:
        for _ in range(SERVER_POOL_SIZE * 3):
            with engine.begin() as connection:
                assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "300ms"
        with (
            pytest.raises(exc.OperationalError, match="statement timeout"),
            engine.begin() as connection,
        ):
            connection.exec_driver_sql("SELECT pg_sleep(2)")
    finally:
        engine.dispose()
    # SET LOCAL ended with each transaction: no pooled server connection kept our timeout.
    url = make_url(pgbouncer.url)
    server_default = _show_statement_timeout(url.database, url.username, pgbouncer.server_port)
    assert server_default != "300ms"
    for _ in range(SERVER_POOL_SIZE * 3):
        assert _show_statement_timeout(url.database, url.username, pgbouncer.port) == server_default


def _errors_of_repeated_transactions(
    run_one: Callable[[int], None], clients: int = 10
) -> list[str]:
    """`clients` threads each run the same statement in 50 transactions; the errors they met."""
    errors: list[str] = []

    def client() -> None:
        for i in range(50):
            try:
                run_one(i)
            except Exception as error:
                errors.append(str(error).splitlines()[0])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_psycopg_prepared_statements_break_behind_pgbouncer_and_ours_are_off(
    pgbouncer: PgBouncer,
) -> None:
    url = make_url(pgbouncer.url)
    local = threading.local()
    connections: list[psycopg.Connection[tuple[object, ...]]] = []

    def with_psycopg_defaults(i: int) -> None:
        # psycopg prepares a statement on its 5th run (prepare_threshold=5), on the server
        # connection of that transaction; the next transaction may run on another one.
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(
                host="127.0.0.1", port=pgbouncer.port, dbname=url.database, user=url.username
            )
            connections.append(local.conn)
        with local.conn.transaction():
            local.conn.execute("SELECT %s::int + 1", (i,)).fetchone()

    try:
        errors = _errors_of_repeated_transactions(with_psycopg_defaults)
    finally:
        for conn in connections:
            conn.close()
    assert any("prepared statement" in error for error in errors), errors

    engine = build_engine(Settings(database_url=pgbouncer.url, pgbouncer=True))

    def with_userbase_engine(i: int) -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("SELECT %s::int + 1", (i,)).one()

    try:
        assert _errors_of_repeated_transactions(with_userbase_engine) == []
    finally:
        engine.dispose()


def _show_statement_timeout(dbname: str | None, user: str | None, port: int) -> str:
    with psycopg.connect(host="127.0.0.1", port=port, dbname=dbname, user=user) as conn:
        row = conn.execute("SHOW statement_timeout").fetchone()
    assert row is not None
    return str(row[0])


def test_migrations_run_through_pgbouncer_and_leave_no_timeout_behind(
    pgbouncer: PgBouncer,
) -> None:
    """`userbase migrate` lifts the statement timeout with SET LOCAL, not a session-wide SET."""
    fresh = create_database("postgresql")
    try:
        # A server default other than 0, so that a leaked `SET statement_timeout = 0` shows.
        with psycopg.connect(
            host="127.0.0.1", port=pgbouncer.server_port, user="postgres", autocommit=True
        ) as conn:
            conn.execute(f'ALTER DATABASE "{fresh.name}" SET statement_timeout = 7000')
        url = make_url(pgbouncer.url).set(database=fresh.name).render_as_string(False)
        engine = build_engine(Settings(database_url=url, pgbouncer=True, statement_timeout_ms=300))
        try:
            upgrade_to_head(engine)
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT count(*) FROM users").scalar() == 0
        finally:
            engine.dispose()
        server_default = _show_statement_timeout(fresh.name, "postgres", pgbouncer.server_port)
        assert server_default == "7s"
        for _ in range(SERVER_POOL_SIZE * 3):
            assert _show_statement_timeout(fresh.name, "postgres", pgbouncer.port) == server_default
    finally:
        fresh.drop()
