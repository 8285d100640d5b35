"""Customers and saved payment methods as public JSON (API.md §16). Pure; never sees a card number
(the rows it gets hold brand, last4, expiry and fingerprint, nothing of the vault)."""

from __future__ import annotations

from typing import Any

from paygate.domain.views import Row, ts


def customer(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "customer",
        "email": row["email"],
        "name": row["name"],
        "description": row["description"],
        "metadata": row["metadata"],
        "created_at": ts(row["created_at"]),
    }


def deleted_customer(customer_id: str) -> dict[str, Any]:
    return {"id": customer_id, "object": "customer", "deleted": True}


def payment_method(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "payment_method",
        "type": row["type"],
        "card": {
            "brand": row["brand"],
            "last4": row["last4"],
            "exp_month": row["exp_month"],
            "exp_year": row["exp_year"],
            "fingerprint": row["fingerprint"],
        },
        "customer": row["customer_id"],
        "created_at": ts(row["created_at"]),
    }
