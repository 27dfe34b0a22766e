"""A small hand-written SVG line chart (no plotting library): the outbox backlog over time."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT, MARGIN = 480, 200, 40
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def backlog_svg(series: list[list[tuple[float, int]]], load_ends: list[float],
                title: str) -> str:
    """One line per series of (seconds, pending) samples; a dashed mark where load stopped."""
    max_x = max([t for samples in series for t, _ in samples] + load_ends + [1.0])
    max_y = max([n for samples in series for _, n in samples] + [1])

    def x(t: float) -> float:
        return MARGIN + t / max_x * (WIDTH - 2 * MARGIN)

    def y(n: float) -> float:
        return HEIGHT - MARGIN - n / max_y * (HEIGHT - 2 * MARGIN)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{MARGIN}" y="16">{escape(title)}</text>',
        f'<line x1="{MARGIN}" y1="{y(0)}" x2="{WIDTH - MARGIN}" y2="{y(0)}" stroke="#000"/>',
        f'<line x1="{MARGIN}" y1="{y(0)}" x2="{MARGIN}" y2="{y(max_y)}" stroke="#000"/>',
        f'<text x="{MARGIN - 4}" y="{y(max_y) + 4}" text-anchor="end">{max_y}</text>',
        f'<text x="{MARGIN - 4}" y="{y(0) + 4}" text-anchor="end">0</text>',
        f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - 12}" text-anchor="end">'
        f'{max_x:.1f} s</text>',
        f'<text x="{MARGIN}" y="{HEIGHT - 12}">0 s (turn starts)</text>',
    ]
    for n, end in enumerate(load_ends):
        parts.append(f'<line x1="{x(end):.1f}" y1="{y(0)}" x2="{x(end):.1f}" '
                     f'y2="{y(max_y)}" stroke="{COLOURS[n % len(COLOURS)]}" '
                     f'stroke-dasharray="3,3"/>')
    for n, samples in enumerate(series):
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in samples)
        parts.append(f'<polyline points="{points}" fill="none" '
                     f'stroke="{COLOURS[n % len(COLOURS)]}"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
