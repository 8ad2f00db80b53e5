"""What synchronous=FULL costs over NORMAL in WAL mode: one-row write transactions per second.

    .venv/bin/python -m bench.sqlite_synchronous

FULL syncs the WAL at every commit, so a commit that answered survives a power cut; NORMAL
syncs only at checkpoints, so the last commits before a power cut may vanish (never corrupt).
"""

import sqlite3
import tempfile
import time
from pathlib import Path

COMMITS = 2000


def commits_per_second(synchronous: str) -> float:
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        db = sqlite3.connect(Path(tmp) / "bench.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        started = time.perf_counter()
        for n in range(COMMITS):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (v) VALUES (?)", (f"row {n}",))
            db.execute("COMMIT")
        elapsed = time.perf_counter() - started
        db.close()
    return COMMITS / elapsed


def main() -> None:
    for mode in ("FULL", "NORMAL", "FULL", "NORMAL"):
        print(f"synchronous={mode:6} {commits_per_second(mode):8.0f} commits/s")


if __name__ == "__main__":
    main()
