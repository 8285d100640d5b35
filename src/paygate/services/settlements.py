"""Settlement and reconciliation (API.md §18).

A batch is announced by the bank's `settlement.created` callback (or found by the worker's poll of each
acquirer's list, for an announcement we missed), then processed once by the worker: fetched through the
acquirer interface (no lock held), then, under the settlement's row lock, each line is matched to the
journal of ours it settles — the oldest journal of that payment and kind that no line has taken, whose
amount through `acquirer_receivable` equals the line's signed amount:

- matched: a journal moves the amount from `acquirer_receivable` to `settled_cash`, the bank's fee to
  `acquirer_fees` (domain/ledger.settlement_postings), and any open missing_from_settlement of that
  journal closes;
- a journal of that payment and kind with another amount: `amount_mismatch` (expected ours, actual the
  bank's) — the line takes the journal (so it is not also "missing") but no money is posted;
- a payment with no journal to take: `amount_mismatch` with expected 0;
- no such payment at this acquirer: `unknown_reference`.

Exceptions carry a unique `dedupe` key, so each is recorded once however often the worker looks. Event
`settlement.reconciled` per merchant with lines, in the processing transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from paygate.acquirers.base import AcquirerError, Callback
from paygate.domain import ledger as postings
from paygate.domain.views import ts
from paygate.errors import NotFound
from paygate.services.gateway import Gateway, Principal, utcnow
from paygate.services.settle import emit
from paygate.store import ledger, settlements
from paygate.store.db import Conn, Row

log = structlog.get_logger("paygate.settlements")
LINE_TYPES = frozenset(postings.SETTLEABLE_KINDS)


async def announce(conn: Conn, event: Callback, now: datetime) -> tuple[str, str | None]:
    """The settlement.created callback, inside bank_events' transaction."""
    assert event.settlement_id is not None and event.currency is not None
    new = await settlements.announce(conn, acquirer=event.acquirer, bank_settlement_id=event.settlement_id,
                                     currency=event.currency, now=now)
    return ("applied", "settlement announced") if new else ("redundant", "settlement already known")


async def poll_banks(gw: Gateway) -> int:
    """Note every batch an acquirer lists that we have not heard of (a callback lost for good)."""
    found = 0
    for name, bank in gw.acquirers.items():
        try:
            batches = await bank.settlements()
        except (AcquirerError, Exception) as exc:
            log.warning("settlement_poll_failed", acquirer=name, error=type(exc).__name__)
            continue
        async with gw.pool.connection() as conn:
            known = await settlements.known_ids(conn, name, [b["id"] for b in batches])
            for b in batches:
                if b["id"] not in known and isinstance(b.get("currency"), str):
                    found += await settlements.announce(conn, acquirer=name, bank_settlement_id=b["id"],
                                                        currency=b["currency"], now=utcnow())
    return found


def _lines(batch: dict[str, Any]) -> list[dict[str, Any]]:
    lines = batch.get("lines")
    if not isinstance(lines, list):
        raise ValueError("batch without lines")
    out = []
    for line in lines:
        if (not isinstance(line, dict) or not isinstance(line.get("reference"), str)
                or line.get("type") not in LINE_TYPES
                or not all(isinstance(line.get(k), int) and not isinstance(line.get(k), bool)
                           for k in ("amount", "fee", "net"))):
            raise ValueError(f"malformed settlement line {line!r}")
        out.append(line)
    return out


class _Defer(Exception):
    """A line of a payment of ours finds no journal of the same amount yet: our side may still be finishing
    the operation (a lost answer the recovery worker resolves, a dispute callback on its way). The batch
    waits (rolled back, retried next tick) until PAYGATE_SETTLEMENT_MATCH_WAIT_S after its announcement."""


async def _match(conn: Conn, s: Row, seq: int, line: dict[str, Any], now: datetime, *, patient: bool) -> None:
    ref, amount = line["reference"], line["amount"]
    p = await settlements.payment_for(conn, ref) if ref.startswith("pay_") else None
    if p is None or p["acquirer"] != s["acquirer"]:
        await settlements.insert_line(conn, s["id"], seq, line, merchant_id=None, payment_id=None, journal_id=None,
                                      matched=False)
        await settlements.record_exception(
            conn, type="unknown_reference", dedupe=f"unknown:{s['id']}:{seq}", acquirer=s["acquirer"], reference=ref,
            merchant_id=None, settlement_id=s["id"], journal_id=None, expected=None, actual=amount, now=now)
        return
    candidates = await settlements.unsettled_journals(conn, p["id"], line["type"])
    exact = next((j for j in candidates if j["expected"] == amount), None)
    if exact is None and (patient or await settlements.in_flight(conn, p["id"])):
        raise _Defer(ref)  # an operation of ours still in flight (recovery resolves it) defers without limit
    journal = exact or (candidates[0] if candidates else None)
    await settlements.insert_line(conn, s["id"], seq, line, merchant_id=p["merchant_id"], payment_id=p["id"],
                                  journal_id=journal["id"] if journal else None, matched=exact is not None)
    if journal is not None:
        await settlements.close_missing(conn, journal["id"], now)
    if exact is None:
        await settlements.record_exception(
            conn, type="amount_mismatch", dedupe=f"mismatch:{s['id']}:{seq}", acquirer=s["acquirer"], reference=ref,
            merchant_id=p["merchant_id"], settlement_id=s["id"], journal_id=journal["id"] if journal else None,
            expected=journal["expected"] if journal else 0, actual=amount, now=now)
        return
    await ledger.post(conn, merchant_id=p["merchant_id"], kind="settlement", currency=p["currency"],
                      postings=postings.settlement_postings(amount, line["fee"]), now=now, payment_id=p["id"])


