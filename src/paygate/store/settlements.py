"""Settlement batches, their lines and the reconciliation exceptions (API.md §18)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paygate.domain.ids import new_id
from paygate.domain.ledger import ACQUIRER_RECEIVABLE, SETTLEABLE_KINDS, SETTLED_CASH
from paygate.store.db import Conn, Row, fetch_all, fetch_one


async def announce(conn: Conn, *, acquirer: str, bank_settlement_id: str, currency: str, now: datetime) -> bool:
    """Note a batch the bank announced (or the poll found); False when it was known already."""
    row = await fetch_one(
        conn, "INSERT INTO settlements (id, acquirer, bank_settlement_id, currency, status, created_at) "
        "VALUES (%s, %s, %s, %s, 'announced', %s) ON CONFLICT (acquirer, bank_settlement_id) DO NOTHING RETURNING id",
        (new_id("stl"), acquirer, bank_settlement_id, currency, now))
    return row is not None


async def announced(conn: Conn, limit: int = 20) -> list[Row]:
    return await fetch_all(conn, "SELECT * FROM settlements WHERE status = 'announced' ORDER BY created_at LIMIT %s",
                           (limit,))


async def known_ids(conn: Conn, acquirer: str, bank_ids: list[str]) -> set[str]:
    rows = await fetch_all(conn, "SELECT bank_settlement_id FROM settlements WHERE acquirer = %s "
                                 "AND bank_settlement_id = ANY(%s)", (acquirer, bank_ids))
    return {r["bank_settlement_id"] for r in rows}


async def lock(conn: Conn, settlement_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM settlements WHERE id = %s FOR UPDATE", (settlement_id,))


async def mark_processed(conn: Conn, settlement_id: str, now: datetime) -> None:
    await conn.execute("UPDATE settlements SET status = 'processed', processed_at = %s WHERE id = %s",
                       (now, settlement_id))


async def payment_for(conn: Conn, payment_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT id, merchant_id, acquirer, currency FROM payments WHERE id = %s",
                           (payment_id,))


async def in_flight(conn: Conn, payment_id: str) -> bool:
    """Whether the payment has a bank operation whose outcome we have not recorded yet."""
    row = await fetch_one(conn, "SELECT 1 AS x FROM bank_operations WHERE payment_id = %s AND status = 'pending' "
                                "LIMIT 1", (payment_id,))
    return row is not None


async def unsettled_journals(conn: Conn, payment_id: str, kind: str) -> list[Row]:
    """The payment's journals of `kind` that no settlement line has taken yet, oldest first, each with the
    signed amount the acquirer owes for it (debits minus credits of acquirer_receivable)."""
    return await fetch_all(
        conn,
        "SELECT j.id, j.merchant_id, j.currency, j.created_at, "
        "sum(CASE WHEN e.direction = 'debit' THEN e.amount ELSE -e.amount END)::bigint AS expected "
        "FROM ledger_journals j JOIN ledger_entries e ON e.journal_id = j.id AND e.account = %s "
        "WHERE j.payment_id = %s AND j.kind = %s "
        "AND NOT EXISTS (SELECT 1 FROM settlement_lines l WHERE l.journal_id = j.id) "
        "GROUP BY j.id ORDER BY j.created_at, j.id",
        (ACQUIRER_RECEIVABLE, payment_id, kind))


async def insert_line(conn: Conn, settlement_id: str, seq: int, line: dict[str, Any], *, merchant_id: str | None,
                      payment_id: str | None, journal_id: str | None, matched: bool) -> None:
    await conn.execute(
        "INSERT INTO settlement_lines (settlement_id, seq, reference, type, amount, fee, net, merchant_id, "
        "payment_id, journal_id, matched) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (settlement_id, seq, line["reference"], line["type"], line["amount"], line["fee"], line["net"], merchant_id,
         payment_id, journal_id, matched))


async def record_exception(conn: Conn, *, type: str, dedupe: str, acquirer: str, reference: str,
                           merchant_id: str | None, settlement_id: str | None, journal_id: str | None,
                           expected: int | None, actual: int | None, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO reconciliation_exceptions (id, type, dedupe, acquirer, reference, merchant_id, settlement_id, "
        "journal_id, expected, actual, status, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'open', %s) "
        "ON CONFLICT (dedupe) DO NOTHING",
        (new_id("rex"), type, dedupe, acquirer, reference, merchant_id, settlement_id, journal_id, expected, actual,
         now))


async def close_missing(conn: Conn, journal_id: str, now: datetime) -> None:
    """The journal's line arrived after all: its missing_from_settlement closes by itself."""
    await conn.execute(
        "UPDATE reconciliation_exceptions SET status = 'closed', closed_at = %s, note = 'line arrived later' "
        "WHERE journal_id = %s AND type = 'missing_from_settlement' AND status = 'open'", (now, journal_id))


