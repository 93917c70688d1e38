"""Server-side SVG bar chart of issuance and expiry by month: no script, no CDN (the centre has no internet).

Returns markup built only from numbers and the month strings the service made; text is escaped anyway.
"""

from __future__ import annotations

from html import escape

from pki.services.stats import MonthCount

WIDTH, HEIGHT, TOP, BOTTOM, LEFT = 760, 240, 20, 40, 36
ISSUED, EXPIRING = "#2f6fb0", "#d08a1e"


def monthly_bars(months: list[MonthCount]) -> str:
    peak = max([1, *(max(m.issued, m.expiring) for m in months)])
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / max(1, len(months))
    bar = max(2.0, slot / 2 - 3)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT + 20}" role="img" '
        f'aria-label="按月签发与到期证书数量" class="chart">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH}" y2="{TOP + plot_h}" stroke="#888"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, m in enumerate(months):
        x = LEFT + i * slot + 2
        for j, (value, color, name) in enumerate(
            ((m.issued, ISSUED, "签发"), (m.expiring, EXPIRING, "到期"))
        ):
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{x + j * (bar + 1):.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{escape(m.month)} {name} {value}</title></rect>'
            )
        if i % 2 == 0:
            parts.append(
                f'<text x="{x + bar:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle" '
                f'font-size="10">{escape(m.month)}</text>'
            )
    legend_y = HEIGHT + 8
    parts.append(f'<rect x="{LEFT}" y="{legend_y}" width="10" height="10" fill="{ISSUED}"/>')
    parts.append(f'<text x="{LEFT + 14}" y="{legend_y + 9}" font-size="11">签发</text>')
    parts.append(f'<rect x="{LEFT + 60}" y="{legend_y}" width="10" height="10" fill="{EXPIRING}"/>')
    parts.append(f'<text x="{LEFT + 74}" y="{legend_y + 9}" font-size="11">到期</text>')
    parts.append("</svg>")
    return "".join(parts)
