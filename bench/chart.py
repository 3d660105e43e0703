"""A chart of a run, written next to its JSON (and again from a saved JSON by
`bench/run chart RESULTS.json [--out CHART.svg]`).

Plain SVG written by hand (no plotting dependency, text as <text>, white background, 800 px
wide), titled with the run's users and date, in two parts:

- latency against the rate asked: x the rate (notifications/s, linear), y the latency in ms
  (log). One colour per system; bulk publishing a solid line, one request per notification
  (single) dashed. p99 is the thick line with dots, p50 the thin light line below it; a failed
  step's p99 dot is open. The run's p99 limit is drawn across.
- bars per system: server RSS per idle subscribed socket (KB, with the hub's target), and the
  time to connect and subscribe every user (s), each value written at the end of its bar.
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

from bench.report import TARGET_KB_PER_CONNECTION, SystemResult, load

WIDTH = 800
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 64, 600, 62, 372  # the latency plot's area
BARS_TOP, ROW, BAR_LABEL, BAR_MAX = 440, 22, 70, 180  # the bar panels below it
COLOURS = {"hub": "#d62728", "ceiling": "#2ca02c", "socketio": "#1f77b4", "django": "#9467bd"}
DASHES = {"bulk": "", "single": "7 4"}


def _nice_step(top: float) -> float:
    """A round tick step (1, 2, 2.5 or 5 × 10ⁿ) giving about five ticks up to `top`."""
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude)


def _ms_text(ms: float) -> str:
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:g} s"


def _latency(results: Sequence[SystemResult], p99_limit_ms: float) -> list[str]:
    steps = [step for result in results for step in result.steps]
    highest = max((step.rate for step in steps), default=1000)
    tick = _nice_step(highest)
    top_rate = tick * math.ceil(highest / tick)
    values = [v for step in steps for v in (step.p50_ms, step.p99_ms) if v > 0]
    values.append(p99_limit_ms)  # decades from the lowest p50 to the highest p99, at least 0.1 ms
    low = max(-1, math.floor(math.log10(min(values))))
    high = max(low + 1, math.ceil(math.log10(max(values))))

    def x(rate: float) -> float:
        return PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * rate / top_rate

    def y(ms: float) -> float:
        share = (math.log10(max(ms, 10**low)) - low) / (high - low)
        return PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * min(share, 1.0)

    out = [
        f'<rect x="{PLOT_LEFT}" y="{PLOT_TOP}" width="{PLOT_RIGHT - PLOT_LEFT}" '
        f'height="{PLOT_BOTTOM - PLOT_TOP}" fill="none" stroke="#999"/>'
    ]
    for power in range(low, high + 1):
        for factor in (1, 2, 5):
            ms = factor * 10**power
            if ms > 10**high:
                break
            colour = "#ccc" if factor == 1 else "#eee"
            out.append(
                f'<line x1="{PLOT_LEFT}" x2="{PLOT_RIGHT}" y1="{y(ms):.1f}" y2="{y(ms):.1f}" '
                f'stroke="{colour}"/>'
            )
        out.append(
            f'<text x="{PLOT_LEFT - 6}" y="{y(10**power) + 4:.1f}" text-anchor="end">'
            f"{_ms_text(10**power)}</text>"
        )
    for i in range(round(top_rate / tick) + 1):
        out.append(
            f'<text x="{x(i * tick):.1f}" y="{PLOT_BOTTOM + 16}" text-anchor="middle">'
            f"{i * tick:,g}</text>"
        )
    out.append(
        f'<text x="{(PLOT_LEFT + PLOT_RIGHT) / 2}" y="{PLOT_BOTTOM + 34}" text-anchor="middle">'
        "rate asked (notifications/s)</text>"
    )
    out.append(
        f'<line class="limit" x1="{PLOT_LEFT}" x2="{PLOT_RIGHT}" y1="{y(p99_limit_ms):.1f}" '
        f'y2="{y(p99_limit_ms):.1f}" stroke="black" stroke-dasharray="2 3"/>'
    )

    legend_x, legend_y = PLOT_RIGHT + 20, PLOT_TOP + 8
    for result in results:
        colour = COLOURS.get(result.name, "#555")
        for mode in dict.fromkeys(step.mode for step in result.steps):
            dash = DASHES.get(mode, "")
            mode_steps = result.steps_of(mode)
            for series, width, opacity, radius in (("p50", 1.2, 0.5, 1.8), ("p99", 2.2, 1, 3.5)):
                points = [(x(s.rate), y(getattr(s, f"{series}_ms")), s) for s in mode_steps]
                out.append(
                    f'<g class="{series}" data-system="{escape(result.name)}" '
                    f'data-mode="{mode}" stroke="{colour}" stroke-opacity="{opacity}">'
                    f'<polyline points="{" ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)}"'
                    f' fill="none" stroke-width="{width}" stroke-dasharray="{dash}"/>'
                )
                for px, py, s in points:
                    filled = s.ok or series == "p50"
                    out.append(
                        f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{radius}" '
                        f'fill="{colour if filled else "white"}" fill-opacity="{opacity}">'
                        f"<title>{escape(result.name)} {mode} {s.rate:,}/s: p50 {s.p50_ms:.1f} "
                        f"ms, p99 {s.p99_ms:.1f} ms; {escape(s.why or '-')}</title></circle>"
                    )
                out.append("</g>")
            out.append(
                f'<line x1="{legend_x}" x2="{legend_x + 28}" y1="{legend_y}" y2="{legend_y}" '
                f'stroke="{colour}" stroke-width="2.2" stroke-dasharray="{dash}"/>'
                f'<text x="{legend_x + 36}" y="{legend_y + 4}">{escape(result.name)} {mode}</text>'
            )
            legend_y += 18
    key_y = legend_y + 14  # how p50, p99, a failed step and the modes look
    lx = legend_x
    out.append(
        f'<line x1="{lx}" x2="{lx + 28}" y1="{key_y}" y2="{key_y}" stroke="#555" '
        f'stroke-width="2.2"/><circle cx="{lx + 14}" cy="{key_y}" r="3.5" fill="#555"/>'
        f'<text x="{lx + 36}" y="{key_y + 4}">p99</text>'
        f'<line x1="{lx}" x2="{lx + 28}" y1="{key_y + 18}" y2="{key_y + 18}" stroke="#555" '
        f'stroke-width="1.2" stroke-opacity="0.5"/>'
        f'<text x="{lx + 36}" y="{key_y + 22}">p50</text>'
        f'<circle cx="{lx + 14}" cy="{key_y + 36}" r="3.5" fill="white" stroke="#555"/>'
        f'<text x="{lx + 36}" y="{key_y + 40}">p99 of a failed step</text>'
        f'<text x="{lx}" y="{key_y + 62}" fill="#555">solid: bulk publishing</text>'
        f'<text x="{lx}" y="{key_y + 78}" fill="#555">dashed: one request</text>'
        f'<text x="{lx}" y="{key_y + 92}" fill="#555">per notification (single)</text>'
        # the limit's label last, haloed in white, over any line crossing it
        f'<text x="{PLOT_LEFT + 4}" y="{y(p99_limit_ms) - 4:.1f}" stroke="white" '
        f'stroke-width="3" paint-order="stroke">p99 limit {p99_limit_ms:g} ms</text>'
    )
    return out


def _bars(
    results: Sequence[SystemResult],
    left: float,
    heading: str,
    value: Callable[[SystemResult], float],
    label: Callable[[SystemResult], str],
    kind: str,
    mark: tuple[float, str] | None = None,
) -> list[str]:
    """One horizontal bar per system, its value written at its end; `mark` a reference line."""
    out = [f'<text x="{left}" y="{BARS_TOP}" font-weight="bold">{heading}</text>']
    measured = [result for result in results if result.measured]
    top = max([value(result) for result in measured] + [mark[0] if mark else 0]) or 1.0
    if mark:  # drawn first, in grey, so the bars and their values lie over it
        mark_x = left + BAR_LABEL + BAR_MAX * mark[0] / top
        bottom = BARS_TOP + 10 + len(results) * ROW
        out.append(
            f'<line x1="{mark_x:.1f}" x2="{mark_x:.1f}" y1="{BARS_TOP + 8}" y2="{bottom}" '
            f'stroke="#888" stroke-dasharray="3 3"/><text x="{mark_x:.1f}" y="{bottom + 12}" '
            f'text-anchor="middle" fill="#555">{mark[1]}</text>'
        )
    for i, result in enumerate(results):
        row_y = BARS_TOP + 14 + i * ROW
        out.append(
            f'<text x="{left + BAR_LABEL - 6}" y="{row_y + 12}" text-anchor="end">'
            f"{escape(result.name)}</text>"
        )
        if not result.measured:
            out.append(
                f'<text x="{left + BAR_LABEL}" y="{row_y + 12}" fill="#777">not measured</text>'
            )
            continue
        length = BAR_MAX * max(value(result), 0) / top
        out.append(
            f'<rect class="bar {kind}" data-system="{escape(result.name)}" x="{left + BAR_LABEL}"'
            f' y="{row_y}" width="{length:.1f}" height="{ROW - 6}" '
            f'fill="{COLOURS.get(result.name, "#555")}"/>'
            f'<text class="value {kind}" data-system="{escape(result.name)}" '
            f'x="{left + BAR_LABEL + length + 5:.1f}" y="{row_y + 12}">{label(result)}</text>'
        )
    return out


def render(results: Sequence[SystemResult], p99_limit_ms: float, date: str = "") -> str:
    """The SVG document of a run."""
    users = max((result.users for result in results), default=0)
    height = BARS_TOP + 14 + len(results) * ROW + 24
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">'
        f"Fan-out bench: {users:,} users{f', {escape(date)}' if date else ''}</text>",
        f'<text x="{PLOT_LEFT}" y="{PLOT_TOP - 10}" font-weight="bold">latency from publish to '
        "arrival by rate asked (log scale): p99 thick, p50 thin</text>",
    ]
    out += _latency(results, p99_limit_ms)
    out += _bars(
        results,
        12,
        "server RSS per idle socket (KB)",
        lambda r: r.kb_per_connection,
        lambda r: f"{r.kb_per_connection:.1f} KB",
        "rss",
        (TARGET_KB_PER_CONNECTION, f"hub target {TARGET_KB_PER_CONNECTION:g}"),
    )
    out += _bars(
        results,
        WIDTH / 2 + 12,
        f"time to connect and subscribe {users:,} users (s)",
        lambda r: r.connect_seconds,
        lambda r: (
            f"{r.connect_seconds:.2f} s"
            + (f" ({r.connected:,}/{r.users:,})" if r.connected < r.users else "")
        ),
        "connect",
    )
    return "\n".join(out) + "\n</svg>\n"


def run_date(path: Path) -> str:
    """The run's date and time from its file name (fanout-YYYYMMDD-HHMMSS), else the file's
    modification time, else now."""
    found = re.search(r"(\d{4})(\d\d)(\d\d)-(\d\d)(\d\d)\d\d", path.name)
    if found:
        year, month, day, hour, minute = found.groups()
        return f"{year}-{month}-{day} {hour}:{minute}"
    when = datetime.datetime.fromtimestamp(path.stat().st_mtime) if path.exists() else None
    return (when or datetime.datetime.now()).strftime("%Y-%m-%d %H:%M")


def save_chart(
    results: Sequence[SystemResult], p99_limit_ms: float, path: Path, date: str | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, p99_limit_ms, run_date(path) if date is None else date))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="bench/run chart", description="Draw the chart of a saved run again (runs nothing)."
    )
    parser.add_argument("results", type=Path, help="a bench/results/fanout-<time>.json")
    parser.add_argument("--out", type=Path, help="the SVG to write (default: next to the JSON)")
    args = parser.parse_args(argv)
    results, settings = load(args.results)
    out = args.out or args.results.with_suffix(".svg")
    save_chart(results, settings.get("p99_ms", 50.0), out, run_date(args.results))
    print(f"chart written to {out}")


if __name__ == "__main__":
    main()
