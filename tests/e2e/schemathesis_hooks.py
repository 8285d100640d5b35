"""Schemathesis hooks for tests/e2e/test_schemathesis.py (loaded with SCHEMATHESIS_HOOKS).

JSON Schema cannot say "Luhn-valid", so nearly every generated card payment is refused as
`invalid_number`, no payment exists, and the stateful links (create a payment, then capture, void,
refund or read it) have nothing to follow. For cases generated as *valid* (never for negative ones,
which must stay invalid), a POST /v1/payments pays with a real test card or UPI address of the bank
simulator, for an amount and currency of its own when none was generated, and without a random order
id (which would be a 404). Everything else the fuzzer generated is kept.
"""

from __future__ import annotations

import random
from typing import Any

import schemathesis

CARDS = ["4111111111111111", "4242 4242 4242 4242", "5555555555554444", "4000000000000002"]
VPAS = ["success@upi", "failure@upi"]


def _is_negative(case: schemathesis.Case) -> bool:
    meta = case.meta
    return meta is not None and bool(meta.generation.mode.is_negative)


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    op = case.operation
    if op.method.upper() != "POST" or op.path != "/v1/payments" or _is_negative(case):
        return case
    body: Any = case.body
    if not isinstance(body, dict):
        return case
    rng = random.Random(repr(body))  # deterministic per generated body: runs reproduce from their seed
    body.pop("order_id", None)
    if body.get("amount") is None:
        body["amount"] = rng.randint(100, 100_000)
    if body.get("currency") is None:
        body["currency"] = "USD"
    if rng.random() < 0.75:
        body["payment_method"] = {"type": "card", "card": {"number": rng.choice(CARDS), "exp_month": 12,
                                                           "exp_year": 2031, "cvc": "123"}}
    else:
        body["payment_method"] = {"type": "upi", "upi": {"vpa": rng.choice(VPAS)}}
    case.body = body
    return case
