"""The run's chart (bench/chart.py) from hand-made results: well-formed SVG with a p50 and a
p99 series per system and mode, an open dot per failed step, the RSS and connect-time bars
with their values, and the re-render entry point reading a JSON the bench's own writer saved."""

from __future__ import annotations

import runpy
import xml.etree.ElementTree as ET

from bench.chart import main, render
from bench.report import SystemResult, load, save
from tests.test_bench_report import step, system

SVG = "{http://www.w3.org/2000/svg}"


def run() -> list[SystemResult]:
    hub = system(
        "hub",
        [
            step("bulk", 1000, 10.0),
            step("bulk", 2000, 20.0),
            step("bulk", 4000, 90.0),  # fails
            step("single", 500, 15.0),
            step("single", 1000, 70.0),  # fails
        ],
        connect=9.0,
    )
    ceiling = system(
        "ceiling",
        [step("bulk", 1000, 5.0), step("bulk", 4000, 30.0), step("single", 1000, 40.0)],
        connect=4.5,
    )
    ceiling.rss_idle = ceiling.rss_before + 5000 * 12 * 1024  # 12 KB a socket
    django = SystemResult(name="django", title="django", users=5000, error="did not start")
    return [hub, ceiling, django]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on a malformed document


def series(root: ET.Element) -> set[tuple[str, str, str]]:
    return {
        (g.get("class"), g.get("data-system"), g.get("data-mode"))
        for g in root.iter(f"{SVG}g")
        if g.get("class") in ("p50", "p99")
    }


def test_the_chart_has_p50_and_p99_per_system_and_mode_and_an_open_dot_per_failed_step():
    results = run()
    root = parse(render(results, 50.0, "2026-11-30 06:25"))
    assert root.get("width") == "800"
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "Fan-out bench: 5,000 users, 2026-11-30 06:25" in texts
    assert "p99 limit 50 ms" in texts
    assert series(root) == {
        (kind, name, mode)
        for kind in ("p50", "p99")
        for name, mode in [("hub", "bulk"), ("hub", "single"), ("ceiling", "bulk"),
                           ("ceiling", "single")]
    }  # fmt: skip
    p99_dots = [
        circle
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "p99"
        for circle in g.iter(f"{SVG}circle")
    ]
    assert len(p99_dots) == sum(len(r.steps) for r in results)
    open_dots = [c for c in root.iter(f"{SVG}circle") if c.get("fill") == "white"]
    failed = [s for r in results for s in r.steps if not s.ok]
    assert len(failed) == 2 and len(open_dots) == len(failed) + 1  # + the legend's own
    assert not any(c.get("fill") == "white" for g in root.iter(f"{SVG}g")
                   if g.get("class") == "p50" for c in g.iter(f"{SVG}circle"))  # fmt: skip


def test_the_bars_carry_rss_per_socket_and_connect_time_per_system():
    root = parse(render(run(), 50.0))
    values = {
        (t.get("class"), t.get("data-system")): "".join(t.itertext())
        for t in root.iter(f"{SVG}text")
        if (t.get("class") or "").startswith("value")
    }
    assert values == {
        ("value rss", "hub"): "25.0 KB",
        ("value rss", "ceiling"): "12.0 KB",
        ("value connect", "hub"): "9.00 s",
        ("value connect", "ceiling"): "4.50 s",
    }
    bars = {
        (r.get("class"), r.get("data-system")): float(r.get("width"))
        for r in root.iter(f"{SVG}rect")
        if (r.get("class") or "").startswith("bar")
    }
    assert bars[("bar rss", "hub")] > bars[("bar rss", "ceiling")] > 0
    assert bars[("bar connect", "hub")] == 2 * bars[("bar connect", "ceiling")]
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert texts.count("not measured") == 2  # django, in both bar panels


def test_a_saved_run_is_drawn_again_from_its_json(tmp_path, capsys):
    results = run()
    saved = tmp_path / "fanout-20261130-062512.json"
    save(results, {"users": 5000, "p99_ms": 50.0, "publish": ["bulk", "single"]}, saved)
    loaded, settings = load(saved)
    assert loaded == results and settings["p99_ms"] == 50.0
    out = tmp_path / "again.svg"
    main([str(saved), "--out", str(out)])
    assert out.read_text() == render(results, 50.0, "2026-11-30 06:25")
    assert str(out) in capsys.readouterr().out
    main([str(saved)])  # default: next to the JSON
    assert saved.with_suffix(".svg").read_text() == out.read_text()


def test_bench_run_chart_dispatches_to_the_redraw(tmp_path, monkeypatch):
    saved = tmp_path / "fanout-20261130-062512.json"
    save(run(), {"p99_ms": 80.0}, saved)
    monkeypatch.setattr("sys.argv", ["bench", "chart", str(saved)])
    runpy.run_module("bench", run_name="__main__")
    assert "p99 limit 80 ms" in saved.with_suffix(".svg").read_text()
