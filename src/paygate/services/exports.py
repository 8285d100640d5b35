"""The payments CSV export (dashboard, API.md §11 v2): the filtered list, streamed page by page.

Phases, repeated until a short page: (1) one keyset query of `page_rows` payments older than the last one
sent (`store.payments.export_page`), on a pooled connection held only for that query; (2) those rows as
CSV text (`domain.exports`), yielded to the response. Memory holds one page, and no transaction stays open
while the client reads, so a merchant with a million payments downloads them as easily as ten.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from paygate.domain import exports
from paygate.store import payments
from paygate.store.db import Conn

PAGE_ROWS = 1000


@dataclass(frozen=True)
class Filters:
    """The dashboard list's filters: a status, and what its search box matched (one of the ids or a customer)."""

    status: str | None = None
    payment_id: str | None = None
    order_id: str | None = None
    customer_id: str | None = None


async def payments_csv(pool: AsyncConnectionPool[Conn], merchant_id: str, filters: Filters, *,
                       page_rows: int = PAGE_ROWS) -> AsyncIterator[bytes]:
    """The header row, then one chunk of CSV per page of payments, newest first."""
    yield exports.header().encode()
    before: str | None = None
    while True:
        async with pool.connection() as conn:
            rows = await payments.export_page(
                conn, merchant_id, status=filters.status, payment_id=filters.payment_id, order_id=filters.order_id,
                customer_id=filters.customer_id, before=before, limit=page_rows)
        if rows:
            yield exports.encode(exports.row(p) for p in rows).encode()
        if len(rows) < page_rows:
            return
        before = rows[-1]["id"]
