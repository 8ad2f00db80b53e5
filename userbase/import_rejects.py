"""An import's rejected rows: FILE.rejected.csv, with the line, the reason and the row as given.

Appended a batch at a time and never truncated or replaced: a new import that finds one there
writes FILE.rejected-2.csv, and a resumed one appends to its own. Written as CSV escaped for
spreadsheets (csv_cells.py), since people open it in one and the rows may come from anyone.
"""

import io
from collections.abc import Sequence
from pathlib import Path

from userbase.csv_cells import CsvWriter
from userbase.import_checkpoint import Checkpoint
from userbase.import_rows import ACCOUNT_STATE_FIELDS, FIELDS, Rejected


def rejected_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".rejected.csv")


def unused_path(path: Path) -> Path:
    """`path`, or when a file is there, the first of path-2, path-3, ... that is free."""
    number = 1
    candidate = path
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


class RejectedFile:
    """The rejected rows, as CSV (escaped for spreadsheets), appended a batch at a time.

    Created at the first rejected row; never truncated or replaced.
    """

    def __init__(self, path: Path, *, account_state: bool) -> None:
        self.path = path
        self.columns = ("line", "reason", *FIELDS, *(ACCOUNT_STATE_FIELDS if account_state else ()))
        self.size = path.stat().st_size if path.exists() else 0

    def render(self, rejected: Sequence[Rejected]) -> str:
        """The rows as they will be appended (with the header when the file is still empty)."""
        if not rejected:
            return ""
        out = io.StringIO()
        writer = CsvWriter(out)
        if self.size == 0:
            writer.writerow(self.columns)
        for row in sorted(rejected, key=lambda r: r.line):
            values = (row.fields.get(name) for name in self.columns[2:])
            writer.writerow(
                [str(row.line), row.reason, *("" if v is None else str(v) for v in values)]
            )
        return out.getvalue()

    def append(self, data: bytes) -> None:
        if not data:
            return
        with self.path.open("ab") as stream:
            stream.write(data)
        self.size += len(data)

    def complete(self, checkpoint: Checkpoint) -> None:
        """Finish the append the checkpointed import had begun (a kill may have cut it short)."""
        pending = checkpoint.pending_rejects.encode()
        written = self.size - checkpoint.rejected_size
        if (
            0 <= written <= len(pending)
            and self._bytes_from(checkpoint.rejected_size) == pending[:written]
        ):
            pending = pending[written:]
        # Otherwise someone changed the file since: what is there stays, the rows follow it.
        self.append(pending)

    def _bytes_from(self, offset: int) -> bytes:
        if not self.path.exists():
            return b""
        with self.path.open("rb") as stream:
            stream.seek(offset)
            return stream.read()
