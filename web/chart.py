"""A line chart of delivered and read messages over time, drawn on the server as SVG.

No chart library and nothing from a CDN: a campaign's series has at most about sixty
points (shop.campaign_stats.series), which a polyline per line draws exactly. Every
text in the SVG is a number or a fixed English word, escaped anyway.
"""
import html
from typing import List, Sequence, Tuple

from shop.campaign_stats import Point

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 32
LINES = (("delivered", "#00a884"), ("read", "#53bdeb"))


def _nice_max(value: int) -> int:
    """The axis top: 4 times 1, 2 or 5 times a power of ten, at least the value, so
    that the four grid steps are whole numbers."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if 4 * top * step >= value:
                return 4 * top * step
        top *= 10


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{seconds / 86400:.1f} d".replace(".0 d", " d")


def svg(points: Sequence[Point], width: int = WIDTH, height: int = HEIGHT) -> str:
    """The chart; an empty frame with a note when nothing was sent yet."""
    inner_w, inner_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    parts: List[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="Delivered and read over time" data-testid="chart-svg" font-family="system-ui, sans-serif" font-size="11">',
        f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="#fff" stroke="#e9edef"/>',
    ]
    if len(points) < 2:
        parts.append(f'<text x="{LEFT + inner_w / 2}" y="{TOP + inner_h / 2}" text-anchor="middle" fill="#667781">'
                     "Nothing delivered yet</text></svg>")
        return "".join(parts)
    start, end = points[0].at, points[-1].at
    span = max(end - start, 1.0)
    top = _nice_max(max(max(p.delivered for p in points), 1))

    def xy(at: float, value: int) -> Tuple[float, float]:
        return LEFT + (at - start) / span * inner_w, TOP + inner_h - value / top * inner_h

    for i in range(5):  # horizontal grid with counts
        value = top * i / 4
        y = TOP + inner_h - inner_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + inner_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#f0f2f5"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#667781">{int(value)}</text>')
    for i in range(5):  # time since the first send
        x = LEFT + inner_w * i / 4
        label = "start" if i == 0 else "+" + _duration(span * i / 4)
        parts.append(f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" fill="#667781">{html.escape(label)}</text>')
    for name, colour in LINES:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(p.at, getattr(p, name)) for p in points))
        parts.append(f'<polyline data-series="{name}" fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>')
    last = points[-1]
    for i, (name, colour) in enumerate(LINES):  # legend with the latest values
        x = LEFT + 10 + i * 150
        parts.append(f'<rect x="{x}" y="{TOP + 8}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{TOP + 17}" fill="#111b21">{name} {getattr(last, name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
