"""Chained speculation: predicting past early calls the agent has not seen yet
(patterns/chain.py), in the model and in the offline simulation."""

from __future__ import annotations

from typing import Any

from prefire.patterns.chain import Chain, Speculative, chain_candidates, continuation
from prefire.patterns.events import LLMRequest, SessionKey, ToolCall
from prefire.patterns.model import Candidate, PatternModel
from prefire.replay.simulate import Simulation
from prefire.replay.sources import ReplaySession
from prefire.rules.ruleset import Budgets
from tests.patterns_util import Script

TOOLS = ["search", "details", "forecast", "book"]
CITIES = ["Lyon", "Porto", "Graz", "Turin", "Ghent", "Malmo", "Bergen", "Split"]


def place(city: str, k: int) -> dict[str, Any]:
    return {"id": f"{city[:2].lower()}{k}", "lat": 40 + k + len(city), "lon": 3 + k * 2}


def chain_session(i: int, city: str, book: bool = False) -> Script:
    """search -> details of each place (fan-out) -> forecast of each place's coordinates."""
    places = [place(city, k) for k in range(3)]
    s = Script(f"c{i}", TOOLS).user(f"What is the weather at the cafes in {city}?")
    s.turn(("search", {"q": city}, {"places": [{"id": p["id"]} for p in places]}))
    s.turn(*[("details", {"id": p["id"]}, p) for p in places])
    s.turn(*[("forecast", {"lat": p["lat"], "lon": p["lon"]}, {"sky": "sun"}) for p in places])
    if book:
        s.turn(("book", {"id": places[0]["id"]}, {"ok": True}))
    return s


def trained(n: int = 5) -> PatternModel:
    m = PatternModel()
    for i in range(n):
        s = chain_session(i, CITIES[i])
        for e in s.events:
            m.observe(e)
        m.end_session(s.key)
    return m


def opened(m: PatternModel, city: str) -> SessionKey:
    """A new session up to its first decision point (the user's message)."""
    s = chain_session(99, city)
    for e in s.events:
        m.observe(e)
        if isinstance(e, LLMRequest):
            return e.session
    raise AssertionError("no decision point")


def test_continuation_predicts_past_speculative_results() -> None:
    m = trained()
    key = opened(m, "Split")
    first = m.predict(key)
    assert (first[0].tool, first[0].arguments) == ("search", {"q": "Split"})
    places = [place("Split", k) for k in range(3)]
    found = Speculative("search", {"q": "Split"}, {"places": [{"id": p["id"]} for p in places]})
    step2 = continuation(m, key, [[found]])
    details = {c.arguments["id"] for c in step2 if c.tool == "details"}
    assert details == {p["id"] for p in places}
    step3 = continuation(m, key, [[found], [Speculative("details", {"id": "sp1"}, places[1])]])
    assert ("forecast", {"lat": places[1]["lat"], "lon": places[1]["lon"]}) in [
        (c.tool, c.arguments) for c in step3
    ]


def test_continuation_leaves_the_session_memory_and_model_untouched() -> None:
    m = trained()
    key = opened(m, "Split")
    mem = m.memory(key)
    before = (
        mem.turn,
        len(mem.calls),
        list(mem.names),
        set(mem.called),
        {k: list(v) for k, v in mem.index.items()},
        dict(mem.by_id),
    )
    flow_before = len(m.flow.table)
    calib_before = m.calibrator.__dict__.copy()
    found = Speculative("search", {"q": "Split"}, {"places": [{"id": "sp0"}]})
    assert continuation(
        m, key, [[found], [Speculative("details", {"id": "sp0"}, place("Split", 0))]]
    )
    after = (
        mem.turn,
        len(mem.calls),
        list(mem.names),
        set(mem.called),
        {k: list(v) for k, v in mem.index.items()},
        dict(mem.by_id),
    )
    assert after == before
    assert len(m.flow.table) == flow_before
    assert m.calibrator.__dict__ == calib_before
    # the real decision point still predicts as before, and records its prediction
    assert m.predict(key)[0].tool == "search"


