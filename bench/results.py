"""One measured case on one system, and the ratios between systems within a run."""

from collections.abc import Iterable
from dataclasses import dataclass

from bench.load import WrkResult


@dataclass(frozen=True)
class Measurement:
    case: str
    title: str
    system: str
    connections: int
    path: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    unanswered: int
    errors: int
    rss_mb: float  # the serving process, read from /proc right after the case (1 MB = 10^6 B)
    # CPU time the server used during the measurement (from /proc). Per request, it is steadier
    # than req/s on a shared machine: other work on the server's core lowers req/s, not this.
    cpu_s: float
    cpu_ms_per_request: float
    core_use: float  # cpu_s / seconds: below ~0.95, the server waited (or was crowded out)
    failed: str | None = None  # why the case could not run (e.g. the server never recovered)
    # req/s of every round when the case ran several (this measurement is the fastest round)
    rounds_rps: tuple[float, ...] = ()

    @property
    def stalled(self) -> bool:
        """Requests were sent and not one was answered in the whole measurement."""
        return self.requests == 0 and self.unanswered > 0

    @classmethod
    def from_wrk(
        cls,
        case: str,
        title: str,
        system: str,
        connections: int,
        path: str,
        result: WrkResult,
        rss_bytes: int,
        cpu_s: float,
    ) -> "Measurement":
        return cls(
            case=case,
            title=title,
            system=system,
            connections=connections,
            path=path,
            requests=result.requests,
            seconds=round(result.seconds, 3),
            rps=round(result.rps, 1),
            p50_ms=round(result.p50_ms, 2),
            p90_ms=round(result.p90_ms, 2),
            p99_ms=round(result.p99_ms, 2),
            max_ms=round(result.max_ms, 2),
            non_2xx=result.non_2xx,
            socket_errors=result.socket_errors,
            timeouts=result.timeouts,
            unanswered=result.unanswered,
            errors=result.errors,
            rss_mb=round(rss_bytes / 1e6, 1),
            cpu_s=round(cpu_s, 2),
            cpu_ms_per_request=round(cpu_s * 1000 / result.requests, 3) if result.requests else 0,
            core_use=round(cpu_s / result.seconds, 3) if result.seconds else 0,
        )

    @classmethod
    def failure(
        cls, case: str, title: str, system: str, connections: int, path: str, why: str
    ) -> "Measurement":
        zeros = [0] * 16
        return cls(case, title, system, connections, path, *zeros, failed=why)


class Results:
    """The run's measurements, looked up by (case, system)."""

    def __init__(self, measurements: Iterable[Measurement] = ()) -> None:
        self.measurements: list[Measurement] = list(measurements)

    def add(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)

    def get(self, case: str, system: str) -> Measurement | None:
        for measurement in self.measurements:
            if (measurement.case, measurement.system) == (case, system) and not measurement.failed:
                return measurement
        return None

    def rps_ratio(self, case: str, system: str, base: str) -> float | None:
        """system's req/s over base's in the same case, or None when either is missing."""
        mine, theirs = self.get(case, system), self.get(case, base)
        if mine is None or theirs is None or not theirs.rps:
            return None
        return mine.rps / theirs.rps

    def cpu_ratio(self, case: str, system: str, base: str) -> float | None:
        """base's CPU per request over system's: req/s one core would give, relative to base."""
        mine, theirs = self.get(case, system), self.get(case, base)
        if mine is None or theirs is None or not mine.cpu_ms_per_request:
            return None
        return theirs.cpu_ms_per_request / mine.cpu_ms_per_request

    def ratios(self, base: str, *, by_cpu: bool = False) -> dict[str, dict[str, float]]:
        """For each case that `base` ran: every other system's req/s as a multiple of base's
        (by_cpu: the req/s its CPU time per request would give, as a multiple of base's)."""
        ratio_of = self.cpu_ratio if by_cpu else self.rps_ratio
        table: dict[str, dict[str, float]] = {}
        for measurement in self.measurements:
            ratio = ratio_of(measurement.case, measurement.system, base)
            if ratio is not None and measurement.system != base:
                table.setdefault(measurement.case, {})[measurement.system] = round(ratio, 3)
        return table

    def by_case(self) -> list[Measurement]:
        """The measurements grouped by case, in the order cases first ran."""
        order = {
            case: index
            for index, case in enumerate(dict.fromkeys(m.case for m in self.measurements))
        }
        return sorted(self.measurements, key=lambda m: order[m.case])

    def last_for(self, system: str) -> Measurement | None:
        ran = [m for m in self.measurements if m.system == system and not m.failed]
        return ran[-1] if ran else None
