"""Small hand-written SVG charts for the HTML report: line charts and stacked bars.

Pure functions from numbers to an ``<svg>`` string, so the report needs no JavaScript,
no network and no plotting library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)
WIDTH, HEIGHT = 600, 340
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 84  # margins: legend sits under the x axis

Series = tuple[str, Sequence[tuple[float, float]]]


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    value = start
    while value <= high + step * 0.5 and len(ticks) < 20:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _frame(title: str, x_label: str, y_label: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="14" '
        f'font-weight="600">{escape(title)}</text>',
        f'<text x="{LEFT + (WIDTH - LEFT - RIGHT) / 2}" y="{HEIGHT - BOTTOM + 34}" '
        f'text-anchor="middle" font-size="12">{escape(x_label)}</text>',
        f'<text transform="translate(14 {TOP + (HEIGHT - TOP - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle" font-size="12">{escape(y_label)}</text>',
    ]


def _legend(names: Sequence[str], y0: float, max_rows: int = 2) -> list[str]:
    out, x, y, row = [], float(LEFT), y0, 1
    for i, name in enumerate(names):
        label = name if len(name) <= 48 else name[:47] + "..."
        width = 22 + 6.6 * len(label)
        if x + width > WIDTH - RIGHT and x > LEFT:
            if row == max_rows:
                out.append(
                    f'<text x="{x:.1f}" y="{y:.1f}" font-size="11">+{len(names) - i} more</text>'
                )
                break
            x, y, row = float(LEFT), y + 15, row + 1
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 16:.1f}" y="{y:.1f}" font-size="11">{escape(label)}</text>')
        x += width
    return out


def line_chart(
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    log_x: bool = False,
    dashed: Sequence[bool] | None = None,
    colors: Sequence[int] | None = None,
    legend: Sequence[str] | None = None,
    ticks_at_values: bool = False,
) -> str:
    """Lines with markers, one per series, on shared linear (or log-x) axes.

    ``colors`` gives each series a palette index (default: its own); ``legend`` the names
    shown for palette indices 0, 1, ... (default: the series names).
    """
    points = [p for _, pts in series for p in pts]
    svg = _frame(title, x_label, y_label)
    if not points:
        svg.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>')
        return "".join(svg) + "</svg>"
    fx = (lambda v: math.log10(max(v, 1e-9))) if log_x else (lambda v: v)
    xs = [fx(x) for x, _ in points]
    x_lo, x_hi = min(xs), max(xs)
    if not log_x and not ticks_at_values:
        x_ticks = _nice_ticks(0.0, x_hi)
        x_lo, x_hi = 0.0, x_ticks[-1]
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_ticks = _nice_ticks(0.0, max(y for _, y in points) * 1.05 or 1.0)
    y_hi = y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (fx(x) - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - y / y_hi * plot_h

    for tick in y_ticks:
        y = py(tick)
        svg.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
        )
        svg.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_fmt(tick)}</text>"
        )
    if log_x or ticks_at_values:
        x_ticks = sorted({x for x, _ in points})
    for tick in x_ticks:
        x = px(tick)
        svg.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 4}" '
            'stroke="#333"/>'
        )
        svg.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" font-size="11">'
            f"{_fmt(tick)}</text>"
        )
    svg.append(
        f'<path d="M{LEFT} {TOP}V{TOP + plot_h}H{WIDTH - RIGHT}" fill="none" stroke="#333"/>'
    )
    for i, (name, pts) in enumerate(series):
        color = PALETTE[(colors[i] if colors else i) % len(PALETTE)]
        ordered = list(pts)  # in the order given (the load order)
        if not ordered:
            continue
        dash = ' stroke-dasharray="5 4"' if dashed and dashed[i] else ""
        path = "M" + " L".join(f"{px(x):.1f} {py(y):.1f}" for x, y in ordered)
        svg.append(
            f'<path class="series" d="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
        )
        for x, y in ordered:
            svg.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}">'
                f"<title>{escape(name)}: ({x:g}, {y:.3g})</title></circle>"
            )
    svg.extend(_legend(legend or [name for name, _ in series], HEIGHT - BOTTOM + 54))
    return "".join(svg) + "</svg>"


def stacked_bars(
    title: str, bars: Sequence[tuple[str, Sequence[float]]], stacks: Sequence[str], y_label: str
) -> str:
    """One bar per label, each split into ``stacks`` (e.g. queue and compute)."""
    svg = _frame(title, "", y_label)
    if not bars:
        svg.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>')
        return "".join(svg) + "</svg>"
    y_ticks = _nice_ticks(0.0, max(sum(v) for _, v in bars) * 1.05 or 1.0)
    y_hi = y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    for tick in y_ticks:
        y = TOP + plot_h - tick / y_hi * plot_h
        svg.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
        )
        svg.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_fmt(tick)}</text>"
        )
    slot = plot_w / len(bars)
    width = max(2.0, min(40.0, slot * 0.7))
    for i, (label, values) in enumerate(bars):
        x = LEFT + slot * i + (slot - width) / 2
        base = float(TOP + plot_h)
        for j, value in enumerate(values):
            h = value / y_hi * plot_h
            color = PALETTE[j % len(PALETTE)]
            svg.append(
                f'<rect class="bar" x="{x:.1f}" y="{base - h:.1f}" width="{width:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{escape(label)} {escape(stacks[j])}: '
                f"{value:.3g}</title></rect>"
            )
            base -= h
        if len(bars) <= 40:  # bars are numbered like the report's table rows
            svg.append(
                f'<text x="{x + width / 2:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle" '
                f'font-size="10">{i + 1}</text>'
            )
    svg.append(
        f'<path d="M{LEFT} {TOP}V{TOP + plot_h}H{WIDTH - RIGHT}" fill="none" stroke="#333"/>'
    )
    svg.extend(_legend(stacks, HEIGHT - BOTTOM + 54))
    return "".join(svg) + "</svg>"
