"""`userbase import --resume`: after Ctrl-C, a crash or kill -9, the import goes on after its last
committed batch, counts rows it finds already imported as such, and keeps every rejected row once.
"""

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from userbase import import_checkpoint
from userbase.bulk_import import BulkImport
from userbase.cli import app
from userbase.database import SessionLocal
from userbase.import_checkpoint import checkpoint_path_for
from userbase.import_rejects import RejectedFile
from userbase.models import User

runner = CliRunner()


class Killed(BaseException):
    """Stands for the process dying at that point (raised where the fault is injected)."""


def users_file(path: Path, count: int, bad_every: int) -> tuple[Path, list[str], list[int]]:
    """`count` rows, one in `bad_every` with too short a username: (file, good names, bad lines)."""
    good, bad, lines = [], [], ["username,email"]
    for n in range(count):
        line = n + 2
        if n % bad_every == 3:
            lines.append(f"b{n % 10},bad{n}@example.com")
            bad.append(line)
        else:
            lines.append(f"row{n},row{n}@example.com")
            good.append(f"row{n}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, good, bad


def stored_usernames() -> list[str]:
    with SessionLocal() as session:
        return list(session.scalars(select(User.username)))


def rejected_lines(path: Path) -> list[int]:
    with path.open(encoding="utf-8", newline="") as stream:
        return [int(row["line"]) for row in csv.DictReader(stream)]


def checkpoint_records(file: Path) -> int:
    """The records the checkpoint says are committed; 0 while it is absent or being replaced."""
    try:
        return int(orjson.loads(checkpoint_path_for(file).read_bytes())["records"])
    except (FileNotFoundError, orjson.JSONDecodeError):
        return 0


@pytest.mark.live
def test_kill_9_after_a_committed_batch_then_resume_imports_every_row_exactly_once(
    tmp_path: Path, database_url: str
) -> None:
    file, good, bad = users_file(tmp_path / "users.csv", 20_000, bad_every=250)
    # A row that clashes with a user already there is a true reject too.
    with SessionLocal.begin() as session:
        session.add(User(username="row1", email="someone@example.com", password_hash="!x"))
    good.remove("row1")
    bad = sorted([*bad, 3])
    rejected = tmp_path / "users.csv.rejected.csv"
    command = [sys.executable, "-m", "userbase", "import", str(file), "--batch-size", "500"]
    env = {**os.environ, "DATABASE_URL": database_url}

    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while checkpoint_records(file) == 0 and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.005)  # polling the checkpoint, not waiting for a guess
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)

    assert process.returncode == -signal.SIGKILL
    stopped_at = checkpoint_records(file)
    assert 500 <= stopped_at < 20_000
    first_rejects = rejected.read_bytes()
    committed = {name for name in good if int(name.removeprefix("row")) < stopped_at}
    assert committed <= set(stored_usernames())

    resumed = subprocess.run(
        [*command, "--resume"], env=env, capture_output=True, text=True, timeout=300
    )

    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after record {stopped_at:,}" in resumed.stderr
    names = stored_usernames()
    assert len(names) == len(set(names)) == len(good) + 1
    assert set(names) == {*good, "row1"}
    assert rejected.read_bytes().startswith(first_rejects)
    assert rejected_lines(rejected) == bad
    assert not checkpoint_path_for(file).exists()


