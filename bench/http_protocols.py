"""Server CPU per request of uvicorn's HTTP protocols, and of userbase's bounded one.

    .venv/bin/python -m bench.http_protocols

A one-route ASGI app (a 2-byte answer) served by uvicorn with each protocol in turn; one client
sends keep-alive GETs one after the other over a raw socket; the server's CPU time (user +
system, /proc/PID/stat) over the requests, divided by their number, is what the protocol and
uvicorn cost per request. Each protocol runs twice, alternately, to show the noise.
"""

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from tempfile import TemporaryDirectory

REQUESTS = 5000
WARM_UP = 500
PROTOCOLS = {
    "h11": "h11",
    "httptools": "httptools",
    "userbase (bounded httptools)": "userbase.http_protocol:BoundedHeadProtocol",
}
APP = textwrap.dedent(
    """
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    """
)
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect(port: int, server: "subprocess.Popen[bytes]") -> socket.socket:
    for _ in range(300):
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("uvicorn exited") from None
            time.sleep(0.1)
    raise RuntimeError("uvicorn did not listen within 30 s")


def one_request(sock: socket.socket) -> None:
    sock.sendall(REQUEST)
    answer = b""
    while not answer.endswith(b"\r\n\r\nok"):
        answer += sock.recv(65536)


def microseconds_per_request(protocol: str, app_dir: str) -> float:
    port = free_port()
    options = ["--port", str(port), "--http", protocol, "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench_app:app", "--app-dir", app_dir, *options]
    )
    try:
        with connect(port, server) as sock:
            for _ in range(WARM_UP):
                one_request(sock)
            before = cpu_seconds(server.pid)
            for _ in range(REQUESTS):
                one_request(sock)
            return (cpu_seconds(server.pid) - before) / REQUESTS * 1e6
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    with TemporaryDirectory() as app_dir:
        Path(app_dir, "bench_app.py").write_text(APP)
        for _ in range(2):
            for name, protocol in PROTOCOLS.items():
                cost = microseconds_per_request(protocol, app_dir)
                print(f"{name:30} {cost:6.1f} µs of server CPU per request")


if __name__ == "__main__":
    main()
