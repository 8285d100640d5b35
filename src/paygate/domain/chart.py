"""The dashboard's 30-day chart (API.md §11 v2 `volume-chart`): captured volume per day as bars and the
approval rate per day as a line, drawn as SVG on the server — no script, no CDN, nothing but numbers
and dates of our own in it (so nothing to escape but what we escape anyway). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 44, 16, 28


@dataclass(frozen=True)
class Day:
    day: date
    captured: int  # minor units of the chart's currency
    approved: int
    declined: int

    @property
    def rate(self) -> float | None:
        decided = self.approved + self.declined
        return self.approved / decided if decided else None


def days(rows: list[tuple[date, int, int, int]], today: date, span: int = 30) -> list[Day]:
    """One Day per calendar day of the last `span` days (today included), zeros where nothing happened."""
    by_day = {d: (c, a, f) for d, c, a, f in rows}
    out = []
    for i in range(span - 1, -1, -1):
        d = today - timedelta(days=i)
        c, a, f = by_day.get(d, (0, 0, 0))
        out.append(Day(d, int(c), int(a), int(f)))
    return out


def _label(minor: int, exponent: int) -> str:
    major = minor / 10**exponent
    return f"{major / 1000:.1f}k" if major >= 1000 else f"{major:.0f}"


def svg(series: list[Day], currency: str, exponent: int = 2) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max((d.captured for d in series), default=0) or 1
    step = plot_w / max(len(series), 1)
    cur = escape(currency)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'class="volume-chart-svg" data-test-id="volume-chart-svg" aria-labelledby="volume-chart-title">',
             f'<title id="volume-chart-title">Captured volume per day ({cur}) and approval rate, last '
             f'{len(series)} days</title>',
             f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
             f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{_label(top, exponent)}</text>',
             f'<text class="tick" x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
             f'<text class="tick rate-tick" x="{LEFT + plot_w + 6}" y="{TOP + 4}">100%</text>',
             f'<text class="tick rate-tick" x="{LEFT + plot_w + 6}" y="{TOP + plot_h}">0%</text>']
    points = []
    for i, d in enumerate(series):
        x = LEFT + i * step
        h = plot_h * d.captured / top
        label = f"{d.day.isoformat()}: {_label(d.captured, exponent)} {cur} captured"
        if d.rate is not None:
            label += f", {d.rate * 100:.0f}% approved"
        parts.append(f'<rect class="bar" data-test-id="chart-bar" data-day="{d.day.isoformat()}" '
                     f'data-captured="{d.captured}" x="{x + step * 0.15:.1f}" y="{TOP + plot_h - h:.1f}" '
                     f'width="{step * 0.7:.1f}" height="{h:.1f}"><title>{label}</title></rect>')
        if d.rate is not None:
            points.append((x + step / 2, TOP + plot_h * (1 - d.rate), d))
        if (i % 7 == 0 and len(series) - 1 - i >= 4) or i == len(series) - 1:
            parts.append(f'<text class="tick" x="{x + step / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                         f'{d.day.strftime("%m-%d")}</text>')
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
        parts.append(f'<polyline class="rate-line" data-test-id="chart-rate-line" points="{path}"/>')
    for x, y, d in points:
        assert d.rate is not None
        parts.append(f'<circle class="rate-point" data-test-id="chart-rate-point" data-day="{d.day.isoformat()}" '
                     f'data-rate="{d.rate:.4f}" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{d.day.isoformat()}: '
                     f'{d.rate * 100:.0f}% approved</title></circle>')
    parts.append("</svg>")
    return "".join(parts)
