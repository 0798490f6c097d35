"""Live playback's report, built from the two passes (`live_client.PassResult`): completion
times, prefire's own counters, whether the responses were byte-identical between the passes
and to the recording, how streams kept their timing, what offline replay says about the
same capture and rules, and the timelines the HTML draws. Pure: no I/O, nothing played."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from statistics import median
from typing import Any

from mitmproxy.net import encoding

from prefire.replay.live_client import PassResult
from prefire.replay.live_report import (
    ClientError,
    Difference,
    DoorRow,
    LiveReport,
    PassTimeline,
    SessionRow,
    SessionTimeline,
    StreamTiming,
    TimelineEarly,
    TimelineRequest,
    TotalsRow,
    UnansweredRecording,
    Unmatched,
    UnmatchedDoor,
    UnmatchedRequest,
    WorstGap,
)
from prefire.replay.plan import Plan, SessionPlan, Step
from prefire.replay.playback import DoorRequest
from prefire.replay.simulate import Simulation, Totals
from prefire.replay.sources import ReplaySession, read
from prefire.rules.ruleset import RuleSet

_MIN_GAP_S = 0.05  # shorter chunk gaps are not judged: a few ms of scheduling noise is 10%


def build_report(
    plan: Plan,
    passes: dict[str, PassResult],
    ruleset: RuleSet,
    rules_path: Path | None,
    speed: float,
    warmup: Path | None,
) -> LiveReport:
    spec = passes["speculative"]
    offline = Offline.of(plan, ruleset, warmup)
    sessions = [_session_row(plan, sid, sp, passes, offline) for sid, sp in plan.sessions.items()]
    early = Counter(d.tool or _short(d.url) for d in spec.state.doors if d.speculative)
    unrecorded = [d for d in spec.state.doors if d.speculative and d.step is None]
    return LiveReport(
        inputs=[str(p) for p in plan.files],
        rules=str(rules_path) if rules_path else "packaged default (allows nothing)",
        speed=speed,
        warmup=str(warmup) if warmup else None,
        sessions=sessions,
        totals=_totals_row(plan, passes, sessions, offline.totals),
        speculative_requests=dict(early.most_common()),
        upstream_calls={
            p.name: dict(sorted(Counter(d.tool for d in p.state.doors if d.tool).items()))
            for p in passes.values()
        },
        unrecorded_speculative=[_door_row(d) for d in unrecorded],
        unmatched=_unmatched(plan, passes),
        client_errors=_client_errors(plan, passes),
        stream_timing={p.name: _stream_timing(plan, p, speed) for p in passes.values()},
        input_errors=[str(e) for e in plan.errors],
        notes=plan.notes + _notes(passes),
        timelines=_timelines(plan, passes),
    )


def _session_row(
    plan: Plan, sid: str, sp: SessionPlan, passes: dict[str, PassResult], offline: Offline
) -> SessionRow:
    base, spec = passes["baseline"], passes["speculative"]
    steps = [plan.steps[i] for i in sp.steps if not plan.steps[i].background]
    b_s, s_s = _completion(base, steps), _completion(spec, steps)
    served = [spec.state.served[s.index] for s in steps if s.index in spec.state.served]
    counters = _session_counters(spec, steps)
    live_hits = {s.index for s in steps if s.index in spec.state.served}
    hit_calls = offline.hit_calls.get(sp.key, set())
    return SessionRow(
        id=sid,
        label=sp.label,
        file=sp.file,
        requests=len(steps),
        tool_calls=len(sp.calls),
        baseline_s=round(b_s, 3),
        speculative_s=round(s_s, 3),
        reduction=_ratio(b_s - s_s, b_s),
        hits=len(served),
        eager_hits=sum(kind == "eager" for kind, _ in served),
        chained_hits=sum(kind == "chained" for kind, _ in served),
        promotions=sum(promoted for _, promoted in served),
        fired=counters.get("fired", 0),
        wasted=_unused(counters),
        identical=_identical(base, spec, steps),
        same_as_recorded=all(_as_recorded(base, s) and _as_recorded(spec, s) for s in steps),
        offline_hits=offline.hits.get(sp.key, 0),
        hits_differ=_differences(plan, sp, spec, hit_calls, live_hits),
    )


def _totals_row(
    plan: Plan, passes: dict[str, PassResult], sessions: list[SessionRow], offline: Totals
) -> TotalsRow:
    base, spec = passes["baseline"], passes["speculative"]
    fg = [s for s in plan.steps if not s.background]
    counted = spec.accounting["totals"]
    return TotalsRow(
        sessions=len(sessions),
        requests=len(plan.steps),
        requests_sent={p.name: len(p.results) for p in passes.values()},
        tool_calls=sum(s.tool_calls for s in sessions),
        baseline_s=round(base.wall_s, 3),
        speculative_s=round(spec.wall_s, 3),
        reduction=_ratio(base.wall_s - spec.wall_s, base.wall_s),
        hits=counted["used"],
        eager_hits=sum(s.eager_hits for s in sessions),
        chained_hits=sum(s.chained_hits for s in sessions),
        depth_used=_depths(spec, fg),
        promotions=counted["promotions"],
        fired=counted["fired"],
        wasted=_unused(counted),
        failed=counted["failed"],
        identical=_identical(base, spec, fg),
        same_as_recorded=all(_as_recorded(base, s) and _as_recorded(spec, s) for s in fg),
        offline_hits=offline.hits,
        offline_prefired=offline.prefired,
        offline_prefired_used=offline.prefired_used,
    )


def _depths(p: PassResult, steps: list[Step]) -> dict[str, int]:
    """Served requests by the chain depth of the early call that answered them, as
    offline replay's `depth_used` counts them (eager starts are depth 0 here)."""
    counts = Counter(p.state.depth.get(s.index, 0) for s in steps if s.index in p.state.served)
    return {str(d): n for d, n in sorted(counts.items())}


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def _unused(counters: dict[str, Any]) -> int:
    """Early calls that answered nothing: wasted, failed or expired."""
    return sum(counters.get(k, 0) for k in ("wasted", "failed", "expired"))


