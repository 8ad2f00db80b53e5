"""Throwaway PostgreSQL and MariaDB servers of our own, to stop and start in outage tests.

The machine's shared servers also serve other work trees' test runs, so the outage tests never
restart them: they start a private server from the same binaries (its own data directory, port
and socket, in a temporary directory), restart it the same way an operator restarts the shared
one (PostgreSQL: pg_ctl's fast mode, which `pg_ctlcluster ... restart -m fast` runs; MariaDB:
`mariadb-admin shutdown`, then start-stop-daemon), and remove it at the end, whatever happened.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

# Debian installs each PostgreSQL major version under /usr/lib/postgresql/<version>.
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
MARIADBD = "/usr/sbin/mariadbd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(check: list[str], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if subprocess.run(check, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer within {seconds:g} s")


class PrivateServer:
    """Common life cycle: start in __enter__, remove everything in __exit__."""

    url: str

    def __init__(self, owner: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"userbase-{owner}-"))
        shutil.chown(self.root, owner)
        self.port = _free_port()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self, down_for: float) -> float:
        """Stop, stay down `down_for` seconds, start; return when it answers (monotonic)."""
        self.stop()
        time.sleep(down_for)
        self.start()
        return time.monotonic()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PrivatePostgres(PrivateServer):
    def __init__(self) -> None:
        super().__init__("postgres")
        self.data = self.root / "data"
        self._as_postgres(
            PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync"
        )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/userbase"

    def _as_postgres(self, *command: object) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, command)],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        log = self.root / "log"
        self._as_postgres(
            PG_BIN / "pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", "start"
        )
        ready = [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"]
        _wait_until(ready, "the private PostgreSQL")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def create_database(self) -> None:
        psql = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        subprocess.run([*psql, "-c", "CREATE DATABASE userbase"], check=True, capture_output=True)


class PrivateMariaDB(PrivateServer):
    def __init__(self) -> None:
        super().__init__("mysql")
        self.data = self.root / "data"
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.data}",
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        self.pidfile = self.root / "start-stop-daemon.pid"
        self.url = f"mysql+pymysql://root@127.0.0.1:{self.port}/userbase"

    def _admin(self, *command: str) -> list[str]:
        return ["mariadb-admin", "-uroot", "-h127.0.0.1", f"-P{self.port}", *command]

    def start(self) -> None:
        subprocess.run(
            [
                "start-stop-daemon",
                "--start",
                "--background",
                "--make-pidfile",
                f"--pidfile={self.pidfile}",
                f"--exec={MARIADBD}",
                "--",
                "--no-defaults",
                f"--datadir={self.data}",
                f"--port={self.port}",
                f"--socket={self.root / 'sock'}",
                "--bind-address=127.0.0.1",
                "--user=mysql",
                f"--log-error={self.root / 'error.log'}",
            ],
            check=True,
            capture_output=True,
        )
        _wait_until(self._admin("ping"), "the private MariaDB")

    def stop(self) -> None:
        if not self.pidfile.exists():
            return
        pid = int(self.pidfile.read_text())
        subprocess.run(self._admin("shutdown"), capture_output=True)
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():  # graceful shutdown failed: do not leave it running
            subprocess.run(["kill", "-9", str(pid)], check=False)
        self.pidfile.unlink()

    def create_database(self) -> None:
        subprocess.run(
            [
                "mariadb",
                "-uroot",
                "-h127.0.0.1",
                f"-P{self.port}",
                "-e",
                "CREATE DATABASE userbase CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            ],
            check=True,
            capture_output=True,
        )
