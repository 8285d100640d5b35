"""Merchants, API keys and the lookups that authenticate a request."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from psycopg_pool import AsyncConnectionPool

from paygate.domain.ids import new_id
from paygate.errors import InvalidRequest
from paygate.services.gateway import Principal
from paygate.store import merchants
from paygate.store.db import Conn, transaction

_hasher = PasswordHasher()


@dataclass(frozen=True)
class NewMerchant:
    merchant_id: str
    secret_key: str
    publishable_key: str


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _make_key(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_urlsafe(24).replace('-', 'x').replace('_', 'y')}"


async def create(pool: AsyncConnectionPool[Conn], *, name: str, email: str, password: str) -> NewMerchant:
    if not name.strip() or "@" not in email or len(password) < 1:
        raise InvalidRequest("parameter_invalid", "name, a valid email and a password are required.")
    merchant_id = new_id("mer")
    sk, pk = _make_key("sk"), _make_key("pk")
    async with transaction(pool) as conn:
        if await merchants.by_email(conn, email) is not None:
            raise InvalidRequest("email_taken", f"A merchant with email {email} exists.", param="email")
        await merchants.insert(conn, id=merchant_id, name=name, email=email, password_hash=_hasher.hash(password))
        for key, kind in ((sk, "secret"), (pk, "publishable")):
            await merchants.insert_key(conn, key_hash=hash_key(key), merchant_id=merchant_id, kind=kind,
                                       hint=f"{key[:8]}…{key[-4:]}",
                                       public_key=key if kind == "publishable" else None)
    return NewMerchant(merchant_id, sk, pk)


_DUMMY_HASH = _hasher.hash("paygate-timing-equaliser")


async def verify_password(pool: AsyncConnectionPool[Conn], email: str, password: str) -> str | None:
    """The merchant id if the login is right. Argon2 runs in a thread (it takes tens of milliseconds),
    and an unknown email costs the same verification, so timing does not reveal which accounts exist."""
    async with pool.connection() as conn:
        m = await merchants.by_email(conn, email)
    stored = m["password_hash"] if m is not None else _DUMMY_HASH
    try:
        await asyncio.to_thread(_hasher.verify, stored, password)
    except VerifyMismatchError:
        return None
    return str(m["id"]) if m is not None else None


class KeyCache:
    """API-key lookups cached briefly per process: one hash and no query on the hot path."""

    def __init__(self, ttl_s: float = 30.0, max_size: int = 10_000) -> None:
        self._ttl = ttl_s
        self._max = max_size
        self._entries: dict[bytes, tuple[float, Principal | None]] = {}

    async def lookup(self, pool: AsyncConnectionPool[Conn], key: str) -> Principal | None:
        h = hash_key(key)
        hit = self._entries.get(h)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        async with pool.connection() as conn:
            row = await merchants.by_key_hash(conn, h)
        principal = Principal(row["merchant_id"], row["kind"]) if row else None
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[h] = (now + (self._ttl if principal else 2.0), principal)
        return principal