def _completion(p: PassResult, steps: list[Step]) -> float:
    done = [p.results[s.index] for s in steps if s.index in p.results]
    if not done:
        return 0.0
    return max(r.t_end for r in done) - min(r.t_sent for r in done)


def _session_counters(p: PassResult, steps: list[Step]) -> dict[str, Any]:
    keys = {p.live_sessions[s.index] for s in steps if s.index in p.live_sessions}
    out: Counter[str] = Counter()
    for key in keys:
        for k, v in p.session_counters.get(key, {}).items():
            out[k] += v
    return dict(out)


def _identical(a: PassResult, b: PassResult, steps: list[Step]) -> bool:
    for s in steps:
        ra, rb = a.results.get(s.index), b.results.get(s.index)
        if ra is None or rb is None or (ra.status, ra.body) != (rb.status, rb.body):
            return False
    return True


def _recorded_body(raw: bytes, enc: str) -> bytes:
    try:
        decoded = encoding.decode(raw, enc)
    except ValueError:
        return raw
    return decoded if isinstance(decoded, bytes) else raw


def _as_recorded(p: PassResult, s: Step) -> bool:
    r = p.results.get(s.index)
    rec = s.rec
    if r is None or rec.status is None:
        return r is not None and rec.status is None
    enc = next((v for k, v in rec.response_headers if k.lower() == "content-encoding"), "")
    return r.status == rec.status and r.body == _recorded_body(rec.response_body, enc or "identity")


def _short(url: str) -> str:
    return url.split("?")[0]


def _door_row(d: DoorRequest) -> DoorRow:
    return DoorRow(d.tool, d.method, d.url, d.why, round(d.t_end - d.t_start, 3))


def _unmatched(plan: Plan, passes: dict[str, PassResult]) -> list[Unmatched]:
    rows: list[Unmatched] = []
    for p in passes.values():
        for d in p.state.doors:
            if not d.speculative and d.step is None:
                row = _door_row(d)
                rows.append(
                    UnmatchedDoor(
                        p.name, row.tool, row.method, row.url, row.why, row.answered_after_s
                    )
                )
        for text in p.state.unexpected:
            rows.append(UnmatchedRequest(p.name, text, "the proxy sent a request never recorded"))
    for s in plan.steps:
        if s.rec.status is None:
            why = f"recorded without a response ({s.rec.error or 'none'}); answered with 502"
            rows.append(UnansweredRecording("both", s.rec.method, s.rec.url, why))
    return rows


