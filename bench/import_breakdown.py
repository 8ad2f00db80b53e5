"""Where `userbase import` spends its time: validation, the insert, the rest (reading, commits).

Usage: DATABASE_URL=... python bench/import_breakdown.py FILE   (on a migrated, empty database)

Wraps two functions of userbase.bulk_import with timers, then runs a whole import.
"""

import sys
import time
from pathlib import Path
from typing import Any

from userbase import bulk_import
from userbase.import_rows import detect_format

spent = {"validation": 0.0, "insert": 0.0}


def timed(name: str, function: Any) -> Any:
    def wrapper(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args)
        finally:
            spent[name] += time.perf_counter() - start

    return wrapper


def main(path: Path) -> None:
    bulk_import.BulkImport._candidates = timed(  # type: ignore[method-assign]
        "validation", bulk_import.BulkImport._candidates
    )
    bulk_import.insert_candidates = timed("insert", bulk_import.insert_candidates)
    start = time.perf_counter()
    progress = bulk_import.BulkImport(path, detect_format(path)).run()
    total = time.perf_counter() - start
    rows = progress.records
    print(f"{rows:,} rows in {total:.2f} s ({rows / total:,.0f} rows/s)")
    for name, seconds in [*spent.items(), ("rest", total - sum(spent.values()))]:
        print(f"  {name:<10} {seconds:6.2f} s  {seconds / rows * 1e6:5.1f} µs a row")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
