"""The load generator: wrk pinned to the load core, summarised by bench/wrk.lua as one JSON line."""

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
_MARK = "BENCH_JSON "


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int  # connect, read and write errors, and timeouts
    # wrk counts, every 2 s, each connection waiting longer than --timeout: a count of checks.
    timeouts: int
    unanswered: int  # sent but not answered when the run ended: about `connections` if stalled
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def wrk_version() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    # `wrk -v` prints its version and exits 1.
    done = subprocess.run([found, "-v"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].split(" [")[0]


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    timeout: float,
    cpu: int,
    script_args: Sequence[str] = ("get",),
    headers: Mapping[str, str] | None = None,
) -> WrkResult:
    argv = [
        "taskset", "-c", str(cpu),
        "wrk", "-t1", f"-c{connections}", f"-d{max(seconds, 1):.0f}s",
        f"--timeout={timeout:.0f}s", "--latency", "-s", str(WRK_SCRIPT),
    ]  # fmt: skip
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv += [url, "--", *script_args]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=seconds + timeout + 60
    )
    for line in done.stdout.splitlines():
        if line.startswith(_MARK):
            return _parse(json.loads(line.removeprefix(_MARK)))
    raise RuntimeError(f"wrk printed no summary (exit {done.returncode}): {done.stderr[-2000:]}")


def _parse(summary: dict[str, float]) -> WrkResult:
    timeouts = int(summary["timeouts"])
    return WrkResult(
        requests=int(summary["requests"]),
        seconds=summary["duration_us"] / 1e6,
        non_2xx=int(summary["non_2xx"]),
        unanswered=int(summary["unanswered"]),
        socket_errors=int(
            summary["connect_errors"] + summary["read_errors"] + summary["write_errors"] + timeouts
        ),
        timeouts=timeouts,
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
    )
