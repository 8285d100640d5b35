"""Merchant credentials against a real PostgreSQL (API.md §19): passwords and case-insensitive emails at
creation, rolled keys with their grace period through the per-process key cache, and login throttling
counted in the database (so every API process sees the same failures)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from paygate.domain.login_throttle import LoginThrottle
from paygate.errors import AuthenticationError, InvalidRequest, NotFound, PaygateError, RateLimited
from paygate.services import merchants
from paygate.services.gateway import Principal
from paygate.store import merchants as store
from paygate.store.db import Conn, make_pool

PASSWORD = "correct-horse-battery"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    p = make_pool(database_url, min_size=1, max_size=8)
    await p.open(wait=True)
    yield p
    await p.close()


async def _count(pool: AsyncConnectionPool[Conn], sql: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(sql.encode())
        row = await cur.fetchone()
    assert row is not None
    return int(next(iter(row.values())))


async def _poll(condition: Callable[[], Awaitable[bool]], within_s: float) -> float | None:
    """Seconds until the async condition held, or None if it did not within `within_s`."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if await condition():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    return None


# --- creation ------------------------------------------------------------------------------------------

async def test_a_short_password_is_refused_with_a_clear_error_and_nothing_is_stored(
        pool: AsyncConnectionPool[Conn]) -> None:
    with pytest.raises(InvalidRequest) as err:
        await merchants.create(pool, name="Shop", email="shop@example.com", password="123456789")
    assert err.value.status == 400 and err.value.param == "password"
    assert err.value.message == "The password must be at least 10 characters."
    assert await _count(pool, "SELECT count(*) FROM merchants") == 0
    assert await _count(pool, "SELECT count(*) FROM api_keys") == 0


