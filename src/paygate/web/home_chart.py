"""The home page's 30-day chart (`volume-chart`, API.md §11 v2): SVG drawn on the server (domain/chart.py)
from the last 30 days of the merchant's payments."""

from __future__ import annotations

from datetime import date, timedelta

from markupsafe import Markup

from paygate.domain import chart
from paygate.domain.money import CURRENCY_EXPONENTS
from paygate.services.gateway import utcnow
from paygate.store import payments
from paygate.store.db import Conn


async def home_chart(conn: Conn, merchant_id: str) -> Markup:
    """The `volume-chart` SVG: the currency with the most captured volume over the last 30 days."""
    today = utcnow().date()
    rows = await payments.daily_volume(conn, merchant_id, utcnow() - timedelta(days=30))
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["currency"]] = totals.get(r["currency"], 0) + r["captured"]
    currency = max(totals, key=lambda c: totals[c]) if totals else "USD"
    per_day: dict[date, list[int]] = {}
    for r in rows:
        acc = per_day.setdefault(r["day"], [0, 0, 0])
        if r["currency"] == currency:
            acc[0] += r["captured"]
        acc[1] += r["approved"]  # the approval rate counts every currency's payments
        acc[2] += r["declined"]
    series = chart.days([(d, v[0], v[1], v[2]) for d, v in per_day.items()], today)
    return Markup(chart.svg(series, currency, CURRENCY_EXPONENTS.get(currency, 2)))  # noqa: S704 - our own SVG
