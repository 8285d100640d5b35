"""Shared by the customer e2e and browser tests (no tests here): saving a card into a running stack's
database through the real use case. POST /v1/payment_methods (verification at an acquirer) comes with the
acquirer seam; until then this is how a test gets a saved card."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg.rows import dict_row

from paygate.config import Settings
from paygate.services import payment_methods as pm_service
from paygate.store.db import make_pool, transaction
from paygate.vault import CardNumber


def stack_settings(env: dict[str, str]) -> Settings:
    return Settings(database_url=env["PAYGATE_DATABASE_URL"], vault_key=env["PAYGATE_VAULT_KEY"],
                    fingerprint_key=env["PAYGATE_FINGERPRINT_KEY"])


def save_card(env: dict[str, str], merchant_id: str, customer_id: str, number: str, exp_month: int = 12,
              exp_year: int = 2031) -> str:
    """A saved card for the customer, as the payment path will save it: its pm_ id."""
    settings = stack_settings(env)

    async def run() -> str:
        pool = make_pool(env["PAYGATE_DATABASE_URL"], min_size=1, max_size=1)
        await pool.open()
        try:
            async with transaction(pool) as conn:
                row = await pm_service.attach_card(conn, settings, merchant_id=merchant_id, customer_id=customer_id,
                                                   number=CardNumber(number), exp_month=exp_month, exp_year=exp_year)
            return str(row["id"])
        finally:
            await pool.close()

    return asyncio.run(run())


def vault_columns(database_url: str, pm_id: str) -> dict[str, Any]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute("SELECT customer_id, detached_at, vault_key_id, vault_nonce, vault_ciphertext "
                           "FROM payment_methods WHERE id = %s", (pm_id,)).fetchone()
    assert row is not None
    return row
