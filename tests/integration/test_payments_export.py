"""The payments CSV export against real PostgreSQL (services.exports): keyset pages, newest first, every
filtered payment exactly once, and one page of rows in memory at a time however many there are."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from paygate.services import exports, merchants
from paygate.store.db import Conn, make_pool

N = 20_000  # enough for twenty pages of the default size


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    p = make_pool(database_url, min_size=1, max_size=2)
    await p.open()
    yield p
    await p.close()


async def _seed(pool: AsyncConnectionPool[Conn], merchant_id: str, n: int) -> None:
    """n payments in one statement: every 4th failed, JPY for every 5th; ids sort by creation like real ones."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO payments (id, merchant_id, status, amount, currency, amount_captured, capture_method, "
            "method_type, payment_method, description, status_history, created_at, updated_at) "
            "SELECT 'pay_' || lpad(i::text, 8, '0'), %(m)s, CASE WHEN i %% 4 = 0 THEN 'failed' ELSE 'captured' END, "
            "i, CASE WHEN i %% 5 = 0 THEN 'JPY' ELSE 'USD' END, CASE WHEN i %% 4 = 0 THEN 0 ELSE i END, "
            "'automatic', 'card', '{\"type\": \"card\", \"card\": {\"brand\": \"visa\", \"last4\": \"1111\"}}', "
            "CASE WHEN i = 7 THEN '=cmd()' END, '[]', "
            "timestamptz '2026-11-01T00:00:00Z' + i * interval '1 second', now() "
            "FROM generate_series(1, %(n)s) AS i",
            {"m": merchant_id, "n": n})


async def _collect(stream: AsyncIterator[bytes]) -> tuple[list[dict[str, str]], list[int]]:
    chunks: list[bytes] = [chunk async for chunk in stream]
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    return rows, [len(c) for c in chunks]


async def test_the_export_streams_every_filtered_payment_once_in_keyset_pages(
    pool: AsyncConnectionPool[Conn],
) -> None:
    made = await merchants.create(pool, name="Big shop", email="big@example.com", password="a-long-password")
    other = await merchants.create(pool, name="Other", email="other@example.com", password="a-long-password")
    await _seed(pool, made.merchant_id, N)

    started = time.monotonic()
    rows, chunks = await _collect(exports.payments_csv(pool, made.merchant_id, exports.Filters()))
    took = time.monotonic() - started
    assert len(rows) == N and len({r["payment_id"] for r in rows}) == N
    assert [r["payment_id"] for r in rows] == sorted((r["payment_id"] for r in rows), reverse=True)  # newest first
    assert len(chunks) == 1 + N // exports.PAGE_ROWS  # the header, then one chunk per page: never the whole list
    assert max(chunks[1:]) < 200_000  # a page is a few hundred KB at most
    assert took < 30, took

    by_id = {r["payment_id"]: r for r in rows}
    assert (by_id["pay_00001234"]["amount"], by_id["pay_00001234"]["currency"]) == ("12.34", "USD")
    assert (by_id["pay_00000005"]["amount"], by_id["pay_00000005"]["currency"]) == ("5", "JPY")
    assert by_id["pay_00000007"]["description"] == "'=cmd()"
    assert by_id["pay_00000001"]["created_at"] == "2026-11-01T00:00:01.000000Z"

    failed, _ = await _collect(exports.payments_csv(pool, made.merchant_id, exports.Filters(status="failed"),
                                                    page_rows=333))
    assert len(failed) == N // 4 and {r["status"] for r in failed} == {"failed"}
    assert [r["payment_id"] for r in failed][:2] == ["pay_00020000", "pay_00019996"]

    one, _ = await _collect(exports.payments_csv(pool, made.merchant_id, exports.Filters(payment_id="pay_00000042")))
    assert [r["payment_id"] for r in one] == ["pay_00000042"]
    nothing, chunks = await _collect(exports.payments_csv(pool, other.merchant_id, exports.Filters()))
    assert nothing == [] and len(chunks) == 1  # another merchant's export: just the header
