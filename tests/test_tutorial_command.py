"""The tutorial's last step, as it is written: `uvicorn main:app --reload`, then GET /users."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import _free_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.live, pytest.mark.engines("sqlite")]


def test_uvicorn_main_app_reload_serves_an_empty_list_on_a_new_database(tmp_path: Path) -> None:
    """No DATABASE_URL, an empty directory: the embedded SQLite default is made and migrated."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "USERBASE_"))}
    env["PYTHONPATH"] = str(ROOT)  # main.py is found as the tutorial finds it: by its module name
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "main:app",
            "--reload",
            "--reload-dir",
            str(ROOT / "userbase"),
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # --reload runs the server in a child: stop both together
    )
    try:
        response = None
        deadline = time.monotonic() + 60
        while response is None and time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/users", follow_redirects=False)
            except httpx.TransportError:
                time.sleep(0.2)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    assert response is not None, "uvicorn main:app --reload did not answer within 60 s"
    assert response.status_code == 200
    assert response.json() == []
    assert (tmp_path / "userbase.db").exists()