def _client_errors(plan: Plan, passes: dict[str, PassResult]) -> list[ClientError]:
    return [
        ClientError(p.name, plan.steps[i].rec.method, plan.steps[i].rec.url, r.error)
        for p in passes.values()
        for i, r in sorted(p.results.items())
        if r.error
    ]


def _stream_timing(plan: Plan, p: PassResult, speed: float) -> StreamTiming:
    """How closely the streamed responses the proxy forwarded kept their recorded chunk
    timing, at the client: for each recorded gap between chunks of 50 ms or more, the
    replayed gap's error as a share of the recorded one (scaled by the speed); and for
    each stream, the time from its first chunk to its last, likewise."""
    errors: list[float] = []
    spans: list[float] = []
    streams = 0
    worst: WorstGap | None = None
    for s in plan.steps:
        rec, r = s.rec, p.results.get(s.index)
        if rec.chunks is None or len(rec.chunks) < 2 or r is None or s.index in p.state.served:
            continue
        if s.background or r.error or r.t_headers is None:
            continue
        streams += 1
        replayed = _arrival_times(rec.chunks, r.arrivals)
        if replayed is None:
            continue
        span = (rec.chunks[-1][0] - rec.chunks[0][0]) / speed
        if span >= _MIN_GAP_S:
            spans.append(abs((replayed[-1] - replayed[0]) - span) / span)
        for k in range(1, len(rec.chunks)):
            gap = (rec.chunks[k][0] - rec.chunks[k - 1][0]) / speed
            if gap < _MIN_GAP_S:
                continue
            replayed_gap = replayed[k] - replayed[k - 1]
            err = abs(replayed_gap - gap) / gap
            errors.append(err)
            if worst is None or err >= worst.error:
                worst = WorstGap(round(err, 4), s.index, round(gap, 4), round(replayed_gap, 4))
    return StreamTiming(
        streams=streams,
        gaps=len(errors),
        median_gap_error=round(median(errors), 4) if errors else 0.0,
        max_gap_error=round(max(errors), 4) if errors else 0.0,
        max_stream_error=round(max(spans), 4) if spans else 0.0,
        worst=worst,
    )


def _arrival_times(
    chunks: list[tuple[float, int]], arrivals: list[tuple[float, int]]
) -> list[float] | None:
    """When the client had received the bytes of each recorded chunk."""
    out: list[float] = []
    got, k = 0, 0
    need = 0
    for _, size in chunks:
        need += size
        while got < need and k < len(arrivals):
            got += arrivals[k][1]
            k += 1
        if got < need:
            return None
        out.append(arrivals[k - 1][0])
    return out


class Offline:
    """Offline replay of the same flows under the same rules: its totals, and which calls
    it scored as hits (how many, and their call ids), by offline session id."""

    def __init__(
        self, totals: Totals, hits: dict[str, int], hit_calls: dict[str, set[str]]
    ) -> None:
        self.totals = totals
        self.hits = hits
        self.hit_calls = hit_calls

    @classmethod
    def of(cls, plan: Plan, ruleset: RuleSet, warmup: Path | None) -> Offline:
        allowed = functools.cache(lambda tool: ruleset.decide(tool).allowed)
        sim = Simulation(
            eligible=lambda tool, session: allowed(tool),
            budget=ruleset.budgets,
            cost=functools.cache(ruleset.cost),
        )
        if warmup is not None:
            sim.warm(s for s in read([warmup]) if isinstance(s, ReplaySession))
        hits: dict[str, int] = {}
        hit_calls: dict[str, set[str]] = {}
        for session in plan.offline:
            scored = [s.call_id for s in sim.replay(session) if s.hit]
            hits[session.id], hit_calls[session.id] = len(scored), set(scored)
        return cls(sim.totals, hits, hit_calls)


