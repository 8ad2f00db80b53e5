"""/metrics for the whole server when it runs several worker processes.

Each worker counts in its own memory, and a scrape reaches one worker: with `--workers 2`, an
operator saw one worker's numbers. `userbase serve` with more than one worker therefore turns
on prometheus-client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR (prometheus-client's own
variable, read when it is first imported) names a directory where every worker keeps its
counters, histograms and gauges in memory-mapped files, and a scrape adds them all up.

What a scrape then reports:
- the counters and histograms: the sum over every worker the server has run, those that have
  exited included (so a total never goes backwards when a worker is replaced);
- `userbase_password_hashes_in_flight`: the sum over the workers alive (`livesum`);
- readings of the process taken when scraped (the connection pool, `process_*`, `python_gc_*`,
  `python_info`): the worker that answered only, labelled `pid`, as they cannot be added up;
- readings of the database taken when scraped (`userbase_mail_given_up`): as they are, the
  same whichever worker answers.
With one worker (or no PROMETHEUS_MULTIPROC_DIR) nothing of this happens.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _directory() -> Path | None:
    path = os.environ.get(MULTIPROC_DIR)
    return Path(path) if path else None


@contextmanager
def shared_by_workers(workers: int) -> Iterator[Path | None]:
    """Around all of `userbase serve`: before anything makes a metric (importing userbase's
    modules does), since prometheus-client then opens its files in the directory.

    An operator's PROMETHEUS_MULTIPROC_DIR is emptied (files of an earlier run would be added
    to this one's); without one, several workers get a fresh temporary directory, removed at
    the end. One worker and no directory: single-process mode, as before.
    """
    given = _directory()
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        for stale in given.glob("*.db"):
            stale.unlink()
        yield given
    elif workers > 1:
        made = Path(tempfile.mkdtemp(prefix="userbase-metrics-"))
        os.environ[MULTIPROC_DIR] = str(made)
        try:
            yield made
        finally:
            del os.environ[MULTIPROC_DIR]
            shutil.rmtree(made, ignore_errors=True)
    else:
        yield None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds that pid
        return True
    return True


def forget_dead_workers() -> None:
    """At a worker's start: a worker that was killed (and is being replaced) left its live
    gauges behind; drop them so they no longer count. Its counters stay in the totals."""
    directory = _directory()
    if directory is None:
        return
    for file in directory.glob("gauge_live*_*.db"):
        pid = int(file.stem.rsplit("_", 1)[1])
        if not _alive(pid):
            mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def worker_exiting() -> None:
    """At a worker's clean exit: its live gauges stop counting."""
    directory = _directory()
    if directory is not None:
        mark_process_dead(os.getpid(), str(directory))  # type: ignore[no-untyped-call]


# Readings of the process that answers a scrape (the rest of what is read when scraped is the
# database's, the same from every worker).
_PER_PROCESS = ("process_", "python_", "userbase_db_pool_")


class _AnsweringWorker(Collector):
    """What is read when scraped; a reading of this process is labelled with its pid."""

    def __init__(self, own: CollectorRegistry, shared: frozenset[str]) -> None:
        self.own = own
        self.shared = shared

    def collect(self) -> Iterator[Metric]:
        pid = str(os.getpid())
        for family in self.own.collect():
            if family.name in self.shared:
                continue
            if not family.name.startswith(_PER_PROCESS):
                yield family
                continue
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                labelled.add_sample(
                    sample.name, {**sample.labels, "pid": pid}, sample.value, sample.timestamp
                )
            yield labelled


class _WholeServer(Collector):
    def __init__(self, own: CollectorRegistry, directory: Path) -> None:
        self.own = own
        # prometheus-client leaves these two untyped.
        self.workers = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        families: list[Metric] = list(self.workers.collect())  # type: ignore[no-untyped-call]
        yield from families
        # Every counter, histogram and gauge of metrics.py is in the files as soon as it has a
        # value; REGISTRY's own copy of one (this worker's part) is left out by its name.
        shared = frozenset(family.name for family in families)
        yield from _AnsweringWorker(self.own, shared).collect()


@lru_cache(maxsize=1)
def _scraped(own: CollectorRegistry) -> CollectorRegistry:
    directory = _directory()
    if directory is None:
        return own
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_WholeServer(own, directory))
    return registry


def exposition(own: CollectorRegistry) -> bytes:
    """What GET /metrics answers: this process's registry, or the whole server's metrics."""
    return generate_latest(_scraped(own))
