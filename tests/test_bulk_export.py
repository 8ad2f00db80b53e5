"""`userbase export`: every user in keyset pages, in the import's format, hashes only on request."""

import csv
import io
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import delete, event
from typer.testing import CliRunner

from tests.conftest import new_user
from userbase.bulk_export import export_users
from userbase.cli import app
from userbase.database import engine
from userbase.models import User
from userbase.security import unusable_password_hash

runner = CliRunner()


def create(client: Any, count: int) -> None:
    for n in range(count):
        body = new_user(f"exp{n}", display_name=f"Exp {n}" if n % 2 else None)
        assert client.post("/users/", json=body).status_code == 201


def test_csv_export_has_the_import_columns_and_no_hashes(client: Any) -> None:
    create(client, 3)

    result = runner.invoke(app, ["export"])

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["username"] for r in rows] == ["userexp0", "userexp1", "userexp2"]
    assert list(rows[0]) == ["username", "email", "display_name"]
    assert rows[1]["display_name"] == "Exp 1"
    assert rows[0]["display_name"] == ""
    assert "$argon2" not in result.stdout


def test_jsonl_export_with_hashes_to_a_file(client: Any, tmp_path: Path) -> None:
    create(client, 2)
    out = tmp_path / "users.jsonl"

    result = runner.invoke(
        app, ["export", "--format", "jsonl", "--include-hashes", "--output", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert "exported 2 users" in result.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [line["username"] for line in lines] == ["userexp0", "userexp1"]
    assert all(line["password_hash"].startswith("$argon2id$") for line in lines)
    assert lines[0]["display_name"] is None
    assert not list(tmp_path.glob("*.partial"))


def test_pages_are_keyset_queries_never_offsets(client: Any) -> None:
    create(client, 5)
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "FROM users" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        out = io.StringIO()
        written = export_users(out, "csv", page_size=2)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert written == 5
    pages = [(s, p) for s, p in statements if "ORDER BY" in s]
    assert len(pages) == 4  # 2 + 2 + 1, then an empty page
    assert all("users.id >" in s for s, _ in pages)
    # SQLite's dialect writes "LIMIT ? OFFSET ?" with an offset of 0; none skips rows.
    offsets = [tuple(p)[-1] for s, p in pages if "OFFSET" in s.upper()]
    assert set(offsets) <= {0}
    assert not any("count(" in s.lower() for s, _ in statements)


def test_unusable_hashes_are_exported_empty(client: Any) -> None:
    create(client, 1)
    with engine.begin() as connection:
        connection.execute(User.__table__.update().values(password_hash=unusable_password_hash()))
    out = io.StringIO()
    export_users(out, "jsonl", include_hashes=True)
    assert orjson.loads(out.getvalue())["password_hash"] is None


def test_export_then_import_gives_back_the_same_users(client: Any, tmp_path: Path) -> None:
    create(client, 7)
    for fmt in ("csv", "jsonl"):
        out = tmp_path / f"users.{fmt}"
        args = ["export", "--format", fmt, "--include-hashes", "-o", str(out)]
        assert runner.invoke(app, args).exit_code == 0
        before = export_text(fmt)
        with engine.begin() as connection:
            connection.execute(delete(User))

        result = runner.invoke(app, ["import", str(out)])

        assert result.exit_code == 0, result.output
        assert "imported 7 rows, rejected 0" in result.output
        assert export_text(fmt) == before


def export_text(fmt: str) -> str:
    out = io.StringIO()
    export_users(out, fmt, include_hashes=True)  # type: ignore[arg-type]
    return out.getvalue()


def test_an_empty_table_exports_a_header_only() -> None:
    result = runner.invoke(app, ["export"])
    assert result.exit_code == 0
    assert result.stdout == "username,email,display_name\n"
