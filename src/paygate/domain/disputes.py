"""Disputes (API.md §17): states, the moves between them, and the public view. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from paygate.domain.views import ts

EVIDENCE_WINDOW = timedelta(days=7)
OPEN = "needs_response"
UNDER_REVIEW = "under_review"
WON = "won"
LOST = "lost"
FINAL = frozenset({WON, LOST})
STATUSES = frozenset({OPEN, UNDER_REVIEW, WON, LOST})
REASONS = frozenset({"fraudulent", "product_not_received", "duplicate", "general"})
MAX_EVIDENCE = 20_000
# What each status may become. A decision may arrive before our own record of the evidence (the bank is
# quick, our second transaction slow), so needs_response may go straight to won or lost.
_MOVES = {OPEN: {UNDER_REVIEW, WON, LOST}, UNDER_REVIEW: {WON, LOST}, WON: set(), LOST: set()}
# dispute.* callback type → the status it reports
CALLBACK_STATUS = {"dispute.created": OPEN, "dispute.won": WON, "dispute.lost": LOST}


def can_move(current: str, target: str) -> bool:
    return target in _MOVES[current]


def answerable(status: str, due_by: datetime, now: datetime) -> bool:
    """Evidence is taken only while the dispute needs a response and before its deadline."""
    return status == OPEN and now < due_by


def withheld_after(status: str) -> bool:
    """Whether the dispute's amount is held back from the merchant in this status (won gives it back)."""
    return status != WON


def view(row: dict[str, Any]) -> dict[str, Any]:
    evidence = None
    if row.get("evidence_submitted_at") is not None:
        evidence = {"text": row["evidence_text"], "submitted_at": ts(row["evidence_submitted_at"])}
    return {
        "id": row["id"],
        "object": "dispute",
        "payment_id": row["payment_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "reason": row["reason"],
        "status": row["status"],
        "evidence": evidence,
        "evidence_due_by": ts(row["evidence_due_by"]),
        "created_at": ts(row["created_at"]),
        "updated_at": ts(row["updated_at"]),
    }
