"""`make bench`: userbase and its peers on one PostgreSQL database, one run, one table.

Durations and sizes come from flags or BENCH_* variables; `--quick` is a smoke run of a minute
or so that writes bench/results/quick.* instead of latest.*.
"""

import argparse
import os
import platform
import resource
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from bench.accounts import sign_up_and_sign_in
from bench.cases import (
    PAGE,
    RESOURCE_SERVERS,
    Case,
    big_table_cases,
    small_table_cases,
    token_cases,
)
from bench.database import ROOT, bench_database
from bench.hashing import (
    PASSWORD,
    HashingBound,
    make_hasher,
    measure_hashing,
    service_settings,
)
from bench.load import run_wrk, wrk_version
from bench.report import plot, signing_table, table, targets_table, write_json
from bench.results import Measurement, Results
from bench.servers import BIN, Server, Servers, resource_server_system, systems
from bench.signing import SigningCost, measure_signing
from bench.targets import evaluate
from bench.tokens import TokenSource, register_client

# Long enough for the tutorial to come back from its stall (its pool timeout is 30 s).
SETTLE_SECONDS = 75
# --cases: every case, or only issue 17's (the token cases: userbase and the example resource
# server, without the peers, the hashing cases and the big table).
CASE_SETS = ("all", "tokens")
TOKEN_SYSTEMS = ("userbase",)


@dataclass(frozen=True)
class Options:
    duration: int
    warmup: int
    users: int
    big_users: int
    timeout: int
    hash_samples: int
    rounds: int
    server_cpu: int
    load_cpu: int
    pg_host: str
    pg_port: int
    results_dir: Path
    name: str
    cases: str


