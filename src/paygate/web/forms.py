"""HTML form handling for the dashboard: urlencoded bodies, amounts typed by people, and idempotent actions.

Every action form carries a random `idem` token, used as the Idempotency-Key of the use case it runs, so
a double click or a browser re-POST captures or refunds once (the second submission replays the first).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from fastapi import Request

from paygate.domain import text
from paygate.domain.money import CURRENCY_EXPONENTS, MAX_AMOUNT
from paygate.errors import InvalidRequest
from paygate.http.idempotency import Restore, Run, execute
from paygate.services.gateway import Gateway, Outcome, Principal

_IDEM = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


# The fields people type sentences (or, for the routing editor, a JSON document) into: like the API's free
# text, they may keep tab, LF and CR — what the JSON then holds is checked by the API's own rules.
FREE_TEXT_FIELDS = frozenset({"reason", "description", "evidence", "routing"})

# A plain decimal, in ASCII digits (`\d` would take "٤" too): no sign, exponent, NaN or Infinity. The
# length bound keeps it cheap; Decimal("1e999990") once took 32 s of CPU on the event loop (audit 7).
_AMOUNT = re.compile(r"(?P<whole>[0-9]{1,15})(?:\.(?P<frac>[0-9]{1,3}))?")


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the last value of a repeated field wins).

    A field holding a control character (free text: other than tab, LF, CR) is a 400 naming it
    (API.md §19), before anything reads the form."""
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        return {}
    for name, value in pairs:
        why = text.problem(name) or text.problem(value, free_text=name in FREE_TEXT_FIELDS)
        if why is not None:
            param = name if text.acceptable(name) else None
            raise InvalidRequest("parameter_invalid", f"{param or 'A field name'} {why}.", param=param)
    return dict(pairs)


def parse_amount(typed: str, currency: str) -> int | None:
    """ "12.50" USD → 1250. Empty means "all" (None); anything but a plain positive decimal with at most
    the currency's decimals (JPY: none) is a 400 with param amount. Commas (thousands) are ignored."""
    typed = typed.strip().replace(",", "")
    if not typed:
        return None
    exp = CURRENCY_EXPONENTS.get(currency, 2)
    match = _AMOUNT.fullmatch(typed)
    frac = (match.group("frac") or "") if match else ""
    if match is None or len(frac) > exp:
        raise InvalidRequest("parameter_invalid", f"Enter a positive amount with at most {exp} decimals.",
                             param="amount")
    minor: int = int(match.group("whole")) * 10**exp + int(frac.ljust(exp, "0") or "0")
    if minor <= 0:
        raise InvalidRequest("parameter_invalid", f"Enter a positive amount with at most {exp} decimals.",
                             param="amount")
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