def crash_on_call(number: int, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, except that its `number`-th call dies before doing anything."""
    calls = 0

    def maybe_crash(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == number:
            raise Killed
        return function(*args, **kwargs)

    return maybe_crash


def test_a_crash_between_a_commit_and_its_checkpoint_is_resumed_without_false_rejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file, good, bad = users_file(tmp_path / "users.csv", 40, bad_every=10)
    monkeypatch.setattr(import_checkpoint, "save", crash_on_call(2, import_checkpoint.save))
    with pytest.raises(Killed):
        BulkImport(file, "csv", batch_size=10).run()
    assert len(stored_usernames()) == 18  # two batches committed, the checkpoint says one
    monkeypatch.undo()

    result = runner.invoke(app, ["import", str(file), "--resume", "--batch-size", "10"])

    assert result.exit_code == 0, result.output
    assert "imported 18 rows, rejected 3" in result.output
    assert "already imported 9" in result.output
    assert sorted(stored_usernames()) == sorted(good)
    assert rejected_lines(tmp_path / "users.csv.rejected.csv") == bad


def test_a_rejected_rows_append_cut_short_is_completed_not_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file, good, bad = users_file(tmp_path / "users.csv", 30, bad_every=10)
    rejected = tmp_path / "users.csv.rejected.csv"
    append = RejectedFile.append

    def half_then_die(self: RejectedFile, data: bytes) -> None:
        if self.size > 0:  # the second batch's rows: the kill lands in the middle of them
            append(self, data[: len(data) // 2])
            raise Killed
        append(self, data)

    monkeypatch.setattr(RejectedFile, "append", half_then_die)
    with pytest.raises(Killed):
        BulkImport(file, "csv", batch_size=10).run()
    monkeypatch.undo()
    cut = rejected.read_bytes()

    result = runner.invoke(app, ["import", str(file), "--resume", "--batch-size", "10"])

    assert result.exit_code == 0, result.output
    assert rejected.read_bytes().startswith(cut)
    assert rejected_lines(rejected) == bad
    assert sorted(stored_usernames()) == sorted(good)


def test_a_finished_import_leaves_no_checkpoint_and_nothing_to_resume(tmp_path: Path) -> None:
    file, _, _ = users_file(tmp_path / "users.csv", 5, bad_every=10)
    assert runner.invoke(app, ["import", str(file), "--batch-size", "2"]).exit_code == 0
    assert not checkpoint_path_for(file).exists()

    result = runner.invoke(app, ["import", str(file), "--resume"])

    assert result.exit_code == 1
    assert "Nothing to resume" in result.output


def stopped_import(file: Path, batch_size: int = 2, **options: Any) -> None:
    BulkImport(file, "csv", batch_size=batch_size, should_stop=lambda: True, **options).run()
    assert checkpoint_path_for(file).exists()


def test_resume_refuses_a_file_changed_since(tmp_path: Path) -> None:
    file, _, _ = users_file(tmp_path / "users.csv", 6, bad_every=10)
    stopped_import(file)
    with file.open("a") as stream:
        stream.write("late,late@example.com\n")

    result = runner.invoke(app, ["import", str(file), "--resume"])

    assert result.exit_code == 1
    assert "changed since its import stopped after record 2" in result.output
    assert "--skip 2" in result.output
    assert len(stored_usernames()) == 2


def test_resume_asks_for_the_options_the_import_started_with(tmp_path: Path) -> None:
    file, _, _ = users_file(tmp_path / "users.csv", 6, bad_every=10)
    stopped_import(file, account_state=True, raw_csv=True)

    refused = runner.invoke(app, ["import", str(file), "--resume"])

    assert refused.exit_code == 1
    assert "--raw-csv, --trust-account-state" in refused.output
    assert f"userbase import {file} --resume --raw-csv --trust-account-state" in refused.output
    resumed = runner.invoke(
        app, ["import", str(file), "--resume", "--raw-csv", "--trust-account-state"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert len(stored_usernames()) == 5


def test_an_import_started_over_says_so_and_counts_what_is_there(tmp_path: Path) -> None:
    file, _, bad = users_file(tmp_path / "users.csv", 6, bad_every=10)
    stopped_import(file, batch_size=4)

    result = runner.invoke(app, ["import", str(file)])

    assert "did not finish; this one starts over" in result.output
    assert "imported 2 rows, rejected 1" in result.output
    assert "already imported 3" in result.output
    # The stopped import's rejected row stays in its file; this run's go to a new one.
    assert rejected_lines(tmp_path / "users.csv.rejected.csv") == bad
    assert rejected_lines(tmp_path / "users.csv.rejected-2.csv") == bad


def test_skip_and_dry_run_do_not_go_with_resume(tmp_path: Path) -> None:
    file, _, _ = users_file(tmp_path / "users.csv", 6, bad_every=10)
    stopped_import(file)
    for option in ("--skip=1", "--dry-run"):
        result = runner.invoke(app, ["import", str(file), "--resume", option])
        assert result.exit_code == 1
        assert "not with --skip or --dry-run" in result.output
