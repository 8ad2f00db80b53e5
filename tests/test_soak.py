"""Soak: 20,000 mixed requests against PostgreSQL leave no checked-out connection, no open
transaction and no memory growth. Runs in `make test-reliability`.

The mix is a table of operations, each with its weight and the statuses it may answer.
"""

import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import LiveServer, new_user
from tests.test_users_list import insert_users

pytestmark = [pytest.mark.live, pytest.mark.reliability, pytest.mark.engines("postgresql")]

TOTAL = 20_000
WARM_UP = 2_000
CLIENTS = 8
RSS_GROWTH_ALLOWED = 0.10
TRIM_SECONDS = 1.0


@dataclass
class SoakState:
    """What the operations share: ids known to exist, a counter for fresh names."""

    ids: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    created: int = 0
    # A signed-in user whose profile the PATCH operation keeps changing.
    editor_id: int = 0
    editor_token: str = ""

    def fresh_name(self) -> str:
        with self.lock:
            self.created += 1
            return f"soak{self.created}"

    def some_id(self, rng: random.Random) -> int:
        with self.lock:
            return rng.choice(self.ids)


@dataclass(frozen=True)
class Operation:
    name: str
    weight: int
    send: Callable[[httpx.Client, SoakState, random.Random], httpx.Response]
    expected: frozenset[int]


def create(client: httpx.Client, state: SoakState, _rng: random.Random) -> httpx.Response:
    response = client.post("/users/", json=new_user(state.fresh_name()))
    if response.status_code == 201:
        with state.lock:
            state.ids.append(response.json()["id"])
    return response


def list_page(client: httpx.Client, state: SoakState, rng: random.Random) -> httpx.Response:
    params: dict[str, str | int] = {"limit": rng.randint(1, 100)}
    if rng.random() < 0.3:
        params["q"] = rng.choice(["soak", "soak1", "seed", "nobody"])
    else:
        params["after"] = state.some_id(rng)
    return client.get("/users/", params=params)


def read(client: httpx.Client, state: SoakState, rng: random.Random) -> httpx.Response:
    if rng.random() < 0.05:
        return client.get("/users/2000000000")
    return client.get(f"/users/{state.some_id(rng)}")


def patch(client: httpx.Client, state: SoakState, rng: random.Random) -> httpx.Response:
    """Read the ETag, then change the profile under If-Match: 412 when another worker won."""
    auth = {"Authorization": f"Bearer {state.editor_token}"}
    etag = client.get(f"/users/{state.editor_id}").headers["etag"]
    return client.patch(
        f"/users/{state.editor_id}",
        json={"display_name": f"edit {rng.randint(0, 10**6)}"},
        headers={**auth, "If-Match": etag},
    )


def failed_login(client: httpx.Client, state: SoakState, rng: random.Random) -> httpx.Response:
    return client.post(
        "/auth/token",
        data={"username": rng.choice(["soak1", "nobody"]), "password": "not the password"},
    )


OPERATIONS = [
    Operation("create", 4, create, frozenset({201})),
    Operation("list", 37, list_page, frozenset({200})),
    Operation("read", 52, read, frozenset({200, 404})),
    Operation("patch", 5, patch, frozenset({200, 412})),
    Operation("failed login", 2, failed_login, frozenset({401})),
]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def settled_rss_kib(pid: int, trim_seconds: float) -> int:
    """The server's RSS once the allocator's free pages went back (memory.py, every
    `trim_seconds`): the least of the readings over two trims. A single reading right after a
    burst could fall before or after a trim, and the two differ by tens of MiB (argon2's
    19 MiB per hash), which is noise, not a leak."""
    readings = []
    deadline = time.monotonic() + 2 * trim_seconds + 0.5
    while time.monotonic() < deadline:
        readings.append(rss_kib(pid))
        time.sleep(0.1)
    return min(readings)


def run_requests(url: str, count: int, state: SoakState, seed: int) -> list[tuple[str, int, float]]:
    weights = [op.weight for op in OPERATIONS]
    limits = httpx.Limits(max_connections=CLIENTS)

    with httpx.Client(base_url=url, timeout=30, limits=limits) as client:

        def worker(worker_no: int) -> list[tuple[str, int, float]]:
            rng = random.Random(seed * 100 + worker_no)
            done = []
            for _ in range(count // CLIENTS):
                op = rng.choices(OPERATIONS, weights)[0]
                started = time.monotonic()
                status = op.send(client, state, rng).status_code
                done.append((op.name, status, time.monotonic() - started))
            return done

        with ThreadPoolExecutor(CLIENTS) as pool:
            return [r for batch in pool.map(worker, range(CLIENTS)) for r in batch]


def test_twenty_thousand_requests_leak_nothing(database_url: str) -> None:
    insert_users([f"seed{n}" for n in range(100)])
    observer = create_engine(database_url)
    with observer.connect() as connection:
        seeded = list(connection.execute(text("SELECT id FROM users")).scalars())
    state = SoakState(ids=seeded)
    # The throttle would answer 429 after 100 failures from this one address: lift its limits,
    # the failed sign-ins are here to exercise the failure path, not the throttle.
    server = LiveServer(
        database_url,
        USERBASE_LOGIN_ACCOUNT_LIMIT="1000000",
        USERBASE_LOGIN_ADDRESS_LIMIT="1000000",
        USERBASE_MEMORY_TRIM_SECONDS=str(TRIM_SECONDS),
    )
    try:
        with httpx.Client(base_url=server.url) as client:
            editor = client.post("/users/", json=new_user("editor")).json()
            state.editor_id = editor["id"]
            state.editor_token = client.post(
                "/auth/token",
                data={"username": editor["username"], "password": new_user("editor")["password"]},
            ).json()["access_token"]
        started = time.monotonic()
        results = run_requests(server.url, WARM_UP, state, seed=1)
        rss_warm = settled_rss_kib(server.process.pid, TRIM_SECONDS)
        results += run_requests(server.url, TOTAL - WARM_UP, state, seed=2)
        elapsed = time.monotonic() - started
        rss_end = settled_rss_kib(server.process.pid, TRIM_SECONDS)
        pool = httpx.get(f"{server.url}/readyz").json()["pool"]
        with observer.connect() as connection:
            sessions = Counter(
                connection.execute(
                    text(
                        "SELECT state FROM pg_stat_activity WHERE datname = current_database()"
                        " AND application_name = 'userbase' AND pid <> pg_backend_pid()"
                    )
                ).scalars()
            )
    finally:
        server.stop()
        observer.dispose()

    unexpected = Counter(
        (name, status)
        for name, status, _ in results
        if status not in next(op.expected for op in OPERATIONS if op.name == name)
    )
    latencies = sorted(t for _, _, t in results)
    print(
        f"\nsoak: {len(results)} requests in {elapsed:.0f} s "
        f"({len(results) / elapsed:.0f}/s), {dict(Counter(n for n, _, _ in results))}, "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms; "
        f"RSS {rss_warm / 1024:.1f} MiB after {WARM_UP}, {rss_end / 1024:.1f} MiB after "
        f"{len(results)} ({(rss_end - rss_warm) / rss_warm:+.1%}); pool {pool}; "
        f"our PostgreSQL sessions {dict(sessions)}"
    )

    assert len(results) == TOTAL
    assert unexpected == Counter()
    assert pool["checked_out"] == 0
    assert not any(s and s.startswith("idle in transaction") for s in sessions)
    assert rss_end <= rss_warm * (1 + RSS_GROWTH_ALLOWED)
