"""The report of `prefire replay --live`, typed: what `--json` prints (`LiveReport.to_json`,
whose key names and order users' scripts read, so a field's name is its JSON key unless
its metadata names another), and the table printed without `--json`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

# the field `pass_` is `pass` in JSON (a Python keyword)
_PASS_KEY = {"json": "pass"}


def to_json(value: Any) -> Any:
    """Dataclasses as objects (fields in order, keyed by name or metadata "json"), down
    through lists and dicts; anything else as it is."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.metadata.get("json", f.name): to_json(getattr(value, f.name)) for f in fields(value)
        }
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


@dataclass(slots=True)
class Difference:
    """Calls that were a hit live and not offline, or the other way round, for one reason."""

    calls: int
    tools: list[str]
    why: str


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    label: str
    file: str
    requests: int
    tool_calls: int
    baseline_s: float
    speculative_s: float
    reduction: float
    hits: int
    eager_hits: int
    chained_hits: int
    promotions: int
    fired: int
    wasted: int
    identical: bool  # every response byte-identical in both passes
    same_as_recorded: bool
    offline_hits: int
    hits_differ: dict[str, Difference]


@dataclass(frozen=True, slots=True)
class TotalsRow:
    sessions: int
    requests: int
    requests_sent: dict[str, int]  # by pass
    tool_calls: int
    baseline_s: float  # the pass's wall time
    speculative_s: float
    reduction: float
    hits: int
    eager_hits: int
    chained_hits: int
    # hits by the chain depth of the early call that served them (0: a decision point)
    depth_used: dict[str, int]
    promotions: int
    fired: int
    wasted: int
    failed: int
    identical: bool
    same_as_recorded: bool
    offline_hits: int
    offline_prefired: int
    offline_prefired_used: int


@dataclass(frozen=True, slots=True)
class DoorRow:
    """A request that reached a playback door."""

    tool: str | None
    method: str
    url: str
    why: str
    answered_after_s: float


@dataclass(frozen=True, slots=True)
class UnmatchedDoor:
    """A request of the agent's that no recorded response answered."""

    pass_: str = field(metadata=_PASS_KEY)
    tool: str | None
    method: str
    url: str
    why: str
    answered_after_s: float


@dataclass(frozen=True, slots=True)
class UnmatchedRequest:
    """A request the proxy sent that matches no recorded request."""

    pass_: str = field(metadata=_PASS_KEY)
    url: str
    why: str


@dataclass(frozen=True, slots=True)
class UnansweredRecording:
    """A request recorded without a response (answered with 502 in both passes)."""

    pass_: str = field(metadata=_PASS_KEY)
    method: str
    url: str
    why: str


Unmatched = UnmatchedDoor | UnmatchedRequest | UnansweredRecording


@dataclass(frozen=True, slots=True)
class ClientError:
    pass_: str = field(metadata=_PASS_KEY)
    method: str
    url: str
    error: str


@dataclass(frozen=True, slots=True)
class WorstGap:
    error: float
    step: int
    recorded_gap_s: float
    replayed_gap_s: float


@dataclass(frozen=True, slots=True)
class StreamTiming:
    """How closely forwarded streams kept their recorded chunk timing (errors as shares)."""

    streams: int
    gaps: int
    median_gap_error: float
    max_gap_error: float
    max_stream_error: float
    worst: WorstGap | None


@dataclass(frozen=True, slots=True)
class TimelineRequest:
    step: int
    kind: str
    label: str
    start: float  # from the session's first request in that pass
    end: float
    recorded_s: float
    served: str | None  # how prefire answered it early, if it did
    promoted: bool
    depth: int | None  # the chain depth of the early call that served it


@dataclass(frozen=True, slots=True)
class TimelineEarly:
    tool: str
    start: float
    end: float
    recorded: bool
    served: str | None  # how it started, known once it served the agent's request
    depth: int | None


@dataclass(frozen=True, slots=True)
class PassTimeline:
    requests: list[TimelineRequest]
    early: list[TimelineEarly]


