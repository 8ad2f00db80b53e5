"""schemathesis, every check, against the OpenAPI document of a live server: zero failures.

Checks include: no 5xx, every status and content type documented, bodies match their schemas,
schema-valid requests accepted and invalid ones refused. Runs in `make test-reliability`.
"""

import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.accounts import make_admin, sign_up, token_for
from tests.conftest import LiveServer

pytestmark = [
    pytest.mark.live,
    pytest.mark.reliability,
    pytest.mark.engines("sqlite", "postgresql"),
]

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def admin_token(url: str) -> str:
    """Sign in as a fresh admin, so the operations behind authentication get exercised too."""
    with httpx.Client(base_url=url) as client:
        user = sign_up(client, "fuzzadmin")
        make_admin(user["id"])
        return token_for(client, user["username"])


def test_schemathesis_finds_nothing(live_server: LiveServer, tmp_path: Path) -> None:
    # One worker: hypothesis parses sources with `ast` in each worker thread, and CPython 3.11
    # before 3.11.8 can fail doing that from two threads at once ("AST constructor recursion").
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(Path(__file__).parent / "schemathesis.toml"),
            "run",
            f"{live_server.url}/openapi.json",
            "--checks",
            "all",
            # `--checks all` turns on what the config file turned off (schemathesis.toml says
            # why this one is off).
            "--exclude-checks",
            "use_after_free",
            "--max-examples",
            "50",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--header",
            f"Authorization: Bearer {admin_token(live_server.url)}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its cache directory goes there, not into the work tree
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = [line.strip() for line in result.stdout.splitlines() if "generated" in line]
    print(f"\nschemathesis: {' '.join(summary)}")
    assert "No issues found" in result.stdout
