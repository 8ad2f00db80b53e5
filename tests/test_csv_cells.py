"""CSV cells escaped against formula injection: spreadsheets show them, never run them."""

import csv
import io

import pytest

from userbase.csv_cells import FORMULA_TRIGGERS, CsvWriter, escape_cell, unescape_cell

VALUES = [
    "",
    "plain",
    "=1+1",
    '=HYPERLINK("http://evil.example","x")',
    "+1",
    "-1",
    "@SUM(A1)",
    "\tx",
    "\rx",
    "'",
    "''",
    "'=1+1",
    "''=1+1",
    "'plain",
    "a=b",
    "a;=1+1",
    'with "quotes", commas\nand a newline',
]


@pytest.mark.parametrize("value", VALUES)
def test_unescape_gives_back_every_escaped_value(value: str) -> None:
    assert unescape_cell(escape_cell(value)) == value


@pytest.mark.parametrize("value", VALUES)
def test_no_escaped_cell_starts_like_a_formula(value: str) -> None:
    assert not escape_cell(value).startswith(FORMULA_TRIGGERS)


def test_cells_that_need_no_escaping_are_left_alone() -> None:
    assert escape_cell("plain") == "plain"
    assert escape_cell("a=b") == "a=b"
    assert unescape_cell("'plain") == "'plain"  # not an escape escape_cell writes


def test_the_writer_quotes_every_cell_unless_raw() -> None:
    escaped, raw = io.StringIO(), io.StringIO()
    CsvWriter(escaped).writerow(["a;=1+1", "=1+1", ""])
    CsvWriter(raw, raw=True).writerow(["a;=1+1", "=1+1", ""])
    # Quoted, a cell stays whole in a spreadsheet that splits on ';'.
    assert escaped.getvalue() == '"a;=1+1","\'=1+1",""\n'
    assert raw.getvalue() == "a;=1+1,=1+1,\n"


def test_a_written_file_reads_back_exactly() -> None:
    out = io.StringIO()
    CsvWriter(out).writerow(VALUES)
    [cells] = list(csv.reader(io.StringIO(out.getvalue())))
    assert [unescape_cell(cell) for cell in cells] == VALUES
