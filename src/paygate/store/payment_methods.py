"""Saved payment methods (API.md §16) and their vault columns: every statement on payment_methods.

The vault columns (vault_key_id, vault_nonce, vault_ciphertext) are never selected by the reads that
serve a view: `_PUBLIC` lists the columns a view needs. Only `sealed_of` (the payment path) and the rekey
batch read them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paygate.store.db import Conn, Row, fetch_all, fetch_one
from paygate.vault import Sealed

_PUBLIC = "id, merchant_id, customer_id, type, brand, last4, exp_month, exp_year, fingerprint, created_at, detached_at"
_COLUMNS = ("id", "merchant_id", "customer_id", "brand", "last4", "exp_month", "exp_year", "fingerprint",
            "created_at", "vault_key_id", "vault_nonce", "vault_ciphertext")


async def insert(conn: Conn, values: dict[str, Any], sealed: Sealed) -> Row:
    """A card attached to a customer; `sealed` is its number as the vault sealed it for this row's id."""
    full = {**values, "vault_key_id": sealed.key_id, "vault_nonce": sealed.nonce,
            "vault_ciphertext": sealed.ciphertext}
    cols = ", ".join(_COLUMNS)
    marks = ", ".join(["%s"] * len(_COLUMNS))
    row = await fetch_one(conn, f"INSERT INTO payment_methods ({cols}) VALUES ({marks}) RETURNING {_PUBLIC}",
                          [full[c] for c in _COLUMNS])
    assert row is not None
    return row


async def get(conn: Conn, merchant_id: str, pm_id: str) -> Row | None:
    return await fetch_one(conn, f"SELECT {_PUBLIC} FROM payment_methods WHERE id = %s AND merchant_id = %s",
                           (pm_id, merchant_id))


async def lock(conn: Conn, merchant_id: str, pm_id: str) -> Row | None:
    return await fetch_one(
        conn, f"SELECT {_PUBLIC} FROM payment_methods WHERE id = %s AND merchant_id = %s FOR UPDATE",
        (pm_id, merchant_id))


async def sealed_of(conn: Conn, merchant_id: str, pm_id: str) -> Sealed | None:
    """The sealed number of an attached method (for the payment path), or None once detached."""
    row = await fetch_one(
        conn, "SELECT vault_key_id, vault_nonce, vault_ciphertext FROM payment_methods "
        "WHERE id = %s AND merchant_id = %s AND vault_ciphertext IS NOT NULL", (pm_id, merchant_id))
    if row is None:
        return None
    return Sealed(row["vault_key_id"], bytes(row["vault_nonce"]), bytes(row["vault_ciphertext"]))


async def page_of_customer(
    conn: Conn, merchant_id: str, customer_id: str, *, starting_after: str | None = None, limit: int = 10,
) -> list[Row]:
    """The customer's attached methods, newest first (limit + 1 rows, for has_more)."""
    where = "merchant_id = %s AND customer_id = %s"
    params: list[Any] = [merchant_id, customer_id]
    if starting_after:
        where += " AND id < %s"
        params.append(starting_after)
    return await fetch_all(conn, f"SELECT {_PUBLIC} FROM payment_methods WHERE {where} ORDER BY id DESC LIMIT %s",
                           [*params, limit + 1])


async def detach(conn: Conn, pm_id: str, now: datetime) -> Row:
    """No customer, and the sealed number erased (the same statement: never one without the other)."""
    row = await fetch_one(
        conn, "UPDATE payment_methods SET customer_id = NULL, detached_at = %s, vault_key_id = NULL, "
        f"vault_nonce = NULL, vault_ciphertext = NULL WHERE id = %s RETURNING {_PUBLIC}", (now, pm_id))
    assert row is not None
    return row


async def lock_attached_of_customer(conn: Conn, customer_id: str) -> list[Row]:
    return await fetch_all(
        conn, f"SELECT {_PUBLIC} FROM payment_methods WHERE customer_id = %s ORDER BY id FOR UPDATE", (customer_id,))


# --- the rekey batch (paygate vault rekey) ----------------------------------------------------------------

async def lock_batch_not_under(conn: Conn, key_id: str, *, after_id: str, limit: int) -> list[Row]:
    """Up to `limit` sealed records after `after_id` (keyset order) not sealed under `key_id`, locked.
    Rows locked by a live transaction (a detach, another rekey) are skipped, not waited for."""
    return await fetch_all(
        conn, "SELECT id, merchant_id, vault_key_id, vault_nonce, vault_ciphertext FROM payment_methods "
        "WHERE id > %s AND vault_ciphertext IS NOT NULL AND vault_key_id <> %s ORDER BY id LIMIT %s "
        "FOR UPDATE SKIP LOCKED", (after_id, key_id, limit))


async def reseal(conn: Conn, pm_id: str, sealed: Sealed) -> None:
    await conn.execute(
        "UPDATE payment_methods SET vault_key_id = %s, vault_nonce = %s, vault_ciphertext = %s WHERE id = %s",
        (sealed.key_id, sealed.nonce, sealed.ciphertext, pm_id))


async def count_not_under(conn: Conn, key_id: str) -> int:
    row = await fetch_one(conn, "SELECT count(*) AS n FROM payment_methods "
                          "WHERE vault_ciphertext IS NOT NULL AND vault_key_id <> %s", (key_id,))
    assert row is not None
    return int(row["n"])
