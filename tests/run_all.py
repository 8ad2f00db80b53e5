"""`make test`: the whole suite on SQLite, PostgreSQL and MariaDB, one pytest run per engine.

Every engine runs even when one fails; the exit code is non-zero if any did.
"""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from tempfile import TemporaryDirectory

from tests.databases import ENGINES


def main() -> int:
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    failed_engines = []
    with TemporaryDirectory() as tmp:
        for engine in ENGINES:
            report = Path(tmp) / f"{engine}.xml"
            print(f"\n=== tests on {engine} ===", flush=True)
            command = [sys.executable, "-m", "pytest", f"--db={engine}", f"--junitxml={report}"]
            code = subprocess.call([*command, *sys.argv[1:]])
            if code != 0:
                failed_engines.append(engine)
            if report.exists():
                # Our own pytest wrote this file a moment ago.
                suite = ET.parse(report).getroot().find("testsuite")  # noqa: S314
                assert suite is not None
                tests = int(suite.get("tests", 0))
                not_passed = {k: int(suite.get(k, 0)) for k in ("failures", "errors", "skipped")}
                totals["failed"] += not_passed["failures"] + not_passed["errors"]
                totals["skipped"] += not_passed["skipped"]
                totals["passed"] += tests - sum(not_passed.values())
            elif code != 0:
                totals["failed"] += 1
    print(f"\nengines: {', '.join(ENGINES)}; failed on: {', '.join(failed_engines) or 'none'}")
    print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    return 1 if failed_engines else 0


if __name__ == "__main__":
    sys.exit(main())
