"""A real SMTP server for the email tests (aiosmtpd on 127.0.0.1, in a thread): it accepts every
message and keeps its raw bytes, parsed on demand. It holds no tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller

from tests.e2e.procs import free_port, wait_for


@dataclass(frozen=True)
class Caught:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def part(self, content_type: str) -> str:
        for p in self.message.walk():
            if p.get_content_type() == content_type and isinstance(p, EmailMessage):
                return str(p.get_content())
        raise AssertionError(f"no {content_type} part")


class Catcher:
    """`Catcher(port).start()`; `catcher.wait(n)` polls until n messages arrived."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._caught: list[Caught] = []
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's handler hook
        with self._lock:
            self._caught.append(Caught(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"

    @property
    def caught(self) -> list[Caught]:
        with self._lock:
            return list(self._caught)

    def wait(self, count: int, timeout: float = 30) -> list[Caught]:
        assert wait_for(lambda: len(self.caught) >= count, timeout, interval=0.1), (
            f"{len(self.caught)} of {count} emails within {timeout}s")
        return self.caught

    def start(self) -> Catcher:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
