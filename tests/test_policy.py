"""The firing policy: expected value decides, budgets cap; one function for live and replay."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from prefire.patterns import policy
from prefire.patterns.model import Candidate
from prefire.proxy import speculator
from prefire.replay import simulate
from prefire.replay.simulate import Simulation
from prefire.replay.sources import ReplaySession, openai_session
from prefire.rules.ruleset import Budgets


def cand(tool: str, p: float, saving: float = 1.0, **args: Any) -> Candidate:
    return Candidate.of(tool, args or {"q": tool}, p, p * saving)


def fired(
    cands: list[Candidate],
    cost: dict[str, float],
    budgets: Budgets | None = None,
    in_flight: int = 0,
    allowed: set[str] | None = None,
) -> list[str]:
    started = policy.fire_by_value(
        cands,
        lambda tool: cost.get(tool, 0.25),
        budgets or Budgets(),
        lambda c: allowed is None or c.tool in allowed,
        in_flight,
    ).started
    return [c.tool for c in started]


def test_a_costly_tool_is_not_fired_at_a_probability_at_which_a_cheap_one_is() -> None:
    cands = [cand("cheap_search", 0.4), cand("paid_search", 0.4)]
    assert fired(cands, {"cheap_search": 0.25, "paid_search": 4.0}) == ["cheap_search"]
    # the paid one needs p x 1 s > (1 - p) x 4 s: p > 0.8
    assert fired([cand("paid_search", 0.79)], {"paid_search": 4.0}) == []
    assert fired([cand("paid_search", 0.81)], {"paid_search": 4.0}) == ["paid_search"]


def test_the_saving_counts_a_fast_tool_is_not_worth_a_guess() -> None:
    # same probability and cost; a 50 ms tool saves too little to risk a wasted call
    slow, fast = cand("slow", 0.5, saving=1.0), cand("fast", 0.5, saving=0.05)
    assert fired([slow, fast], {}) == ["slow"]


def test_best_net_value_first_and_the_caps_hold() -> None:
    cands = [cand(f"t{i}", p) for i, p in enumerate([0.3, 0.9, 0.5, 0.7, 0.6])]
    assert fired(cands, {}) == ["t1", "t3", "t4"]  # max_per_turn 3 of the five worth it
    every = Budgets(max_per_turn=5, max_concurrent=8)
    assert fired(cands, {}, every) == ["t1", "t3", "t4", "t2", "t0"]
    assert fired(cands, {}, Budgets(max_per_turn=5)) == ["t1", "t3", "t4", "t2"]  # 4 in flight
    # concurrency: two already in flight leave room for two
    assert fired(cands, {}, Budgets(max_per_turn=5, max_concurrent=4), in_flight=2) == ["t1", "t3"]
    assert fired(cands, {}, Budgets(max_per_turn=0)) == []
    # a candidate `fire` refuses (no rule allows it, no binding) does not use up the cap
    assert fired(cands, {}, allowed={"t0", "t2", "t4"}) == ["t4", "t2", "t0"]


def test_what_a_cap_leaves_out_is_returned_so_the_caller_can_say_why() -> None:
    cands = [cand(f"t{i}", p) for i, p in enumerate([0.3, 0.9, 0.5, 0.7, 0.6])]
    firing = policy.fire_by_value(cands, lambda _: 0.25, Budgets(), lambda c: True)
    assert [c.tool for c in firing.started] == ["t1", "t3", "t4"]
    assert [c.tool for c in firing.left_out] == ["t2", "t0"] and firing.room == 3
    # nothing left out when the caps hold everything worth starting, or nothing is worth it
    every = policy.fire_by_value(
        cands, lambda _: 0.25, Budgets(max_per_turn=5, max_concurrent=8), lambda c: True
    )
    assert every.left_out == [] and len(every.started) == 5
    worthless = policy.fire_by_value(cands, lambda _: 100.0, Budgets(), lambda c: True)
    assert worthless.started == [] and worthless.left_out == []
    # more in flight than the cap: no room, never negative
    full = policy.fire_by_value(cands, lambda _: 0.25, Budgets(max_concurrent=2), lambda c: True, 5)
    assert full.room == 0 and full.started == [] and len(full.left_out) == 5


def test_min_probability_from_an_old_file_is_a_floor() -> None:
    cands = [cand("a", 0.3), cand("b", 0.6)]
    assert fired(cands, {}, Budgets(min_probability=0.5)) == ["b"]


@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.floats(0, 3), st.sampled_from([0.0, 0.25, 1, 4])), max_size=12
    ),
    st.integers(0, 6),
    st.integers(1, 6),
    st.integers(0, 6),
)
def test_policy_properties(
    rows: list[tuple[float, float, float]], per_turn: int, concurrent: int, in_flight: int
) -> None:
    cands = [cand(f"t{i}", p, saving) for i, (p, saving, _) in enumerate(rows)]
    costs = {f"t{i}": cost for i, (_, _, cost) in enumerate(rows)}
    budgets = Budgets(max_concurrent=concurrent, max_per_turn=per_turn)
    got = fired(cands, costs, budgets, in_flight)
    assert len(got) <= max(0, min(per_turn, concurrent - in_flight))
    by_tool = {c.tool: c for c in cands}
    values = [policy.net_value(by_tool[t], costs[t]) for t in got]
    assert all(v > 0 for v in values)
    assert values == sorted(values, reverse=True)


def test_live_and_replay_fire_through_the_same_policy_function() -> None:
    assert speculator.fire_by_value is policy.fire_by_value
    assert simulate.fire_by_value is policy.fire_by_value


def _session(i: int) -> ReplaySession:
    line = {
        "id": f"s{i}",
        "tools": [
            {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
            for n in ("lookup", "paid_lookup")
        ],
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": f"c{i}{n}",
                        "type": "function",
                        "function": {"name": n, "arguments": '{"k": 1}'},
                    }
                    for n in ("lookup", "paid_lookup")
                ],
            },
            *(
                {"role": "tool", "tool_call_id": f"c{i}{n}", "content": "{}"}
                for n in ("lookup", "paid_lookup")
            ),
            {"role": "assistant", "content": "done"},
        ],
    }
    return openai_session(line)


def test_replay_prices_each_tool_with_its_cost() -> None:
    sessions = [_session(i) for i in range(12)]
    cheap = Simulation(cost=lambda tool: 0.25).run(sessions)
    assert cheap.tools["lookup"].prefired > 0 and cheap.tools["paid_lookup"].prefired > 0
    costly = Simulation(cost=lambda tool: 100.0 if tool == "paid_lookup" else 0.25).run(sessions)
    assert costly.tools["paid_lookup"].prefired == 0
    assert costly.tools["lookup"].prefired == cheap.tools["lookup"].prefired


def test_a_call_served_early_does_not_talk_the_policy_out_of_speculating() -> None:
    """Served early, a call looks instant to the proxy; the tool's learned latency (and
    so the saving the policy weighs) must not collapse after a few such calls."""
    from prefire.patterns.latency import Latencies

    lat = Latencies()
    lat.observe_tool("app", "search", 1.0)
    for _ in range(5):
        lat.observe_tool("app", "search", 0.001)  # served from the cache
    assert lat.tool_s("app", "search") > 0.8
    lat.observe_tool("app", "search", 2.0)  # a slower call counts at once
    assert lat.tool_s("app", "search") > 1.4
