"""With several workers, /metrics reports the whole server's numbers, whichever worker answers."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import USERBASE_SERVE, LiveServer
from userbase.worker_metrics import MULTIPROC_DIR, forget_dead_workers, worker_exiting

pytestmark = pytest.mark.live

REQUESTS = 40
NOT_FOUND = {"route": "/users/{user_id}", "method": "GET", "status": "404"}


def two_workers(database_url: str, **env: str) -> LiveServer:
    command = (*USERBASE_SERVE, "--workers", "2")
    return LiveServer(database_url, command=command, USERBASE_LOG_LEVEL="warning", **env)


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    live = two_workers(database_url)
    yield live
    live.stop()


def scrape(server: LiveServer) -> tuple[float, str, dict[str, dict[str, float]]]:
    """One scrape, on a new connection (so any worker may answer): the count of the requests
    sent, the answering worker's pid, and the gauges' samples by name, then by labels."""
    text = httpx.get(f"{server.url}/metrics").text
    counted, pid = 0.0, ""
    gauges: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "userbase_http_requests_total" and sample.labels == NOT_FOUND:
                counted += sample.value
            elif sample.name == "process_resident_memory_bytes":
                pid = sample.labels.get("pid", "")
            if family.type == "gauge":
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                gauges.setdefault(sample.name, {})[labels] = sample.value
    return counted, pid, gauges


def send_requests(server: LiveServer, count: int) -> None:
    for n in range(count):  # each on a new connection: both workers take some
        assert httpx.get(f"{server.url}/users/{900_000 + n}").status_code == 404


def test_every_scrape_counts_the_requests_of_every_worker(server: LiveServer) -> None:
    send_requests(server, REQUESTS)

    answered_by = set()
    for _ in range(100):
        counted, pid, gauges = scrape(server)
        assert counted == REQUESTS
        # One series each: the workers' in-flight hashes added up; the database's count as is.
        assert gauges["userbase_password_hashes_in_flight"] == {"": 0.0}
        assert gauges["userbase_mail_given_up"] == {"": 0.0}
        # The answering worker's own readings, labelled as such.
        assert list(gauges["userbase_db_pool_size"]) == [f"pid={pid}"]
        answered_by.add(pid)
        if len(answered_by) == 2:
            break
    assert len(answered_by) == 2, "one worker answered every scrape"


def test_an_operators_metrics_directory_is_emptied_at_start(
    database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    for requests in (5, 3):
        live = two_workers(database_url, PROMETHEUS_MULTIPROC_DIR=str(directory))
        try:
            send_requests(live, requests)
            counted, _, _ = scrape(live)
        finally:
            live.stop()
        assert counted == requests  # the second run does not add the first one's


def test_a_killed_workers_in_flight_hashes_stop_counting_when_a_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    monkeypatch.setenv(MULTIPROC_DIR, str(tmp_path))
    left_behind = tmp_path / f"gauge_livesum_{finished.pid}.db"
    alive = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    counted = tmp_path / f"counter_{finished.pid}.db"
    for file in (left_behind, alive, counted):
        file.touch()

    forget_dead_workers()

    assert not left_behind.exists()
    assert alive.exists()
    assert counted.exists()  # what it counted stays in the totals


def test_a_worker_that_exits_takes_its_in_flight_hashes_along(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_DIR, str(tmp_path))
    mine = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    mine.touch()

    worker_exiting()

    assert not mine.exists()
