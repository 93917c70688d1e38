"""Server-side SVG bar chart of issuance and expiry by month: no script, no CDN (the centre has no internet).

Returns markup built only from numbers and the month strings the service made; text is escaped anyway. The
count axis has round ticks (0, 2, 4, 6 …) with grid lines, never just 0 and the peak; the plot keeps a
margin on every side, so no bar touches the frame.
"""

from __future__ import annotations

import math
from html import escape

from pki.services.stats import MonthCount

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 20, 28, 40  # room for tick labels, the axis title and month labels
LEGEND_HEIGHT = 22
ISSUED, EXPIRING = "#2f6fb0", "#d08a1e"
MIN_INTERVALS = 4  # a small count still gets a readable scale: 0 1 2 3 4
MAX_INTERVALS = 5


def count_ticks(peak: int) -> list[int]:
    """Round tick values from 0 to at least ``peak``: a step of 1, 2 or 5 × 10ⁿ, at most five intervals,
    and at least four when the counts are small."""
    if peak <= MIN_INTERVALS:
        return list(range(MIN_INTERVALS + 1))
    magnitude = 10 ** math.floor(math.log10(peak / MAX_INTERVALS))
    step = next(m * magnitude for m in (1, 2, 5, 10) if math.ceil(peak / (m * magnitude)) <= MAX_INTERVALS)
    return list(range(0, step * math.ceil(peak / step) + 1, step))


def monthly_bars(months: list[MonthCount]) -> str:
    ticks = count_ticks(max([0, *(max(m.issued, m.expiring) for m in months)]))
    top = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    slot = plot_w / max(1, len(months))
    bar = min(14.0, max(2.0, slot * 0.36))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT + LEGEND_HEIGHT}" role="img" '
        f'aria-label="按月签发与到期证书数量" class="chart">',
        f'<text x="{LEFT - 8}" y="{TOP - 12}" text-anchor="start" font-size="11">证书数（张）</text>',
    ]
    for value in ticks:
        y = base - plot_h * value / top
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
            f'stroke="{"#888" if value == 0 else "#e3e6ea"}"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" class="tick">{value}</text>'
        )
    parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#888"/>')
    for i, m in enumerate(months):
        middle = LEFT + (i + 0.5) * slot
        for j, (value, color, name) in enumerate(
            ((m.issued, ISSUED, "签发"), (m.expiring, EXPIRING, "到期"))
        ):
            h = plot_h * value / top
            x = middle - bar - 0.5 if j == 0 else middle + 0.5
            parts.append(
                f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(m.month)} {name} {value} 张</title></rect>"
            )
        if i % 2 == 0:
            parts.append(
                f'<text x="{middle:.1f}" y="{base + 16}" text-anchor="middle" font-size="10" class="month">'
                f"{escape(m.month)}</text>"
            )
    legend_y = HEIGHT + 4
    parts.append(f'<rect x="{LEFT}" y="{legend_y}" width="10" height="10" fill="{ISSUED}"/>')
    parts.append(f'<text x="{LEFT + 14}" y="{legend_y + 9}" font-size="11">签发</text>')
    parts.append(f'<rect x="{LEFT + 60}" y="{legend_y}" width="10" height="10" fill="{EXPIRING}"/>')
    parts.append(f'<text x="{LEFT + 74}" y="{legend_y + 9}" font-size="11">到期</text>')
    parts.append("</svg>")
    return "".join(parts)
