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
    # One statement, one round trip: the journal and all its postings.
    await conn.execute(
        "WITH j AS (INSERT INTO ledger_journals (id, merchant_id, kind, currency, payment_id, refund_id, created_at) "
        "VALUES (%(j)s, %(m)s, %(k)s, %(c)s, %(p)s, %(r)s, %(now)s)) "
        "INSERT INTO ledger_entries (id, journal_id, merchant_id, account, direction, amount, currency, payment_id, "
        "refund_id, created_at) SELECT e.id, %(j)s, %(m)s, e.account, e.direction, e.amount, %(c)s, %(p)s, %(r)s, "
        "%(now)s FROM unnest(%(ids)s::text[], %(accounts)s::text[], %(dirs)s::text[], %(amounts)s::bigint[]) "
        "AS e(id, account, direction, amount)",
        {"j": journal_id, "m": merchant_id, "k": kind, "c": currency, "p": payment_id, "r": refund_id, "now": now,
         "ids": [new_id("led") for _ in postings], "accounts": [p.account for p in postings],
         "dirs": [p.direction for p in postings], "amounts": [p.amount for p in postings]},
    )
    return journal_id


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
