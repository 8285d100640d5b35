"""Merchants, API keys and the lookups that authenticate a request or a dashboard login."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import psycopg
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from psycopg_pool import AsyncConnectionPool

from paygate.domain import credentials, emails
from paygate.domain.ids import new_id
from paygate.domain.login_throttle import LoginThrottle
from paygate.errors import AuthenticationError, InvalidRequest, NotFound, RateLimited
from paygate.services.gateway import Principal
from paygate.store import login_failures, merchants
from paygate.store.db import Conn, listen_connection, transaction

log = structlog.get_logger("paygate.merchants")
T = TypeVar("T")

_hasher = PasswordHasher()
# Argon2 (64 MiB, t=3) takes 50-250 ms of CPU per login (more on a busy machine). It runs on this small pool of its
# own, never on the event loop nor on the default executor, which getaddrinfo (webhook and bank calls)
# shares: a burst of logins then only queues behind itself. Two threads: 128 MiB at most, and the
# machine's other core stays free for payments.
PASSWORD_HASH_THREADS = 2
_hash_pool = ThreadPoolExecutor(max_workers=PASSWORD_HASH_THREADS, thread_name_prefix="paygate-argon2")


@dataclass(frozen=True)
class Credentials:
    """A merchant's id and API keys, as shown once (at creation or after a roll)."""

    merchant_id: str
    secret_key: str
    publishable_key: str


NewMerchant = Credentials  # the name callers of create() know


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _make_key(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_urlsafe(24).replace('-', 'x').replace('_', 'y')}"


async def _in_hash_pool(fn: Callable[..., T], *args: str) -> T:
    return await asyncio.get_running_loop().run_in_executor(_hash_pool, fn, *args)


async def hash_password(password: str) -> str:
    return await _in_hash_pool(_hasher.hash, password)


async def _insert_keys(conn: Conn, merchant_id: str) -> Credentials:
    sk, pk = _make_key("sk"), _make_key("pk")
    # What the dashboard may show again: a publishable key is public by design, so in full; of the secret
    # key its last 4 characters, never more (API.md §2, §11 v2).
    for key, kind, display in ((sk, "secret", sk[-4:]), (pk, "publishable", pk)):
        await merchants.insert_key(conn, key_hash=hash_key(key), merchant_id=merchant_id, kind=kind,
                                   hint=f"{key[:8]}…{key[-4:]}", display=display)
    return Credentials(merchant_id, sk, pk)


async def create(pool: AsyncConnectionPool[Conn], *, name: str, email: str, password: str) -> Credentials:
    """Phases: check the input (pure) → hash the password (hash pool) → one transaction: the merchant and
    its two keys. The email is unique up to case (the unique index on lower(email) settles races)."""
    name, email = name.strip(), email.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("parameter_invalid", "Give the merchant a name (at most 200 characters).",
                             param="name")
    if not emails.valid_address(email):
        raise InvalidRequest("parameter_invalid", "Give a valid email address (it is the dashboard login).",
                             param="email")
    problem = credentials.password_problem(password)
    if problem is not None:
        raise InvalidRequest("parameter_invalid", problem, param="password")
    password_hash = await hash_password(password)
    taken = InvalidRequest("email_taken", f"A merchant with email {email} exists.", param="email")
    try:
        async with transaction(pool) as conn:
            if await merchants.by_email(conn, email) is not None:
                raise taken
            merchant_id = new_id("mer")
            await merchants.insert(conn, id=merchant_id, name=name, email=email, password_hash=password_hash)
            return await _insert_keys(conn, merchant_id)
    except psycopg.errors.UniqueViolation:  # the same email (up to case), created concurrently
        raise taken from None


@dataclass(frozen=True)
class RolledKeys:
    keys: Credentials
    old_keys_expire_at: datetime | None  # None: the merchant had no live key


async def roll_keys(pool: AsyncConnectionPool[Conn], merchant_id: str,
                    grace_s: int = credentials.DEFAULT_GRACE_S) -> RolledKeys:
    """New secret and publishable keys; the old ones keep working for `grace_s` seconds (0: they stop at
    once), both kinds alike, so a merchant can redeploy its server and its pages before they lapse.
    One transaction: the old keys' end, the new keys, and a NOTIFY that makes every API process drop its
    cached keys at commit (KeyCache)."""
    problem = credentials.grace_problem(grace_s)
    if problem is not None:
        raise InvalidRequest("parameter_invalid", problem, param="grace")
    async with transaction(pool) as conn:
        if await merchants.lock(conn, merchant_id) is None:
            raise NotFound("merchant", merchant_id, param="merchant")
        ended = await merchants.expire_live_keys(conn, merchant_id, grace_s)
        keys = await _insert_keys(conn, merchant_id)
        await merchants.notify_keys_changed(conn, merchant_id)
    log.info("api_keys_rolled", merchant_id=merchant_id, grace_s=grace_s)
    return RolledKeys(keys, ended["expires_at"] if ended else None)


_DUMMY_HASH = _hasher.hash("paygate-timing-equaliser")


def _verify(stored: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(stored, password))
    except VerifyMismatchError:
        return False


async def verify_password(pool: AsyncConnectionPool[Conn], email: str, password: str) -> str | None:
    """The merchant id if the login is right. Argon2 runs on the hash pool, and an unknown email costs
    the same verification, so timing does not reveal which accounts exist."""
    async with pool.connection() as conn:
        m = await merchants.by_email(conn, email)
    stored = m["password_hash"] if m is not None else _DUMMY_HASH
    ok = await _in_hash_pool(_verify, stored, password)
    return str(m["id"]) if ok and m is not None else None