async def record_missing(conn: Conn, older_than: datetime, now: datetime) -> int:
    """One missing_from_settlement per settleable journal older than the grace period and in no batch."""
    cur = await conn.execute(
        "INSERT INTO reconciliation_exceptions (id, type, dedupe, acquirer, reference, merchant_id, journal_id, "
        "expected, status, created_at) "
        "SELECT 'rex_' || substr(md5(j.id), 1, 26), 'missing_from_settlement', 'missing:' || j.id, p.acquirer, "
        "p.id, j.merchant_id, j.id, "
        "(SELECT sum(CASE WHEN e.direction = 'debit' THEN e.amount ELSE -e.amount END) FROM ledger_entries e "
        " WHERE e.journal_id = j.id AND e.account = %s), 'open', %s "
        "FROM ledger_journals j JOIN payments p ON p.id = j.payment_id "
        "WHERE j.kind = ANY(%s) AND j.created_at < %s "
        "AND NOT EXISTS (SELECT 1 FROM settlement_lines l WHERE l.journal_id = j.id) "
        "ON CONFLICT (dedupe) DO NOTHING",
        (ACQUIRER_RECEIVABLE, now, list(SETTLEABLE_KINDS), older_than))
    return cur.rowcount


async def merchant_summary(conn: Conn, settlement_id: str, merchant_id: str) -> Row | None:
    return await fetch_one(
        conn,
        "SELECT s.id, s.acquirer, s.bank_settlement_id, s.currency, s.created_at, count(l.seq) AS line_count, "
        "coalesce(sum(l.amount) FILTER (WHERE l.matched), 0)::bigint AS gross, "
        "coalesce(sum(l.fee) FILTER (WHERE l.matched), 0)::bigint AS fees "
        "FROM settlements s JOIN settlement_lines l ON l.settlement_id = s.id AND l.merchant_id = %s "
        "WHERE s.id = %s GROUP BY s.id", (merchant_id, settlement_id))


async def merchant_exceptions(conn: Conn, settlement_id: str, merchant_id: str) -> list[Row]:
    return await fetch_all(
        conn, "SELECT * FROM reconciliation_exceptions WHERE settlement_id = %s AND merchant_id = %s "
        "AND type = 'amount_mismatch' ORDER BY id", (settlement_id, merchant_id))


async def merchant_lines(conn: Conn, settlement_id: str, merchant_id: str) -> list[Row]:
    return await fetch_all(conn, "SELECT * FROM settlement_lines WHERE settlement_id = %s AND merchant_id = %s "
                                 "ORDER BY seq", (settlement_id, merchant_id))


async def merchant_page(conn: Conn, merchant_id: str, starting_after: str | None, limit: int) -> list[str]:
    rows = await fetch_all(
        conn, "SELECT DISTINCT settlement_id FROM settlement_lines WHERE merchant_id = %s "
        "AND (%s::text IS NULL OR settlement_id < %s) ORDER BY settlement_id DESC LIMIT %s",
        (merchant_id, starting_after, starting_after, limit + 1))
    return [r["settlement_id"] for r in rows]


async def merchants_of(conn: Conn, settlement_id: str) -> list[str]:
    rows = await fetch_all(conn, "SELECT DISTINCT merchant_id FROM settlement_lines WHERE settlement_id = %s "
                                 "AND merchant_id IS NOT NULL ORDER BY merchant_id", (settlement_id,))
    return [r["merchant_id"] for r in rows]


async def settled(conn: Conn, merchant_id: str) -> list[Row]:
    return await fetch_all(
        conn, "SELECT currency, sum(CASE WHEN direction = 'debit' THEN amount ELSE -amount END)::bigint AS amount "
        "FROM ledger_entries WHERE merchant_id = %s AND account = %s GROUP BY currency ORDER BY currency",
        (merchant_id, SETTLED_CASH))


async def open_exceptions(conn: Conn, since: datetime | None = None) -> list[Row]:
    return await fetch_all(
        conn, "SELECT * FROM reconciliation_exceptions WHERE status = 'open' AND (%s::timestamptz IS NULL "
        "OR created_at >= %s) ORDER BY created_at, id", (since, since))


async def open_counts(conn: Conn) -> dict[str, int]:
    rows = await fetch_all(conn, "SELECT type, count(*)::int AS n FROM reconciliation_exceptions "
                                 "WHERE status = 'open' GROUP BY type")
    return {r["type"]: r["n"] for r in rows}


async def resolve(conn: Conn, exception_id: str, note: str | None, now: datetime) -> Row | None:
    return await fetch_one(
        conn, "UPDATE reconciliation_exceptions SET status = 'resolved', note = %s, closed_at = %s "
        "WHERE id = %s AND status = 'open' RETURNING *", (note, now, exception_id))
