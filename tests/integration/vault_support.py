"""Shared by the vault's integration tests (no tests here): a merchant, a customer and saved cards written
through the real use case (`services.payment_methods.attach_card`), and the vault columns read back."""

from __future__ import annotations

import secrets

from psycopg_pool import AsyncConnectionPool

from paygate.config import Settings
from paygate.services import merchants
from paygate.services import payment_methods as pm_service
from paygate.services.gateway import utcnow
from paygate.store import customers
from paygate.store.db import Conn, Row, fetch_all, transaction
from paygate.vault import CardNumber, Keyring, Sealed, reveal

# Luhn-valid test numbers, one per saved card (the last digit fixed up for Luhn)


def luhn_number(seed: int) -> str:
    body = f"4{seed:014d}"
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


async def merchant_and_customer(pool: AsyncConnectionPool[Conn]) -> tuple[str, str]:
    made = await merchants.create(pool, name="Shop", email=f"m-{secrets.token_hex(4)}@example.com",
                                  password="pw-long-enough")
    now = utcnow()
    async with transaction(pool) as conn:
        row = await customers.insert(conn, {"id": f"cus_{secrets.token_hex(8)}", "merchant_id": made.merchant_id,
                                            "email": "c@example.com", "metadata": {}, "created_at": now,
                                            "updated_at": now})
    return made.merchant_id, row["id"]


async def save(pool: AsyncConnectionPool[Conn], settings: Settings, merchant_id: str, customer_id: str,
               number: str) -> Row:
    async with transaction(pool) as conn:
        return await pm_service.attach_card(conn, settings, merchant_id=merchant_id, customer_id=customer_id,
                                            number=CardNumber(number), exp_month=12, exp_year=2031)


async def vault_rows(pool: AsyncConnectionPool[Conn]) -> dict[str, Row]:
    async with pool.connection() as conn:
        rows = await fetch_all(conn, "SELECT id, merchant_id, customer_id, vault_key_id, vault_nonce, "
                               "vault_ciphertext FROM payment_methods ORDER BY id")
    return {r["id"]: r for r in rows}


def opened(ring: Keyring, row: Row) -> str:
    sealed = Sealed(row["vault_key_id"], bytes(row["vault_nonce"]), bytes(row["vault_ciphertext"]))
    return reveal(ring, sealed, merchant_id=row["merchant_id"], record_id=row["id"]).digits
