"""A chart of a run, written next to its JSON: p99 latency against the rate asked, one line per
system and publishing mode, so the knee of each curve can be seen at a glance.

Plain SVG written by hand (no plotting dependency): x is the rate (notifications/s, linear),
y the p99 in ms on a log scale, with the run's p99 limit drawn across; a failed step is an
open circle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from pathlib import Path

from bench.report import SystemResult

WIDTH, HEIGHT = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 60, 200, 20, 40
Y_MIN_MS, Y_MAX_MS = 1.0, 5000.0
COLOURS = {"hub": "#d62728", "ceiling": "#2ca02c", "socketio": "#1f77b4", "django": "#9467bd"}
DASHES = {"bulk": "", "single": "6 3"}


def _x(rate: float, top_rate: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * rate / top_rate


def _y(ms: float) -> float:
    clipped = min(max(ms, Y_MIN_MS), Y_MAX_MS)
    share = math.log10(clipped / Y_MIN_MS) / math.log10(Y_MAX_MS / Y_MIN_MS)
    return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * share


def render(results: Sequence[SystemResult], p99_limit_ms: float) -> str:
    """The SVG document of the run's steps."""
    steps = [step for result in results for step in result.steps]
    top_rate = max((step.rate for step in steps), default=1) * 1.05
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
    ]
    for ms in (1, 10, 100, 1000):
        y = _y(ms)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{ms} ms</text>'
        )
    for i in range(6):
        rate = top_rate * i / 5
        x = _x(rate, top_rate)
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{rate:.0f}</text>'
        )
    out.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
        "rate asked (notifications/s)</text>"
    )
    limit_y = _y(p99_limit_ms)
    out.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{limit_y:.1f}" y2="{limit_y:.1f}" '
        f'stroke="black" stroke-dasharray="2 2"/><text x="{LEFT + 4}" y="{limit_y - 4:.1f}">'
        f"p99 limit {p99_limit_ms:g} ms</text>"
    )
    legend_y = TOP + 10
    for result in results:
        colour = COLOURS.get(result.name, "#555")
        for mode in dict.fromkeys(step.mode for step in result.steps):
            points = [(_x(s.rate, top_rate), _y(s.p99_ms), s.ok) for s in result.steps_of(mode)]
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
                f'stroke-dasharray="{DASHES.get(mode, "")}"/>'
            )
            for x, y, ok in points:
                fill = colour if ok else "white"
                out.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{fill}" stroke="{colour}"/>'
                )
            lx = WIDTH - RIGHT + 12
            out.append(
                f'<line x1="{lx}" x2="{lx + 24}" y1="{legend_y}" y2="{legend_y}" '
                f'stroke="{colour}" stroke-width="2" stroke-dasharray="{DASHES.get(mode, "")}"/>'
                f'<text x="{lx + 30}" y="{legend_y + 4}">{escape(result.name)} {mode}</text>'
            )
            legend_y += 16
    out.append(
        f'<text x="{LEFT}" y="{TOP - 6}">p99 latency (log) by rate; open circle: step failed'
        "</text></svg>"
    )
    return "\n".join(out) + "\n"


def save_chart(results: Sequence[SystemResult], p99_limit_ms: float, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, p99_limit_ms))
