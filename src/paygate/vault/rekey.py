"""`paygate vault rekey`: every sealed record moved to the current key, while the API keeps serving.

Batches of `batch_size` records, each in its own transaction: the batch's rows are read in id order
after the last id seen (keyset paging), locked `FOR UPDATE SKIP LOCKED`, opened with the key they name and
sealed again under the current one. So:
- resumable: a record's key id is the progress marker. A run interrupted half-way (Ctrl-C, a crash, a
  lost connection) leaves committed batches under the new key and the rest under their old one, every
  record readable; the next run finds only the rest. Nothing is sealed twice, since a batch re-reads
  each row's key id under its lock, in the transaction that rewrites it.
- safe beside the API: new records are sealed under the current key already, and are not touched; a row
  a request holds (a detach) is skipped rather than waited for, and picked up by the next pass. The run
  ends when a pass finds nothing left (or `max_passes` passes left rows that stay locked: reported).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from paygate import crashpoints
from paygate.store import payment_methods as store
from paygate.store.db import Conn, transaction
from paygate.vault.keyring import Keyring
from paygate.vault.sealing import Sealed, reveal, seal


@dataclass
class Progress:
    resealed: int = 0  # records moved to the current key by this run
    batches: int = 0
    passes: int = 0
    remaining: int = 0  # records still under another key when the run ended


async def rekey(
    pool: AsyncConnectionPool[Conn], ring: Keyring, *, batch_size: int = 100, max_passes: int = 5,
    report: Callable[[Progress], None] = lambda _: None, pause_s: float = 0.2,
) -> Progress:
    current = ring.current.id
    progress = Progress()
    for _ in range(max_passes):
        progress.passes += 1
        after = ""
        while True:
            async with transaction(pool) as conn:
                rows = await store.lock_batch_not_under(conn, current, after_id=after, limit=batch_size)
                for row in rows:
                    old = Sealed(row["vault_key_id"], bytes(row["vault_nonce"]), bytes(row["vault_ciphertext"]))
                    where = {"merchant_id": row["merchant_id"], "record_id": row["id"]}
                    await store.reseal(conn, row["id"], seal(ring, reveal(ring, old, **where), **where))
                if rows and progress.batches >= 1:
                    crashpoints.reach("vault_rekey_before_commit")  # tests: a crash with one batch committed
            if not rows:
                break
            after = rows[-1]["id"]
            progress.resealed += len(rows)
            progress.batches += 1
            report(progress)
        async with pool.connection() as conn:
            progress.remaining = await store.count_not_under(conn, current)
        if progress.remaining == 0:
            break
        await asyncio.sleep(pause_s)  # the skipped rows belong to transactions that end within moments
    return progress
