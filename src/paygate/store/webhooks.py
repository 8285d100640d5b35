"""Webhook endpoints and deliveries: every statement the API and the delivery worker run on them.

Deliveries themselves are created by `store.events.emit`, in the transaction of the change they report.
Lock order, everywhere: endpoint row before delivery rows (deleting an endpoint fails its pending
deliveries; recording an attempt may touch the endpoint first), so the two can never deadlock. A statement
that updates several delivery rows first locks them in id order (a `... ORDER BY id FOR UPDATE` CTE): a
multi-row UPDATE otherwise locks in whatever order its plan visits the rows, and two of them over the same
rows (a batch of recorded attempts, an endpoint's deletion failing its pending deliveries) could each hold
a row the other waits for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from paygate.store._sql import Page, adapt, set_clause
from paygate.store.db import Conn, Row, fetch_all, fetch_one
from paygate.store.events import NOTIFY_CHANNEL

_ENDPOINT_COLUMNS = ("id", "merchant_id", "url", "enabled_events", "description", "secret", "legacy_signature",
                     "created_at", "updated_at")
_ENDPOINT_UPDATABLE = frozenset({"url", "enabled_events", "disabled", "failing_since", "secret", "previous_secret",
                                 "previous_secret_expires_at", "deleted", "legacy_signature", "updated_at"})

# A delivery joined with what sending it needs: the event (the body) and the endpoint (URL, secrets).
_FOR_SEND = (
    "w.*, ev.type AS ev_type, ev.data AS ev_data, ev.created_at AS ev_created_at, e.url, e.secret, "
    "e.previous_secret, e.previous_secret_expires_at, e.legacy_signature, e.failing_since, "
    "e.disabled AS endpoint_disabled, "
    "e.deleted AS endpoint_deleted"
)
# The worker's claim: the same without the delivery's attempt history (jsonb, up to 8 attempts with their
# answers), which sending and recording never read: parsing it was client CPU on every claimed row.
_CLAIMED = _FOR_SEND.replace(
    "w.*", "w.id, w.merchant_id, w.endpoint_id, w.event_id, w.event_type, w.status, w.attempt_count, "
    "w.next_attempt_at, w.locked_until, w.created_at, w.updated_at")


# --- endpoints -----------------------------------------------------------------------------------------

async def insert_endpoint(conn: Conn, values: dict[str, Any]) -> Row:
    cols = ", ".join(_ENDPOINT_COLUMNS)
    marks = ", ".join(["%s"] * len(_ENDPOINT_COLUMNS))
    row = await fetch_one(conn, f"INSERT INTO webhook_endpoints ({cols}) VALUES ({marks}) RETURNING *",
                          [adapt(values.get(c)) if c != "enabled_events" else values[c] for c in _ENDPOINT_COLUMNS])
    assert row is not None
    return row


async def get_endpoint(conn: Conn, merchant_id: str, endpoint_id: str) -> Row | None:
    """A live endpoint of the merchant's (a deleted one is as unknown as a foreign one)."""
    return await fetch_one(conn, "SELECT * FROM webhook_endpoints WHERE id = %s AND merchant_id = %s AND NOT deleted",
                           (endpoint_id, merchant_id))


async def lock_endpoint(conn: Conn, merchant_id: str, endpoint_id: str) -> Row | None:
    return await fetch_one(
        conn, "SELECT * FROM webhook_endpoints WHERE id = %s AND merchant_id = %s AND NOT deleted FOR UPDATE",
        (endpoint_id, merchant_id))


async def update_endpoint(conn: Conn, endpoint_id: str, fields: dict[str, Any]) -> Row:
    fields = dict(fields)
    events = fields.pop("enabled_events", None)  # a text[]: must not be adapted to JSON like other lists
    cols, params = set_clause(fields, _ENDPOINT_UPDATABLE)
    if events is not None:
        cols = ", ".join(c for c in (cols, "enabled_events = %s::text[]") if c)
        params.append(list(events))
    row = await fetch_one(conn, f"UPDATE webhook_endpoints SET {cols} WHERE id = %s RETURNING *",
                          [*params, endpoint_id])
    assert row is not None
    return row


