"""A quick look at the read paths while changing them: userbase against the ceiling, nothing else.

`python -m bench.ab` (after `make bench` installed the tools): 10,000 users in a fresh database,
the ceiling and userbase served on the server core, then a few rounds of GET /users/?limit=100
(10 and 100 connections), GET /users/{id} and GET /users/me, in alternating order, printing
userbase's req/s as a share of the ceiling's per round. Minutes, not the quarter hour of
`make bench`, and no results file: the figures in docs/performance.md come from `make bench`.
The cases `create` and `token` (POST /users/ and /auth/token, 64 connections) compare userbase
with the hashing bound instead, measured on the server core just before each round.
"""

import argparse
import tempfile
from pathlib import Path

from bench.accounts import sign_up_and_sign_in
from bench.database import bench_database
from bench.hashing import PASSWORD, make_hasher, measure_hashing, service_settings
from bench.load import run_wrk
from bench.servers import BIN, Servers, systems

SYSTEMS = ("ceiling", "userbase")
HASHING_CONNECTIONS = 64


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--cases", default="list10,list100,by_id,me")
    args = parser.parse_args(argv)
    password_hash = make_hasher(service_settings()).hash(PASSWORD)
    with (
        tempfile.TemporaryDirectory(prefix="userbase-ab-") as workdir,
        bench_database("127.0.0.1", 5432, BIN / "userbase") as database,
        Servers(0, Path(workdir)) as servers,
    ):
        database.load_users(args.users, password_hash)
        for system in systems(database):
            if system.name in SYSTEMS:
                servers.start(system)
        token = sign_up_and_sign_in(servers.running["userbase"].url)
        cases = {
            "list10": ("/users/?limit=100", 10, ("get",), {}),
            "list100": ("/users/?limit=100", 100, ("get",), {}),
            "by_id": ("/users/", 10, ("by-id", str(args.users)), {}),
            "me": ("/users/me", 10, ("get",), {"Authorization": f"Bearer {token}"}),
        }
        hashing_cases = {
            "create": ("/users/", ("post-users",)),
            "token": ("/auth/token", ("post-token", str(args.users))),
        }
        for name in args.cases.split(","):
            if name in hashing_cases:
                path, script = hashing_cases[name]
                _against_hashing(servers, name, path, script, args.seconds, args.rounds)
                continue
            path, connections, script, headers = cases[name]
            for round_number in range(args.rounds):
                order = SYSTEMS if round_number % 2 == 0 else SYSTEMS[::-1]
                rps: dict[str, float] = {}
                for system in order:
                    server = servers.running[system]
                    common = {"connections": connections, "timeout": 10, "cpu": 1}
                    url = server.url + path
                    run_wrk(url, seconds=1, script_args=(*script, "w"), headers=headers, **common)
                    server.settle(30)
                    result = run_wrk(
                        url,
                        seconds=args.seconds,
                        script_args=(*script, "m"),
                        headers=headers,
                        **common,
                    )
                    server.settle(30)
                    rps[system] = result.rps
                    if result.errors:
                        print(f"  {system} {name}: {result.errors} errors")
                ratio = rps["userbase"] / rps["ceiling"]
                print(
                    f"{name:<8} round {round_number + 1}: ceiling {rps['ceiling']:8.1f}  "
                    f"userbase {rps['userbase']:8.1f}  ratio {ratio:.2f}",
                    flush=True,
                )
    return 0


def _against_hashing(
    servers: Servers, name: str, path: str, script: tuple[str, ...], seconds: int, rounds: int
) -> None:
    server = servers.running["userbase"]
    common = {"connections": HASHING_CONNECTIONS, "timeout": 10, "cpu": 1}
    for round_number in range(rounds):
        server.settle(30)
        bound = measure_hashing(servers.cpu, samples=15)
        for phase in ("w", "m"):  # warm-up, then measure
            # post-users' argument tags its usernames: each run of wrk needs a new one.
            tag = f"ab{round_number}{phase}"
            args = (script[0], tag) if script == ("post-users",) else script
            result = run_wrk(
                server.url + path, seconds=2 if phase == "w" else seconds, script_args=args,
                **common,
            )  # fmt: skip
            server.settle(30)
        print(
            f"{name:<8} round {round_number + 1}: bound {bound.bound_rps:8.1f}  "
            f"userbase {result.rps:8.1f}  ratio {result.rps / bound.bound_rps:.3f}  "
            f"errors {result.errors}",
            flush=True,
        )


if __name__ == "__main__":
    raise SystemExit(main())
