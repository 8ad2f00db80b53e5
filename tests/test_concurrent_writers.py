"""Sixteen writers at once on every engine: every create answers 201 (no "database is locked")."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import LiveServer, new_user
from userbase.database import SessionLocal
from userbase.models import User

pytestmark = pytest.mark.live

WRITERS = 16
CREATES_EACH = 8


def test_sixteen_concurrent_writers_all_get_201(live_server: LiveServer) -> None:
    limits = httpx.Limits(max_connections=WRITERS)
    with httpx.Client(base_url=live_server.url, timeout=60, limits=limits) as client:

        def writer(w: int) -> list[int]:
            return [
                client.post("/users/", json=new_user(f"w{w}n{n}")).status_code
                for n in range(CREATES_EACH)
            ]

        with ThreadPoolExecutor(WRITERS) as pool:
            statuses = Counter(s for batch in pool.map(writer, range(WRITERS)) for s in batch)

    assert statuses == Counter({201: WRITERS * CREATES_EACH})
    with SessionLocal() as session:
        assert session.scalar(select(func.count()).select_from(User)) == WRITERS * CREATES_EACH