async def page_endpoints(
    conn: Conn, merchant_id: str, *, created_gte: datetime | None = None, created_lt: datetime | None = None,
    starting_after: str | None = None, limit: int = 10,
) -> list[Row]:
    q = Page(merchant_id).created(created_gte, created_lt)
    q.where.append("NOT deleted")
    sql, params = q.sql("webhook_endpoints", starting_after, limit)
    return await fetch_all(conn, sql, params)


async def fail_pending_of_endpoint(conn: Conn, endpoint_id: str, now: datetime) -> int:
    """A deleted endpoint will never be called again: its waiting deliveries end as failed."""
    cur = await conn.execute(
        "WITH locked AS (SELECT id FROM webhook_deliveries WHERE endpoint_id = %s AND status = 'pending' "
        "  ORDER BY id FOR UPDATE) "
        "UPDATE webhook_deliveries w SET status = 'failed', next_attempt_at = NULL, updated_at = %s "
        "FROM locked WHERE w.id = locked.id AND w.status = 'pending'", (endpoint_id, now))
    return cur.rowcount


async def endpoint_succeeded(conn: Conn, endpoint_id: str) -> None:
    """Clears the failure streak; matches (and so locks) the row only when there is a streak to clear."""
    await conn.execute("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = %s AND failing_since IS NOT NULL",
                       (endpoint_id,))


async def endpoint_failed(conn: Conn, endpoint_id: str, at: datetime, disable_if_failing_since: datetime) -> bool:
    """Start or continue the failure streak; True if the streak is long enough that the endpoint is now disabled."""
    await conn.execute("UPDATE webhook_endpoints SET failing_since = %s WHERE id = %s AND failing_since IS NULL",
                       (at, endpoint_id))
    row = await fetch_one(
        conn, "UPDATE webhook_endpoints SET disabled = true, updated_at = %s "
        "WHERE id = %s AND NOT disabled AND failing_since <= %s RETURNING id",
        (at, endpoint_id, disable_if_failing_since))
    return row is not None


async def disable_endpoint(conn: Conn, endpoint_id: str, now: datetime) -> bool:
    row = await fetch_one(conn, "UPDATE webhook_endpoints SET disabled = true, updated_at = %s "
                          "WHERE id = %s AND NOT disabled RETURNING id", (now, endpoint_id))
    return row is not None


async def notify(conn: Conn) -> None:
    """Wake the delivery workers at commit (deliveries of a re-enabled endpoint may be due)."""
    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}".encode())


# --- deliveries: reading -------------------------------------------------------------------------------

async def get_delivery(conn: Conn, merchant_id: str, delivery_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM webhook_deliveries WHERE id = %s AND merchant_id = %s",
                           (delivery_id, merchant_id))


async def page_deliveries(
    conn: Conn, merchant_id: str, *, endpoint_id: str | None = None, event_id: str | None = None,
    status: str | None = None, created_gte: datetime | None = None, created_lt: datetime | None = None,
    starting_after: str | None = None, limit: int = 10,
) -> list[Row]:
    sql, params = (Page(merchant_id).eq("endpoint_id", endpoint_id).eq("event_id", event_id).eq("status", status)
                   .created(created_gte, created_lt).sql("webhook_deliveries", starting_after, limit))
    return await fetch_all(conn, sql, params)


# --- deliveries: the worker's claim, lease and record ----------------------------------------------------

