"""Properties of the model and the simulation on random sessions (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from prefire.patterns.events import (
    LLMRequest,
    SessionKey,
    ToolCall,
    ToolResult,
    ToolsOffered,
    ToolSpec,
    UserMessage,
)
from prefire.patterns.model import PatternModel
from prefire.replay.simulate import Simulation
from prefire.replay.sources import ReplaySession

NAMES = ["alpha", "beta", "gamma", "delta", "eps"]
values = st.one_of(st.integers(-5, 5), st.sampled_from(["x", "y", "Paris", "a, b"]), st.booleans())
calls = st.tuples(
    st.sampled_from(NAMES), st.dictionaries(st.sampled_from(["a", "b", "c"]), values, max_size=2)
)
results = st.one_of(
    values, st.dictionaries(st.sampled_from(["a", "id", "items"]), values, max_size=3)
)
turns = st.lists(st.lists(st.tuples(calls, results), min_size=1, max_size=3), max_size=5)
sessions_st = st.lists(
    st.tuples(
        st.sets(st.sampled_from(NAMES), min_size=1),
        st.sampled_from(["go", "find Paris", "x y"]),
        turns,
    ),
    min_size=1,
    max_size=12,
)


def build(i: int, offered: set[str], text: str, session_turns: list) -> ReplaySession:
    key = SessionKey("s", f"p{i}")
    events: list = [
        ToolsOffered(session=key, t=0.0, tools=tuple(ToolSpec(n) for n in sorted(offered))),
        UserMessage(session=key, t=0.0, text=text),
        LLMRequest(session=key, t=0.0, api="t"),
    ]
    n = 0
    for turn in session_turns:
        ids = []
        for (name, args), _ in turn:
            if name not in offered:
                continue
            n += 1
            ids.append(f"c{n}")
            events.append(ToolCall(session=key, t=0.0, call_id=f"c{n}", name=name, arguments=args))
        for cid, (_, result) in zip(ids, turn, strict=False):
            events.append(ToolResult(session=key, t=0.0, call_id=cid, content=result))
        events.append(LLMRequest(session=key, t=0.0, api="t"))
    return ReplaySession(key.conversation, events)


@settings(max_examples=150, deadline=None)
@given(sessions_st)
def test_predictions_only_name_offered_tools(sessions: list) -> None:
    model = PatternModel()
    for i, (offered, text, session_turns) in enumerate(sessions):
        s = build(i, offered, text, session_turns)
        for e in s.events:
            model.observe(e)
            if isinstance(e, LLMRequest):
                for c in model.predict(e.session):
                    assert c.tool in offered
                    assert 0.0 <= c.probability <= 1.0 + 1e-9
                    assert c.value >= 0.0
        model.end_session(s.events[0].session)


@settings(max_examples=150, deadline=None)
@given(sessions_st, st.floats(0.1, 5.0), st.floats(0.1, 5.0))
def test_simulation_time_accounting_is_consistent(
    sessions: list, tool_s: float, llm_s: float
) -> None:
    sim = Simulation(tool_latency=tool_s, llm_latency=llm_s)
    sim.run(build(i, *s) for i, s in enumerate(sessions))
    t = sim.totals
    r = t.summary()
    assert t.e2e_time_spec_s <= t.e2e_time_s + 1e-9
    assert t.hits <= t.eligible_calls <= t.tool_calls
    assert t.prefired_used <= t.prefired and t.prefired_used == t.hits
    assert t.top1 <= t.top3 <= t.tool_calls
    assert t.hidden_tool_time_s <= t.eligible_tool_time_s + 1e-9
    assert 0.0 <= r["hidden_fraction"] <= 1.0 and 0.0 <= r["e2e_reduction"] <= 1.0
    # every hit hides min(tool time, LLM time) and nothing else
    assert abs(t.hidden_tool_time_s - t.hits * min(tool_s, llm_s)) < 1e-6
