"""What live playback will send, in which order, and what waits for what.

Captured flows become steps. Each step belongs to a session (an LLM conversation, found
by the same observer and session linking as the live proxy and offline replay) or is
shared (MCP set-up and tool lists, anything no conversation claims). A tool request
joins the conversation whose LLM asked for that call: MCP `tools/call` by tool and
arguments, a REST request when it carries every argument of the call.

Ordering, from the recorded timestamps, per input file:
- a step is sent after the previous step of its session (shared steps: after the
  previous step) has been sent;
- it waits for every response of its session, and every shared response, that had
  arrived before it was sent in the recording; a session's first step waits for the
  response that last arrived before it, whichever session it was in (an agent that
  starts task 5 when task 1 ends);
- then it waits the pause the agent took after the last of those, as recorded.
Server-push streams (GET .. text/event-stream) are sent like the rest but nothing
waits for them. Input files are played one after the other.
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from prefire.patterns.canonical import loads_or_none
from prefire.patterns.events import (
    Event,
    ToolCall,
    ToolExchange,
    UserMessage,
)
from prefire.patterns.model import call_key
from prefire.replay import sources
from prefire.replay.errors import InputError
from prefire.replay.flows import observe_flow
from prefire.replay.recorded import Recorded, read_file
from prefire.replay.sources import ReplaySession, group_sessions
from prefire.rules.rest import derive
from prefire.wire.observer import Observer

SHARED = ""
_REST_WINDOW = 64  # recent calls a REST request may be the execution of


class PlanError(Exception):
    """The inputs cannot be played: the message says which and why."""


@dataclass(slots=True)
class Step:
    index: int
    rec: Recorded
    segment: int
    session: str = SHARED
    kind: str = "http"  # llm | tool | mcp | http
    label: str = ""
    after: int | None = None  # sent after this step has been sent
    deps: list[int] = field(default_factory=list)  # sent after these have been answered
    pause_s: float = 0.0  # recorded pause after the last dependency (or the file's start)
    latency_override: float | None = None  # the recorded time is not the server's
    call_id: str = ""  # a tool step: the call it ran

    @property
    def background(self) -> bool:
        return self.rec.background


@dataclass(slots=True)
class Call:
    call_id: str
    tool: str
    step: int | None  # the step that ran it, if it ran over HTTP


@dataclass(slots=True)
class SessionPlan:
    id: str
    key: str  # the observer's session key, as offline replay names it
    label: str
    file: str
    steps: list[int] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    files: list[Path]
    steps: list[Step]
    sessions: dict[str, SessionPlan]
    segments: list[list[int]]  # step indices per file, in recorded start order
    errors: list[InputError]
    offline: list[ReplaySession]  # the same flows as offline replay reads them
    tools: ToolIndex | None  # recorded times and URL shapes of the tools
    notes: list[str]
    origins: dict[tuple[str, int], str]  # (host, port) -> scheme, as recorded
    shortened_pauses: int = 0


def capture_files(inputs: list[Path]) -> list[Path]:
    """The flow files named, a capture directory standing for its flows-*.mitm files."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sources.capture_files(path)
            if not found:
                raise PlanError(f"{path}: a directory with no flows-*.mitm (or *.mitm) files")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise PlanError(f"{path}: no such file or directory")
    return files


def build(inputs: list[Path], max_pause_s: float = 30.0, tool_latency_s: float = 1.0) -> Plan:
    files = capture_files(inputs)
    plan = Plan(files, [], {}, [], [], [], None, [], {})
    session_of_key: dict[str, str] = {}
    for segment, path in enumerate(files):
        recs: list[Recorded] = []
        for item in read_file(path):
            if isinstance(item, InputError):
                plan.errors.append(item)
            else:
                recs.append(item)
        base = len(plan.steps)
        steps = [Step(base + i, rec, segment) for i, rec in enumerate(recs)]
        events = _assign(path, steps, plan.errors)
        offline = list(group_sessions(events, str(path)))
        plan.offline += offline
        # sessions are numbered in the order they start
        for step in sorted(steps, key=lambda s: (s.rec.t_start, s.rec.number)):
            if step.session and step.session not in session_of_key:
                sid = f"s{len(plan.sessions) + 1}"
                session_of_key[step.session] = sid
                plan.sessions[sid] = SessionPlan(sid, step.session, "", str(path))
        for step in steps:
            if step.session:
                step.session = session_of_key[step.session]
        _calls_and_labels(plan, steps, events, session_of_key)
        plan.steps += steps
        order = sorted(steps, key=lambda s: (s.rec.t_start, s.rec.number))
        plan.segments.append([s.index for s in order])
        plan.shortened_pauses += _dependencies(order, max_pause_s)
    for step in plan.steps:
        if step.session:
            plan.sessions[step.session].steps.append(step.index)
        rec = step.rec
        plan.origins.setdefault((rec.host, rec.port), rec.scheme)
    plan.tools = ToolIndex(plan.steps)
    _served_when_captured(plan, plan.tools, tool_latency_s)
    if plan.shortened_pauses:
        plan.notes.append(
            f"{plan.shortened_pauses} recorded pauses longer than {max_pause_s:g} s were "
            f"shortened to {max_pause_s:g} s (--max-pause)"
        )
    truncated = sum(s.rec.truncated for s in plan.steps)
    if truncated:
        plan.notes.append(
            f"{truncated} streamed responses were captured only in part (above --max-body); "
            "they are played back as captured"
        )
    return plan


