"""The hashing bound of POST /users/: cores / the median time of one argon2id hash.

Measured in the same run, with the service's own parameters (userbase's Settings), on the core
the server is pinned to: a create cannot go faster than the hashes its cores can compute.
"""

import os
import statistics
import time
from dataclasses import dataclass

from pwdlib.hashers.argon2 import Argon2Hasher

from userbase.config import Settings

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class HashingBound:
    median_ms: float  # wall clock: what the bound of the issue divides by
    median_cpu_ms: float  # CPU time of one hash: unmoved by other work on the core
    samples: int
    time_cost: int
    memory_kib: int
    parallelism: int
    server_cores: int  # the cores the server may run on (its taskset)
    machine_cores: int

    @property
    def bound_rps(self) -> float:
        """Creates per second the pinned server can reach at best."""
        return self.server_cores / (self.median_ms / 1000)

    @property
    def machine_bound_rps(self) -> float:
        """The issue's formula with every core of the machine (a server using all of them)."""
        return self.machine_cores / (self.median_ms / 1000)


def service_settings() -> Settings:
    # No .env: the servers run without one too, from an empty directory (servers.py).
    return Settings(_env_file=None)  # type: ignore[call-arg]


def make_hasher(settings: Settings) -> Argon2Hasher:
    return Argon2Hasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def measure_hashing(cpu: int, samples: int) -> HashingBound:
    """The median of `samples` hashes on core `cpu`, after one unmeasured hash."""
    settings = service_settings()
    hasher = make_hasher(settings)
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        hasher.hash(PASSWORD)
        times, cpu_times = [], []
        for _ in range(samples):
            started, started_cpu = time.perf_counter(), time.thread_time()
            hasher.hash(PASSWORD)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.thread_time() - started_cpu)
    finally:
        os.sched_setaffinity(0, affinity)
    return HashingBound(
        median_ms=statistics.median(times) * 1000,
        median_cpu_ms=statistics.median(cpu_times) * 1000,
        samples=samples,
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        server_cores=1,
        machine_cores=os.cpu_count() or 1,
    )
