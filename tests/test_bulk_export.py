"""`userbase export`: every user in keyset pages, in the import's format, hashes only on request."""

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import delete, event, select
from typer.testing import CliRunner

from tests.conftest import new_user
from userbase.bulk_export import export_users
from userbase.cli import app
from userbase.database import SessionLocal, engine
from userbase.models import User
from userbase.security import hash_password, is_usable_password_hash, unusable_password_hash

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
    assert result.stdout == '"username","email","display_name"\n'


def test_the_export_is_not_offered_as_a_backup() -> None:
    result = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "backup" not in result.output.lower()


def test_formula_cells_are_escaped_and_quoted_unless_raw(client: Any) -> None:
    names = ['=HYPERLINK("http://evil.example","x")', "+1", "@A1", "'quoted", "fine"]
    for n, name in enumerate(names):
        assert client.post("/users/", json=new_user(f"f{n}", display_name=name)).status_code == 201
    dashed = new_user("x", username="-dash", email="-dash@example.com")
    assert client.post("/users/", json=dashed).status_code == 201

    escaped = runner.invoke(app, ["export"]).stdout
    raw = runner.invoke(app, ["export", "--raw-csv"]).stdout

    assert '"userf0","userf0@example.com","\'=HYPERLINK(""http://evil.example"",""x"")"' in escaped
    for cell in ('"\'+1"', '"\'@A1"', "\"''quoted\""):
        assert cell in escaped
    assert '"\'-dash","\'-dash@example.com",""' in escaped
    assert all(line.startswith('"') for line in escaped.splitlines())
    assert 'userf0,userf0@example.com,"=HYPERLINK(""http://evil.example"",""x"")"' in raw
    assert "-dash,-dash@example.com," in raw
    assert "'quoted" in raw
    assert "''quoted" not in raw
    # JSON Lines is not read by spreadsheets: nothing to escape.
    jsonl = runner.invoke(app, ["export", "--format", "jsonl"]).stdout
    assert '"display_name":"+1"' in jsonl


@pytest.mark.parametrize("raw", [False, True], ids=["escaped", "raw"])
def test_formula_cells_make_the_round_trip_exactly(client: Any, tmp_path: Path, raw: bool) -> None:
    names = ['=HYPERLINK("http://evil.example","x")', "'quoted", "'=1+1", "''", "-1", "@a"]
    for n, name in enumerate(names):
        assert client.post("/users/", json=new_user(f"r{n}", display_name=name)).status_code == 201
    out = tmp_path / "users.csv"
    option = ["--raw-csv"] if raw else []
    assert runner.invoke(app, ["export", "-o", str(out), *option]).exit_code == 0
    with engine.begin() as connection:
        connection.execute(delete(User))

    result = runner.invoke(app, ["import", str(out), *option])

    assert f"imported {len(names)} rows, rejected 0" in result.output, result.output
    stored = {u.username: u.display_name for u in all_users()}
    assert [stored[f"userr{n}"] for n in range(len(names))] == names


def all_users() -> list[User]:
    with SessionLocal() as session:
        return list(session.scalars(select(User).order_by(User.username)))


BCRYPT = "$2b$12$KIXQJm8lYeQ0jzY6k3ZQAe1nC3oTqk2pL6yqv0j7xk0E8p9y2sQ6G"


def account(user: User) -> tuple[Any, ...]:
    """Everything an export with hashes and account state carries (an unusable hash as such)."""
    password_hash = user.password_hash if is_usable_password_hash(user.password_hash) else "!"
    return (
        user.username,
        user.email,
        user.display_name,
        password_hash,
        user.is_admin,
        user.is_active,
        user.email_verified,
        user.created_at,
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_hashes_and_account_state_make_the_round_trip_into_an_empty_database(
    tmp_path: Path, fmt: str
) -> None:
    argon2_hash = hash_password("round trip password")
    rows = [
        ("admin1", "=admin@example.com", "Admin", argon2_hash, True, True, True, 123456),
        ("gone", "gone@example.com", "'=gone", BCRYPT, False, False, False, 1),
        ("verified", "v@example.com", None, unusable_password_hash(), False, True, True, 0),
        ("-plain", "+plain@example.com", "@plain", argon2_hash, False, True, False, 999999),
    ]
    with engine.begin() as connection:
        for n, (name, email, display, password_hash, admin, active, verified, micro) in enumerate(
            rows
        ):
            connection.execute(
                User.__table__.insert().values(
                    username=name,
                    email=email,
                    display_name=display,
                    password_hash=password_hash,
                    is_admin=admin,
                    is_active=active,
                    email_verified=verified,
                    created_at=datetime(2020, 2, 29, 23, 59, n, micro, UTC),
                    updated_at=datetime.now(UTC),
                )
            )
    before = [account(user) for user in all_users()]
    out = tmp_path / f"users.{fmt}"
    export = ["export", "--format", fmt, "--include-hashes", "--include-account-state"]
    assert runner.invoke(app, [*export, "-o", str(out)]).exit_code == 0
    with engine.begin() as connection:
        connection.execute(delete(User))

    refused = runner.invoke(app, ["import", str(out)])
    if fmt == "csv":  # the header names them: refused before any row
        assert refused.exit_code == 1
    else:  # each line names them: each line is rejected
        assert "imported 0 rows, rejected 4" in refused.output
    assert all_users() == []
    result = runner.invoke(app, ["import", str(out), "--trust-account-state"])

    assert "imported 4 rows, rejected 0" in result.output, result.output
    assert [account(user) for user in all_users()] == before
    state = {row[0]: row[4:] for row in before}  # what the test set up is what it compared
    assert state["gone"] == (False, False, False, datetime(2020, 2, 29, 23, 59, 1, 1, UTC))
    assert state["admin1"] == (True, True, True, datetime(2020, 2, 29, 23, 59, 0, 123456, UTC))
