"""The gateway's moving parts, passed explicitly to every use case (no DI framework)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from psycopg_pool import AsyncConnectionPool

from paygate.acquirers.base import Acquirer
from paygate.config import Settings
from paygate.store.db import Conn


class AcquirerMissing(LookupError):
    """A payment's acquirer is no longer configured: its operations wait (and say so) until it is again."""


@dataclass
class Gateway:
    """Built in one place (paygate.bootstrap.build_gateway). `acquirers` is name → connector, in the
    operator's order; services reach a bank only through it (acquirers/base.py)."""

    pool: AsyncConnectionPool[Conn]
    acquirers: Mapping[str, Acquirer]
    settings: Settings

    def acquirer(self, name: str) -> Acquirer:
        try:
            return self.acquirers[name]
        except KeyError:
            raise AcquirerMissing(f"acquirer {name!r} is not configured (PAYGATE_ACQUIRERS)") from None

    def callback_url(self, acquirer: str) -> str:
        """Where `acquirer` sends its callbacks: the name in the URL is how paygate knows who sent one."""
        return f"{self.settings.public_url.rstrip('/')}/v1/bank/events?acquirer={quote(acquirer)}"

    async def aclose(self) -> None:
        for acquirer in self.acquirers.values():
            await acquirer.aclose()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a merchant, with a secret or a publishable key."""

    merchant_id: str
    kind: str  # "secret" | "publishable"


@dataclass(frozen=True)
class Outcome:
    """A finished use case: the status and the exact bytes to answer (and to replay)."""

    status: int
    body: bytes

    @classmethod
    def of(cls, status: int, obj: Any) -> Outcome:
        return cls(status, orjson.dumps(obj))


def utcnow() -> datetime:
    return datetime.now(UTC)