def parse_options(argv: list[str] | None) -> Options:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        default=env("BENCH_QUICK") == "1",
        help="smoke run: 2 s per case, 1 s warm-up, 1 round, 50,000 big users (BENCH_QUICK=1)",
    )
    parser.add_argument(
        "--duration", type=int, help="seconds measured per case (BENCH_DURATION, 10)"
    )
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per case (BENCH_WARMUP, 2)")
    parser.add_argument(
        "--users",
        type=int,
        default=int(env("BENCH_USERS", "10000")),
        help="users in the table for most cases (BENCH_USERS)",
    )
    parser.add_argument(
        "--big-users",
        type=int,
        help="users for the first/last page cases (BENCH_BIG_USERS, 1000000)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=int(env("BENCH_TIMEOUT", "10")),
        help="wrk's per-request timeout in seconds (BENCH_TIMEOUT)",
    )
    parser.add_argument("--hash-samples", type=int, default=15)
    parser.add_argument(
        "--rounds", type=int, help="rounds of the cases compared across systems (BENCH_ROUNDS, 2)"
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument("--pg-host", default=env("BENCH_PG_HOST", "127.0.0.1"))
    parser.add_argument("--pg-port", type=int, default=int(env("BENCH_PG_PORT", "5432")))
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--name", help="results file name without extension (latest, or quick)")
    parser.add_argument(
        "--cases",
        choices=CASE_SETS,
        default=env("BENCH_CASES", "all"),
        help="all, or only the token cases of issue 17 (~5 minutes; BENCH_CASES)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    return Options(
        duration=args.duration or int(env("BENCH_DURATION", "2" if quick else "10")),
        warmup=args.warmup or int(env("BENCH_WARMUP", "1" if quick else "2")),
        users=args.users,
        big_users=args.big_users or int(env("BENCH_BIG_USERS", "50000" if quick else "1000000")),
        timeout=args.timeout,
        hash_samples=5 if quick else args.hash_samples,
        rounds=args.rounds or int(env("BENCH_ROUNDS", "1" if quick else "2")),
        server_cpu=args.server_cpu,
        load_cpu=args.load_cpu,
        pg_host=args.pg_host,
        pg_port=args.pg_port,
        results_dir=args.results_dir,
        name=args.name or (
            ("quick" if quick else "latest") + ("-tokens" if args.cases == "tokens" else "")
        ),
        cases=args.cases,
    )  # fmt: skip


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every server is stopped and the database dropped."""

    def handler(signum: int, _frame: object) -> NoReturn:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _allow_many_connections() -> None:
    # 1,000 connections need as many descriptors in wrk and in the server.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _say(message: str) -> None:
    print(message, flush=True)


class Bench:
    """Runs cases against the started servers and keeps what they measured."""

    def __init__(self, options: Options, servers: Servers) -> None:
        self.options = options
        self.servers = servers
        self.results = Results()

    def run_case(self, case: Case) -> None:
        """Every system of the case; with rounds, in alternating order, keeping the fastest."""
        order = list(case.paths.items())
        runs: dict[str, list[Measurement]] = {system: [] for system in case.paths}
        for round_number in range(case.rounds):
            for system, path in order if round_number % 2 == 0 else order[::-1]:
                runs[system].append(self._measure(case, system, path))
        for measured in runs.values():
            best = max(measured, key=lambda m: (not m.failed, m.rps))
            if case.rounds > 1:
                best = replace(best, rounds_rps=tuple(m.rps for m in measured))
            self.results.add(best)

    def run_alternating(self, cases: list[Case]) -> None:
        """Cases compared with each other (not systems): `rounds` rounds of all of them, in
        alternating order, keeping each case's fastest round (as run_case does for systems)."""
        rounds = max(case.rounds for case in cases)
        runs: dict[tuple[str, str], list[Measurement]] = {}
        for round_number in range(rounds):
            for case in cases if round_number % 2 == 0 else cases[::-1]:
                for system, path in case.paths.items():
                    runs.setdefault((case.key, system), []).append(
                        self._measure(case, system, path)
                    )
        for measured in runs.values():
            best = max(measured, key=lambda m: (not m.failed, m.rps))
            if rounds > 1:
                best = replace(best, rounds_rps=tuple(m.rps for m in measured))
            self.results.add(best)

    def run_side_by_side(self, cases: list[Case]) -> None:
        """Each system runs all `cases` back to back: cases compared with each other (first
        page, last page) are measured a few seconds apart, not minutes, on a drifting machine."""
        for system in dict.fromkeys(name for case in cases for name in case.paths):
            for case in cases:
                if system in case.paths:
                    self.results.add(self._measure(case, system, case.paths[system]))

    def _measure(self, case: Case, system: str, path: str) -> Measurement:
        server = self.servers.running[system]
        options = self.options
        try:
            # A peer overloaded by the previous case must have recovered before it is measured.
            server.wait_ready(timeout=120)
        except RuntimeError as exc:
            _say(f"  {system:<13} {case.title}: FAILED, {exc}")
            return Measurement.failure(
                case.key, case.title, system, case.connections, path, str(exc)[:300]
            )
        tag = secrets.token_hex(3)
        common: dict[str, Any] = {
            "connections": case.connections,
            "timeout": options.timeout,
            "cpu": options.load_cpu,
        }
        url = server.url + path
        warm = case.run_inputs()
        run_wrk(
            url,
            seconds=options.warmup,
            script_args=(*case.script_args, *warm.script_args, f"w{tag}"),
            headers={**case.headers, **warm.headers},
            **common,
        )
        self._settle(server)
        inputs = case.run_inputs()  # before the CPU count starts: it may ask userbase for tokens
        cpu_before = server.cpu_seconds()
        result = run_wrk(
            url,
            seconds=options.duration,
            script_args=(*case.script_args, *inputs.script_args, f"m{tag}"),
            headers={**case.headers, **inputs.headers},
            **common,
        )
        measurement = Measurement.from_wrk(
            case.key,
            case.title,
            system,
            case.connections,
            path,
            result,
            server.rss_bytes(),
            server.cpu_seconds() - cpu_before,
        )
        self._settle(server)
        _say(
            f"  {system:<13} {case.title:<40} {measurement.rps:>9.1f} req/s  "
            f"p50 {measurement.p50_ms:>8.1f} ms  p99 {measurement.p99_ms:>8.1f} ms  "
            f"errors {measurement.errors}  cpu {measurement.cpu_ms_per_request:.2f} ms/req "
            f"({measurement.core_use:.0%} of the core)  rss {measurement.rss_mb:.0f} MB"
        )
        return measurement

    @staticmethod
    def _settle(server: Server) -> None:
        # Best effort: a stalled peer is measured (and reported) as it is.
        if not server.settle(SETTLE_SECONDS):
            _say(f"  {server.system.name} still busy {SETTLE_SECONDS} s after its load stopped")


def _measure_hashing(options: Options) -> HashingBound:
    # Taken right before the case it bounds: the machine's other load drifts over a run.
    _say(f"hashing: {options.hash_samples} argon2id hashes on cpu {options.server_cpu}")
    hashing = measure_hashing(options.server_cpu, options.hash_samples)
    _say(
        f"  median {hashing.median_ms:.1f} ms ({hashing.median_cpu_ms:.1f} ms of CPU): "
        f"at best {hashing.bound_rps:.1f} hashes/s per core"
    )
    return hashing


def _measure_signing(options: Options) -> list[SigningCost]:
    _say(f"signing: JWTs signed and verified with joserfc on cpu {options.server_cpu}")
    costs = measure_signing(options.server_cpu, seconds=0.5 if options.duration < 5 else 2.0)
    for cost in costs:
        _say(
            f"  {cost.alg}: sign {cost.sign_per_s:,.0f}/s, verify {cost.verify_per_s:,.0f}/s "
            "(per second of CPU)"
        )
    return costs


def _command(argv: list[str] | None) -> str:
    """How this run was asked for, to print beside its figures."""
    args = sys.argv[1:] if argv is None else argv
    env = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")]
    if not args and not env:
        return "make bench"
    return " ".join([*env, "make bench", *([f"BENCH_ARGS='{' '.join(args)}'"] if args else [])])


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if options.server_cpu == options.load_cpu or len(os.sched_getaffinity(0)) < 2:
        sys.exit("bench: needs two cores, one for the server and one for wrk")
    _stop_on_sigterm()
    _allow_many_connections()
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    wrk = wrk_version()

    settings = service_settings()
    password_hash = make_hasher(settings).hash(PASSWORD)
    # Each case with a hashing bound is compared with the bound measured just before it.
    hashing: dict[str, HashingBound] = {}
    everything = options.cases == "all"
    big_load_s, total = 0.0, options.users

    with (
        tempfile.TemporaryDirectory(prefix="userbase-bench-") as workdir,
        bench_database(options.pg_host, options.pg_port, BIN / "userbase") as database,
        Servers(options.server_cpu, Path(workdir)) as servers,
    ):
        _say(f"database {database.name}: loading {options.users:,} users")
        small_load_s = database.load_users(options.users, password_hash)
        for system in systems(database):
            if everything or system.name in TOKEN_SYSTEMS:
                _say(f"starting {system.name}: {system.title}")
                servers.start(system)
        userbase_url = servers.running["userbase"].url
        for name, (example, title) in RESOURCE_SERVERS.items():
            resource_server = resource_server_system(
                name,
                example,
                title,
                userbase_url,
                issuer=settings.public_url.rstrip("/"),
                audience=(settings.token_audience or settings.public_url).rstrip("/"),
            )
            _say(f"starting {resource_server.name}: {resource_server.title}")
            servers.start(resource_server)
        bench = Bench(options, servers)
        me_token = sign_up_and_sign_in(userbase_url)
        if everything:
            for case in small_table_cases(options.users, options.rounds, me_token):
                if case.hashing_bound:
                    hashing[case.key] = _measure_hashing(options)
                bench.run_case(case)

        signing = _measure_signing(options)
        app = register_client(database, "bench app", "password", "refresh_token")
        checker = register_client(database, "bench resource server", "client_credentials")
        # user1 was loaded with the bench's password; each of its sign-ins is a chain.
        tokens = TokenSource(userbase_url, app, "user1")
        compared, others = token_cases(options.rounds, me_token, tokens, checker)
        bench.run_alternating(compared)
        for case in others:
            bench.run_case(case)

        if everything:
            _say(f"loading up to {options.big_users:,} users")
            big_load_s = database.load_users(options.big_users, password_hash)
            total = database.count_users()
            bench.run_side_by_side(big_table_cases(total, database.id_before_last_page(PAGE)))
        postgres_version = database.server_version()
        commands = {
            name: " ".join(["taskset", "-c", str(options.server_cpu), *server.system.argv])
            .replace(f"{ROOT}/", "")
            .replace("{port}", str(server.port))
            for name, server in servers.running.items()
        }

    results = bench.results
    targets = evaluate(results, hashing, signing)
    seconds = time.monotonic() - clock
    document = {
        "command": _command(argv),
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "server_cpu": options.server_cpu,
            "load_cpu": options.load_cpu,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "postgresql": postgres_version,
            "wrk": wrk,
        },
        "settings": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
            "userbase_env": {k: v for k, v in os.environ.items() if k.startswith("USERBASE_")},
        },
        "load_seconds": {"small": round(small_load_s, 1), "big": round(big_load_s, 1)},
        "big_table_users": total,
        "systems": commands,
        "hashing": {
            key: {
                **asdict(bound),
                "bound_rps": round(bound.bound_rps, 1),
                "machine_bound_rps": round(bound.machine_bound_rps, 1),
            }
            for key, bound in hashing.items()
        },
        "signing": [
            {
                **asdict(cost),
                "sign_per_s": round(cost.sign_per_s),
                "verify_per_s": round(cost.verify_per_s),
            }
            for cost in signing
        ],
        "results": [asdict(m) for m in results.measurements],
        "ratios_vs_ceiling": results.ratios("ceiling"),
        "ratios_vs_drf": results.ratios("drf"),
        "cpu_ratios_vs_ceiling": results.ratios("ceiling", by_cpu=True),
        "targets": [asdict(t) for t in targets],
    }
    json_path = options.results_dir / f"{options.name}.json"
    png_path = options.results_dir / f"{options.name}.png"
    write_json(json_path, document)
    plot(results, png_path, f"{started_at:%Y-%m-%d %H:%M} UTC, `{document['command']}`")
    _say("\n" + table(results))
    for key, bound in hashing.items():
        _say(
            f"\nhashing bound before {key}: {bound.median_ms:.1f} ms per argon2id hash "
            f"({bound.median_cpu_ms:.1f} ms of CPU) "
            f"(t={bound.time_cost}, m={bound.memory_kib} KiB, p={bound.parallelism}) -> "
            f"{bound.bound_rps:.1f}/s on the server's core, {bound.machine_bound_rps:.1f}/s on "
            f"{bound.machine_cores} cores"
        )
    _say("\n" + signing_table(signing))
    _say("\n" + targets_table(targets))
    _say(f"\nwrote {json_path} and {png_path} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