def test_chain_probability_is_the_product_along_it() -> None:
    m = trained()
    key = opened(m, "Split")
    root = m.predict(key)[0]
    found = Speculative("search", {"q": "Split"}, {"places": [{"id": "sp0"}]})
    raw = continuation(m, key, [[found]])
    scaled = chain_candidates(raw, root.probability)
    for r, c in zip(raw, scaled, strict=True):
        assert c.probability == r.probability * root.probability
        assert c.key == r.key


def test_orphans_are_the_children_of_a_parent_never_called() -> None:
    chain = Chain()
    root = chain.root("search", {"q": "A"}, 0.8, turn=1)
    kid = chain.child(root, _cand("details", {"id": "a1"}, 0.6))
    grandkid = chain.child(kid, _cand("forecast", {"lat": 1}, 0.5))
    assert kid.depth == 1 and grandkid.depth == 2
    # turn 1 is still in progress: nothing is orphaned yet
    assert chain.orphans(1, set()) == []
    # the agent asked something else in turn 1: the whole chain below the root goes
    assert {x.key for x in chain.orphans(2, set())} == {kid.key, grandkid.key}
    # the agent called the root: its children stand
    chain = Chain()
    root = chain.root("search", {"q": "A"}, 0.8, turn=1)
    kid = chain.child(root, _cand("details", {"id": "a1"}, 0.6))
    assert chain.orphans(2, {root.key}) == []
    assert chain.layers(kid, {root.key}) == [[Speculative("details", {"id": "a1"}, None, False)]]


def _cand(tool: str, args: dict[str, Any], p: float) -> Candidate:
    return Candidate.of(tool, args, p, p)


# a quick search whose result arrives while the LLM still thinks; slow details and forecasts
LATENCY_S = {"search": 0.3, "details": 2.5, "forecast": 2.5, "book": 1.0}


def replay_sessions(n: int, *, book: bool = False) -> list[ReplaySession]:
    out = []
    for i in range(n):
        s = chain_session(i, CITIES[i % len(CITIES)] + str(i), book=book)
        tool_s = {e.call_id: LATENCY_S[e.name] for e in s.events if isinstance(e, ToolCall)}
        labels = {"book": "write"}
        out.append(ReplaySession(s.key.conversation, s.events, tool_s=tool_s, labels=labels))
    return out


def simulate(depth: int, sessions: list[ReplaySession], **budgets: int) -> dict[str, Any]:
    budget = Budgets(max_chain_depth=depth, **budgets)
    return Simulation(budget=budget, llm_latency=1.0).run(sessions).summary()


def test_replay_chains_search_details_forecast() -> None:
    off = simulate(0, replay_sessions(8))
    on = simulate(2, replay_sessions(8))
    assert off["chained_fired"] == 0 and on["chained_fired"] > 0
    # the same real calls, scored the same way; chained calls start sooner (a details
    # call when the quick search's early result exists, not when the agent has it)
    assert on["tool_calls"] == off["tool_calls"] and on["e2e_time_s"] == off["e2e_time_s"]
    assert on["hits"] >= off["hits"] and on["e2e_time_spec_s"] < off["e2e_time_spec_s"]
    assert on["depth_used"].get("1", 0) > 0 and on["depth_used"].get("2", 0) > 0
    assert on["chained_used"] == on["depth_used"]["1"] + on["depth_used"]["2"]
    # every call of the chain in the last sessions was served early
    last = Simulation(budget=Budgets(max_chain_depth=2), llm_latency=1.0)
    sessions = replay_sessions(8)
    last.run(sessions[:7])
    before = last.totals.hits
    last.run(sessions[7:])
    assert last.totals.hits - before == 7  # search, 3 details, 3 forecasts


def test_replay_depth_limit() -> None:
    one = simulate(1, replay_sessions(8))
    assert one["chained_fired"] > 0
    assert set(one["depth_fired"]) <= {"0", "1"}


def test_replay_never_chains_a_write() -> None:
    sim = Simulation(budget=Budgets(max_chain_depth=3), llm_latency=1.0)
    totals = sim.run(replay_sessions(8, book=True))
    assert totals.chained_fired > 0
    assert totals.tools["book"].calls == 8 and totals.tools["book"].prefired == 0
    # the chain would have led to the write: the model predicts it past the forecasts
    m = sim.model
    assert isinstance(m, PatternModel)
    s = chain_session(99, "Split", book=True)
    events = iter(s.events)
    for e in events:
        m.observe(e)
        if isinstance(e, LLMRequest) and m.memory(e.session).turn == 3:
            break  # the forecasts' decision point
    places = [place("Split", k) for k in range(3)]
    forecasts = [
        [Speculative("forecast", {"lat": p["lat"], "lon": p["lon"]}, {"sky": "sun"})]
        for p in places[:1]
    ]
    assert "book" in {c.tool for c in continuation(m, s.key, forecasts)}


