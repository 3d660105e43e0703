"""The bench report's judgement (bench/report.py): which steps pass, the hub/peer ratios and
issue 11's targets, each met or missed with its margin, from hand-made results."""

from __future__ import annotations

from bench.report import StepResult, SystemResult, judge, ratios, targets


def step(mode: str, rate: int, p99_ms: float, *, lost: int = 0, sent_share: float = 1.0):
    asked = 50.0 if mode == "bulk" else float(rate)
    result = StepResult(
        mode=mode,
        rate=rate,
        sent=rate * 8,
        delivered=rate * 8 - lost,
        p50_ms=p99_ms / 3,
        p99_ms=p99_ms,
        max_ms=p99_ms * 2,
        send_rate=rate * sent_share,
        delivered_rate=rate * sent_share,
        request_rate=asked * sent_share,
        asked_request_rate=asked,
        server_cpu=0.5,
        client_cpu=0.2,
        publisher_cpu=0.1,
        batch_size=max(1, rate // 50) if mode == "bulk" else 1,
        publisher_lag_ms=0.0,
    )
    judge(result, 50.0)
    return result


def system(name: str, steps: list[StepResult], *, users: int = 5000, connect: float = 5.0):
    return SystemResult(
        name=name,
        title=name,
        users=users,
        connected=users,
        connect_seconds=connect,
        rss_before=100 * 2**20,
        rss_idle=100 * 2**20 + users * 25 * 1024,
        steps=steps,
    )


def test_a_step_fails_for_loss_latency_or_a_rate_it_did_not_send():
    assert step("bulk", 1000, 20.0).ok
    assert step("bulk", 1000, 80.0).why == "p99 80 ms > 50"
    assert step("bulk", 1000, 20.0, lost=3).why == "3 lost"
    short = step("single", 2000, 20.0, sent_share=0.5)
    assert not short.ok
    assert short.why == "sent 1000 of 2000 requests/s asked"
    # judged again against another limit, e.g. the 20,000-socket target's 100 ms
    assert step("bulk", 1000, 80.0).passes(100.0)


def test_targets_say_met_or_missed_with_the_margin():
    hub = system(
        "hub",
        [
            step("bulk", 2000, 20.0),
            step("bulk", 4000, 40.0),
            step("bulk", 8000, 90.0),
            step("single", 1000, 30.0),
            step("single", 2000, 70.0),
        ],
        connect=9.0,
    )
    ceiling = system("ceiling", [step("bulk", 4000, 18.0), step("bulk", 8000, 45.0)])
    hub.gc_pauses = {"0": 0.001, "1": 0.004, "2": 0.031}
    lines = targets([hub, ceiling], publisher_ceiling=6000)
    assert lines[0].startswith("[met]") and "4000 notifications/s, margin +0" in lines[0]
    assert lines[1].startswith("[MISSED]") and "1000 requests/s, margin -1000" in lines[1]
    assert "publisher-bound" not in lines[1]
    assert lines[2].startswith("[MISSED]") and "1.80×" in lines[2] and "-1.50 s" in lines[2]
    assert lines[3].startswith("[met]") and "25.0 KB, margin +5.0 KB" in lines[3]
    assert lines[4].startswith("[n/a]") and "not run" in lines[4]
    assert lines[5].startswith("[MISSED]") and "longest 31.0 ms, margin -11.0 ms" in lines[5]


def test_ratios_against_each_peer_and_bounds_when_a_peer_passed_everything():
    hub = system("hub", [step("bulk", 2000, 20.0), step("bulk", 4000, 90.0)], connect=9.0)
    ceiling = system("ceiling", [step("bulk", 4000, 18.0)], connect=4.5)
    [to_ceiling, to_socketio, to_django] = ratios([hub, ceiling], ["bulk"])
    assert to_ceiling.startswith("hub/ceiling: bulk 0.50× (2000/s vs 4000+/s)")
    assert "ceiling passed every rate: at most" in to_ceiling
    assert "connect time 2.00×" in to_ceiling
    assert to_socketio == "hub/socketio: socketio not measured"
    assert to_django == "hub/django: django not measured"


def test_a_run_capped_by_the_open_file_limit_does_not_judge_the_20000_socket_target():
    hub = system("hub", [step("bulk", 1000, 80.0)], users=19488)
    hub.users_asked = 20000
    line = targets([hub])[4]
    assert line.startswith("[n/a]")
    assert "19488/19488 connected" in line and "capped by the open-file hard limit" in line
