"""The request head is bounded where its bytes arrive: in size (431) and in time (408).

Raw sockets against a live server, started both ways (`userbase serve`, and uvicorn's own
command as the tutorial's `uvicorn main:app` uses it).
"""

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import USERBASE_SERVE, UVICORN, LiveServer

pytestmark = pytest.mark.live

STARTS = {"userbase serve": USERBASE_SERVE, "uvicorn": UVICORN}
HEAD_TIMEOUT = 2.0
MIB = 1024 * 1024


@pytest.fixture(scope="module", params=STARTS.values(), ids=STARTS.keys())
def server(request: pytest.FixtureRequest, database_url: str) -> Iterator[LiveServer]:
    live = LiveServer(
        database_url,
        command=request.param,
        USERBASE_HEADER_TIMEOUT=str(HEAD_TIMEOUT),
        USERBASE_LOG_LEVEL="warning",
    )
    yield live
    live.stop()


def peak_memory_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset after its answer counts as a close)."""
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer


def send_huge_header(port: int, size: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        # Refused while we are still sending: what the tests want.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET /users/ HTTP/1.1\r\nHost: test\r\nX-Note: " + b"a" * size)
        return read_answer(sock)


def test_a_10_mib_header_is_refused_early_and_the_worker_does_not_grow(
    server: LiveServer,
) -> None:
    send_huge_header(server.port, 64 * 1024)  # the first refusal's own allocations, once
    before = peak_memory_kib(server.process.pid)
    started = time.monotonic()

    answer = send_huge_header(server.port, 10 * MIB)

    assert time.monotonic() - started < 2
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert peak_memory_kib(server.process.pid) - before < 4 * 1024


def test_a_huge_header_does_not_hold_up_other_requests(server: LiveServer) -> None:
    attacker = threading.Thread(target=send_huge_header, args=(server.port, 50 * MIB))
    attacker.start()
    try:
        started = time.monotonic()
        response = httpx.get(f"{server.url}/healthz", timeout=10)
        waited = time.monotonic() - started
    finally:
        attacker.join()
    assert response.status_code == 200
    assert waited < 1  # before the bound: more than 10 s


def test_an_oversized_head_gets_a_431_problem(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # A head that never ends, sent in pieces (as a real client's bytes arrive).
        sock.sendall(b"GET /users/ HTTP/1.1\r\nHost: test\r\n")
        for n in range(40):
            try:
                sock.sendall(b"X-%d: %s\r\n" % (n, b"a" * 1000))
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0.05)[0]:
                break  # the server answered
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"content-type: application/problem+json" in answer
    assert b"x-content-type-options: nosniff" in answer


def answer_to_a_slow_head(port: int) -> tuple[bytes, float]:
    """Send a request's headers one byte a second; return the answer and when it came."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        for byte in b"X-Slow: " + b"a" * 30:
            sock.sendall(bytes([byte]))
            # Wait one second for the server's answer or close, instead of sleeping it.
            if select.select([sock], [], [], 1.0)[0]:
                break
        return read_answer(sock), time.monotonic() - started


def test_headers_sent_one_byte_a_second_get_a_408_after_the_timeout(server: LiveServer) -> None:
    answer, after = answer_to_a_slow_head(server.port)

    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"content-type: application/problem+json" in answer
    assert HEAD_TIMEOUT - 0.5 < after < HEAD_TIMEOUT + 1.5


def test_a_connection_that_sends_nothing_is_closed_after_the_timeout(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        started = time.monotonic()
        answer = read_answer(sock)
        after = time.monotonic() - started
    assert answer == b""
    assert HEAD_TIMEOUT - 0.5 < after < HEAD_TIMEOUT + 1.5


def read_response(sock: socket.socket) -> bytes:
    """One response of a kept-alive connection: its head, then Content-Length bytes of body."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, body = answer.split(b"\r\n\r\n", 1)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_on_a_kept_alive_connection_each_head_has_its_own_timeout(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        # Three heads that each take 60 % of the timeout: 180 % of it in all.
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            assert not select.select([sock], [], [], HEAD_TIMEOUT * 0.6)[0]
            sock.sendall(b"Host: test\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_a_body_larger_than_the_header_limit_in_the_same_read_is_no_431(
    server: LiveServer,
) -> None:
    body = b'{"username": "' + b"a" * 100_000 + b'"}'
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /users/ HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 422 "), answer[:200]


def test_pipelined_requests_over_the_header_limit_in_all_are_each_answered(
    server: LiveServer,
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Note: " + b"a" * 500 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request * 99 + request.replace(b"Host", b"Connection: close\r\nHost"))
        answer = read_answer(sock)
    assert answer.count(b"HTTP/1.1 200 ") == 100


def test_a_request_that_cannot_be_parsed_gets_a_400_problem(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /users/\x01 HTTP/1.1\r\nHost: test\r\n\r\n")
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"content-type: application/problem+json" in answer
