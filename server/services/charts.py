"""Charts drawn on the server as inline SVG: no script, no outside asset, readable without
JavaScript and printable. Pure functions: data in, markup out.

Every text is escaped here (the result is Markup, safe to put in a template as it is); each
chart has a <title> and <desc> named by aria-labelledby, and each bar or point its own <title>
that a pointer or a screen reader shows ("柳河村 · 12 plays").
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

FONT = ('system-ui, "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", '
        '"WenQuanYi Micro Hei", sans-serif')
INK, MUTED, GRID = "#1f2329", "#6b7280", "#e3e6ea"
RED = "#b71c1c"
AXIS = 13  # px: axis and value text, read beside 14 px body text

Format = Callable[[float], str]


def _plain(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def text_width(text: str, size: float) -> float:
    """Roughly how wide `text` draws at font `size`: CJK and other wide characters one em,
    the rest a little over half."""
    return sum(size if unicodedata.east_asian_width(ch) in "WF" else size * 0.58 for ch in text)


def fit(text: str, size: float, room: float) -> str:
    """`text`, cut with "…" so it fits `room` pixels at font `size`."""
    if text_width(text, size) <= room:
        return text
    out = ""
    for ch in text:
        if text_width(out + ch + "…", size) > room:
            break
        out += ch
    return out + "…"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 3, 4, 5, 6 or 8 × 10^k at or above `value` (1 for nothing): the
    axis top, whose quarters are round numbers too."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 3, 4, 5, 6, 8, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _ids(kind: str, title: str, data: Sequence[tuple[str, float]]) -> str:
    seed = f"{kind}|{title}|" + "|".join(f"{k}={v}" for k, v in data)
    return "chart-" + hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()[:10]


def _open(chart_id: str, width: int, height: int, title: str, desc: str, kind: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" '
        f'viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'style="max-width:{width}px;height:auto;font-family:{escape(FONT)}">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
    ]


def _empty(parts: list[str], width: int, height: int, empty: str) -> Markup:
    parts.append(
        f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" font-size="14" '
        f'fill="{MUTED}" class="empty">{escape(empty)}</text></svg>'
    )
    return Markup("".join(parts))


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    desc: str = "",
    value_format: Format = _plain,
    width: int = 640,
    row_height: int = 26,
    label_width: int = 210,
    color: str = RED,
    empty: str = "—",
) -> Markup:
    """Horizontal bars, one per (label, value), in the given order; labels on the left (cut to
    fit, the full label in each bar's <title>), values at the bars' ends."""
    items = list(items)
    chart_id = _ids("bar", title, items)
    pad, value_room = 8, 90
    height = max(len(items), 1) * row_height + 2 * pad
    parts = _open(chart_id, width, height, title, desc, "bar")
    if not items:
        return _empty(parts, width, height, empty)
    top = max((v for _l, v in items), default=0) or 1
    room = width - label_width - value_room - pad
    for i, (label, value) in enumerate(items):
        y = pad + i * row_height
        length = max(0.0, room * float(value) / top)
        shown = value_format(value)
        parts.append(
            f'<g class="bar-row"><title>{escape(label)}: {escape(shown)}</title>'
            f'<text x="{label_width - 8}" y="{y + row_height * 0.68:.1f}" text-anchor="end" '
            f'font-size="13" fill="{INK}">{escape(fit(label, 13, label_width - 12))}</text>'
            f'<rect class="bar" x="{label_width}" y="{y + 4}" width="{length:.1f}" '
            f'height="{row_height - 8}" rx="3" fill="{escape(color)}"/>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + row_height * 0.68:.1f}" '
            f'font-size="{AXIS}" fill="{MUTED}">{escape(shown)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    desc: str = "",
    value_format: Format = _plain,
    width: int = 720,
    height: int = 240,
    color: str = RED,
    max_labels: int = 8,
    empty: str = "—",
) -> Markup:
    """A line over (label, value) points in order (days, usually), with the area below it, a
    y axis from 0 to a round number, and at most `max_labels` labels along x."""
    points = list(points)
    chart_id = _ids("line", title, points)
    parts = _open(chart_id, width, height, title, desc, "line")
    if not points:
        return _empty(parts, width, height, empty)
    ceiling = nice_ceiling(max(float(v) for _l, v in points))
    # Room on the left for the widest y label ("1,318 小时"), none of it cut off.
    widest = max(text_width(value_format(ceiling * k / 4), AXIS) for k in range(5))
    left, right, top_pad, bottom = max(56, math.ceil(widest) + 12), 16, 14, 32
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    step_x = plot_w / max(len(points) - 1, 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        x = left + (i * step_x if len(points) > 1 else plot_w / 2)
        return x, top_pad + plot_h * (1 - float(value) / ceiling)

    for k in range(5):  # grid lines and y labels at 0, ¼, ½, ¾ and the top
        value = ceiling * k / 4
        y = top_pad + plot_h * (1 - k / 4)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="{AXIS}" '
            f'fill="{MUTED}">{escape(value_format(value))}</text>'
        )
    coords = [xy(i, v) for i, (_l, v) in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    base = top_pad + plot_h
    area = f"{coords[0][0]:.1f},{base:.1f} {line} {coords[-1][0]:.1f},{base:.1f}"
    parts.append(f'<polygon class="area" points="{area}" fill="{escape(color)}" '
                 f'fill-opacity="0.08"/>')
    parts.append(f'<polyline class="line" points="{line}" fill="none" stroke="{escape(color)}" '
                 f'stroke-width="2" stroke-linejoin="round"/>')
    every = max(1, math.ceil(len(points) / max_labels))
    for i, ((label, value), (x, y)) in enumerate(zip(points, coords, strict=True)):
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{escape(color)}">'
            f"<title>{escape(label)}: {escape(value_format(value))}</title></circle>"
        )
        if i % every == 0:
            # The first and last labels lean inwards: never cut at the chart's edges.
            half = text_width(label, AXIS) / 2
            anchor = ("start" if x - half < 0 else "end" if x + half > width else "middle")
            parts.append(
                f'<text class="x-label" x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}" '
                f'font-size="{AXIS}" fill="{MUTED}">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
