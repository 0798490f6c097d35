"""Strictly online replay: sessions in input order; the model learns only from what
came before. All calls of one assistant message run in parallel; the next LLM
turn starts when they are all done. A call fired early at the decision point
runs while the LLM thinks, so the agent waits only for what is left of it.

Chaining (patterns/chain.py) is timed on the sped-up clock: when an early call's
result exists (its start plus its latency) before the agent asks for that call, the
calls that would follow it start then, predicted from a provisional continuation. A
speculative call's latency and result are those of the same call in the session when
the agent makes it; a call the agent never makes has no known result, so nothing is
chained from it (replay undercounts the waste of chains under wrong guesses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from prefire.patterns.chain import Chain, Link, chain_candidates, continuation
from prefire.patterns.dataflow import discover
from prefire.patterns.events import Event, LLMRequest, SessionKey, ToolCall, ToolResult
from prefire.patterns.model import Candidate, PatternModel, call_key
from prefire.patterns.policy import fire_by_value
from prefire.replay.sources import ReplaySession
from prefire.rules.ruleset import DEFAULT_COST, Budgets

Eligible = Callable[[str, ReplaySession], bool]
# the learning curve: scored sessions grouped by their position in the input, from 1
CURVE = (("1-5", 1, 5), ("6-20", 6, 20), ("21+", 21, None))


class Predictor(Protocol):
    def observe(self, event: Any) -> None: ...

    def predict(self, session: SessionKey, limit: int = 8) -> list[Candidate]: ...

    def end_session(self, session: SessionKey) -> None: ...


@dataclass(slots=True)
class ToolRow:
    calls: int = 0
    eligible: int = 0
    hits: int = 0
    prefired: int = 0
    used: int = 0
    tool_time_s: float = 0.0
    hidden_s: float = 0.0


@dataclass(slots=True)
class Totals:
    sessions: int = 0
    tool_calls: int = 0
    eligible_calls: int = 0
    hits: int = 0
    prefired: int = 0
    prefired_used: int = 0
    top1: int = 0
    top3: int = 0
    tool_time_s: float = 0.0
    eligible_tool_time_s: float = 0.0
    hidden_tool_time_s: float = 0.0
    e2e_time_s: float = 0.0
    e2e_time_spec_s: float = 0.0
    # early calls started from another early call's result, and how many were served
    chained_fired: int = 0
    chained_used: int = 0
    # early calls by depth (0: at a decision point; n: n steps of a chain past one)
    depth_fired: dict[int, int] = field(default_factory=dict)
    depth_used: dict[int, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    # the misses counted as first_call_of_session, by what went wrong there
    first_call_misses: dict[str, int] = field(default_factory=dict)
    tools: dict[str, ToolRow] = field(default_factory=dict)
    # calibration: per tenth of predicted probability, [candidates, candidates that came true]
    calibration: list[list[int]] = field(default_factory=lambda: [[0, 0] for _ in range(10)])
    # per CURVE group: [sessions, tool calls, eligible calls, hits, top-1]
    curve: list[list[int]] = field(default_factory=lambda: [[0] * 5 for _ in CURVE])

    def curve_table(self) -> dict[str, dict[str, float]]:
        """Hit rate and top-1 by how many sessions of the input came before."""
        return {
            name: {
                "sessions": n,
                "tool_calls": calls,
                "eligible_calls": eligible,
                "hit_rate": round(hits / eligible, 4) if eligible else 0.0,
                "next_call_top1": round(top1 / calls, 4) if calls else 0.0,
            }
            for (name, _, _), (n, calls, eligible, hits, top1) in zip(
                CURVE, self.curve, strict=True
            )
        }

    def calibration_table(self) -> list[dict[str, float]]:
        return [
            {
                "p_from": i / 10,
                "p_to": (i + 1) / 10,
                "candidates": n,
                "came_true": round(k / n, 4) if n else 0.0,
            }
            for i, (n, k) in enumerate(self.calibration)
        ]

    def summary(self) -> dict[str, Any]:
        def ratio(a: float, b: float) -> float:
            return round(a / b, 4) if b else 0.0

        return {
            "sessions": self.sessions,
            "tool_calls": self.tool_calls,
            "eligible_calls": self.eligible_calls,
            "hits": self.hits,
            "hit_rate": ratio(self.hits, self.eligible_calls),
            "prefired": self.prefired,
            "prefired_used": self.prefired_used,
            "precision": ratio(self.prefired_used, self.prefired),
            "next_call_top1": ratio(self.top1, self.tool_calls),
            "next_call_top3": ratio(self.top3, self.tool_calls),
            "tool_time_s": round(self.tool_time_s, 3),
            "hidden_tool_time_s": round(self.hidden_tool_time_s, 3),
            "hidden_fraction": ratio(self.hidden_tool_time_s, self.eligible_tool_time_s),
            "e2e_time_s": round(self.e2e_time_s, 3),
            "e2e_time_spec_s": round(self.e2e_time_spec_s, 3),
            "e2e_reduction": ratio(self.e2e_time_s - self.e2e_time_spec_s, self.e2e_time_s),
            "wasted_per_hit": ratio(self.prefired - self.prefired_used, self.hits),
            "chained_fired": self.chained_fired,
            "chained_used": self.chained_used,
            "depth_fired": {str(d): n for d, n in sorted(self.depth_fired.items())},
            "depth_used": {str(d): n for d, n in sorted(self.depth_used.items())},
        }


@dataclass(frozen=True, slots=True)
class CallScore:
    """How replay scored one real tool call (`Simulation.replay` returns them per session;
    the totals are their sum)."""

    session: str  # the ReplaySession's id
    call_id: str
    tool: str
    latency: float
    top1: bool  # the predictor's first candidate at the decision point before it
    top3: bool
    eligible: bool
    hit_depth: int | None  # None: no early start answered it; else that start's chain depth
    wait: float  # what the agent still waited for it
    miss: str | None  # an eligible call with no early start: why
    first_call_miss: str | None  # the miss was the session's first call: what went wrong

    @property
    def hit(self) -> bool:
        return self.hit_depth is not None


@dataclass(slots=True)
class _Early:
    """An early call on the sped-up clock of its session."""

    link: Link
    start: float
    ready: float
    last_turn: int  # the model's turn after which it is no longer served


@dataclass(slots=True)
class _Turn:
    llm_s: float
    candidates: list[Candidate]
    first: bool
    ask: float = 0.0  # when the LLM emits this turn's calls, on the sped-up clock
    results_in: bool = False  # the model has begun to see this turn's results
    waits: list[tuple[float, float]] = field(default_factory=list)  # (tool time, wait)
    called: set[bytes] = field(default_factory=set)


class Simulation:
    def __init__(
        self,
        model: Predictor | None = None,
        eligible: Eligible | None = None,
        budget: Budgets | None = None,
        tool_latency: float = 1.0,
        llm_latency: float = 2.0,
        cost: Callable[[str], float] | None = None,
    ) -> None:
        self.model = model or PatternModel(default_tool_s=tool_latency, default_llm_s=llm_latency)
        self.eligible = eligible or _labelled_eligible
        self.budget = budget or Budgets()
        # what a wasted early call of a tool costs (the rules' `cost`; else the default)
        self.cost = cost or _default_cost
        self.tool_latency = tool_latency
        self.llm_latency = llm_latency
        self.totals = Totals()
        self._curve: list[int] = [0] * 5  # the CURVE row of the session being replayed
        # the session being replayed: its sped-up clock, early calls, chains, and the
        # (latency, result, has result) of each call it makes, by call key
        self._clock = 0.0
        self._early: dict[bytes, _Early] = {}
        self._chain = Chain()
        self._known: dict[bytes, tuple[float, Any, bool]] = {}
        self._app: Any = ""

    def run(self, sessions: Iterable[ReplaySession]) -> Totals:
        for session in sessions:
            self.replay(session)
        return self.totals

    def warm(self, sessions: Iterable[ReplaySession]) -> None:
        """Learn from sessions without scoring them (--warmup)."""
        for session in sessions:
            for event in self._timed(session):
                self.model.observe(event)
            if session.events:
                self.model.end_session(session.events[0].session)

    def replay(self, session: ReplaySession) -> list[CallScore]:
        """Score one session, after those before it, and learn from it; its calls' scores
        (already added to the totals)."""
        if not session.events:
            return []
        key = session.events[0].session
        self.totals.sessions += 1
        self._curve = next(
            row
            for (_, low, high), row in zip(CURVE, self.totals.curve, strict=True)
            if self.totals.sessions >= low and (high is None or self.totals.sessions <= high)
        )
        self._curve[0] += 1
        self._start_session(session)
        turn: _Turn | None = None
        decisions = 0
        scores: list[CallScore] = []
        for event in self._timed(session):
            if isinstance(event, LLMRequest):
                self._finish(turn)
                self.model.observe(event)
                llm_s = (
                    session.llm_s[decisions] if decisions < len(session.llm_s) else self.llm_latency
                )
                # enough for top-3 and for the firing budget, with room for ineligible tools
                candidates = self.model.predict(event.session, limit=self.budget.max_per_turn + 3)
                turn = _Turn(llm_s, candidates, first=decisions == 0, ask=self._clock + llm_s)
                self._decide(event.session, turn, session)
                decisions += 1
            elif isinstance(event, ToolCall):
                if turn is None:  # calls with no decision point before them cannot be predicted
                    turn = _Turn(self.llm_latency, [], first=True, ask=self._clock)
                scores.append(self._score_call(event, session, turn))
                self._count(scores[-1])
                self.model.observe(event)
            else:
                if isinstance(event, ToolResult) and turn is not None and not turn.results_in:
                    # the turn's calls are done: what chains from their results (early calls
                    # the agent waited for) starts when each result exists, before the model
                    # learns the results and the next decision point comes
                    turn.results_in = True
                    if self.budget.max_chain_depth > 0 and isinstance(self.model, PatternModel):
                        self._chain_ready(event.session, session, float("inf"))
                self.model.observe(event)
        self._finish(turn)
        self.model.end_session(key)
        return scores

    def _timed(self, session: ReplaySession) -> Iterator[Event]:
        """The session's events on the simulation's clock, which the model learns its
        latencies from (an OpenAI-messages line has no times): an LLM turn takes its
        recorded time or --llm-latency, a call its recorded time or --tool-latency, and
        the next request goes when the turn's calls are done."""
        # from the session's own start, so a captured session keeps its wall-clock day
        # (relative dates in the user's words count from it); OpenAI JSONL starts at 0
        now = turn_end = session.events[0].t if session.events else 0.0
        calls_at: float | None = None
        decisions = 0
        ends: dict[str, float] = {}
        for event in session.events:
            if isinstance(event, LLMRequest):
                now = max(now, turn_end)
                llm_s = (
                    session.llm_s[decisions] if decisions < len(session.llm_s) else self.llm_latency
                )
                decisions += 1
                calls_at = now + llm_s
                yield replace(event, t=now)
            elif isinstance(event, ToolCall):
                t = now if calls_at is None else calls_at
                end = ends[event.call_id] = t + session.tool_s.get(event.call_id, self.tool_latency)
                turn_end = max(turn_end, end)
                yield replace(event, t=t)
            elif isinstance(event, ToolResult):
                yield replace(event, t=ends.get(event.call_id, now))
            else:
                yield replace(event, t=now)

    def _start_session(self, session: ReplaySession) -> None:
        self._clock = 0.0
        self._early = {}
        self._chain = Chain()
        self._known = {}
        ids: dict[str, bytes] = {}
        for event in session.events:
            if isinstance(event, ToolCall):
                key = call_key(event.name, event.arguments)
                if key not in self._known:
                    ids[event.call_id] = key
                    latency = session.tool_s.get(event.call_id, self.tool_latency)
                    self._known[key] = (latency, None, False)
            elif isinstance(event, ToolResult) and event.call_id in ids:
                key = ids.pop(event.call_id)
                self._known[key] = (self._known[key][0], event.content, True)

    def _decide(self, key: SessionKey, turn: _Turn, session: ReplaySession) -> None:
        """A decision point: drop what can no longer be served, fire the candidates, and
        chain from every early result that exists before the LLM emits its calls."""
        chaining = self.budget.max_chain_depth > 0 and isinstance(self.model, PatternModel)
        mem = self.model.memory(key) if isinstance(self.model, PatternModel) else None
        now_turn = mem.turn if mem is not None else 0
        self._app = mem.app if mem is not None else ""
        called = mem.called if mem is not None else set[bytes]()
        for link in self._chain.orphans(now_turn, called):
            self._early.pop(link.key, None)
        for k in [k for k, e in self._early.items() if e.last_turn < now_turn]:
            del self._early[k]
        self._chain.forget(now_turn, self.budget.max_chain_depth)

        def fire(c: Candidate) -> bool:
            if not self.eligible(c.tool, session) or c.key in self._early:
                return False
            link = self._chain.root(c.tool, c.arguments, c.probability, now_turn)
            self._start(link, self._clock)
            return True

        fire_by_value(turn.candidates, self.cost, self.budget, fire, self._running(self._clock))
        if chaining:
            self._chain_ready(key, session, turn.ask)

    def _chain_ready(self, key: SessionKey, session: ReplaySession, until: float) -> None:
        """Chain from every early result that exists before `until` and that the model
        does not hold yet, in the order they exist (each may start calls whose results
        exist sooner than the next)."""
        assert isinstance(self.model, PatternModel)
        mem = self.model.memory(key)
        answered = {r.key for r in mem.calls if r.has_result}
        while True:
            ready = [
                e
                for e in self._early.values()
                if not e.link.chained
                and e.ready < until
                and e.link.depth < self.budget.max_chain_depth
                and e.link.key not in answered
                and self._known.get(e.link.key, (0, None, False))[2]
            ]
            if not ready:
                return
            early = min(ready, key=lambda e: (e.ready, e.link.key))
            self._chain_from(key, early, session)

    def _chain_from(self, key: SessionKey, parent: _Early, session: ReplaySession) -> None:
        link = parent.link
        link.chained, link.has_result = True, True
        link.result = self._known[link.key][1]
        assert isinstance(self.model, PatternModel)
        mem = self.model.memory(key)
        answered = {r.key for r in mem.calls if r.has_result}
        layers = self._chain.layers(link, mem.called, answered)
        candidates = chain_candidates(
            continuation(self.model, key, layers, limit=self.budget.max_per_turn + 3),
            link.probability,
        )

        def fire(c: Candidate) -> bool:
            if c.key in self._chain.links or not self.eligible(c.tool, session):
                return False
            self._start(self._chain.child(link, c), parent.ready)
            return True

        fire_by_value(candidates, self.cost, self.budget, fire, self._running(parent.ready))

    def _start(self, link: Link, at: float) -> None:
        latency = self._known.get(link.key, (self._expected_s(link.tool), None, False))[0]
        self._early[link.key] = _Early(link, at, at + latency, link.turn + link.depth)
        self.totals.prefired += 1
        self._row(link.tool).prefired += 1
        self.totals.depth_fired[link.depth] = self.totals.depth_fired.get(link.depth, 0) + 1
        if link.depth:
            self.totals.chained_fired += 1

    def _expected_s(self, tool: str) -> float:
        if isinstance(self.model, PatternModel):
            return self.model.latency.tool_s(self._app, tool)
        return self.tool_latency

    def _running(self, t: float) -> int:
        """Early calls in flight at time `t`, for the concurrency cap."""
        return sum(1 for e in self._early.values() if e.start <= t < e.ready)

    def _score_call(self, call: ToolCall, session: ReplaySession, turn: _Turn) -> CallScore:
        """Score one real call at its turn: did the ranking hold it, was an early start
        waiting for it, and how long the agent still waited. Uses the early start up."""
        latency = session.tool_s.get(call.call_id, self.tool_latency)
        key = call_key(call.name, call.arguments)
        turn.called.add(key)
        ranked = [c.key for c in turn.candidates]
        eligible = self.eligible(call.name, session)
        early = self._early.pop(key, None) if eligible else None
        wait, miss, first_miss = latency, None, None
        if early is not None:
            wait = max(0.0, min(latency, early.ready - turn.ask))
        elif eligible:
            miss = self._why(call, turn, key, ranked)
            if turn.first:
                miss, first_miss = "first_call_of_session", miss
        turn.waits.append((latency, wait))
        return CallScore(
            session=session.id,
            call_id=call.call_id,
            tool=call.name,
            latency=latency,
            top1=ranked[:1] == [key],
            top3=key in ranked[:3],
            eligible=eligible,
            hit_depth=early.link.depth if early is not None else None,
            wait=wait,
            miss=miss,
            first_call_miss=first_miss,
        )

    def _count(self, score: CallScore) -> None:
        """Add one scored call to the totals, its tool's row and the learning curve."""
        t, row, curve = self.totals, self._row(score.tool), self._curve
        t.tool_calls += 1
        row.calls += 1
        curve[1] += 1
        t.tool_time_s += score.latency
        row.tool_time_s += score.latency
        t.top1 += score.top1
        curve[4] += score.top1
        t.top3 += score.top3
        if not score.eligible:
            return
        t.eligible_calls += 1
        row.eligible += 1
        curve[2] += 1
        t.eligible_tool_time_s += score.latency
        if score.hit_depth is not None:
            depth = score.hit_depth
            t.hits += 1
            t.prefired_used += 1
            curve[3] += 1
            row.hits += 1
            row.used += 1
            t.depth_used[depth] = t.depth_used.get(depth, 0) + 1
            t.chained_used += depth > 0
            t.hidden_tool_time_s += score.latency - score.wait
            row.hidden_s += score.latency - score.wait
        if score.miss is not None:
            t.misses[score.miss] = t.misses.get(score.miss, 0) + 1
        if score.first_call_miss is not None:
            why = score.first_call_miss
            t.first_call_misses[why] = t.first_call_misses.get(why, 0) + 1

    def _why(self, call: ToolCall, turn: _Turn, key: bytes, ranked: list[bytes]) -> str:
        if key in ranked:
            return "predicted_not_fired"
        if call.name not in {c.tool for c in turn.candidates}:
            return "wrong_tool"
        if not isinstance(self.model, PatternModel) or not isinstance(call.arguments, dict):
            return "wrong_arguments"
        mem = self.model.memory(call.session)
        kinds: set[str] = set()
        predicted = [c.arguments for c in turn.candidates if c.tool == call.name]
        for name, value in call.arguments.items():
            if any(isinstance(p, dict) and p.get(name) == value for p in predicted):
                continue
            kinds |= {source[0] for source in discover(value, mem)}
        if "res" in kinds or "arg" in kinds:
            return "argument_from_result"
        if "user" in kinds:
            return "argument_from_user_text"
        if "ctx" in kinds:
            return "argument_from_client_context"
        return "argument_new_value"

    def _finish(self, turn: _Turn | None) -> None:
        if turn is None:
            return
        for c in turn.candidates:
            bucket = self.totals.calibration[min(9, int(c.probability * 10))]
            bucket[0] += 1
            bucket[1] += c.key in turn.called
        base = turn.llm_s + max((lat for lat, _ in turn.waits), default=0.0)
        spec = turn.llm_s + max((wait for _, wait in turn.waits), default=0.0)
        self.totals.e2e_time_s += base
        self.totals.e2e_time_spec_s += spec
        self._clock += spec

    def _row(self, tool: str) -> ToolRow:
        row = self.totals.tools.get(tool)
        if row is None:
            row = self.totals.tools[tool] = ToolRow()
        return row


def _labelled_eligible(tool: str, session: ReplaySession) -> bool:
    """Without rules: every tool, except those the workload labels as writes."""
    return session.labels.get(tool, "read") != "write"


def _default_cost(tool: str) -> float:
    return DEFAULT_COST