def _assign(path: Path, steps: list[Step], errors: list[InputError]) -> list[Event]:
    """Run the steps through an observer in file order (as offline replay does) and give
    each its session, kind and label. Returns every event, in that order.

    An MCP tools/call runs the call with its tool and arguments. A REST request runs a
    call whose every argument it carries; calls with the same values (get_user(U1) and
    list_orders(U1) both fit /users/U1/orders) are told apart by order: requests are
    taken in the order they were sent, each by the first call emitted before it."""
    out: list[Event] = []
    observer = Observer()
    events: list[Event] = []
    pending: dict[bytes, deque[ToolCall]] = defaultdict(deque)
    calls: list[ToolCall] = []
    rest: list[Step] = []
    for step in sorted(steps, key=lambda s: s.rec.number):
        rec = step.rec
        assert rec.flow is not None
        try:
            ex = observe_flow(observer, rec.flow, out)
        except ValueError as exc:  # a body that cannot be decoded: played back all the same
            observer.forget(rec.flow.id)
            errors.append(InputError(str(path), rec.number, f"flow {rec.flow_id}: {exc}"))
            ex = None
        emitted, out[:] = list(out), []
        events += emitted
        if ex is not None and ex.codec is not None:
            step.kind, step.session = "llm", str(ex.session)
            step.label = (ex.parsed.model if ex.parsed is not None else "") or "LLM"
        elif (done := next((e for e in emitted if isinstance(e, ToolExchange)), None)) is not None:
            step.kind, step.label = "tool", done.name
            queue = pending.get(call_key(done.name, done.arguments))
            if queue:
                call = queue.popleft()
                step.session, step.call_id = str(call.session), call.call_id
        elif _is_jsonrpc(rec):
            step.kind, step.label = "mcp", _jsonrpc_method(rec)
        elif any(k.lower() == "mcp-session-id" for k, _ in rec.headers):
            step.kind, step.label = "mcp", f"{rec.method} {rec.path.split('?')[0]}"
        else:
            step.label = f"{rec.method} {rec.path.split('?')[0]}"
            rest.append(step)
        for e in emitted:
            if isinstance(e, ToolCall) and isinstance(e.arguments, dict):
                pending[call_key(e.name, e.arguments)].append(e)
                calls.append(e)
    taken = {(s.session, s.call_id) for s in steps if s.call_id}
    open_calls = [c for c in calls if (str(c.session), c.call_id) not in taken]
    open_calls.sort(key=lambda c: c.t)
    for step in sorted(rest, key=lambda s: (s.rec.t_start, s.rec.number)):
        made = _rest_call(step.rec, open_calls)
        if made is not None:
            open_calls.remove(made)
            step.kind, step.label = "tool", made.name
            step.session, step.call_id = str(made.session), made.call_id
    return events


def _is_jsonrpc(rec: Recorded) -> bool:
    value = loads_or_none(rec.content) if rec.content else None
    return isinstance(value, dict) and "jsonrpc" in value


def _jsonrpc_method(rec: Recorded) -> str:
    value = loads_or_none(rec.content)
    if isinstance(value, dict) and isinstance(value.get("method"), str):
        return value["method"]
    return "JSON-RPC"


def _rest_call(rec: Recorded, open_calls: list[ToolCall]) -> ToolCall | None:
    """The first call emitted before this request (among the last few) that it carries
    every argument of."""
    body: Any = loads_or_none(rec.content) if rec.content else None
    before = [c for c in open_calls if c.t <= rec.t_start][-_REST_WINDOW:]
    for call in before:
        if isinstance(call.arguments, dict) and derive(rec.method, rec.url, body, call.arguments):
            return call
    return None


def _calls_and_labels(
    plan: Plan, steps: list[Step], events: list[Event], session_of_key: dict[str, str]
) -> None:
    """Each session's tool calls (and the step that ran each one), and a label: the
    first words of its first user message."""
    ran = {(s.session, s.call_id): s.index for s in steps if s.call_id}
    seen: set[tuple[str, str]] = set()
    for e in events:
        sid = session_of_key.get(str(e.session))
        if sid is None:
            continue
        session = plan.sessions[sid]
        if isinstance(e, UserMessage) and e.role == "user" and not session.label:
            session.label = " ".join(e.text.split())[:60]
        elif isinstance(e, ToolCall) and (sid, e.call_id) not in seen:
            seen.add((sid, e.call_id))
            session.calls.append(Call(e.call_id, e.name, ran.get((sid, e.call_id))))