async def claim(
    conn: Conn, *, now: datetime, lease_until: datetime, first_due: datetime, limit: int, per_endpoint: int,
    in_flight: dict[str, int], scan: int,
) -> list[Row]:
    """Lease up to `limit` due deliveries (FOR UPDATE SKIP LOCKED: several workers never take the same one).

    Due: pending, its time come (a first attempt also waits `first_due`, the schedule's first delay), no live
    lease, its endpoint enabled. At most `per_endpoint` per endpoint counting `in_flight` (what this worker
    already sends there), so one slow receiver cannot occupy every slot of the worker.

    Each row also carries `due_seen`: how many due deliveries the claim looked at (up to `scan`, endpoints
    at their cap not counted), so that a caller that got fewer than that knows some were left behind —
    held back by the per-endpoint cap, or locked by another worker's claim — and when it got them all,
    that claiming again before new work is announced would find nothing.
    """
    return await fetch_all(
        conn,
        "WITH busy AS (SELECT * FROM unnest(%(busy_ids)s::text[], %(busy_n)s::int[]) AS b(endpoint_id, n)), "
        "due AS (SELECT d.id, d.endpoint_id, d.next_attempt_at FROM webhook_deliveries d "
        "  JOIN webhook_endpoints e ON e.id = d.endpoint_id "
        "  WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s "
        "  AND (d.attempt_count > 0 OR d.next_attempt_at <= %(first_due)s) "
        "  AND (d.locked_until IS NULL OR d.locked_until <= %(now)s) AND NOT e.disabled AND NOT e.deleted "
        "  AND NOT EXISTS (SELECT 1 FROM busy WHERE busy.endpoint_id = d.endpoint_id AND busy.n >= %(cap)s) "
        "  ORDER BY d.next_attempt_at LIMIT %(scan)s), "
        "ranked AS (SELECT due.id, row_number() OVER (PARTITION BY due.endpoint_id ORDER BY due.next_attempt_at) "
        "  + coalesce(busy.n, 0) AS slot FROM due LEFT JOIN busy ON busy.endpoint_id = due.endpoint_id), "
        "picked AS (SELECT d.id FROM webhook_deliveries d "
        "  WHERE d.id IN (SELECT id FROM ranked WHERE slot <= %(cap)s) "
        "  AND d.status = 'pending' AND (d.locked_until IS NULL OR d.locked_until <= %(now)s) "
        "  ORDER BY d.next_attempt_at LIMIT %(limit)s FOR UPDATE OF d SKIP LOCKED) "
        "UPDATE webhook_deliveries w SET locked_until = %(lease)s "
        "FROM picked, events ev, webhook_endpoints e "
        "WHERE w.id = picked.id AND ev.id = w.event_id AND e.id = w.endpoint_id "
        f"RETURNING {_CLAIMED}, (SELECT count(*) FROM due) AS due_seen",
        {"busy_ids": list(in_flight), "busy_n": list(in_flight.values()), "now": now, "first_due": first_due,
         "cap": per_endpoint, "scan": scan, "limit": limit, "lease": lease_until},
    )


async def lease_one(
    conn: Conn, merchant_id: str, delivery_id: str, *, now: datetime, lease_until: datetime, take_over: bool = False
) -> Row | None:
    """Lease one delivery (manual retry) if no live lease holds it, or whatever holds it if `take_over`;
    None when it is held (or unknown)."""
    return await fetch_one(
        conn,
        "UPDATE webhook_deliveries w SET locked_until = %(lease)s FROM events ev, webhook_endpoints e "
        "WHERE w.id = %(id)s AND w.merchant_id = %(m)s "
        "AND (%(take)s OR w.locked_until IS NULL OR w.locked_until <= %(now)s) "
        f"AND ev.id = w.event_id AND e.id = w.endpoint_id RETURNING {_FOR_SEND}",
        {"lease": lease_until, "id": delivery_id, "m": merchant_id, "now": now, "take": take_over},
    )