@pytest.mark.parametrize("email", ["shop", "shop@localhost", "sh op@example.com", "a..b@example.com"])
async def test_a_login_email_follows_the_one_address_rule_and_a_bad_one_stores_nothing(
        pool: AsyncConnectionPool[Conn], email: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        await merchants.create(pool, name="Shop", email=email, password=PASSWORD)
    assert err.value.status == 400 and err.value.param == "email"
    assert err.value.message == "Give a valid email address (it is the dashboard login)."
    assert await _count(pool, "SELECT count(*) FROM merchants") == 0


async def test_emails_are_unique_whatever_their_case_and_log_in_whatever_their_case(
        pool: AsyncConnectionPool[Conn]) -> None:
    made = await merchants.create(pool, name="Shop", email="Owner@Example.com", password=PASSWORD)
    with pytest.raises(InvalidRequest) as err:
        await merchants.create(pool, name="Other", email="owner@EXAMPLE.COM", password=PASSWORD)
    assert err.value.code == "email_taken" and err.value.param == "email"
    assert await merchants.verify_password(pool, "OWNER@example.com", PASSWORD) == made.merchant_id
    assert await merchants.verify_password(pool, "owner@example.com", "wrong-password") is None
    async with pool.connection() as conn:  # stored as given
        row = await store.by_id(conn, made.merchant_id)
    assert row is not None and row["email"] == "Owner@Example.com"


async def test_concurrent_creations_differing_only_in_case_make_one_merchant(
        pool: AsyncConnectionPool[Conn]) -> None:
    emails = ["race@example.com", "RACE@example.com", "Race@Example.com", "race@EXAMPLE.com"]
    results = await asyncio.gather(*(merchants.create(pool, name="Shop", email=e, password=PASSWORD)
                                     for e in emails), return_exceptions=True)
    made = [r for r in results if isinstance(r, merchants.Credentials)]
    refused = [r for r in results if isinstance(r, PaygateError)]
    assert len(made) == 1 and len(refused) == 3, results
    assert {r.code for r in refused} == {"email_taken"}
    assert await _count(pool, "SELECT count(*) FROM merchants") == 1


async def test_the_database_itself_refuses_a_second_email_up_to_case(pool: AsyncConnectionPool[Conn]) -> None:
    await merchants.create(pool, name="Shop", email="dba@example.com", password=PASSWORD)
    async with pool.connection() as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            await store.insert(conn, id="mer_x", name="X", email="DBA@example.com", password_hash="h")


def test_the_migration_names_emails_that_clash_up_to_case(make_database: Callable[..., str]) -> None:
    """An existing database with 'A@x' and 'a@x' is not migrated to a state where one cannot log in."""
    url = make_database(migrated=False)
    files = sorted((f for f in resources.files("paygate.store.migrations").iterdir() if f.name.endswith(".sql")),
                   key=lambda f: f.name)
    ours = next(f for f in files if f.name.endswith("_keys_logins.sql"))  # whatever number it gets on merge
    before = [f for f in files if f.name < ours.name]
    with psycopg.connect(url, autocommit=True) as conn:
        for f in before:
            conn.execute(f.read_text().encode())
        conn.execute("INSERT INTO merchants (id, name, email, password_hash) VALUES "
                     "('mer_a', 'A', 'Twin@example.com', 'h'), ('mer_b', 'B', 'twin@example.com', 'h')")
        with pytest.raises(psycopg.errors.RaiseException, match=r"twin@example\.com"):
            conn.execute(ours.read_text().encode())


# --- rolled keys ---------------------------------------------------------------------------------------

@pytest.fixture
async def listening_cache(database_url: str) -> AsyncIterator[merchants.KeyCache]:
    """What each API process has: a key cache that LISTENs for rolls."""
    cache = merchants.KeyCache(ttl_s=30.0)
    cache.start(database_url)
    await asyncio.wait_for(cache.listening.wait(), 10)
    yield cache
    await cache.aclose()


async def test_rolled_keys_replace_the_old_ones_which_work_until_the_grace_period_ends(
        pool: AsyncConnectionPool[Conn], listening_cache: merchants.KeyCache) -> None:
    made = await merchants.create(pool, name="Shop", email="roll@example.com", password=PASSWORD)
    cache = listening_cache
    assert await cache.lookup(pool, made.secret_key) == Principal(made.merchant_id, "secret")  # cached now
    rolled = await merchants.roll_keys(pool, made.merchant_id, grace_s=2)
    new = rolled.keys
    assert new.merchant_id == made.merchant_id
    assert new.secret_key.startswith("sk_test_") and new.publishable_key.startswith("pk_test_")
    assert {new.secret_key, new.publishable_key}.isdisjoint({made.secret_key, made.publishable_key})
    assert rolled.old_keys_expire_at is not None
    rolled_at = time.monotonic()
    assert await cache.lookup(pool, new.secret_key) == Principal(made.merchant_id, "secret")
    assert await cache.lookup(pool, new.publishable_key) == Principal(made.merchant_id, "publishable")
    # both old keys still work within the grace period ...
    assert await cache.lookup(pool, made.secret_key) == Principal(made.merchant_id, "secret")
    assert await cache.lookup(pool, made.publishable_key) == Principal(made.merchant_id, "publishable")

    async def old_refused() -> bool:
        return await cache.lookup(pool, made.secret_key) is None

    # ... and stop at its end, although the cache would keep a live key for 30 s
    assert await _poll(old_refused, within_s=5) is not None
    assert 1.5 < time.monotonic() - rolled_at < 3.5
    assert await cache.lookup(pool, made.publishable_key) is None
    assert await cache.lookup(pool, new.secret_key) == Principal(made.merchant_id, "secret")
    async with pool.connection() as conn:
        hints = await store.key_hints(conn, made.merchant_id)
    assert [(h["kind"], h["hint"], h["revoked_at"]) for h in hints] == [
        ("secret", f"{new.secret_key[:8]}…{new.secret_key[-4:]}", None),
        ("publishable", f"{new.publishable_key[:8]}…{new.publishable_key[-4:]}", None)]


async def test_a_roll_with_no_grace_is_refused_at_once_by_a_cache_that_had_the_key(
        pool: AsyncConnectionPool[Conn], listening_cache: merchants.KeyCache) -> None:
    """The roll's NOTIFY empties every listening cache: without it the cached key would live 30 s."""
    made = await merchants.create(pool, name="Shop", email="now@example.com", password=PASSWORD)
    assert await listening_cache.lookup(pool, made.secret_key) is not None
    await merchants.roll_keys(pool, made.merchant_id, grace_s=0)

    async def refused() -> bool:
        return await listening_cache.lookup(pool, made.secret_key) is None

    took = await _poll(refused, within_s=5)
    assert took is not None and took < 0.5


async def test_a_spray_of_unknown_keys_does_not_flush_the_cached_live_keys(database_url: str) -> None:
    pool = make_pool(database_url, min_size=1, max_size=2)
    await pool.open(wait=True)
    made = await merchants.create(pool, name="Shop", email="spray@example.com", password=PASSWORD)
    cache = merchants.KeyCache(max_size=3, unlistened_ttl_s=30.0)
    assert await cache.lookup(pool, made.secret_key) is not None
    for i in range(10):  # more unknown keys than the cache holds
        assert await cache.lookup(pool, f"sk_test_random{i}") is None
    await pool.close()  # from here on any query would fail: the answer must come from the cache
    assert await cache.lookup(pool, made.secret_key) == Principal(made.merchant_id, "secret")
    assert await cache.lookup(pool, "sk_test_random9") is None


async def test_rolling_twice_never_lengthens_an_old_keys_life(pool: AsyncConnectionPool[Conn]) -> None:
    made = await merchants.create(pool, name="Shop", email="twice@example.com", password=PASSWORD)
    first = await merchants.roll_keys(pool, made.merchant_id, grace_s=60)
    second = await merchants.roll_keys(pool, made.merchant_id, grace_s=3600)
    async with pool.connection() as conn:
        original = await store.by_key_hash(conn, merchants.hash_key(made.secret_key))
        middle = await store.by_key_hash(conn, merchants.hash_key(first.keys.secret_key))
    assert original is not None and 50 < original["expires_in_s"] <= 60  # still the first roll's minute
    assert middle is not None and 3500 < middle["expires_in_s"] <= 3600
    assert second.old_keys_expire_at is not None and first.old_keys_expire_at is not None
    assert second.old_keys_expire_at > first.old_keys_expire_at


async def test_rolling_refuses_an_unknown_merchant_and_a_bad_grace_and_changes_nothing(
        pool: AsyncConnectionPool[Conn]) -> None:
    made = await merchants.create(pool, name="Shop", email="bad@example.com", password=PASSWORD)
    with pytest.raises(NotFound):
        await merchants.roll_keys(pool, "mer_nobody", grace_s=0)
    for grace in (-1, 8 * 24 * 3600):
        with pytest.raises(InvalidRequest) as err:
            await merchants.roll_keys(pool, made.merchant_id, grace_s=grace)
        assert err.value.param == "grace"
    assert await _count(pool, "SELECT count(*) FROM api_keys") == 2
    assert await _count(pool, "SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL") == 0


# --- login throttling ----------------------------------------------------------------------------------

THROTTLE = LoginThrottle(max_failures=5, window_s=900)


async def _login(pool: AsyncConnectionPool[Conn], email: str, password: str, client: str = "198.51.100.1",
                 throttle: LoginThrottle = THROTTLE) -> str:
    return await merchants.login(pool, email=email, password=password, client=client, throttle=throttle)


async def test_a_merchant_created_under_the_older_rule_with_a_320_character_email_still_logs_in(
        pool: AsyncConnectionPool[Conn]) -> None:
    # Creation now refuses more than 254 characters; the older rule let up to 320 through, and those
    # merchants' logins must keep working.
    email = "a" * 64 + "@" + ".".join(["b" * 63] * 4)[: 320 - 65]
    assert len(email) == 320
    with pytest.raises(InvalidRequest):
        await merchants.create(pool, name="Shop", email=email, password=PASSWORD)
    async with pool.connection() as conn:
        await store.insert(conn, id="mer_old", name="Old", email=email, password_hash=await merchants.hash_password(
            PASSWORD))
    assert await _login(pool, email, PASSWORD) == "mer_old"


async def test_five_failures_lock_the_email_even_for_the_right_password_and_from_another_address(
        pool: AsyncConnectionPool[Conn]) -> None:
    made = await merchants.create(pool, name="Shop", email="lock@example.com", password=PASSWORD)
    for i in range(5):
        with pytest.raises(AuthenticationError):
            await _login(pool, "lock@example.com", "wrong-password", client=f"203.0.113.{i}")
    for email, client in (("lock@example.com", "203.0.113.99"), ("LOCK@example.com", "192.0.2.1")):
        with pytest.raises(RateLimited) as err:
            await _login(pool, email, PASSWORD, client=client)
        assert err.value.status == 429 and err.value.code == "too_many_login_attempts"
        assert err.value.retry_after is not None and 890 <= err.value.retry_after <= 900
        assert "15 minutes" in err.value.message
    assert made.merchant_id  # the account itself is untouched: see the window test for its unlock


async def test_five_failures_from_one_address_lock_that_address_for_every_email(
        pool: AsyncConnectionPool[Conn]) -> None:
    await merchants.create(pool, name="Shop", email="victim@example.com", password=PASSWORD)
    for i in range(5):
        with pytest.raises(AuthenticationError):
            await _login(pool, f"guess-{i}@example.com", "wrong-password", client="198.51.100.7")
    with pytest.raises(RateLimited):
        await _login(pool, "victim@example.com", PASSWORD, client="198.51.100.7")
    assert await _login(pool, "victim@example.com", PASSWORD, client="198.51.100.8")  # another address


async def test_a_right_password_clears_the_emails_failures(pool: AsyncConnectionPool[Conn]) -> None:
    made = await merchants.create(pool, name="Shop", email="typo@example.com", password=PASSWORD)
    for round_ in range(2):
        for i in range(4):
            with pytest.raises(AuthenticationError):
                await _login(pool, "typo@example.com", "wrong-password", client=f"192.0.2.{round_ * 10 + i}")
        assert await _login(pool, "typo@example.com", PASSWORD, client="192.0.2.200") == made.merchant_id
    assert await _count(pool, "SELECT count(*) FROM login_failures") == 0


async def test_parallel_guesses_cannot_slip_past_the_count(pool: AsyncConnectionPool[Conn]) -> None:
    await merchants.create(pool, name="Shop", email="burst@example.com", password=PASSWORD)
    results = await asyncio.gather(*(_login(pool, "burst@example.com", f"guess-{i}", client=f"192.0.2.{i}")
                                     for i in range(12)), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["AuthenticationError"] * 5 + ["RateLimited"] * 7
    assert await _count(pool, "SELECT count(*) FROM login_failures") == 5


async def test_the_lock_lifts_when_the_failures_leave_the_window(pool: AsyncConnectionPool[Conn]) -> None:
    made = await merchants.create(pool, name="Shop", email="window@example.com", password=PASSWORD)
    short = LoginThrottle(max_failures=2, window_s=2)
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            await _login(pool, "window@example.com", "wrong-password", throttle=short)
    with pytest.raises(RateLimited) as err:
        await _login(pool, "window@example.com", PASSWORD, throttle=short)
    assert err.value.retry_after in (1, 2)

    async def allowed() -> bool:
        try:
            return await _login(pool, "window@example.com", PASSWORD, throttle=short) == made.merchant_id
        except RateLimited:
            return False

    assert await _poll(allowed, within_s=5) is not None


async def test_the_failure_table_holds_no_email_or_address_in_clear(pool: AsyncConnectionPool[Conn]) -> None:
    with pytest.raises(AuthenticationError):
        await _login(pool, "secret-person@example.com", "wrong-password", client="198.51.100.42")
    async with pool.connection() as conn:
        cur = await conn.execute(b"SELECT * FROM login_failures")
        rows = await cur.fetchall()
    assert len(rows) == 1
    dumped = repr(rows).encode()
    assert b"secret-person" not in dumped and b"198.51.100.42" not in dumped
    assert len(rows[0]["email_hash"]) == 32 and len(rows[0]["client_hash"]) == 32
