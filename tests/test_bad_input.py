"""Bad bytes on the wire are 4xx: control characters, huge values, bad UTF-8, SQL metacharacters.

Sent over a raw socket to a live server: an HTTP client library refuses to send most of these.
"""

import socket

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.live

GET = b"GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s\r\n"


def exchange(server: LiveServer, raw: bytes) -> tuple[int, bytes]:
    """Send raw bytes, read to the end, return the status and the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
    return int(status_line.split()[1]), answer


def get(target: bytes, headers: bytes = b"") -> bytes:
    return GET % (target, headers)


BAD_REQUESTS = {
    # control characters
    "control character in the path": get(b"/users/\x01"),
    "control character in the query": get(b"/users/?q=a\x01b"),
    "encoded control character in the query": get(b"/users/?q=a%01b"),
    "encoded NUL in the path": get(b"/users/%00"),
    "control character in a header": get(b"/users/", b"X-Note: a\x01b\r\n"),
    "NUL in a header": get(b"/users/", b"X-Note: a\x00b\r\n"),
    "control character in Host": get(b"/users/").replace(b"Host: test", b"Host: te\x01st"),
    # invalid UTF-8
    "raw 0xFF in the path": get(b"/users/\xff"),
    "encoded 0xFF in the path": get(b"/users/%ff"),
    "raw 0xFF in the query": get(b"/users/?q=\xff"),
    "encoded 0xFF in the query": get(b"/users/?q=%ff"),
    "encoded 0xFF in an integer": get(b"/users/?limit=%ff"),
    "0xFF in a header": get(b"/users/", b"X-Note: a\xffb\r\n"),
    "invalid UTF-8 in the body": (
        b"POST /users/ HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: 16\r\n\r\n"
        b'{"username":"\xff"}'
    ),
    # huge values
    "a 100 kB path": get(b"/users/" + b"1" * 100_000),
    "a 100 kB query": get(b"/users/?q=" + b"a" * 100_000),
    "a 5000-digit integer": get(b"/users/?limit=" + b"9" * 5000),
    "a 200 kB header": get(b"/users/", b"X-Note: " + b"a" * 200_000 + b"\r\n"),
    "two thousand headers": get(b"/users/", b"".join(b"X-%d: a\r\n" % i for i in range(2000))),
    "a 100 kB Host": get(b"/users/").replace(b"Host: test", b"Host: " + b"h" * 100_000),
    "a negative Content-Length": (
        b"POST /users/ HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: -1\r\n\r\n{}"
    ),
    # SQL metacharacters
    "SQL in the path": get(b"/users/1%27%20OR%201=1--"),
    "SQL in the prefix": get(b"/users/?q=%27%20OR%201=1--"),
    "SQL in after": get(b"/users/?after=1;DROP%20TABLE%20users"),
    "LIKE wildcards in the prefix": get(b"/users/?q=%25"),
}


@pytest.mark.parametrize("raw", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_bytes_are_a_4xx(live_server: LiveServer, raw: bytes) -> None:
    status, answer = exchange(live_server, raw)
    assert 400 <= status < 500, answer[:300]


def test_the_service_still_answers_after_the_bad_bytes(live_server: LiveServer) -> None:
    for raw in BAD_REQUESTS.values():
        exchange(live_server, raw)
    status, _ = exchange(live_server, get(b"/users/"))
    assert status == 200


def test_oversized_headers_are_431_problem_json(live_server: LiveServer) -> None:
    status, answer = exchange(live_server, BAD_REQUESTS["a 200 kB header"])
    assert status == 431
    assert b"content-type: application/problem+json" in answer


def test_headers_just_under_the_limit_are_served(live_server: LiveServer) -> None:
    status, _ = exchange(live_server, get(b"/users/", b"X-Note: " + b"a" * 15_000 + b"\r\n"))
    assert status == 200


def test_a_utf8_header_value_is_accepted(live_server: LiveServer) -> None:
    status, _ = exchange(live_server, get(b"/users/", "X-Note: Zoë\r\n".encode()))
    assert status == 200
