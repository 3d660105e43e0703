"""Results of a run, their tables, the hub/peer ratios and the hub's targets, judged."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

# The targets for one hub process publishing through its own HTTP API.
TARGET_USERS = 5_000
TARGET_BULK_RATE = 4_000  # notifications/s, p99 ≤ TARGET_P99_MS, nothing lost
TARGET_SINGLE_RATE = 2_000  # requests/s, one notification each, p99 ≤ TARGET_P99_MS
TARGET_P99_MS = 50.0
TARGET_CONNECT_VS_CEILING = 1.5  # × the ceiling's time for the same connects
TARGET_KB_PER_CONNECTION = 30.0
TARGET_BIG_USERS = 20_000
TARGET_BIG_RATE = 1_000  # notifications/s at TARGET_BIG_USERS sockets, p99 ≤ TARGET_BIG_P99_MS
TARGET_BIG_P99_MS = 100.0
TARGET_GC_PAUSE_MS = 20.0
PEERS = ("ceiling", "socketio", "django")  # what the hub's ratios are taken against
# A step whose requests/s fell this far short of the rate asked did not measure that rate.
SEND_SHORTFALL = 0.9


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class StepResult:
    mode: str  # "bulk" (batches) or "single" (one request per notification)
    rate: int  # target notifications/s
    sent: int  # accepted by the server
    delivered: int  # arrived at the clients
    p50_ms: float
    p99_ms: float
    max_ms: float
    send_rate: float  # notifications/s the publisher got accepted
    delivered_rate: float  # notifications/s that arrived (first due time → last arrival)
    request_rate: float  # requests/s answered 2xx (first due time → last answer)
    asked_request_rate: float  # requests/s the rate asked for
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

    @property
    def short_of_rate(self) -> bool:
        """The publisher's requests fell short of the rate asked (the server did not take them
        as fast, or the publisher could not send them)."""
        return self.request_rate < SEND_SHORTFALL * self.asked_request_rate

    def passes(self, p99_limit_ms: float) -> bool:
        """No publish error, nothing lost or duplicated, the rate sent, p99 within the limit."""
        return not self.failures(p99_limit_ms)

    def failures(self, p99_limit_ms: float) -> list[str]:
        reasons = []
        if self.errors:
            reasons.append(f"{len(self.errors)} publish errors")
        if self.lost:
            reasons.append(f"{self.lost} lost")
        if self.delivered > self.sent:
            reasons.append(f"{self.delivered - self.sent} duplicates")
        if self.short_of_rate:
            reasons.append(
                f"sent {self.request_rate:.0f} of {self.asked_request_rate:.0f} requests/s asked"
            )
        if self.p99_ms > p99_limit_ms:
            reasons.append(f"p99 {self.p99_ms:.0f} ms > {p99_limit_ms:.0f}")
        return reasons


@dataclass
class SystemResult:
    name: str
    title: str
    users: int
    users_asked: int = 0  # more than `users` when the open-file limit capped the run
    connected: int = 0
    connect_seconds: float = 0.0
    connect_errors: list[str] = field(default_factory=list)
    rss_before: int = 0
    rss_idle: int = 0
    idle_cpu: float = 0.0  # server CPU (cores) while idle with every user connected
    dropped: int = 0  # connections the server closed during the run
    steps: list[StepResult] = field(default_factory=list)
    gc_pauses: dict[str, float] | None = None  # longest collector pause per generation, s
    error: str | None = None
    unavailable: bool = False  # not measured at all (e.g. an API it needs is missing)
    warning: str | None = None

    @property
    def kb_per_connection(self) -> float:
        if not self.connected:
            return 0.0
        return (self.rss_idle - self.rss_before) / self.connected / 1024

    @property
    def measured(self) -> bool:
        return self.connected > 0

    def steps_of(self, mode: str) -> list[StepResult]:
        return [step for step in self.steps if step.mode == mode]

    def best(self, mode: str, p99_limit_ms: float | None = None) -> StepResult | None:
        """The highest-rate step of `mode` that passed (judged again against `p99_limit_ms`
        when given, for a target whose limit differs from the run's)."""
        passing = [
            step
            for step in self.steps_of(mode)
            if (step.ok if p99_limit_ms is None else step.passes(p99_limit_ms))
        ]
        return max(passing, key=lambda step: step.rate, default=None)

    def best_rate(self, mode: str, p99_limit_ms: float | None = None) -> int:
        best = self.best(mode, p99_limit_ms)
        return best.rate if best else 0

    def capped(self, mode: str) -> bool:
        """Passed every step of `mode` tried: its real limit is above the highest rate tried."""
        steps = self.steps_of(mode)
        return bool(steps) and all(step.ok for step in steps)

    def rate_text(self, mode: str) -> str:
        if not self.steps_of(mode):
            return "-"
        return f"{self.best_rate(mode)}{'+' if self.capped(mode) else ''}/s"

    @property
    def longest_pause_ms(self) -> float | None:
        return max(self.gc_pauses.values()) * 1000 if self.gc_pauses else None


def judge(step: StepResult, p99_limit_ms: float) -> None:
    reasons = step.failures(p99_limit_ms)
    step.ok = not reasons
    step.why = ", ".join(reasons) or "ok"


def _mb(value: int) -> str:
    return f"{value / 2**20:.1f} MB"


STEP_HEADER = (
    f"{'mode':6} {'rate/s':>6} {'sent':>7} {'delivered':>9} {'lost':>5} {'p50 ms':>7} "
    f"{'p99 ms':>7} {'max ms':>7} {'sent/s':>7} {'recv/s':>7} {'req/s':>6} {'asked':>6} "
    f"{'batch':>5} {'srv CPU':>7} {'cli CPU':>7} {'pub CPU':>7} {'RSS MB':>7}  result"
)


def step_line(step: StepResult) -> str:
    return (
        f"{step.mode:6} {step.rate:>6} {step.sent:>7} {step.delivered:>9} {step.lost:>5} "
        f"{step.p50_ms:>7.1f} {step.p99_ms:>7.1f} {step.max_ms:>7.1f} "
        f"{step.send_rate:>7.0f} {step.delivered_rate:>7.0f} {step.request_rate:>6.0f} "
        f"{step.asked_request_rate:>6.0f} {step.batch_size:>5} "
        f"{step.server_cpu:>7.2f} {step.client_cpu:>7.2f} {step.publisher_cpu:>7.2f} "
        f"{step.server_rss / 2**20:>7.1f}  {step.why}"
    )


def system_block(result: SystemResult, p99_limit_ms: float) -> str:
    lines = [f"== {result.name}: {result.title}"]
    if result.warning:
        lines.append(f"   warning: {result.warning}")
    if result.error and not result.measured:
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
    for mode in dict.fromkeys(step.mode for step in result.steps):
        best = result.best(mode)
        if best:
            lines.append(
                f"   {mode}: highest rate with p99 ≤ {p99_limit_ms:.0f} ms and nothing lost: "
                f"{result.rate_text(mode)} (p50 {best.p50_ms:.1f} ms, p99 {best.p99_ms:.1f} ms)"
                + ("  [passed every rate tried]" if result.capped(mode) else "")
            )
        else:
            lines.append(
                f"   {mode}: no rate tried had p99 ≤ {p99_limit_ms:.0f} ms and nothing lost"
            )
    if result.gc_pauses:
        pauses = ", ".join(f"gen {g} {v * 1000:.1f} ms" for g, v in result.gc_pauses.items())
        lines.append(f"   longest collector pause since the server started: {pauses}")
    if result.error:
        lines.append(f"   stopped early: {result.error}")
    return "\n".join(lines)


def summary_table(results: Sequence[SystemResult], modes: Sequence[str]) -> str:
    header = f"{'system':10} {'users':>6} {'connect s':>9} {'KB/conn':>8} {'GC max ms':>9}"
    for mode in modes:
        header += f" {mode + ' max':>11} {'p50 ms':>7} {'p99 ms':>7}"
    lines = [header]
    for result in results:
        if result.error and not result.measured:
            state = "not measured" if result.unavailable else "failed"
            lines.append(f"{result.name:10} {state} ({result.error})")
            continue
        pause = result.longest_pause_ms
        line = (
            f"{result.name:10} {result.connected:>6} {result.connect_seconds:>9.2f} "
            f"{result.kb_per_connection:>8.1f} {'-' if pause is None else f'{pause:.1f}':>9}"
        )
        for mode in modes:
            best = result.best(mode)
            line += (
                f" {result.rate_text(mode):>11} {(best.p50_ms if best else 0):>7.1f} "
                f"{(best.p99_ms if best else 0):>7.1f}"
            )
        lines.append(line)
    return "\n".join(lines)


def _rate_ratio(hub: SystemResult, peer: SystemResult, mode: str) -> str:
    ours, theirs = hub.best_rate(mode), peer.best_rate(mode)
    if not theirs:
        return f"{mode} ∞ (peer passed no rate)" if ours else f"{mode} n/a (neither passed)"
    bounds = []
    if hub.capped(mode):
        bounds.append("hub passed every rate: at least")
    if peer.capped(mode):
        bounds.append(f"{peer.name} passed every rate: at most")
    bound = f" [{'; '.join(bounds)}]" if bounds else ""
    return f"{mode} {ours / theirs:.2f}× ({hub.rate_text(mode)} vs {peer.rate_text(mode)}){bound}"


def ratios(results: Sequence[SystemResult], modes: Sequence[str]) -> list[str]:
    """One line per peer: hub/peer for each mode's rate, connect time and RSS per socket."""
    by_name = {result.name: result for result in results}
    hub = by_name.get("hub")
    if hub is None or not hub.measured:
        return ["hub not measured: no ratios"]
    lines = []
    for name in PEERS:
        peer = by_name.get(name)
        if peer is None or not peer.measured:
            lines.append(f"hub/{name}: {name} not measured")
            continue
        parts = [_rate_ratio(hub, peer, mode) for mode in modes]
        if peer.connect_seconds:
            parts.append(
                f"connect time {hub.connect_seconds / peer.connect_seconds:.2f}× "
                f"({hub.connect_seconds:.2f} s vs {peer.connect_seconds:.2f} s)"
            )
        if peer.kb_per_connection > 0:
            parts.append(
                f"KB/socket {hub.kb_per_connection / peer.kb_per_connection:.2f}× "
                f"({hub.kb_per_connection:.1f} vs {peer.kb_per_connection:.1f})"
            )
        lines.append(f"hub/{name}: " + "; ".join(parts))
    return lines


def _mark(met: bool | None) -> str:
    return f"[{'met' if met else 'n/a' if met is None else 'MISSED'}]".ljust(9)


def _rate_target(
    hub: SystemResult, mode: str, target: int, p99_ms: float, unit: str, publisher: float
) -> tuple[bool | None, str]:
    if not hub.steps_of(mode):
        return None, f"not run (--publish {mode})"
    best = hub.best(mode, p99_ms)
    rate = best.rate if best else 0
    text = f"{rate}{'+' if hub.capped(mode) else ''} {unit}, margin {rate - target:+d}"
    if best:
        text += f" (p99 {best.p99_ms:.1f} ms)"
    if hub.connected < TARGET_USERS:
        text += f"; only {hub.connected} sockets (the target is at {TARGET_USERS})"
    if publisher and mode == "single" and publisher < 2 * target:
        text += f"; the publisher's self-check was {publisher:.0f} requests/s: publisher-bound"
    return rate >= target and hub.connected >= TARGET_USERS, text


def targets(results: Sequence[SystemResult], publisher_ceiling: float = 0.0) -> list[str]:
    """One line per target: met (with the margin), missed, or why not judged."""
    by_name = {result.name: result for result in results}
    hub = by_name.get("hub")
    if hub is None or not hub.measured:
        reason = hub.error if hub else "the hub was not part of this run"
        return [f"{_mark(None)}targets not judged: {reason}"]
    lines = []
    met, text = _rate_target(
        hub, "bulk", TARGET_BULK_RATE, TARGET_P99_MS, "notifications/s", publisher_ceiling
    )
    lines.append(
        _mark(met) + f"bulk ≥ {TARGET_BULK_RATE}/s, p99 ≤ {TARGET_P99_MS:.0f} ms, nothing "
        f"lost: {text}"
    )
    met, text = _rate_target(
        hub, "single", TARGET_SINGLE_RATE, TARGET_P99_MS, "requests/s", publisher_ceiling
    )
    lines.append(
        _mark(met) + f"one request per notification ≥ {TARGET_SINGLE_RATE} requests/s, "
        f"p99 ≤ {TARGET_P99_MS:.0f} ms: {text}"
    )

    ceiling = by_name.get("ceiling")
    if ceiling is None or not ceiling.measured or not ceiling.connect_seconds:
        lines.append(
            _mark(None) + f"connects ≤ {TARGET_CONNECT_VS_CEILING}× the ceiling's time: "
            "ceiling not measured"
        )
    else:
        factor = hub.connect_seconds / ceiling.connect_seconds
        limit = TARGET_CONNECT_VS_CEILING * ceiling.connect_seconds
        lines.append(
            _mark(factor <= TARGET_CONNECT_VS_CEILING and hub.connected >= ceiling.connected)
            + f"{hub.connected} connects ≤ {TARGET_CONNECT_VS_CEILING}× the ceiling's time: "
            f"{hub.connect_seconds:.2f} s vs ceiling {ceiling.connect_seconds:.2f} s = "
            f"{factor:.2f}×, margin {limit - hub.connect_seconds:+.2f} s"
        )

    kb = hub.kb_per_connection
    lines.append(
        _mark(kb <= TARGET_KB_PER_CONNECTION)
        + f"≤ {TARGET_KB_PER_CONNECTION:.0f} KB RSS per idle subscribed socket: {kb:.1f} KB, "
        f"margin {TARGET_KB_PER_CONNECTION - kb:+.1f} KB"
        + (
            f" ({hub.connected} sockets: one-off allocations weigh more)"
            if hub.connected < TARGET_USERS
            else ""
        )
    )

    big = f"{TARGET_BIG_USERS} sockets, {TARGET_BIG_RATE}/s, p99 ≤ {TARGET_BIG_P99_MS:.0f} ms"
    if max(hub.users, hub.users_asked) < TARGET_BIG_USERS:
        lines.append(_mark(None) + f"{big}: not run (--users {TARGET_BIG_USERS})")
    else:
        best = hub.best("bulk", TARGET_BIG_P99_MS)
        all_in = hub.connected >= TARGET_BIG_USERS and not hub.dropped
        rate = best.rate if best else 0
        text = (
            f"{big}: {hub.connected}/{hub.users} connected, {hub.dropped} dropped, "
            f"{rate}/s passed, margin {rate - TARGET_BIG_RATE:+d}/s"
        )
        if hub.users < TARGET_BIG_USERS:  # capped by the machine, not the hub's doing
            lines.append(_mark(None) + text + " (capped by the open-file hard limit)")
        else:
            lines.append(_mark(all_in and rate >= TARGET_BIG_RATE) + text)

    pause = hub.longest_pause_ms
    if pause is None:
        lines.append(
            _mark(None) + f"no collector pause > {TARGET_GC_PAUSE_MS:.0f} ms: the hub does not "
            "expose hub_gc_pause_seconds_max on /metrics"
        )
    else:
        lines.append(
            _mark(pause <= TARGET_GC_PAUSE_MS)
            + f"no collector pause > {TARGET_GC_PAUSE_MS:.0f} ms (at {hub.connected} sockets): "
            f"longest {pause:.1f} ms, margin {TARGET_GC_PAUSE_MS - pause:+.1f} ms"
        )
    return lines


def save(results: Sequence[SystemResult], settings: dict, path: Path) -> None:
    """The whole run as JSON, for recording figures."""
    path.parent.mkdir(parents=True, exist_ok=True)
    modes = settings.get("publish") or ["bulk"]
    payload = {
        "settings": settings,
        "systems": [
            {
                **asdict(result),
                "kb_per_connection": result.kb_per_connection,
                "best_rate": {mode: result.best_rate(mode) for mode in modes},
                "capped": {mode: result.capped(mode) for mode in modes},
            }
            for result in results
        ],
        "ratios": ratios(results, modes),
        "targets": targets(results, settings.get("publisher_ceiling", 0.0)),
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _known(cls: type, data: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


def load(path: Path) -> tuple[list[SystemResult], dict]:
    """A run saved by `save`, read back: its SystemResults and its settings (keys a file has
    that the dataclasses do not, such as the derived `best_rate`, are skipped)."""
    payload = json.loads(path.read_text())
    results = []
    for entry in payload["systems"]:
        result = SystemResult(**_known(SystemResult, entry))
        result.steps = [StepResult(**_known(StepResult, step)) for step in entry.get("steps", [])]
        results.append(result)
    return results, payload.get("settings", {})
