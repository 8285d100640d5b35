"""Journal entries; the deferred trigger in the schema refuses to commit one that does not balance."""

from __future__ import annotations

from datetime import datetime

from paygate.domain.ids import new_id
from paygate.domain.ledger import MERCHANT_BALANCE, Posting
from paygate.store._sql import Page
from paygate.store.db import Conn, Row, fetch_all


async def post(
    conn: Conn, *, merchant_id: str, kind: str, currency: str, postings: list[Posting], now: datetime,
    payment_id: str | None = None, refund_id: str | None = None,
) -> str | None:
    if not postings:
        return None
    journal_id = new_id("jrn")
    # One statement, one round trip: the journal and all its postings (migration 0016's function, which the
    # outcome phase's function calls too: one copy of the SQL).
    await conn.execute(
        b"SELECT paygate_post_journal(%s, %s, %s, %s, %s, %s, %s, %s::text[], %s::text[], %s::text[], %s::bigint[])",
        (journal_id, merchant_id, kind, currency, payment_id, refund_id, now, *columns(postings)),
    )
    return journal_id


def columns(postings: list[Posting]) -> tuple[list[str], list[str], list[str], list[int]]:
    """The postings as paygate_post_journal takes them: entry ids, accounts, directions, amounts."""
    return ([new_id("led") for _ in postings], [p.account for p in postings], [p.direction for p in postings],
            [p.amount for p in postings])


async def balance(conn: Conn, merchant_id: str) -> list[Row]:
    return await fetch_all(
        conn,
        "SELECT currency, sum(CASE WHEN direction = 'credit' THEN amount ELSE -amount END)::bigint AS amount "
        "FROM ledger_entries WHERE merchant_id = %s AND account = %s GROUP BY currency ORDER BY currency",
        (merchant_id, MERCHANT_BALANCE),
    )


async def page(
    conn: Conn, merchant_id: str, *, payment_id: str | None = None, refund_id: str | None = None,
    created_gte: datetime | None = None, created_lt: datetime | None = None, starting_after: str | None = None,
    limit: int = 10,
) -> list[Row]:
    sql, params = Page(merchant_id).eq("payment_id", payment_id).eq("refund_id", refund_id).created(
        created_gte, created_lt).sql("ledger_entries", starting_after, limit)
    return await fetch_all(conn, sql, params)
