"""The merchant's work in waiting (GET /v1/queue): undelivered webhooks and payments still in flight."""

from __future__ import annotations

from datetime import datetime, timedelta

from paygate.domain.payments import IN_FLIGHT
from paygate.store.db import Conn, Row, fetch_one


async def stats(conn: Conn, merchant_id: str, now: datetime, first_delay_s: float = 0.0) -> Row:
    """Counts and ages in one round trip; every part is an index range over a small, open subset of rows.

    `lag_since` is when the longest-waiting *due* delivery became due (a first attempt after the schedule's
    first delay) — excluding deliveries whose endpoint is disabled (they wait on the merchant, not on us)
    and those a worker holds right now.
    """
    row = await fetch_one(
        conn,
        "SELECT "
        "(SELECT count(*) FROM webhook_deliveries WHERE merchant_id = %(m)s AND status = 'pending') AS pending, "
        "(SELECT count(*) FROM webhook_deliveries WHERE merchant_id = %(m)s AND status = 'failed') AS failed, "
        "(SELECT min(created_at) FROM webhook_deliveries WHERE merchant_id = %(m)s AND status = 'pending') "
        "  AS oldest_pending, "
        "(SELECT min(CASE WHEN d.attempt_count = 0 THEN d.next_attempt_at + %(first)s ELSE d.next_attempt_at END) "
        "  FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
        "  WHERE d.merchant_id = %(m)s AND d.status = 'pending' AND d.next_attempt_at <= %(now)s "
        "  AND (d.attempt_count > 0 OR d.next_attempt_at + %(first)s <= %(now)s) "
        "  AND (d.locked_until IS NULL OR d.locked_until <= %(now)s) AND NOT e.disabled AND NOT e.deleted) "
        "  AS lag_since, "
        "(SELECT count(*) FROM payments WHERE merchant_id = %(m)s AND status = ANY(%(flight)s)) AS payments_in_flight",
        {"m": merchant_id, "now": now, "first": timedelta(seconds=first_delay_s),
         "flight": sorted(s.value for s in IN_FLIGHT)},
    )
    assert row is not None
    return row