def _dependencies(order: list[Step], max_pause_s: float) -> int:
    """Fill in `after`, `deps` and `pause_s` (see the module doc). Returns how many
    recorded pauses were longer than `max_pause_s` and were shortened."""
    if not order:
        return 0
    t0 = order[0].rec.t_start
    session_of = {s.index: s.session for s in order}
    ended: list[tuple[float, int]] = []  # heap of (end, step) of steps already sent
    by_group: dict[str, list[tuple[float, int]]] = defaultdict(list)  # answered, by end
    answered: list[tuple[float, int]] = []  # every answered step, by end
    last_sent: dict[str, Step] = {}
    previous: Step | None = None
    shortened = 0
    for step in order:
        start = step.rec.t_start
        while ended and ended[0][0] <= start:
            end, j = heapq.heappop(ended)
            by_group[session_of[j]].append((end, j))
            answered.append((end, j))
        group = step.session
        prev = last_sent.get(group) if group else previous
        step.after = prev.index if prev is not None else None
        since = prev.rec.t_start if prev is not None else float("-inf")
        # what arrived since the previous step was sent (earlier ones it waited for)
        pools = [by_group[group], by_group[SHARED]] if group else [answered]
        deps: dict[int, float] = {}
        for pool in pools:
            for end, j in pool[bisect.bisect_right(pool, (since, float("inf"))) :]:
                deps[j] = end
        # and the response it answers to: the latest of its own, or for a session's
        # first request the latest of any
        if group and not by_group[group]:
            pools = [answered]
        latest = max((p[-1] for p in pools if p), default=None)
        if latest is not None:
            deps[latest[1]] = latest[0]
        step.deps = sorted(deps)
        anchor = max(deps.values()) if deps else t0
        pause = max(0.0, start - anchor)
        if pause > max_pause_s:
            pause = max_pause_s
            shortened += 1
        step.pause_s = pause
        if group:
            last_sent[group] = step
        previous = step
        if not step.background:
            heapq.heappush(ended, (step.rec.t_end or step.rec.t_sent, step.index))
    return shortened


class ToolIndex:
    """What the recording says about each tool: its mean time (from the requests that
    really ran, not those answered by speculation when captured), and for REST tools the
    shape of their URLs, to name an early call the recording has no answer for."""

    def __init__(self, steps: list[Step]) -> None:
        times: dict[str, list[float]] = defaultdict(list)
        self._shapes: dict[tuple[str, str, int], list[tuple[list[str], str]]] = {}
        for step in steps:
            rec = step.rec
            if step.kind != "tool":
                continue
            if not rec.tool:
                parts = rec.path.split("?")[0].split("/")
                where = (rec.method, f"{rec.scheme}://{rec.host}:{rec.port}", len(parts))
                self._shapes.setdefault(where, []).append((parts, step.label))
            if not rec.served and rec.status is not None:
                times["tool:" + step.label].append(rec.duration_s)
                times[f"origin:{rec.scheme}://{rec.host}:{rec.port}"].append(rec.duration_s)
        self.latencies = {k: mean(v) for k, v in times.items()}

    def rest_tool(self, method: str, scheme: str, host: str, port: int, path: str) -> str | None:
        """The recorded REST tool whose URLs look like this one: same method, origin and
        number of path segments, the most segments in common, at least half of them."""
        parts = path.split("?")[0].split("/")
        where = (method, f"{scheme}://{host}:{port}", len(parts))
        best, score = None, 0
        for known, label in self._shapes.get(where, []):
            same = sum(a == b for a, b in zip(known, parts, strict=True))
            if same > score:
                best, score = label, same
        return best if score * 2 >= len(parts) else None

    def latency(self, tool: str | None, scheme: str, host: str, port: int) -> float | None:
        """The tool's recorded time; for a call no tool can be named for, the mean of the
        tools at that origin; None when the recording has neither."""
        if tool:
            return self.latencies.get("tool:" + tool)
        return self.latencies.get(f"origin:{scheme}://{host}:{port}")


def _served_when_captured(plan: Plan, tools: ToolIndex, default_s: float) -> None:
    """A response prefire served from speculation when it was captured took no tool time:
    play it back with the tool's recorded time from the requests that really ran."""
    served = [s for s in plan.steps if s.rec.served]
    for step in served:
        rec = step.rec
        known = tools.latency(step.label, rec.scheme, rec.host, rec.port)
        step.latency_override = known if known is not None else default_s
    if served:
        plan.notes.append(
            f"{len(served)} responses were answered by speculation when captured (captured "
            "with speculation on): they are played back with the tool's recorded time "
            f"from the requests that really ran, or {default_s:g} s (--tool-latency)"
        )
