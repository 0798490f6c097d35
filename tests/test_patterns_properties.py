"""Properties of the model and the simulation on random sessions (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from prefire.patterns.canonical import canonical
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
from prefire.patterns.values import MAX_DEPTH, MAX_LEAVES, leaves
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
    # every hit fired at a decision point hides min(tool time, LLM time) and nothing
    # else; a chained one starts later, when its parent's result exists, and hides less
    assert t.hidden_tool_time_s <= t.hits * min(tool_s, llm_s) + 1e-6
    if t.chained_used == 0:
        assert abs(t.hidden_tool_time_s - t.hits * min(tool_s, llm_s)) < 1e-6


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=40,
)


@given(json_values)
def test_leaves_match_a_plain_depth_first_walk(value: object) -> None:
    """The lazy walk gives what an eager walk serializing every container gives."""
    expected = []
    stack = [((), value)]
    while stack and len(expected) < MAX_LEAVES:
        path, v = stack.pop()
        if isinstance(v, dict | list):
            if len(canonical(v)) <= 256:
                expected.append((path, v))
            if len(path) < MAX_DEPTH:
                items = list(v.items()) if isinstance(v, dict) else list(enumerate(v))
                stack.extend(((*path, k), x) for k, x in reversed(items))
        elif v is not None:
            expected.append((path, v))
    assert list(leaves(value)) == expected


def test_a_huge_result_yields_its_first_leaves_only() -> None:
    big = {"items": [{"id": i, "tags": ["a", "b"]} for i in range(200_000)]}
    out = list(leaves(big))
    assert len(out) == MAX_LEAVES
    # neither the root nor the list is small enough to be a key; the first item is
    assert out[0] == (("items", 0), big["items"][0])
    assert out[1] == (("items", 0, "id"), 0)
    assert all(path[1] < 200 for path, _ in out)


TYPES = ["string", "integer", "number", "boolean"]
schemas_st = st.fixed_dictionaries(
    {n: st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(TYPES)) for n in NAMES}
)


@settings(max_examples=150, deadline=None)
@given(sessions_st, schemas_st)
def test_predictions_never_contradict_the_schema_types(sessions: list, schemas: dict) -> None:
    """Whatever the agent sent before, a predicted argument has a JSON type its schema allows."""
    json_types = {"string": str, "integer": int, "number": (int, float), "boolean": bool}
    specs = {
        n: ToolSpec(
            n,
            parameters={
                "type": "object",
                "properties": {a: {"type": t} for a, t in args.items()},
                "required": sorted(args),
            },
        )
        for n, args in schemas.items()
    }
    model = PatternModel()
    for i, (offered, text, session_turns) in enumerate(sessions):
        s = build(i, offered, text, session_turns)
        offer = ToolsOffered(
            session=s.events[0].session, t=0.0, tools=tuple(specs[n] for n in sorted(offered))
        )
        for e in [offer, *s.events[1:]]:
            model.observe(e)
            if isinstance(e, LLMRequest):
                for c in model.predict(e.session):
                    for name, value in c.arguments.items():
                        want = schemas[c.tool].get(name)
                        if want is None:
                            continue
                        ok = isinstance(value, json_types[want])
                        if want in ("integer", "number"):
                            ok = ok and not isinstance(value, bool)
                        assert ok, (c.tool, name, value, want)
        model.end_session(s.events[0].session)


@settings(max_examples=100, deadline=None)
@given(sessions_st)
def test_the_firing_policy_never_starts_a_tool_the_session_does_not_offer(sessions: list) -> None:
    """Even when every guess is free (cost 0: anything likely fires), the calls offered
    to be started are tools of the session's own tool set."""
    offered_by: dict[str, set[str]] = {}

    def eligible(tool: str, session: ReplaySession) -> bool:
        assert tool in offered_by[session.id]
        return True

    sim = Simulation(eligible=eligible, cost=lambda tool: 0.0)
    for i, (offered, text, session_turns) in enumerate(sessions):
        s = build(i, offered, text, session_turns)
        offered_by[s.id] = offered
        sim.replay(s)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*"0123456789 :/-.,apmAPM", "May ", "tomorrow ", "in ", " weeks", "next "])
    ).map("".join),
    st.one_of(st.none(), st.dates()),
)
def test_reading_values_from_words_never_raises(text: str, today: object) -> None:
    from prefire.patterns.typed import extract, stated_count, stated_date

    got = extract(text, today)
    assert set(got) == {"date", "time", "number", "email"}
    stated_date(text)
    stated_count(text)
