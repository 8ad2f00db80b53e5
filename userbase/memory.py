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
import logging
from collections.abc import Callable

logger = logging.getLogger("userbase.memory")


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
