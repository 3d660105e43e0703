"""Results of a run, their tables, and the issue's targets checked against them."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The targets for one hub process publishing through its own HTTP API.
TARGET_VS_SOCKETIO = 3.0
TARGET_VS_DJANGO = 10.0
TARGET_RATE = 10_000
TARGET_RATE_USERS = 5_000
TARGET_KB_PER_CONNECTION = 30.0


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class StepResult:
    rate: int  # target notifications/s
    sent: int  # accepted by the server
    delivered: int  # arrived at the clients
    p50_ms: float
    p99_ms: float
    max_ms: float
    send_rate: float  # notifications/s the publisher got accepted
    delivered_rate: float  # notifications/s that arrived (first due time → last arrival)
    server_cpu: float  # server CPU during the step, in cores (1.0 = one core busy)
    client_cpu: float  # load-client workers' CPU, in cores
    publisher_cpu: float  # the bench's own process (publisher), in cores
    batch_size: int
    publisher_lag_ms: float  # the latest a batch left after its due time
    server_rss: int = 0  # bytes, at the end of the step (a long step is a soak run)
    errors: list[str] = field(default_factory=list)
    ok: bool = False
    why: str = ""

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.delivered)


@dataclass
class SystemResult:
    name: str
    title: str
    users: int
    connected: int = 0
    connect_seconds: float = 0.0
    connect_errors: list[str] = field(default_factory=list)
    rss_before: int = 0
    rss_idle: int = 0
    idle_cpu: float = 0.0  # server CPU (cores) while idle with every user connected
    dropped: int = 0  # connections the server closed during the run
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None
    unavailable: bool = False  # not measured at all (e.g. an API it needs is missing)
    warning: str | None = None

    @property
    def kb_per_connection(self) -> float:
        if not self.connected:
            return 0.0
        return (self.rss_idle - self.rss_before) / self.connected / 1024

    @property
    def best(self) -> StepResult | None:
        """The highest-rate step with p99 within the limit and nothing lost."""
        passing = [step for step in self.steps if step.ok]
        return max(passing, key=lambda step: step.rate, default=None)

    @property
    def best_rate(self) -> int:
        best = self.best
        return best.rate if best else 0

    @property
    def capped(self) -> bool:
        """Passed every step tried: its real limit is above the highest rate tried."""
        return bool(self.steps) and all(step.ok for step in self.steps)


def judge(step: StepResult, p99_limit_ms: float) -> None:
    reasons = []
    if step.errors:
        reasons.append(f"{len(step.errors)} publish errors")
    if step.lost:
        reasons.append(f"{step.lost} lost")
    if step.delivered > step.sent:
        reasons.append(f"{step.delivered - step.sent} duplicates")
    if step.p99_ms > p99_limit_ms:
        reasons.append(f"p99 {step.p99_ms:.0f} ms > {p99_limit_ms:.0f}")
    step.ok = not reasons
    step.why = ", ".join(reasons) or "ok"


def _mb(value: int) -> str:
    return f"{value / 2**20:.1f} MB"


def _rate(result: SystemResult) -> str:
    return f"{result.best_rate}{'+' if result.capped else ''}/s"


STEP_HEADER = (
    f"{'rate/s':>8} {'sent':>8} {'delivered':>9} {'lost':>6} {'p50 ms':>7} {'p99 ms':>7} "
    f"{'max ms':>7} {'sent/s':>7} {'recv/s':>7} {'batch':>5} "
    f"{'srv CPU':>7} {'cli CPU':>7} {'pub CPU':>7} {'RSS MB':>7}  result"
)


def step_line(step: StepResult) -> str:
    return (
        f"{step.rate:>8} {step.sent:>8} {step.delivered:>9} {step.lost:>6} "
        f"{step.p50_ms:>7.1f} {step.p99_ms:>7.1f} {step.max_ms:>7.1f} "
        f"{step.send_rate:>7.0f} {step.delivered_rate:>7.0f} {step.batch_size:>5} "
        f"{step.server_cpu:>7.2f} {step.client_cpu:>7.2f} {step.publisher_cpu:>7.2f} "
        f"{step.server_rss / 2**20:>7.1f}  {step.why}"
    )


def system_block(result: SystemResult, p99_limit_ms: float) -> str:
    lines = [f"== {result.name}: {result.title}"]
    if result.warning:
        lines.append(f"   warning: {result.warning}")
    if result.error and not result.connected:
        lines.append(f"   {'not measured' if result.unavailable else 'failed'}: {result.error}")
        return "\n".join(lines)
    per_second = result.connected / max(result.connect_seconds, 1e-9)
    lines.append(
        f"   {result.connected}/{result.users} users connected and subscribed in "
        f"{result.connect_seconds:.2f} s ({per_second:.0f}/s)"
    )
    if result.connect_errors:
        lines.append(
            f"   connect failures: {len(result.connect_errors)}, e.g. {result.connect_errors[0]}"
        )
    lines.append(
        f"   server RSS {_mb(result.rss_before)} before, {_mb(result.rss_idle)} idle with "
        f"{result.connected} subscribed: {result.kb_per_connection:.1f} KB per connection; "
        f"idle server CPU {result.idle_cpu:.2f} cores"
    )
    if result.steps:
        lines.append("   " + STEP_HEADER)
        lines.extend("   " + step_line(step) for step in result.steps)
    if result.dropped:
        lines.append(f"   connections closed by the server during the run: {result.dropped}")
    best = result.best
    if best:
        lines.append(
            f"   highest rate with p99 ≤ {p99_limit_ms:.0f} ms and nothing lost: {_rate(result)} "
            f"(p50 {best.p50_ms:.1f} ms, p99 {best.p99_ms:.1f} ms)"
            + ("  [passed every rate tried]" if result.capped else "")
        )
    else:
        lines.append(f"   no rate tried had p99 ≤ {p99_limit_ms:.0f} ms and nothing lost")
    if result.error:
        lines.append(f"   stopped early: {result.error}")
    return "\n".join(lines)


def summary_table(results: Sequence[SystemResult]) -> str:
    lines = [
        f"{'system':10} {'users':>6} {'connect s':>9} {'KB/conn':>8} {'max rate':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7}"
    ]
    for result in results:
        if result.error and not result.connected:
            state = "not measured" if result.unavailable else "failed"
            lines.append(f"{result.name:10} {state} ({result.error})")
            continue
        best = result.best
        lines.append(
            f"{result.name:10} {result.connected:>6} {result.connect_seconds:>9.2f} "
            f"{result.kb_per_connection:>8.1f} {_rate(result):>10} "
            f"{(best.p50_ms if best else 0):>7.1f} {(best.p99_ms if best else 0):>7.1f}"
        )
    return "\n".join(lines)


def _ratio(hub: SystemResult, peer: SystemResult) -> tuple[float, str]:
    if peer.best_rate == 0:
        text = "∞ (peer passed no rate)" if hub.best_rate else "n/a (neither passed a rate)"
        return (math.inf if hub.best_rate else 0.0), text
    ratio = hub.best_rate / peer.best_rate
    caveat = []
    if hub.capped:
        caveat.append("hub passed every rate tried: at least this")
    if peer.capped:
        caveat.append(f"{peer.name} passed every rate tried: at most this")
    return ratio, f"{ratio:.1f}×" + (f" ({'; '.join(caveat)})" if caveat else "")


def targets(results: Sequence[SystemResult]) -> list[str]:
    """One line per target of the issue: met, missed, or why it cannot be judged."""
    by_name = {result.name: result for result in results}
    hub = by_name.get("hub")
    if hub is None or (hub.error and not hub.connected):
        reason = hub.error if hub else "the hub was not part of this run"
        return [f"[n/a]    targets not judged: {reason}"]

    def line(met: bool | None, text: str) -> str:
        return f"[{'met' if met else 'n/a' if met is None else 'MISSED'}]".ljust(9) + text

    lines = []
    for name, factor in (("socketio", TARGET_VS_SOCKETIO), ("django", TARGET_VS_DJANGO)):
        peer = by_name.get(name)
        if peer is None or (peer.error and not peer.connected):
            lines.append(line(None, f"hub ≥ {factor:.0f}× {name}'s rate: {name} not measured"))
            continue
        ratio, text = _ratio(hub, peer)
        lines.append(
            line(
                ratio >= factor,
                f"hub ≥ {factor:.0f}× {name}'s rate: {text} "
                f"(hub {_rate(hub)}, {name} {_rate(peer)})",
            )
        )
    enough_users = hub.connected >= TARGET_RATE_USERS
    lines.append(
        line(
            hub.best_rate >= TARGET_RATE and enough_users,
            f"hub ≥ {TARGET_RATE}/s delivered at {TARGET_RATE_USERS} connections: {_rate(hub)} "
            f"at {hub.connected} connections",
        )
    )
    lines.append(
        line(
            hub.kb_per_connection <= TARGET_KB_PER_CONNECTION,
            f"hub ≤ {TARGET_KB_PER_CONNECTION:.0f} KB RSS per idle subscribed connection: "
            f"{hub.kb_per_connection:.1f} KB",
        )
    )
    peers = [r for r in results if r.name != "hub" and r.connected]
    if peers:
        fastest = min(peers, key=lambda r: r.connect_seconds)
        lines.append(
            line(
                hub.connect_seconds <= fastest.connect_seconds,
                f"hub connects + subscribes {hub.connected} users no slower than the fastest peer: "
                f"{hub.connect_seconds:.2f} s vs {fastest.name} {fastest.connect_seconds:.2f} s",
            )
        )
    else:
        lines.append(line(None, "connect time vs the fastest peer: no peer measured"))
    return lines


def save(results: Sequence[SystemResult], settings: dict, path: Path) -> None:
    """The whole run as JSON, for recording figures."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "settings": settings,
        "systems": [
            {
                **asdict(result),
                "kb_per_connection": result.kb_per_connection,
                "best_rate": result.best_rate,
                "capped": result.capped,
            }
            for result in results
        ],
        "targets": targets(results),
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
