"""The HTTP/1.1 protocol userbase is served with: uvicorn's, with the request head bounded.

uvicorn's httptools protocol reads a request's line and headers without limit, in size or in
time. httptools gathers a header value by concatenating the pieces as they arrive: one 10 MiB
header grew a worker's peak memory by 20 MiB and was refused (431, by HeaderLimits) after
5.8 s; with a 50 MiB one, a `GET /healthz` sent meanwhile waited more than 10 s. A client
sending a byte a second held its connection for ever (tests/test_http_protocol.py, run on the
code before this module). uvicorn's h11 protocol has a size limit
(`h11_max_incomplete_event_size`) but no time limit either, and it costs four to six times the
server CPU per request: 270-368 µs against 48-76 µs for httptools, and 44-90 µs for this
protocol, on this 2-core machine under load (`python -m bench.http_protocols`, two runs).

So this protocol keeps httptools and adds the two bounds where the bytes arrive:
- size: once more than USERBASE_MAX_HEADER_BYTES have arrived for a head still incomplete, the
  client gets 431 and the connection is closed; memory per connection stays within the limit
  plus one read (at most 256 KiB);
- time: a head must be complete USERBASE_HEADER_TIMEOUT seconds after the connection opened
  (or after its first byte, on a kept-alive connection); past it, 408 and the connection is
  closed. A connection that sent nothing at all is closed silently.
The exact limit on a complete head (431 problem+json) stays with `header_limits.HeaderLimits`.
"""

import asyncio
from http import HTTPStatus
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from userbase.config import get_settings
from userbase.problem import problem
from userbase.security_headers import EVERY_RESPONSE

# How long a refused client may go on sending (dropped) before the connection is closed.
LINGER_SECONDS = 5.0


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; the request line and headers bounded in bytes and time."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.max_head_bytes = settings.max_header_bytes
        self.head_timeout = settings.header_timeout
        self.head_deadline: asyncio.TimerHandle | None = None
        self.in_head = False  # a request has begun and its headers are not complete yet
        self.head_bytes = 0
        self.head_began_in_this_read = False
        self.refused = False  # answered with an error: what the client still sends is dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.head_began_in_this_read = False
        super().data_received(data)
        # Bytes of a read in which the head began may belong to the request before it, so only
        # later reads are counted: never more than the head's own bytes, so never a false 431.
        if self.in_head and not self.head_began_in_this_read:
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head_bytes and not self.refused:
                detail = f"The request headers are larger than {self.max_head_bytes} bytes."
                self._refuse(431, detail)

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse: problem+json, like every other error."""
        self._refuse(400, msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True
        self.head_bytes = 0
        self.head_began_in_this_read = True
        # On a new connection the clock started when it opened; on a kept-alive one, now.
        if self.head_deadline is None:
            self._start_head_clock()

    def on_headers_complete(self) -> None:
        self.in_head = False
        self._stop_head_clock()
        super().on_headers_complete()

    def _start_head_clock(self) -> None:
        self.head_deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_timed_out(self) -> None:
        self.head_deadline = None
        if self.refused or self.transport.is_closing():
            return
        if self.in_head:
            detail = f"The request headers did not arrive within {self.head_timeout:g} seconds."
            self._refuse(408, detail)
        else:  # connected and never sent a byte: nothing to answer
            self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer with a problem, then close; just close if a response is being written.

        Closing at once, while the client is still sending, would make the kernel reset the
        connection, and the client lose the answer (seen with a 200 kB header). So the answer
        is followed by our end of the stream, and what the client still sends is read and
        dropped until it closes too, for at most LINGER_SECONDS (nginx's "lingering close").
        """
        self.refused = True
        self._stop_head_clock()
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        response = problem(status, detail, headers=EVERY_RESPONSE)
        head = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())]
        head += [b"%s: %s\r\n" % header for header in response.raw_headers]
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + response.body)
        if not self.transport.can_write_eof():  # TLS
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