async def process(gw: Gateway, settlement: Row) -> bool:
    """Fetch and reconcile one announced batch; False if the bank could not be asked (retried later)."""
    try:
        batch = await gw.acquirer(settlement["acquirer"]).settlement(settlement["bank_settlement_id"])
        lines = _lines(batch)
    except (AcquirerError, ValueError, Exception) as exc:
        log.warning("settlement_fetch_failed", settlement=settlement["id"], error=type(exc).__name__)
        return False
    now = utcnow()
    patient = now - settlement["created_at"] < timedelta(seconds=gw.settings.settlement_match_wait_s)
    try:
        return await _process(gw, settlement, lines, now, patient=patient)
    except _Defer as exc:
        log.info("settlement_deferred", settlement=settlement["id"], reference=str(exc))
        return False


async def _process(gw: Gateway, settlement: Row, lines: list[dict[str, Any]], now: datetime, *,
                   patient: bool) -> bool:
    async with gw.pool.connection() as conn, conn.transaction():
        s = await settlements.lock(conn, settlement["id"])
        if s is None or s["status"] != "announced":
            return True
        for seq, line in enumerate(lines):
            await _match(conn, s, seq, line, now, patient=patient)
        await settlements.mark_processed(conn, s["id"], now)
        for merchant_id in await settlements.merchants_of(conn, s["id"]):
            view = await merchant_view(conn, s["id"], merchant_id)
            assert view is not None
            await emit(conn, merchant_id, "settlement.reconciled", view, now)
    log.info("settlement_processed", settlement=settlement["id"], lines=len(lines))
    return True


async def process_announced(gw: Gateway) -> int:
    async with gw.pool.connection() as conn:
        pending = await settlements.announced(conn)
    done = 0
    for s in pending:
        done += await process(gw, s)
    return done


async def sweep_missing(gw: Gateway) -> int:
    now = utcnow()
    async with gw.pool.connection() as conn, conn.transaction():
        return await settlements.record_missing(conn, now - timedelta(seconds=gw.settings.settlement_grace_s), now)


async def reconcile_once(gw: Gateway) -> int:
    """One worker tick: process what is announced, then look for operations missing from every batch."""
    done = await process_announced(gw)
    await sweep_missing(gw)
    return done


# --- the merchant's view --------------------------------------------------------------------------


def exception_view(row: Row) -> dict[str, Any]:
    return {"id": row["id"], "type": row["type"], "reference": row["reference"], "expected": row["expected"],
            "actual": row["actual"]}


async def merchant_view(conn: Conn, settlement_id: str, merchant_id: str) -> dict[str, Any] | None:
    row = await settlements.merchant_summary(conn, settlement_id, merchant_id)
    if row is None:
        return None
    exceptions = await settlements.merchant_exceptions(conn, settlement_id, merchant_id)
    return {"id": row["id"], "object": "settlement", "acquirer": row["acquirer"],
            "bank_settlement_id": row["bank_settlement_id"], "currency": row["currency"], "gross": row["gross"],
            "fees": row["fees"], "net": row["gross"] - row["fees"], "line_count": row["line_count"],
            "exceptions": [exception_view(e) for e in exceptions],
            "status": "exceptions" if exceptions else "reconciled", "created_at": ts(row["created_at"])}


async def retrieve(gw: Gateway, who: Principal, settlement_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        view = await merchant_view(conn, settlement_id, who.merchant_id)
        if view is None:
            raise NotFound("settlement", settlement_id)
        view["lines"] = [{"reference": r["reference"], "type": r["type"], "amount": r["amount"], "fee": r["fee"],
                          "net": r["net"], "matched": r["matched"]}
                         for r in await settlements.merchant_lines(conn, settlement_id, who.merchant_id)]
    return view


async def page(gw: Gateway, who: Principal, starting_after: str | None, limit: int) -> tuple[list[dict[str, Any]],
                                                                                           bool]:
    async with gw.pool.connection() as conn:
        ids = await settlements.merchant_page(conn, who.merchant_id, starting_after, limit)
        views = [v for i in ids[:limit] if (v := await merchant_view(conn, i, who.merchant_id)) is not None]
    return views, len(ids) > limit
