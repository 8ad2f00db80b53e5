"""Freed memory goes back to the system (glibc's malloc_trim), so bursts do not stay in RSS."""

import gc
import subprocess
import sys

from fastapi.testclient import TestClient

from userbase.app import create_app
from userbase.memory import YOUNG_COLLECTION_THRESHOLD, release_free_memory, share_one_heap

# In a fresh interpreter: 100 MB of 1 KiB strings (each a malloc block of its own, not
# pymalloc's), all freed but one in 64, which keeps glibc from giving the pages between them
# back by itself. What the trim gives back is the measure.
_BURST = """
import sys
from userbase.app import create_app
from userbase.memory import YOUNG_COLLECTION_THRESHOLD, release_free_memory, share_one_heap

def rss_mb():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) // 1024

burst = [b"x" * 1024 + bytes([i % 256]) for i in range(100_000)]
kept = burst[::64]
del burst
before = rss_mb()
assert release_free_memory()
print(before - rss_mb())
"""


def test_release_free_memory_is_available_here() -> None:
    assert release_free_memory() is True
    assert share_one_heap() is True


_THREAD_BURST = """
import threading
from userbase.app import create_app
from userbase.memory import YOUNG_COLLECTION_THRESHOLD, release_free_memory, share_one_heap

def rss_mb():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) // 1024

SHARE = {share}
if SHARE:
    share_one_heap()
base = rss_mb()

def hash_like():  # what argon2 hashes do on their thread: a large block, written, freed
    for _ in range(2):  # glibc mmaps the first; after it is freed, blocks that size are heap
        block = bytearray(16 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        del block

thread = threading.Thread(target=hash_like)
thread.start()
thread.join()
release_free_memory()
print(rss_mb() - base)
"""


def test_one_shared_heap_lets_a_threads_large_block_go_back() -> None:
    def kept_mb(share: bool) -> int:
        code = _THREAD_BURST.format(share=share)
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return int(done.stdout.strip())

    assert kept_mb(share=False) >= 12  # what the thread's own heap keeps: why we share
    assert kept_mb(share=True) < 4


def test_a_freed_burst_leaves_rss_after_the_trim() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BURST], capture_output=True, text=True, check=True
    )
    released_mb = int(done.stdout.strip())
    assert released_mb >= 50, f"only {released_mb} MB given back"


def test_start_up_freezes_its_objects_and_collects_the_young_less_often() -> None:
    with TestClient(create_app()):
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
        assert gc.get_freeze_count() > 0