def test_replay_budgets_bound_chains() -> None:
    narrow = simulate(2, replay_sessions(8), max_per_turn=1)
    wide = simulate(2, replay_sessions(8))
    assert 0 < narrow["chained_fired"] < wide["chained_fired"]


def test_an_early_result_of_a_call_the_agent_made_is_laid_over_its_record() -> None:
    """An eager call: the agent's call is in the session, its result not yet; the early
    result predicts the next step, and the real record stays without a result."""
    m = trained()
    s = chain_session(99, "Split")
    for e in s.events:
        m.observe(e)
        if isinstance(e, ToolCall):
            break  # the agent's search, its result still to come
    mem = m.memory(s.key)
    (rec,) = [r for r in mem.calls if r.name == "search"]
    places = [place("Split", k) for k in range(3)]
    found = Speculative("search", {"q": "Split"}, {"places": [{"id": p["id"]} for p in places]})
    got = continuation(m, s.key, [[found]])
    assert {c.arguments["id"] for c in got if c.tool == "details"} == {p["id"] for p in places}
    assert not rec.has_result and rec.result is None and len(mem.calls) == 1


def map_session(i: int, cities: list[str]) -> Script:
    """Parallel searches (one per city), then the details of each search's first place:
    a map over the parallel calls."""
    s = Script(f"m{i}", TOOLS).user(f"Compare the best cafe in {', '.join(cities)}.")
    found = {c: [place(c, k) for k in range(2)] for c in cities}
    s.turn(*[("search", {"q": c}, {"places": [{"id": p["id"]} for p in found[c]]}) for c in cities])
    s.turn(*[("details", {"id": found[c][0]["id"]}, found[c][0]) for c in cities])
    return s


def test_a_chain_from_parallel_calls_maps_over_all_of_them() -> None:
    """Three searches the LLM emitted together (eager starts: the agent's calls are in the
    session, their results not yet): once the last early result is in, the continuation
    sees every search's result and predicts one details call per search, not only for the
    search whose result came last."""
    m = PatternModel()
    for i in range(6):
        s = map_session(i, CITIES[i : i + 3])
        for e in s.events:
            m.observe(e)
        m.end_session(s.key)
    cities = ["Oslo", "Bari", "Cork"]
    s = map_session(99, cities)
    for e in s.events:
        m.observe(e)
        if isinstance(e, ToolCall) and e.arguments == {"q": cities[-1]}:
            break  # the three searches are emitted; no result has reached the agent
    chain = Chain()
    turn = m.memory(s.key).turn
    roots = [chain.root("search", {"q": c}, 1.0, turn) for c in cities]
    for c, link in zip(cities, roots, strict=True):
        link.result = {"places": [{"id": place(c, k)["id"]} for k in range(2)]}
        link.has_result = True
    # a call of another decision point is no sibling
    other = chain.root("search", {"q": "Gent"}, 1.0, turn - 1)
    other.result, other.has_result = {"places": []}, True
    layers = chain.layers(roots[-1], m.memory(s.key).called)
    assert [[x.arguments["q"] for x in layer] for layer in layers] == [cities]
    got = {c.arguments["id"] for c in continuation(m, s.key, layers) if c.tool == "details"}
    assert {place(c, 0)["id"] for c in cities} <= got
    # without the siblings (each result on its own) the map cannot be resolved
    alone = [[Speculative("search", {"q": cities[-1]}, roots[-1].result)]]
    alone_ids = {c.arguments["id"] for c in continuation(m, s.key, alone) if c.tool == "details"}
    assert not {place(c, 0)["id"] for c in cities[:2]} <= alone_ids
    # a sibling whose result the agent has already is not laid over again
    assert chain.layers(roots[-1], set(), {roots[0].key})[0][0].arguments == {"q": "Bari"}
