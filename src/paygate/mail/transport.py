"""The outbound seam for email: `Transport.send(message)` either returns (the server accepted it) or
raises `SendFailed`. `Smtp` speaks to `PAYGATE_SMTP_URL` with aiosmtplib; use-case tests inject an
in-memory transport instead.

`PAYGATE_SMTP_URL`: `smtp://host:port` (plain; STARTTLS when the server offers it) or
`smtps://user:password@host:port` (TLS from the first byte); user and password are optional in either
and percent-decoded. Nothing of the URL beyond host and port is ever logged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

TIMEOUT_S = 15.0  # like a webhook attempt: a server that hangs is a failed attempt, not a stuck worker


class SendFailed(Exception):
    """An attempt that did not hand the message over. `permanent`: the server refused this message or
    recipient for good (5xx), so retrying cannot help; anything else is retried on schedule."""

    def __init__(self, error: str, *, code: int | None = None, permanent: bool = False) -> None:
        super().__init__(error)
        self.error = error
        self.code = code
        self.permanent = permanent


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SmtpUrl:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    def __repr__(self) -> str:  # never the password, not even in a traceback's locals
        return f"SmtpUrl(host={self.host!r}, port={self.port}, tls={self.tls}, auth={self.username is not None})"


def parse_url(url: str) -> SmtpUrl:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("PAYGATE_SMTP_URL must be smtp://host:port or smtps://user:password@host:port")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("PAYGATE_SMTP_URL has an invalid port") from exc
    tls = parts.scheme == "smtps"
    return SmtpUrl(host=parts.hostname, port=port or (465 if tls else 25), tls=tls,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None)


class Smtp:
    """One SMTP connection per message: receipts are few, and a fresh connection can never be a stale one."""

    def __init__(self, url: SmtpUrl, *, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url
        self.timeout_s = timeout_s

    async def send(self, message: EmailMessage) -> None:
        u = self.url
        started = time.monotonic()
        try:
            await aiosmtplib.send(
                message, hostname=u.host, port=u.port, username=u.username, password=u.password, use_tls=u.tls,
                start_tls=False if u.tls else None, timeout=self.timeout_s)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise SendFailed("recipient_refused", code=codes[0] if codes else None,
                             permanent=bool(codes) and all(c >= 500 for c in codes)) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:  # our configuration: fixable, so retried
            raise SendFailed("authentication_failed", code=exc.code) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SendFailed("message_refused", code=exc.code, permanent=exc.code >= 500) from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise SendFailed(f"timeout after {time.monotonic() - started:.1f}s") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:  # refused, reset, DNS, TLS: the server may come back
            raise SendFailed(f"connection_failed: {type(exc).__name__}") from exc
