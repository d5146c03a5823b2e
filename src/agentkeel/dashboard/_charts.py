"""Small charts as inline SVG, drawn on the server: nothing to download, no script.

Every text that goes into the SVG (a category, a tool name) is escaped here, since
the result is marked safe for the templates. Colours are presentation attributes,
not ``style``, so the Content-Security-Policy can forbid inline styles.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = (
    "#d1495b",
    "#edae49",
    "#00798c",
    "#30638e",
    "#8e6c8a",
    "#6a994e",
    "#bc4749",
    "#3d5a80",
    "#e07a5f",
    "#81b29a",
    "#f2cc8f",
    "#5f0f40",
    "#9a8c98",
)
WIDTH, HEIGHT, PAD = 640, 180, 28


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _svg(body: str, *, height: int, label: str) -> Markup:
    return Markup(  # noqa: S704 - every value in body was escaped or is a number
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(label)}">{body}</svg>'
    )


def _hour(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%m-%d %H:%M")


def stacked_bars(
    buckets: Sequence[dict[str, int]], *, start: float, bucket_seconds: float, label: str
) -> Markup:
    """One bar per time bucket, stacked by key (failures by category), with a legend."""
    keys = sorted({k for b in buckets for k in b})
    top = max((sum(b.values()) for b in buckets), default=0)
    if not keys or top == 0:
        return _svg(
            f'<text x="{PAD}" y="40" class="empty">nothing in this window</text>',
            height=60,
            label=label,
        )
    plot_h = HEIGHT - 2 * PAD
    bar_w = (WIDTH - 2 * PAD) / len(buckets)
    parts = [
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#999"/>',
        f'<text x="4" y="{PAD}" class="axis">{top}</text>',
    ]
    for i, bucket in enumerate(buckets):
        y = float(HEIGHT - PAD)
        for k_index, key in enumerate(keys):
            n = bucket.get(key, 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            x = PAD + i * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{_colour(k_index)}"><title>{escape(key)}: {n} '
                f"({_hour(start + i * bucket_seconds)} UTC)</title></rect>"
            )
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" class="axis">{_hour(start)}</text>')
    end = start + len(buckets) * bucket_seconds
    parts.append(
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end" class="axis">'
        f"{_hour(end)} UTC</text>"
    )
    legend_y = HEIGHT + 6
    for k_index, key in enumerate(keys):
        x = PAD + (k_index % 4) * 150
        y = legend_y + (k_index // 4) * 18
        parts.append(
            f'<rect x="{x}" y="{y}" width="10" height="10" fill="{_colour(k_index)}"/>'
            f'<text x="{x + 14}" y="{y + 9}" class="legend">{escape(key)}</text>'
        )
    rows = (len(keys) + 3) // 4
    return _svg("".join(parts), height=HEIGHT + 12 + rows * 18, label=label)


def hbars(rows: Sequence[tuple[str, float, int]], *, unit: str, label: str) -> Markup:
    """Horizontal bars: (name, value, count) rows, e.g. p95 latency by tool."""
    if not rows:
        return _svg(
            f'<text x="{PAD}" y="40" class="empty">nothing in this window</text>',
            height=60,
            label=label,
        )
    rows = list(rows)[:20]
    top = max(r[1] for r in rows) or 1.0
    left, row_h = 160, 20
    parts = []
    for i, (name, value, count) in enumerate(rows):
        y = 6 + i * row_h
        w = (WIDTH - left - 110) * value / top
        shown = name if len(name) <= 24 else name[:23] + "…"
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" class="legend">'
            f"{escape(shown)}</text>"
            f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{row_h - 6}" '
            f'fill="{_colour(2)}"><title>{escape(name)}: {value:.1f} {unit} '
            f"over {count} call(s)</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{y + 13}" class="legend">{value:.1f} {unit} '
            f"({count})</text>"
        )
    return _svg("".join(parts), height=12 + len(rows) * row_h, label=label)


def line(values: Sequence[float], *, start: float, bucket_seconds: float, label: str) -> Markup:
    """A line over time buckets, e.g. events per second."""
    if not values or max(values) <= 0:
        return _svg(
            f'<text x="{PAD}" y="40" class="empty">no events in this window</text>',
            height=60,
            label=label,
        )
    top = max(values)
    plot_h = HEIGHT - 2 * PAD
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    points = " ".join(
        f"{PAD + i * step:.1f},{HEIGHT - PAD - plot_h * v / top:.1f}" for i, v in enumerate(values)
    )
    dots = "".join(
        f'<circle cx="{PAD + i * step:.1f}" cy="{HEIGHT - PAD - plot_h * v / top:.1f}" r="3" '
        f'fill="{_colour(3)}"><title>{v:.2f}/s ({_hour(start + i * bucket_seconds)} UTC)'
        "</title></circle>"
        for i, v in enumerate(values)
    )
    end = start + len(values) * bucket_seconds
    body = (
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#999"/>'
        f'<text x="4" y="{PAD}" class="axis">{top:.2f}/s</text>'
        f'<polyline points="{points}" fill="none" stroke="{_colour(3)}" stroke-width="2"/>'
        f"{dots}"
        f'<text x="{PAD}" y="{HEIGHT - 8}" class="axis">{_hour(start)}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end" class="axis">'
        f"{_hour(end)} UTC</text>"
    )
    return _svg(body, height=HEIGHT, label=label)
