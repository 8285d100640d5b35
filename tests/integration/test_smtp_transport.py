"""The SMTP transport (mail.transport.Smtp, aiosmtplib) against a real SMTP server (aiosmtpd on a free port of
127.0.0.1): a message handed over, login with the URL's credentials, and how each failure is classified —
a refused recipient is final, a refused connection or a failed login is retried."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from paygate.domain import emails
from paygate.mail import compose
from paygate.mail.transport import SendFailed, Smtp, parse_url

SENDER = "paygate <receipts@shop.test>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[bytes] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(bytes(envelope.content))
        return "250 Message accepted"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"shop", b"s3cr:t")
        if isinstance(data, LoginPassword):
            with self.lock:
                self.logins.append((data.login, data.password))
        return AuthResult(success=ok, handled=False)  # unhandled: aiosmtpd answers 535 itself


@pytest.fixture
def plain() -> Iterator[tuple[Server, int]]:
    server, port = Server(), free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    yield server, port
    controller.stop()


@pytest.fixture
def authed() -> Iterator[tuple[Server, int]]:
    server, port = Server(), free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port, authenticator=server.authenticate,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    yield server, port
    controller.stop()


def message(to: str = "buyer@example.com", email_id: str = "em_01test") -> EmailMessage:
    order = {"id": "ord_1", "amount": 500, "currency": "USD", "checkout_url": "http://pay.test/checkout/ord_1"}
    return compose.build({"id": email_id, "kind": "checkout_link", "recipient": to,
                          "data": {**emails.checkout_link(order, "2026-12-01T10:00:00Z"), "merchant_name": "Shop"}},
                         SENDER)


async def test_a_message_is_handed_over_intact(plain: tuple[Server, int]) -> None:
    server, port = plain
    await Smtp(parse_url(f"smtp://127.0.0.1:{port}")).send(message())
    [raw] = server.messages
    assert b"Message-ID: <em_01test@shop.test>" in raw and b"multipart/alternative" in raw


# plain-text AUTH is what this local test server offers; aiosmtpd warns about it (rightly, in production)
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_login_uses_the_url_credentials_and_a_failed_login_is_retried(authed: tuple[Server, int]) -> None:
    server, port = authed
    await Smtp(parse_url(f"smtp://shop:s3cr%3At@127.0.0.1:{port}")).send(message())
    assert server.logins[-1] == (b"shop", b"s3cr:t") and len(server.messages) == 1
    with pytest.raises(SendFailed) as failed:
        await Smtp(parse_url(f"smtp://shop:wrong@127.0.0.1:{port}")).send(message())
    assert failed.value.error == "authentication_failed" and not failed.value.permanent
    assert len(server.messages) == 1


async def test_a_refused_recipient_is_permanent(plain: tuple[Server, int]) -> None:
    server, port = plain
    with pytest.raises(SendFailed) as failed:
        await Smtp(parse_url(f"smtp://127.0.0.1:{port}")).send(message(to="nobody@example.com"))
    assert (failed.value.error, failed.value.code, failed.value.permanent) == ("recipient_refused", 550, True)
    assert server.messages == []


async def test_a_refused_connection_is_retried() -> None:
    with pytest.raises(SendFailed) as failed:
        await Smtp(parse_url(f"smtp://127.0.0.1:{free_port()}"), timeout_s=5).send(message())
    assert failed.value.error.startswith("connection_failed") and not failed.value.permanent
