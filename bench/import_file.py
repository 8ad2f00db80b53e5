"""Write an import file of N users with argon2id hashes, for measuring `userbase import`.

Usage: python bench/import_file.py ROWS FILE   (FILE ends in .csv or .jsonl)

Every row carries the same real argon2id hash (computing 100,000 distinct ones would take over an
hour): the import checks a hash's format, not its value, so the cost measured is the same.
"""

import csv
import sys
from pathlib import Path

import orjson

from userbase.security import hash_password


def main(rows: int, path: Path) -> None:
    password_hash = hash_password("benchmark password")
    with path.open("w", encoding="utf-8", newline="") as out:
        if path.suffix == ".csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["username", "email", "display_name", "password_hash"])
            for n in range(rows):
                writer.writerow([f"user{n}", f"user{n}@example.com", f"User {n}", password_hash])
        else:
            for n in range(rows):
                row = {
                    "username": f"user{n}",
                    "email": f"user{n}@example.com",
                    "display_name": f"User {n}",
                    "password_hash": password_hash,
                }
                out.write(orjson.dumps(row).decode() + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