@dataclass(frozen=True, slots=True)
class SessionTimeline:
    """What the HTML draws for one session (the passes are named as in live.PASSES)."""

    id: str
    label: str
    baseline: PassTimeline
    speculative: PassTimeline


@dataclass(frozen=True, slots=True)
class LiveReport:
    inputs: list[str]
    rules: str
    speed: float
    warmup: str | None
    sessions: list[SessionRow]
    totals: TotalsRow
    speculative_requests: dict[str, int]  # prefire's early calls, by tool
    upstream_calls: dict[str, dict[str, int]]  # by pass, by tool: what reached the servers
    unrecorded_speculative: list[DoorRow]
    unmatched: list[Unmatched]
    client_errors: list[ClientError]
    stream_timing: dict[str, StreamTiming]  # by pass
    input_errors: list[str]
    notes: list[str]
    timelines: list[SessionTimeline]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = to_json(self)
        return out


def format_table(report: LiveReport) -> str:
    t = report.totals
    lines = [
        f"prefire replay --live: {len(report.inputs)} file(s), {t.sessions} sessions, "
        f"{t.requests} requests a pass, speed {report.speed:g}, rules: {report.rules}",
        "",
        f"{'session':<34}{'reqs':>5}{'calls':>6}{'baseline':>10}{'spec':>9}{'saved':>8}"
        f"{'hits':>6}{'prom':>6}{'waste':>6}{'same':>6}{'offl':>6}",
    ]
    for s in report.sessions:
        lines.append(_row(f"{s.id} {s.label}", s))
    lines.append(_row("total (wall time of each pass)", t))
    lines.append("")
    lines.append(
        "same: every response the client got was byte-identical in both passes; offl: hits "
        "offline replay scores for the same capture and rules"
    )
    lines += _differ_lines(report) + _request_lines(report) + _timing_lines(report)
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _row(name: str, r: SessionRow | TotalsRow) -> str:
    return (
        f"{name[:33]:<34}{r.requests:>5}{r.tool_calls:>6}{r.baseline_s:>9.2f}s"
        f"{r.speculative_s:>8.2f}s{r.reduction:>8.1%}{r.hits:>6}"
        f"{r.promotions:>6}{r.wasted:>6}{'yes' if r.identical else 'NO':>6}"
        f"{r.offline_hits:>6}"
    )


def _differ_lines(report: LiveReport) -> list[str]:
    differ = [(s.id, d) for s in report.sessions for d in s.hits_differ.values()]
    if not differ:
        return []
    lines = ["", "where live and offline hits differ:"]
    for sid, d in differ:
        lines.append(f"  {sid}: {d.calls} call(s) ({', '.join(d.tools)}): {d.why}")
    return lines


def _request_lines(report: LiveReport) -> list[str]:
    lines: list[str] = []
    if report.unrecorded_speculative:
        lines += ["", "early calls with no recorded answer (counted as wasted):"]
        by_tool = Counter((d.tool or d.url) for d in report.unrecorded_speculative)
        lines += [f"  {name}: {n}" for name, n in by_tool.most_common()]
    if report.unmatched:
        lines += ["", "unmatched requests:"]
        for u in report.unmatched:
            method = getattr(u, "method", "")
            lines.append(f"  [{u.pass_}] {method} {u.url}: {u.why}")
    if report.client_errors:
        lines += ["", "requests the playback client could not complete:"]
        for e in report.client_errors:
            lines.append(f"  [{e.pass_}] {e.method} {e.url}: {e.error}")
    return lines


def _timing_lines(report: LiveReport) -> list[str]:
    timing = report.stream_timing["baseline"]
    if not timing.gaps:
        return []
    return [
        "",
        f"stream timing (baseline): {timing.streams} streams, {timing.gaps} chunk gaps "
        f"of 50 ms or more, replayed within {timing.median_gap_error:.1%} (median) and "
        f"{timing.max_gap_error:.1%} (worst) of the recording; whole streams within "
        f"{timing.max_stream_error:.1%}",
    ]
