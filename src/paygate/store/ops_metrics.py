"""What the worker's gauges show (worker/metrics.py): the work waiting, across all merchants."""

from __future__ import annotations

from datetime import datetime

from paygate.store.db import Conn, Row, fetch_all, fetch_one


async def webhook_backlog(conn: Conn, now: datetime) -> Row:
    """`pending` deliveries, and `lag_s`: how long the longest-waiting due one has been due (0 when none
    is), leaving out deliveries a worker holds right now and those of disabled endpoints (they wait on
    the merchant). Both ranges are over the partial index of open deliveries."""
    row = await fetch_one(
        conn,
        "SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS pending, "
        "coalesce((SELECT extract(epoch FROM %(now)s - min(d.next_attempt_at)) "
        "  FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
        "  WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s "
        "  AND (d.locked_until IS NULL OR d.locked_until <= %(now)s) AND NOT e.disabled AND NOT e.deleted), 0)"
        "  AS lag_s",
        {"now": now},
    )
    assert row is not None
    return row


async def recovery_backlog(conn: Conn, now: datetime) -> list[Row]:
    """Bank operations left in flight and due for the recovery loop, by kind (one a request is still
    working on is not due yet: its `next_attempt_at` is past the request's own attempts)."""
    return await fetch_all(
        conn, "SELECT kind, count(*) AS n FROM bank_operations WHERE status = 'pending' AND next_attempt_at <= %s "
        "GROUP BY kind", (now,))