def _digest(kind: str, value: str) -> bytes:
    return hashlib.sha256(f"{kind}\0{value}".encode()).digest()


async def login(pool: AsyncConnectionPool[Conn], *, email: str, password: str, client: str,
                throttle: LoginThrottle) -> str:
    """A dashboard login, throttled per email and per client address across all API processes.

    Phases: (1) one short transaction, serialised per email and address: refuse while either has too
    many recent failures (RateLimited, with Retry-After, whatever the password), else record this attempt
    as a failure up front; (2) argon2 on the hash pool; (3) if right, clear the email's failures.
    Returns the merchant id; AuthenticationError for a wrong email or password (one error for both)."""
    email = email.strip()
    email_hash, client_hash = _digest("email", email.lower()), _digest("client", client)
    async with transaction(pool) as conn:
        await login_failures.lock(conn, email_hash, client_hash)
        now = await login_failures.now(conn)
        limit = max(throttle.max_failures, 1)
        by_email = await login_failures.recent(conn, email_hash=email_hash, window_s=throttle.window_s, limit=limit)
        by_client = await login_failures.recent(conn, client_hash=client_hash, window_s=throttle.window_s,
                                                limit=limit)
        wait = max(throttle.retry_after(by_email, now) or 0, throttle.retry_after(by_client, now) or 0)
        if wait > 0:
            raise RateLimited("too_many_login_attempts",
                              f"Too many failed logins; try again in {_minutes(wait)}.", retry_after=wait)
        await login_failures.record(conn, email_hash=email_hash, client_hash=client_hash)
        await login_failures.purge_older_than(conn, throttle.window_s)
    merchant_id = None
    if email and password and len(email) <= credentials.LOGIN_EMAIL_MAX_CHARS \
            and len(password) <= credentials.PASSWORD_MAX_CHARS:
        merchant_id = await verify_password(pool, email, password)
    if merchant_id is None:
        log.info("dashboard_login_failed")  # neither the email nor the address: they stay out of logs
        raise AuthenticationError("login_failed", "Email or password is incorrect.")
    async with transaction(pool) as conn:
        await login_failures.forget_email(conn, email_hash)
    return merchant_id


def _minutes(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


class KeyCache:
    """API-key lookups cached per process: one hash and no query on the hot path.

    A cached key never outlives its own end: an entry lasts `ttl_s` at most, and no longer than the key
    has left (a rolled key's grace period), so an old key is refused on time by every process. A roll
    also NOTIFYs; while `start()`ed, the cache LISTENs and forgets everything on each notification, so a
    key rolled "at once" is refused at once everywhere. While not listening (not started, or the
    database away), keys are cached for `unlistened_ttl_s` only."""

    def __init__(self, ttl_s: float = 30.0, max_size: int = 10_000, miss_ttl_s: float = 2.0,
                 unlistened_ttl_s: float = 1.0) -> None:
        self._ttl = ttl_s
        self._max = max_size
        self._miss_ttl = miss_ttl_s
        self._unlistened_ttl = unlistened_ttl_s
        self._entries: dict[bytes, tuple[float, Principal]] = {}
        # Unknown keys apart, so that a spray of random keys can fill and flush only its own table (audit 14)
        self._misses: dict[bytes, float] = {}
        self._generation = 0
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self, conninfo: str) -> None:
        """LISTEN for key changes in the background (reconnecting as needed); call from the event loop."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(conninfo), name="paygate-key-cache-listener")

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        self.listening.clear()

    def forget(self) -> None:
        """Drop every entry, and any lookup in flight that read the database before now."""
        self._generation += 1
        self._entries.clear()
        self._misses.clear()

    async def _listen(self, conninfo: str) -> None:
        pause = 0.5
        while True:
            try:
                async with await listen_connection(conninfo) as conn:
                    await conn.execute(f"LISTEN {merchants.KEYS_CHANNEL}".encode())
                    self.forget()  # whatever changed while we were not listening
                    self.listening.set()
                    pause = 0.5
                    async for _ in conn.notifies():
                        self.forget()
            except (psycopg.Error, OSError) as exc:
                log.warning("key_cache_listen_failed", error=type(exc).__name__)
            self.listening.clear()
            self.forget()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)

    async def lookup(self, pool: AsyncConnectionPool[Conn], key: str) -> Principal | None:
        h = hash_key(key)
        now = time.monotonic()
        hit = self._entries.get(h)
        if hit is not None and hit[0] > now:
            return hit[1]
        missed = self._misses.get(h)
        if missed is not None and missed > now:
            return None
        generation = self._generation
        async with pool.connection() as conn:
            row = await merchants.by_key_hash(conn, h)
        if generation != self._generation:  # a roll was notified meanwhile: this answer may be stale
            return Principal(row["merchant_id"], row["kind"]) if row else None
        if row is None:
            if len(self._misses) >= self._max:
                self._misses.clear()
            self._misses[h] = now + self._miss_ttl
            return None
        principal = Principal(row["merchant_id"], row["kind"])
        life = self._ttl if self.listening.is_set() else self._unlistened_ttl
        if row["expires_in_s"] is not None:
            life = min(life, float(row["expires_in_s"]))
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[h] = (now + life, principal)
        return principal
