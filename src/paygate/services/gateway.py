"""The gateway's moving parts, passed explicitly to every use case (no DI framework)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool

from paygate.bank.client import BankClient
from paygate.config import Settings
from paygate.store.db import Conn


@dataclass
class Gateway:
    pool: AsyncConnectionPool[Conn]
    bank: BankClient
    settings: Settings

    @property
    def callback_url(self) -> str:
        return f"{self.settings.public_url.rstrip('/')}/v1/bank/events"


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
