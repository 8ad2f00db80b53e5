"""Browser tests: the fixtures of tests/ (a database per run, LiveServer) plus headless Chromium.

Run with `make test-e2e`, which installs Debian's chromium and the pinned playwright first.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["tests.conftest"]

CHROMIUM = os.environ.get("USERBASE_E2E_CHROMIUM", "/usr/bin/chromium")
# Screenshots are kept here for a person (or CI) to look at; the folder is not committed.
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# As this machine kind's documentation asks: no sandbox as root, and no background traffic
# (component updates, sync, QUIC probes) that a closed network would refuse.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium with a fresh profile, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    yield page
    page.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
