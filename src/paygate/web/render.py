"""HTML rendering for the browser surfaces: one Jinja2 environment, money and time formatting, and the
security headers each kind of page needs (the dashboard may never be framed; the checkout may be, by
the merchant page that opened it through the SDK's modal)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from paygate.domain.money import CURRENCY_EXPONENTS

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "INR": "₹", "JPY": "¥"}

# No inline script or style anywhere: everything comes from /static or /sdk, so a CSP of 'self' holds.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors {ancestors}")


def money(amount: int, currency: str) -> str:
    """5000, "USD" → "$50.00 USD"; 5000, "JPY" → "¥5,000 JPY". Integers only, no float ever."""
    exp = CURRENCY_EXPONENTS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(int(amount)), 10**exp)
    number = f"{major:,}" + (f".{minor:0{exp}d}" if exp else "")
    return f"{sign}{SYMBOLS.get(currency, '')}{number} {currency}"


def when(value: datetime | str | None) -> str:
    """A timestamp for people: 2026-11-21 10:30:01 UTC."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def method_label(pm: dict[str, Any] | None) -> str:
    """visa •••• 1111, or the UPI address: what the merchant needs to recognise a payment."""
    if not pm:
        return "—"
    if pm.get("type") == "card":
        card = pm.get("card") or {}
        return f"{card.get('brand', 'card')} •••• {card.get('last4', '')}"
    return str((pm.get("upi") or {}).get("vpa", "upi"))


_env = Environment(
    loader=PackageLoader("paygate.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = when
_env.filters["method_label"] = method_label
_env.globals["money"] = money


def frame_ancestors(frame: Literal["never", "checkout"], parent_origin: str = "") -> str:
    """Who may frame a page. The dashboard: nobody. The checkout: paygate itself, and the one origin the
    SDK announced as its embedding page (`?origin=`, paygate.js sends `location.origin`; checkout.py
    validates it as a bare scheme://host[:port], so nothing else can enter the header).

    That origin comes from the URL, so it narrows rather than authenticates: a checkout link opened
    without it (as sent by e-mail, or a bare <iframe>) cannot be framed by any other site, and a page
    opened for one shop cannot be framed by another; but whoever holds an order id may still build a
    URL naming their own origin, as they could open the link itself. An allow-list of each merchant's
    own sites would be the stronger check; the contract has no place for one yet. Every ancestor must
    match, so a shop page that is itself framed elsewhere cannot embed the checkout."""
    if frame == "never":
        return "'none'"
    return f"'self' {parent_origin}" if parent_origin else "'self'"


def html(
    template: str, *, status: int = 200, frame: Literal["never", "checkout"] = "never", parent_origin: str = "",
    headers: dict[str, str] | None = None, **context: Any,
) -> HTMLResponse:
    """Render a template; pages are never cached (they show live payment state and CSRF tokens)."""
    body = _env.get_template(template).render(parent_origin=parent_origin, **context)
    out = {
        "Content-Security-Policy": _CSP.format(ancestors=frame_ancestors(frame, parent_origin)),
        "Cache-Control": "no-store",
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    }
    if frame == "never":
        out["X-Frame-Options"] = "DENY"
    out.update(headers or {})
    return HTMLResponse(body, status_code=status, headers=out)
