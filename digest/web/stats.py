"""The inline SVG bar chart that shows an edition's counts (:mod:`digest.stats`).

The chart is server-rendered SVG with presentation attributes only (no inline CSS,
no script), so it passes the pages' Content Security Policy, and has a text
alternative; the same numbers are in a table next to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def bar_chart(bars: Sequence[tuple[str, int]], *, chart_id: str, title: str) -> Markup:
    """Horizontal bars as inline SVG, with a title and a description for screen readers."""
    label_w, value_w, bar_w, row_h, pad = 110, 64, 360, 30, 8
    width = label_w + bar_w + value_w
    height = row_h * len(bars) + pad * 2
    top = max((v for _, v in bars), default=0) or 1
    desc = ", ".join(f"{label}: {value}" for label, value in bars)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
    ]
    for i, (label, value) in enumerate(bars):
        y = pad + i * row_h
        length = round(bar_w * value / top) if value else 0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 19}" text-anchor="end" font-size="14" '
            f'fill="currentColor">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 5}" width="{bar_w}" height="18" fill="#e7e3da" />'
        )
        if length:
            parts.append(
                f'<rect x="{label_w}" y="{y + 5}" width="{length}" height="18" fill="#0a58a8" />'
            )
        parts.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 19}" font-size="14" '
            f'fill="currentColor">{value}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


__all__ = ["bar_chart"]
