"""Rows → the public JSON objects of API.md. Pure, so events, replays and responses agree byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from paygate.domain.authentication import next_action
from paygate.domain.payments import Status, amount_capturable

Row = dict[str, Any]


def ts(value: datetime | None) -> str | None:
    """RFC 3339, UTC, microseconds: 2026-11-21T10:30:01.123456Z."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def payment(row: Row) -> dict[str, Any]:
    status = Status(row["status"])
    return {
        "id": row["id"],
        "object": "payment",
        "status": status.value,
        "amount": row["amount"],
        "currency": row["currency"],
        "amount_capturable": amount_capturable(status, row["amount"]),
        "amount_captured": row["amount_captured"],
        "amount_refunded": row["amount_refunded"],
        "amount_disputed": row.get("amount_disputed", 0),  # §17: held back by open and lost disputes
        "capture_method": row["capture_method"],
        "payment_method": row["payment_method"],
        "order_id": row["order_id"],
        "customer_id": row["customer_id"],
        "customer": row.get("customer"),  # the cus_ object (§16); customer_id is the merchant's own reference
        "description": row["description"],
        "metadata": row["metadata"],
        "failure_code": row["failure_code"],
        "failure_message": row["failure_message"],
        "authorization_expires_at": ts(row["authorization_expires_at"]) if status is Status.AUTHORIZED else None,
        "created_at": ts(row["created_at"]),
        "updated_at": ts(row["updated_at"]),
        "status_history": row["status_history"],
        "receipt_email": row.get("receipt_email"),
        # where the authorization is decided or held (§14); a failed payment was never held by anyone
        "acquirer": None if status is Status.FAILED else row.get("acquirer"),
        # every acquirer tried, oldest first, and the bank's own ids of what succeeded there (§14)
        "acquirer_attempts": row.get("acquirer_attempts") or [],
        "acquirer_references": {**NO_REFERENCES, **(row.get("acquirer_references") or {})},
        "next_action": next_action(status, row.get("challenge_url"), row.get("return_url")),  # §15
    }


NO_REFERENCES: dict[str, str | None] = {"authorization": None, "capture": None, "void": None}


def refund(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "refund",
        "payment_id": row["payment_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "status": row["status"],
        "reason": row["reason"],
        "failure_code": row["failure_code"],
        "metadata": row["metadata"],
        "acquirer_reference": row.get("acquirer_reference"),  # the bank's own id of it (§14)
        "created_at": ts(row["created_at"]),
        "updated_at": ts(row["updated_at"]),
    }


def order(row: Row, public_url: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "order",
        "amount": row["amount"],
        "currency": row["currency"],
        "receipt": row["receipt"],
        "notes": row["notes"],
        "status": row["status"],
        "amount_paid": row["amount_paid"],
        "checkout_url": f"{public_url.rstrip('/')}/checkout/{row['id']}",
        "created_at": ts(row["created_at"]),
        "return_url": row.get("return_url"),  # §15
    }


def order_public(row: Row) -> dict[str, Any]:
    """What a publishable key may see of an order."""
    return {"id": row["id"], "object": "order", "amount": row["amount"], "currency": row["currency"],
            "status": row["status"]}


def event(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "event",
        "type": row["type"],
        "created_at": ts(row["created_at"]),
        "data": {"object": row["data"]},
    }


def ledger_entry(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "ledger_entry",
        "journal_id": row["journal_id"],
        "account": row["account"],
        "direction": row["direction"],
        "amount": row["amount"],
        "currency": row["currency"],
        "payment_id": row["payment_id"],
        "refund_id": row["refund_id"],
        "created_at": ts(row["created_at"]),
    }


def listing(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more}


def webhook_endpoint(row: Row, *, secret: str | None = None) -> dict[str, Any]:
    """An endpoint; `secret` (already derived by the caller, who holds the key) only when it is shown."""
    obj: dict[str, Any] = {
        "id": row["id"],
        "object": "webhook_endpoint",
        "url": row["url"],
        "enabled_events": list(row["enabled_events"]),
        "description": row["description"],
        "disabled": row["disabled"],
        "legacy_signature": bool(row.get("legacy_signature", False)),
        "created_at": ts(row["created_at"]),
        "updated_at": ts(row["updated_at"]),
    }
    if secret is not None:
        obj["secret"] = secret
    return obj


def webhook_delivery(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "webhook_delivery",
        "endpoint_id": row["endpoint_id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": ts(row["next_attempt_at"]),
        "created_at": ts(row["created_at"]),
    }
