"""The targets of issue 6 checked against one run: met, missed (by how much), or not measured."""

from dataclasses import dataclass

from bench.hashing import HashingBound
from bench.results import Results

RSS_LIMIT_MB = 150


@dataclass(frozen=True)
class Target:
    key: str
    text: str
    goal: str
    measured: float | None
    met: bool | None  # None: not measured in this run
    gap: str  # how far from the goal when missed, else ""


def _at_least(key: str, text: str, measured: float | None, goal: float) -> Target:
    if measured is None:
        return Target(key, text, f">= {goal:g}", None, None, "not measured")
    met = measured >= goal
    if met:
        gap = ""
    elif measured > 0:
        gap = f"{goal - measured:.2f} short: needs {goal / measured:.2f}x"
    else:
        gap = "nothing served"
    return Target(key, text, f">= {goal:g}", round(measured, 3), met, gap)


def _at_most(key: str, text: str, measured: float | None, goal: float) -> Target:
    if measured is None:
        return Target(key, text, f"<= {goal:g}", None, None, "not measured")
    met = measured <= goal
    gap = "" if met else f"{measured - goal:.2f} over ({measured / goal:.2f}x the limit)"
    return Target(key, text, f"<= {goal:g}", round(measured, 3), met, gap)


def _zero_errors(key: str, text: str, results: Results, case: str) -> Target:
    measured = results.get(case, "userbase")
    if measured is None:
        return Target(key, text, "= 0", None, None, "not measured")
    if measured.stalled:
        return Target(key, text, "= 0", measured.unanswered, False, "stalled: nothing answered")
    errors = measured.errors
    gap = "" if errors == 0 else f"{errors} errors, {measured.requests} answers"
    return Target(key, text, "= 0", errors, errors == 0, gap)


def _p50_ratio(results: Results) -> float | None:
    first, last = results.get("big_first_c10", "userbase"), results.get("big_last_c10", "userbase")
    if first is None or last is None or not first.p50_ms:
        return None
    return last.p50_ms / first.p50_ms


def _vs_hashing_bound(
    results: Results, hashing: dict[str, HashingBound], case: str
) -> float | None:
    measured, bound = results.get(case, "userbase"), hashing.get(case)
    return measured.rps / bound.bound_rps if measured and bound else None


def evaluate(results: Results, hashing: dict[str, HashingBound]) -> list[Target]:
    """`hashing`: the bound measured just before each case that has one, by case key."""
    create = results.get("create_c64", "userbase")
    create_hashing = hashing.get("create_c64")
    last = results.last_for("userbase")
    return [
        _at_least(
            "list_c10_vs_ceiling",
            "GET /users/?limit=100, 10 conn: req/s vs the ceiling (aim 0.6)",
            results.rps_ratio("list_c10", "userbase", "ceiling"),
            0.5,
        ),
        _at_least(
            "list_c100_vs_ceiling",
            "GET /users/?limit=100, 100 conn: req/s vs the ceiling (aim 0.6)",
            results.rps_ratio("list_c100", "userbase", "ceiling"),
            0.5,
        ),
        _zero_errors(
            "list_c100_errors", "GET /users/?limit=100, 100 conn: errors", results, "list_c100"
        ),
        _zero_errors(
            "list_c1000_errors", "GET /users/?limit=100, 1000 conn: errors", results, "list_c1000"
        ),
        _at_least(
            "list_c10_vs_drf",
            "GET /users/?limit=100, 10 conn: req/s vs DRF",
            results.rps_ratio("list_c10", "userbase", "drf"),
            3,
        ),
        _at_least(
            "list_c100_vs_drf",
            "GET /users/?limit=100, 100 conn: req/s vs DRF",
            results.rps_ratio("list_c100", "userbase", "drf"),
            3,
        ),
        _at_least(
            "by_id_vs_ceiling",
            "GET /users/{id}, 10 conn: req/s vs the ceiling",
            results.rps_ratio("by_id_c10", "userbase", "ceiling"),
            0.5,
        ),
        _at_most(
            "big_last_vs_first_p50",
            "last page vs first page of the big table: p50 ratio",
            _p50_ratio(results),
            1.2,
        ),
        _at_least(
            "create_vs_hashing_bound",
            "POST /users/, 64 conn: req/s vs the hashing bound of the server's cores",
            _vs_hashing_bound(results, hashing, "create_c64"),
            0.8,
        ),
        _at_least(
            "create_cpu_vs_hash",
            "POST /users/: CPU of one hash / server CPU per create (cross-check, not in issue 6)",
            create_hashing.median_cpu_ms / create.cpu_ms_per_request
            if create and create_hashing and create.cpu_ms_per_request
            else None,
            0.8,
        ),
        _zero_errors("create_c64_errors", "POST /users/, 64 conn: errors", results, "create_c64"),
        _at_most(
            "rss_after_all_mb",
            f"userbase worker RSS after all cases, MB (after {last.case if last else '-'})",
            last.rss_mb if last else None,
            RSS_LIMIT_MB,
        ),
        _at_least(
            "me_vs_ceiling",
            "GET /users/me, 10 conn: req/s vs the ceiling",
            results.rps_ratio("me_c10", "userbase", "ceiling"),
            0.5,
        ),
        _at_least(
            "token_vs_hashing_bound",
            "POST /auth/token, 64 conn: req/s vs the hashing bound of the server's cores",
            _vs_hashing_bound(results, hashing, "token_c64"),
            0.8,
        ),
        _zero_errors("token_c64_errors", "POST /auth/token, 64 conn: errors", results, "token_c64"),
    ]
