"""Pictures drawn on the server as inline SVG: no scripts, no files from elsewhere.

People would rather look than read how a problem evolves (occurrences per day) and which
kernels it hits (dumps per kernel release). Every label is escaped: a release string
comes from a dump.
"""

from __future__ import annotations

import datetime as dt
from html import escape

from markupsafe import Markup

__all__ = ["daily_bars", "kernel_bars", "sparkline"]

_BAR = "#4a6fa5"
#: The fewest days a chart spans, so one busy day does not fill the whole picture.
_MIN_DAYS = 14


def _days(per_day: list[tuple[str, int]], span: int, today: dt.date | None = None
          ) -> list[tuple[str, int]]:
    """``per_day`` with the missing days filled in, up to ``today`` (when later), over
    at least two weeks and at most the last ``span`` days."""
    counts: dict[dt.date, int] = {}
    for day, n in per_day:
        try:
            date = dt.date.fromisoformat(str(day)[:10])
        except ValueError:
            continue
        counts[date] = counts.get(date, 0) + int(n)
    if not counts:
        return []
    last = max(max(counts), today or max(counts))
    first = max(min(min(counts), last - dt.timedelta(days=_MIN_DAYS - 1)),
                last - dt.timedelta(days=span - 1))
    out = []
    day = first
    while day <= last:
        out.append((day.isoformat(), counts.get(day, 0)))
        day += dt.timedelta(days=1)
    return out


def daily_bars(per_day: list[tuple[str, int]], *, span: int = 60,
               today: dt.date | None = None) -> Markup:
    """Occurrences per day up to ``today`` (default: the UTC date) as a bar chart;
    missing days are zero bars."""
    days = _days(per_day, span, today or dt.datetime.now(dt.timezone.utc).date())
    if not days:
        return Markup("<p>No dated occurrences.</p>")
    top = max(n for _, n in days) or 1
    width, height, pad = 640, 120, 24
    step = width / len(days)
    bars = []
    for i, (day, n) in enumerate(days):
        h = (height - pad) * n / top
        x = i * step
        bars.append(f'<rect x="{x + 1:.1f}" y="{height - pad - h:.1f}" '
                    f'width="{max(step - 2, 1):.1f}" height="{h:.1f}" fill="{_BAR}">'
                    f"<title>{escape(day)}: {n}</title></rect>")
    labels = (f'<text x="0" y="{height - 6}">{escape(days[0][0])}</text>'
              f'<text x="{width}" y="{height - 6}" text-anchor="end">{escape(days[-1][0])}'
              f'</text><text x="0" y="12">max {top}/day</text>')
    return Markup(f'<svg class="chart" role="img" aria-label="occurrences per day" '
                  f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
                  f'{"".join(bars)}{labels}</svg>')


def kernel_bars(counts: dict[str, int]) -> Markup:
    """Dumps per kernel release as horizontal bars, most affected first."""
    if not counts:
        return Markup("<p>No kernel known.</p>")
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    top = max(n for _, n in items) or 1
    row, label, width = 22, 260, 300
    bars = []
    for i, (release, n) in enumerate(items):
        w = max(2, int(width * n / top))
        y = i * row
        bars.append(f'<text x="0" y="{y + 14}">{escape(release[:40])}</text>'
                    f'<rect x="{label}" y="{y + 3}" width="{w}" height="{row - 6}" '
                    f'fill="{_BAR}"/><text x="{label + w + 6}" y="{y + 14}">{n}</text>')
    height = row * len(items)
    return Markup(f'<svg class="chart" role="img" aria-label="dumps per kernel" '
                  f'viewBox="0 0 {label + width + 60} {height}" width="{label + width + 60}" '
                  f'height="{height}">{"".join(bars)}</svg>')


def sparkline(per_day: list[tuple[str, int]], *, span: int = 30) -> Markup:
    """A small occurrences-per-day strip for a table cell, up to today (UTC)."""
    days = _days(per_day, span, dt.datetime.now(dt.timezone.utc).date())
    if not days:
        return Markup("")
    top = max(n for _, n in days) or 1
    width, height = 90, 18
    step = width / len(days)
    bars = "".join(f'<rect x="{i * step:.1f}" y="{height - height * n / top:.1f}" '
                   f'width="{max(step - 1, 1):.1f}" height="{height * n / top:.1f}" '
                   f'fill="{_BAR}"/>' for i, (_, n) in enumerate(days))
    return Markup(f'<svg class="spark" role="img" aria-label="occurrences per day" '
                  f'width="{width}" height="{height}">{bars}</svg>')
