"""The run's outputs: a table on stdout, bench/results/<name>.json and a plot (<name>.png)."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.results import Measurement, Results
from bench.signing import SigningCost
from bench.targets import Target

SYSTEM_COLOURS = {
    "ceiling": "#7f7f7f",
    "userbase": "#1f77b4",
    "tutorial": "#ff7f0e",
    "tutorial-all": "#d62728",
    "drf": "#2ca02c",
    "resource-server": "#9467bd",
    "cached-resource-server": "#8c564b",
}


def table(results: Results) -> str:
    """The measurements as a Markdown table, with req/s as a multiple of the ceiling's."""
    ratios, cpu_ratios = results.ratios("ceiling"), results.ratios("ceiling", by_cpu=True)
    lines = [
        "| case | system | req/s | x ceiling | p50 ms | p99 ms | errors | RSS MB "
        "| CPU ms/req | core use | x ceiling by CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results.by_case():
        if m.failed:
            lines.append(f"| {m.title} | {m.system} | failed: {m.failed[:60]} |" + " |" * 8)
            continue
        lines.append(
            f"| {m.title} | {m.system} | {m.rps:,.1f} | {_ratio(ratios, m)} | {m.p50_ms:,.1f} | "
            f"{m.p99_ms:,.1f} | {_errors(m)} | {m.rss_mb:.0f} | {m.cpu_ms_per_request:.2f} | "
            f"{m.core_use:.0%} | {_ratio(cpu_ratios, m)} |"
        )
    return "\n".join(lines)


def _ratio(ratios: dict[str, dict[str, float]], m: Measurement) -> str:
    if m.system == "ceiling":
        return "1.00"
    ratio = ratios.get(m.case, {}).get(m.system)
    return "" if ratio is None else f"{ratio:.2f}"


def _errors(m: Measurement) -> str:
    if m.stalled:
        return f"stalled: {m.unanswered} requests, no answer in {m.seconds:.0f} s"
    if not m.errors:
        return "0"
    parts = []
    if m.non_2xx:
        parts.append(f"{m.non_2xx} non-2xx")
    if m.socket_errors:
        timeouts = f", {m.timeouts} timeouts" if m.timeouts else ""
        parts.append(f"{m.socket_errors} socket{timeouts}")
    return f"{m.errors} ({'; '.join(parts)})"


def signing_table(signing: Sequence[SigningCost]) -> str:
    """JWTs signed and verified per second of CPU on the server's core (bench/signing.py)."""
    lines = [
        "| algorithm | signs/s | µs a sign | verifies/s | µs a verify |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in signing:
        lines.append(
            f"| {c.alg} | {c.sign_per_s:,.0f} | {c.sign_us:.0f} | {c.verify_per_s:,.0f} | "
            f"{c.verify_us:.0f} |"
        )
    return "\n".join(lines)


def targets_table(targets: Sequence[Target]) -> str:
    lines = ["| target | goal | measured | met | gap |", "|---|---|---:|---|---|"]
    for t in targets:
        met = {True: "yes", False: "**no**", None: "-"}[t.met]
        measured = "" if t.measured is None else f"{t.measured:g}"
        lines.append(f"| {t.text} | {t.goal} | {measured} | {met} | {t.gap} |")
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def plot(results: Results, path: Path, subtitle: str) -> None:
    """Grouped bars per case, one per system: req/s above, p99 below (both log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = [m for m in results.by_case() if not m.failed]
    cases = list(dict.fromkeys(m.title for m in ran))
    systems = [s for s in SYSTEM_COLOURS if any(m.system == s for m in ran)]
    width = 0.8 / len(systems)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(14, 9), sharex=True)
    for index, system in enumerate(systems):
        xs, rps, p99 = [], [], []
        for m in ran:
            if m.system != system:
                continue
            x = cases.index(m.title) + (index - (len(systems) - 1) / 2) * width
            if m.stalled:
                for axes in (top, bottom):
                    axes.annotate(
                        "stalled",
                        (x, 0),
                        xycoords=("data", "axes fraction"),
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize="x-small",
                        color=SYSTEM_COLOURS[system],
                    )
                continue
            xs.append(x)
            rps.append(m.rps)
            p99.append(m.p99_ms)
        colour = SYSTEM_COLOURS[system]
        top.bar(xs, rps, width, label=system, color=colour)
        bottom.bar(xs, p99, width, label=system, color=colour)
    top.set_yscale("log")
    top.set_ylabel("requests per second (log)")
    top.legend(ncols=len(systems), loc="upper right", fontsize="small")
    top.grid(axis="y", which="both", alpha=0.3)
    bottom.set_yscale("log")
    bottom.set_ylabel("p99 latency, ms (log)")
    bottom.grid(axis="y", which="both", alpha=0.3)
    bottom.set_xticks(range(len(cases)), cases, rotation=20, ha="right", fontsize="small")
    figure.suptitle(f"userbase and its peers, server on one core\n{subtitle}", fontsize="medium")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
