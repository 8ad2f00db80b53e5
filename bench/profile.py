"""Where userbase's time goes under load: py-spy samples of the server during one wrk run.

`python -m bench.profile` (after `make bench` installed the tools): loads 10,000 users into a
fresh database, serves userbase on the server core, loads one path with wrk from the other core,
and samples the server with py-spy meanwhile (only the thread holding the GIL: on one core,
that is what runs Python). It prints the share of samples per package, by the
innermost frame ("self") and anywhere on the stack ("inclusive"), and keeps the collapsed stacks
(bench/results/profile-<case>.txt, for a flame graph).
"""

import argparse
import re
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from bench.accounts import sign_up_and_sign_in
from bench.database import ROOT, bench_database
from bench.hashing import PASSWORD, make_hasher, service_settings
from bench.load import run_wrk
from bench.servers import BIN, Servers, systems

PATHS = {
    "list": "/users/?limit=100",
    "by_id": "/users/",
    "me": "/users/me",
    "token": "/auth/token",
}
SCRIPTS = {"by_id": ("by-id", "10000"), "token": ("post-token", "10000")}
_GENERATED = re.compile(r"<(\w+) generated")


def package_of(frame: str) -> str:
    """`name (path:line)` -> the package the frame's file belongs to (py-spy shortens paths)."""
    path = frame.rpartition(" (")[2]
    if path.startswith("<"):
        generated = _GENERATED.match(path)
        return generated.group(1) if generated else "stdlib"
    package, slash, _ = path.partition("/")
    return package if slash else "stdlib"


def summarise(collapsed: str) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """Samples per package (innermost frame, anywhere on the stack), per innermost frame, total."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[package_of(frames[-1])] += count
        leaves[frames[-1]] += count
        for package in {package_of(frame) for frame in frames}:
            anywhere[package] += count
    return own, anywhere, leaves, total


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--case", choices=sorted(PATHS), default="list")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    py_spy = BIN / "py-spy"
    if not py_spy.exists():
        sys.exit("bench.profile: py-spy is missing; `make bench` installs it")
    out = ROOT / "bench" / "results" / f"profile-{args.case}.txt"
    password_hash = make_hasher(service_settings()).hash(PASSWORD)
    with (
        tempfile.TemporaryDirectory(prefix="userbase-profile-") as workdir,
        bench_database("127.0.0.1", 5432, BIN / "userbase") as database,
        Servers(0, Path(workdir)) as servers,
    ):
        database.load_users(10_000, password_hash)
        userbase = next(s for s in systems(database) if s.name == "userbase")
        server = servers.start(userbase)
        script = SCRIPTS.get(args.case, ("get",))
        headers = (
            {"Authorization": f"Bearer {sign_up_and_sign_in(server.url)}"}
            if args.case == "me"
            else {}
        )
        url = server.url + PATHS[args.case]
        run_wrk(url, connections=args.connections, seconds=3, timeout=10, cpu=1,
                script_args=(*script, "warm"), headers=headers)  # fmt: skip
        load = threading.Thread(
            target=run_wrk,
            args=(url,),
            kwargs={"connections": args.connections, "seconds": args.seconds + 4, "timeout": 10,
                    "cpu": 1, "script_args": (*script, "prof"), "headers": headers},
        )  # fmt: skip
        load.start()
        subprocess.run(
            ["taskset", "-c", "1", str(py_spy), "record", "--pid", str(server.process.pid),
             "--duration", str(args.seconds), "--rate", "250", "--nonblocking", "--gil",
             "--format", "raw", "--output", str(out)],
            check=True, capture_output=True,
        )  # fmt: skip
        load.join()
    own, anywhere, leaves, total = summarise(out.read_text())
    print(f"{total} samples holding the GIL, {args.case}, {args.connections} conn")
    print(f"{'package':<16}{'self':>8}{'inclusive':>11}")
    for package, count in anywhere.most_common(12):
        print(f"{package:<16}{own[package] / total:>8.0%}{count / total:>11.0%}")
    print("innermost frames:")
    for frame, count in leaves.most_common(15):
        print(f"{count / total:>6.1%}  {frame}")
    print(f"collapsed stacks: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
