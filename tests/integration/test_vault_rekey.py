"""`paygate vault rekey` over a real PostgreSQL: interrupted half-way and resumed (the command itself,
killed at a crash point), and run concurrently with inserts and a request holding a row; its refusals; and
saving a card racing the delete of its customer."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from psycopg_pool import AsyncConnectionPool

from paygate.config import Settings
from paygate.store import payment_methods as pm_store
from paygate.store.db import Conn, make_pool, transaction
from paygate.supervise import PAYGATE
from paygate.vault import Keyring, keyring
from paygate.vault.rekey import Progress, rekey
from tests.e2e.procs import child_env
from tests.integration.vault_support import luhn_number, merchant_and_customer, opened, save, vault_rows
from tests.polling import eventually

OLD, NEW = secrets.token_hex(32), secrets.token_hex(32)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    p = make_pool(database_url, min_size=1, max_size=4)
    await p.open()
    yield p
    await p.close()


def _rekey_command(database_url: str, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PAYGATE), "vault", "rekey", *extra], capture_output=True, text=True, timeout=60, check=False,
        env=child_env({"PAYGATE_DATABASE_URL": database_url, "PAYGATE_VAULT_KEY": f"{NEW},{OLD}",
                       "PAYGATE_ENV": "development", "PAYGATE_LOG_LEVEL": "warning", **env}))


async def test_rekey_interrupted_half_way_then_resumed(pool: AsyncConnectionPool[Conn], database_url: str) -> None:
    old = Settings(database_url=database_url, vault_key=OLD)
    merchant_id, customer_id = await merchant_and_customer(pool)
    numbers = {(await save(pool, old, merchant_id, customer_id, luhn_number(i)))["id"]: luhn_number(i)
               for i in range(7)}
    before = await vault_rows(pool)
    old_id, new_id = keyring(OLD).current.id, keyring(NEW).current.id
    both = keyring(f"{NEW},{OLD}")
    assert {r["vault_key_id"] for r in before.values()} == {old_id}

    # killed while its second batch is resealed but not committed: the first batch stays done
    crashed = _rekey_command(database_url, "--batch-size", "3", PAYGATE_CRASH_POINT="vault_rekey_before_commit")
    assert crashed.returncode == 137, crashed.stdout + crashed.stderr
    assert "batch 1: 3 re-encrypted" in crashed.stdout
    half = await vault_rows(pool)
    assert Counter(r["vault_key_id"] for r in half.values()) == {new_id: 3, old_id: 4}
    assert {pm: opened(both, row) for pm, row in half.items()} == numbers  # nothing lost

    resumed = _rekey_command(database_url, "--batch-size", "3")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "done: 4 re-encrypted, 0 remaining" in resumed.stdout, resumed.stdout
    after = await vault_rows(pool)
    assert {r["vault_key_id"] for r in after.values()} == {new_id}
    only_new = Keyring.parse(NEW)  # the old key can go now
    assert {pm: opened(only_new, row) for pm, row in after.items()} == numbers
    # the three done before the crash were not sealed again (same nonce and ciphertext as after the crash)
    for pm, row in half.items():
        if row["vault_key_id"] == new_id:
            assert after[pm]["vault_ciphertext"] == row["vault_ciphertext"] and after[pm]["vault_nonce"] == row[
                "vault_nonce"]
        else:
            assert after[pm]["vault_nonce"] != before[pm]["vault_nonce"]

    again = _rekey_command(database_url)
    assert again.returncode == 0 and "done: 0 re-encrypted, 0 remaining" in again.stdout, again.stdout
    assert await vault_rows(pool) == after


async def test_rekey_beside_inserts_and_a_locked_row(pool: AsyncConnectionPool[Conn], database_url: str) -> None:
    old = Settings(database_url=database_url, vault_key=OLD)
    rotated = Settings(database_url=database_url, vault_key=f"{NEW},{OLD}")
    merchant_id, customer_id = await merchant_and_customer(pool)
    numbers = {(await save(pool, old, merchant_id, customer_id, luhn_number(i)))["id"]: luhn_number(i)
               for i in range(12)}
    first = min(numbers)
    ring = keyring(f"{NEW},{OLD}")
    total_old = len(numbers)

    # a request holds the first row (as a detach would) until the rekey has done every other row
    locked, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with transaction(pool) as conn:
            assert await pm_store.lock(conn, merchant_id, first) is not None
            locked.set()
            await release.wait()

    def report(p: Progress) -> None:
        if p.resealed >= total_old - 1:
            release.set()

    held = asyncio.create_task(holder())
    await locked.wait()

    # meanwhile API processes keep saving cards: some already with the new configuration, some still
    # with the old one (a rolling restart)
    written: dict[str, str] = {}

    async def inserter() -> None:
        for i in range(100, 110):
            settings = rotated if i % 2 else old
            row = await save(pool, settings, merchant_id, customer_id, luhn_number(i))
            written[row["id"]] = luhn_number(i)
            await asyncio.sleep(0)

    progress, _ = await asyncio.gather(rekey(pool, ring, batch_size=2, report=report, pause_s=0.05), inserter())
    await held
    assert progress.passes >= 2  # the held row was skipped, then done by a later pass
    assert progress.remaining == 0
    rows = await vault_rows(pool)
    assert len(rows) == total_old + 10
    assert {r["vault_key_id"] for r in rows.values()} == {ring.current.id}
    assert {pm: opened(Keyring.parse(NEW), row) for pm, row in rows.items()} == {**numbers, **written}
    # each old-key record was resealed exactly once; the new-key ones written during the run never
    assert progress.resealed == total_old + 5


def test_rekey_refuses_a_weak_key_in_production_and_names_an_unknown_one(database_url: str) -> None:
    weak = subprocess.run([str(PAYGATE), "vault", "rekey"], capture_output=True, text=True, timeout=60, check=False,
                          env=child_env({"PAYGATE_DATABASE_URL": database_url}))  # production by default
    assert weak.returncode == 2 and "PAYGATE_VAULT_KEY is not set" in weak.stderr, weak.stderr


async def test_rekey_stops_on_a_record_under_an_unlisted_key(pool: AsyncConnectionPool[Conn],
                                                             database_url: str) -> None:
    merchant_id, customer_id = await merchant_and_customer(pool)
    await save(pool, Settings(database_url=database_url, vault_key=OLD), merchant_id, customer_id, luhn_number(1))
    done = _rekey_command(database_url, PAYGATE_VAULT_KEY=NEW)  # OLD forgotten too early
    assert done.returncode == 1
    assert keyring(OLD).current.id in done.stderr and "does not list" in done.stderr
    assert OLD not in done.stdout + done.stderr and NEW not in done.stdout + done.stderr
    assert {r["vault_key_id"] for r in (await vault_rows(pool)).values()} == {keyring(OLD).current.id}


async def test_a_card_is_never_saved_for_a_deleted_customer(pool: AsyncConnectionPool[Conn],
                                                            database_url: str) -> None:
    """attach_card holds the customer against a concurrent delete: run while the delete holds the customer,
    it waits, then finds it deleted and saves nothing."""
    from paygate.errors import NotFound
    from paygate.store import customers
    from paygate.store.db import fetch_one

    merchant_id, customer_id = await merchant_and_customer(pool)
    settings = Settings(database_url=database_url, vault_key=NEW)
    saving: asyncio.Task[object] | None = None
    async with transaction(pool) as conn:  # the delete use case's transaction, paused half-way
        assert await customers.lock(conn, merchant_id, customer_id) is not None
        saving = asyncio.create_task(save(pool, settings, merchant_id, customer_id, luhn_number(3)))
        async with pool.connection() as watcher:  # the save is waiting for the customer's row lock
            async def waiting() -> bool:
                row = await fetch_one(watcher, "SELECT count(*) AS n FROM pg_stat_activity "
                                       "WHERE datname = current_database() AND wait_event_type = 'Lock'")
                return row is not None and row["n"] > 0
            await eventually(waiting)
        await customers.erase(conn, customer_id, datetime.now(UTC))
    with pytest.raises(NotFound):
        await saving
    assert await vault_rows(pool) == {}
