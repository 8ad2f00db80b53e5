"""CSV cells a spreadsheet shows as text, never runs: written by the export and the rejected-rows
file, read back by the import, so that every value makes the round trip exactly.
"""

import csv
from collections.abc import Iterable
from typing import TextIO

# OWASP, CSV Injection: a spreadsheet takes a cell starting with one of these for a formula.
# Such a cell is written with a leading ' (which the spreadsheet shows as text), and so is one
# that starts with ' itself, so that reading drops exactly one ' and every value comes back.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED_STARTS = frozenset((*FORMULA_TRIGGERS, "'"))


def escape_cell(value: str) -> str:
    """The cell as a spreadsheet will show it, never run it."""
    return "'" + value if value[:1] in _ESCAPED_STARTS else value


def unescape_cell(cell: str) -> str:
    """The value escape_cell wrote: one leading ' fewer when it stands before what it escapes."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in _ESCAPED_STARTS else cell


class CsvWriter:
    """CSV for files people open in spreadsheets: cells escaped and quoted, unless `raw`.

    Quoting every cell keeps a cell whole in a spreadsheet that splits on another separator
    (`;` in many locales), where `a;=1+1` would otherwise become a cell starting with `=`.
    """

    def __init__(self, out: TextIO, *, raw: bool = False) -> None:
        if raw:
            self._writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        else:
            self._writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        self._raw = raw

    def writerow(self, cells: Iterable[str]) -> None:
        self._writer.writerow(cells if self._raw else [escape_cell(cell) for cell in cells])
