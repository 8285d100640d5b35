"""The cardholder's challenge page (API.md §15, §12 v2): the bank's own browser surface.

`GET /challenge/{id}` shows the form (`challenge-form`, `otp-input`, `otp-submit`, `challenge-cancel`); it
POSTs `otp` form-encoded to the same URL, the cancel button `cancel=1`. The code `123456` passes, anything
else fails, cancelling fails. The answer is a 303 to the paygate URL paygate gave with the authentication
(paygate then asks the bank what happened: the browser carries no result). The result also goes to paygate
as a signed callback, retried until a 2xx. A challenge is answered once: a later submission gets the same 303
and changes nothing.

Every value on the page is escaped; the page carries no secret (the code is checked here, server side) and
runs no script. It may be framed by any http/https page (`frame-ancestors`): the SDK's modal shows the
challenge inside the merchant's page (docs/authentication.md); `form-action` likewise lets its answer
redirect to paygate on any origin.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response

from paygate.simbank import cards, store
from paygate.simbank.faults import Faults

_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; "
                               "frame-ancestors 'self' http: https:; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_FORM_BYTES = 4096


# The bank's own table, not paygate.domain.money's: the simulator imports nothing of the gateway (decision 0014;
# tests/unit/test_package_boundaries.py), so that it stays a separate bank that may disagree with it.
_EXPONENTS = {**dict.fromkeys(("JPY", "KRW", "VND", "CLP", "ISK", "UGX"), 0),
              **dict.fromkeys(("KWD", "BHD", "JOD", "OMR"), 3)}  # every other currency: 2


def _money(amount: int, currency: str) -> str:
    exponent = _EXPONENTS.get(currency, 2)
    if exponent == 0:
        return f"{amount:,} {currency}"
    major, minor = divmod(amount, 10**exponent)
    return f"{major:,}.{minor:0{exponent}d} {currency}"


def _page(status: int, title: str, body: str) -> Response:
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · simulated bank</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}}
input,button{{font-size:1.1rem;padding:.5rem;margin:.25rem 0}} .muted{{color:#666;font-size:.9rem}}</style>
</head><body><main>{body}</main></body></html>"""
    return Response(doc, status_code=status, media_type="text/html; charset=utf-8", headers=_HEADERS)


def _form(ch: store.Challenge) -> Response:
    amount = html.escape(_money(ch.amount, ch.currency))
    return _page(200, "Confirm your payment", f"""
<h1>Confirm your payment</h1>
<p>Your bank asks you to confirm a payment of <strong data-test-id="challenge-amount">{amount}</strong>.</p>
<p class="muted">Enter the one-time code sent to your phone.</p>
<form method="post" data-test-id="challenge-form" autocomplete="off">
  <label for="otp">One-time code</label><br>
  <input id="otp" name="otp" inputmode="numeric" maxlength="12" required data-test-id="otp-input">
  <button type="submit" data-test-id="otp-submit">Confirm</button>
</form>
<form method="post">
  <input type="hidden" name="cancel" value="1">
  <button type="submit" data-test-id="challenge-cancel">Cancel payment</button>
</form>""")


def _not_found() -> Response:
    return _page(404, "No such challenge", '<h1 data-test-id="challenge-missing">No such challenge</h1>')


def _back(ch: store.Challenge) -> Response:
    """303 to paygate's return URL (as paygate gave it: only ever redirected to)."""
    return Response(status_code=303, headers={"Location": ch.return_url, **_HEADERS})


def install(app: FastAPI, pool: store.Pool, faults: Faults) -> None:
    @app.get("/challenge/{challenge_id}", include_in_schema=False)
    async def challenge_page(challenge_id: str) -> Response:
        ch = await store.challenge(pool, challenge_id[:64])
        if ch is None:
            return _not_found()
        if ch.status != "pending":
            # answered already: the customer may have come back with the browser's back button
            return _page(200, "Already answered", f"""
<h1 data-test-id="challenge-answered">This payment was already {"confirmed" if ch.status == "succeeded"
                                                                  else "declined"}</h1>
<p><a href="{html.escape(ch.return_url, quote=True)}" data-test-id="challenge-continue">Continue</a></p>""")
        return _form(ch)

    @app.post("/challenge/{challenge_id}", include_in_schema=False)
    async def challenge_answer(request: Request, challenge_id: str) -> Response:
        raw = await request.body()
        if len(raw) > MAX_FORM_BYTES:
            return _page(413, "Too large", "<h1>The form is too large</h1>")
        try:
            form = parse_qs(raw.decode("ascii"), keep_blank_values=True, max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            form = {}
        cancelled = form.get("cancel", [""])[0] == "1"
        passed = not cancelled and form.get("otp", [""])[0].strip() == cards.CHALLENGE_CODE
        ch = await store.answer_challenge(pool, challenge_id[:64], succeeded=passed,
                                          callback_delay_s=faults.callback_delay(), duplicate=faults.duplicate(),
                                          duplicate_delay_s=faults.duplicate_delay())
        if ch is None:
            return _not_found()
        return _back(ch)
