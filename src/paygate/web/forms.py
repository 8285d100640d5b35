"""HTML form handling for the dashboard: urlencoded bodies, amounts typed by people, and idempotent actions.

Every action form carries a random `idem` token, used as the Idempotency-Key of the use case it runs, so
a double click or a browser re-POST captures or refunds once (the second submission replays the first).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from fastapi import Request

from paygate.domain.money import CURRENCY_EXPONENTS, MAX_AMOUNT
from paygate.errors import InvalidRequest
from paygate.http.idempotency import Restore, Run, execute
from paygate.services.gateway import Gateway, Outcome, Principal

_IDEM = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the last value of a repeated field wins)."""
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def parse_amount(text: str, currency: str) -> int | None:
    """ "12.50" USD → 1250. Empty means "all" (None); anything malformed is a 400 with param amount."""
    text = text.strip().replace(",", "")
    if not text:
        return None
    exp = CURRENCY_EXPONENTS.get(currency, 2)
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    places = value.as_tuple().exponent
    if not isinstance(places, int) or value <= 0 or -places > exp:
        raise InvalidRequest("parameter_invalid", f"Enter a positive amount with at most {exp} decimals.",
                             param="amount")
    minor = int(value.scaleb(exp))
    if minor > MAX_AMOUNT:
        raise InvalidRequest("amount_too_large", "The amount is too large.", param="amount")
    return minor


async def run_idempotent(
    gw: Gateway, who: Principal, path: str, form: dict[str, str], run: Run, restore: Restore | None = None,
) -> Outcome:
    """A form's action under paygate.http's idempotency: keyed by the form's `idem` token (in the dashboard's
    own namespace), the request named by its fields without the per-page tokens."""
    token = form.get("idem", "")
    fields = {k: v for k, v in form.items() if k not in ("csrf_token", "idem")}
    outcome, _ = await execute(gw, who, namespace="dashboard", key=token if _IDEM.match(token) else None,
                               method="POST", path=path, body=fields, run=run, restore=restore)
    return outcome
