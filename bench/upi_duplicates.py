"""UPI under duplicate bank callbacks: does every payment change state exactly once?

Run against a stack whose bank sends duplicates (`PAYGATE_BANK_DUPLICATE_RATE=0.5`: half of the callbacks
are sent a second time, 0.2-2 s late, with the same event id). The script creates UPI payments with
bounded concurrency, waits (bounded) until every one is final and the bank's callback outbox for them is
drained, then reads the database and prints what happened:

- final states, and payments whose outcome is not the one their VPA asks for;
- payments that changed state more than once after `pending` (must be 0);
- payments with other than one final event, or a wrong number of ledger journals (must be 0);
- bank callbacks: scheduled by the bank, duplicates among them, delivery attempts; received by paygate
  (one `bank_events` row per event id), by outcome, and duplicate deliveries absorbed.

Example (a fresh database, own ports; see docs/orders-and-upi.md):

    export PAYGATE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/paygate_bench_upi
    export PAYGATE_BANK_URL=http://127.0.0.1:18787 PAYGATE_PUBLIC_URL=http://127.0.0.1:18080
    paygate migrate
    PAYGATE_BANK_DUPLICATE_RATE=0.5 paygate bank --port 18787 &
    paygate api --port 18080 --workers 2 &
    paygate worker &
    python bench/upi_duplicates.py --api $PAYGATE_PUBLIC_URL --database-url $PAYGATE_DATABASE_URL

Without `--secret-key` a merchant is created in the database first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

_REF = "convert_from(c.body, 'UTF8')::jsonb #>> '{data,reference}'"


def _vpa(i: int, failure_every: int) -> str:
    if failure_every and i % failure_every == failure_every - 1:
        return "failure@upi"
    return "success@upi" if i % 2 else f"buyer{i}@okbank"


async def _merchant(database_url: str) -> str:
    from paygate.services import merchants
    from paygate.store.db import make_pool

    pool = make_pool(database_url, min_size=1, max_size=1)
    await pool.open()
    try:
        made = await merchants.create(pool, name="UPI duplicates bench",
                                      email=f"bench-{secrets.token_hex(4)}@example.com", password="bench-password")
    finally:
        await pool.close()
    return made.secret_key


async def _create(http: httpx.AsyncClient, i: int, vpa: str, sem: asyncio.Semaphore,
                  latencies: list[float]) -> str:
    """One payment; retried with the same Idempotency-Key on 409-in-use, 5xx or a transport error."""
    body = {"amount": 100 + i, "currency": "INR", "payment_method": {"type": "upi", "upi": {"vpa": vpa}},
            "metadata": {"bench": "upi_duplicates"}}
    headers = {"Idempotency-Key": f"bench-upi-{secrets.token_hex(8)}"}
    async with sem:
        for attempt in range(8):
            started = time.perf_counter()
            try:
                resp = await http.post("/v1/payments", json=body, headers=headers)
            except httpx.TransportError:
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            if resp.status_code == 201:
                latencies.append(time.perf_counter() - started)
                payment_id: str = resp.json()["id"]
                return payment_id
            if resp.status_code in (409, 429) or resp.status_code >= 500:
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            raise SystemExit(f"payment {i}: unexpected {resp.status_code} {resp.text[:300]}")
    raise SystemExit(f"payment {i}: not created after retries")


def _q(conn: psycopg.Connection[dict[str, Any]], sql: str, *params: Any) -> list[dict[str, Any]]:
    return conn.execute(sql.encode(), params).fetchall()


def _wait(conn: psycopg.Connection[dict[str, Any]], what: str, sql: str, ids: list[str], deadline: float) -> bool:
    """Poll `sql` (a count of what is still outstanding) until it is 0 or the deadline passes."""
    last = -1
    while True:
        left = int(_q(conn, sql, ids)[0]["n"])
        if left != last:
            print(f"  {what}: {left} outstanding", file=sys.stderr)
            last = left
        if left == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


def _report(conn: psycopg.Connection[dict[str, Any]], bank_conn: psycopg.Connection[dict[str, Any]], ids: list[str],
            vpas: dict[str, str]) -> dict[str, Any]:
    rows = _q(conn, "SELECT id, status, json_array_length(status_history) AS changes FROM payments "
                    "WHERE id = ANY(%s)", ids)
    states: dict[str, int] = {}
    for r in rows:
        states[r["status"]] = states.get(r["status"], 0) + 1
    wrong = sum(1 for r in rows if r["status"] != "pending"
                and r["status"] != ("failed" if vpas[r["id"]] == "failure@upi" else "captured"))
    final_events = _q(conn, "SELECT p.id, count(e.id) AS n FROM payments p LEFT JOIN events e ON e.object_id = p.id "
                            "AND e.type IN ('payment.captured', 'payment.failed') WHERE p.id = ANY(%s) GROUP BY p.id",
                      ids)
    journals = _q(conn, "SELECT p.id, p.status, count(j.id) AS n FROM payments p LEFT JOIN ledger_journals j "
                        "ON j.payment_id = p.id WHERE p.id = ANY(%s) GROUP BY p.id, p.status", ids)
    received = _q(conn, "SELECT outcome, count(*) AS events, coalesce(sum(duplicates), 0) AS duplicates, "
                        "count(*) FILTER (WHERE duplicates > 0) AS events_duplicated "
                        "FROM bank_events WHERE reference = ANY(%s) GROUP BY outcome ORDER BY outcome", ids)
    sent = _q(bank_conn, f"SELECT count(*) AS callbacks, count(DISTINCT c.event_id) AS events, "
                    f"coalesce(sum(c.attempts), 0) AS attempts, "
                    f"count(*) FILTER (WHERE c.delivered_at IS NULL) AS undelivered "
                    f"FROM bank.callbacks c WHERE {_REF} = ANY(%s)", ids)[0]
    by_outcome = {r["outcome"]: int(r["events"]) for r in received}
    return {
        "payments": len(ids),
        "final_states": dict(sorted(states.items())),
        "outcome_differs_from_vpa": wrong,
        "payments_changed_more_than_once_after_pending": sum(1 for r in rows if r["changes"] > 2),
        "payments_without_exactly_one_final_event": sum(1 for r in final_events if r["n"] != 1),
        "payments_with_wrong_journal_count": sum(
            1 for r in journals if r["n"] != (1 if r["status"] == "captured" else 0)),
        "bank_callbacks_scheduled": int(sent["callbacks"]),
        "bank_callback_events": int(sent["events"]),
        "bank_duplicate_callbacks_scheduled": int(sent["callbacks"]) - int(sent["events"]),
        "bank_delivery_attempts": int(sent["attempts"]),
        "bank_callbacks_undelivered": int(sent["undelivered"]),
        "bank_events_recorded": sum(by_outcome.values()),
        "bank_events_by_outcome": by_outcome,
        "duplicate_deliveries_received_and_ignored": sum(int(r["duplicates"]) for r in received),
        "bank_events_received_more_than_once": sum(int(r["events_duplicated"]) for r in received),
    }


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--api", required=True, help="paygate API base URL")
    ap.add_argument("--database-url", required=True, help="the stack's database (read-only use, and the merchant)")
    ap.add_argument("--bank-database-url", help="the bank's database, if not the gateway's")
    ap.add_argument("--secret-key", help="a merchant's sk_test_ key (default: create a merchant)")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=25)
    ap.add_argument("--failure-every", type=int, default=5, help="every Nth payment uses failure@upi (0: none)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for everything to be final")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args()

    key = args.secret_key or await _merchant(args.database_url)
    vpas_by_index = [_vpa(i, args.failure_every) for i in range(args.count)]
    latencies: list[float] = []
    sem = asyncio.Semaphore(args.concurrency)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=args.api.rstrip("/"), auth=(key, ""), timeout=60,
                                 limits=httpx.Limits(max_connections=args.concurrency)) as http:
        ids = await asyncio.gather(*(_create(http, i, v, sem, latencies) for i, v in enumerate(vpas_by_index)))
    created_s = time.monotonic() - started
    print(f"created {len(ids)} UPI payments in {created_s:.1f}s "
          f"(p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms)", file=sys.stderr)
    vpas = dict(zip(ids, vpas_by_index, strict=True))

    deadline = time.monotonic() + args.timeout
    with psycopg.connect(args.database_url, row_factory=dict_row, autocommit=True) as conn:
        final = _wait(conn, "payments pending", "SELECT count(*) AS n FROM payments WHERE id = ANY(%s) "
                      "AND status = 'pending'", ids, deadline)
        final_s = time.monotonic() - started
        bank_url = args.bank_database_url or args.database_url
        with psycopg.connect(bank_url, row_factory=dict_row, autocommit=True) as bank_conn:
            drained = _wait(bank_conn, "bank callbacks undelivered",
                            f"SELECT count(*) AS n FROM bank.callbacks c WHERE {_REF} = ANY(%s) "
                            "AND c.delivered_at IS NULL", ids, deadline)
            report = _report(conn, bank_conn, ids, vpas)
    report |= {"all_final": final, "callbacks_drained": drained, "seconds_to_create": round(created_s, 1),
               "seconds_until_all_final": round(final_s, 1)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max(len(k) for k in report)
        for k, v in report.items():
            print(f"{k:<{width}}  {v}")
    bad = (report["payments_changed_more_than_once_after_pending"] or report["outcome_differs_from_vpa"]
           or report["payments_without_exactly_one_final_event"] or report["payments_with_wrong_journal_count"])
    return 0 if final and not bad else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
