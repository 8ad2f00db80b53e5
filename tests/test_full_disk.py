"""SQLite on a full disk: writes answer 503 with Retry-After, /readyz says so, nothing
half-written stays, and the service recovers by itself when space returns.

The disk is real: a tmpfs of 8 MiB mounted for the test (root only), holding the database of a
live server, filled with a file until the kernel says ENOSPC.
"""

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import LiveServer, new_user

pytestmark = [
    pytest.mark.engines("sqlite"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mount_point], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", mount_point], check=True)


def _write_zeros_forever(path: Path) -> None:
    with path.open("wb") as stream:
        while True:
            stream.write(b"\0" * 65536)
            stream.flush()


def fill(disk: Path) -> Path:
    """Write zeros until the filesystem is full; the file that filled it."""
    filler = disk / "filler"
    with pytest.raises(OSError, match="No space left on device"):
        _write_zeros_forever(filler)
    return filler


def _fill_while_serving(client: httpx.Client, small_disk: Path) -> tuple[set[str], set[str]]:
    """Fill the disk under a serving server, then free it; the users created and refused."""
    assert client.post("/users/", json=new_user("before")).status_code == 201
    assert client.get("/readyz").status_code == 200
    created, refused = {"userbefore"}, set[str]()

    filler = fill(small_disk)

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["retry-after"]
    assert "disk is full" in ready.json()["detail"]
    # The WAL may still have room a few commits long; then every write is refused.
    answers = []
    for n in range(60):
        response = client.post("/users/", json=new_user(n))
        answers.append(response.status_code)
        (created if response.status_code == 201 else refused).add(f"user{n}")
        if response.status_code != 201:
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["retry-after"]) > 0
            if len(refused) == 3:
                break
    assert answers[-3:] == [503, 503, 503], answers
    # Reads go on.
    assert client.get("/users/", params={"limit": 1}).status_code == 200

    filler.unlink()

    assert client.get("/readyz").status_code == 200
    assert client.post("/users/", json=new_user("after")).status_code == 201
    created.add("userafter")

    return created, refused


def test_a_full_disk_is_503_with_retry_after_and_recovers_when_space_returns(
    small_disk: Path,
) -> None:
    database = small_disk / "userbase.db"
    server = LiveServer(f"sqlite:///{database}", USERBASE_AUTO_MIGRATE="true")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            created, refused = _fill_while_serving(client, small_disk)
    finally:
        server.stop()

    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in connection.execute("SELECT username FROM users")}
    assert stored == created
    assert not stored & refused
