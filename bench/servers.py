"""The systems under test: how each one starts, pinned to the server core, and how it is stopped."""

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bench.database import ROOT, BenchDatabase

BIN = ROOT / ".venv" / "bin"
# A server using under 5% of a core over half a second has finished its backlog.
IDLE_SAMPLE_SECONDS = 0.5
IDLE_CPU_SHARE = 0.05
_UVICORN_FLAGS = ("--host", "127.0.0.1", "--no-access-log", "--log-level", "warning")


@dataclass(frozen=True)
class System:
    name: str
    title: str
    argv: tuple[str, ...]  # "{port}" is replaced by the port
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/users/1"  # answers 200 once the system serves


def uvicorn_system(
    name: str,
    title: str,
    app: str,
    env: dict[str, str] | None = None,
    ready_path: str = "/users/1",
) -> System:
    """An ASGI app served by uvicorn, as every system but DRF is."""
    argv = (str(BIN / "uvicorn"), app, "--port", "{port}", *_UVICORN_FLAGS)
    return System(name, title, argv, env or {}, ready_path)


def resource_server_system(
    name: str, example: str, title: str, userbase_url: str, issuer: str, audience: str
) -> System:
    """An example of examples/ (`example`: its module) that checks userbase's access tokens
    with the published keys, fetched from the userbase under test; `issuer` and `audience` as
    userbase's settings say."""
    return uvicorn_system(
        name,
        title,
        f"examples.{example}:app",
        {
            "USERBASE_URL": issuer,
            "TOKEN_AUDIENCE": audience,
            "USERBASE_JWKS_URL": f"{userbase_url}/.well-known/jwks.json",
        },
        ready_path="/healthz",
    )


def systems(database: BenchDatabase) -> list[System]:
    """Every system, each on the bench database. The ceiling comes first: ratios are against it."""
    url = {"DATABASE_URL": database.sqlalchemy_url}
    # wrk runs on this host: it is the trusted proxy, and each sign-up names a client address
    # of its own (X-Forwarded-For, bench/wrk.lua), as people signing up do. Sign-ups from one
    # address are limited (20 an hour, issue 16).
    userbase_env = {**url, "USERBASE_TRUSTED_PROXIES": "127.0.0.1"}
    return [
        uvicorn_system(
            "ceiling",
            "raw ASGI + asyncpg + orjson",
            "bench.peers.ceiling:app",
            {"CEILING_DSN": database.dsn},
        ),
        uvicorn_system(
            "userbase", "userbase (uvicorn userbase.app:app)", "userbase.app:app", userbase_env
        ),
        uvicorn_system(
            "tutorial",
            "the tutorial: query(User).offset().limit().all()",
            "bench.peers.tutorial_app:app",
            url,
        ),
        uvicorn_system(
            "tutorial-all",
            "the tutorial: query(User).all()",
            "bench.peers.tutorial_app:app_all",
            url,
        ),
        System(
            "drf",
            "Django REST framework, gunicorn, 1 sync worker",
            (
                str(BIN / "gunicorn"),
                "--workers=1",
                "--worker-class=sync",
                "--bind=127.0.0.1:{port}",
                "--log-level=warning",
                "bench.peers.drf.wsgi:application",
            ),
            {
                "DRF_DB_NAME": database.name,
                "DRF_DB_HOST": database.host,
                "DRF_DB_PORT": str(database.port),
            },
        ),
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _base_env() -> dict[str, str]:
    # Servers run from an empty directory with only these variables (and any USERBASE_* the
    # caller set), so a developer's .env or shell does not change what is measured.
    env = {k: v for k, v in os.environ.items() if k.startswith("USERBASE_")}
    env.update(PATH=f"{BIN}:/usr/local/bin:/usr/bin:/bin", PYTHONPATH=str(ROOT), LANG="C.UTF-8")
    return env


class Server:
    """One system's process tree, in its own session so that stop() reaches all of it."""

    def __init__(self, system: System, cpu: int, workdir: Path) -> None:
        self.system = system
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{system.name}.log"
        argv = [arg.replace("{port}", str(self.port)) for arg in system.argv]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["taskset", "-c", str(cpu), *argv],
                cwd=workdir,
                env={**_base_env(), **system.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float) -> None:
        """Wait until the server answers, or raise: after start, and before each case."""
        if not self._answers(timeout):
            raise RuntimeError(f"{self.system.name} not ready after {timeout} s: {self.log_tail()}")

    def settle(self, timeout: float) -> bool:
        """Whether, within `timeout`, the server went idle and then answered.

        A server keeps working on the requests of a load generator that has gone (wrk leaves
        up to one per connection in flight, and neither a sync route nor a gunicorn backlog
        notices that the client left). Waiting for that work to end keeps one run's leftovers
        out of the next run's core time, and out of the database the next step loads.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._cpu_busy(IDLE_SAMPLE_SECONDS):
                continue
            return self._answers(deadline - time.monotonic())
        return False

    def _cpu_busy(self, seconds: float) -> bool:
        pid = self.worker_pid()
        before = _cpu_seconds(pid)
        time.sleep(seconds)
        return _cpu_seconds(pid) - before > IDLE_CPU_SHARE * seconds

    def _answers(self, timeout: float) -> bool:
        path = self.system.ready_path
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.system.name} exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=5) as answer:  # noqa: S310
                    if answer.status == 200:
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        return False

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def worker_pid(self) -> int:
        """The process serving requests: gunicorn's worker, else the process itself."""
        children = _children(self.process.pid)
        return children[0] if children else self.process.pid

    def rss_bytes(self) -> int:
        return _rss_bytes(self.worker_pid())

    def cpu_seconds(self) -> float:
        """CPU time used so far by the whole server (gunicorn's master and worker alike)."""
        pids = {self.process.pid, *_children(self.process.pid)}
        return sum(_cpu_seconds(pid) for pid in pids)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # The session may outlive its leader (a gunicorn worker): make sure none of it remains.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


class Servers:
    """Starts systems on demand and stops every one of them on exit, whatever happened."""

    def __init__(self, cpu: int, workdir: Path) -> None:
        self.cpu = cpu
        self.workdir = workdir
        self.running: dict[str, Server] = {}

    def start(self, system: System, ready_timeout: float = 60) -> Server:
        server = Server(system, self.cpu, self.workdir)
        self.running[system.name] = server
        server.wait_ready(ready_timeout)
        return server

    def __enter__(self) -> "Servers":
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        for server in self.running.values():
            server.stop()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime, fields 14 and 15 of proc(5), in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
