"""Give freed memory back to the operating system after a burst (glibc's malloc_trim).

Python hands freed objects back to the C allocator, and glibc keeps the freed pages in its
heaps for reuse: a burst of concurrent requests or of password hashes leaves a worker tens of
MB larger for good (docs/performance.md). malloc_trim(0) returns the free pages to the system,
as Dask's workers do after their tasks. It cannot shrink the top of the heaps glibc makes for
other threads (the 19 MiB an argon2 hash uses stays there), so threads share one heap
(M_ARENA_MAX=1): under the GIL they rarely allocate at the same moment. Elsewhere than glibc
(musl, macOS) this does nothing.
"""

import ctypes
import gc
from collections.abc import Callable

# mallopt's parameter number for the arena limit (glibc's malloc.h).
_M_ARENA_MAX = -8


def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    function: Callable[..., int] | None = getattr(libc, name, None)
    return function


_malloc_trim = _libc_function("malloc_trim")
_mallopt = _libc_function("mallopt")


def share_one_heap() -> bool:
    """Threads started from now on allocate from the main heap, which malloc_trim shrinks."""
    if _mallopt is None:
        return False
    return bool(_mallopt(_M_ARENA_MAX, 1))


def release_free_memory() -> bool:
    """Return the C allocator's free pages to the system; False where that is not possible."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


# Allocations between two young-generation collections (CPython's default is 700). A request
# allocates thousands of objects, so the default collects several times per request.
YOUNG_COLLECTION_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """After start-up: freeze what start-up made, collect the young generation less often.

    Frozen objects (modules, classes, the app) are never scanned again by a full collection,
    and a request's short-lived objects are mostly gone before a collection finds them; the
    cyclic garbage left behind is collected all the same, a little later. Measured with
    bench/ab.py: +8-10% requests/s on GET /users/{id} (the gc module's docs describe freeze).
    """
    global _tuned
    if _tuned:  # once per process: the test suite starts many apps in one
        return
    _tuned = True
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


_tuned = False
