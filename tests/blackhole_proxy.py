"""A TCP proxy on 127.0.0.1 that can stop forwarding without closing anything: a database that
went silent (a network partition, a hung server), as its clients see it."""

import asyncio
import socket
import threading
from typing import Self


class BlackholeProxy:
    """Forwards 127.0.0.1:<port> to `target`, in both directions, until `blackhole()`; from
    then on it reads and keeps what either side sends, and sends nothing, until `forward()`.
    Runs its own event loop in a thread."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._forwarding = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def blackhole(self) -> None:
        self._loop.call_soon_threadsafe(self._forwarding.clear)

    def forward(self) -> None:
        self._loop.call_soon_threadsafe(self._forwarding.set)

    async def _start(self) -> None:
        self._forwarding.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
            try:
                await asyncio.gather(self._pump(client_r, server_w), self._pump(server_r, client_w))
            finally:
                server_w.close()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            client_w.close()
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            # Blackholed: what arrives is kept (the sender's kernel sees it acknowledged, as
            # with a hung server), and handed on only once forwarding resumes.
            await self._forwarding.wait()
            writer.write(data)
            await writer.drain()
        writer.close()
