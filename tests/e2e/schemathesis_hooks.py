"""Schemathesis hooks for tests/e2e/test_schemathesis.py (loaded with SCHEMATHESIS_HOOKS).

JSON Schema cannot say "Luhn-valid" (nor which test cards the bank approves), so nearly every
generated card payment is refused as `invalid_number`, no payment exists, and the stateful links
(create a payment, then capture, void, refund or read it) have nothing to follow. For cases generated
as *valid* (never for negative ones, which must stay invalid), a POST /v1/payments pays with a card
the bank simulator approves (sometimes one it declines) or a UPI test address, for an amount and
currency of its own when none was generated, and without a random order id (which would be a 404;
an order id from a link is kept). Everything else the fuzzer generated is kept.
"""

from __future__ import annotations

import random
from typing import Any

import schemathesis

from tests.chaos.drill import DECLINING, fresh_card

# the operation type parameter is the tool's own business here
Case = schemathesis.Case[Any]
VPAS = ["success@upi", "success@upi", "failure@upi"]


def _is_negative(case: Case) -> bool:
    meta = case.meta
    return meta is not None and bool(meta.generation.mode.is_negative)


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: Case) -> Case:
    op = case.operation
    if op.method.upper() != "POST" or op.path != "/v1/payments" or _is_negative(case):
        return case
    body: Any = case.body
    if not isinstance(body, dict):
        return case
    rng = random.Random(repr(body))  # deterministic per generated body: runs reproduce from their seed
    if "order_id" in body and not str(body["order_id"]).startswith("ord_"):
        del body["order_id"]  # a random one is a 404; one from a link (POST /v1/orders) is kept
    if isinstance(body.get("amount"), float):  # 10469.0 is a JSON Schema integer, not a paygate amount
        body["amount"] = int(body["amount"])
    if body.get("amount") is None and "order_id" not in body:
        body["amount"] = rng.randint(100, 100_000)
    if body.get("currency") is None and "order_id" not in body:
        body["currency"] = "USD"
    if rng.random() < 0.75:
        # mostly approved (a fresh card has the bank's default balance), sometimes a decline (402)
        number, month, year, cvc = rng.choice(DECLINING) if rng.random() < 0.2 else fresh_card(rng)
        body["payment_method"] = {"type": "card", "card": {"number": number, "exp_month": month, "exp_year": year,
                                                           "cvc": cvc}}
    else:
        body["payment_method"] = {"type": "upi", "upi": {"vpa": rng.choice(VPAS)}}
    case.body = body
    return case
