"""A real SMTP server in the test process (aiosmtpd), keeping what it receives.

It can misbehave the ways real ones do: answer DATA slowly, or drop the connection after DATA
without answering (the client cannot know whether the mail was taken).
"""

import asyncio
import email
import email.policy
import socket
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


class Mailbox:
    """What the server received, parsed."""

    def __init__(self, *, data_delay: float = 0.0, drop_after_data: int = 0) -> None:
        self.messages: list[EmailMessage] = []
        # The client's (address, port) per message: one connection, one port.
        self.peers: list[Any] = []
        # Each message is kept on arrival, then the reply to DATA waits this long.
        self.data_delay = data_delay
        # The first this-many messages are kept, then the connection is cut with no reply.
        self.drop_after_data = drop_after_data
        self.received = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.peers.append(session.peer)
        self.received.set()
        if len(self.messages) <= self.drop_after_data:
            server.transport.abort()
            return "421 never sent"
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return "250 OK"

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SMTPServer:
    def __init__(self, port: int | None = None, mailbox: Mailbox | None = None) -> None:
        self.port = port or free_port()
        self.mailbox = mailbox or Mailbox()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> "SMTPServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