_WHY = {
    "eager": "served by an eager start (the call was certain once the LLM's stream closed "
    "it); offline replay scores predicted starts only",
    "predicted_live_only": "predicted live but not offline: the live model learns as the "
    "requests happen, concurrent sessions interleaved",
    "no_http": "no HTTP request ran this call (a tool local to the agent): nothing to start "
    "early live; offline replay scores it",
    "rest_unlearned": "a REST tool with no binding in the rules: live, prefire learns its URL "
    "only from two earlier calls; offline replay assumes it could call it",
    "not_fired_live": "fired offline, not live (live budgets: concurrency cap, back-off; or "
    "the live model ranked it lower at that moment)",
}


def _differences(
    plan: Plan, sp: SessionPlan, spec: PassResult, offline_hits: set[str], live_hits: set[int]
) -> dict[str, Difference]:
    """Why a call was a hit live and not offline, or the other way round."""
    out: dict[str, Difference] = {}
    for call in sp.calls:
        off = call.call_id in offline_hits
        live = call.step is not None and call.step in live_hits
        if off == live:
            continue
        if call.step is not None and live:
            kind = spec.state.served[call.step][0]
            why = "eager" if kind == "eager" else "predicted_live_only"
        elif call.step is None:
            why = "no_http"
        elif not plan.steps[call.step].rec.tool:
            why = "rest_unlearned"
        else:
            why = "not_fired_live"
        row = out.setdefault(why, Difference(0, [], _WHY[why]))
        row.calls += 1
        if call.tool not in row.tools:
            row.tools.append(call.tool)
    return out


def _notes(passes: dict[str, PassResult]) -> list[str]:
    notes = []
    spec = passes["speculative"]
    unrecorded = sum(1 for d in spec.state.doors if d.speculative and d.step is None)
    if unrecorded:
        notes.append(
            f"{unrecorded} early calls had no recorded answer (the agent never made them): "
            "answered with an error after the tool's recorded time, counted as wasted"
        )
    if any(p.state.unexpected for p in passes.values()):
        notes.append("the proxy sent requests that match no recorded request (see unmatched)")
    notes.append("credentials are redacted in captures, so every session plays back in one scope")
    return notes


def _timelines(plan: Plan, passes: dict[str, PassResult]) -> list[SessionTimeline]:
    """What the HTML draws, per session and pass: each request (sent, headers, end,
    relative to the session's first request in that pass), and prefire's early calls."""
    early_of: dict[tuple[str, str], list[DoorRequest]] = {}
    for p in passes.values():
        for d in p.state.doors:
            if d.speculative and d.step is not None and plan.steps[d.step].session:
                early_of.setdefault((p.name, plan.steps[d.step].session), []).append(d)
    return [
        SessionTimeline(
            id=sid,
            label=sp.label,
            baseline=_pass_timeline(plan, sp, passes["baseline"], early_of.get(("baseline", sid))),
            speculative=_pass_timeline(
                plan, sp, passes["speculative"], early_of.get(("speculative", sid))
            ),
        )
        for sid, sp in plan.sessions.items()
    ]


def _pass_timeline(
    plan: Plan, sp: SessionPlan, p: PassResult, early: list[DoorRequest] | None
) -> PassTimeline:
    results = [p.results[i] for i in sp.steps if i in p.results]
    origin = min((r.t_sent for r in results), default=p.t0)
    rows: list[TimelineRequest] = []
    for i in sp.steps:
        s, r = plan.steps[i], p.results.get(i)
        if r is None or s.background:
            continue
        served = p.state.served.get(i)
        rows.append(
            TimelineRequest(
                step=i,
                kind=s.kind,
                label=s.label,
                start=round(r.t_sent - origin, 4),
                end=round(r.t_end - origin, 4),
                recorded_s=round(s.rec.duration_s, 4),
                served=served[0] if served else None,
                promoted=bool(served and served[1]),
                depth=p.state.depth.get(i, 0) if served else None,
            )
        )
    starts = [
        TimelineEarly(
            tool=d.tool or _short(d.url),
            start=round(d.t_start - origin, 4),
            end=round(d.t_end - origin, 4),
            recorded=d.step is not None,
            served=p.state.served[d.step][0] if d.step in p.state.served else None,
            depth=p.state.depth.get(d.step) if d.step is not None else None,
        )
        for d in early or []
    ]
    rows.sort(key=lambda r: r.start)
    return PassTimeline(rows, starts)