async def lock_delivery(conn: Conn, delivery_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM webhook_deliveries WHERE id = %s FOR UPDATE", (delivery_id,))


async def record(
    conn: Conn, delivery_id: str, *, attempt: dict[str, Any], counted: bool, status: str,
    next_attempt_at: datetime | None, clear_lease: bool, now: datetime,
) -> Row:
    """Append one attempt; set the outcome it led to."""
    row = await fetch_one(
        conn,
        "UPDATE webhook_deliveries SET attempts = attempts || jsonb_build_array(%s::jsonb), "
        "attempt_count = attempt_count + %s, status = %s, next_attempt_at = %s, "
        "locked_until = CASE WHEN %s THEN NULL ELSE locked_until END, updated_at = %s WHERE id = %s RETURNING *",
        (orjson.dumps(attempt).decode(), 1 if counted else 0, status, next_attempt_at, clear_lease, now, delivery_id),
    )
    assert row is not None
    return row


async def record_if_leased(
    conn: Conn, delivery_id: str, *, lease: datetime, attempt: dict[str, Any], status: str,
    next_attempt_at: datetime | None, now: datetime,
) -> Row | None:
    """Record a scheduled attempt if the lease `lease` still holds the pending row; None otherwise."""
    return await fetch_one(
        conn,
        "UPDATE webhook_deliveries SET attempts = attempts || jsonb_build_array(%s::jsonb), "
        "attempt_count = attempt_count + 1, status = %s, next_attempt_at = %s, locked_until = NULL, updated_at = %s "
        "WHERE id = %s AND locked_until = %s AND status = 'pending' RETURNING *",
        (orjson.dumps(attempt).decode(), status, next_attempt_at, now, delivery_id, lease),
    )


@dataclass(frozen=True)
class Recorded:
    """One scheduled attempt for `record_many_if_leased` (the arguments of `record_if_leased`)."""

    delivery_id: str
    lease: datetime
    attempt: dict[str, Any]
    status: str
    next_attempt_at: datetime | None


async def record_many_if_leased(conn: Conn, items: list[Recorded], *, now: datetime) -> dict[str, Row]:
    """`record_if_leased` for many deliveries in one statement: delivery id → its outcome (id, endpoint_id,
    status, attempt_count, next_attempt_at: not the whole row, whose attempt history the worker would only
    parse to drop), for those whose lease still held the pending row (the others are absent)."""
    if not items:
        return {}
    ids = [i.delivery_id for i in items]
    rows = await fetch_all(
        conn,
        "WITH locked AS (SELECT id FROM webhook_deliveries WHERE id = ANY(%s::text[]) ORDER BY id FOR UPDATE) "
        "UPDATE webhook_deliveries w SET attempts = w.attempts || jsonb_build_array(u.attempt), "
        "attempt_count = w.attempt_count + 1, status = u.status, next_attempt_at = u.next_at, locked_until = NULL, "
        "updated_at = %s "
        "FROM unnest(%s::text[], %s::timestamptz[], %s::jsonb[], %s::text[], %s::timestamptz[]) "
        "AS u(id, lease, attempt, status, next_at) "
        "WHERE w.id = u.id AND w.id IN (SELECT id FROM locked) AND w.locked_until = u.lease "
        "AND w.status = 'pending' RETURNING w.id, w.endpoint_id, w.status, w.attempt_count, w.next_attempt_at",
        (ids, now, ids, [i.lease for i in items],
         [orjson.dumps(i.attempt).decode() for i in items], [i.status for i in items],
         [i.next_attempt_at for i in items]),
    )
    return {r["id"]: r for r in rows}


async def release(conn: Conn, leases: list[tuple[str, datetime]]) -> int:
    """Give back leases whose attempt never ran (worker stopping), so another worker need not wait them out."""
    if not leases:
        return 0
    ids = [i for i, _ in leases]
    cur = await conn.execute(
        "WITH locked AS (SELECT id FROM webhook_deliveries WHERE id = ANY(%s::text[]) ORDER BY id FOR UPDATE) "
        "UPDATE webhook_deliveries w SET locked_until = NULL "
        "FROM unnest(%s::text[], %s::timestamptz[]) AS l(id, lease) "
        "WHERE w.id = l.id AND w.id IN (SELECT id FROM locked) AND w.locked_until = l.lease",
        (ids, ids, [t for _, t in leases]),
    )
    return cur.rowcount
