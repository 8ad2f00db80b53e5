"""PostgreSQL's plans for the admins' user filters on 1,000,000 users: no sequential scan.

Makes its own database (bench/database.py), loads the users with COPY, marks 1 % inactive and
one in 100,000 admin, then runs each filter through userbase's own query
(`users.search_users`) under EXPLAIN ANALYZE and prints the plans as Markdown.

    .venv/bin/python -m bench.admin_search_plans [--users 1000000]
"""

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from bench.database import bench_database
from userbase import users

ROOT = Path(__file__).resolve().parent.parent
# Nobody signs in here: an unusable hash (security.UNUSABLE_PASSWORD_PREFIX) will do.
UNUSABLE_HASH = "!bench"
FILTERS: list[tuple[str, dict[str, Any]]] = [
    ("email (exact, any case)", {"email": "USER777777@example.com"}),
    ("email_prefix", {"email_prefix": "user77777"}),
    ("is_active=false", {"is_active": False}),
    ("is_active=true", {"is_active": True}),
    ("is_admin=true", {"is_admin": True}),
    ("is_admin=false", {"is_admin": False}),
    ("created_after (the last day)", {"created_after": datetime(2026, 1, 12, 12, tzinfo=UTC)}),
    ("created_before (the first day)", {"created_before": datetime(2026, 1, 2, tzinfo=UTC)}),
    ("username prefix q", {"q": "user4242"}),
    (
        "is_admin=true and created_after",
        {"is_admin": True, "created_after": datetime(2026, 1, 5, tzinfo=UTC)},
    ),
]


def plan(session: Session, filters: dict[str, Any]) -> tuple[str, float]:
    """userbase's statement for these filters, and PostgreSQL's plan for it."""
    captured: list[tuple[str, Any]] = []
    engine = session.get_bind()

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        captured.append((statement, parameters))

    q = filters.pop("q", None)
    event.listen(engine, "before_cursor_execute", capture)
    try:
        users.search_users(
            session, after=0, limit=100, username_prefix=q, filters=users.AdminFilters(**filters)
        )
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = captured[-1]
    connection = session.connection().connection.driver_connection
    assert connection is not None
    rows = connection.execute(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + statement, parameters
    ).fetchall()
    text = "\n".join(row[0] for row in rows)
    runtime = float(text.rsplit("Execution Time:", 1)[1].split()[0])
    return text, runtime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    failures = 0
    with bench_database("127.0.0.1", 5432, ROOT / ".venv/bin/userbase") as database:
        database.load_users(args.users, password_hash=UNUSABLE_HASH)
        with database.connect() as connection:
            connection.execute("UPDATE users SET is_active = false WHERE id % 100 = 0")
            connection.execute("UPDATE users SET is_admin = true WHERE id % 100000 = 0")
            connection.execute("VACUUM (ANALYZE) users")
        engine = create_engine(database.sqlalchemy_url)
        try:
            with Session(engine) as session:
                print(f"{args.users:,} users, PostgreSQL {database.server_version()}\n")
                for name, filters in FILTERS:
                    text, runtime = plan(session, dict(filters))
                    seq = "Seq Scan" in text
                    failures += seq
                    print(f"### {name}: {runtime:.2f} ms{' — SEQUENTIAL SCAN' if seq else ''}\n")
                    print("```\n" + text + "\n```\n")
        finally:
            engine.dispose()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
